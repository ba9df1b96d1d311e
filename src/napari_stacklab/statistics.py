"""Global statistics of a whole stack, computed once: ranges, histograms, percentiles.

Operations that need a statistic of their whole input (a threshold, a
percentile, the intensity range a default refers to) compute it here, once,
before their lazy graph is built, and pass the numbers in as parameters.
In-memory input gives exact values; dask input is never loaded whole. Data of
at most 16 bits per pixel (bool, 8- and 16-bit integers) are read once: one
count per possible value gives the range and every histogram of it. Other
dtypes are read twice (the range, then the counts). Results for dask input
are cached against the graph's name (a hash of what it computes), so asking
again (a widget's preview, then Run on all) reads nothing.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from collections.abc import Sequence

import numpy as np

from . import _backend
from .frames import frame_at, split_batches

__all__ = ["Histogram", "value_range", "stack_range", "histogram", "stack_percentiles", "clear_cache"]

#: Bins of the histogram that percentiles of lazy data are read from.
PERCENTILE_BINS = 65536
#: Integer data with at most this many grey levels get one histogram bin per level.
MAX_INTEGER_BINS = 2**16
#: Bytes of a lazy stack one task of a one-read statistic holds (a file's large chunks are read smaller).
TASK_BYTES = 4 * 2**20


def value_range(image: Any) -> tuple[float, float]:
    """``(min, max)`` of the finite values of a whole stack, computed once.

    NaN and inf pixels are ignored; without any finite value both are NaN.
    NumPy functions dispatch to CuPy and to dask (NEP 18), so lazy GPU stacks
    work too.

    Examples
    --------
    >>> import numpy as np
    >>> value_range(np.array([[np.nan, 2.0], [np.inf, -1.0]]))
    (-1.0, 2.0)
    """
    if _one_read(image):
        levels = _cached(image, "levels", lambda: _level_counts(image))
        filled = np.flatnonzero(levels.counts)
        if filled.size == 0:
            return math.nan, math.nan
        return float(levels.centers[filled[0]]), float(levels.centers[filled[-1]])
    return _cached(image, "range", lambda: _value_range(image))


def _value_range(image: Any) -> tuple[float, float]:
    values = image.astype(np.uint8) if image.dtype == bool else image
    if np.dtype(values.dtype).kind == "f":
        values = np.where(np.isfinite(values), values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN input: NaN, said in the docstring
        low, high = _backend.materialize(np.stack([np.nanmin(values), np.nanmax(values)]).astype(np.float64))
    return float(low), float(high)


def stack_range(image: Any) -> float:
    """``max - min`` of the finite values of a whole stack, computed once.

    The intensity range that dtype-independent defaults refer to (the same
    counts give the same answer in uint8 and in float64). NaN and inf pixels
    are ignored; a constant stack (or one without finite values) gives 0.

    Examples
    --------
    >>> import numpy as np
    >>> stack_range(np.array([[3, 7], [5, 4]], np.uint8))
    4.0
    >>> stack_range(np.array([[np.nan, 2.0], [np.inf, -1.0]]))
    3.0
    """
    low, high = value_range(image)
    span = high - low
    return span if math.isfinite(span) else 0.0


@dataclass(frozen=True)
class Histogram:
    """Counts of a stack's values in bins (``centers``: the value each bin stands for)."""

    counts: np.ndarray
    centers: np.ndarray

    @property
    def constant(self) -> bool:
        """Every value is the same (one bin)."""
        return len(self.centers) == 1


def histogram(image: Any, *, bins: int = 256, levels: bool = False) -> Histogram:
    """Histogram of every finite value of a stack, computed once.

    Dask input is never loaded whole: a stack of bool or <= 16-bit integers
    is read once (the count of every possible value gives the range and the
    histogram), any other twice (the range, then the counts); the result is
    cached against the stack's graph name.

    Parameters
    ----------
    image : array
        NumPy, CuPy or dask array.
    bins : int
        Number of equal bins between the minimum and the maximum.
    levels : bool
        Integer (or bool) data spanning at most 65536 grey levels get one bin
        per level instead (the histogram scikit-image uses for integer images).

    Returns
    -------
    Histogram
        int64 ``counts`` and float64 ``centers``; a constant stack gives a
        single bin at its value.

    Examples
    --------
    >>> import numpy as np
    >>> h = histogram(np.array([[0, 1], [1, 3]], np.uint8), levels=True)
    >>> h.counts.tolist(), h.centers.tolist()
    ([1, 2, 0, 1], [0.0, 1.0, 2.0, 3.0])
    """
    low, high = value_range(image)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"image has no finite values (shape {tuple(image.shape)})")
    if low == high:
        return Histogram(np.array([int(np.prod(image.shape, dtype=np.int64))]), np.array([low]))
    if levels and np.dtype(image.dtype).kind in "iub" and high - low < MAX_INTEGER_BINS:
        bins, span = int(high - low) + 1, (low - 0.5, high + 0.5)
    else:
        span = (low, high)
    if _one_read(image):  # binned from the counts of every value: no second read
        every = _cached(image, "levels", lambda: _level_counts(image))
        counts, edges = np.histogram(every.centers, bins=bins, range=span, weights=every.counts)
        return Histogram(np.rint(counts).astype(np.int64), (edges[:-1] + edges[1:]) / 2)
    return _cached(image, ("histogram", bins, span), lambda: _counts(image, bins, span))


