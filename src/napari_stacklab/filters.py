"""Smoothing, rank, edge, intensity and frequency filters, frame by frame.

Every function here takes an image or a stack ``(..., M, N)`` (NumPy, dask or
CuPy), filters each frame independently, and returns the same kind of array;
dask input stays lazy. Physical counts are never rescaled to [0, 1].
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from ._backend import get_namespace
from ._validation import float_dtype
from .registry import Range, operation

__all__ = ["gaussian", "median"]

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
        Standard deviation in pixels, one value or one per frame axis.
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
