"""The operation registry: every operation declared once, four faces derived.

An operation is declared by decorating its function with :func:`operation`::

    @operation(menu="filter", halo=lambda sigma, truncate, **_: ceil(truncate * sigma))
    def gaussian(image, *, sigma: Annotated[float, Range(0, 100)] = 1.0, truncate: float = 4.0):
        '''numpydoc ...'''
        xp, ndi = get_namespace(image)
        return ndi.gaussian_filter(image.astype(float_dtype(image.dtype)), sigma, truncate=truncate)

The decorated body is the *frame kernel*: it sees one frame (2-D by default).
The decorator returns the public function, which validates every parameter
against its declared type, range and choices, optionally moves data to a
device, computes global statistics once (``prepare``) and lifts the kernel
over the batch axes with :func:`napari_stacklab.lift.map_frames` (lazy for
dask input). The :class:`Operation` record it files here is what the napari
widgets, recipes, the CLI and the manifest are generated from.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import numbers
import types
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

from . import _backend
from ._validation import check_array, check_choice, check_ndim, check_number, check_numeric, float_dtype
from .lift import map_frames

__all__ = [
    "ImageRef",
    "PerFrame",
    "Range",
    "Param",
    "Operation",
    "operation",
    "get",
    "operations",
    "MENUS",
    "FAMILIES",
]

#: napari Layers-menu ids by short name.
MENUS = {
    "filter": "napari/layers/filter",
    "segment": "napari/layers/segment",
    "measure": "napari/layers/measure",
    "register": "napari/layers/register",
    "transform": "napari/layers/transform",
    "visualize": "napari/layers/visualize",
    "project": "napari/layers/project",
    "data": "napari/layers/data",
}

#: Modules whose import declares operations (``napari_stacklab.<name>``).
FAMILIES = ("filters", "segment", "stem", "morphology", "measure", "denoise", "phase", "register", "preprocess")

OUTPUT_KINDS = ("image", "labels", "mask", "images", "table", "transform", "points", "value")
"""What an operation returns. ``"images"`` is a dict ``{name: array}`` (e.g.
amplitude and phase), each shown as its own layer ``"<input> <op> <name>"``."""

_REGISTRY: dict[str, "Operation"] = {}


class ImageRef:
    """Type hint for a parameter that is a second image (a reference, a PSF, a mask).

    In Python it takes an array; the napari widget shows a layer chooser; a
    recipe records ``{"layer": name}`` and :meth:`Recipe.run` takes the array
    from its ``inputs`` mapping.
    """


class PerFrame:
    """``Annotated[ImageRef, PerFrame]``: a second image aligned with the input, pixel for pixel.

    It may have the frame shape (the same for every frame) or the input's whole
    shape (one per frame: a mask per time point); the kernel receives the frame
    matching the one it computes.
    """


@dataclass(frozen=True)
class Range:
    """Allowed interval of a numeric parameter (for validation and widget limits)."""

    low: float | None = None
    high: float | None = None
    step: float | None = None
    low_inclusive: bool = True


@dataclass(frozen=True)
class Param:
    """One keyword parameter of an operation, derived from its type hints."""

    name: str
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    low_inclusive: bool = True
    choices: tuple | None = None
    optional: bool = False
    per_axis: bool = False  # a number, or a sequence of numbers (one per frame axis)
    per_frame: bool = False  # an ImageRef of the frame shape or of the input's shape (see PerFrame)

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")

    def check(self, value: Any) -> Any:
        """Return ``value`` coerced to the declared kind, or raise naming the parameter."""
        if value is None:
            if self.optional:
                return None
            raise TypeError(f"{self.name} must not be None")
        if self.kind is ImageRef:
            check_array(value, self.name)
            return value
        if self.choices is not None:
            check_choice(self.name, value, self.choices)
            return value
        if self.kind is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{self.name} must be True or False, got {value!r}")
            return bool(value)
        if self.kind is str:
            if not isinstance(value, str):
                raise TypeError(f"{self.name} must be a string, got {value!r}")
            return value
        if self.per_axis and isinstance(value, (tuple, list, np.ndarray)):
            return tuple(self._check_number(v, self.kind is int) for v in value)
        if self.kind in (int, float):
            return self._check_number(value, self.kind is int)
        if self.kind is tuple:
            if not isinstance(value, (tuple, list)):
                raise TypeError(f"{self.name} must be a sequence of numbers, got {value!r}")
            for item in value:
                check_number(self.name, item, low=self.low, high=self.high, low_inclusive=self.low_inclusive)
            return tuple(value)
        return value

    def _check_number(self, value: Any, integer: bool) -> Any:
        if isinstance(value, np.generic):
            value = value.item()
        if not integer and isinstance(value, numbers.Integral) and not isinstance(value, bool):
            value = float(value)
        check_number(self.name, value, low=self.low, high=self.high, low_inclusive=self.low_inclusive, integer=integer)
        return value


def _param_from_hint(name: str, hint: Any, default: Any) -> Param:
    """Read kind, range, choices and optionality from a (possibly Annotated/Optional) hint."""
    limits = Range()
    optional = default is None
    per_axis = per_frame = False
    while True:
        origin = typing.get_origin(hint)
        if origin is typing.Annotated:
            hint, *extras = typing.get_args(hint)
            limits = next((e for e in extras if isinstance(e, Range)), limits)
            per_frame = per_frame or PerFrame in extras
        elif origin in (typing.Union, types.UnionType):
            args = typing.get_args(hint)
            kept = [a for a in args if a is not type(None)]
            optional = optional or len(kept) < len(args)
            sequences = [a for a in kept if typing.get_origin(a) in (tuple, list)]
            per_axis = per_axis or bool(sequences) and len(kept) > len(sequences)
            scalars = [a for a in kept if a not in sequences]
            hint = scalars[0] if scalars else kept[0]
        else:
            break
    choices = None
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        kind = type(choices[0])
    elif typing.get_origin(hint) in (tuple, list):
        kind = tuple
    elif isinstance(hint, type):
        kind = hint
    else:
        kind = object
    return Param(
        name=name,
        kind=kind,
        default=default,
        low=limits.low,
        high=limits.high,
        step=limits.step,
        low_inclusive=limits.low_inclusive,
        choices=choices,
        optional=optional,
        per_axis=per_axis,
        per_frame=per_frame,
    )


def _dtype_rule(rule: Any) -> Callable[..., np.dtype]:
    if callable(rule):
        return rule
    fixed = {
        "float": lambda dtype, **_: float_dtype(dtype),
        "same": lambda dtype, **_: np.dtype(dtype),
        "bool": lambda dtype, **_: np.dtype(bool),
        "labels": lambda dtype, **_: np.dtype(np.int32),
    }
    if rule in fixed:
        return fixed[rule]
    return lambda dtype, **_: np.dtype(rule)


@dataclass(frozen=True)
class Operation:
    """The single declaration of an operation, from which every face is derived."""

    name: str
    family: str
    title: str
    menu: str
    frame_ndim: int
    output: str
    params: tuple[Param, ...]
    kernel: Callable = field(repr=False)
    func: Callable = field(repr=False, compare=False, default=None)
    halo: Callable[..., Any] | None = field(repr=False, default=None)
    prepare: Callable[..., dict] | None = field(repr=False, default=None)
    out_dtype: Callable[..., np.dtype] = field(repr=False, default=None)
    frame_shape: Callable[..., tuple] | None = field(repr=False, default=None)
    vectorized: bool = False
    lifted: bool = True
    allow_complex: bool = False
    keeps: str = "all"
    resamples: bool = False
    display: dict = field(default_factory=dict, compare=False)
    summary: str = ""

    def display_for(self, key: str = "") -> dict:
        """napari layer keyword arguments suggested for an output (``key`` names an ``images`` output)."""
        return dict(self.display.get(key, {}))

    def __call__(self, image: Any, **params: Any) -> Any:
        return self.func(image, **params)

    def apply(self, image: Any, resolved: dict, *, device: str | None = None) -> Any:
        """Run with parameters already returned by :meth:`resolve` (global statistics not recomputed).

        A widget resolves once (and shows the values, e.g. the threshold),
        then previews planes and builds the whole-stack graph from the same values.
        """
        return _run(self, image, device, resolved, resolved=True)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"operation {self.name!r} has no parameter {name!r}")

    def bind(self, params: dict | None = None, *, recorded: bool = False) -> dict:
        """Complete ``params`` with defaults and validate each one (raises naming the parameter).

        With ``recorded=True`` (a recipe step), image parameters hold the
        ``{"layer": name}`` reference a recipe records instead of an array.
        """
        params = dict(params or {})
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise TypeError(
                f"{self.name}() got unknown parameter(s) {unknown}; it takes {sorted(known)}"
            )
        bound = {}
        for p in self.params:
            value = params.get(p.name, p.default)
            if value is inspect.Parameter.empty:
                raise TypeError(f"{self.name}() missing required parameter {p.name!r}")
            if recorded and p.kind is ImageRef and value is not None:
                if not (isinstance(value, dict) and isinstance(value.get("layer"), str)):
                    raise ValueError(f"{p.name} must be recorded as {{layer: <name>}}, got {value!r}")
                bound[p.name] = value
                continue
            bound[p.name] = p.check(value)
        return bound

    def resolve(self, image: Any, params: dict) -> dict:
        """Parameters with global statistics (a threshold, a reference) computed once."""
        return self.prepare(image, **params) if self.prepare is not None else params

    def dtype_for(self, in_dtype: Any, params: dict) -> np.dtype:
        """Output dtype for input of ``in_dtype`` (computed on native byte order, float16 as float32)."""
        return np.dtype(self.out_dtype(computable_dtype(in_dtype), **params))

    def step(self, params: dict, refs: dict | None = None) -> dict:
        """The recipe step for ``params``; image parameters are recorded by the name in ``refs``."""
        refs = refs or {}
        recorded = {}
        for p in self.params:
            if p.name not in params:
                continue
            value = params[p.name]
            if p.kind is ImageRef and value is not None:
                if p.name not in refs:
                    raise ValueError(f"{self.name}: name the image passed as {p.name!r} to record it in a recipe")
                value = {"layer": refs[p.name]}
            recorded[p.name] = value
        return {"op": self.name, "params": _plain(recorded)}

    @property
    def image_params(self) -> tuple[Param, ...]:
        """Parameters that take a second image."""
        return tuple(p for p in self.params if p.kind is ImageRef)

    def output_frame(self, in_shape: tuple, out_shape: tuple, frame: dict) -> dict:
        """Physical frame (scale, translate, units, axis_labels) of a result of shape ``out_shape``.

        ``frame`` holds the input's per-axis ``scale``, ``translate``, ``units``
        and ``axis_labels``. The output keeps the input axes named by
        :attr:`keeps` (all, the leading batch axes, or the trailing frame
        axes); axes it adds are unitless pixel axes; when :attr:`resamples`,
        a frame axis that changed length gets the pixel size ``scale * in / out``
        with the first pixel centre moved accordingly.
        """
        n_in, n_out = len(in_shape), len(out_shape)
        kept = {
            "all": list(range(n_in)),
            "batch": list(range(n_in - self.frame_ndim)),
            "frame": list(range(n_in - self.frame_ndim, n_in)),
        }[self.keeps][-n_out:] if n_out else []
        out = {key: [tuple(frame[key])[i] for i in kept] for key in ("scale", "translate", "units", "axis_labels")}
        if self.resamples and len(kept) == n_out:
            for j, i in enumerate(kept):
                if in_shape[i] != out_shape[j]:
                    old = out["scale"][j]
                    out["scale"][j] = old * in_shape[i] / out_shape[j]
                    out["translate"][j] += (out["scale"][j] - old) / 2
        for j in range(len(kept), n_out):
            out["scale"].append(1.0)
            out["translate"].append(0.0)
            out["units"].append("pixel")
            out["axis_labels"].append(f"{self.name}_{j - len(kept)}")
        return {key: tuple(value) for key, value in out.items()}

    @property
    def menu_id(self) -> str:
        return MENUS.get(self.menu, self.menu)


def _plain(value: Any) -> Any:
    """Recipe-safe (YAML) version of a parameter value."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _summary(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ").strip()


