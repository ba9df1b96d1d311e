"""The engine: runs one declared operation on one image.

:mod:`napari_stacklab.registry` says *what* an operation is (its parameters,
frame, halo, dtype rule); this module *runs* it, in one pass that only goes
down::

    run(op, image, params, device=...)
      1. bind      validate the parameters against the declaration, unless
                   they come already bound (:class:`Bound`, from a recipe or a widget)
      2. place     the image on the device asked for; image parameters follow it
      3. resolve   the operation's ``prepare`` computes global statistics once
      4. plan      frame dimensionality, halo, output dtype and frame shape,
                   images given one per frame (:class:`Plan`)
      5. build     :func:`napari_stacklab.lift.map_frames` lifts the kernel over
                   the batch axes (lazy for dask input)

A GPU failure (no GPU implementation, out of memory) reruns the operation on
the CPU with the policy of :mod:`napari_stacklab._backend`; before a lazy GPU
graph is built, the kernel is probed on a tiny device array so that the
fallback happens now rather than when the graph is computed.

The engine knows operations only through the record it is handed: it never
imports the registry, which builds the public functions that call it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from collections.abc import Iterator

import numpy as np

from . import _backend
from ._validation import check_array, check_ndim, check_numeric
from .lift import map_frames

if TYPE_CHECKING:  # the record's type, for readers; the engine only reads its attributes
    from .registry import Operation

__all__ = ["Bound", "Plan", "run", "plan", "computable_dtype"]


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
    return placed if placed.resolved else op.resolve(image, placed)


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
        return op.kernel(image, **params)
    how = plan(op, image, params, frame_ndim)
    kernel, frame_shape = op.kernel, how.frame_shape
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
