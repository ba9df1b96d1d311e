"""Smoothing, rank, edge, intensity and frequency filters, frame by frame.

Every function here takes an image or a stack ``(..., M, N)`` (NumPy, dask or
CuPy), filters each frame independently, and returns the same kind of array;
dask input stays lazy. Physical counts are never rescaled to [0, 1].
"""

from __future__ import annotations

import math
import warnings
from typing import Annotated, Literal

import numpy as np

from . import _backend
from ._backend import get_namespace, skimage_module
from ._validation import as_float, float_dtype
from .lift import frame_at
from .registry import ImageRef, Range, operation

__all__ = [
    "gaussian",
    "median",
    "mean_filter",
    "minimum_filter",
    "maximum_filter",
    "percentile_filter",
    "bilateral",
    "unsharp_mask",
    "sobel",
    "scharr",
    "prewitt",
    "laplace",
    "gaussian_laplace",
    "difference_of_gaussians",
    "canny",
    "rescale_percentile",
    "adjust_gamma",
    "adjust_gain",
    "adjust_log",
    "clahe",
    "equalize_hist",
    "match_histograms",
    "adjust_saturation",
    "lowpass",
    "highpass",
    "bandpass",
    "fft_amplitude",
    "stack_percentiles",
    "stack_range",
]

BoundaryMode = Literal["reflect", "nearest", "mirror", "wrap", "constant"]


def _max_sigma(sigma) -> float:
    return max(sigma) if isinstance(sigma, tuple) else sigma


@operation(
    menu="filter",
    halo=lambda sigma, truncate, **_: math.ceil(truncate * _max_sigma(sigma)),
)
def gaussian(
    image,
    *,
    sigma: Annotated[float | tuple[float, ...], Range(0, 1000)] = 1.0,
    truncate: Annotated[float, Range(0.5, 20)] = 4.0,
    mode: BoundaryMode = "reflect",
):
    """Gaussian smoothing of each frame.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes (time, z, channel, scan) are filtered
        independently.
    sigma : float or tuple of float
        Standard deviation in pixels, one value or one per frame axis
        ``(sigma_y, sigma_x)``. For a sigma in physical units (e.g. 0.2 µm)
        divide by the pixel size of each axis, e.g. with a napari layer or an
        :class:`~napari_stacklab.io.Image`:
        ``sigma=tuple(0.2 / s for s in img.scale[-2:])``.
    truncate : float
        Kernel radius in standard deviations; the halo is
        ``ceil(truncate * max(sigma))`` pixels.
    mode : str
        How the frame is extended past its border (``scipy.ndimage`` modes).

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input); values keep their physical scale.

    Examples
    --------
    >>> import numpy as np
    >>> impulse = np.zeros((9, 9), np.uint16); impulse[4, 4] = 1000
    >>> out = gaussian(impulse, sigma=1)
    >>> out.dtype, round(float(out.sum()))
    (dtype('float32'), 1000)
    """
    xp, ndi = get_namespace(image)
    return ndi.gaussian_filter(image.astype(float_dtype(image.dtype), copy=False), sigma, truncate=truncate, mode=mode)