def operation(
    *,
    menu: str,
    frame_ndim: int = 2,
    output: str = "image",
    halo: Callable[..., Any] | None = None,
    prepare: Callable[..., dict] | None = None,
    dtype: Any = "float",
    frame_shape: Callable[..., tuple] | None = None,
    vectorized: bool = False,
    lift: bool = True,
    allow_complex: bool = False,
    keeps: Literal["all", "batch", "frame"] = "all",
    resamples: bool = False,
    display: dict | None = None,
    title: str | None = None,
    name: str | None = None,
) -> Callable[[Callable], Callable]:
    """Declare an operation; return its public, validated, lifted function.

    Parameters
    ----------
    menu : str
        Short napari Layers-menu name (see :data:`MENUS`) or a full menu id.
    frame_ndim : int
        Number of axes of the frame the kernel sees (2 or 3).
    output : {"image", "labels", "mask", "table", "transform", "points", "value"}
        What the operation returns; decides the napari layer type.
    halo : callable, optional
        ``halo(**params) -> int`` pixels of context the kernel needs; lets dask
        split frames into overlapping chunks. ``None`` keeps frames whole.
    prepare : callable, optional
        ``prepare(image, **params) -> params``: computes global statistics once
        over the whole input (or a chosen plane) before the lazy graph is built.
    dtype : {"float", "same", "bool", "labels"} or dtype or callable
        Output dtype rule (``"float"``: float32, or float64 for float64 input).
    frame_shape : callable, optional
        ``frame_shape(in_frame_shape, **params) -> out_frame_shape`` for kernels
        that change the frame size.
    vectorized : bool
        The kernel handles leading batch axes itself.
    lift : bool
        ``False`` for operations that are not frame maps (registration, tables):
        the function receives the whole input and does its own lifting.
    allow_complex : bool
        Accept complex input.
    keeps : {"all", "batch", "frame"}
        Which input axes the output keeps, for its pixel size, units and axis
        labels: all of them (filters), the leading batch axes (a virtual
        detector over a scan), or the trailing frame axes (a mean pattern).
    resamples : bool
        A change of frame size resamples the same field of view (resize, bin),
        so the pixel size changes; ``False`` for ops that pad or crop (rotate).
    display : dict, optional
        Suggested napari layer settings per output: ``{"": {...}}`` for a single
        output, ``{"phase": {"colormap": "twilight"}}`` for an ``images`` output.
    """
    if keeps not in ("all", "batch", "frame"):
        raise ValueError(f"keeps must be 'all', 'batch' or 'frame', got {keeps!r}")
    if output not in OUTPUT_KINDS:
        raise ValueError(f"output must be one of {OUTPUT_KINDS}, got {output!r}")

    def decorate(kernel: Callable) -> Callable:
        op_name = name or kernel.__name__
        # napari_stacklab.<family>[._private_module]
        parts = kernel.__module__.split(".")
        family = (parts[1] if len(parts) > 1 and parts[0] == "napari_stacklab" else parts[-1]).lstrip("_")
        signature = inspect.signature(kernel)
        hints = typing.get_type_hints(kernel, include_extras=True)
        parameters = list(signature.parameters.values())
        if not parameters or any(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in parameters[1:]):
            raise TypeError(f"operation {op_name!r}: the image comes first, every other parameter keyword-only")
        parameters[0] = parameters[0].replace(kind=inspect.Parameter.POSITIONAL_ONLY)
        params = tuple(
            _param_from_hint(p.name, hints.get(p.name, type(p.default)), p.default) for p in parameters[1:]
        )
        op = Operation(
            name=op_name,
            family=family,
            title=title or op_name.replace("_", " ").capitalize(),
            menu=menu,
            frame_ndim=frame_ndim,
            output=output,
            params=params,
            kernel=kernel,
            halo=halo,
            prepare=prepare,
            out_dtype=_dtype_rule(dtype),
            frame_shape=frame_shape,
            vectorized=vectorized,
            lifted=lift,
            allow_complex=allow_complex,
            keeps=keeps,
            resamples=resamples,
            display=dict(display or {}),
            summary=_summary(kernel.__doc__),
        )

        @functools.wraps(kernel)
        def public(image: Any, /, *, device: str | None = None, **params: Any) -> Any:
            return _run(op, image, device, params)

        public.__signature__ = signature.replace(
            parameters=parameters
            + [inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="str | None")]
        )
        public.operation = op
        object.__setattr__(op, "func", public)
        if op_name in _REGISTRY and _REGISTRY[op_name].kernel.__qualname__ != kernel.__qualname__:
            raise ValueError(f"two operations are both named {op_name!r}")
        _REGISTRY[op_name] = op
        return public

    return decorate


