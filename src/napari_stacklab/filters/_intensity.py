"""Intensity mappings of each frame: contrast stretch, gamma, gain, log, CLAHE, histogram equalisation and matching, saturation.

On colour images (``rgb=True``) these work on colour, not on each channel
alone: one mapping for red, green and blue (gamma, gain, log, contrast
stretch), CLAHE and histogram equalisation of CIELAB lightness with hue and
chroma kept, saturation in HSV. The display adjustments return an integer
colour image in its own dtype, clipped (uint8 RGB in, uint8 RGB out).
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np

from .._backend import get_namespace, skimage_module
from .._validation import as_float, float_dtype
from ..channels import with_lightness, with_value
from ..costs import Cost
from ..registry import ImageRef, Range, operation
from ..statistics import stack_percentiles, value_range


def _zero_halo(**_):
    return 0


def _resolve_percentiles(image, **params):
    if params["high"] <= params["low"]:
        raise ValueError(f"high must be larger than low, got {params['high']} <= {params['low']}")
    vmin, vmax = params["vmin"], params["vmax"]
    if vmin is None or vmax is None:
        found = stack_percentiles(image, [params["low"], params["high"]], plane=params["plane"])
        vmin = float(found[0]) if vmin is None else vmin
        vmax = float(found[1]) if vmax is None else vmax
    return {**params, "vmin": vmin, "vmax": vmax}


@operation(menu="filter", prepare=_resolve_percentiles, halo=_zero_halo, vectorized=True, channels="colour")
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
        :func:`stack_percentiles`). A colour image gets one mapping for its
        three channels (percentiles over all of them: the colour balance is
        kept); an alpha channel becomes opacity in [0, 1].

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
    # in float64: a vmin or vmax beyond the float32 range (or a span beyond float64's) still maps into [0, 1]
    span = float(vmax) - float(vmin) if vmax != vmin else 1.0
    scale = 1.0 / span if math.isfinite(span) else 0.5 / (float(vmax) / 2 - float(vmin) / 2)
    return xp.clip((frame.astype(np.float64) - vmin) * scale, 0, 1).astype(frame.dtype, copy=False)


def _resolve_vmax(image, **params):
    """``vmax`` (the largest ``|value|`` when not given), refused when it sends values past the output's range."""
    peak = max(abs(v) for v in value_range(image))
    if params["vmax"] is None:
        return {**params, "vmax": peak or 1.0}
    vmax, gamma = params["vmax"], params["gamma"]
    largest = float(np.finfo(float_dtype(image.dtype)).max)
    if peak and gamma != 1 and gamma * math.log(peak) + (1 - gamma) * math.log(vmax) > math.log(largest):
        # vmax**(1 - gamma) * peak**gamma <= largest bounds vmax from below (gamma > 1) or above (gamma < 1)
        bound = math.exp((gamma * math.log(peak) - math.log(largest)) / (gamma - 1))
        side = f">= {bound:.3g}" if gamma > 1 else f"<= {bound:.3g}"
        raise ValueError(
            f"vmax={vmax:g} with gamma={gamma:g} sends the largest |value| {peak:g} beyond the "
            f"{float_dtype(image.dtype)} range; choose vmax {side} (or None: the largest |value|)"
        )
    return params


@operation(menu="filter", prepare=_resolve_vmax, halo=_zero_halo, vectorized=True, channels="colour",
           display_adjustment=True)
