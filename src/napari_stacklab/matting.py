"""Background removal: trimaps, alpha matting and subject extraction.

The *prepare one image* workflow ends with cutting the subject out of its
background: a rough mask (from intensity thresholds or a drawn Labels layer)
becomes a *trimap* (certain foreground, certain background, an unknown band
at the edge), alpha matting estimates the soft opacity in the band (hair,
fuzzy cell borders, out-of-focus edges), and the subject is composited on a
transparent, white or black background.

Alpha matting uses PyMatting (closed-form matting, Levin et al. 2008), an
optional dependency: ``pip install pymatting`` (or the ``matting`` extra).
Matting solves one sparse linear system over the whole image, so these
functions take one in-memory 2-D image (gray ``(M, N)`` or colour
``(M, N, 3)``/``(M, N, 4)``); dask input is computed first, and
:func:`remove_background`, a registry operation (the *Remove background*
tool's recipe step), runs on the CPU (CuPy input falls back with a notice).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import numpy as np
from scipy import ndimage as ndi

from . import _backend
from ._validation import check_array, check_real, float_dtype
from .registry import ImageRef, Range, operation, validated

__all__ = [
    "trimap_from_mask",
    "trimap_from_thresholds",
    "postprocess_mask",
    "alpha_matte",
    "extract_subject",
    "remove_background",
    "BACKGROUNDS",
]

#: What an extracted subject is composited on.
Background = Literal["transparent", "white", "black"]
BACKGROUNDS = get_args(Background)
#: PyMatting's solvers: closed-form matting, large-kernel matting.
MattingMethod = Literal["cf", "lkm"]
#: A radius in pixels (0: none).
Pixels = Annotated[int, Range(0, None)]
#: Trimap values: certain background, unknown, certain foreground.
BACKGROUND, UNKNOWN, FOREGROUND = 0.0, 0.5, 1.0


def _pymatting():
    try:
        import pymatting
    except ImportError as exc:
        raise ImportError(
            "alpha matting needs PyMatting: pip install pymatting "
            "(or pip install 'napari-stacklab[matting]'); use mask_only=True to cut out with the mask alone"
        ) from exc
    return pymatting


def _host_image(image: Any, name: str = "image") -> np.ndarray:
    """A 2-D gray or channel-last colour image in host memory."""
    check_array(image, name)
    check_real(image, name)
    colour = image.ndim == 3 and image.shape[-1] in (3, 4)
    if image.ndim != 2 and not colour:
        raise ValueError(f"{name} must be (M, N) gray or (M, N, 3|4) colour, got shape {tuple(image.shape)}")
    if image.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(image.shape)})")
    return _backend.to_numpy(_backend.materialize(image))


def _host_plane(array: Any, name: str, shape: tuple) -> np.ndarray:
    check_array(array, name)
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (the image's rows and columns), got {tuple(array.shape)}")
    return _backend.to_numpy(_backend.materialize(array))


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return yy**2 + xx**2 <= radius**2


def _erode(mask: np.ndarray, size: int) -> np.ndarray:
    return ndi.binary_erosion(mask, _disk(size), border_value=1) if size > 0 else mask


def _dilate(mask: np.ndarray, size: int) -> np.ndarray:
    return ndi.binary_dilation(mask, _disk(size)) if size > 0 else mask


def _gray(image: np.ndarray) -> np.ndarray:
    """Luminance for colour images (ITU-R 601 weights on RGB; alpha ignored), the image itself otherwise."""
    if image.ndim == 2:
        return image
    return image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


@validated(device=False)
def trimap_from_mask(mask: ImageRef, *, erode_size: Pixels = 10, dilate_size: Pixels | None = None) -> np.ndarray:
    """Trimap from a rough foreground mask: an unknown band around its border.

    Parameters
    ----------
    mask : array of bool or int, shape ``(M, N)``
        Foreground where non-zero (a threshold mask, a Labels layer).
    erode_size : int
        Radius in pixels of the disk the mask is eroded with: pixels of the
        eroded mask are certain foreground.
    dilate_size : int, optional
        Radius of the dilation; pixels outside the dilated mask are certain
        background. Defaults to ``erode_size`` (a band of ``2 * erode_size``).

    Returns
    -------
    ndarray of float64, shape ``(M, N)``
        0 (background), 0.5 (unknown) or 1 (foreground); no halo concerns (in memory).

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((9, 9), bool); mask[2:7, 2:7] = True
    >>> trimap_from_mask(mask, erode_size=1)[4].tolist()
    [0.0, 0.5, 0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.0]
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (M, N), got shape {tuple(mask.shape)}")
    if dilate_size is None:
        dilate_size = erode_size
    mask = np.asarray(_backend.materialize(mask)) != 0
    trimap = np.full(mask.shape, UNKNOWN)
    trimap[~_dilate(mask, dilate_size)] = BACKGROUND
    trimap[_erode(mask, erode_size)] = FOREGROUND
    return trimap