def _run(op: Operation, image: Any, device: str | None, params: dict, resolved: bool = False) -> Any:
    check_array(image)
    check_ndim(image, op.frame_ndim)
    check_numeric(image, allow_complex=op.allow_complex)
    params = op.bind(params)
    _check_per_frame(op, image, params)
    image = _computable(image)
    image = _backend.to_device(image, device)
    resolve = (lambda _image, given: given) if resolved else op.resolve
    if not _backend.on_gpu(image):
        return _build(op, image, resolve(image, _follow(op, params, image)))
    try:
        resolved_params = resolve(image, _follow(op, params, image))
        if _backend.is_dask(image):
            _probe_gpu(op, image, resolved_params)
        return _build(op, image, resolved_params)
    except _backend.gpu_failure_types() as exc:
        warnings.warn(
            f"{op.name}: the GPU could not run it ({exc}); running on the CPU instead.",
            _backend.GPUFallbackWarning,
            stacklevel=3,
        )
        host = _backend.to_numpy(image)
        return _build(op, host, resolve(host, _follow(op, params, host)))


def _block_fallback(op: Operation) -> Callable:
    """``op.kernel`` for the blocks of a lazy GPU graph: a block that runs out of GPU memory is computed on the CPU.

    The probe before a lazy graph is built uses a tiny input, so memory runs
    out only when real blocks are computed. Such a block is retried on the host
    (with a :class:`GPUFallbackWarning`) and its result copied back, so the
    graph still yields device chunks and no work is lost.
    """
    oom = _backend.gpu_failure_types()

    def run(block: Any, **params: Any) -> Any:
        try:
            return op.kernel(block, **params)
        except oom as exc:
            _backend.free_gpu_memory()
            why = "the GPU could not run" if isinstance(exc, _backend.NoGPUImplementation) else "did not fit on the GPU"
            warnings.warn(
                f"{op.name}: a block of shape {tuple(block.shape)} {why} ({exc}); it was computed on the CPU.",
                _backend.GPUFallbackWarning,
                stacklevel=2,
            )
            host_params = {k: _backend.to_numpy(v) if _backend.on_gpu(v) else v for k, v in params.items()}
            return _backend.to_device(op.kernel(_backend.to_numpy(block), **host_params), "gpu")

    return run


