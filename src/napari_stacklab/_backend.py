"""The one place that knows NumPy, CuPy and dask apart.

Every other module asks this one for an array namespace (``xp``, ``ndi``),
moves data between host and device through it, and tests laziness through it.
CuPy and dask are imported only when an array of theirs is seen (or a GPU is
asked for), so ``import napari_stacklab`` stays light and headless.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType
from typing import Any, Callable, Literal, get_args

import numpy as np
import scipy.ndimage

#: Where to compute: ``"auto"`` (the GPU when there is one), ``"cpu"`` or ``"gpu"``.
Device = Literal["auto", "cpu", "gpu"]
DEVICES = get_args(Device)


class GPUFallbackWarning(UserWarning):
    """The GPU was asked for but could not be used; the CPU path ran instead."""


class NoGPUImplementation(Exception):
    """Raised by a kernel given CuPy data it has no GPU code for; the registry reruns it on the CPU."""


def is_dask(array: Any) -> bool:
    """True for a ``dask.array.Array`` (without importing dask)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(array, da.Array)


def is_cupy(array: Any) -> bool:
    """True for a ``cupy.ndarray`` (without importing cupy)."""
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(array, cp.ndarray)


def chunk_type(array: Any) -> Any:
    """The in-memory array a computation on ``array`` produces (its dask meta, or itself)."""
    return array._meta if is_dask(array) else array


def array_module(array: Any) -> ModuleType:
    """The module whose functions keep ``array``'s kind: ``dask.array``, ``cupy`` or ``numpy``.

    For stacking, moving axes and the like on an array that may be lazy (a
    kernel inside a chunk uses :func:`get_namespace` instead).
    """
    return dask_module() if is_dask(array) else get_namespace(array)[0]


def get_namespace(array: Any) -> tuple[ModuleType, ModuleType]:
    """Return ``(xp, ndi)``: the array module and its ``scipy.ndimage`` for ``array``.

    A dask array answers for the kind of chunk it holds, so a kernel run inside
    ``map_blocks`` receives the namespace of the chunk it computes on.
    """
    if is_cupy(chunk_type(array)):
        import cupy
        import cupyx.scipy.ndimage

        return cupy, cupyx.scipy.ndimage
    return np, scipy.ndimage


def fft_module(array: Any) -> ModuleType:
    """``scipy.fft`` for host arrays, ``cupyx.scipy.fft`` for CuPy arrays.

    ``scipy.fft`` keeps float32 transforms in single precision and is several
    times faster than ``numpy.fft``; it also releases the GIL, so frames
    transformed in dask's threads run in parallel.
    """
    if is_cupy(chunk_type(array)):
        import cupyx.scipy.fft

        return cupyx.scipy.fft
    import scipy.fft

    return scipy.fft


#: Let OpenCV, when it is installed, run a few host kernels it does much faster (registration's
#: bilinear resampling and Gaussian smoothing). False: SciPy and scikit-image only (the tests and
#: ``benchmarks/bench_register.py`` run both).
OPENCV_ACCELERATION = True


def opencv_module(array: Any) -> ModuleType | None:
    """``cv2`` for an in-memory NumPy array when OpenCV is installed and allowed, else None."""
    if not OPENCV_ACCELERATION or is_dask(array) or is_cupy(array):
        return None
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def skimage_module(array: Any, name: str) -> Any:
    """``skimage.<name>`` for host arrays, ``cucim.skimage.<name>`` for CuPy arrays.

    For CuPy data the module is wrapped so that a function cuCIM lacks (or cuCIM
    missing altogether) raises :class:`NoGPUImplementation` naming the function;
    the registry turns that into a CPU fallback with a :class:`GPUFallbackWarning`.
    """
    if not is_cupy(chunk_type(array)):
        return importlib.import_module(f"skimage.{name}")
    try:
        return _GPUSkimage(importlib.import_module(f"cucim.skimage.{name}"), name)
    except ImportError as exc:
        raise NoGPUImplementation(f"skimage.{name} has no GPU implementation here (install cuCIM)") from exc


