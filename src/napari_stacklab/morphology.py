"""Mathematical morphology of masks, labels and grey images, for planes and volumes.

Structuring elements are named (``footprint``) and sized (``radius``):
``"disk"``, ``"square"`` and ``"diamond"`` work on every plane ``(M, N)`` of a
stack; ``"ball"``, ``"cube"`` and ``"octahedron"`` work on volumes
``(P, M, N)``. Neighbourhood operations carry a halo (``radius``, or
``2 * radius`` for openings and closings) so dask may split frames; operations
that need a whole object (filling holes, removing small objects, clearing the
border, skeletons, distance transforms) keep whole frames per chunk.

Sizes are in pixels. To give an area in physical units, pass ``spacing``
(the pixel size along the frame axes, e.g. the image's scale) to
:func:`remove_small_objects` / :func:`remove_small_holes`, or convert by hand:
``pixels = area / prod(pixel_size)``.
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, Callable, Literal, get_args

import numpy as np

from ._backend import get_namespace, skimage_module
from ._validation import float_dtype
from .costs import Cost
from .frames import Mode, check_connectivity, frame_spacing, mode_ndim
from .neighbourhoods import chords, flat_cost, flat_filter
from .registry import Range, operation, validated

__all__ = [
    "erosion",
    "dilation",
    "opening",
    "closing",
    "binary_erosion",
    "binary_dilation",
    "binary_opening",
    "binary_closing",
    "morphological_gradient",
    "fill_holes",
    "remove_small_objects",
    "remove_small_holes",
    "clear_border",
    "skeletonize",
    "distance_transform",
    "footprint_array",
    "frame_spacing",
    "FOOTPRINTS",
]

Footprint = Literal["disk", "square", "diamond", "ball", "cube", "octahedron"]
#: Footprint name -> dimensionality of the frames it applies to.
FOOTPRINTS = dict(zip(get_args(Footprint), (2, 2, 2, 3, 3, 3)))
#: a pixel size in physical units; up to 1e30 keeps distances and areas far inside float32
PositiveSpacing = Annotated[float | tuple[float, ...], Range(0, 1e30, low_inclusive=False)]
Radius = Annotated[int, Range(1, 100)]


@validated(device=False)
def footprint_array(footprint: Footprint, radius: Annotated[int, Range(0, None)]) -> np.ndarray:
    """The boolean structuring element ``footprint`` of ``radius`` (side ``2 * radius + 1``).

    Examples
    --------
    >>> footprint_array("diamond", 1).astype(int).tolist()
    [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    """
    return _footprint(footprint, radius).copy()


@functools.lru_cache(maxsize=64)
def _footprint(footprint: str, radius: int) -> np.ndarray:
    """:func:`footprint_array`, made once per shape and read-only (kernels build it for every frame)."""
    if footprint in ("square", "cube"):
        element = np.ones((2 * radius + 1,) * FOOTPRINTS[footprint], dtype=bool)
    else:
        element = getattr(skimage_module(np.empty(0), "morphology"), footprint)(radius).astype(bool)
    element.flags.writeable = False
    return element


def _footprint_ndim(footprint: str, **_: Any) -> int:
    return FOOTPRINTS[footprint]


@functools.lru_cache(maxsize=64)
def _chords(footprint: str, radius: int) -> dict:
    return chords(_footprint(footprint, radius))


def _erode(frame: Any, footprint: str, radius: int) -> Any:
    return flat_filter(frame, _footprint(footprint, radius), dilate=False, runs=_chords(footprint, radius))


def _dilate(frame: Any, footprint: str, radius: int) -> Any:
    return flat_filter(frame, _footprint(footprint, radius), dilate=True, runs=_chords(footprint, radius))


#: erosion, dilation, opening and closing by a named footprint (skimage.morphology's, mode "reflect")
_FLAT = {
    "erosion": _erode,
    "dilation": _dilate,
    "opening": lambda frame, footprint, radius: _dilate(_erode(frame, footprint, radius), footprint, radius),
    "closing": lambda frame, footprint, radius: _erode(_dilate(frame, footprint, radius), footprint, radius),
}


def _flat_cost(passes: int) -> Callable[..., Cost]:
    def cost(shape: tuple, dtype: Any, footprint: str, radius: int, **_: Any) -> Cost:
        one = flat_cost(shape, dtype, _footprint(footprint, radius), _chords(footprint, radius))
        return Cost(one.bytes, passes * one.seconds, one.why, one.hint)

    return cost


def _as_mask(frame: Any) -> Any:
    return frame if frame.dtype == bool else frame != 0


def _labels_or_mask(dtype: Any, **_: Any) -> np.dtype:
    return np.dtype(bool) if np.dtype(dtype) == bool else np.dtype(np.int32)


# --------------------------------------------------------------------------- neighbourhood operations
def _declare_neighbourhood(name: str, func: str, binary: bool, passes: int, what: str, example: str) -> Callable:
    """Declare one erosion/dilation/opening/closing operation (grey or binary)."""
    kind = "mask" if binary else "image"
    out_rule = "bool" if binary else "same"
    dtype_doc = "bool (non-zero input pixels are foreground)" if binary else "same dtype as the input"

    def kernel(image, *, footprint: Footprint = "disk", radius: Radius = 1):
        return _FLAT[func](_as_mask(image) if binary else image, footprint, radius)

    kernel.__name__ = kernel.__qualname__ = name
    kernel.__module__ = __name__
    kernel.__doc__ = f"""{what}

    Parameters
    ----------
    image : array, shape ``(..., M, N)`` or ``(..., P, M, N)``
        {"Mask or labels (non-zero = foreground)" if binary else "Grey image, mask or labels"}; planes for 2-D
        footprints, volumes for 3-D ones; leading axes are independent frames.
    footprint : {{"disk", "square", "diamond", "ball", "cube", "octahedron"}}
        Shape of the structuring element; ``"ball"``, ``"cube"`` and
        ``"octahedron"`` act on volumes ``(P, M, N)``.
    radius : int
        Radius in pixels (the element's side is ``2 * radius + 1``).

    Returns
    -------
    array, same shape as ``image``
        {dtype_doc}; the values of ``skimage.morphology.{func}`` (mode
        ``"reflect"``), computed exactly by decomposing the footprint into its
        rows, one running {"minimum and maximum" if passes == 2 else "extremum"} a row length, so the
        time grows with ``radius``, not ``radius**2``.
        Halo: ``{"2 * radius" if passes == 2 else "radius"}``.

    Examples
    --------
{example}
    """
    return operation(
        menu="segment" if binary else "filter",
        output=kind,
        dtype=out_rule,
        frame_ndim=_footprint_ndim,
        halo=lambda radius, **_: passes * radius,
        cost=_flat_cost(passes),
    )(kernel)


_EX_GREY = """    >>> import numpy as np
    >>> img = np.zeros((7, 7), np.uint8); img[2:5, 2:5] = 9
    >>> int({call}.sum()) // 9
    {result}"""

erosion = _declare_neighbourhood(
    "erosion", "erosion", False, 1, "Grey erosion: each pixel becomes the minimum over the footprint.",
    _EX_GREY.format(call='erosion(img, footprint="square", radius=1)', result=1),
)
dilation = _declare_neighbourhood(
    "dilation", "dilation", False, 1, "Grey dilation: each pixel becomes the maximum over the footprint.",
    _EX_GREY.format(call='dilation(img, footprint="square", radius=1)', result=25),
)
opening = _declare_neighbourhood(
    "opening", "opening", False, 2, "Grey opening (erosion, then dilation): removes bright details smaller than the footprint.",
    _EX_GREY.format(call='opening(img, footprint="square", radius=2)', result=0),
)
closing = _declare_neighbourhood(
    "closing", "closing", False, 2, "Grey closing (dilation, then erosion): fills dark details smaller than the footprint.",
    _EX_GREY.format(call='closing(img, footprint="square", radius=1)', result=9),
)

_EX_BINARY = """    >>> import numpy as np
    >>> mask = np.zeros((7, 7), bool); mask[2:5, 2:5] = True
    >>> int({call}.sum())
    {result}"""

binary_erosion = _declare_neighbourhood(
    "binary_erosion", "erosion", True, 1, "Binary erosion: shrink the foreground by the footprint.",
    _EX_BINARY.format(call='binary_erosion(mask, footprint="square", radius=1)', result=1),
)
binary_dilation = _declare_neighbourhood(
    "binary_dilation", "dilation", True, 1, "Binary dilation: grow the foreground by the footprint.",
    _EX_BINARY.format(call='binary_dilation(mask, footprint="square", radius=1)', result=25),
)
binary_opening = _declare_neighbourhood(
    "binary_opening", "opening", True, 2, "Binary opening: remove foreground specks and thin bridges smaller than the footprint.",
    _EX_BINARY.format(call='binary_opening(mask, footprint="square", radius=2)', result=0),
)
binary_closing = _declare_neighbourhood(
    "binary_closing", "closing", True, 2, "Binary closing: close background gaps and small holes smaller than the footprint.",
    _EX_BINARY.format(call='binary_closing(mask, footprint="square", radius=1)', result=9),
)


@operation(menu="filter", dtype="same", frame_ndim=_footprint_ndim, halo=lambda radius, **_: radius,
           cost=_flat_cost(2))
def morphological_gradient(image, *, footprint: Footprint = "disk", radius: Radius = 1):
    """Morphological gradient: dilation minus erosion, bright on object edges.

    Parameters
    ----------
    image : array, shape ``(..., M, N)`` or ``(..., P, M, N)``
        Grey image or mask; planes for 2-D footprints, volumes for 3-D ones.
    footprint : {"disk", "square", "diamond", "ball", "cube", "octahedron"}
        Shape of the structuring element.
    radius : int
        Radius in pixels.

    Returns
    -------
    array, same shape and dtype as ``image``
        ``dilation - erosion`` (never negative, so unsigned types are safe);
        for a bool mask, the pixels within ``radius`` of its edge. Halo: ``radius``.

    Examples
    --------
    >>> import numpy as np
    >>> step = np.repeat([[0, 0, 0, 5, 5, 5]], 3, axis=0).astype(np.uint8)
    >>> morphological_gradient(step, footprint="square")[1].tolist()
    [0, 0, 5, 5, 0, 0]
    """
    if image.dtype == bool:
        return _dilate(image, footprint, radius) ^ _erode(image, footprint, radius)
    return _dilate(image, footprint, radius) - _erode(image, footprint, radius)


# --------------------------------------------------------------------------- whole-object operations
@operation(menu="segment", output="mask", dtype="bool", frame_ndim=mode_ndim)
def fill_holes(image, *, mode: Mode = "2d"):
    """Fill background regions that do not touch the frame border.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Mask (non-zero = foreground).
    mode : {"2d", "3d"}
        Fill each plane ``(M, N)`` or each volume ``(P, M, N)``.

    Returns
    -------
    array of bool, shape ``(..., M, N)``
        ``scipy.ndimage.binary_fill_holes`` per frame; whole frames per chunk.

    Examples
    --------
    >>> import numpy as np
    >>> ring = np.ones((5, 5), bool); ring[2, 2] = False
    >>> bool(fill_holes(ring).all())
    True
    """
    _, ndi = get_namespace(image)
    return ndi.binary_fill_holes(_as_mask(image))


def _pixels(max_size: float, spacing: Any, frame_shape: tuple) -> int:
    """``max_size`` (pixels, or an area/volume in the units of ``spacing``) as a pixel count.

    No object is larger than the frame, so the count stops there (a tiny pixel
    size or a huge ``max_size`` cannot overflow).
    """
    pixel = frame_spacing(spacing, len(frame_shape))
    area = math.prod(pixel) if pixel is not None else 1.0
    count = max_size / area if area > 0 else math.inf
    return int(math.floor(min(count, math.prod(frame_shape))))


def _check_sizes(image: Any, **params: Any) -> dict:
    """Connectivity and spacing checked against the frame dimensionality, before any frame is computed."""
    frame_ndim = mode_ndim(params["mode"])
    check_connectivity(params["connectivity"], frame_ndim)
    frame_spacing(params["spacing"], frame_ndim)
    return params


@operation(menu="segment", output="labels", dtype=_labels_or_mask, frame_ndim=mode_ndim, prepare=_check_sizes)
def remove_small_objects(
    image,
    *,
    max_size: Annotated[float, Range(0, None)] = 64,
    connectivity: Annotated[int, Range(1, 3)] = 1,
    spacing: PositiveSpacing | None = None,
    mode: Mode = "2d",
):
    """Remove objects of ``max_size`` or less (pixels, or area/volume with ``spacing``).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Mask (bool) or labels (integers >= 0; each label is one object).
    max_size : float
        Objects with this size or less are removed: a pixel count, or an area
        (volume) in physical units when ``spacing`` is given.
    connectivity : int
        Neighbourhood used to find objects in a mask (1 = faces).
    spacing : float or tuple of float, optional
        Pixel size along the frame axes (or along every axis, e.g. a layer's
        scale; the last 2 or 3 values are used). The pixel limit is
        ``floor(max_size / prod(spacing))``.
    mode : {"2d", "3d"}
        Planes or volumes.

    Returns
    -------
    array, shape ``(..., M, N)``
        bool for a bool mask, int32 labels otherwise; whole frames per chunk.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((6, 6), bool); mask[0, 0] = True; mask[2:6, 2:6] = True
    >>> int(remove_small_objects(mask, max_size=1).sum())
    16
    >>> int(remove_small_objects(mask, max_size=4, spacing=0.5).sum())   # 4 um^2 = 16 pixels
    0
    """
    morphology = skimage_module(image, "morphology")
    pixels = _pixels(max_size, spacing, image.shape)
    if image.dtype == bool:
        return morphology.remove_small_objects(image, max_size=pixels, connectivity=connectivity)
    if image.dtype.kind == "f":
        return morphology.remove_small_objects(image != 0, max_size=pixels, connectivity=connectivity).astype(np.int32)
    return morphology.remove_small_objects(image.astype(np.int32), max_size=pixels, connectivity=connectivity)


@operation(menu="segment", output="mask", dtype="bool", frame_ndim=mode_ndim, prepare=_check_sizes)
def remove_small_holes(
    image,
    *,
    max_size: Annotated[float, Range(0, None)] = 64,
    connectivity: Annotated[int, Range(1, 3)] = 1,
    spacing: PositiveSpacing | None = None,
    mode: Mode = "2d",
):
    """Fill holes of ``max_size`` or less (pixels, or area/volume with ``spacing``).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Mask (non-zero = foreground).
    max_size : float
        Holes with this size or less are filled: a pixel count, or an area
        (volume) in physical units when ``spacing`` is given.
    connectivity : int
        Neighbourhood used to find holes (1 = faces).
    spacing : float or tuple of float, optional
        Pixel size along the frame axes (or along every axis); the pixel limit
        is ``floor(max_size / prod(spacing))``.
    mode : {"2d", "3d"}
        Planes or volumes.

    Returns
    -------
    array of bool, shape ``(..., M, N)``
        Whole frames per chunk.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.ones((6, 6), bool); mask[2, 2] = False
    >>> bool(remove_small_holes(mask, max_size=1).all())
    True
    """
    return skimage_module(image, "morphology").remove_small_holes(
        _as_mask(image), max_size=_pixels(max_size, spacing, image.shape), connectivity=connectivity
    )


def _border_limits(frame: tuple, dtype: Any, **_: Any) -> dict:
    return {"buffer_size": Range(0, min(frame) - 1, reason="less than the frame's smaller side")}


@operation(menu="segment", output="labels", dtype=_labels_or_mask, frame_ndim=mode_ndim, limits=_border_limits)
def clear_border(image, *, buffer_size: Annotated[int, Range(0, 1000)] = 0, mode: Mode = "2d"):
    """Remove objects touching the frame border (cells cut by the field of view).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Mask (bool) or labels.
    buffer_size : int
        Also remove objects within this many pixels of the border.
    mode : {"2d", "3d"}
        Border of each plane or of each volume.

    Returns
    -------
    array, shape ``(..., M, N)``
        bool for a bool mask, int32 labels otherwise; whole frames per chunk.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((5, 5), bool); mask[0, 0] = True; mask[2, 2] = True
    >>> clear_border(mask).nonzero()
    (array([2]), array([2]))
    """
    segmentation = skimage_module(image, "segmentation")
    labels = image if image.dtype == bool else image.astype(np.int32)
    return segmentation.clear_border(labels, buffer_size=buffer_size)


@operation(menu="segment", output="mask", dtype="bool", frame_ndim=mode_ndim)
def skeletonize(image, *, mode: Mode = "2d"):
    """One-pixel-wide centre lines of the foreground.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Mask (non-zero = foreground).
    mode : {"2d", "3d"}
        Skeletons of planes (Zhang's method) or volumes (Lee's method).

    Returns
    -------
    array of bool, shape ``(..., M, N)``
        ``skimage.morphology.skeletonize``; whole frames per chunk.

    Examples
    --------
    >>> import numpy as np
    >>> bar = np.zeros((7, 12), bool); bar[2:5, 1:11] = True
    >>> int(skeletonize(bar)[3].sum()), int(skeletonize(bar)[[0, 1, 5, 6]].sum())
    (8, 0)
    """
    return skimage_module(image, "morphology").skeletonize(_as_mask(image))


def _check_sampling(image: Any, **params: Any) -> dict:
    frame_spacing(params["sampling"], mode_ndim(params["mode"]))
    return params


@operation(menu="segment", dtype="float", frame_ndim=mode_ndim, prepare=_check_sampling)
def distance_transform(image, *, sampling: PositiveSpacing | None = None, mode: Mode = "2d"):
    """Euclidean distance of every foreground pixel to the nearest background pixel.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Mask (non-zero = foreground).
    sampling : float or tuple of float, optional
        Pixel size along the frame axes (or along every axis, e.g. a layer's
        scale); distances are then in those physical units. ``None``: pixels.
    mode : {"2d", "3d"}
        Distances within planes or within volumes.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input); 0 on the background; whole
        frames per chunk (a distance can reach across the frame).

    Examples
    --------
    >>> import numpy as np
    >>> row = np.array([[0, 1, 1, 1, 1, 1, 0]], bool)
    >>> distance_transform(row, sampling=0.5).tolist()
    [[0.0, 0.5, 1.0, 1.5, 1.0, 0.5, 0.0]]
    """
    _, ndi = get_namespace(image)
    distance = ndi.distance_transform_edt(_as_mask(image), sampling=frame_spacing(sampling, image.ndim))
    return distance.astype(float_dtype(image.dtype), copy=False)