def _probe_gpu(op: Operation, image: Any, params: dict) -> None:
    """A lazy graph fails only when computed: run the kernel on a tiny device array now.

    Only a GPU failure (no GPU implementation, out of memory) is let through, so
    that the caller falls back to the CPU before building the graph; anything
    else a toy input provokes is left for the real computation to report.
    """
    tiny = _backend.tiny_like(image, op.frame_ndim if op.lifted else image.ndim)
    probe_params = {k: _backend.tiny_like(v, v.ndim) if _backend.is_dask(v) else v for k, v in params.items()}
    if op.lifted:  # images aligned with the input shrink with it (one frame of a per-frame stack)
        _, stacked = _split_per_frame(op, image, params)
        for p in op.image_params:
            value = stacked[p.name][(0,) * (image.ndim - op.frame_ndim)] if p.name in stacked else params.get(p.name)
            if p.per_frame and hasattr(value, "shape"):
                probe_params[p.name] = _backend.tiny_like(value, op.frame_ndim)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = op.kernel(tiny, **probe_params)
            for leaf in result.values() if isinstance(result, dict) else (result,):
                if _backend.is_dask(leaf):
                    _backend.materialize(leaf)  # a toy result: computing it is what probes the GPU
    except _backend.gpu_failure_types():
        raise
    except Exception:  # noqa: BLE001 - a toy input's own complaint is not a GPU failure
        return


