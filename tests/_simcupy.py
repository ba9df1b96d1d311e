"""A host-simulated CuPy (and cuCIM) for exercising the GPU code paths on machines without a GPU.

This is a test double, not a GPU: it runs NumPy, SciPy and scikit-image underneath,
so it says nothing about GPU speed or about numerical differences of the real
CUDA kernels. What it does reproduce is the *contract* a GPU code path must keep
and that CPU-only test runs never check:

- a device array refuses implicit conversion to NumPy (``np.asarray(d)``, and so
  every SciPy or scikit-image function given one) with CuPy's own TypeError;
- mixing a device array with a NumPy array in arithmetic or in a ``cupy.*``
  function is a TypeError, as in CuPy;
- reductions return 0-d device arrays, not host scalars;
- only the names real CuPy 14 and cuCIM 26.10 export exist, and where Python can
  see a signature only its keyword arguments are accepted
  (``tests/data/cupy_api.json``, written by ``tests/_snapshot_cupy_api.py``);
- ``.get()`` / ``cupy.asnumpy`` are the ways back to the host;
- dask sees the arrays as CuPy's (the class is ``cupy.ndarray``), so dask's own
  CuPy dispatch is used for chunked graphs.

Use ``with simulated_gpu(cucim=True): ...``; inside, ``import cupy`` gives the
simulation and :func:`napari_stacklab._backend.gpu_available` is True. It must not
be used where a real GPU is present (the real ``gpu`` tests run there instead).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

API = json.loads((Path(__file__).parent / "data" / "cupy_api.json").read_text())
MODULES = API["modules"]
UFUNC_NAMES = set(MODULES["cupy"]) | set(MODULES["cupyx.scipy.special"])

#: host module each simulated module runs on
HOST = {
    "cupy": "numpy", "cupy.fft": "numpy.fft", "cupy.linalg": "numpy.linalg", "cupy.random": "numpy.random",
    "cupyx.scipy.ndimage": "scipy.ndimage", "cupyx.scipy.fft": "scipy.fft", "cupyx.scipy.signal": "scipy.signal",
    "cupyx.scipy.special": "scipy.special",
}
#: numpy module of a function seen by ``__array_function__`` -> the CuPy module that must have it
NUMPY_TO_CUPY = {"numpy": "cupy", "numpy.fft": "cupy.fft", "numpy.linalg": "cupy.linalg"}
#: functions that take host data on purpose (the transfers and constructors)
HOST_INPUT_OK = {"asarray", "array", "asanyarray", "ascontiguousarray", "asnumpy", "get_array_module"}


class ImplicitHostTransfer(TypeError):
    """What CuPy raises when device data is turned into a NumPy array implicitly."""


class OutOfMemoryError(MemoryError):
    """Stands in for ``cupy.cuda.memory.OutOfMemoryError``."""


class ndarray(NDArrayOperatorsMixin):  # the name dask and the backend look for
    """A device array: a NumPy array that may only leave through ``.get()``."""

    __array_priority__ = 100

    def __init__(self, host):
        self._a = host

    # ---- the rules that make it a device array ----
    def __array__(self, dtype=None, copy=None):
        raise ImplicitHostTransfer(
            "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
            "array explicitly. (simulated CuPy)"
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc.__name__ not in UFUNC_NAMES or (method != "__call__" and method not in API["ufunc_methods"]):
            return NotImplemented
        _refuse_host_arrays(inputs, f"cupy.{ufunc.__name__}")
        out = kwargs.get("out")
        kwargs = _unwrap(kwargs)
        result = getattr(ufunc, method)(*_unwrap(inputs), **kwargs)
        return out[0] if out is not None and len(out) == 1 else _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        module = NUMPY_TO_CUPY.get(func.__module__)
        if module is None or func.__name__ not in MODULES[module]:
            return NotImplemented
        return _call_on_host(func, f"{module}.{func.__name__}", MODULES[module][func.__name__], args, kwargs)

    # ---- attributes and methods of cupy.ndarray ----
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))
    real = property(lambda self: ndarray(self._a.real))
    imag = property(lambda self: ndarray(self._a.imag))
    device = property(lambda self: "simulated-gpu:0")

    def get(self, stream=None, order="C", out=None):
        return np.array(self._a, order=order)

    def __getattr__(self, name):
        if name.startswith("_") or name not in API["ndarray_methods"]:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        method = getattr(self._a, name)
        return lambda *args, **kwargs: _wrap(method(*_unwrap(args), **_unwrap(kwargs)))

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (ndarray(row) for row in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __complex__(self):
        return complex(self._a)

    def __repr__(self):
        return f"array({self._a!r}, device=simulated-gpu)"


ndarray.__module__ = "cupy"  # dask dispatches CuPy arrays by the class's top-level module


def _unwrap(value):
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value):
    if isinstance(value, np.ndarray):
        return ndarray(value)
    if isinstance(value, np.generic) and not isinstance(value, np.dtype):
        return ndarray(np.asarray(value))
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _host_arrays(value):
    """Arrays a CuPy function refuses: NumPy arrays, and dask arrays (CuPy would compute them to NumPy)."""
    if isinstance(value, np.ndarray) or hasattr(value, "__dask_graph__"):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _host_arrays(v)


def _refuse_host_arrays(args, where: str) -> None:
    for found in _host_arrays(list(args)):
        raise TypeError(f"{where}: unsupported type {type(found)} (not a cupy.ndarray; simulated CuPy)")


def _check_signature(where: str, params, args, kwargs) -> None:
    if params is None:
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise TypeError(f"{where}() got unexpected keyword arguments {unknown} (not in the real API)")
    if len(args) > len(params):
        raise TypeError(f"{where}() takes {len(params)} positional arguments but {len(args)} were given")


def _device_callback(value):
    """A function handed to a cuCIM/cupyx function is called with device arrays there: so here too."""
    if not isinstance(value, (types.FunctionType, functools.partial)):
        return value

    def callback(*args, **kwargs):
        return _unwrap(value(*_wrap(args), **_wrap(kwargs)))

    return callback


def _call_on_host(func, where: str, params, args, kwargs, strict=True):
    _check_signature(where, params, args, kwargs)
    if strict:
        _refuse_host_arrays(list(args) + list(kwargs.values()), where)
    elif args and isinstance(args[0], np.ndarray):
        raise TypeError(f"{where}: the input must be a cupy.ndarray, got a numpy.ndarray (simulated CuPy)")
    args = [_device_callback(a) for a in args]
    kwargs = {k: _device_callback(v) for k, v in kwargs.items()}
    return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))


_MISSING = object()


class _SimModule(types.ModuleType):
    """A module whose public names are exactly the real one's, each running on its host twin."""

    def __init__(self, name: str, host: str, strict: bool, extra: dict | None = None):
        super().__init__(name)
        self._names = MODULES[name]
        self._host = importlib.import_module(host)
        self._strict = strict
        self.__dict__.update(extra or {})

    def __getattr__(self, attr):
        if attr.startswith("__") or attr not in self._names:
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")
        target = getattr(self._host, attr, _MISSING)
        if target is _MISSING:
            raise NotImplementedError(f"{self.__name__}.{attr} is real but not simulated")
        if isinstance(target, (np.ufunc, type, np.dtype)) or not callable(target):
            return target  # ufuncs dispatch through ndarray.__array_ufunc__; dtypes and constants as they are
        where, params, strict = f"{self.__name__}.{attr}", self._names[attr], self._strict and attr not in HOST_INPUT_OK

        def simulated(*args, **kwargs):
            return _call_on_host(target, where, params, args, kwargs, strict=strict)

        simulated.__name__ = attr
        return simulated