def adjust_gamma(
    image,
    *,
    gamma: Annotated[float, Range(0, 20, low_inclusive=False)] = 1.0,
    vmax: Annotated[float, Range(0, None, low_inclusive=False)] | None = None,
    channel_axis: int | None = None,
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
        Colour (``rgb=True``): the brightest channel of each pixel follows the
        curve and the others keep their ratio to it, so hue and saturation
        are kept (:func:`~napari_stacklab.channels.with_value`); an integer
        colour image keeps its dtype, rounded.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[0, 25, 100]], np.uint8)
    >>> adjust_gamma(img, gamma=0.5).tolist()
    [[0.0, 50.0, 100.0]]
    """
    xp, _ = get_namespace(image)

    def curve(frame):
        # vmax * (|x| / vmax)**gamma as exp(gamma ln|x| + (1 - gamma) ln vmax): no step overflows for any vmax
        with np.errstate(divide="ignore"):
            magnitude = xp.exp(gamma * xp.log(xp.abs(frame.astype(np.float64))) + (1 - gamma) * math.log(vmax))
        return (xp.sign(frame) * magnitude).astype(frame.dtype, copy=False)

    if channel_axis is not None:
        return with_value(image, curve)
    frame = as_float(image)
    return curve(frame).astype(frame.dtype, copy=False)


@operation(menu="filter", halo=_zero_halo, vectorized=True, channels="colour", display_adjustment=True)
def adjust_gain(
    image,
    *,
    gain: Annotated[float, Range(-1e6, 1e6)] = 1.0,
    offset: Annotated[float, Range(-1e12, 1e12)] = 0.0,
    channel_axis: int | None = None,
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
        Colour (``rgb=True``): the brightest channel of each pixel gets the
        gain and the others keep their ratio to it (hue and saturation kept;
        :func:`~napari_stacklab.channels.with_value`); an integer colour image
        keeps its dtype, its brightest channel clipped to white (uint8: 255).

    Examples
    --------
    >>> import numpy as np
    >>> adjust_gain(np.array([[250]], np.uint8), gain=2, offset=-10).tolist()
    [[490.0]]
    >>> adjust_gain(np.array([[[100, 50, 20]]], np.uint8), gain=2, offset=-10, rgb=True).tolist()
    [[[190, 95, 38]]]
    """
    if channel_axis is not None:
        return with_value(image, lambda value: value * gain + offset)
    return (as_float(image) * gain + offset).astype(float_dtype(image.dtype), copy=False)


def _resolve_log_vmax(image, **params):
    """``vmax`` (the largest value when not given), refused when it sends values past the output's range."""
    peak = max(value_range(image)[1], 0.0)
    if params["vmax"] is None:
        return {**params, "vmax": peak or 1.0}
    vmax, gain = params["vmax"], params["gain"]
    largest = float(np.finfo(float_dtype(image.dtype)).max)
    if peak and gain and (math.log(abs(gain)) + math.log(vmax) + math.log(math.log1p(peak))
                          - math.log(math.log1p(vmax)) > math.log(largest)):
        raise ValueError(
            f"vmax={vmax:g} with gain={gain:g} sends the largest value {peak:g} beyond the "
            f"{float_dtype(image.dtype)} range; choose a smaller vmax or gain (or vmax=None: the largest value)"
        )
    return params


@operation(menu="filter", prepare=_resolve_log_vmax, halo=_zero_halo, vectorized=True, channels="colour",
           display_adjustment=True)
def adjust_log(
    image,
    *,
    gain: Annotated[float, Range(-1e6, 1e6)] = 1.0,
    vmax: Annotated[float, Range(0, None, low_inclusive=False)] | None = None,
    channel_axis: int | None = None,
):
    """Logarithmic display transform that keeps the range: ``gain * vmax * log(1 + x) / log(1 + vmax)``.

    Compresses a large dynamic range (diffraction patterns, FFT amplitudes)
    so that faint and bright features are visible together. 0 and ``vmax``
    are fixed points (for ``gain=1``), so counts keep their scale.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack of non-negative counts; negative values are treated as 0.
    gain : float
        Multiplier applied after the logarithm.
    vmax : float, optional
        Value that maps to itself; ``None`` uses the maximum over the whole
        stack, computed once.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input); pixel-wise (no halo). Colour
        (``rgb=True``): the brightest channel follows the curve, the others
        keep their ratio to it (hue and saturation kept); an integer colour
        image keeps its dtype, rounded and clipped.

    Examples
    --------
    >>> import numpy as np
    >>> out = adjust_log(np.array([[0, 9, 99, -5]]), vmax=99)
    >>> [round(float(v), 3) for v in out[0]]
    [0.0, 49.5, 99.0, 0.0]
    """
    xp, _ = get_namespace(image)
    scale = gain * (vmax / math.log1p(vmax))  # in this order: no step overflows

    def curve(frame):
        return scale * xp.log1p(xp.maximum(frame, 0))

    if channel_axis is not None:
        return with_value(image, curve)
    frame = as_float(image)
    return curve(frame).astype(frame.dtype, copy=False)


