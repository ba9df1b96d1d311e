"""The engine: runs one declared operation on one image.

:mod:`napari_stacklab.registry` says *what* an operation is (its parameters,
frame, halo, dtype rule); this module *runs* it, in one pass that only goes
down::

    run(op, image, params, device=...)
      1. bind      validate the parameters against the declaration, unless
                   they come already bound (:class:`Bound`, from a recipe or a widget);
                   the ranges the image sets and the cost of one kernel call are
                   checked against the caps (:mod:`napari_stacklab.costs`)
      2. place     the image on the device asked for; image parameters follow it
      3. resolve   the operation's ``prepare`` computes global statistics once
      4. plan      frame dimensionality, halo, output dtype and frame shape,
                   images given one per frame (:class:`Plan`)
      5. build     :func:`napari_stacklab.lift.map_frames` lifts the kernel over
                   the batch axes (lazy for dask input)

An error raised inside a library the operation calls (SciPy, scikit-image: a
RuntimeError, an OverflowError, an IndexError, a broadcast error) is re-raised
once, here, as an :class:`OperationError` (a ``ValueError``) naming the
operation, its parameters and the parameter the message mentions; errors of
the project's own checks pass unchanged.

A GPU failure (no GPU implementation, out of memory) reruns the operation on
the CPU with the policy of :mod:`napari_stacklab._backend`; before a lazy GPU
graph is built, the kernel is probed on a tiny device array so that the
fallback happens now rather than when the graph is computed.

The engine knows operations only through the record it is handed: it never
imports the registry, which builds the public functions that call it.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from collections.abc import Iterator

import numpy as np

from . import _backend, costs
from ._validation import check_array, check_ndim, check_numeric
from .lift import map_frames

if TYPE_CHECKING:  # the record's type, for readers; the engine only reads its attributes
    from .registry import Operation

__all__ = ["Bound", "Plan", "OperationError", "run", "plan", "computable_dtype"]


class Bound(Mapping):
    """Parameters validated against one operation's declaration (made by ``Operation.bind``).

    The engine runs a ``Bound`` as it is and binds any other mapping itself,
    so parameters are validated once on every path: a recipe binds when it is
    made, a widget when its button is pressed, a Python call in the engine.
    ``resolved`` is true once the operation's ``prepare`` has run on them
    (``Operation.resolve``): global statistics are then not computed again.
    """

    __slots__ = ("operation", "resolved", "_values")

    def __init__(self, operation: Any, values: Mapping, *, resolved: bool = False) -> None:
        self.operation = operation
        self.resolved = resolved
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        state = "resolved" if self.resolved else "bound"
        return f"<{state} {getattr(self.operation, 'name', '?')} {self._values!r}>"

    def replace(self, **changes: Any) -> Bound:
        """A copy with some values replaced (already checked by the caller)."""
        return Bound(self.operation, {**self._values, **changes}, resolved=self.resolved)


@dataclass(frozen=True)
class Plan:
    """How the lift runs an operation's kernel on one image.

    The operation's declaration evaluated for these parameters and this
    image: the place where a cost estimate (bytes and work from the shape,
    dtype and plan) can be checked before anything is computed, and where a
    channel axis would be kept out of the frame axes.
    """

    frame_ndim: int
    halo: Any
    dtype: np.dtype
    frame_shape: tuple | None
    per_frame: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


def computable_dtype(dtype: Any) -> np.dtype:
    """The dtype kernels receive for ``dtype``: native byte order, float16 as float32.

    Kernels return native arrays, so the declared output dtype must be native
    too; scipy.ndimage's rank filters and morphology refuse float16.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize == 2:
        return np.dtype(np.float32)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _computable(image: Any) -> Any:
    """``image`` in :func:`computable_dtype` (a lazy cast for dask, never in place)."""
    dtype = computable_dtype(image.dtype)
    return image if dtype == image.dtype else image.astype(dtype)


def run(op: Operation, image: Any, params: Mapping | None = None, *, device: str | None = None) -> Any:
    """Run ``op`` on ``image`` with ``params`` on ``device`` (default: where ``image`` is).

    ``params`` is a plain mapping (validated here), a :class:`Bound`
    (validated already) or a resolved :class:`Bound` (global statistics
    already computed: a widget resolves once, shows the values, then
    previews planes and runs the whole stack with them).
    """
    check_array(image)
    bound = params if isinstance(params, Bound) and params.operation is op else op.bind(params)
    frame_ndim = op.frame_ndim_for(bound)
    _check_frames(op, image, bound, frame_ndim)
    check_numeric(image, allow_complex=op.allow_complex)
    _check_per_frame(op, image, bound, frame_ndim)
    _check_cost(op, image, bound, frame_ndim)
    image = _backend.to_device(_computable(image), device)
    if not _backend.on_gpu(image):
        return _build(op, image, _resolved(op, image, bound, frame_ndim), frame_ndim)
    try:
        resolved = _resolved(op, image, bound, frame_ndim)
        if _backend.is_dask(image):
            _probe_gpu(op, image, resolved, frame_ndim)
        return _build(op, image, resolved, frame_ndim)
    except _backend.gpu_failure_types() as exc:
        _backend.warn_fallback(op.name, exc, stacklevel=3)
        host = _backend.to_numpy(image)
        return _build(op, host, _resolved(op, host, bound, frame_ndim), frame_ndim)


