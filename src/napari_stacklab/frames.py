"""Frames: the 2-D planes or 3-D volumes an operation works on, and the axes around them.

A *frame* is what a kernel sees (a plane of a time lapse, a volume of a time
series, one diffraction pattern of a scan); every leading axis is a *batch*
axis. These helpers answer the questions every family asks about frames,
without computing anything: which frame is shown, how to chunk a stack into
whole frames, how many axes a ``mode`` means, the pixel size along the frame
axes.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, Literal, Protocol, get_args
from collections.abc import Iterator, Sequence

import numpy as np

from . import _backend
from ._validation import check_choice

__all__ = [
    "BoundaryMode",
    "WarpMode",
    "Mode",
    "MODES",
    "mode_ndim",
    "frame_ndim_for",
    "check_connectivity",
    "frame_spacing",
    "frame_at",
    "frame_chunks",
    "grouped_frame_chunks",
    "iter_frame_indices",
    "fill_range",
    "FrameSource",
    "register_frame_source",
    "frame_source",
    "split_batches",
]

#: How a frame is extended past its border by ``scipy.ndimage`` filters.
BoundaryMode = Literal["reflect", "nearest", "mirror", "wrap", "constant"]
#: How a frame is extended past its border by scikit-image's warps and padding (``numpy.pad`` names).
WarpMode = Literal["constant", "edge", "symmetric", "reflect", "wrap"]

#: Frames are planes ``(M, N)`` or volumes ``(P, M, N)``.
Mode = Literal["2d", "3d"]
MODES = get_args(Mode)


def mode_ndim(mode: str, **_: Any) -> int:
    """Number of frame axes of ``mode``: 2 for ``"2d"``, 3 for ``"3d"``.

    Usable as an operation's ``frame_ndim`` rule (it ignores other parameters).

    Examples
    --------
    >>> mode_ndim("3d")
    3
    """
    check_choice("mode", mode, MODES)
    return 2 if mode == "2d" else 3


def frame_ndim_for(image: Any, mode: str) -> int:
    """Frame dimensionality for ``mode``, checked against ``image``'s number of axes."""
    frame_ndim = mode_ndim(mode)
    if image.ndim < frame_ndim:
        raise ValueError(f"mode={mode!r} needs an image with at least {frame_ndim} axes, got shape {tuple(image.shape)}")
    return frame_ndim


def check_connectivity(connectivity: int | None, frame_ndim: int) -> None:
    """Raise ``ValueError`` unless ``connectivity`` is ``None`` or between 1 and ``frame_ndim``."""
    if connectivity is not None and not 1 <= connectivity <= frame_ndim:
        raise ValueError(f"connectivity must be between 1 and {frame_ndim} for {frame_ndim}-D frames, got {connectivity}")


def frame_spacing(spacing: Any, frame_ndim: int) -> tuple[float, ...] | None:
    """Pixel size along the frame axes from a scalar, a per-frame-axis or a per-array-axis spacing.

    Examples
    --------
    >>> frame_spacing(0.5, 2), frame_spacing((2.0, 0.3, 0.2), 2)
    ((0.5, 0.5), (0.3, 0.2))
    """
    if spacing is None:
        return None
    if not isinstance(spacing, (tuple, list)):
        return (float(spacing),) * frame_ndim
    if len(spacing) < frame_ndim:
        raise ValueError(f"spacing must give at least {frame_ndim} values (one per frame axis), got {spacing}")
    return tuple(float(s) for s in spacing[-frame_ndim:])


def iter_frame_indices(batch_shape: Sequence[int]):
    """Indices of every frame of a stack whose batch axes have ``batch_shape``."""
    return np.ndindex(*batch_shape)


def frame_at(image: Any, plane: int | None, frame_ndim: int = 2) -> Any:
    """Frame number ``plane`` of a stack (C order over the batch axes), or all of ``image`` for ``None``.

    Global statistics (a threshold, a noise level, percentiles) are computed
    once from this sample: the whole stack, or one chosen plane.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    >>> bool((frame_at(stack, 4) == stack[1, 1]).all()), frame_at(stack, None).shape
    (True, (2, 3, 4, 5))
    """
    if plane is None or image.ndim == frame_ndim:
        return image
    batch_shape = image.shape[: image.ndim - frame_ndim]
    n_frames = int(np.prod(batch_shape))
    if not -n_frames <= plane < n_frames:
        raise ValueError(f"plane must index one of the {n_frames} frames, got {plane}")
    return image[np.unravel_index(plane % n_frames, batch_shape)]


def frame_chunks(ndim: int, frame_ndim: int) -> dict:
    """dask ``chunks`` keeping whole frames per chunk and letting dask size the batch axes.

    Examples
    --------
    >>> frame_chunks(4, 2)
    {0: 'auto', 1: 'auto', 2: -1, 3: -1}
    """
    n_batch = max(ndim - frame_ndim, 0)
    return {axis: ("auto" if axis < n_batch else -1) for axis in range(ndim)}


