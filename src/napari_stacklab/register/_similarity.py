"""How well two aligned images agree: a local similarity heatmap and a global score."""

from __future__ import annotations

from typing import Annotated, Any

from .. import _backend
from .._validation import check_real, float_dtype
from ..registry import ImageRef, PerFrame, Range, operation, validated

__all__ = ["similarity_map", "similarity_score"]


def _local_ncc(image: Any, reference: Any, *, window: int) -> Any:
    """Windowed zero-normalised cross-correlation over the last two axes (no validation)."""
    xp, ndi = _backend.get_namespace(image)
    # float64 inside: local variances are differences of nearly equal means.
    a = image.astype(xp.float64, copy=False)
    b = xp.broadcast_to(reference.astype(xp.float64, copy=False), a.shape)
    size = (1,) * (a.ndim - 2) + (window, window)

    def mean(x):
        return ndi.uniform_filter(x, size=size, mode="reflect")

    mean_a, mean_b = mean(a), mean(b)
    var_a = mean(a * a) - mean_a**2
    var_b = mean(b * b) - mean_b**2
    covariance = mean(a * b) - mean_a * mean_b
    tiny = 1e-10
    textured = (var_a > tiny * (mean_a**2 + 1)) & (var_b > tiny * (mean_b**2 + 1))
    denominator = xp.sqrt(xp.where(textured, var_a * var_b, 1))
    return xp.clip(xp.where(textured, covariance / denominator, 0), -1, 1).astype(float_dtype(image.dtype),
                                                                                  copy=False)


def _prepare_reference(image: Any, *, reference: Any, window: int) -> dict:
    """A real reference; for lazy frames split into chunks, a frame-shaped reference spread over every frame.

    The lift hands a frame-shaped image parameter whole to every block, and
    a block may hold part of a frame only (the halo lets frames split); a
    lazy broadcast to the image's shape is split with the image instead.
    """
    check_real(reference, "reference")
    if _backend.is_dask(image) and tuple(reference.shape) != tuple(image.shape):
        frame = _backend.as_dask(reference, chunks=image.chunks[image.ndim - reference.ndim:])
        reference = _backend.dask_module().broadcast_to(frame.rechunk(image.chunks[image.ndim - reference.ndim:]),
                                                        image.shape, chunks=image.chunks)
    return {"reference": reference, "window": window}


@operation(menu="register", halo=lambda window, **_: window // 2, prepare=_prepare_reference, name="similarity_map",
           title="Similarity heatmap", channels="luminance")
def similarity_map(image, *, reference: Annotated[ImageRef, PerFrame], window: Annotated[int, Range(3, 255)] = 15):
    """Local normalised cross-correlation of an aligned image with its reference.

    Each pixel gets the zero-normalised correlation of the two images over a
    ``window x window`` neighbourhood: 1 where they match (up to brightness
    and contrast), 0 where unrelated, -1 where inverted. Flat regions (no
    texture in either image) get 0. Show it with a warm-to-cool colormap
    (e.g. reversed "coolwarm": warm = similar).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        The aligned image or stack (NumPy, CuPy or dask; dask stays lazy and
        frames may be split into chunks).
    reference : array, shape ``(M, N)`` or ``(..., M, N)``
        The base image: one frame, shared by every frame of ``image``, or a
        stack of ``image``'s shape (frame by frame).
    window : int
        Side of the square window in pixels; the halo is ``window // 2``.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), values in [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> base = data.camera()[:64, :64]
    >>> heat = similarity_map(2 * base.astype(np.float32) + 10, reference=base, window=7)
    >>> heat.dtype, bool(heat[heat != 0].min() > 0.999)
    (dtype('float32'), True)
    """
    return _local_ncc(image, reference, window=window)


@validated
def similarity_score(image: ImageRef, reference: ImageRef, *, mask: ImageRef | None = None) -> float:
    """Global zero-normalised cross-correlation of two images (1 = identical up to brightness/contrast).

    Parameters
    ----------
    image, reference : array, shape ``(M, N)``
        Same shape (dask inputs are computed once).
    mask : array of bool, shape ``(M, N)``, optional
        Pixels to compare (e.g. where a warped image has data).
    device : {"auto", "cpu", "gpu"}, optional
        Where to compute; default: where the images are.

    Returns
    -------
    float
        In [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> cam = data.camera().astype(float)
    >>> round(similarity_score(3 * cam + 1, cam), 6)
    1.0
    """
    check_real(image, "image")
    check_real(reference, "reference")
    if tuple(image.shape) != tuple(reference.shape):
        raise ValueError(f"image and reference must have the same shape, got {image.shape} and {reference.shape}")
    a, b = _backend.compute_here(image), _backend.compute_here(reference)
    xp, _ = _backend.get_namespace(a)
    a, b = xp.asarray(a, dtype=xp.float64), xp.asarray(b, dtype=xp.float64)
    if mask is not None:
        keep = xp.asarray(_backend.compute_here(mask), dtype=bool)
        a, b = a[keep], b[keep]
    a, b = a - a.mean(), b - b.mean()
    denominator = float(xp.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 0 else 0.0