def _check_frames(op: Operation, image: Any, params: Mapping, frame_ndim: int) -> None:
    """``image`` holds at least one frame; when a parameter made the frames 3-D, the error names it."""
    deciding = {name: params[name] for name in op.frame_parameters if name in params}
    if image.ndim < frame_ndim and deciding:
        given = ", ".join(f"{name}={value!r}" for name, value in deciding.items())
        raise ValueError(f"{given} needs an image with at least {frame_ndim} axes, got shape {tuple(image.shape)}")
    check_ndim(image, frame_ndim)


def _resolved(op: Operation, image: Any, bound: Bound, frame_ndim: int) -> Bound:
    """``bound`` with its images on ``image``'s device and, unless done already, ``prepare`` run."""
    placed = _place_images(op, image, bound, frame_ndim)
    if placed.resolved:
        return placed
    try:
        return op.resolve(image, placed)
    except _TRANSLATED as exc:
        _raise_translated(exc, op.name, placed, image)


def _place_images(op: Operation, image: Any, bound: Bound, frame_ndim: int) -> Bound:
    """Every array parameter moved to where ``image`` is.

    For a lifted operation an image parameter not given one per frame (a
    reference, a template, a frame-shaped mask) is read into memory here,
    once, instead of in every block of the graph.
    """
    read_once = {p.name for p in op.image_params} - set(_stacked(op, image, bound, frame_ndim)) if op.lifted else set()
    moved = {}
    for name, value in bound.items():
        if not hasattr(value, "shape"):
            continue
        if name in read_once:
            value = _backend.compute_here(value)
        moved[name] = _backend.like(value, image)
    return bound.replace(**moved) if moved else bound


def plan(op: Operation, image: Any, params: Mapping, frame_ndim: int | None = None) -> Plan:
    """The :class:`Plan` of a lifted operation for resolved ``params`` on ``image``."""
    frame_ndim = op.frame_ndim_for(params) if frame_ndim is None else frame_ndim
    per_frame = _stacked(op, image, params, frame_ndim)
    rest = {k: v for k, v in params.items() if k not in per_frame}
    frame = tuple(image.shape[image.ndim - frame_ndim:])
    return Plan(
        frame_ndim=frame_ndim,
        halo=op.halo_for(rest),
        dtype=op.dtype_for(image.dtype, rest),
        frame_shape=op.frame_shape_for(frame, rest),
        per_frame=per_frame,
        params=rest,
    )


def _build(op: Operation, image: Any, params: Bound, frame_ndim: int) -> Any:
    """The result of the kernel on every frame (lazily for dask input)."""
    if not op.lifted:
        return _translating(op.kernel, op.name)(image, **params)
    how = plan(op, image, params, frame_ndim)
    kernel, frame_shape = _translating(op.kernel, op.name), how.frame_shape
    if op.parts:  # the parts travel as one array, on an axis before the frame axes, and are split after
        out_frame = frame_shape or tuple(image.shape[image.ndim - frame_ndim:])
        kernel, frame_shape = _stacked_parts(kernel, op.parts, len(out_frame)), (len(op.parts), *out_frame)
    if _backend.is_dask(image) and _backend.on_gpu(image):
        kernel = _backend.on_host_after_gpu_failure(kernel, op.name)
    result = map_frames(
        kernel,
        image,
        frame_ndim=frame_ndim,
        depth=how.halo,
        dtype=how.dtype,
        frame_shape=frame_shape,
        vectorized=op.vectorized,
        per_frame=how.per_frame,
        **how.params,
    )
    if not op.parts:
        return result
    frame_axes = (slice(None),) * (len(frame_shape) - 1)
    return {part: result[(Ellipsis, i, *frame_axes)] for i, part in enumerate(op.parts)}


def _stacked_parts(kernel: Any, parts: tuple, out_ndim: int) -> Any:
    """A kernel returning ``{part: frame}`` as one array, the parts on an axis before the ``out_ndim`` frame axes."""

    def stacked(frame: Any, **params: Any) -> Any:
        found = kernel(frame, **params)
        return _backend.array_module(found[parts[0]]).stack([found[part] for part in parts], axis=-(out_ndim + 1))

    return stacked


