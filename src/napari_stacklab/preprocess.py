"""Background and defect correction, and geometry (resize, bin, rotate, flip, polar), frame by frame.

Every operation takes an image or a stack ``(..., M, N)`` (NumPy, dask or
CuPy) and treats leading axes (time, z, channel, scan position) as
independent frames; dask input stays lazy.

Geometry operations that change the frame size change the **pixel size**:
after ``rescale(factor=2)`` a pixel covers half the distance. A napari widget
or a recipe should scale the output layer accordingly (divide the frame-axis
``scale`` by the factor; :func:`output_scale` computes it).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Sequence

import numpy as np

from . import _backend
from ._backend import get_namespace, skimage_module
from ._validation import as_float, check_ndim, check_numeric, float_dtype
from .costs import Cost, nbytes, pixelwise
from .frames import BoundaryMode, WarpMode, fill_range
from .neighbourhoods import chords, flat_cost, flat_filter
from .registry import ImageRef, PerFrame, Range, operation, validated

__all__ = [
    "subtract_background",
    "remove_hot_pixels",
    "inpaint",
    "rescale",
    "resize",
    "bin_pixels",
    "rotate",
    "flip",
    "rot90",
    "warp_polar",
    "line_profile",
    "output_scale",
]



def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, tuple) else (value, value)


def output_scale(scale: Sequence[float], in_frame: Sequence[int], out_frame: Sequence[int]) -> tuple[float, ...]:
    """Pixel size after a geometry operation changed the frame from ``in_frame`` to ``out_frame``.

    Parameters
    ----------
    scale : sequence of float
        Pixel size of every axis of the input (napari layer ``scale``).
    in_frame, out_frame : sequence of int
        Frame shape ``(M, N)`` before and after.

    Returns
    -------
    tuple of float
        The new ``scale``: batch axes unchanged, frame axes ``scale * in / out``.

    Examples
    --------
    >>> output_scale((2.0, 0.5, 0.5), (100, 80), (50, 40))
    (2.0, 1.0, 1.0)
    """
    scale = tuple(float(s) for s in scale)
    n = len(in_frame)
    frame = tuple(s * i / o for s, i, o in zip(scale[-n:], in_frame, out_frame))
    return scale[:-n] + frame


# --------------------------------------------------------------------------- background and defects


def _background_halo(method, radius, **_):
    return 2 * radius


#: seconds per pixel and kernel pixel of skimage.restoration.rolling_ball (twice one idle core's)
_BALL_SECONDS = 3e-9


def _disk(radius: int) -> np.ndarray:
    return skimage_module(np.empty(0), "morphology").disk(radius).astype(bool)


def _background_cost(shape, dtype, method, radius, **_):
    pixels = math.prod(shape)
    if method == "tophat":
        one = flat_cost(shape, np.float32, _disk(radius))
        return Cost(one.bytes + 2 * nbytes(shape, float_dtype(dtype)), 2 * one.seconds, one.why, one.hint)
    window = (2 * radius + 1) ** 2
    return Cost(4 * nbytes(shape, float_dtype(dtype)), pixels * window * _BALL_SECONDS,
                f"a ball of radius {radius} over a {2 * radius + 1} x {2 * radius + 1} window at every pixel",
                "a smaller radius, method='tophat' (time grows with the radius, not its square)")


def _background_limits(frame, dtype, **_):
    return {"radius": Range(1, 2 * max(frame), reason="twice the frame's larger side: a wider ball is flat across it")}


@operation(menu="filter", halo=_background_halo, cost=_background_cost, limits=_background_limits)
def subtract_background(
    image,
    *,
    method: Literal["rolling_ball", "tophat"] = "rolling_ball",
    radius: Annotated[int, Range(1, 1000)] = 50,
):
    """Remove a smooth, uneven background (illumination, autofluorescence) from each frame.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack with bright objects on a darker background.
    method : {"rolling_ball", "tophat"}
        ``"rolling_ball"``: the background is where a ball of ``radius``
        rolled under the intensity surface touches it
        (``skimage.restoration.rolling_ball``; CPU only).
        ``"tophat"``: white top-hat, i.e. the image minus its grey opening
        with a disk of ``radius`` (fast at any radius: the disk is decomposed
        into its rows; GPU-capable).
    radius : int
        Radius in pixels; larger than the objects to keep, and at most twice
        the frame's larger side. The rolling ball's time grows with the square of
        the radius (about 1.5 ns per pixel and ball pixel); past the time cap
        (:mod:`napari_stacklab.costs`) it is refused with the estimate.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input): image minus background, in the
        units of the input (counts kept, never rescaled). The halo is
        ``2 * radius``.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((20, 20), 500, np.uint16); img[9:11, 9:11] += 100   # a spot on a background
    >>> out = subtract_background(img, method="tophat", radius=3)
    >>> float(out[10, 10]), float(out[0, 0])
    (100.0, 0.0)
    """
    frame = as_float(image)
    if method == "tophat":
        disk = _disk(radius)
        runs = chords(disk)
        eroded = flat_filter(frame, disk, dilate=False, runs=runs)
        return frame - flat_filter(eroded, disk, dilate=True, runs=runs)
    background = skimage_module(image, "restoration").rolling_ball(frame, radius=radius)
    return (frame - background).astype(frame.dtype, copy=False)


_MAD_TO_SIGMA = 1.4826


@operation(menu="filter", dtype="same")
def remove_hot_pixels(
    image,
    *,
    threshold: Annotated[float, Range(0, None, low_inclusive=False)] = 5.0,
    size: Annotated[int, Range(3, 15)] = 3,
    kind: Literal["both", "hot", "dead"] = "both",
):
    """Replace hot (too bright) and dead (too dark) pixels by the median of their neighbours.

    A pixel is an outlier when it differs from the ``size x size`` median by
    more than ``threshold`` robust standard deviations of that difference
    over the whole frame (``1.4826 * MAD``; the plain standard deviation when
    the MAD is 0, as in sparse counting data).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack (a diffraction-pattern stack, a camera series).
    threshold : float
        Outlier threshold in robust standard deviations.
    size : int
        Side of the median neighbourhood in pixels.
    kind : {"both", "hot", "dead"}
        Which outliers to replace.

    Returns
    -------
    array, shape ``(..., M, N)``
        Same dtype as the input; only the outliers change. Frames are never
        split (the noise level is a whole-frame statistic).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).poisson(100, (16, 16)).astype(np.uint16)
    >>> img[5, 5], img[9, 3] = 60000, 0
    >>> out = remove_hot_pixels(img)
    >>> bool(80 < out[5, 5] < 120 and 80 < out[9, 3] < 120), int((out != img).sum())
    (True, 2)
    """
    xp, ndi = get_namespace(image)
    median = ndi.median_filter(image, size=size, mode="reflect")
    residual = as_float(image) - as_float(median)
    mad = xp.median(xp.abs(residual - xp.median(residual)))
    sigma = xp.where(mad > 0, _MAD_TO_SIGMA * mad, residual.std())
    limit = threshold * sigma
    if kind == "hot":
        bad = residual > limit
    elif kind == "dead":
        bad = residual < -limit
    else:
        bad = xp.abs(residual) > limit
    return xp.where(bad, median, image)


def _prepare_mask(image, **params):
    """A frame-shaped mask (read once by the engine) must leave pixels to fill from; a mask per frame is checked per frame."""
    mask = params["mask"]
    check_numeric(mask, "mask", allow_complex=True)
    if tuple(mask.shape) == tuple(image.shape[-2:]):
        _check_fillable(mask != 0)
    return params


def _check_fillable(mask):
    if bool(mask.all()):
        raise ValueError(
            "mask marks every pixel (nonzero = fill), so no valid pixel is left to fill from; "
            "pass a mask that is True/nonzero only at the pixels to replace"
        )


def _inpaint_cost(shape, dtype, mask, method, **_):
    pixels = math.prod(shape)
    if method == "nearest":
        return pixelwise(shape, dtype, copies=6, ns_per_pixel=40)
    # a sparse biharmonic system per hole: about 50 microseconds and 1 KiB a masked pixel (measured);
    # an in-memory mask is counted, a lazy one taken as the whole frame
    masked = pixels if _backend.is_dask(mask) else int(_backend.materialize((mask != 0).sum())) // max(
        1, math.prod(mask.shape) // pixels)
    return Cost(1024 * masked + 4 * pixels * 8, masked * 50e-6 + pixels * 50e-9,
                f"a biharmonic system of {masked} masked pixels", "method='nearest', or a smaller mask")


@operation(menu="filter", prepare=_prepare_mask, cost=_inpaint_cost)
def inpaint(
    image,
    *,
    mask: Annotated[ImageRef, PerFrame],
    method: Literal["biharmonic", "nearest"] = "biharmonic",
):
    """Fill the pixels given by a mask (dead pixels, detector gaps, scratches) from their surroundings.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    mask : array, shape ``(M, N)`` or the shape of ``image``
        True (or nonzero, for an integer or float mask) where pixels are to
        be filled. A frame-shaped mask is used for every frame (a detector's
        defect map) and read into memory once; a mask of the image's shape
        gives each frame its own (hot pixels or cosmic rays found per frame),
        and stays lazy with a lazy image. A mask covering every pixel of a
        frame is refused.
    method : {"biharmonic", "nearest"}
        ``"biharmonic"``: smooth fill (``skimage.restoration.inpaint_biharmonic``);
        ``"nearest"``: copy the nearest valid pixel (fast, GPU-capable).

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), in the units of the input;
        pixels outside the mask are unchanged. Frames are never split.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(8.0), (8, 1)); holes = np.zeros((8, 8), bool); holes[3:5, 3:5] = True
    >>> damaged = np.where(holes, 0, ramp)
    >>> bool(np.allclose(inpaint(damaged, mask=holes), ramp, atol=0.05))
    True
    """
    frame = as_float(image)
    mask = mask != 0
    _check_fillable(mask)
    if method == "nearest":
        xp, ndi = get_namespace(image)
        indices = ndi.distance_transform_edt(mask, return_distances=False, return_indices=True)
        return frame[tuple(indices)]
    filled = skimage_module(image, "restoration").inpaint_biharmonic(frame, mask)
    return filled.astype(frame.dtype, copy=False)


# --------------------------------------------------------------------------- geometry


def _rescaled_shape(frame_shape, factor, **_):
    return tuple(max(int(round(f * s)), 1) for f, s in zip(_pair(factor), frame_shape))


def _resampling_cost(shape, dtype, out_shape, order, **_):
    # scikit-image's warp: float64 output and two float64 coordinate maps, (order + 1)**2 taps a pixel;
    # a Gaussian pre-filter on the input when shrinking
    out = math.prod(out_shape)
    return Cost(32 * out + 3 * math.prod(shape) * 8, out * ((order + 1) ** 2 * 2.5e-9 + 15e-9) + math.prod(shape) * 25e-9,
                f"a {' x '.join(map(str, out_shape))} output frame", "a smaller output")


@operation(menu="transform", frame_shape=_rescaled_shape, resamples=True,
           cost=lambda shape, dtype, factor, order, **_: _resampling_cost(
               shape, dtype, _rescaled_shape(shape[-2:], factor), order))
def rescale(
    image,
    *,
    factor: Annotated[float | tuple[float, ...], Range(0, 100, low_inclusive=False)] = 0.5,
    order: Annotated[int, Range(0, 5)] = 1,
    anti_aliasing: bool | None = None,
):
    """Scale each frame by a factor (``skimage.transform.rescale``).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; only the frame axes are scaled.
    factor : float or tuple of float
        Scale factor, one or ``(fy, fx)``; the new frame is
        ``round(factor * (M, N))``.
    order : int
        Spline interpolation order (0 nearest, 1 linear, 3 cubic).
    anti_aliasing : bool, optional
        Gaussian pre-filter when shrinking; ``None``: only when shrinking.

    Returns
    -------
    array, shape ``(..., round(fy * M), round(fx * N))``
        float32 (float64 for float64 input), in the units of the input (counts
        are interpolated, not rescaled). The **pixel size changes** by
        ``1 / factor``: scale the output layer (:func:`output_scale`).
        Whole frames.

    Examples
    --------
    >>> import numpy as np
    >>> rescale(np.ones((3, 10, 8), np.uint16), factor=0.5).shape
    (3, 5, 4)
    """
    out = skimage_module(image, "transform").rescale(
        as_float(image), factor, order=order, anti_aliasing=anti_aliasing, preserve_range=True, mode="reflect"
    )
    return out.astype(float_dtype(image.dtype), copy=False)


def _check_output_shape(image, **params):
    shape = params["output_shape"]
    if len(shape) != 2 or any(not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
        raise ValueError(f"output_shape must be two positive integers (rows, columns), got {shape!r}")
    return {**params, "output_shape": tuple(int(s) for s in shape)}


def _resize_limits(frame, dtype, **_):
    return {"output_shape": Range(1, tuple(100 * n for n in frame), reason="at most 100 times the frame, as rescale")}


@operation(
    menu="transform",
    prepare=_check_output_shape,
    frame_shape=lambda frame_shape, output_shape, **_: output_shape,
    resamples=True,
    limits=_resize_limits,
    cost=lambda shape, dtype, output_shape, order, **_: _resampling_cost(shape, dtype, output_shape, order),
)
def resize(
    image,
    *,
    output_shape: tuple[int, int] = (256, 256),
    order: Annotated[int, Range(0, 5)] = 1,
    anti_aliasing: bool | None = None,
):
    """Resize each frame to a given shape (``skimage.transform.resize``).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; only the frame axes are resized.
    output_shape : tuple of int
        New frame shape ``(rows, columns)``, each from 1 to 100 times the
        frame's (as :func:`rescale`'s factor); a result past the memory cap is
        refused (:mod:`napari_stacklab.costs`).
    order : int
        Spline interpolation order (0 nearest, 1 linear, 3 cubic).
    anti_aliasing : bool, optional
        Gaussian pre-filter when shrinking; ``None``: only when shrinking.

    Returns
    -------
    array, shape ``(..., rows, columns)``
        float32 (float64 for float64 input), in the units of the input. The
        **pixel size changes** (``M / rows``, ``N / columns``): scale the
        output layer (:func:`output_scale`). Whole frames.

    Examples
    --------
    >>> import numpy as np
    >>> resize(np.ones((2, 10, 8)), output_shape=(4, 4)).shape
    (2, 4, 4)
    """
    out = skimage_module(image, "transform").resize(
        as_float(image), output_shape, order=order, anti_aliasing=anti_aliasing, preserve_range=True, mode="reflect"
    )
    return out.astype(float_dtype(image.dtype), copy=False)


def _binned_dtype(dtype, reduce, **_):
    if reduce == "sum" and dtype.kind in "biu":
        return np.dtype(np.int64)
    return float_dtype(dtype)


def _binned_shape(frame_shape, factor, **_):
    return tuple(s // f for s, f in zip(frame_shape, _pair(factor)))


def _check_bins(image, **params):
    fy, fx = _pair(params["factor"])
    if image.shape[-2] < fy or image.shape[-1] < fx:
        raise ValueError(f"factor {params['factor']!r} is larger than the frame {tuple(image.shape[-2:])}")
    return params


@operation(
    menu="transform", dtype=_binned_dtype, frame_shape=_binned_shape, prepare=_check_bins, vectorized=True,
    resamples=True,
)
def bin_pixels(
    image,
    *,
    factor: Annotated[int | tuple[int, ...], Range(1, 4096)] = 2,
    reduce: Literal["sum", "mean"] = "sum",
):
    """Bin ``factor x factor`` blocks of pixels into one (sum or mean), as a camera does.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; only the frame axes are binned.
    factor : int or tuple of int
        Bin size, one or ``(fy, fx)``. Rows/columns that do not fill a whole
        bin at the bottom/right edge are dropped.
    reduce : {"sum", "mean"}
        ``"sum"`` keeps total counts (electron counting); ``"mean"`` keeps
        the intensity scale.

    Returns
    -------
    array, shape ``(..., M // fy, N // fx)``
        ``"sum"``: int64 for integer/bool input (no overflow), else the float
        rule; ``"mean"``: float32 (float64 for float64 input). The **pixel
        size grows** by the factor: scale the output layer (:func:`output_scale`).

    Examples
    --------
    >>> import numpy as np
    >>> out = bin_pixels(np.ones((5, 7), np.uint8), factor=2)
    >>> out.shape, out.dtype, int(out[0, 0])
    ((2, 3), dtype('int64'), 4)
    """
    fy, fx = _pair(factor)
    rows, cols = image.shape[-2] // fy, image.shape[-1] // fx
    blocks = image[..., : rows * fy, : cols * fx].reshape(image.shape[:-2] + (rows, fy, cols, fx))
    if reduce == "mean":
        return as_float(blocks).mean(axis=(-3, -1), dtype=float_dtype(image.dtype))
    return blocks.sum(axis=(-3, -1), dtype=_binned_dtype(np.dtype(image.dtype), reduce))


def _rotated_shape(frame_shape, angle, resize, **_):
    """Frame shape of ``skimage.transform.rotate`` (same corner arithmetic)."""
    if not resize:
        return tuple(frame_shape)
    rows, cols = frame_shape
    theta = np.deg2rad(angle)
    corners = np.array([[0, 0], [0, rows - 1], [cols - 1, rows - 1], [cols - 1, 0]], float)
    center = np.array((cols, rows)) / 2.0 - 0.5
    shifted = corners - center
    rotation = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    turned = shifted @ rotation.T
    extent = turned.max(axis=0) - turned.min(axis=0) + 1
    return (int(np.around(extent[1])), int(np.around(extent[0])))


def _cval_limits(frame, dtype, **_):
    low, high, reason = fill_range(float_dtype(dtype))
    return {"cval": Range(low, high, reason=reason)}


@operation(menu="transform", frame_shape=_rotated_shape, limits=_cval_limits,
           cost=lambda shape, dtype, angle, resize, order, **_: _resampling_cost(
               shape, dtype, _rotated_shape(shape[-2:], angle, resize), order))
def rotate(
    image,
    *,
    angle: Annotated[float, Range(-360, 360)] = 0.0,
    resize: bool = False,
    order: Annotated[int, Range(0, 5)] = 1,
    mode: WarpMode = "constant",
    cval: float = 0.0,
):
    """Rotate each frame about its centre (``skimage.transform.rotate``).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; only the frame axes are rotated.
    angle : float
        Counter-clockwise rotation in degrees.
    resize : bool
        Enlarge the frame so that the whole rotated image fits.
    order : int
        Spline interpolation order (0 nearest, 1 linear, 3 cubic).
    mode : str
        How points outside the input are filled.
    cval : float
        Fill value for ``mode="constant"``, in the units of the image (a
        value the float output can hold).

    Returns
    -------
    array, shape ``(..., M', N')``
        float32 (float64 for float64 input), in the units of the input,
        clipped to the input range (no negative counts after cubic
        interpolation). ``(M', N') = (M, N)`` unless ``resize``. Whole frames.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((5, 5)); img[0, 2] = 1
    >>> float(rotate(img, angle=90, order=0)[2, 0])
    1.0
    >>> rotate(np.ones((10, 20)), angle=90, resize=True).shape
    (20, 10)
    """
    # A private copy of this one frame: skimage's Cython warp refuses read-only buffers
    # (memory-mapped files), and astype(copy=False) would hand a float frame through as is.
    frame = image.astype(float_dtype(image.dtype), copy=True)
    out = skimage_module(image, "transform").rotate(
        frame, angle, resize=resize, order=order, mode=mode, cval=cval, preserve_range=True
    )
    return out.astype(float_dtype(image.dtype), copy=False)


@operation(menu="transform", dtype="same", vectorized=True)
def flip(image, *, axis: Literal["y", "x"] = "x"):
    """Mirror each frame: ``"x"`` left-right, ``"y"`` up-down.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    axis : {"y", "x"}
        Axis reversed.

    Returns
    -------
    array, shape ``(..., M, N)``
        Same dtype and values as the input, reordered. Whole frames.

    Examples
    --------
    >>> import numpy as np
    >>> flip(np.array([[1, 2, 3]]), axis="x").tolist()
    [[3, 2, 1]]
    """
    xp, _ = get_namespace(image)
    return xp.flip(image, axis=-1 if axis == "x" else -2)


@operation(
    menu="transform",
    dtype="same",
    vectorized=True,
    frame_shape=lambda frame_shape, k, **_: tuple(frame_shape[::-1]) if k % 2 else tuple(frame_shape),
)
def rot90(image, *, k: Annotated[int, Range(-3, 3)] = 1):
    """Rotate each frame by ``k`` quarter turns counter-clockwise (exact, no interpolation).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    k : int
        Number of quarter turns (negative: clockwise).

    Returns
    -------
    array, shape ``(..., M, N)`` or ``(..., N, M)`` for odd ``k``
        Same dtype and values as the input. For odd ``k`` the two frame axes
        swap, and so do their pixel sizes. Whole frames.

    Examples
    --------
    >>> import numpy as np
    >>> rot90(np.array([[1, 2], [3, 4]]), k=1).tolist()
    [[2, 4], [1, 3]]
    """
    xp, _ = get_namespace(image)
    return xp.rot90(image, k, axes=(-2, -1))


def _polar_radius(frame_shape):
    return float(np.hypot(frame_shape[0] / 2, frame_shape[1] / 2))


def _polar_shape(frame_shape, radius, angles, **_):
    return (angles, int(np.ceil(_polar_radius(frame_shape) if radius is None else radius)))


def _check_polar(image, **params):
    radius = _polar_radius(image.shape[-2:]) if params["radius"] is None else params["radius"]
    if params["scaling"] == "log" and radius <= 1:
        raise ValueError(f"radius must be > 1 for scaling='log', got {radius}")
    return {**params, "radius": radius}


def _polar_limits(frame, dtype, **_):
    return {
        "center": Range(tuple(-float(n) for n in frame), tuple(2.0 * n - 1 for n in frame),
                        reason="within one frame size of the frame"),
        "radius": Range(0, 4 * _polar_radius(frame), low_inclusive=False,
                        reason="at most twice the frame's diagonal: farther samples all fall outside it"),
    }


@operation(menu="transform", prepare=_check_polar, frame_shape=_polar_shape, limits=_polar_limits,
           cost=lambda shape, dtype, radius, angles, order, **_: _resampling_cost(
               shape, dtype, _polar_shape(shape[-2:], radius, angles), order))
def warp_polar(
    image,
    *,
    center: tuple[float, float] | None = None,
    radius: Annotated[float, Range(0, None, low_inclusive=False)] | None = None,
    scaling: Literal["linear", "log"] = "linear",
    angles: Annotated[int, Range(4, 7200)] = 360,
    order: Annotated[int, Range(0, 5)] = 1,
):
    """Polar (or log-polar) unwrapping of each frame about a centre.

    Rows become angles and columns radii: rings (diffraction rings, a
    Thon-ring power spectrum, a cell's outline) become straight lines, and a
    rotation becomes a shift along the rows (log-polar: a scaling becomes a
    shift along the columns).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    center : tuple of float, optional
        ``(row, column)`` of the centre, within one frame size of the frame;
        ``None``: the frame centre.
    radius : float, optional
        Largest radius in pixels, at most twice the frame diagonal; ``None``:
        half the frame diagonal.
    scaling : {"linear", "log"}
        Radius axis linear or logarithmic.
    angles : int
        Number of rows (angular samples over 360 degrees).
    order : int
        Spline interpolation order.

    Returns
    -------
    array, shape ``(..., angles, ceil(radius))``
        float32 (float64 for float64 input), in the units of the input
        (``skimage.transform.warp_polar``). Whole frames. Column ``j`` is at
        radius ``j * radius / ceil(radius)`` (linear).

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:41, :41]
    >>> ring = (np.abs(np.hypot(y - 20, x - 20) - 10) < 1).astype(np.uint8)
    >>> polar = warp_polar(ring, center=(20, 20), radius=20, angles=90)
    >>> polar.shape, int(polar.mean(axis=0).argmax())
    ((90, 20), 10)
    """
    out = skimage_module(image, "transform").warp_polar(
        as_float(image),
        center=center,
        radius=radius,
        output_shape=(angles, int(np.ceil(radius))),
        scaling=scaling,
        order=order,
        preserve_range=True,
    )
    return out.astype(float_dtype(image.dtype), copy=False)


# --------------------------------------------------------------------------- line profile (not an operation)


@validated
def line_profile(
    image: ImageRef,
    src: Sequence[float],
    dst: Sequence[float],
    *,
    linewidth: Annotated[int, Range(1, None)] = 1,
    order: Annotated[int, Range(0, 5)] = 1,
    mode: BoundaryMode = "reflect",
) -> Any:
    """Intensity along a line from ``src`` to ``dst`` (both ends included).

    Parameters
    ----------
    image : array, shape ``(M, N)``
        One frame (NumPy, CuPy or dask; for dask only the line's bounding box
        is read).
    src, dst : sequence of float
        ``(row, column)`` of the start and end points, in pixels.
    linewidth : int
        Width of the line in pixels; values across the width are averaged.
    order : int
        Spline interpolation order (0 nearest, 1 linear, 3 cubic).
    mode : str
        How points outside the frame are handled (``skimage.measure.profile_line``).

    Returns
    -------
    array, shape ``(L,)``
        float64 profile (``skimage.measure.profile_line`` with the mean over
        the width), ``L = ceil(|dst - src|) + 1`` samples, in the units of
        the image. Multiply the sample spacing by the pixel size for a
        physical distance axis.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(10.0), (5, 1))
    >>> line_profile(ramp, (2, 1), (2, 4)).tolist()
    [1.0, 2.0, 3.0, 4.0]
    """
    check_ndim(image, 2, max_ndim=2)
    src = np.asarray(src, dtype=float)
    dst = np.asarray(dst, dtype=float)
    for name, point in (("src", src), ("dst", dst)):
        if point.shape != (2,) or not np.isfinite(point).all():
            raise ValueError(f"{name} must be a finite (row, column) pair, got {point.tolist()}")
    if _backend.is_dask(image):
        margin = linewidth // 2 + order + 2
        low = np.maximum(np.floor(np.minimum(src, dst)) - margin, 0).astype(int)
        high = np.minimum(np.ceil(np.maximum(src, dst)) + margin + 1, image.shape).astype(int)
        image = _backend.materialize(image[low[0] : high[0], low[1] : high[1]])
        src, dst = src - low, dst - low
    xp, _ = get_namespace(image)
    return skimage_module(image, "measure").profile_line(
        image, tuple(src), tuple(dst), linewidth=linewidth, order=order, mode=mode, reduce_func=xp.mean
    )