@operation(menu="filter", halo=lambda size, **_: size // 2, dtype="same")
def median(
    image,
    *,
    size: Annotated[int, Range(1, 255)] = 3,
    mode: BoundaryMode = "reflect",
):
    """Median filter of each frame over a ``size x size`` square.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    size : int
        Side of the square neighbourhood in pixels; the halo is ``size // 2``.
    mode : str
        How the frame is extended past its border.

    Returns
    -------
    array, shape ``(..., M, N)``
        Same dtype as the input (a median is one of the input values).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((5, 5), np.uint8); img[2, 2] = 255   # a hot pixel
    >>> int(median(img, size=3).max())
    0
    """
    xp, ndi = get_namespace(image)
    return ndi.median_filter(image, size=size, mode=mode)


# --------------------------------------------------------------------------- helpers



def _half(size, **_):
    return size // 2


def _zero_halo(**_):
    return 0


_HIST_BINS = 65536


def stack_percentiles(image, percentiles, *, plane=None):
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
        xp, _ = get_namespace(sample)
        return np.asarray(_backend.materialize(xp.percentile(sample.astype(xp.float64), xp.asarray(q))), np.float64)
    da = _backend.dask_module()
    low, high = _backend.materialize(da.stack([sample.min(), sample.max()]).astype(np.float64))
    if low == high:
        return np.full(q.shape, low)
    counts, edges = da.histogram(sample, bins=_HIST_BINS, range=(low, high))
    cumulative = np.cumsum(_backend.materialize(counts))
    centers = (edges[:-1] + edges[1:]) / 2
    # numpy's "linear" method: interpolate between the order statistics around rank (n - 1) * q
    rank = (cumulative[-1] - 1) * q / 100.0
    below = np.floor(rank)
    lower = centers[np.searchsorted(cumulative, below, side="right")]
    upper = centers[np.searchsorted(cumulative, np.minimum(below + 1, cumulative[-1] - 1), side="right")]
    return lower + (rank - below) * (upper - lower)


def stack_range(image) -> float:
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
    # NumPy functions dispatch to CuPy and to dask (NEP 18), so this works for lazy GPU stacks too
    values = image.astype(np.uint8) if image.dtype == bool else image
    if np.dtype(values.dtype).kind == "f":
        values = np.where(np.isfinite(values), values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN input: handled below
        low, high = _backend.materialize(np.stack([np.nanmin(values), np.nanmax(values)]).astype(np.float64))
    span = float(high) - float(low)
    return span if math.isfinite(span) else 0.0


def _stack_max(image):
    xp, _ = get_namespace(image)
    return float(_backend.materialize(abs(image).max()))


# --------------------------------------------------------------------------- smoothing and rank


@operation(menu="filter", halo=_half)
def mean_filter(
    image,
    *,
    size: Annotated[int, Range(1, 255)] = 3,
    mode: BoundaryMode = "reflect",
):
    """Mean (uniform) filter of each frame over a ``size x size`` square.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    size : int
        Side of the square neighbourhood in pixels; the halo is ``size // 2``.
    mode : str
        How the frame is extended past its border (``scipy.ndimage`` modes).

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), in the units of the input.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((5, 5), np.uint8); img[2, 2] = 9
    >>> float(mean_filter(img, size=3)[2, 2])
    1.0
    """
    xp, ndi = get_namespace(image)
    return ndi.uniform_filter(as_float(image), size=size, mode=mode)


@operation(menu="filter", halo=_half, dtype="same")
def minimum_filter(
    image,
    *,
    size: Annotated[int, Range(1, 255)] = 3,
    mode: BoundaryMode = "reflect",
):
    """Minimum (grey erosion) filter of each frame over a ``size x size`` square.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    size : int
        Side of the square neighbourhood in pixels; the halo is ``size // 2``.
    mode : str
        How the frame is extended past its border.

    Returns
    -------
    array, shape ``(..., M, N)``
        Same dtype as the input.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((5, 5), 7, np.uint8); img[2, 2] = 1
    >>> int(minimum_filter(img, size=3)[1, 1])
    1
    """
    xp, ndi = get_namespace(image)
    return ndi.minimum_filter(image, size=size, mode=mode)


@operation(menu="filter", halo=_half, dtype="same")
def maximum_filter(
    image,
    *,
    size: Annotated[int, Range(1, 255)] = 3,
    mode: BoundaryMode = "reflect",
):
    """Maximum (grey dilation) filter of each frame over a ``size x size`` square.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    size : int
        Side of the square neighbourhood in pixels; the halo is ``size // 2``.
    mode : str
        How the frame is extended past its border.

    Returns
    -------
    array, shape ``(..., M, N)``
        Same dtype as the input.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((5, 5), np.uint8); img[2, 2] = 9
    >>> int(maximum_filter(img, size=3).sum())
    81
    """
    xp, ndi = get_namespace(image)
    return ndi.maximum_filter(image, size=size, mode=mode)


@operation(menu="filter", halo=_half, dtype="same")
def percentile_filter(
    image,
    *,
    percentile: Annotated[float, Range(0, 100)] = 50.0,
    size: Annotated[int, Range(1, 255)] = 3,
    mode: BoundaryMode = "reflect",
):
    """Rank filter of each frame: the given percentile of a ``size x size`` square.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    percentile : float
        0 is the minimum, 50 the median, 100 the maximum.
    size : int
        Side of the square neighbourhood in pixels; the halo is ``size // 2``.
    mode : str
        How the frame is extended past its border.

    Returns
    -------
    array, shape ``(..., M, N)``
        Same dtype as the input (the result is one of the input values).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(25, dtype=np.uint8).reshape(5, 5)
    >>> int(percentile_filter(img, percentile=100, size=3)[2, 2])
    18
    """
    xp, ndi = get_namespace(image)
    return ndi.percentile_filter(image, percentile, size=size, mode=mode)


@operation(menu="filter")
def bilateral(
    image,
    *,
    sigma_spatial: Annotated[float, Range(0.1, 50)] = 1.0,
    sigma_color: Annotated[float, Range(0, None, low_inclusive=False)] | None = None,
    bins: Annotated[int, Range(16, 1_000_000)] = 10000,
    mode: Literal["constant", "edge", "symmetric", "reflect", "wrap"] = "constant",
):
    """Edge-preserving bilateral smoothing of each frame.

    Each pixel becomes a weighted mean of its neighbours, weighted by distance
    (``sigma_spatial``) *and* by grey-value difference (``sigma_color``), so
    noise is smoothed but edges stay sharp. Runs
    ``skimage.restoration.denoise_bilateral`` on each whole frame; the frame
    is scaled to [0, 1] internally (scikit-image needs it) and scaled back,
    so the output keeps the input's counts.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    sigma_spatial : float
        Spatial standard deviation in pixels (window ``max(5, 2*ceil(3*sigma)+1)``).
    sigma_color : float, optional
        Grey-value standard deviation **in the units of the image** (counts);
        ``None`` uses the standard deviation of each frame.
    bins : int
        Number of discrete grey-value weights (precision of the colour kernel).
    mode : str
        How the frame is extended past its border.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), in the units of the input.
        Frames are never split (no halo): it is a whole-frame operation.

    Examples
    --------
    >>> import numpy as np
    >>> step = np.zeros((8, 8), np.uint16); step[:, 4:] = 1000
    >>> out = bilateral(step, sigma_spatial=1, sigma_color=50)
    >>> out.dtype, round(float(out[0, 0])), round(float(out[0, 7]))
    (dtype('float32'), 0, 1000)
    """
    frame = as_float(image)
    low, high = float(frame.min()), float(frame.max())
    if high == low:
        return frame
    span = high - low
    scaled = (frame - low) / span
    color = None if sigma_color is None else sigma_color / span
    out = skimage_module(image, "restoration").denoise_bilateral(
        scaled, sigma_color=color, sigma_spatial=sigma_spatial, bins=bins, mode=mode
    )
    return (out * span + low).astype(frame.dtype, copy=False)


@operation(menu="filter", halo=lambda radius, **_: math.ceil(4 * radius))
def unsharp_mask(
    image,
    *,
    radius: Annotated[float, Range(0.1, 200)] = 1.0,
    amount: Annotated[float, Range(-10, 100)] = 1.0,
):
    """Sharpen each frame: ``image + amount * (image - gaussian(image, radius))``.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    radius : float
        Standard deviation of the Gaussian blur in pixels; the halo is
        ``ceil(4 * radius)``.
    amount : float
        Strength of the sharpening (0 returns the input as float).

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), in the units of the input; not
        clipped and never rescaled (scikit-image's ``preserve_range=True``,
        ``clip=False``), so values may overshoot below 0 or above the maximum.

    Examples
    --------
    >>> import numpy as np
    >>> step = np.zeros((6, 6), np.uint8); step[:, 3:] = 100
    >>> out = unsharp_mask(step, radius=1, amount=1)
    >>> bool(out[0, 3] > 100 and out[0, 2] < 0)
    True
    """
    xp, ndi = get_namespace(image)
    frame = as_float(image)
    blurred = ndi.gaussian_filter(frame, radius, mode="reflect", truncate=4.0)
    return frame + amount * (frame - blurred)


# --------------------------------------------------------------------------- edges and derivatives

EdgeAxis = Literal["magnitude", "y", "x"]
_AXES = {"magnitude": None, "y": 0, "x": 1}


def _edge(image, name, axis, mode):
    return getattr(skimage_module(image, "filters"), name)(as_float(image), axis=_AXES[axis], mode=mode)


_EDGE_DOC = """{title} edge filter of each frame.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    axis : {{"magnitude", "y", "x"}}
        ``"magnitude"``: ``sqrt((gy**2 + gx**2) / 2)`` (scikit-image's
        normalisation); ``"y"``/``"x"``: the signed derivative along rows or columns.
    mode : str
        How the frame is extended past its border.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), never rescaled: a ramp rising
        ``s`` counts per pixel gives ``2 * s`` (central difference). The halo
        is 1 pixel. Same as ``skimage.filters.{name}`` on the float image.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(6, dtype=np.uint8) * 10, (6, 1))
    >>> round(float({name}(ramp, axis="x")[3, 3]), 3), round(float({name}(ramp, axis="y")[3, 3]), 3)
    (20.0, 0.0)
    """


def _edge_operation(name, title):
    def kernel(image, *, axis: EdgeAxis = "magnitude", mode: BoundaryMode = "reflect"):
        return _edge(image, name, axis, mode)

    kernel.__name__ = kernel.__qualname__ = name
    kernel.__module__ = __name__
    kernel.__doc__ = _EDGE_DOC.format(title=title, name=name)
    return operation(menu="filter", halo=lambda **_: 1)(kernel)


sobel = _edge_operation("sobel", "Sobel")
scharr = _edge_operation("scharr", "Scharr")
prewitt = _edge_operation("prewitt", "Prewitt")


@operation(menu="filter", halo=lambda **_: 1)
def laplace(image, *, mode: BoundaryMode = "reflect"):
    """Discrete Laplacian of each frame (``scipy.ndimage.laplace``).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    mode : str
        How the frame is extended past its border.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input): the sum of second differences
        (negative on bright spots); the halo is 1 pixel.

    Examples
    --------
    >>> import numpy as np
    >>> spot = np.zeros((5, 5), np.uint8); spot[2, 2] = 1
    >>> float(laplace(spot)[2, 2])
    -4.0
    """
    xp, ndi = get_namespace(image)
    return ndi.laplace(as_float(image), mode=mode)


@operation(menu="filter", halo=lambda sigma, truncate, **_: math.ceil(truncate * _max_sigma(sigma)) + 1)
def gaussian_laplace(
    image,
    *,
    sigma: Annotated[float | tuple[float, ...], Range(0.1, 1000)] = 2.0,
    truncate: Annotated[float, Range(0.5, 20)] = 4.0,
    mode: BoundaryMode = "reflect",
):
    """Laplacian of Gaussian (LoG) of each frame, a blob and edge detector.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    sigma : float or tuple of float
        Gaussian standard deviation in pixels, one value or one per frame axis.
    truncate : float
        Kernel radius in standard deviations; the halo is
        ``ceil(truncate * max(sigma)) + 1``.
    mode : str
        How the frame is extended past its border.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), ``scipy.ndimage.gaussian_laplace``
        (strongly negative at the centre of bright blobs of radius ~ ``sigma*sqrt(2)``).

    Examples
    --------
    >>> import numpy as np
    >>> spot = np.zeros((15, 15)); spot[7, 7] = 1
    >>> out = gaussian_laplace(spot, sigma=2)
    >>> tuple(int(i) for i in np.unravel_index(out.argmin(), out.shape))
    (7, 7)
    """
    xp, ndi = get_namespace(image)
    return ndi.gaussian_laplace(as_float(image), sigma, mode=mode, truncate=truncate)


def _dog_high(low_sigma, high_sigma):
    return 1.6 * low_sigma if high_sigma is None else high_sigma


def _check_dog(image, **params):
    high = _dog_high(params["low_sigma"], params["high_sigma"])
    if high <= params["low_sigma"]:
        raise ValueError(f"high_sigma must be larger than low_sigma, got {high} <= {params['low_sigma']}")
    return {**params, "high_sigma": high}


@operation(
    menu="filter",
    prepare=_check_dog,
    halo=lambda low_sigma, high_sigma, truncate, **_: math.ceil(truncate * _dog_high(low_sigma, high_sigma)),
)
def difference_of_gaussians(
    image,
    *,
    low_sigma: Annotated[float, Range(0.1, 1000)] = 1.0,
    high_sigma: Annotated[float, Range(0.1, 1000)] | None = None,
    truncate: Annotated[float, Range(0.5, 20)] = 4.0,
    mode: BoundaryMode = "nearest",
):
    """Band-pass by difference of Gaussians: ``gaussian(low_sigma) - gaussian(high_sigma)``.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    low_sigma : float
        Smaller standard deviation in pixels (removes noise finer than this).
    high_sigma : float, optional
        Larger standard deviation in pixels (removes background coarser than
        this); default ``1.6 * low_sigma``. Must exceed ``low_sigma``.
    truncate : float
        Kernel radius in standard deviations; the halo is
        ``ceil(truncate * high_sigma)``.
    mode : str
        How the frame is extended past its border (scikit-image's default ``"nearest"``).

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), in the units of the input; equals
        ``skimage.filters.difference_of_gaussians`` on the float image.

    Examples
    --------
    >>> import numpy as np
    >>> flat = np.full((9, 9), 500, np.uint16)
    >>> float(abs(difference_of_gaussians(flat, low_sigma=1, high_sigma=3)).max())
    0.0
    """
    xp, ndi = get_namespace(image)
    frame = as_float(image)
    return ndi.gaussian_filter(frame, low_sigma, mode=mode, truncate=truncate) - ndi.gaussian_filter(
        frame, high_sigma, mode=mode, truncate=truncate
    )


_CANNY_LOW, _CANNY_HIGH = 0.1, 0.2


def _check_canny(image, **params):
    low, high = params["low_threshold"], params["high_threshold"]
    if params["use_quantiles"]:
        for name in ("low_threshold", "high_threshold"):
            value = params[name]
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} must be a quantile in [0, 1] when use_quantiles=True, got {value}")
    if low is not None and high is not None and high < low:
        raise ValueError(f"high_threshold must be >= low_threshold, got {high} < {low}")
    if not params["use_quantiles"] and (low is None or high is None):
        # Defaults relative to the data's own range, not the dtype's: 12-bit counts in uint16
        # or counts in float64 get the same edges as in uint8 (scikit-image's defaults differ).
        span = stack_range(image) or 1.0
        low = _CANNY_LOW * span if low is None else low
        high = max(_CANNY_HIGH * span, low) if high is None else high
        params = {**params, "low_threshold": low, "high_threshold": high}
    return params


@operation(menu="filter", output="mask", dtype="bool", prepare=_check_canny)
def canny(
    image,
    *,
    sigma: Annotated[float, Range(0, 100)] = 1.0,
    low_threshold: Annotated[float, Range(0, None)] | None = None,
    high_threshold: Annotated[float, Range(0, None)] | None = None,
    use_quantiles: bool = False,
):
    """Canny edge detector on each frame: thin, connected edges as a mask.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are processed independently.
    sigma : float
        Gaussian smoothing before the gradient, in pixels.
    low_threshold, high_threshold : float, optional
        Hysteresis thresholds on the gradient magnitude, **in the units of the
        image** (counts per pixel), or quantiles in [0, 1] of each frame's
        gradient magnitude with ``use_quantiles=True``. ``None`` uses 10 % /
        20 % of the intensity range ``max - min`` of the whole input
        (:func:`stack_range`, computed once), so the same counts give the
        same edges in any dtype. (scikit-image's defaults are 10 % / 20 % of
        the *dtype's* maximum: the same on an 8-bit image that spans 0-255,
        but 0.1 count for float data and 6554 counts for 12-bit data stored
        as uint16.) With ``use_quantiles``, ``None`` means the 0.1 / 0.2 quantiles.
    use_quantiles : bool
        Read the thresholds as quantiles.

    Returns
    -------
    array of bool, shape ``(..., M, N)``
        Edge pixels (``skimage.feature.canny``). Frames are never split (edge
        linking is global within a frame).

    Examples
    --------
    >>> import numpy as np
    >>> square = np.zeros((20, 20), np.uint8); square[5:15, 5:15] = 200
    >>> edges = canny(square, sigma=1, low_threshold=20, high_threshold=60)
    >>> edges.dtype, bool(edges[5:15, 4:6].any()), bool(edges[10, 10])
    (dtype('bool'), True, False)
    """
    frame = image if np.dtype(image.dtype).itemsize <= 2 else as_float(image)
    return skimage_module(image, "feature").canny(
        frame, sigma=sigma, low_threshold=low_threshold, high_threshold=high_threshold, use_quantiles=use_quantiles
    )


# --------------------------------------------------------------------------- intensity


def _resolve_percentiles(image, **params):
    if params["high"] <= params["low"]:
        raise ValueError(f"high must be larger than low, got {params['high']} <= {params['low']}")
    vmin, vmax = params["vmin"], params["vmax"]
    if vmin is None or vmax is None:
        found = stack_percentiles(image, [params["low"], params["high"]], plane=params["plane"])
        vmin = float(found[0]) if vmin is None else vmin
        vmax = float(found[1]) if vmax is None else vmax
    return {**params, "vmin": vmin, "vmax": vmax}


@operation(menu="filter", prepare=_resolve_percentiles, halo=_zero_halo, vectorized=True)
def rescale_percentile(
    image,
    *,
    low: Annotated[float, Range(0, 100)] = 1.0,
    high: Annotated[float, Range(0, 100)] = 99.8,
    plane: Annotated[int, Range(None, None)] | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
):
    """Contrast stretch: map the ``low``/``high`` percentiles to 0 and 1, clipped.

    Here rescaling **is** the point: the output is a normalised float image in
    [0, 1], not counts. The percentiles are computed **once** over the whole
    stack (or one frame, ``plane``) before the lazy graph is built, so every
    frame gets the same mapping and scrolling never rescans the stack.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    low, high : float
        Percentiles (0-100) mapped to 0 and 1.
    plane : int, optional
        Compute the percentiles from this frame only (C-order index over the
        batch axes); ``None`` uses every pixel.
    vmin, vmax : float, optional
        Explicit values mapped to 0 and 1 (skip the percentile computation).

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input) in [0, 1]; pixel-wise (no halo).
        Dask input: percentiles from a 65536-bin histogram (see
        :func:`stack_percentiles`).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(101, dtype=np.uint16).reshape(1, 101)
    >>> out = rescale_percentile(img, low=10, high=90)
    >>> float(out[0, 10]), float(out[0, 50]), float(out[0, 100])
    (0.0, 0.5, 1.0)
    """
    xp, _ = get_namespace(image)
    frame = as_float(image)
    span = vmax - vmin if vmax != vmin else 1.0
    return xp.clip((frame - vmin) / span, 0, 1).astype(frame.dtype, copy=False)


def _resolve_vmax(image, **params):
    if params["vmax"] is None:
        params = {**params, "vmax": _stack_max(image) or 1.0}
    return params


@operation(menu="filter", prepare=_resolve_vmax, halo=_zero_halo, vectorized=True)
def adjust_gamma(
    image,
    *,
    gamma: Annotated[float, Range(0, 20, low_inclusive=False)] = 1.0,
    vmax: Annotated[float, Range(0, None, low_inclusive=False)] | None = None,
):
    """Gamma correction that keeps the range: ``vmax * (image / vmax) ** gamma``.

    ``gamma < 1`` brightens dark regions, ``gamma > 1`` darkens them; 0 and
    ``vmax`` are fixed points, so counts keep their scale.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    gamma : float
        Exponent (> 0).
    vmax : float, optional
        Value that maps to itself; ``None`` uses the maximum of ``|image|``
        over the whole stack, computed once.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input); pixel-wise (no halo). Negative
        values keep their sign (``-vmax * (|x| / vmax) ** gamma``). For
        images in [0, 1] with ``vmax=1`` this is ``skimage.exposure.adjust_gamma``.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[0, 25, 100]], np.uint8)
    >>> adjust_gamma(img, gamma=0.5).tolist()
    [[0.0, 50.0, 100.0]]
    """
    xp, _ = get_namespace(image)
    frame = as_float(image)
    return (xp.sign(frame) * vmax * (xp.abs(frame) / vmax) ** gamma).astype(frame.dtype, copy=False)


@operation(menu="filter", halo=_zero_halo, vectorized=True)
def adjust_gain(
    image,
    *,
    gain: Annotated[float, Range(-1e6, 1e6)] = 1.0,
    offset: Annotated[float, Range(-1e12, 1e12)] = 0.0,
):
    """Linear brightness change: ``gain * image + offset``.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    gain : float
        Multiplier (contrast).
    offset : float
        Added after the gain, in the units of the image (brightness).

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), not clipped; pixel-wise (no halo).

    Examples
    --------
    >>> import numpy as np
    >>> adjust_gain(np.array([[250]], np.uint8), gain=2, offset=-10).tolist()
    [[490.0]]
    """
    return (as_float(image) * gain + offset).astype(float_dtype(image.dtype), copy=False)


@operation(menu="filter", halo=_zero_halo, vectorized=True)
def adjust_log(image, *, gain: Annotated[float, Range(-1e6, 1e6)] = 1.0):
    """Logarithmic display transform: ``gain * log(1 + max(image, 0))``.

    Compresses a large dynamic range (diffraction patterns, FFT amplitudes)
    so that faint and bright features are visible together.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack of non-negative counts; negative values are treated as 0.
    gain : float
        Multiplier applied after the logarithm.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input); pixel-wise (no halo).

    Examples
    --------
    >>> import numpy as np
    >>> out = adjust_log(np.array([[0, np.e - 1, -5]]))
    >>> [round(float(v), 6) for v in out[0]]
    [0.0, 1.0, 0.0]
    """
    xp, _ = get_namespace(image)
    frame = as_float(image)
    return (gain * xp.log1p(xp.maximum(frame, 0))).astype(frame.dtype, copy=False)


@operation(menu="filter")
def clahe(
    image,
    *,
    clip_limit: Annotated[float, Range(0, 1)] = 0.01,
    kernel_size: Annotated[int, Range(2, 10000)] | None = None,
    nbins: Annotated[int, Range(2, 65536)] = 256,
):
    """Contrast-limited adaptive histogram equalisation (CLAHE) of each frame.

    Equalises contrast locally, tile by tile, with the histogram clipped at
    ``clip_limit`` so that noise is not amplified. Runs
    ``skimage.exposure.equalize_adapthist`` on each **whole** frame (tiles
    are interpolated across the frame, so frames are never split: no seams).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    clip_limit : float
        Normalised clip limit in [0, 1]; higher gives more contrast.
    kernel_size : int, optional
        Tile size in pixels (the "tile grid" is ``frame size / kernel_size``);
        ``None`` uses 1/8 of the frame size.
    nbins : int
        Histogram bins per tile.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input) in [0, 1]: an equalised display
        image, not counts (each frame is stretched by its own min and max).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).integers(100, 200, (32, 32)).astype(np.uint16)
    >>> out = clahe(img, clip_limit=0.02, kernel_size=8)
    >>> out.dtype, float(out.min()) >= 0, float(out.max()) <= 1
    (dtype('float32'), True, True)
    """
    frame = as_float(image)
    low, high = frame.min(), frame.max()
    span = high - low
    if float(span) == 0:
        return frame * 0
    out = skimage_module(image, "exposure").equalize_adapthist(
        (frame - low) / span, kernel_size=kernel_size, clip_limit=clip_limit, nbins=nbins
    )
    return out.astype(frame.dtype, copy=False)


@operation(menu="filter")
def equalize_hist(image, *, nbins: Annotated[int, Range(2, 65536)] = 256):
    """Global histogram equalisation of each frame.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; each frame is equalised with its own histogram.
    nbins : int
        Number of histogram bins.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input) in [0, 1] (the cumulative
        histogram): a display image, not counts. Frames are never split.

    Examples
    --------
    >>> import numpy as np
    >>> out = equalize_hist(np.array([[0, 0, 10, 1000]], np.uint16), nbins=4)
    >>> out.shape, float(out.max())
    ((1, 4), 1.0)
    """
    out = skimage_module(image, "exposure").equalize_hist(image, nbins=nbins)
    return out.astype(float_dtype(image.dtype), copy=False)


def _materialize_reference(image, **params):
    xp, _ = get_namespace(image)
    reference = xp.asarray(_backend.materialize(params["reference"]))
    if reference.ndim != 2:  # a stack, a line, a volume: only its histogram matters (a 2-D row for scikit-image)
        reference = reference.reshape(1, -1)
    return {**params, "reference": reference}


@operation(menu="filter", prepare=_materialize_reference)
def match_histograms(image, *, reference: ImageRef):
    """Give each frame the grey-value histogram of a reference image.

    Use it to equalise brightness and contrast across a set of images or
    over a time lapse with bleaching (match every frame to the first).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; each frame is matched independently.
    reference : array
        The image whose histogram every frame receives (any shape: a frame, a
        whole stack whose pooled histogram is used, ...); read into memory once.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input) in the units of ``reference``
        (``skimage.exposure.match_histograms``). Frames are never split.

    Examples
    --------
    >>> import numpy as np
    >>> dim = np.array([[0, 1], [2, 3]], np.uint8)
    >>> match_histograms(dim, reference=np.array([[10, 20], [30, 40]])).tolist()
    [[10.0, 20.0], [30.0, 40.0]]
    """
    out = skimage_module(image, "exposure").match_histograms(image, reference)
    return out.astype(float_dtype(image.dtype), copy=False)


def _check_rgb(image, **params):
    if image.shape[-1] != 3:
        raise ValueError(f"image must be RGB with 3 channels last, got shape {tuple(image.shape)}")
    return params


@operation(menu="filter", frame_ndim=3, prepare=_check_rgb, vectorized=True)
def adjust_saturation(image, *, factor: Annotated[float, Range(0, 100)] = 1.0):
    """Colour saturation of RGB images: multiply the HSV saturation by ``factor``.

    Parameters
    ----------
    image : array, shape ``(..., M, N, 3)``
        RGB image or stack of RGB images, **channel last** (the frame is
        ``(M, N, 3)``: ``frame_ndim=3``). Values are non-negative (uint8
        0-255, or float in any range: hue and saturation do not depend on scale).
    factor : float
        0 gives grey, 1 leaves the image unchanged, > 1 makes colours more
        vivid (saturation is clipped to 1).

    Returns
    -------
    array, shape ``(..., M, N, 3)``
        float32 (float64 for float64 input) in the units of the input
        (value = brightest channel is unchanged). Pixel-wise.

    Examples
    --------
    >>> import numpy as np
    >>> rgb = np.array([[[200, 100, 100]]], np.uint8)
    >>> adjust_saturation(rgb, factor=0).tolist()
    [[[200.0, 200.0, 200.0]]]
    """
    xp, _ = get_namespace(image)
    color = skimage_module(image, "color")
    frame = as_float(image)
    scale = xp.maximum(frame.max(axis=-1, keepdims=True), xp.finfo(frame.dtype).tiny)
    hsv = color.rgb2hsv(frame / scale)
    hsv[..., 1] = xp.clip(hsv[..., 1] * factor, 0, 1)
    return (color.hsv2rgb(hsv) * scale).astype(frame.dtype, copy=False)


# --------------------------------------------------------------------------- frequency space

FrequencyEdge = Literal["butterworth", "gaussian"]


def _frequency_radius(xp, shape, dtype):
    """Distance from zero frequency of every ``rfft2`` coefficient, in cycles per frame width.

    Scaled to the last axis (width ``N``) so the filter is round in physical
    frequency also for non-square frames: a cut-off ``c`` keeps periods
    longer than ``N / c`` pixels in every direction.
    """
    rows, cols = shape
    fy = xp.fft.fftfreq(rows).astype(dtype)[:, None] * cols
    fx = xp.fft.rfftfreq(cols).astype(dtype)[None, :] * cols
    return xp.sqrt(fy * fy + fx * fx)


def _lowpass_response(xp, radius, cutoff, edge, order):
    if edge == "gaussian":
        return xp.exp(-(radius * radius) / (2.0 * cutoff * cutoff))
    return 1.0 / (1.0 + (radius / cutoff) ** (2 * order))


def _apply_response(image, response):
    xp, _ = get_namespace(image)
    frame = as_float(image)
    spectrum = xp.fft.rfft2(frame)
    return xp.fft.irfft2(spectrum * response(xp, _frequency_radius(xp, frame.shape, frame.dtype)), s=frame.shape).astype(
        frame.dtype, copy=False
    )


_FREQUENCY_UNITS = """The cut-off is a radius in frequency pixels of the frame's FFT, i.e. in
    cycles per frame width ``N``: a cut-off ``c`` corresponds to a period of
    ``N / c`` pixels (for non-square frames the filter is round in physical
    frequency, scaled to the width)."""


@operation(menu="filter")
def lowpass(
    image,
    *,
    cutoff: Annotated[float, Range(0, None, low_inclusive=False)] = 32.0,
    edge: FrequencyEdge = "butterworth",
    order: Annotated[float, Range(0.5, 20)] = 2.0,
):
    """Low-pass filter of each frame in Fourier space (keeps coarse structure).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    cutoff : float
        Radius in frequency pixels (cycles per frame width) where the
        response falls to 1/2 (Butterworth) or ``exp(-1/2)`` (Gaussian).
    edge : {"butterworth", "gaussian"}
        Shape of the roll-off: Butterworth ``1 / (1 + (r / cutoff)**(2 * order))``
        or Gaussian ``exp(-r**2 / (2 * cutoff**2))``.
    order : float
        Butterworth order (steepness); ignored for ``"gaussian"``.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), in the units of the input (the
        mean is kept). Whole frames (an FFT sees the entire frame, so frames
        are never split); the frame is treated as periodic. Equals
        ``skimage.filters.butterworth(cutoff_frequency_ratio=cutoff / N)``
        for Butterworth edges.

    Notes
    -----
    {units}

    Examples
    --------
    >>> import numpy as np
    >>> stripes = 100 + 10 * np.cos(2 * np.pi * 16 * np.arange(64) / 64) * np.ones((64, 1))
    >>> out = lowpass(stripes, cutoff=4, order=4)
    >>> round(float(out.mean()), 6), float(np.ptp(out)) < 0.01
    (100.0, True)
    """
    return _apply_response(image, lambda xp, r: _lowpass_response(xp, r, cutoff, edge, order))


@operation(menu="filter")
def highpass(
    image,
    *,
    cutoff: Annotated[float, Range(0, None, low_inclusive=False)] = 4.0,
    edge: FrequencyEdge = "butterworth",
    order: Annotated[float, Range(0.5, 20)] = 2.0,
):
    """High-pass filter of each frame in Fourier space (removes slow background).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    cutoff : float
        Radius in frequency pixels (cycles per frame width) of the transition.
    edge : {"butterworth", "gaussian"}
        Roll-off shape; the response is ``1 - lowpass response``.
    order : float
        Butterworth order (steepness); ignored for ``"gaussian"``.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input); the mean (zero frequency) is
        removed, so values are centred on 0. Whole frames, treated as periodic.

    Notes
    -----
    {units}

    Examples
    --------
    >>> import numpy as np
    >>> flat = np.full((16, 16), 300, np.uint16)
    >>> float(abs(highpass(flat, cutoff=2)).max()) < 1e-3
    True
    """
    return _apply_response(image, lambda xp, r: 1.0 - _lowpass_response(xp, r, cutoff, edge, order))


def _check_band(image, **params):
    if params["high_cutoff"] <= params["low_cutoff"]:
        raise ValueError(
            f"high_cutoff must be larger than low_cutoff, got {params['high_cutoff']} <= {params['low_cutoff']}"
        )
    return params


@operation(menu="filter", prepare=_check_band)
def bandpass(
    image,
    *,
    low_cutoff: Annotated[float, Range(0, None, low_inclusive=False)] = 2.0,
    high_cutoff: Annotated[float, Range(0, None, low_inclusive=False)] = 32.0,
    edge: FrequencyEdge = "butterworth",
    order: Annotated[float, Range(0.5, 20)] = 2.0,
):
    """Band-pass filter of each frame: keeps frequencies between two cut-offs.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    low_cutoff : float
        Frequencies below this radius (periods longer than ``N / low_cutoff``
        pixels: uneven background) are removed.
    high_cutoff : float
        Frequencies above this radius (periods shorter than ``N / high_cutoff``
        pixels: noise) are removed.
    edge : {"butterworth", "gaussian"}
        Roll-off shape of both edges.
    order : float
        Butterworth order (steepness); ignored for ``"gaussian"``.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input); the response is
        ``lowpass(high_cutoff) * highpass(low_cutoff)``. Whole frames.

    Notes
    -----
    {units}

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(64)
    >>> img = 5 + np.cos(2 * np.pi * 8 * x / 64) * np.ones((64, 1))
    >>> out = bandpass(img, low_cutoff=2, high_cutoff=30, order=4)
    >>> round(float(out.mean()), 3), round(float(out.max()), 1)
    (0.0, 1.0)
    """
    return _apply_response(
        image,
        lambda xp, r: _lowpass_response(xp, r, high_cutoff, edge, order)
        * (1.0 - _lowpass_response(xp, r, low_cutoff, edge, order)),
    )


for _op in (lowpass, highpass, bandpass):
    _op.__doc__ = _op.__doc__.replace("{units}", _FREQUENCY_UNITS)


@operation(menu="filter")
def fft_amplitude(image):
    """Log amplitude of the 2-D Fourier transform of each frame, zero frequency centred.

    Shows periodicities (lattices, stripes, scan noise) as peaks: ``log(1 + |FFT|)``.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; each frame is transformed independently.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), ``fftshift``-ed so that zero
        frequency is at ``(M // 2, N // 2)``. Whole frames.

    Examples
    --------
    >>> import numpy as np
    >>> out = fft_amplitude(np.ones((4, 4), np.uint8))
    >>> round(float(out[2, 2]), 4), float(out[0, 0])
    (2.8332, 0.0)
    """
    xp, _ = get_namespace(image)
    frame = as_float(image)
    return xp.log1p(xp.abs(xp.fft.fftshift(xp.fft.fft2(frame)))).astype(frame.dtype, copy=False)