class _GPUSkimage:
    """A ``cucim.skimage`` module whose missing functions raise :class:`NoGPUImplementation`."""

    def __init__(self, module: ModuleType, name: str) -> None:
        self._module, self._name = module, name

    def __getattr__(self, attr: str) -> Any:
        found = getattr(self._module, attr, None)
        if found is None:
            raise NoGPUImplementation(f"skimage.{self._name}.{attr} has no GPU implementation in cuCIM")
        return found


def skimage_function(array: Any, module: str, name: str) -> Any:
    """``skimage.<module>.<name>``, or cuCIM's for CuPy data (see :func:`skimage_module`)."""
    return getattr(skimage_module(array, module), name)


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError, missing driver libraries
        return False


def resolve_device(device: str | None) -> str | None:
    """Map a user's device choice to ``"cpu"``, ``"gpu"`` or ``None`` (leave data where it is).

    ``"gpu"`` without a usable GPU falls back to ``"cpu"`` with a
    :class:`GPUFallbackWarning`; ``"auto"`` picks the GPU only when one is there.
    """
    if device is None:
        return None
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return "cpu"
    if gpu_available():
        return "gpu"
    if device == "gpu":
        warnings.warn(
            "device='gpu' was asked for, but CuPy or a CUDA device is not available; "
            "running on the CPU instead.",
            GPUFallbackWarning,
            stacklevel=3,
        )
    return "cpu"


def to_device(array: Any, device: str | None) -> Any:
    """Move ``array`` (NumPy, CuPy or dask) to ``"cpu"`` or ``"gpu"``; ``None`` leaves it."""
    device = resolve_device(device)
    if device is None:
        return array
    on_gpu = is_cupy(chunk_type(array))
    if (device == "gpu") == on_gpu:
        return array
    if device == "gpu":
        import cupy

        if is_dask(array):
            return array.map_blocks(cupy.asarray, meta=cupy.empty((0,) * array.ndim, array.dtype))
        return cupy.asarray(array)
    return to_numpy(array)


def like(value: Any, image: Any) -> Any:
    """``value`` moved to where ``image`` lives (an image parameter follows the image it is used with)."""
    if not hasattr(value, "shape") or on_gpu(value) == on_gpu(image):
        return value
    return to_device(value, "gpu" if on_gpu(image) else "cpu")


def to_numpy(array: Any) -> Any:
    """Host copy of ``array``; dask arrays stay lazy but get NumPy chunks."""
    if is_dask(array):
        if not is_cupy(array._meta):
            return array
        return array.map_blocks(_cupy_to_numpy, meta=np.empty((0,) * array.ndim, array.dtype))
    if is_cupy(array):
        return array.get()
    return np.asarray(array)


def _cupy_to_numpy(block: Any) -> np.ndarray:
    return block.get()


def on_gpu(array: Any) -> bool:
    """True when ``array`` (or a dask array's chunks) lives on the GPU."""
    return is_cupy(chunk_type(array))


def gpu_failure_types() -> tuple[type, ...]:
    """Exceptions after which an operation is retried on the CPU: no GPU implementation, GPU out of memory."""
    failures: list[type] = [NoGPUImplementation]
    cp = sys.modules.get("cupy")
    if cp is not None:
        failures.append(cp.cuda.memory.OutOfMemoryError)
    return tuple(failures)


def free_gpu_memory() -> None:
    """Return CuPy's cached device memory to the driver (after an out-of-memory error)."""
    cp = sys.modules.get("cupy")
    if cp is not None:
        cp.get_default_memory_pool().free_all_blocks()


def warn_fallback(name: str, exc: BaseException, *, stacklevel: int = 2) -> None:
    """Say that ``name`` could not run on the GPU and runs on the CPU instead (:class:`GPUFallbackWarning`)."""
    warnings.warn(
        f"{name}: the GPU could not run it ({exc}); running on the CPU instead.",
        GPUFallbackWarning,
        stacklevel=stacklevel + 1,
    )