def _counts(image: Any, bins: int, span: tuple) -> Histogram:
    counts, edges = _backend.array_module(image).histogram(image, bins=bins, range=span)
    edges = _backend.materialize(edges)
    return Histogram(np.asarray(_backend.materialize(counts), np.int64), (edges[:-1] + edges[1:]) / 2)


def _one_read(image: Any) -> bool:
    """A lazy stack of bool or <= 16-bit integers: one count per possible value (65536 at most) serves all."""
    dtype = np.dtype(image.dtype)
    few = dtype.kind == "b" or (dtype.kind in "iu" and dtype.itemsize <= 2)
    return few and _backend.is_dask(image) and not _backend.on_gpu(image)


def _level_counts(image: Any) -> Histogram:
    """How many pixels hold each possible value of a bool or <= 16-bit integer image: one read.

    Signed values are counted through their unsigned view (same bits) and
    put back in order after.
    """
    dtype = np.dtype(image.dtype)
    bits = 1 if dtype.kind == "b" else 8 * dtype.itemsize
    image = split_batches(image, min(2, image.ndim), TASK_BYTES)
    values = image.astype(np.uint8) if dtype.kind == "b" else image.view(dtype.str.replace("i", "u"))
    n, inner = 2**bits, len(values.chunks[-1])
    per_block = values.map_blocks(_block_counts, n, dtype=np.int64,
                                  chunks=tuple((1,) * len(c) for c in values.chunks[:-1]) + ((n,) * inner,))
    counts = per_block.sum(axis=tuple(range(values.ndim - 1)), dtype=np.int64).reshape(inner, n).sum(axis=0)
    counts = np.asarray(_backend.materialize(counts), np.int64)
    low = 0
    if dtype.kind == "i":  # unsigned order 0 .. 2**(b-1)-1, -2**(b-1) .. -1  ->  signed order
        counts, low = np.roll(counts, 2 ** (bits - 1)), -(2 ** (bits - 1))
    return Histogram(counts, np.arange(low, low + counts.size, dtype=np.float64))


def _block_counts(block: np.ndarray, n: int) -> np.ndarray:
    """Counts of each value ``0 .. n-1`` in ``block``, shaped ``(1, ..., 1, n)``.

    Counted a million pixels at a time: ``bincount`` copies its input to 64-bit
    integers, four times a 16-bit chunk's size.
    """
    flat = block.reshape(-1)
    counts = np.zeros(n, np.int64)
    for start in range(0, flat.size, 2**20):
        counts += np.bincount(flat[start : start + 2**20], minlength=n)
    return counts.reshape((1,) * (block.ndim - 1) + (n,))


#: Statistics of lazy stacks, by the stack's dask name (the hash of what it computes) and what was asked.
CACHE_SIZE = 64
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every cached statistic of lazy stacks (they are recomputed when next asked for)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _cached(image: Any, what: Any, compute: Any) -> Any:
    """``compute()``, remembered for a dask ``image``: the same graph name means the same values."""
    if not _backend.is_dask(image):
        return compute()
    key = (image.name, what)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    value = compute()
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def stack_percentiles(image: Any, percentiles: Sequence[float], *, plane: int | None = None) -> np.ndarray:
    """Percentiles of a whole stack (or one frame), computed once.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        NumPy, CuPy or dask array.
    percentiles : sequence of float
        Percentiles in [0, 100].
    plane : int, optional
        Use only this frame (C-order index over the batch axes).

    Returns
    -------
    ndarray of float64
        One value per percentile, in the units of ``image``. In-memory input
        gives exactly ``numpy.percentile``; dask input uses a 65536-bin
        :func:`histogram` of the stack (one read for <= 16-bit integers, two
        otherwise), accurate to one bin width.

    Examples
    --------
    >>> import numpy as np
    >>> stack_percentiles(np.arange(101.0).reshape(1, 101), [1, 99]).tolist()
    [1.0, 99.0]
    """
    sample = frame_at(image, plane)
    q = np.asarray(percentiles, dtype=np.float64)
    if not _backend.is_dask(sample):
        xp, _ = _backend.get_namespace(sample)
        return np.asarray(_backend.materialize(xp.percentile(sample.astype(xp.float64), xp.asarray(q))), np.float64)
    found = histogram(sample, bins=PERCENTILE_BINS)
    cumulative = np.cumsum(found.counts)
    # numpy's "linear" method: interpolate between the order statistics around rank (n - 1) * q
    rank = (cumulative[-1] - 1) * q / 100.0
    below = np.floor(rank)
    lower = found.centers[np.searchsorted(cumulative, below, side="right")]
    upper = found.centers[np.searchsorted(cumulative, np.minimum(below + 1, cumulative[-1] - 1), side="right")]
    return lower + (rank - below) * (upper - lower)
