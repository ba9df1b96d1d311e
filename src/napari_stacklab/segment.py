"""Thresholding, labeling and watershed of images, stacks and volumes.

Global thresholds are computed **once** (from the whole stack or one chosen
plane) and then applied lazily, so scrolling a lazy result never rescans the
stack. Local thresholds are per-frame filters with a halo. Labeling works
frame by frame (``mode="2d"``: each plane of a time lapse labeled on its own,
lazily) or on volumes (``mode="3d"``). Labels are ``int32``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, get_args

import numpy as np

from . import _backend
from ._backend import get_namespace, skimage_module
from ._validation import check_ndim, check_real, float_dtype
from .costs import Cost, pixelwise
from .frames import BoundaryMode, Mode, check_connectivity, frame_at, mode_ndim
from .neighbourhoods import rank_cost, rank_filter
from .registry import ImageRef, PerFrame, Range, operation, validated
from .statistics import histogram, stack_range, value_range

__all__ = [
    "threshold",
    "threshold_value",
    "THRESHOLD_METHODS",
    "threshold_multiotsu",
    "threshold_local",
    "threshold_niblack",
    "threshold_sauvola",
    "label",
    "watershed",
    "expand_labels",
]

#: Automatic threshold methods (scikit-image's ``threshold_<method>``).
AutoThreshold = Literal["otsu", "li", "yen", "triangle", "isodata", "mean", "minimum"]
ThresholdMethod = Literal[AutoThreshold, "manual"]
#: Automatic threshold methods, by name -> ``skimage.filters`` function.
THRESHOLD_METHODS = {method: f"threshold_{method}" for method in get_args(AutoThreshold)}


# --------------------------------------------------------------------------- helpers
def _triangle_from_hist(counts: np.ndarray, centers: np.ndarray) -> float:
    """scikit-image's triangle algorithm on a histogram (it has no ``hist=`` argument)."""
    counts = counts.astype(np.float64)
    nbins = len(counts)
    peak = int(np.argmax(counts))
    low, high = np.flatnonzero(counts)[[0, -1]]
    if low == high:
        return float(centers[low])
    flip = peak - low < high - peak
    if flip:
        counts = counts[::-1]
        low = nbins - high - 1
        peak = nbins - peak - 1
    width = peak - low
    x = np.arange(width)
    norm = np.sqrt(counts[peak] ** 2 + width**2)
    length = counts[peak] / norm * x - width / norm * counts[x + low]
    level = int(np.argmax(length)) + low
    return float(centers[nbins - level - 1 if flip else level])


def _li_from_hist(counts: np.ndarray, centers: np.ndarray) -> float:
    """Li's minimum cross-entropy iteration on a histogram (as scikit-image does for integers)."""
    weights = counts.astype(np.float64)
    offset = centers[0]
    values = centers - offset
    tolerance = (centers[1] - centers[0]) / 2
    t_next = float(np.average(values, weights=weights))
    t_curr = -2 * tolerance
    while abs(t_next - t_curr) > tolerance:
        t_curr = t_next
        fore = values > t_curr
        if not weights[fore].any() or not weights[~fore].any():
            break
        mean_fore = np.average(values[fore], weights=weights[fore])
        mean_back = np.average(values[~fore], weights=weights[~fore])
        if mean_back == 0:
            break
        t_next = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
    return float(t_next + offset)


