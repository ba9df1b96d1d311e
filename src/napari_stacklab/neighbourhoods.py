"""Neighbourhood filters whose cost does not explode with the neighbourhood, and their cost rules.

SciPy's footprint filters (``median_filter``, ``rank_filter``, ``grey_erosion`` with a
footprint) visit every footprint pixel at every image pixel, and precompute a table of
``8 * window**2`` bytes (about 34 GB for a 255 x 255 window). Two exact replacements,
with SciPy's semantics (boundary modes, even sizes, the element a rank picks):

- :func:`rank_filter`: the ``rank``-th smallest value of a ``size`` box, by a sliding
  histogram (``skimage.filters.rank``) over the image's distinct levels: about
  ``2 * size + levels`` steps a pixel instead of ``size**2``. Used for 8-bit data
  always, and for other data when they hold at most 4096 distinct values and the
  histogram is cheaper; otherwise (or on a GPU) SciPy's filter.
- :func:`flat_filter`: erosion or dilation by a convex flat footprint (disk, diamond,
  ball, octahedron, square, cube), decomposed into its chords along the last axis:
  a 1-D running minimum (maximum) per chord length (van Herk/Gil-Werman,
  ``minimum_filter1d``), combined over the chords' offsets. Exact, about
  ``rows + widths`` passes instead of ``window`` visits a pixel.

Each has a cost rule (:func:`rank_cost`, :func:`flat_cost`) for the operations that
use them. The per-step times are twice those measured on one idle core (a 2-core cloud
machine), a margin for a busy one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _backend
from ._backend import get_namespace, skimage_module
from .costs import Cost

__all__ = ["rank_filter", "rank_cost", "flat_filter", "flat_cost", "chords", "PAD_MODES"]

#: scipy.ndimage boundary mode -> numpy.pad mode (scipy's "reflect" repeats the edge pixel)
PAD_MODES = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap", "constant": "constant"}

#: seconds per footprint pixel visited by SciPy's footprint filters, per pixel
_DIRECT_SECONDS = 25e-9
#: seconds per histogram step (an update or a level scanned) of skimage.filters.rank
_HISTOGRAM_SECONDS = 4e-9
#: seconds per pixel of one 1-D running minimum/maximum pass (over the padded frame)
_RUNNING_SECONDS = 10e-9
#: seconds per pixel of one element-wise minimum/maximum (over the frame)
_COMBINE_SECONDS = 1.5e-9
#: most distinct levels the histogram path takes (skimage.filters.rank on a uint16 index image)
_MOST_LEVELS = 4096


def _sizes(size: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    return (int(size),) * ndim if np.isscalar(size) else tuple(int(s) for s in size)


def _direct(pixels: int, window: int, itemsize: int) -> Cost:
    return Cost(8 * window**2 + 2 * pixels * itemsize, pixels * window * _DIRECT_SECONDS)


def _histogram(pixels: int, sizes: tuple, levels: int) -> Cost:
    # the padded frame, its index image and the levels' inverse (int64): about 24 bytes a pixel
    return Cost(pixels * 24, pixels * (2 * sizes[0] + levels / 2 + 8) * _HISTOGRAM_SECONDS)


def rank_cost(shape: Sequence[int], dtype: Any, size: int | Sequence[int], rank: int | None = None) -> Cost:
    """Cost of :func:`rank_filter` on a frame of ``shape``: the cheaper path this dtype guarantees.

    8-bit (and bool) data take the histogram path whenever it is cheaper;
    wider data may hold up to 2**16 or more levels, so the estimate is
    SciPy's (the kernel still takes the histogram when the data allow).
    ``rank`` 0 or ``window - 1`` is a separable minimum or maximum.
    """
    sizes = _sizes(size, len(shape))
    pixels, window = math.prod(shape), math.prod(sizes)
    why = f"a {' x '.join(map(str, sizes))} window at each of {pixels} pixels"
    if rank is not None and rank in (0, window - 1):
        return Cost(2 * pixels * 8, pixels * len(sizes) * 2 * _RUNNING_SECONDS, why)
    itemsize = np.dtype(dtype).itemsize
    direct = _direct(pixels, window, itemsize)
    cheapest = direct
    if itemsize == 1 and len(sizes) == 2:
        padded = math.prod(n + s - 1 for n, s in zip(shape, sizes))  # the histogram runs over the padded frame
        cheapest = min(direct, _histogram(padded, sizes, 256), key=lambda c: c.seconds)
    return Cost(cheapest.bytes, cheapest.seconds, why, "a smaller size")


def rank_filter(frame: Any, rank: int, size: int | Sequence[int], mode: str = "reflect") -> Any:
    """The ``rank``-th smallest value (from 0) of the ``size`` box around each pixel.

    The same values as ``scipy.ndimage.rank_filter(frame, rank, size=size,
    mode=mode)`` (cval 0), computed by a sliding histogram over the frame's
    distinct levels when that is cheaper.
    """
    xp, ndi = get_namespace(frame)
    sizes = _sizes(size, frame.ndim)
    window = math.prod(sizes)
    if rank == 0:
        return ndi.minimum_filter(frame, size=sizes, mode=mode)
    if rank == window - 1:
        return ndi.maximum_filter(frame, size=sizes, mode=mode)
    direct = _direct(frame.size, window, frame.dtype.itemsize).seconds
    padded_size = math.prod(n + s - 1 for n, s in zip(frame.shape, sizes))
    if frame.ndim != 2 or _backend.on_gpu(frame) or direct < _histogram(padded_size, sizes, 2).seconds:
        return ndi.rank_filter(frame, rank, size=sizes, mode=mode)
    padded = np.pad(frame, [(s // 2, s - 1 - s // 2) for s in sizes], mode=PAD_MODES[mode])
    if padded.dtype == np.uint8:
        levels, index = None, padded
    else:
        levels, inverse = np.unique(padded, return_inverse=True)
        if len(levels) > _MOST_LEVELS or direct < _histogram(padded_size, sizes, len(levels)).seconds:
            return ndi.rank_filter(frame, rank, size=sizes, mode=mode)
        index = inverse.reshape(padded.shape).astype(np.uint8 if len(levels) <= 256 else np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "bad rank filter performance" for more than 256 levels: measured, chosen
        found = skimage_module(index, "filters").rank.percentile(
            index, np.ones(sizes, dtype=bool), p0=(rank + 0.5) / window
        )
    found = found[tuple(slice(s // 2, s // 2 + n) for s, n in zip(sizes, frame.shape))]
    return found if levels is None else levels[found]


# --------------------------------------------------------------------------- flat morphology by chords


def chords(footprint: np.ndarray) -> dict[int, list[tuple[int, ...]]]:
    """Half-width of each chord of a centred, symmetric, convex footprint -> offsets of the rows holding one.

    A row (along the last axis) of the footprint is one run of pixels centred
    on the footprint's centre column; rows that hold none are left out.
    """
    centre = footprint.shape[-1] // 2
    found: dict[int, list[tuple[int, ...]]] = {}
    for offset in np.ndindex(footprint.shape[:-1]):
        row = np.flatnonzero(footprint[offset])
        if not row.size:
            continue
        half = int(row[-1]) - centre
        if int(row[0]) != centre - half or row.size != 2 * half + 1:
            raise ValueError("footprint rows must be runs centred on the footprint's centre (a convex, symmetric shape)")
        found.setdefault(half, []).append(offset)
    return found


def flat_cost(shape: Sequence[int], dtype: Any, footprint: np.ndarray, runs: dict | None = None) -> Cost:
    """Cost of one :func:`flat_filter` pass on a frame of ``shape`` (``runs``: the footprint's :func:`chords`)."""
    pads = [s // 2 for s in footprint.shape]
    padded = math.prod(n + 2 * p for n, p in zip(shape, pads))
    found = chords(footprint) if runs is None else runs
    rows = sum(len(offsets) for offsets in found.values())
    itemsize = max(np.dtype(dtype).itemsize, 1)
    seconds = len(found) * padded * _RUNNING_SECONDS + rows * math.prod(shape) * _COMBINE_SECONDS
    why = f"a {' x '.join(map(str, footprint.shape))} footprint ({rows} chords)"
    return Cost(3 * padded * itemsize + math.prod(shape) * itemsize, seconds, why, "a smaller radius")


def flat_filter(frame: Any, footprint: np.ndarray, *, dilate: bool, mode: str = "reflect",
                runs: dict | None = None) -> Any:
    """Erosion (``dilate=False``) or dilation of ``frame`` by a flat, symmetric, convex ``footprint``.

    The values of ``scipy.ndimage.grey_erosion`` / ``grey_dilation`` (and so of
    ``skimage.morphology.erosion`` / ``dilation``) with ``mode``; bool frames
    give bool. ``runs``: the footprint's :func:`chords`, when the caller keeps them.
    """
    xp, ndi = get_namespace(frame)
    boolean = frame.dtype == bool
    data = frame.view(np.uint8) if boolean else frame
    pads = [s // 2 for s in footprint.shape]
    padded = xp.pad(data, [(p, p) for p in pads], mode=PAD_MODES[mode])
    running = ndi.maximum_filter1d if dilate else ndi.minimum_filter1d
    combine = xp.maximum if dilate else xp.minimum
    out = None
    for half, offsets in (chords(footprint) if runs is None else runs).items():
        line = running(padded, 2 * half + 1, axis=-1, mode="nearest") if half else padded
        line = line[..., pads[-1] : pads[-1] + frame.shape[-1]]
        for offset in offsets:
            view = line[tuple(slice(o, o + n) for o, n in zip(offset, frame.shape[:-1]))]
            out = view.copy() if out is None else combine(out, view, out=out)
    return out.view(bool) if boolean else out