@validated(device=False)
def trimap_from_thresholds(
    image: ImageRef, *, foreground: float, background: float, erode_size: Pixels = 10
) -> np.ndarray:
    """Trimap from two intensity thresholds (on the luminance of colour images).

    ``foreground > background``: a bright subject; pixels ``>= foreground`` are
    foreground, pixels ``<= background`` background. ``foreground <
    background``: a dark subject (brightfield, a photo on a light table), the
    comparisons reversed. Both certain regions are then eroded by
    ``erode_size`` so that the band between them is left to the matting.

    Parameters
    ----------
    image : array, shape ``(M, N)`` or ``(M, N, 3|4)``
        Gray or channel-last colour image, in its own units.
    foreground, background : float
        Thresholds in the image's units (must differ).
    erode_size : int
        Radius in pixels of the erosion of both certain regions.

    Returns
    -------
    ndarray of float64, shape ``(M, N)``
        0, 0.5 or 1, as :func:`trimap_from_mask`.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[0, 50, 100, 200, 250]], np.uint8)
    >>> trimap_from_thresholds(img, foreground=200, background=50, erode_size=0).tolist()
    [[0.0, 0.0, 0.5, 1.0, 1.0]]
    """
    image = _host_image(image)
    if foreground == background:
        raise ValueError(f"foreground and background thresholds must differ, both are {foreground!r}")
    gray = _gray(image)
    if foreground > background:
        fg, bg = gray >= foreground, gray <= background
    else:
        fg, bg = gray <= foreground, gray >= background
    trimap = np.full(gray.shape, UNKNOWN)
    trimap[_erode(bg, erode_size)] = BACKGROUND
    trimap[_erode(fg, erode_size)] = FOREGROUND
    return trimap


