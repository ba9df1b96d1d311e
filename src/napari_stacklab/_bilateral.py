"""The bilateral filter: listed under both :mod:`~napari_stacklab.filters` and :mod:`~napari_stacklab.denoise`.

Declared once here, in neither family, so that the two families stay
independent of each other; both export this one operation.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np

from ._backend import skimage_module
from ._validation import as_float
from .costs import Cost
from .frames import WarpMode
from .registry import Range, operation


#: seconds per pixel and window pixel of skimage.restoration.denoise_bilateral (one core)
_NEIGHBOUR_SECONDS = 12e-9
#: scaled colour sigmas past which the colour weights no longer change (all 1, or 0 but for equal values)
_COLOR_ENDS = (1e-3, 1e3)


def _window(sigma_spatial: float) -> int:
    return max(5, 2 * math.ceil(3 * sigma_spatial) + 1)  # scikit-image's


def _bilateral_cost(shape, dtype, sigma_spatial, **_):
    window = _window(sigma_spatial)
    pixels = math.prod(shape)
    return Cost(6 * pixels * 8, pixels * (window**2 * _NEIGHBOUR_SECONDS + 200e-9),
                f"a {window} x {window} window at every pixel", "a smaller sigma_spatial")


@operation(menu="filter", family="filters", channels="colour", display_adjustment=True, cost=_bilateral_cost)
def bilateral(
    image,
    *,
    sigma_spatial: Annotated[float, Range(0.1, 50)] = 1.0,
    sigma_color: Annotated[float, Range(0, None, low_inclusive=False)] | None = None,
    bins: Annotated[int, Range(16, 1_000_000)] = 10000,
    mode: WarpMode = "constant",
    channel_axis: int | None = None,
):
    """Edge-preserving bilateral smoothing of each frame.

    Each pixel becomes a weighted mean of its neighbours, weighted by distance
    (``sigma_spatial``) *and* by grey-value difference (``sigma_color``), so
    noise is smoothed but edges stay sharp. Runs
    ``skimage.restoration.denoise_bilateral`` on each whole frame; the frame
    is scaled to [0, 1] internally (scikit-image needs it) and scaled back,
    so the output keeps the input's counts. On a colour image (``rgb=True``)
    the weights use the distance between colours (one weight for the three
    channels), so an edge between two colours of the same brightness is kept
    and no colour fringes appear.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    sigma_spatial : float
        Spatial standard deviation in pixels (window ``max(5, 2*ceil(3*sigma)+1)``).
    sigma_color : float, optional
        Grey-value (colour: colour-distance) standard deviation **in the units
        of the image** (counts); ``None`` uses the standard deviation of each
        frame. Values past 1000 times the frame's range act as infinite (a
        plain Gaussian), values below ``0.001 / bins`` of it as zero (only
        equal values are averaged).
    bins : int
        Number of discrete grey-value weights (precision of the colour kernel).
    mode : str
        How the frame is extended past its border.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), in the units of the input.
        Frames are never split (no halo): it is a whole-frame operation. An
        integer colour image keeps its dtype (uint8 RGB in, uint8 RGB out).

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
    # in float64: in float32 scikit-image's weights underflow to a zero sum (0 / 0) for small sigmas
    scaled = (frame.astype(np.float64) - low) / span
    color = None if sigma_color is None else min(max(sigma_color / span, _COLOR_ENDS[0] / bins), _COLOR_ENDS[1])
    out = skimage_module(image, "restoration").denoise_bilateral(
        scaled, sigma_color=color, sigma_spatial=sigma_spatial, bins=bins, mode=mode, channel_axis=channel_axis
    )
    return (out * span + low).astype(frame.dtype, copy=False)