def on_host_after_gpu_failure(func: Callable, name: str) -> Callable:
    """``func`` for the blocks of a lazy GPU graph: a block the GPU cannot compute is computed on the CPU.

    The policy for failures that show only when real blocks are computed (out
    of memory on a large block): the block and every GPU argument are copied
    to the host, ``func`` reruns there with a :class:`GPUFallbackWarning`, and
    the result is copied back, so the graph still yields GPU chunks and no
    work is lost.
    """
    failures = gpu_failure_types()

    def run(block: Any, **params: Any) -> Any:
        try:
            return func(block, **params)
        except failures as exc:
            free_gpu_memory()
            why = "the GPU could not run" if isinstance(exc, NoGPUImplementation) else "did not fit on the GPU"
            warnings.warn(
                f"{name}: a block of shape {tuple(block.shape)} {why} ({exc}); it was computed on the CPU.",
                GPUFallbackWarning,
                stacklevel=2,
            )
            host_params = {k: to_numpy(v) if on_gpu(v) else v for k, v in params.items()}
            return to_device(func(to_numpy(block), **host_params), "gpu")

    return run


def tiny_like(array: Any, frame_ndim: int) -> Any:
    """A small eager array of ``array``'s kind and dtype, at most 16 pixels per axis (for probing a kernel).

    The last ``frame_ndim`` axes are kept (cut to 16), leading axes are cut to 2.
    Its values vary (a ramp modulo 7, or 0/1 for booleans), so kernels that
    take a shortcut on a constant image still run their real code.
    """
    xp, _ = get_namespace(array)
    shape = tuple(min(int(s), 2) for s in array.shape[: array.ndim - frame_ndim]) + tuple(
        min(int(s), 16) for s in array.shape[array.ndim - frame_ndim :]
    )
    size = int(np.prod(shape, dtype=np.int64))
    ramp = (xp.arange(size) % (2 if np.dtype(array.dtype) == bool else 7)).reshape(shape)
    return ramp.astype(array.dtype)


def empty_like_meta(array: Any, dtype: Any, ndim: int | None = None) -> Any:
    """A zero-size array of the same kind as ``array``'s chunks: the ``meta=`` for dask."""
    xp, _ = get_namespace(array)
    return xp.empty((0,) * (array.ndim if ndim is None else ndim), dtype=dtype)


def materialize(array: Any) -> Any:
    """Compute a *small* result (a statistic, a histogram, a transform) to host memory.

    This is the one explicit place where the library turns a lazy value into
    numbers, used for global statistics that are computed once and then passed
    into lazy graphs as plain parameters.
    """
    if is_dask(array):
        array = array.compute()
    return to_numpy(array)


def compute_here(array: Any) -> Any:
    """``array`` in memory: a lazy array is computed (to the host), an eager one is returned as it is.

    For inputs that are read once and then used whole (a template, a
    frame-shaped mask, one frame a function works on); :func:`materialize`
    also brings eager GPU data to the host.
    """
    return materialize(array) if is_dask(array) else array


def as_dask(array: Any, chunks: Any = "auto") -> Any:
    """Wrap ``array`` as a dask array (a no-op for dask input)."""
    import dask.array as da

    if is_dask(array):
        return array
    return da.from_array(array, chunks=chunks, meta=empty_like_meta(array, array.dtype))


def cast_origins(array: Any) -> tuple[str, ...]:
    """Names of the dask arrays whose values ``array`` holds: its own, and ``x``'s when it is ``x.astype(...)``.

    Lets a reduction find the file behind a lazy array that the engine cast
    to a computable dtype (native byte order) on the way.
    """
    names = [array.name]
    dependencies = getattr(array.__dask_graph__(), "dependencies", {}).get(array.name, ())
    if array.name.startswith("astype-") and len(dependencies) == 1:
        names.extend(dependencies)
    return tuple(names)


def dask_module() -> ModuleType:
    """``dask.array``, imported on demand."""
    import dask.array as da

    return da
