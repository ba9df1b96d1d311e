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

An image with a colour or channel axis (:class:`~napari_stacklab.channels.Channels`)
goes through one more step first, :func:`_run_channels`: the operation's
channel policy decides whether each channel runs alone, the luminance runs,
whole colour frames run, or the operation takes the axis itself; every one of
these is an ordinary run of the steps above on an image without a channel
axis in its frames.

The engine knows operations only through the record it is handed: it never
imports the registry, which builds the public functions that call it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
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
from .channels import Channels, luminance, treatment
from .lift import map_frames

if TYPE_CHECKING:  # the record's type, for readers; the engine only reads its attributes
    from .registry import Operation

__all__ = ["Bound", "Plan", "OperationError", "run", "plan", "computable_dtype", "resolve_channels",
           "keeps_channels", "CHANNEL_KEYWORDS"]


class Bound(Mapping):
    """Parameters validated against one operation's declaration (made by ``Operation.bind``).

    The engine runs a ``Bound`` as it is and binds any other mapping itself,
    so parameters are validated once on every path: a recipe binds when it is
    made, a widget when its button is pressed, a Python call in the engine.
    ``resolved`` is true once the operation's ``prepare`` has run on them
    (``Operation.resolve``): global statistics are then not computed again.

    ``channels`` says which axis of the image they are for holds colour or
    channels (a property of the input, not a parameter: never recorded in a
    recipe). Resolved for an image whose channels run one by one, ``parts``
    holds each channel's resolved parameters (each channel its own statistics).
    """

    __slots__ = ("operation", "resolved", "channels", "parts", "_values")

    def __init__(self, operation: Any, values: Mapping, *, resolved: bool = False,
                 channels: Channels | None = None, parts: tuple | None = None) -> None:
        self.operation = operation
        self.resolved = resolved
        self.channels = channels
        self.parts = parts
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
        """A copy with some values replaced (already checked by the caller).

        Each channel's part gets the changes too, an array that carries the
        channel axis split to that channel.
        """
        parts = self.parts
        if parts is not None and changes:
            count = len(parts)
            parts = tuple(
                part.replace(**{k: _channel_value(v, self.channels.axis, c, count) for k, v in changes.items()})
                for c, part in enumerate(parts)
            )
        return Bound(self.operation, {**self._values, **changes}, resolved=self.resolved,
                     channels=self.channels, parts=parts)

    def with_channels(self, channels: Channels | None) -> Bound:
        """These parameters for an image with ``channels``; global statistics resolved for others are redone."""
        if channels == self.channels:
            return self
        return Bound(self.operation, self._values, channels=channels)


