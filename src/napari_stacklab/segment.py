"""Thresholding and labeling of images and stacks.

Global thresholds are computed **once** (from the whole stack or one chosen
plane) and then applied lazily, so scrolling a lazy result never rescans the
stack.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np

from . import _backend
from ._validation import check_choice, check_ndim, check_real
from .registry import Range, operation

__all__ = ["threshold", "threshold_value", "THRESHOLD_METHODS"]

#: Automatic threshold methods, by name -> ``skimage.filters`` function.
THRESHOLD_METHODS = {"otsu": "threshold_otsu"}
_NBINS = 256


def _plane(image: Any, plane: int | None) -> Any:
    """The frame ``plane`` of a stack, counting frames in C order over the batch axes."""
    if plane is None or image.ndim == 2:
        return image
    batch_shape = image.shape[:-2]
    n_frames = int(np.prod(batch_shape))
    if not -n_frames <= plane < n_frames:
        raise ValueError(f"plane must index one of the {n_frames} frames, got {plane}")
    return image[np.unravel_index(plane % n_frames, batch_shape)]


def threshold_value(image: Any, *, method: str = "otsu", plane: int | None = None) -> float:
    """Compute an automatic threshold once, over the whole stack or one plane.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        NumPy, CuPy or dask array of real values.
    method : str
        One of :data:`THRESHOLD_METHODS`.
    plane : int, optional
        Use only this frame (C-order index over the batch axes); ``None`` uses
        every pixel of the stack.

    Returns
    -------
    float
        The threshold, in the units of ``image``. In-memory input gives exactly
        scikit-image's value; dask input uses a 256-bin histogram of the whole
        stack (two passes, no more), so it agrees to within one bin width.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.r_[np.zeros(50), np.full(50, 10.0)].reshape(10, 10)
    >>> 0 <= threshold_value(img, method="otsu") < 10
    True
    """
    check_ndim(image, 2)
    check_real(image)
    check_choice("method", method, THRESHOLD_METHODS)
    sample = _plane(image, plane)
    func = getattr(_backend.skimage_module(sample, "filters"), THRESHOLD_METHODS[method])
    if not _backend.is_dask(sample):
        return float(_backend.materialize(func(sample)))
    da = _backend.dask_module()
    low, high = _backend.materialize(da.stack([sample.min(), sample.max()]).astype(np.float64))
    if low == high:
        return float(low)
    counts, edges = da.histogram(sample, bins=_NBINS, range=(low, high))
    counts = _backend.materialize(counts)
    centers = (edges[:-1] + edges[1:]) / 2
    return float(func(hist=(counts, centers)))


def _resolve_threshold(image: Any, *, method: str, value: float | None, plane: int | None) -> dict:
    if method == "manual":
        if value is None:
            raise ValueError("method='manual' needs a threshold value (value=...)")
    else:
        value = threshold_value(image, method=method, plane=plane)
    return {"method": method, "value": value, "plane": plane}


@operation(menu="segment", output="mask", dtype="bool", prepare=_resolve_threshold, vectorized=True)
def threshold(
    image,
    *,
    method: Literal["otsu", "manual"] = "otsu",
    value: float | None = None,
    plane: Annotated[int, Range(None, None)] | None = None,
):
    """Foreground mask: pixels brighter than a global threshold.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack of real values.
    method : {"otsu", "manual"}
        ``"manual"`` uses ``value``; the others compute it once with
        :func:`threshold_value` over the whole stack, or over frame ``plane``.
    value : float, optional
        The threshold for ``method="manual"`` (ignored otherwise).
    plane : int, optional
        Frame to compute the automatic threshold from (C-order index over the
        batch axes); ``None`` uses the whole stack.

    Returns
    -------
    array of bool, shape ``(..., M, N)``
        ``image > value``; no halo (pixel-wise).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[0, 1], [8, 9]], np.uint8)
    >>> threshold(img, method="manual", value=4).tolist()
    [[False, False], [True, True]]
    """
    return image > value
