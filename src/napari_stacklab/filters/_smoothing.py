"""Smoothing and rank filters of each frame: Gaussian, median, mean, minimum, maximum, percentile, unsharp mask."""

from __future__ import annotations

import math
from typing import Annotated

from .._backend import get_namespace
from .. import costs
from .._validation import as_float, float_dtype
from ..frames import BoundaryMode
from ..neighbourhoods import rank_cost, rank_filter
from ..registry import Range, operation


def _half(size, **_):
    return size // 2


def _max_sigma(sigma) -> float:
    return max(sigma) if isinstance(sigma, tuple) else sigma


@operation(
    menu="filter",
    halo=lambda sigma, truncate, **_: math.ceil(truncate * _max_sigma(sigma)),
    cost=lambda shape, dtype, sigma, truncate, **_: costs.gaussian(shape, dtype, sigma, truncate),
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
    _, ndi = get_namespace(image)
    return ndi.gaussian_filter(image.astype(float_dtype(image.dtype), copy=False), sigma, truncate=truncate, mode=mode)


def _median_rank(size: int, ndim: int = 2) -> int:
    return size**ndim // 2  # scipy.ndimage's median: the upper one of an even count


def _percentile_rank(percentile: float, size: int, ndim: int = 2) -> int:
    window = size**ndim
    return window - 1 if percentile == 100 else int(window * percentile / 100.0)  # scipy.ndimage's rule


@operation(
    menu="filter", halo=lambda size, **_: size // 2, dtype="same",
    cost=lambda shape, dtype, size, **_: rank_cost(shape, dtype, size, _median_rank(size, len(shape))),
)
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
        Same dtype as the input (a median is one of the input values):
        exactly ``scipy.ndimage.median_filter``'s (the upper median of an even
        count). Large windows run as a sliding histogram over the frame's
        levels (8-bit data, or data with at most 4096 distinct values), so
        their time grows with ``size``, not ``size**2``; for wider data a
        window whose estimated time passes the cap is refused
        (:mod:`napari_stacklab.costs`).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((5, 5), np.uint8); img[2, 2] = 255   # a hot pixel
    >>> int(median(img, size=3).max())
    0
    """
    return rank_filter(image, _median_rank(size, image.ndim), size, mode)



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
    _, ndi = get_namespace(image)
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
    _, ndi = get_namespace(image)
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
    _, ndi = get_namespace(image)
    return ndi.maximum_filter(image, size=size, mode=mode)


@operation(
    menu="filter", halo=_half, dtype="same",
    cost=lambda shape, dtype, size, percentile, **_: rank_cost(
        shape, dtype, size, _percentile_rank(percentile, size, len(shape))),
)
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
        Same dtype as the input (the result is one of the input values):
        exactly ``scipy.ndimage.percentile_filter``'s. Large windows run as a
        sliding histogram, as for :func:`median`.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(25, dtype=np.uint8).reshape(5, 5)
    >>> int(percentile_filter(img, percentile=100, size=3)[2, 2])
    18
    """
    return rank_filter(image, _percentile_rank(percentile, size, image.ndim), size, mode)


@operation(
    menu="filter", halo=lambda radius, **_: math.ceil(4 * radius),
    display_adjustment=True,
    cost=lambda shape, dtype, radius, **_: costs.gaussian(shape, dtype, radius, 4.0),
)
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
        Colour (``rgb=True``): each channel sharpened; an integer colour image
        keeps its dtype, clipped to its range.

    Examples
    --------
    >>> import numpy as np
    >>> step = np.zeros((6, 6), np.uint8); step[:, 3:] = 100
    >>> out = unsharp_mask(step, radius=1, amount=1)
    >>> bool(out[0, 3] > 100 and out[0, 2] < 0)
    True
    """
    _, ndi = get_namespace(image)
    frame = as_float(image)
    blurred = ndi.gaussian_filter(frame, radius, mode="reflect", truncate=4.0)
    return frame + amount * (frame - blurred)