def _probe_gpu(op: Operation, image: Any, params: Bound, frame_ndim: int) -> None:
    """A lazy graph fails only when computed: run the kernel on a tiny device array now.

    Only a GPU failure (no GPU implementation, out of memory) is let through, so
    that the caller falls back to the CPU before building the graph; anything
    else a toy input provokes is left for the real computation to report.
    """
    tiny = _backend.tiny_like(image, frame_ndim if op.lifted else image.ndim)
    probe_params = {k: _backend.tiny_like(v, v.ndim) if _backend.is_dask(v) else v for k, v in params.items()}
    if op.lifted:  # images aligned with the input shrink with it (one frame of a per-frame stack)
        stacked = _stacked(op, image, params, frame_ndim)
        for p in op.image_params:
            value = stacked[p.name][(0,) * (image.ndim - frame_ndim)] if p.name in stacked else params.get(p.name)
            if p.per_frame and hasattr(value, "shape"):
                probe_params[p.name] = _backend.tiny_like(value, frame_ndim)
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


def _check_per_frame(op: Operation, image: Any, params: Mapping, frame_ndim: int) -> None:
    """A ``PerFrame`` image has the frame shape or the input's shape; anything else is refused by name."""
    frame = tuple(image.shape[image.ndim - frame_ndim:])
    for p in op.image_params:
        value = params.get(p.name)
        if p.per_frame and hasattr(value, "shape") and tuple(value.shape) not in (frame, tuple(image.shape)):
            stack = f" or the image's shape {tuple(image.shape)} (one per frame)" if image.ndim > frame_ndim else ""
            raise ValueError(
                f"{p.name} must have the frame shape {frame}{' (used for every frame)' if stack else ''}{stack}, "
                f"got {tuple(value.shape)}"
            )


def _stacked(op: Operation, image: Any, params: Mapping, frame_ndim: int) -> dict:
    """The ``PerFrame`` images given one per frame (with the input's whole shape)."""
    if image.ndim <= frame_ndim:
        return {}
    return {
        p.name: params[p.name] for p in op.image_params
        if p.per_frame and tuple(getattr(params.get(p.name), "shape", ())) == tuple(image.shape)
    }


# -- cost model (issue 19): ranges the image sets, memory and time of one kernel call ---------------------------


def _check_cost(op: Operation, image: Any, params: Mapping, frame_ndim: int) -> None:
    """Refuse, before anything is computed, parameters outside the image's ranges or a call past the caps."""
    shape = tuple(int(s) for s in image.shape)
    frame = shape[len(shape) - frame_ndim:]
    dtype = computable_dtype(image.dtype)
    for name, limit in op.limits_for(frame, dtype, params).items():
        _check_limit(op.name, name, params.get(name), limit, frame)
    call = _call_shape(op, image, params, frame_ndim)
    cost = op.cost_for(call, dtype, params)
    frames = math.prod(call[: len(call) - frame_ndim])
    if len(call) == frame_ndim:
        what = f"a {call} {dtype} frame"
    else:
        what = f"{'a chunk' if _backend.is_dask(image) else 'an input'} of {call} {dtype}"
    costs.check(op.name, cost, what=what, frames=frames, result=_result_bytes(op, image, params, frame_ndim, call))


def _call_shape(op: Operation, image: Any, params: Mapping, frame_ndim: int) -> tuple:
    """The shape one kernel call receives: a frame, a block of frames, a dask chunk with its halo."""
    shape = tuple(int(s) for s in image.shape)
    n_batch = len(shape) - frame_ndim
    batch, frame = shape[:n_batch], shape[n_batch:]
    if _backend.is_dask(image):
        chunks = image.chunks
        batch = tuple(max(c) for c in chunks[:n_batch])
        halo = op.halo_for(params) if op.lifted and op.frame_shape is None else None
        if halo is not None:
            halos = (halo,) * frame_ndim if np.isscalar(halo) else tuple(halo)
            frame = tuple(n if int(h) >= n else min(n, max(c) + 2 * int(h))
                          for n, c, h in zip(frame, chunks[n_batch:], halos))
    if op.lifted and not op.vectorized:
        return frame
    return batch + frame


def _result_bytes(op: Operation, image: Any, params: Mapping, frame_ndim: int, call: tuple) -> int:
    """Bytes of the result held with one call: one chunk's for dask input, all of it for in-memory input."""
    if not op.lifted:
        return 0  # the operation's own rule counts it
    how = plan(op, image, params, frame_ndim)
    frame = how.frame_shape if how.frame_shape is not None else tuple(image.shape[image.ndim - frame_ndim:])
    parts = max(1, len(op.parts))
    batch = tuple(image.shape[: image.ndim - frame_ndim])
    if _backend.is_dask(image):  # one block of frames
        batch = tuple(max(c) for c in image.chunks[: image.ndim - frame_ndim])
    return costs.nbytes((parts, *batch, *frame), how.dtype)