def _check_per_frame(op: Operation, image: Any, params: dict) -> None:
    """A :class:`PerFrame` image has the frame shape or the input's shape; anything else is refused by name."""
    frame = tuple(image.shape[image.ndim - op.frame_ndim :])
    for p in op.image_params:
        value = params.get(p.name)
        if p.per_frame and hasattr(value, "shape") and tuple(value.shape) not in (frame, tuple(image.shape)):
            stack = f" or the image's shape {tuple(image.shape)} (one per frame)" if image.ndim > op.frame_ndim else ""
            raise ValueError(
                f"{p.name} must have the frame shape {frame}{' (used for every frame)' if stack else ''}{stack}, "
                f"got {tuple(value.shape)}"
            )


def _split_per_frame(op: Operation, image: Any, params: dict) -> tuple[dict, dict]:
    """``params`` without the :class:`PerFrame` images given one per frame, and those images."""
    stacked = {
        p.name: params[p.name] for p in op.image_params
        if p.per_frame and image.ndim > op.frame_ndim and tuple(getattr(params.get(p.name), "shape", ())) == tuple(image.shape)
    }
    return {k: v for k, v in params.items() if k not in stacked}, stacked


def _follow(op: Operation, params: dict, image: Any) -> dict:
    """``params`` with every image parameter (a reference, a mask) moved to the device ``image`` is on."""
    moved = dict(params)
    for p in op.image_params:
        if moved.get(p.name) is not None:
            moved[p.name] = _backend.like(moved[p.name], image)
    return moved