def grouped_frame_chunks(shape: Sequence[int], itemsize: int, frame_ndim: int, budget: int) -> tuple:
    """Chunk sizes for ``shape``: whole frames, grouped from the innermost batch axis out up to ``budget`` bytes.

    Chunks stay contiguous in C order: an outer batch axis grows only once
    the inner ones are whole.

    Examples
    --------
    >>> grouped_frame_chunks((256, 256, 128, 128), 2, 2, 64 * 2**20)
    (8, 256, 128, 128)
    >>> grouped_frame_chunks((10, 64, 64), 4, 2, 3 * 64 * 64 * 4)
    (3, 64, 64)
    """
    shape = tuple(int(s) for s in shape)
    frame_ndim = min(frame_ndim, len(shape))
    n_batch = len(shape) - frame_ndim
    frame_bytes = max(1, math.prod(shape[n_batch:]) * int(itemsize))
    chunks = [1] * n_batch + list(shape[n_batch:])
    frames = max(1, int(budget) // frame_bytes)
    for axis in range(n_batch - 1, -1, -1):
        take = min(shape[axis], frames)
        chunks[axis] = max(1, take)
        if take < shape[axis]:
            break
        frames //= max(1, shape[axis])
    return tuple(chunks)


# --- frame sources: files that hand whole frames to a reduction, a few at a time -------------


class FrameSource(Protocol):
    """An array on disk that copies any block of whole frames into a buffer it is given.

    Readers register the lazy arrays they build over such a source
    (:func:`register_frame_source`); a reduction of every frame to a few values
    (a virtual detector, a centre of mass) then reads the frames a few at a
    time into one small buffer that stays in the CPU cache, and reduces each
    group while it is there, instead of materialising chunks of tens of MB
    that are written to memory and read back.
    """

    shape: tuple
    dtype: np.dtype

    def read_groups(self, key: tuple, buffer: np.ndarray) -> Iterator[np.ndarray]:
        """Read the whole frames of ``self[key]`` into ``buffer`` (shape ``(group, *frame)``) a group at a time.

        Yields each filled part of ``buffer`` (frames in the C order of the
        batch axes, values cast to ``buffer.dtype``); the next read overwrites it.
        """


_SOURCES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def register_frame_source(name: str, source: FrameSource) -> None:
    """Record that the dask array called ``name`` holds exactly ``source``'s values, in its shape and dtype.

    A dask array's name is a hash of what it computes, so the same name always
    means the same values. The entry lives as long as ``source`` does (the
    array's task graph holds it).
    """
    _SOURCES[name] = source


def frame_source(name: str) -> FrameSource | None:
    """The :class:`FrameSource` registered for the dask array called ``name``, if any."""
    return _SOURCES.get(name)


def split_batches(data: Any, frame_ndim: int, budget: int) -> Any:
    """Lazy ``data`` with chunks of at most ``budget`` bytes of whole frames along its batch axes (never merged).

    Chunks larger than that are split; an array read from a file
    (:func:`frame_source`) is read anew with the smaller chunks, so that each
    task reads only its own frames instead of a share of a large chunk.
    """
    n_batch = data.ndim - frame_ndim
    if n_batch <= 0 or any(math.isnan(c) for chunks in data.chunks for c in chunks):  # unknown sizes: left alone
        return data
    chunk_frame = tuple(max(c) for c in data.chunks[n_batch:])
    target = grouped_frame_chunks(data.shape[:n_batch] + chunk_frame, np.dtype(data.dtype).itemsize, frame_ndim,
                                  budget)
    if math.prod(max(c) for c in data.chunks[:n_batch]) <= math.prod(target[:n_batch]):
        return data
    sizes = {axis: min(target[axis], max(data.chunks[axis])) for axis in range(n_batch)}
    for name in _backend.cast_origins(data):
        source = frame_source(name)
        if source is not None and tuple(source.shape) == tuple(data.shape) and not _backend.on_gpu(data):
            chunks = tuple(sizes.get(axis, data.chunks[axis]) for axis in range(data.ndim))
            return _backend.as_dask(source, chunks=chunks).astype(data.dtype)
    return data.rechunk(sizes)


def fill_range(dtype: Any) -> tuple[float, float, str]:
    """``(low, high, reason)``: the fill values (``cval``) an output of ``dtype`` can hold.

    A warp or shift writes its fill value into the result: an integer result
    (nearest-neighbour resampling keeps the dtype) holds its dtype's range, a
    float one its finite range (a larger value would be written as infinity).
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return 0.0, 1.0, "a value a mask can hold"
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    return float(info.min), float(info.max), f"a value the {dtype} result can hold"