# --------------------------------------------------------------------------- global thresholds
@validated
def threshold_value(
    image: ImageRef, *, method: AutoThreshold = "otsu", plane: Annotated[int, Range(None, None)] | None = None
) -> float:
    """Compute an automatic threshold once, over the whole stack or one plane.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        NumPy, CuPy or dask array of real values.
    method : str
        One of :data:`THRESHOLD_METHODS`: ``"otsu"``, ``"li"``, ``"yen"``,
        ``"triangle"``, ``"isodata"``, ``"mean"``, ``"minimum"``.
    plane : int, optional
        Use only this frame (C-order index over the batch axes); ``None`` uses
        every pixel of the stack.

    Returns
    -------
    float
        The threshold, in the units of ``image``. In-memory input gives exactly
        scikit-image's value. Dask input is never loaded whole, and read
        once for <= 16-bit integers (twice otherwise; the histogram is cached
        against the stack's graph name): ``"mean"`` is exact; ``"otsu"``, ``"yen"``,
        ``"isodata"`` and ``"minimum"`` pass a histogram of the stack to
        scikit-image (``hist=``); ``"triangle"`` and ``"li"`` run
        scikit-image's algorithm on that histogram. For integer data (up to
        65536 grey levels) the histogram has one bin per level, as
        scikit-image's own, so the values match the in-memory ones (``"li"``
        to its iteration tolerance of half a level); for float data it has 256
        bins and values agree to within about one bin width ``(max - min) / 256``.
        ``"minimum"`` on integer data spanning more than 256 levels smooths a
        256-bin histogram (scikit-image's default bin count) in memory too:
        with one bin per level its smoothing takes minutes on 16-bit data.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.r_[np.zeros(50), np.full(50, 10.0)].reshape(10, 10)
    >>> 0 <= threshold_value(img, method="otsu") < 10
    True
    """
    check_ndim(image, 2)
    check_real(image)
    sample = frame_at(image, plane)
    try:
        return _threshold_of(sample, method)
    except RuntimeError as exc:  # threshold_minimum on a histogram without two peaks
        raise ValueError(f"method={method!r} failed on this image ({exc}); choose another method") from None


#: bins of the histogram ``"minimum"`` smooths (scikit-image's default; its one bin per integer level
#: makes the smoothing loop take minutes on 16-bit data)
_MINIMUM_BINS = 256


def _threshold_of(sample: Any, method: str) -> float:
    if method == "minimum" and np.dtype(sample.dtype).kind in "iu":
        low, high = value_range(sample)
        if high - low + 1 > _MINIMUM_BINS:
            hist = histogram(sample, bins=_MINIMUM_BINS)
            func = getattr(skimage_module(np.empty(0), "filters"), THRESHOLD_METHODS[method])
            return float(func(hist=(hist.counts, hist.centers)))
    if not _backend.is_dask(sample):
        func = getattr(skimage_module(sample, "filters"), THRESHOLD_METHODS[method])
        return float(_backend.materialize(func(sample)))
    if method == "mean":
        return float(_backend.materialize(sample.mean(dtype=np.float64)))
    hist = histogram(sample, levels=True)
    if hist.constant:
        return float(hist.centers[0])
    if method == "triangle":
        return _triangle_from_hist(hist.counts, hist.centers)
    if method == "li":
        return _li_from_hist(hist.counts, hist.centers)
    func = getattr(skimage_module(np.empty(0), "filters"), THRESHOLD_METHODS[method])
    return float(func(hist=(hist.counts, hist.centers)))


def _resolve_threshold(image: Any, *, method: str, value: float | None, plane: int | None) -> dict:
    if method == "manual":
        if value is None:
            raise ValueError("method='manual' needs a threshold value (value=...)")
    else:
        value = threshold_value(image, method=method, plane=plane)
    return {"method": method, "value": value, "plane": plane}


@operation(menu="segment", output="mask", dtype="bool", prepare=_resolve_threshold, vectorized=True,
           channels="luminance")