def _asarray(a, dtype=None, order=None, *, blocking=False):
    return ndarray(np.array(_unwrap(a), dtype=dtype, order=order or "K"))


def _asnumpy(a, stream=None, order="C", out=None, blocking=True):
    return np.array(_unwrap(a), order=order)


def _get_array_module(*args):
    return sys.modules["cupy"] if any(isinstance(a, ndarray) for a in args) else np


class _Device:
    def __init__(self, device=None):
        self.id = 0

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


def _cuda_module() -> types.ModuleType:
    cuda = types.ModuleType("cupy.cuda")
    runtime = types.ModuleType("cupy.cuda.runtime")
    runtime.getDeviceCount = lambda: 1
    runtime.getDeviceProperties = lambda i: {"name": b"simulated GPU (NumPy on the host)", "totalGlobalMem": 0}
    memory = types.ModuleType("cupy.cuda.memory")
    memory.OutOfMemoryError = OutOfMemoryError
    cuda.runtime, cuda.memory, cuda.Device = runtime, memory, _Device
    cuda.is_available = lambda: True
    return cuda


def build_modules(cucim: bool = True) -> dict[str, types.ModuleType]:
    """The simulated ``cupy``, ``cupyx`` (and ``cucim``) modules, by their import names."""
    cuda = _cuda_module()
    mods: dict[str, types.ModuleType] = {"cupy.cuda": cuda, "cupy.cuda.runtime": cuda.runtime,
                                         "cupy.cuda.memory": cuda.memory}
    for name, host in HOST.items():
        mods[name] = _SimModule(name, host, strict=name.startswith("cupy."))
    mods["cupy"] = _SimModule("cupy", "numpy", strict=True, extra={
        "ndarray": ndarray, "cuda": cuda, "asarray": _asarray, "array": _asarray, "asnumpy": _asnumpy,
        "get_array_module": _get_array_module, "get_default_memory_pool": _MemoryPool,
        "__version__": API["versions"]["cupy"] + "+simulated", "fft": mods["cupy.fft"],
        "linalg": mods["cupy.linalg"], "random": mods["cupy.random"],
    })
    mods["cupyx"] = types.ModuleType("cupyx")
    mods["cupyx.scipy"] = types.ModuleType("cupyx.scipy")
    mods["cupyx"].scipy = mods["cupyx.scipy"]
    for sub in ("ndimage", "fft", "signal", "special"):
        setattr(mods["cupyx.scipy"], sub, mods[f"cupyx.scipy.{sub}"])
    if cucim:
        mods["cucim"] = types.ModuleType("cucim")
        mods["cucim"].__version__ = API["versions"]["cucim"] + "+simulated"
        mods["cucim.skimage"] = types.ModuleType("cucim.skimage")
        mods["cucim"].skimage = mods["cucim.skimage"]
        for name in MODULES:
            if name.startswith("cucim.skimage."):
                sub = name.rsplit(".", 1)[1]
                mods[name] = _SimModule(name, f"skimage.{sub}", strict=False)
                setattr(mods["cucim.skimage"], sub, mods[name])
    return mods


def real_gpu_present() -> bool:
    """True when real CuPy imports and sees a CUDA device (then the real ``gpu`` tests run instead).

    CuPy installed without a device (or driver) does not count: the simulation
    then stands in for it while it is active.
    """
    if isinstance(sys.modules.get("cupy"), _SimModule):
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError (no driver, no device)
        return False


@contextlib.contextmanager
def simulated_gpu(cucim: bool = True):
    """Make ``import cupy`` (and ``cucim.skimage``) give the simulation for the duration of the block."""
    if real_gpu_present():
        raise RuntimeError("a real GPU is here: run the real `gpu` tests instead of the simulation")
    from dask.array.chunk_types import register_chunk_type

    register_chunk_type(ndarray)  # as dask.array does for cupy.ndarray at import when CuPy is installed
    names = list(build_modules(cucim=True))
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.modules.update(build_modules(cucim=cucim))
    try:
        yield sys.modules["cupy"]
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
