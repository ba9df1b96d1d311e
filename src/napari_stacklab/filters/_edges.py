"""Edges and derivatives of each frame: Sobel, Scharr, Prewitt, Laplace, LoG, difference of Gaussians, Canny."""

from __future__ import annotations

import math
from typing import Annotated, Literal, get_args

import numpy as np

from .. import costs
from .._backend import get_namespace, skimage_module
from .._validation import as_float
from ..frames import BoundaryMode
from ..registry import Range, operation
from ..statistics import stack_range
from ._smoothing import _max_sigma

EdgeAxis = Literal["magnitude", "y", "x"]
#: The axis scikit-image differentiates along for each choice (``None``: the magnitude).
_AXES = dict(zip(get_args(EdgeAxis), (None, 0, 1)))


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
    _, ndi = get_namespace(image)
    return ndi.laplace(as_float(image), mode=mode)


@operation(
    menu="filter", halo=lambda sigma, truncate, **_: math.ceil(truncate * _max_sigma(sigma)) + 1,
    # one second-derivative pass and one smoothing pass per axis and per axis
    cost=lambda shape, dtype, sigma, truncate, **_: costs.gaussian(shape, dtype, sigma, truncate, passes=len(shape)),
)
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
    _, ndi = get_namespace(image)
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
    cost=lambda shape, dtype, low_sigma, high_sigma, truncate, **_: costs.gaussian(
        shape, dtype, low_sigma, truncate).then(costs.gaussian(shape, dtype, _dog_high(low_sigma, high_sigma), truncate)),
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
    _, ndi = get_namespace(image)
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
    if low is not None and high is not None and high < low:
        raise ValueError(f"high_threshold must be >= low_threshold, got {high} < {low:g} (the default low_threshold)")
    return params


@operation(menu="filter", output="mask", dtype="bool", prepare=_check_canny, channels="luminance",
           cost=lambda shape, dtype, sigma, **_: costs.gaussian(shape, dtype, sigma).then(
               costs.pixelwise(shape, dtype, copies=6, ns_per_pixel=150)))
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