def threshold(
    image,
    *,
    method: ThresholdMethod = "otsu",
    value: float | None = None,
    plane: Annotated[int, Range(None, None)] | None = None,
):
    """Foreground mask: pixels brighter than a global threshold.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack of real values.
    method : {"otsu", "li", "yen", "triangle", "isodata", "mean", "minimum", "manual"}
        ``"manual"`` uses ``value``; the others compute it once with
        :func:`threshold_value` over the whole stack, or over frame ``plane``.
    value : float, optional
        The threshold for ``method="manual"`` (ignored otherwise).
    plane : int, optional
        Frame to compute the automatic threshold from (C-order index over the
        batch axes); ``None`` uses the whole stack.

    Returns
    -------
    array of bool, shape ``(..., M, N)``
        ``image > value``; no halo (pixel-wise).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[0, 1], [8, 9]], np.uint8)
    >>> threshold(img, method="manual", value=4).tolist()
    [[False, False], [True, True]]
    """
    return image > value


#: most occupied histogram levels multi-Otsu optimises over exactly; more are merged into this many bins
MULTIOTSU_LEVELS = 4096


def _multiotsu_thresholds(counts: np.ndarray, centers: np.ndarray, classes: int) -> np.ndarray:
    """The ``classes - 1`` thresholds maximising the between-class variance of a histogram.

    The optimum over every split of the occupied levels, found by dynamic
    programming (the criterion is a sum over classes, so the best split of the
    first ``j`` levels into ``k`` classes extends a best split into ``k - 1``):
    ``O(classes * levels**2)`` steps, instead of the ``levels**(classes - 1)``
    of an exhaustive search. Each threshold is the centre of the highest level
    of its lower class, as with ``skimage.filters.threshold_multiotsu``, whose
    thresholds these equal (up to ties its float32 arithmetic breaks
    differently). Histograms with more than :data:`MULTIOTSU_LEVELS` occupied
    levels are first merged into that many equal bins over their range.
    """
    counts = np.asarray(counts, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    occupied = counts > 0
    counts, centers = counts[occupied], centers[occupied]
    moments = counts * centers
    if counts.size > MULTIOTSU_LEVELS:  # merged bins keep their pixels' exact count and sum
        edges = np.linspace(centers[0], centers[-1], MULTIOTSU_LEVELS + 1)
        which = np.clip(np.searchsorted(edges, centers, side="right") - 1, 0, MULTIOTSU_LEVELS - 1)
        highest = np.full(MULTIOTSU_LEVELS, -np.inf)
        np.maximum.at(highest, which, centers)
        counts = np.bincount(which, weights=counts, minlength=MULTIOTSU_LEVELS)
        moments = np.bincount(which, weights=moments, minlength=MULTIOTSU_LEVELS)
        kept = counts > 0
        counts, moments, centers = counts[kept], moments[kept], highest[kept]
    if counts.size < classes:
        raise ValueError(
            f"the image has {counts.size} distinct values (after binning); it cannot be split into {classes} classes"
        )
    total = np.concatenate([[0.0], np.cumsum(counts)])
    moment = np.concatenate([[0.0], np.cumsum(moments)])
    n = counts.size
    # best[j]: the best criterion for levels [0, j) in k classes; choice[k][j]: where its last class starts
    with np.errstate(divide="ignore", invalid="ignore"):
        best = np.where(total[1:] > 0, moment[1:] ** 2 / total[1:], 0.0)
    best = np.concatenate([[-np.inf], best])
    choices = []
    starts = np.arange(n + 1)
    for k in range(2, classes + 1):
        new = np.full(n + 1, -np.inf)
        choice = np.zeros(n + 1, dtype=np.int64)
        for block in range(0, n + 1, 512):  # rows of ends j, all starts i < j at once
            ends = starts[block:block + 512, None]
            weight = total[ends] - total[None, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                score = best[None, :] + (moment[ends] - moment[None, :]) ** 2 / weight
            score[(starts[None, :] >= ends) | (starts[None, :] < k - 1)] = -np.inf
            choice[block:block + 512] = np.argmax(score, axis=1)
            new[block:block + 512] = score[np.arange(score.shape[0]), choice[block:block + 512]]
        best = new
        choices.append(choice)
    cuts, end = [], n
    for choice in reversed(choices):
        end = int(choice[end])
        cuts.append(end)
    return centers[np.array(cuts[::-1]) - 1]


def _multiotsu_histogram(sample: Any) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's histogram of a frame (one bin per level for integers, 256 otherwise), or a stack's."""
    if _backend.is_dask(sample):
        hist = histogram(sample, levels=True)
        return hist.counts, hist.centers
    counts, centers = skimage_module(sample, "exposure").histogram(sample.reshape(-1), nbins=256, source_range="image")
    return _backend.to_numpy(counts), _backend.to_numpy(centers)


def _resolve_multiotsu(image: Any, *, classes: int, plane: int | None, thresholds: tuple | None) -> dict:
    check_real(image)
    if thresholds is not None:
        if len(thresholds) != classes - 1 or list(thresholds) != sorted(thresholds):
            raise ValueError(f"thresholds must be {classes - 1} increasing values for classes={classes}, got {thresholds}")
        return {"classes": classes, "plane": plane, "thresholds": tuple(float(t) for t in thresholds)}
    counts, centers = _multiotsu_histogram(frame_at(image, plane))
    found = _multiotsu_thresholds(counts, centers, classes)
    return {"classes": classes, "plane": plane, "thresholds": tuple(float(t) for t in found)}


def _multiotsu_cost(shape: tuple, dtype: Any, classes: int, **_: Any) -> Cost:
    # the histogram pass, then (classes - 1) sweeps over levels x levels, about 5 ns each
    levels = min(MULTIOTSU_LEVELS, 256 if np.dtype(dtype).kind in "fc" else 2 ** (8 * np.dtype(dtype).itemsize))
    histogram_pass = pixelwise(shape, dtype, copies=2, ns_per_pixel=10)
    return Cost(max(histogram_pass.bytes, 8 * 512 * levels * 3), histogram_pass.seconds + (classes - 1) * levels**2 * 5e-9)


@operation(menu="segment", output="labels", dtype="labels", prepare=_resolve_multiotsu, vectorized=True,
           channels="luminance", cost=_multiotsu_cost)
def threshold_multiotsu(
    image,
    *,
    classes: Annotated[int, Range(2, 6)] = 3,
    plane: Annotated[int, Range(None, None)] | None = None,
    thresholds: tuple[float, ...] | None = None,
):
    """Split intensities into ``classes`` classes with multi-level Otsu thresholds.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack of real values.
    classes : int
        Number of classes (2 to 6).
    plane : int, optional
        Frame the thresholds are computed from (C-order index over the batch
        axes); ``None`` uses the whole stack.
    thresholds : tuple of float, optional
        ``classes - 1`` increasing thresholds to use instead of computing them.
        They are computed once, from scikit-image's histogram (one bin per
        level for integer data, 256 bins for float data; a two-pass histogram
        for dask input), by dynamic programming over the histogram's
        levels: the same thresholds as
        ``skimage.filters.threshold_multiotsu``, in milliseconds for any
        number of classes (scikit-image's search takes about 90 s for 6
        classes of 256 levels and is impractical for 16-bit data). Beyond
        4096 occupied levels the histogram is merged into 4096 bins first, so
        thresholds are within ``(max - min) / 4096`` of the optimum.

    Returns
    -------
    array of int32, shape ``(..., M, N)``
        Class index ``0 .. classes - 1`` of each pixel: class ``k`` holds
        ``thresholds[k-1] < value <= thresholds[k]``, so a pixel equal to a
        threshold falls in the lower class, as with :func:`threshold`; no halo.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.repeat([[0, 10, 50, 60, 100, 110]], 4, axis=0).astype(np.uint8)
    >>> threshold_multiotsu(img, classes=3)[0].tolist()
    [0, 0, 1, 1, 2, 2]
    """
    xp, _ = get_namespace(image)
    return xp.digitize(image, xp.asarray(thresholds), right=True).astype(np.int32)


# --------------------------------------------------------------------------- local thresholds
def _check_odd(name: str, value: int) -> None:
    if value % 2 == 0:
        raise ValueError(f"{name} must be odd, got {value}")


def _local_halo(block_size: int, **_: Any) -> int:
    # gaussian: sigma = (block_size - 1) / 6, truncated at 4 sigma; mean/median: block_size // 2
    return max(block_size // 2, math.ceil(4 * (block_size - 1) / 6) + 1)


def _validate_block(image: Any, **params: Any) -> dict:
    _check_odd("block_size", params["block_size"])
    return params


def _local_cost(shape: tuple, dtype: Any, block_size: int, method: str, **_: Any) -> Cost:
    if method == "median":
        return rank_cost(shape, dtype, block_size, block_size ** len(shape) // 2)
    taps = 2 * (_local_halo(block_size) if method == "gaussian" else 1) + 1  # a mean is a running sum
    return pixelwise(shape, dtype, ns_per_pixel=20 + 2 * taps * len(shape))


@operation(menu="segment", output="mask", dtype="bool", halo=_local_halo, prepare=_validate_block,
           channels="luminance", cost=_local_cost)
def threshold_local(
    image,
    *,
    block_size: Annotated[int, Range(3, 1001)] = 35,
    method: Literal["gaussian", "mean", "median"] = "gaussian",
    offset: float = 0.0,
    mode: BoundaryMode = "reflect",
):
    """Adaptive mask: pixels brighter than their neighbourhood's weighted mean minus ``offset``.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; each frame is thresholded on its own.
    block_size : int
        Odd side of the neighbourhood in pixels.
    method : {"gaussian", "mean", "median"}
        Neighbourhood statistic (``"gaussian"``: sigma ``(block_size - 1) / 6``).
    offset : float
        Subtracted from the local statistic (image units).
    mode : str
        How frames are extended past their border.

    Returns
    -------
    array of bool, shape ``(..., M, N)``
        ``image > skimage.filters.threshold_local(image, ...)``. Halo:
        ``max(block_size // 2, ceil(4 (block_size - 1) / 6) + 1)`` pixels.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(20.0), (20, 1)); ramp[10, 10] += 5
    >>> bool(threshold_local(ramp, block_size=5, offset=1)[10, 10])
    True
    """
    if method == "median":  # skimage's value (a median of the frame in float), by an exact sliding histogram
        local = rank_filter(image, block_size**image.ndim // 2, block_size, mode)
        return image > local.astype(np.float64 if image.dtype.kind in "biu" else float_dtype(image.dtype)) - offset
    filters = skimage_module(image, "filters")
    return image > filters.threshold_local(image, block_size, method=method, offset=offset, mode=mode)


def _window_halo(window_size: int, **_: Any) -> int:
    return window_size // 2 + 1


def _validate_window(image: Any, **params: Any) -> dict:
    _check_odd("window_size", params["window_size"])
    return params


@operation(menu="segment", output="mask", dtype="bool", halo=_window_halo, prepare=_validate_window,
           channels="luminance")
def threshold_niblack(
    image,
    *,
    window_size: Annotated[int, Range(3, 1001)] = 15,
    k: Annotated[float, Range(-10, 10)] = 0.2,
):
    """Niblack local mask: ``image > mean - k * std`` over a sliding window.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; each frame is thresholded on its own.
    window_size : int
        Odd side of the window in pixels.
    k : float
        Weight of the local standard deviation.

    Returns
    -------
    array of bool, shape ``(..., M, N)``
        ``image > skimage.filters.threshold_niblack(image, window_size, k)``;
        halo ``window_size // 2 + 1`` pixels.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((15, 15)); img[7, 7] = 10
    >>> int(threshold_niblack(img, window_size=5).sum())
    1
    """
    filters = skimage_module(image, "filters")
    return image > filters.threshold_niblack(image, window_size=window_size, k=k)


def _resolve_sauvola(image: Any, **params: Any) -> dict:
    params = _validate_window(image, **params)
    if params["r"] is None:
        # Half the data's own range, not the dtype's (scikit-image: 1 for floats, 127.5 for uint8):
        # the same counts give the same mask in any dtype.
        params["r"] = 0.5 * stack_range(image) or 1.0
    return params


@operation(menu="segment", output="mask", dtype="bool", halo=_window_halo, prepare=_resolve_sauvola,
           channels="luminance")
def threshold_sauvola(
    image,
    *,
    window_size: Annotated[int, Range(3, 1001)] = 15,
    k: Annotated[float, Range(-10, 10)] = 0.2,
    r: Annotated[float, Range(0, None, low_inclusive=False)] | None = None,
):
    """Sauvola local mask: ``image > mean * (1 + k (std / r - 1))`` over a sliding window.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; each frame is thresholded on its own.
    window_size : int
        Odd side of the window in pixels.
    k : float
        Weight of the local standard deviation.
    r : float, optional
        Dynamic range of the standard deviation, in the units of the image.
        ``None`` uses half the intensity range ``max - min`` of the whole
        input (:func:`napari_stacklab.filters.stack_range`, computed once), so
        the same counts give the same mask in any dtype. This equals
        scikit-image's default (half the *dtype's* range, 127.5) for an 8-bit
        image spanning 0-255; scikit-image uses 1 for any float image.

    Returns
    -------
    array of bool, shape ``(..., M, N)``
        ``image > skimage.filters.threshold_sauvola(image, window_size, k, r)``;
        halo ``window_size // 2 + 1`` pixels.

    Examples
    --------
    >>> import numpy as np
    >>> page = np.full((15, 15), 200, np.uint8); page[7, 7] = 20   # one dark ink dot
    >>> int((~threshold_sauvola(page, window_size=5)).sum())
    1
    """
    filters = skimage_module(image, "filters")
    return image > filters.threshold_sauvola(image, window_size=window_size, k=k, r=r)


# --------------------------------------------------------------------------- labels
def _check_connectivity(image: Any, **params: Any) -> dict:
    check_connectivity(params["connectivity"], mode_ndim(params["mode"]))
    return params


@operation(menu="segment", output="labels", dtype="labels", frame_ndim=mode_ndim, prepare=_check_connectivity)
def label(
    image,
    *,
    mode: Mode = "2d",
    connectivity: Annotated[int, Range(1, 3)] | None = None,
):
    """Connected components of a mask (every non-zero pixel is foreground).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Mask, labels or any image (non-zero = foreground).
    mode : {"2d", "3d"}
        ``"2d"`` labels every plane ``(M, N)`` on its own (labels are unique
        within a frame; lazy per frame for dask, e.g. a time lapse);
        ``"3d"`` labels volumes ``(P, M, N)`` (the last three axes).
    connectivity : int, optional
        Neighbours counted as connected: 1 (faces) up to the frame
        dimensionality (full, the default).

    Returns
    -------
    array of int32, shape ``(..., M, N)``
        0 is background, objects are 1, 2, ... in raster order (as
        ``skimage.measure.label``). Whole frames per chunk, no halo.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.array([[1, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 1]], bool)
    >>> label(mask).tolist()
    [[1, 1, 0, 0], [0, 0, 0, 2], [3, 0, 0, 2]]
    """
    labels = skimage_module(image, "measure").label(image != 0, connectivity=connectivity)
    return labels.astype(np.int32, copy=False)


def _markers_from_peaks(surface: Any, min_distance: int, labels: Any | None) -> Any:
    """Label image with one marker per local maximum of ``surface`` (adjacent peaks merged)."""
    xp, ndi = get_namespace(surface)
    # scikit-image's window, 2 * min_distance + 1 a side, cut to 2 * n - 1 along an axis of n pixels: from
    # any pixel that already spans the whole axis, so the peaks are the same (a 2001**3 window is 7.5 GiB)
    footprint = np.ones(tuple(min(2 * min_distance + 1, 2 * n - 1) for n in surface.shape), dtype=bool)
    coords = skimage_module(surface, "feature").peak_local_max(
        surface, min_distance=min_distance, labels=labels, footprint=xp.asarray(footprint)
    )
    peaks = xp.zeros(surface.shape, dtype=bool)
    peaks[tuple(coords.T)] = True
    return ndi.label(peaks)[0]


@operation(menu="segment", output="labels", dtype="labels", frame_ndim=mode_ndim, channels="luminance")
def watershed(
    image,
    *,
    markers: Annotated[ImageRef, PerFrame] | None = None,
    landscape: Literal["distance", "intensity"] = "distance",
    min_distance: Annotated[int, Range(1, 1000)] = 5,
    compactness: Annotated[float, Range(0, None)] = 0.0,
    watershed_line: bool = False,
    mode: Mode = "2d",
):
    """Split touching objects by flooding from markers.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        With ``landscape="distance"``: a mask (non-zero = foreground), flooded
        on its negated Euclidean distance transform, so touching round objects
        are cut at their necks. With ``landscape="intensity"``: an image whose
        dark valleys are flooded (e.g. a gradient magnitude); every pixel is
        assigned.
    markers : array of int, optional
        Seed labels, shape of one frame (used for every frame) or of ``image``;
        e.g. from :func:`napari_stacklab.measure.points_to_markers`. ``None``
        places one marker per distance maximum (``"distance"``) or intensity
        minimum (``"intensity"``) at least ``min_distance`` pixels apart.
    landscape : {"distance", "intensity"}
        What is flooded (see ``image``).
    min_distance : int
        Minimum distance in pixels between automatic markers.
    compactness : float
        0 for the classic watershed; larger values give more regular regions.
    watershed_line : bool
        Keep a one-pixel background line between regions.
    mode : {"2d", "3d"}
        Planes ``(M, N)`` or volumes ``(P, M, N)``.

    Returns
    -------
    array of int32, shape ``(..., M, N)``
        Labels; whole frames per chunk, no halo.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:40, :60]
    >>> mask = ((yy - 20) ** 2 + (xx - 18) ** 2 < 144) | ((yy - 20) ** 2 + (xx - 40) ** 2 < 144)
    >>> int(watershed(mask, min_distance=8).max())
    2
    """
    xp, ndi = get_namespace(image)
    if landscape == "distance":
        mask = image != 0
        distance = ndi.distance_transform_edt(mask)
        if markers is None:
            markers = _markers_from_peaks(distance, min_distance, ndi.label(mask)[0])
        surface = -distance
    else:
        mask = None
        surface = image
        if markers is None:
            markers = _markers_from_peaks(-image.astype(float_dtype(image.dtype)), min_distance, None)
    labels = skimage_module(image, "segmentation").watershed(
        surface, markers, mask=mask, compactness=compactness, watershed_line=watershed_line
    )
    return labels.astype(np.int32, copy=False)


@operation(menu="segment", output="labels", dtype="labels", halo=lambda distance, **_: math.ceil(distance) + 1)
def expand_labels(
    image,
    *,
    distance: Annotated[float, Range(0, 1000)] = 1.0,
):
    """Grow every label by ``distance`` pixels into the background, without overlap.

    Parameters
    ----------
    image : array of int, shape ``(..., M, N)``
        Labels; each frame is expanded on its own.
    distance : float
        Euclidean growth distance in pixels.

    Returns
    -------
    array of int32, shape ``(..., M, N)``
        ``skimage.segmentation.expand_labels``; halo ``ceil(distance) + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> row = np.array([[0, 1, 0, 0, 0, 2, 0]])
    >>> expand_labels(row, distance=1).tolist()
    [[1, 1, 1, 0, 2, 2, 2]]
    """
    labels = skimage_module(image, "segmentation").expand_labels(image, distance=distance)
    return labels.astype(np.int32, copy=False)
