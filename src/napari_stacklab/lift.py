"""Lift a function of one frame over the batch axes of a stack, lazily.

A *frame* is the 2-D (or 3-D) image a kernel understands: a plane of a time
lapse, a volume of a time series, one diffraction pattern of a 4D-STEM scan.
Every other axis is a *batch* axis (time, z, channel, scan position) and is
never mixed into the computation.

- eager in (NumPy, CuPy) -> eager out, frame by frame;
- dask in -> dask out, nothing computed: whole frames per chunk
  (``map_blocks``), or, when the kernel declares a halo, frames split into
  overlapping chunks (``map_overlap`` with ``boundary='none'``, so the kernel's
  own edge mode decides what happens at the true image border).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any
from collections.abc import Callable, Sequence

import numpy as np

from . import _backend
from ._validation import check_array, check_number
from .frames import frame_at, frame_chunks, frame_source, grouped_frame_chunks, iter_frame_indices, split_batches

__all__ = ["map_frames", "reduce_frames", "frame_at", "frame_chunks", "frame_axes_for", "iter_frame_indices"]


def frame_axes_for(ndim: int, frame_ndim: int, frame_axes: Sequence[int] | None) -> tuple[int, ...]:
    """Normalise ``frame_axes`` (default: the last ``frame_ndim`` axes) to positive indices."""
    if frame_axes is None:
        return tuple(range(ndim - frame_ndim, ndim))
    axes = tuple(int(a) % ndim if -ndim <= int(a) < ndim else _bad_axis(a, ndim) for a in frame_axes)
    if len(axes) != frame_ndim or len(set(axes)) != frame_ndim:
        raise ValueError(
            f"frame_axes must name {frame_ndim} distinct axes of a {ndim}-D array, got {tuple(frame_axes)}"
        )
    return axes


def _bad_axis(axis: Any, ndim: int) -> int:
    raise ValueError(f"frame axis {axis} is out of range for a {ndim}-D array")


def _check(data: Any, frame_ndim: int) -> None:
    check_array(data, "data")
    check_number("frame_ndim", frame_ndim, low=1, integer=True)
    if data.ndim < frame_ndim:
        raise ValueError(
            f"data must have at least frame_ndim={frame_ndim} dimensions, got shape {tuple(data.shape)}"
        )


def _trailing(ndim: int, count: int) -> tuple[int, ...]:
    return tuple(range(ndim - count, ndim))


def _to_end(data: Any, axes: tuple[int, ...]) -> Any:
    """Move the frame axes to the end (a no-op when they are already there)."""
    end = _trailing(data.ndim, len(axes))
    return data if axes == end else _backend.array_module(data).moveaxis(data, axes, end)


def _from_end(result: Any, axes: tuple[int, ...]) -> Any:
    """Undo :func:`_to_end` on a result with the same number of frame axes."""
    end = _trailing(result.ndim, len(axes))
    return result if axes == end else _backend.array_module(result).moveaxis(result, end, axes)


def _map_eager(data: Any, *arrays: Any, func: Callable, frame_ndim: int, vectorized: bool, params: dict,
               names: tuple[str, ...] = ()) -> Any:
    """Apply ``func`` to every frame of an in-memory stack whose frame axes are last.

    Each name in ``names`` takes the frame of the array beside it (``arrays``)
    that matches the frame computed.
    """
    if (vectorized and not names) or data.ndim == frame_ndim:
        return func(data, **params, **dict(zip(names, arrays)))
    xp, _ = _backend.get_namespace(data)
    batch_shape = data.shape[: data.ndim - frame_ndim]
    out = None
    for index in iter_frame_indices(batch_shape):
        value = func(data[index], **params, **{name: array[index] for name, array in zip(names, arrays)})
        value = value if hasattr(value, "dtype") else xp.asarray(value)  # a reduction may return a Python number
        if out is None:
            out = _backend.get_namespace(value)[0].empty(tuple(batch_shape) + tuple(value.shape), dtype=value.dtype)
        out[index] = value
    return out


def _probe(func: Callable, data: Any, frame_ndim: int, vectorized: bool, params: dict) -> Any:
    """Run ``func`` on a tiny all-zero frame to learn its output dtype (never on real data)."""
    xp, _ = _backend.get_namespace(data)
    small = tuple(min(int(s), 16) for s in data.shape[-frame_ndim:])
    shape = ((1,) * (data.ndim - frame_ndim) + small) if vectorized else small
    return func(xp.zeros(shape, dtype=data.dtype), **params)


def map_frames(
    func: Callable,
    data: Any,
    *,
    frame_ndim: int = 2,
    frame_axes: Sequence[int] | None = None,
    depth: int | Sequence[int] | None = None,
    dtype: Any = None,
    frame_shape: Sequence[int] | None = None,
    vectorized: bool = False,
    per_frame: dict[str, Any] | None = None,
    **params: Any,
) -> Any:
    """Apply ``func(frame, **params)`` to every frame of ``data``.

    Parameters
    ----------
    func : callable
        Kernel taking one frame of shape ``(M, N)`` (or ``(P, M, N)`` for
        ``frame_ndim=3``) and returning one array. It must not mutate its input.
    data : array, shape ``(..., M, N)``
        NumPy, CuPy or dask array. Leading axes are batch axes.
    frame_ndim : int
        Number of axes in a frame.
    frame_axes : sequence of int, optional
        Which axes form a frame (default: the last ``frame_ndim``). The output
        keeps the input's axis order.
    depth : int or sequence of int, optional
        Halo the kernel needs along each frame axis. ``None`` keeps frames
        whole in every chunk; an integer lets dask split frames into
        overlapping chunks.
    dtype : dtype, optional
        Output dtype. Given by every registry operation; otherwise learned by
        running ``func`` on a tiny zero frame.
    frame_shape : sequence of int, optional
        Output frame shape when it differs from the input's (binning,
        resizing); requires ``depth=None``.
    vectorized : bool
        ``func`` accepts the batch axes itself (it must treat them as
        independent frames); skips the Python loop over frames.
    per_frame : dict of str to array, optional
        Keyword arguments that differ from frame to frame: arrays of the
        shape of ``data`` (a mask per frame, say); ``func`` receives the frame
        of each that matches the frame it computes. Lazy ones stay lazy.
    **params
        Keyword arguments passed to ``func``.

    Returns
    -------
    array
        Same kind as ``data`` (dask stays lazy; nothing is computed).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> stack = np.zeros((3, 8, 8)); stack[:, 4, 4] = 1
    >>> out = map_frames(ndi.gaussian_filter, stack, sigma=1)
    >>> out.shape, bool(np.allclose(out[0], ndi.gaussian_filter(stack[0], sigma=1)))
    ((3, 8, 8), True)
    """
    _check(data, frame_ndim)
    axes = frame_axes_for(data.ndim, frame_ndim, frame_axes)
    out_frame = None if frame_shape is None else tuple(int(s) for s in frame_shape)
    reshaped = out_frame is not None and len(out_frame) != frame_ndim
    if reshaped and axes != _trailing(data.ndim, frame_ndim):
        raise ValueError("a kernel that changes the number of frame axes needs the frame axes last")
    if out_frame is not None and depth is not None:
        raise ValueError("frame_shape (a shape-changing kernel) cannot be combined with a halo depth")
    moved = _to_end(data, axes)
    names = tuple(per_frame or {})
    extra = [_to_end(_per_frame_array(name, array, data), axes) for name, array in (per_frame or {}).items()]
    kernel = functools.partial(_map_eager, func=func, frame_ndim=frame_ndim, vectorized=vectorized,
                               params=params, names=names)
    if not _backend.is_dask(moved):
        extra = [_backend.like(_backend.compute_here(a), moved) for a in extra]
        result = kernel(moved, *extra)
        return result if reshaped else _from_end(result, axes)

    if dtype is None:
        probe_params = {**params, **{name: a[(0,) * (a.ndim - frame_ndim)] for name, a in zip(names, extra)}}
        dtype = _probe(func, moved, frame_ndim, vectorized and not names, probe_params).dtype
    n_batch = moved.ndim - frame_ndim
    da = _backend.dask_module()
    source = _reducible_source(moved, frame_ndim, out_frame, depth, names)
    if source is not None:
        return _reduce_source(kernel, moved, source, frame_ndim, out_frame, dtype)
    moved = split_batches(moved, frame_ndim, _task_bytes(moved, frame_ndim))
    if depth is None or out_frame is not None or _frames_whole(moved, frame_ndim):
        whole = moved.rechunk({axis: -1 for axis in range(n_batch, moved.ndim)})
        out_frame = tuple(whole.shape[n_batch:]) if out_frame is None else out_frame
        extra = [_backend.as_dask(a).rechunk(whole.chunks) for a in extra]
        axes_change = (
            {"drop_axis": list(range(n_batch, moved.ndim)),
             "new_axis": list(range(n_batch, n_batch + len(out_frame))) or None}
            if reshaped else {}
        )
        result = da.map_blocks(
            kernel, whole, *extra, dtype=dtype,
            meta=_backend.empty_like_meta(moved, dtype, ndim=n_batch + len(out_frame)),
            chunks=whole.chunks[:n_batch] + tuple((s,) for s in out_frame), **axes_change,
        )
        return result if reshaped else _from_end(result, axes)
    halo = (depth,) * frame_ndim if np.isscalar(depth) else tuple(depth)
    if len(halo) != frame_ndim:
        raise ValueError(f"depth must give one halo per frame axis ({frame_ndim}), got {depth!r}")
    depths = {axis: 0 for axis in range(n_batch)}
    whole_axes = {}
    for i, h in enumerate(halo):
        axis = n_batch + i
        if int(h) >= moved.shape[axis]:  # the halo spans the frame: keep this axis whole instead
            whole_axes[axis] = -1
            h = 0
        depths[axis] = int(h)
    if whole_axes:
        moved = moved.rechunk(whole_axes)
    extra = [_backend.as_dask(a).rechunk(moved.chunks) for a in extra]
    result = da.map_overlap(
        kernel,
        moved,
        *extra,
        depth=[depths] * (1 + len(extra)),
        boundary=["none"] * (1 + len(extra)),
        dtype=dtype,
        meta=_backend.empty_like_meta(moved, dtype),
    )
    return _from_end(result, axes)


# --- task sizes ------------------------------------------------------------------------------

#: Input bytes one task of a per-frame operation holds at most (whole frames; one frame when a
#: frame is larger): the readers' 64 MiB batch chunks, split so that every core gets several
#: tasks and the kernel's float copies stay small.
TASK_BYTES = 4 * 2**20


#: Tasks per core at least, when the stack is small enough that TASK_BYTES would give fewer: three
#: tasks on two cores take two rounds, the second half idle, where eight balance. Never below
#: MIN_TASK_BYTES a task (or one frame), where a task's overhead would outweigh its work.
TASKS_PER_CORE = 4
MIN_TASK_BYTES = 2**18


def _task_bytes(data: Any, frame_ndim: int) -> int:
    """Input bytes per task: :data:`TASK_BYTES`, or less for a small stack, down to one frame."""
    itemsize = np.dtype(data.dtype).itemsize
    frame_bytes = math.prod(data.shape[data.ndim - frame_ndim:]) * itemsize
    balanced = math.prod(data.shape) * itemsize // (TASKS_PER_CORE * (os.cpu_count() or 1))
    return int(min(TASK_BYTES, max(frame_bytes, balanced, MIN_TASK_BYTES)))


def _frames_whole(data: Any, frame_ndim: int) -> bool:
    """Every chunk holds whole frames: a halo needs no exchange between chunks (the kernel pads its frame)."""
    return all(len(chunks) == 1 for chunks in data.chunks[data.ndim - frame_ndim:])


# --- reductions read straight from a file, a few frames at a time ----------------------------

#: Bytes of the file one task of a reduction reads at most. A task costs dask and the reader a
#: fixed time, so tasks are large (a 2 GB scan on 2 cores, warm: 64 MiB tasks read 1.15 to
#: 1.35x faster than 16 MiB ones; cold, the same); but each core gets REDUCE_TASKS_PER_CORE of
#: them, down to MIN_REDUCE_TASK_BYTES, so that the cores finish together.
REDUCE_TASK_BYTES = 64 * 2**20
REDUCE_TASKS_PER_CORE = 8
MIN_REDUCE_TASK_BYTES = 16 * 2**20
#: Bytes of a group of frames read and reduced at once: the group stays in the CPU's caches
#: between the read and the reduction, and is large enough that the Python step per group (a
#: read, a kernel call, the GIL taken back twice) costs little next to it. Measured on a 2 GB
#: scan, 2 cores (1 MiB L2 each, 32 MiB L3), throughput against 2 MiB groups: 512 KiB 0.5 to
#: 0.85x, 1 MiB 0.75 to 1.0x, 4 MiB 1.0 to 1.1x (not taken: twice the cache a core needs).
TILE_BYTES = 2 * 2**20


def _reducible_source(data: Any, frame_ndim: int, out_frame: tuple | None, depth: Any, names: tuple) -> Any:
    """The file ``data`` reads (a :class:`~napari_stacklab.frames.FrameSource`) when a reduction can read it itself.

    That is when every frame is reduced to at most a quarter of its values,
    with no halo and no per-frame images, on the CPU, and ``data`` holds the
    source's values unchanged (or cast to another dtype, as the engine does
    for big-endian files).
    """
    if out_frame is None or depth is not None or names or data.ndim == frame_ndim or _backend.on_gpu(data):
        return None
    if math.prod(out_frame) * 4 > math.prod(data.shape[data.ndim - frame_ndim:]):
        return None
    for name in _backend.cast_origins(data):
        source = frame_source(name)
        if source is not None and tuple(source.shape) == tuple(data.shape):
            return source
    return None


def _reduce_source(kernel: Callable, data: Any, source: Any, frame_ndim: int, out_frame: tuple, dtype: Any) -> Any:
    """``kernel`` over every frame of ``data``, each task reading its frames from ``source`` in cache-sized groups.

    Chunks are chosen for bandwidth, not for a viewer: up to :data:`REDUCE_TASK_BYTES`
    of whole frames per task, read :data:`TILE_BYTES` at a time into one
    buffer that the kernel reduces while it is still in the cache.
    """
    n_batch = data.ndim - frame_ndim
    frame = tuple(data.shape[n_batch:])
    itemsize = np.dtype(source.dtype).itemsize
    balanced = math.prod(data.shape) * itemsize // (REDUCE_TASKS_PER_CORE * (os.cpu_count() or 1))
    chunk = grouped_frame_chunks(data.shape, itemsize, frame_ndim,
                                 min(REDUCE_TASK_BYTES, max(balanced, MIN_REDUCE_TASK_BYTES)))
    batch_chunks = tuple(_regular(n, c) for n, c in zip(data.shape[:n_batch], chunk[:n_batch]))
    tile = max(1, TILE_BYTES // max(1, math.prod(frame) * np.dtype(data.dtype).itemsize))
    return _backend.dask_module().map_blocks(
        _reduce_block, dtype=dtype, chunks=batch_chunks + tuple((s,) for s in out_frame),
        meta=_backend.empty_like_meta(data, dtype, ndim=n_batch + len(out_frame)),
        token="reduce-frames",
        source=source, kernel=kernel, frame=frame, read_dtype=data.dtype, tile=tile, n_batch=n_batch,
    )


def _regular(size: int, step: int) -> tuple:
    return (step,) * (size // step) + ((size % step,) if size % step else ())


def _reduce_block(*, source: Any, kernel: Callable, frame: tuple, read_dtype: Any, tile: int, n_batch: int,
                  block_info: dict) -> np.ndarray:
    """One task: the frames of this output block read ``tile`` at a time into one buffer and reduced."""
    info = block_info[None]
    region = tuple(slice(start, stop) for start, stop in info["array-location"][:n_batch])
    out = np.empty(info["chunk-shape"], dtype=info["dtype"])
    flat = out.reshape((-1, *out.shape[n_batch:]))
    buffer = np.empty((min(tile, flat.shape[0]), *frame), dtype=read_dtype)
    done = 0
    for group in source.read_groups(region, buffer):
        flat[done : done + group.shape[0]] = kernel(group)
        done += group.shape[0]
    return out


def _per_frame_array(name: str, array: Any, data: Any) -> Any:
    check_array(array, name)
    if tuple(array.shape) != tuple(data.shape):
        raise ValueError(f"{name} given frame by frame must have the shape of the data {tuple(data.shape)}, "
                         f"got {tuple(array.shape)}")
    return array


def reduce_frames(
    func: Callable,
    data: Any,
    *,
    frame_ndim: int = 2,
    frame_axes: Sequence[int] | None = None,
    out_shape: Sequence[int] = (),
    dtype: Any = np.float64,
    vectorized: bool = False,
    **params: Any,
) -> Any:
    """Reduce every frame of ``data`` to a scalar or a small fixed-shape array.

    The result has shape ``batch_shape + out_shape``: a virtual-detector image
    over a 4D-STEM scan, a per-frame threshold, a per-frame shift vector.

    Parameters
    ----------
    func : callable
        ``func(frame, **params)`` returning an array of ``out_shape`` (or,
        with ``vectorized=True``, ``func(block)`` returning
        ``block_batch_shape + out_shape``).
    data : array, shape ``(..., M, N)``
        NumPy, CuPy or dask array.
    out_shape : tuple of int
        Shape of one frame's result.
    dtype : dtype
        Result dtype (needed to build the lazy graph).

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    >>> reduce_frames(np.sum, stack).tolist()
    [66.0, 210.0]
    """
    result = map_frames(func, data, frame_ndim=frame_ndim, frame_axes=frame_axes, dtype=dtype,
                        frame_shape=tuple(out_shape), vectorized=vectorized, **params)
    if _backend.is_dask(result):
        return result
    return _backend.get_namespace(data)[0].asarray(result).astype(dtype, copy=False)
