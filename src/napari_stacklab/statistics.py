"""Global statistics of a whole stack, computed once: ranges, histograms, percentiles.

Operations that need a statistic of their whole input (a threshold, a
percentile, the intensity range a default refers to) compute it here, once,
before their lazy graph is built, and pass the numbers in as parameters.
In-memory input gives exact values; dask input is never loaded whole: it is
scanned at most twice (the range, then a histogram of it).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any
from collections.abc import Sequence

import numpy as np

from . import _backend
from .frames import frame_at

__all__ = ["Histogram", "value_range", "stack_range", "histogram", "stack_percentiles"]

#: Bins of the histogram that percentiles of lazy data are read from.
PERCENTILE_BINS = 65536
#: Integer data with at most this many grey levels get one histogram bin per level.
MAX_INTEGER_BINS = 2**16


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
    """Histogram of every finite value of a stack, in two passes (the range, then the counts).

    Parameters
    ----------
    image : array
        NumPy, CuPy or dask array; dask input is never loaded whole.
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
    counts, edges = _backend.array_module(image).histogram(image, bins=bins, range=span)
    edges = _backend.materialize(edges)
    return Histogram(np.asarray(_backend.materialize(counts), np.int64), (edges[:-1] + edges[1:]) / 2)


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
        histogram of the stack (two passes), accurate to one bin width.

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