def _computable(image: Any) -> Any:
    """``image`` in a dtype every NumPy/SciPy kernel accepts (a lazy cast for dask, never in place).

    Big-endian data are byte-swapped to native order (kernels return native
    arrays, so the declared output dtype must be native too), and float16 is
    promoted to float32: scipy.ndimage's rank filters and morphology refuse it.
    """
    dtype = computable_dtype(image.dtype)
    return image if dtype == image.dtype else image.astype(dtype)


def computable_dtype(dtype: Any) -> np.dtype:
    """The dtype :func:`_computable` turns ``dtype`` into: native byte order, float16 as float32."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize == 2:
        return np.dtype(np.float32)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _build(op: Operation, image: Any, params: dict) -> Any:
    """Apply the operation with resolved parameters (lazily for dask input)."""
    if not op.lifted:
        return op.kernel(image, **params)
    depth = op.halo(**params) if op.halo is not None else None
    frame_shape = (
        op.frame_shape(tuple(image.shape[-op.frame_ndim :]), **params) if op.frame_shape is not None else None
    )
    kernel = op.kernel
    if _backend.is_dask(image) and _backend.on_gpu(image):
        kernel = _block_fallback(op)
    params, per_frame = _split_per_frame(op, image, params)
    return map_frames(
        kernel,
        image,
        frame_ndim=op.frame_ndim,
        depth=depth,
        dtype=op.dtype_for(image.dtype, params),
        frame_shape=frame_shape,
        vectorized=op.vectorized,
        per_frame=per_frame,
        **params,
    )


def _load_families() -> None:
    for family in FAMILIES:
        importlib.import_module(f"napari_stacklab.{family}")


def get(name: str) -> Operation:
    """The registered operation called ``name`` (raises ``KeyError`` listing the known names)."""
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no operation named {name!r}; known operations: {sorted(_REGISTRY)}") from None


def operations() -> list[Operation]:
    """Every registered operation: by family (in :data:`FAMILIES` order), then in declaration order.

    The order does not depend on which modules happened to be imported first,
    so the generated manifest and menus are stable.
    """
    _load_families()
    rank = {family: i for i, family in enumerate(FAMILIES)}
    declared = {name: i for i, name in enumerate(_REGISTRY)}
    return sorted(_REGISTRY.values(), key=lambda op: (rank.get(op.family, len(rank)), op.kernel.__module__,
                                                      declared[op.name]))