@dataclass(frozen=True)
class Plan:
    """How the lift runs an operation's kernel on one image.

    The operation's declaration evaluated for these parameters and this
    image: the place where a cost estimate (bytes and work from the shape,
    dtype and plan) can be checked before anything is computed. A channel
    axis never reaches a plan: :func:`_run_channels` has taken it out (or put
    it last, as one more axis of a colour frame) before.
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


def run(op: Operation, image: Any, params: Mapping | None = None, *, device: str | None = None,
        channels: Channels | None = None) -> Any:
    """Run ``op`` on ``image`` with ``params`` on ``device`` (default: where ``image`` is).

    ``params`` is a plain mapping (validated here), a :class:`Bound`
    (validated already) or a resolved :class:`Bound` (global statistics
    already computed: a widget resolves once, shows the values, then
    previews planes and runs the whole stack with them). ``channels`` (or
    the ``Bound``'s) names the image's colour or channel axis; the
    operation's channel policy decides what happens to it.
    """
    check_array(image)
    bound = params if isinstance(params, Bound) and params.operation is op else op.bind(params)
    if channels is not None or bound.channels is not None:  # a colour or channel axis: see _run_channels
        return _run_channels(op, image, bound if channels is None else bound.with_channels(channels), device)
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


# --- colour and channel axes --------------------------------------------------------------------
#: Keywords a kernel may declare to be told about the channel axis (filled by the engine, never parameters).
CHANNEL_KEYWORDS = ("channel_axis", "rgb")
_ARRAYS = ("image", "labels", "mask", "images")


def _run_channels(op: Operation, image: Any, bound: Bound, device: str | None) -> Any:
    """Run ``op`` on an image with a colour or channel axis, as its channel policy says.

    Every branch ends in an ordinary :func:`run` on an image whose frames hold
    no channel axis (or, for colour and native operations, hold it last, where
    the kernel expects it):

    - *split*: each channel alone, with its own statistics; the results go
      back on the channel axis (points get the channel as a coordinate, tables
      a ``channel`` column, values come one per channel);
    - *grey*: the luminance of a colour image (and of colour image parameters);
    - *colour*: whole colour frames, the colour axis last; an alpha channel
      is held back and put back;
    - *native*: the operation receives the axis, moved last.

    A display adjustment on an integer colour image returns the image's dtype,
    rounded and clipped to its range.
    """
    channels = bound.channels.checked(tuple(image.shape))
    how = _treatment(op, channels, image.shape)
    if how == "split":
        result = _each_channel(op, image, bound, channels, device)
    elif how == "grey":
        values = bound if bound.resolved else _channel_values(bound, image, channels, _grey_value)
        result = run(op, luminance(image, channels.axis), Bound(op, values, resolved=bound.resolved), device=device)
    else:
        result = _colour_frames(op, image, bound, channels, how, device)
    if op.display_adjustment and channels.rgb:
        result = _in_dtype(result, image.dtype)
    return result


def resolve_channels(op: Operation, image: Any, bound: Bound) -> Bound:
    """``bound`` resolved (``prepare`` run) for an image with a colour or channel axis, as :func:`run` uses it.

    Channels that run one by one are resolved one by one (``Bound.parts``);
    a luminance or colour run is resolved on the image it runs on.
    """
    channels = bound.channels.checked(tuple(image.shape))
    how = _treatment(op, channels, image.shape)
    axis, count = channels.axis, int(image.shape[channels.axis])
    if how == "split":
        parts = tuple(
            op.resolve(_channel(image, axis, c), Bound(op, _one_channel(bound, image, axis, c)))
            for c in range(count)
        )
        return Bound(op, bound, resolved=True, channels=channels, parts=parts)
    if how == "grey":
        values = _channel_values(bound, image, channels, _grey_value)
        found = op.resolve(luminance(image, axis), Bound(op, values)) if op.prepare is not None else values
    else:
        view, moved, values = _colour_view(op, image, bound, channels, how)
        found = view.resolve(moved, Bound(view, values))
    return Bound(op, found, resolved=True, channels=channels)


def keeps_channels(op: Operation, channels: Channels | None) -> bool:
    """Whether ``op``'s result keeps the channel axis of an input with ``channels`` (where it was)."""
    if channels is None or op.output not in _ARRAYS:
        return False
    return treatment(op.channels, channels) not in ("grey", "refused")


def _treatment(op: Operation, channels: Channels, shape: tuple) -> str:
    how = treatment(op.channels, channels)
    if how == "refused":
        what = "a colour image (rgb=True)" if channels.rgb else f"a channel axis (channel_axis={channels.axis})"
        raise ValueError(
            f"{op.name} refuses {what}, shape {tuple(shape)}: it works on single-channel data only. "
            f"Run it on one channel (take index k of axis {channels.axis}) or, for colour, on the "
            "luminance (napari_stacklab.channels.luminance)"
        )
    return how


def _channel(array: Any, axis: int, index: int) -> Any:
    return array[(slice(None),) * (axis % array.ndim) + (index,)]


def _carries(value: Any, image: Any, axis: int) -> bool:
    """An image parameter with the image's channel axis (a colour reference, a mask per channel)."""
    return (hasattr(value, "shape") and value.ndim == image.ndim
            and value.shape[axis] == image.shape[axis])


def _channel_value(value: Any, axis: int, index: int, count: int) -> Any:
    """For :meth:`Bound.replace` on a part: an array with ``count`` entries on ``axis`` gives channel ``index``."""
    if hasattr(value, "shape") and value.ndim >= -axis and value.shape[axis] == count:
        return _channel(value, axis, index)
    return value


def _channel_values(bound: Mapping, image: Any, channels: Channels, convert: Any) -> dict:
    return {k: convert(v, channels) if _carries(v, image, channels.axis) else v for k, v in bound.items()}


def _one_channel(bound: Mapping, image: Any, axis: int, index: int) -> dict:
    return {k: _channel(v, axis, index) if _carries(v, image, axis) else v for k, v in bound.items()}


def _grey_value(value: Any, channels: Channels) -> Any:
    """A colour image parameter in grey: its luminance, or for a mask, any channel set."""
    if np.dtype(value.dtype) == np.bool_:
        return value.any(axis=channels.axis)
    return luminance(value, channels.axis)


def _each_channel(op: Operation, image: Any, bound: Bound, channels: Channels, device: str | None) -> Any:
    axis, count = channels.axis, int(image.shape[channels.axis])
    results = []
    for c in range(count):
        part = bound.parts[c] if bound.parts is not None else Bound(op, _one_channel(bound, image, axis, c))
        results.append(run(op, _channel(image, axis, c), part, device=device))
    return _joined(op, results, channels, image.ndim)


def _joined(op: Operation, results: list, channels: Channels, ndim: int) -> Any:
    """Per-channel results as one: arrays stacked on the channel axis, points and tables marked."""
    first, axis = results[0], channels.axis
    if op.output in ("image", "labels", "mask"):
        return _backend.array_module(first).stack(results, axis=axis)
    if op.output == "images":
        return {key: _backend.array_module(first[key]).stack([r[key] for r in results], axis=axis)
                for key in first}
    if op.output == "points":
        return np.concatenate([_with_coordinate(points, axis % ndim, c) for c, points in enumerate(results)])
    if op.output == "table" and isinstance(first, dict):
        names = channels.names_for(len(results))
        rows = [len(next(iter(t.values()), ())) for t in results]
        columns = {"channel": np.concatenate([np.full(n, name) for n, name in zip(rows, names)])}
        columns.update({key: np.concatenate([np.asarray(t[key]) for t in results]) for key in first})
        units = getattr(first, "units", None)
        return type(first)(columns, units={"channel": "", **units}) if units is not None else columns
    if op.output == "value":
        return np.asarray(results)
    return results


def _with_coordinate(points: Any, position: int, index: int) -> np.ndarray:
    points = np.asarray(_backend.to_numpy(points), dtype=np.float64)
    return np.insert(points, position, float(index), axis=1)


def _colour_frames(op: Operation, image: Any, bound: Bound, channels: Channels, how: str,
                   device: str | None) -> Any:
    view, moved, values = _colour_view(op, image, bound, channels, how)
    if bound.resolved:
        values = dict(bound)
    alpha = None
    if how == "colour" and image.shape[channels.axis] == 4:
        alpha = _backend.array_module(image).moveaxis(image, channels.axis, -1)[..., 3:]
    result = run(view, moved, Bound(view, values, resolved=bound.resolved), device=device)
    if op.output not in _ARRAYS:
        return result
    if isinstance(result, dict):  # several arrays: those with the channel axis (last) get it back in its place
        return {key: _channel_axis_back(op, value, alpha, channels) if value.ndim == moved.ndim else value
                for key, value in result.items()}
    return _channel_axis_back(op, result, alpha, channels)


def _channel_axis_back(op: Operation, result: Any, alpha: Any, channels: Channels) -> Any:
    """A result with the channel axis last: the held-back alpha channel put back, the axis moved where it was."""
    xp = _backend.array_module(result)
    if alpha is not None:
        alpha = _backend.like(alpha if op.display_adjustment else _as_opacity(alpha), result)
        result = xp.concatenate([result, alpha.astype(result.dtype)], axis=-1)
    return xp.moveaxis(result, -1, channels.axis)


def _colour_view(op: Operation, image: Any, bound: Mapping, channels: Channels, how: str) -> tuple:
    """``op`` seen through colour frames: the record, the image (colour last) and the parameters."""

    def moved(array: Any) -> Any:  # channels last; a colour operation sees no alpha
        array = _backend.array_module(array).moveaxis(array, channels.axis, -1)
        return array if how == "native" else array[..., :3]

    values = {k: moved(v) if _carries(v, image, channels.axis) else v for k, v in bound.items()}
    colour = moved(image)
    if _backend.is_dask(colour):  # a colour frame is never split between chunks
        colour = colour.rechunk({colour.ndim - 1: -1})
    return _channel_operation(op, how, channels), colour, values


def _channel_operation(op: Operation, how: str, channels: Channels) -> Operation:
    """The record of ``op`` whose kernel sees frames with the channel axis last, and is told so."""
    declared = inspect.signature(op.kernel).parameters
    told = {key: value for key, value in (("channel_axis", -1), ("rgb", channels.rgb)) if key in declared}
    changes: dict = {"kernel": functools.partial(op.kernel, **told) if told else op.kernel}
    if how == "colour" and op.lifted:
        changes["frame_rule"] = lambda **params: op.frame_ndim_for(params) + 1
        changes["halo"] = None if op.halo is None else (
            lambda **params: _halo_with_channel(op.halo_for(params), op.frame_ndim_for(params)))
        if op.frame_shape is not None:
            changes["frame_shape"] = lambda in_frame, **params: (
                *op.frame_shape_for(in_frame[:-1], params), in_frame[-1])
    return dataclasses.replace(op, **changes)


def _halo_with_channel(halo: Any, frame_ndim: int) -> Any:
    """A halo for frames with the colour axis appended: none along it."""
    if halo is None:
        return None
    per_axis = (halo,) * frame_ndim if np.isscalar(halo) else tuple(halo)
    return (*per_axis, 0)


def _as_opacity(alpha: Any) -> Any:
    """An alpha channel as opacity in [0, 1] (integers divided by their dtype's maximum)."""
    dtype = np.dtype(alpha.dtype)
    if dtype.kind in "iu":
        return alpha / float(np.iinfo(dtype).max)
    return alpha


def _in_dtype(result: Any, dtype: Any) -> Any:
    """``result`` rounded, clipped and cast to an integer ``dtype`` (a display adjustment of a colour image)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or not hasattr(result, "dtype") or np.dtype(result.dtype) == dtype:
        return result
    info = np.iinfo(dtype)
    xp = _backend.array_module(result)
    return xp.clip(xp.rint(result), info.min, info.max).astype(dtype)


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