def _tiles(frame_shape, kernel_size) -> int:
    sizes = [max(n // 8, 1) if kernel_size is None else kernel_size for n in frame_shape]  # scikit-image's default
    return math.prod(math.ceil(n / k) for n, k in zip(frame_shape, sizes))


def _clahe_cost(shape, dtype, kernel_size, nbins, **_):
    # scikit-image keeps a clipped histogram of nbins per tile (about 24 bytes a bin with its mapping),
    # about 250 ns a bin, and interpolates four tile mappings at every pixel
    cells = _tiles(shape, kernel_size) * nbins
    pixels = math.prod(shape)
    return Cost(24 * cells + 64 * pixels, cells * 250e-9 + pixels * 100e-9,
                f"{_tiles(shape, kernel_size)} tiles of {nbins} bins", "a larger kernel_size or fewer nbins")


def _clahe_limits(frame, dtype, **_):
    return {"kernel_size": Range(2, max(frame), reason="a tile at most the frame's larger side")}


@operation(menu="filter", channels="colour", display_adjustment=True, cost=_clahe_cost, limits=_clahe_limits)
def clahe(
    image,
    *,
    clip_limit: Annotated[float, Range(0, 1)] = 0.01,
    kernel_size: Annotated[int, Range(2, 10000)] | None = None,
    nbins: Annotated[int, Range(2, 65536)] = 256,
    channel_axis: int | None = None,
):
    """Contrast-limited adaptive histogram equalisation (CLAHE) of each frame.

    Equalises contrast locally, tile by tile, with the histogram clipped at
    ``clip_limit`` so that noise is not amplified. Runs
    ``skimage.exposure.equalize_adapthist`` on each **whole** frame (tiles
    are interpolated across the frame, so frames are never split: no seams).
    A colour image (``rgb=True``) is equalised on its CIELAB lightness L*,
    with a* and b* (hue and chroma) kept.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    clip_limit : float
        Normalised clip limit in [0, 1]; higher gives more contrast.
    kernel_size : int, optional
        Tile size in pixels (the "tile grid" is ``frame size / kernel_size``);
        ``None`` uses 1/8 of the frame size. At most the frame's larger side.
    nbins : int
        Histogram bins per tile. Memory and time grow with tiles x bins
        (about 24 bytes and 0.1-0.3 microseconds each): 2-pixel tiles of 65536 bins
        on a 512 x 512 frame would need 100 GiB, and are refused
        (:mod:`napari_stacklab.costs`).

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), in the range of each frame: the
        frame's minimum and maximum stay, so counts keep their scale. Colour:
        in the image's units, clipped to the colour gamut; an integer colour
        image keeps its dtype (uint8 RGB in, uint8 RGB out).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).integers(100, 200, (32, 32)).astype(np.uint16)
    >>> out = clahe(img, clip_limit=0.02, kernel_size=8)
    >>> out.dtype, float(out.min()), float(out.max())
    (dtype('float32'), 100.0, 199.0)
    """
    exposure = skimage_module(image, "exposure")

    def equalized(unit):
        return exposure.equalize_adapthist(unit, kernel_size=kernel_size, clip_limit=clip_limit, nbins=nbins)

    if channel_axis is not None:
        return with_lightness(image, equalized)
    frame = as_float(image)
    low, high = frame.min(), frame.max()
    span = high - low
    if float(span) == 0:
        return frame.copy()
    return (low + equalized((frame - low) / span) * span).astype(frame.dtype, copy=False)


@operation(menu="filter", channels="colour", display_adjustment=True)
def equalize_hist(image, *, nbins: Annotated[int, Range(2, 65536)] = 256, channel_axis: int | None = None):
    """Global histogram equalisation of each frame.

    A colour image (``rgb=True``) is equalised on its CIELAB lightness L*,
    with a* and b* (hue and chroma) kept.

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
        Colour: in the image's units, clipped to the colour gamut; an integer
        colour image keeps its dtype.

    Examples
    --------
    >>> import numpy as np
    >>> out = equalize_hist(np.array([[0, 0, 10, 1000]], np.uint16), nbins=4)
    >>> out.shape, float(out.max())
    ((1, 4), 1.0)
    """
    exposure = skimage_module(image, "exposure")
    if channel_axis is not None:
        return with_lightness(image, lambda unit: exposure.equalize_hist(unit, nbins=nbins))
    out = exposure.equalize_hist(image, nbins=nbins)
    return out.astype(float_dtype(image.dtype), copy=False)


def _reference_histogram(image, **params):
    reference = params["reference"]
    if reference.ndim != 2:  # a stack, a line, a volume: only its histogram matters (a 2-D row for scikit-image)
        reference = reference.reshape(1, -1)
    return {**params, "reference": reference}


@operation(menu="filter", prepare=_reference_histogram)
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
    if image.shape[-1] not in (3, 4):
        raise ValueError(f"image must be RGB (or RGBA) with its colour channels last, got shape {tuple(image.shape)}")
    return params


@operation(menu="filter", frame_ndim=3, prepare=_check_rgb, vectorized=True, channels="native",
           display_adjustment=True)
def adjust_saturation(image, *, factor: Annotated[float, Range(0, 100)] = 1.0, rgb: bool = True):
    """Colour saturation of RGB images: multiply the HSV saturation by ``factor``.

    Parameters
    ----------
    image : array, shape ``(..., M, N, 3)``
        RGB (or RGBA: alpha kept) image or stack of RGB images, **channel
        last** (the frame is ``(M, N, 3)``: ``frame_ndim=3``; another colour
        axis is named by ``channel_axis``). Values are non-negative (uint8
        0-255, or float in any range: hue and saturation do not depend on scale).
    factor : float
        0 gives grey, 1 leaves the image unchanged, > 1 makes colours more
        vivid (saturation is clipped to 1).

    Returns
    -------
    array, shape ``(..., M, N, 3)``
        float32 (float64 for float64 input) in the units of the input
        (value = brightest channel is unchanged). Pixel-wise. With
        ``rgb=True`` an integer image keeps its dtype (uint8 in, uint8 out).
        A channel axis that is not colour (``channel_axis`` without ``rgb``)
        is refused.

    Examples
    --------
    >>> import numpy as np
    >>> rgb = np.array([[[200, 100, 100]]], np.uint8)
    >>> adjust_saturation(rgb, factor=0).tolist()
    [[[200.0, 200.0, 200.0]]]
    >>> adjust_saturation(rgb, factor=0.5, rgb=True).tolist()
    [[[200, 150, 150]]]
    """
    if not rgb:
        raise ValueError("adjust_saturation needs colour channels (rgb=True): separate channels have no saturation")
    xp, _ = get_namespace(image)
    color = skimage_module(image, "color")
    frame = as_float(image)
    colour = frame[..., :3]
    scale = xp.maximum(colour.max(axis=-1, keepdims=True), xp.finfo(frame.dtype).tiny)
    hsv = color.rgb2hsv(colour / scale)
    hsv[..., 1] = xp.clip(hsv[..., 1] * factor, 0, 1)
    out = (color.hsv2rgb(hsv) * scale).astype(frame.dtype, copy=False)
    return xp.concatenate([out, frame[..., 3:]], axis=-1) if frame.shape[-1] == 4 else out