def _check_limit(name: str, param: str, value: Any, limit: Any, frame: tuple) -> None:
    """``value`` of ``param`` within ``limit`` (a Range, bounds per element for a tuple), or a ValueError."""
    if value is None or isinstance(value, (str, bool)) or not isinstance(value, (int, float, tuple, np.number)):
        return
    values = value if isinstance(value, tuple) else (value,)
    lows = limit.low if isinstance(limit.low, tuple) else (limit.low,) * len(values)
    highs = limit.high if isinstance(limit.high, tuple) else (limit.high,) * len(values)
    for v, low, high in zip(values, lows, highs):
        below = low is not None and (v < low or (v == low and not limit.low_inclusive))
        if below or (high is not None and v > high):
            bounds = _range_text(limit.low, limit.high, limit.low_inclusive)
            why = f" ({limit.reason})" if limit.reason else ""
            raise ValueError(
                f"{name}: {param} must be {bounds}{why} for a frame of shape {frame}, got {_short(value)}"
            )


def _range_text(low: Any, high: Any, inclusive: bool) -> str:
    def text(bound: Any) -> str:
        return f"({', '.join(f'{b:g}' for b in bound)})" if isinstance(bound, tuple) else f"{bound:g}"

    if isinstance(low, tuple) != isinstance(high, tuple):  # one bound per element: show both so
        low, high = (b if isinstance(b, tuple) or b is None else (b,) * len(low if isinstance(low, tuple) else high)
                     for b in (low, high))
    if low is None:
        return f"<= {text(high)}"
    if high is None:
        return f"{'>=' if inclusive else '>'} {text(low)}"
    return f"in [{text(low)}, {text(high)}]" if inclusive else f"in ({text(low)}, {text(high)}]"


# -- third-party errors, translated once at the operation boundary ---------------------------------------------


class OperationError(ValueError):
    """A library an operation calls (SciPy, scikit-image, ...) failed on these values.

    Raised from the library's own error (``__cause__``), naming the
    operation, its parameters and, when the library's message mentions one,
    the parameter to change.
    """


#: What a library raises when values do not work: errors of arithmetic, indexing, lookups, runtime
#: checks and value checks (a broadcast error is a ValueError). TypeErrors keep their class.
_TRANSLATED = (ArithmeticError, LookupError, RuntimeError, AssertionError, ValueError)
_PACKAGE = __name__.rpartition(".")[0]


def _translating(kernel: Any, name: str) -> Any:
    """``kernel`` with a library's errors re-raised as :class:`OperationError` (picklable, same token each time)."""
    return functools.partial(_call_translated, kernel, name)


def _call_translated(kernel: Any, name: str, frame: Any, **params: Any) -> Any:
    try:
        return kernel(frame, **params)
    except _TRANSLATED as exc:
        _raise_translated(exc, name, params, frame)


def _raise_translated(exc: BaseException, name: str, params: Mapping, image: Any) -> None:
    """Re-raise ``exc`` as an :class:`OperationError` unless it is the project's own.

    The project's own: an exception of one of its classes, a GPU failure (the
    engine falls back on it), or a ``ValueError``/``TypeError`` raised in its
    code (its checks). Anything else raised in its code (a ``ZeroDivisionError``,
    an ``IndexError``) is a value it did not check, and is translated too.
    """
    origin = _origin(exc)
    own_class = type(exc).__module__.startswith(_PACKAGE)
    checked = origin is None and isinstance(exc, (ValueError, TypeError))
    if own_class or checked or isinstance(exc, _backend.gpu_failure_types()):
        raise exc
    origin = origin or name
    public = {k: v for k, v in params.items() if not k.startswith("_")}
    named = [k for k in public if re.search(rf"\b{re.escape(k)}\b", str(exc))]
    culprit = f" (check {', '.join(f'{k}={_short(public[k])}' for k in named)})" if named else ""
    given = ", ".join(f"{k}={_short(v)}" for k, v in public.items())
    raise OperationError(
        f"{name} failed in {origin} on {tuple(image.shape)} {image.dtype}{culprit}: "
        f"{type(exc).__name__}: {_cut(str(exc), 300)} [parameters: {given}]"
    ) from exc


def _origin(exc: BaseException) -> str | None:
    """The library that raised ``exc`` (its innermost frame's module), or None when it is this project."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    if module == _PACKAGE or module.startswith(_PACKAGE + "."):
        return None
    return module.rpartition("._")[0] or module or "a library"


def _short(value: Any) -> str:
    """A value for a message: an array by its shape and dtype, anything else its repr cut to 200 characters."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"<array {tuple(value.shape)} {value.dtype}>"
    return _cut(repr(value), 200)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