@validated(device=False)
def postprocess_mask(mask: ImageRef, *, fill_holes: bool = True, min_size: Pixels = 0) -> np.ndarray:
    """Clean a foreground mask: fill enclosed holes, drop small specks.

    Parameters
    ----------
    mask : array, shape ``(M, N)``
        Foreground where non-zero.
    fill_holes : bool
        Fill background regions not connected to the image border.
    min_size : int
        Remove connected foreground objects (4-connected) smaller than this
        many pixels; 0 keeps everything.

    Returns
    -------
    ndarray of bool, shape ``(M, N)``

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((7, 7), bool); m[1:5, 1:5] = True; m[2, 2] = False; m[6, 6] = True
    >>> out = postprocess_mask(m, min_size=2)
    >>> bool(out[2, 2]), bool(out[6, 6])
    (True, False)
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (M, N), got shape {tuple(mask.shape)}")
    mask = np.asarray(_backend.materialize(mask)) != 0
    if fill_holes:
        mask = ndi.binary_fill_holes(mask)
    if min_size > 1:
        labels, _ = ndi.label(mask)
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_size
        keep[0] = False
        mask = keep[labels]
    return mask


@validated(device=False)
def alpha_matte(image: ImageRef, trimap: ImageRef, *, method: MattingMethod = "cf") -> np.ndarray:
    """Soft opacity of the subject in the trimap's unknown band (PyMatting).

    The image is scaled to [0, 1] (its min and max) for the solver only;
    the result is an opacity, not a rescaled image.

    Parameters
    ----------
    image : array, shape ``(M, N)`` or ``(M, N, 3|4)``
        Gray or channel-last colour image (alpha channel ignored).
    trimap : array, shape ``(M, N)``
        0 background, 1 foreground, anything between unknown
        (:func:`trimap_from_mask`, :func:`trimap_from_thresholds`).
    method : {"cf", "lkm"}
        ``"cf"``: closed-form matting (Levin et al.); ``"lkm"``: large-kernel
        matting (He et al.), faster on large unknown regions.

    Returns
    -------
    ndarray of float64, shape ``(M, N)``
        Alpha in [0, 1]: exactly the trimap in its certain regions.

    Raises
    ------
    ImportError
        When PyMatting is not installed (with the command to install it).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:32, :32]; truth = np.clip(10.5 - np.hypot(yy - 16, xx - 16), 0, 1)
    >>> img = 0.2 + 0.6 * truth
    >>> alpha = alpha_matte(img, trimap_from_mask(truth > 0.5, erode_size=3))
    >>> bool(np.abs(alpha - truth).max() < 0.05)
    True
    """
    pymatting = _pymatting()
    image = _host_image(image)
    trimap = _host_plane(trimap, "trimap", image.shape[:2]).astype(np.float64)
    if not ((trimap >= 0) & (trimap <= 1)).all():
        raise ValueError("trimap values must lie in [0, 1] (0 background, 1 foreground)")
    if not ((trimap > BACKGROUND) & (trimap < FOREGROUND)).any():
        return trimap.copy()
    if not (trimap == FOREGROUND).any() or not (trimap == BACKGROUND).any():
        raise ValueError("trimap needs both certain foreground (1) and certain background (0) pixels")
    rgb = _solver_rgb(image)
    solver = pymatting.estimate_alpha_cf if method == "cf" else pymatting.estimate_alpha_lkm
    alpha = np.clip(solver(rgb, trimap), 0.0, 1.0)
    certain = (trimap == BACKGROUND) | (trimap == FOREGROUND)
    alpha[certain] = trimap[certain]  # the large-kernel solver only approximately honours them
    return alpha


def _solver_rgb(image: np.ndarray) -> np.ndarray:
    """float64 RGB in [0, 1] for PyMatting (gray repeated on three channels)."""
    rgb = image.astype(np.float64) if image.ndim == 2 else image[..., :3].astype(np.float64)
    low, high = rgb.min(), rgb.max()
    rgb = (rgb - low) / (high - low) if high > low else np.zeros_like(rgb)
    return np.repeat(rgb[..., None], 3, axis=-1) if rgb.ndim == 2 else rgb


def _white(image: np.ndarray) -> float:
    dtype = image.dtype
    if dtype.kind in "iu":
        return float(np.iinfo(dtype).max)
    if dtype.kind == "b":
        return 1.0
    return float(image.max())


@validated(device=False)
def extract_subject(
    image: ImageRef,
    alpha: ImageRef,
    *,
    background: Background = "transparent",
    estimate_foreground: bool = False,
) -> np.ndarray:
    """Composite the subject over a new background.

    Parameters
    ----------
    image : array, shape ``(M, N)`` or ``(M, N, 3|4)``
        Gray or colour image (an alpha channel is replaced).
    alpha : array, shape ``(M, N)``
        Opacity in [0, 1] (:func:`alpha_matte`, or a hard mask).
    background : {"transparent", "white", "black"}
        ``"transparent"``: the image's colours with ``alpha`` as their alpha
        channel (RGBA; a gray image becomes gray+alpha RGBA). ``"white"``/
        ``"black"``: ``alpha * F + (1 - alpha) * B``, the same channels as
        the input. White is the dtype's maximum for integer images and the
        image's maximum for float images; black is 0.
    estimate_foreground : bool
        Replace the colours in the soft band by PyMatting's estimate of the
        pure foreground colour (removes the old background's tint from the
        edges; needs PyMatting).

    Returns
    -------
    ndarray, shape ``(M, N, 4)`` (transparent), ``(M, N)`` or ``(M, N, 3)``
        Integer images keep their dtype (values rounded; the alpha channel
        spans the dtype's range, 255 for uint8); float images give float32
        (float64 for float64) with alpha in [0, 1]. Counts are not rescaled.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((2, 2, 3), 200, np.uint8); alpha = np.array([[1.0, 0.5], [0.0, 1.0]])
    >>> extract_subject(img, alpha, background="black")[..., 0].tolist()
    [[200, 100], [0, 200]]
    >>> extract_subject(img, alpha)[..., 3].tolist()
    [[255, 128], [0, 255]]
    """
    image = _host_image(image)
    alpha = _host_plane(alpha, "alpha", image.shape[:2]).astype(np.float64)
    if alpha.min() < 0 or alpha.max() > 1:
        raise ValueError("alpha values must lie in [0, 1]")
    colour = image if image.ndim == 2 else image[..., :3]
    integer = image.dtype.kind in "iub"
    out_dtype = image.dtype if integer else float_dtype(image.dtype)
    values = colour.astype(np.float64)
    if estimate_foreground:
        values = _estimated_foreground(values, alpha)
    if background == "transparent":
        full = _white(image) if integer else 1.0
        rgb = np.repeat(values[..., None], 3, axis=-1) if values.ndim == 2 else values
        result = np.concatenate([rgb, (alpha * full)[..., None]], axis=-1)
    else:
        fill = _white(image) if background == "white" else 0.0
        weight = alpha if values.ndim == 2 else alpha[..., None]
        result = weight * values + (1.0 - weight) * fill
    if integer:
        info = np.iinfo(out_dtype) if out_dtype.kind in "iu" else None
        result = np.rint(result)
        if info is not None:
            result = np.clip(result, info.min, info.max)
    return result.astype(out_dtype)


def _estimated_foreground(values: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """PyMatting's multilevel foreground estimate, in the image's own units."""
    pymatting = _pymatting()
    low, high = values.min(), values.max()
    span = high - low if high > low else 1.0
    rgb = (values - low) / span
    rgb3 = np.repeat(rgb[..., None], 3, axis=-1) if rgb.ndim == 2 else rgb
    foreground = pymatting.estimate_foreground_ml(rgb3, alpha)
    foreground = np.clip(foreground, 0.0, 1.0) * span + low
    return foreground[..., 0] if values.ndim == 2 else foreground


#: The arrays :func:`remove_background` returns, in layer order.
REMOVAL_PARTS = ("mask", "trimap", "alpha", "subject")


@operation(menu="filter", output="images", lift=False, channels="native", parts=REMOVAL_PARTS,
           title="Remove background")
def remove_background(
    image,
    *,
    mask: ImageRef | None = None,
    foreground: float | None = None,
    background: float | None = None,
    erode_size: Pixels = 10,
    dilate_size: Pixels | None = None,
    fill_holes: bool = True,
    min_size: Pixels = 0,
    mask_only: bool = False,
    method: MattingMethod = "cf",
    new_background: Background = "transparent",
    estimate_foreground: bool = False,
) -> dict:
    """The whole background-removal chain: mask -> trimap -> alpha -> subject.

    Parameters
    ----------
    image : array, shape ``(M, N)`` or ``(M, N, 3|4)``
        Gray or colour image.
    mask : array, shape ``(M, N)``, optional
        Rough foreground (non-zero), e.g. a Labels layer. Without it the mask
        is ``image >= foreground`` (``<=`` for a dark subject, see below).
    foreground, background : float, optional
        Intensity thresholds (luminance for colour). With ``mask`` given they
        are ignored. Without it, ``foreground`` is required; ``background``
        defaults to ``foreground`` (the mask's border is then the unknown band
        of width ``erode_size + dilate_size``). A ``foreground`` below
        ``background`` selects a dark subject.
    erode_size, dilate_size : int
        Radii (pixels) of the unknown band, as in :func:`trimap_from_mask`.
    fill_holes, min_size
        Post-processing of the mask (:func:`postprocess_mask`).
    mask_only : bool
        Skip matting: the (post-processed) mask is the alpha (hard edges).
    method : {"cf", "lkm"}
        Matting solver (:func:`alpha_matte`).
    new_background : {"transparent", "white", "black"}
        Background of the extracted subject (:func:`extract_subject`).
    estimate_foreground : bool
        Estimate pure foreground colours at the soft edges.

    Returns
    -------
    dict
        ``"mask"`` (bool ``(M, N)``), ``"trimap"`` (float64 ``(M, N)``),
        ``"alpha"`` (float64 ``(M, N)`` in [0, 1]) and ``"subject"``
        (see :func:`extract_subject`). A colour image may also be named
        with ``rgb=True`` (or ``channel_axis=``, its channels then moved
        last); the subject keeps the colour axis where it was. In host
        memory: the whole image is read (no halo, no lazy result); CuPy
        input runs on the CPU with a :class:`~napari_stacklab._backend.GPUFallbackWarning`.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((20, 20), np.uint8); img[5:15, 5:15] = 200
    >>> out = remove_background(img, foreground=100, mask_only=True, new_background="white")
    >>> int(out["mask"].sum()), out["subject"][0, 0], out["subject"][10, 10]
    (100, np.uint8(255), np.uint8(200))
    """
    if _backend.on_gpu(image):
        raise _backend.NoGPUImplementation("background removal (mask clean-up, PyMatting) runs on the CPU only")
    host = _host_image(image)
    if mask is None:
        if foreground is None:
            raise ValueError("give a mask or a foreground threshold (foreground=...)")
        low = foreground if background is None else background
        gray = _gray(host)
        dark = low > foreground
        rough = gray <= foreground if dark else gray >= foreground
    else:
        rough = _host_plane(mask, "mask", host.shape[:2]) != 0
    clean = postprocess_mask(rough, fill_holes=fill_holes, min_size=min_size)
    if mask_only:
        trimap = clean.astype(np.float64)
        alpha = trimap.copy()
    else:
        trimap = trimap_from_mask(clean, erode_size=erode_size, dilate_size=dilate_size)
        if mask is None and background is not None and background != foreground:
            # the two thresholds also decide: pixels beyond the background threshold stay background
            certain = trimap_from_thresholds(host, foreground=foreground, background=background, erode_size=0)
            trimap[(certain == BACKGROUND) & (trimap == UNKNOWN)] = BACKGROUND
        alpha = alpha_matte(host, trimap, method=method)
    subject = extract_subject(host, alpha, background=new_background, estimate_foreground=estimate_foreground)
    return {"mask": clean, "trimap": trimap, "alpha": alpha, "subject": subject}
