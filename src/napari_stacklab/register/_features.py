"""Automatic alignment from image features: keypoints, descriptors, ratio-test matching and RANSAC.

Keypoints and descriptors come from scikit-image (ORB: FAST corners with
binary BRIEF descriptors, fast; SIFT: difference-of-Gaussian blobs with
gradient-histogram descriptors, slower and more distinctive, sub-pixel
keypoints), or from OpenCV's implementations of the same detectors when
OpenCV is installed (10 to 50 times faster). Matches must be mutual nearest neighbours and pass Lowe's ratio
test; RANSAC (:func:`from_points` with ``robust=True``) then keeps the pairs
that agree with one transform. The inlier pairs travel with the result, so a
user can review them as numbered point pairs and refine with ECC.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np

from .. import _backend
from .._validation import check_choice, check_ndim, check_number, check_real
from ._points import from_points, min_pairs
from ._transform import MATRIX_MODELS, Transform

__all__ = ["from_features", "match", "DETECTORS"]

#: Matches beyond a model's minimal sample that must agree before a fit is believed (a minimal sample
#: of random matches fits itself exactly, and a few more fall within the threshold by chance).
_MARGIN = 4

Detector = Literal["orb", "sift"]
#: Keypoint detectors and descriptors (scikit-image).
DETECTORS: tuple[str, ...] = get_args(Detector)


def _detector_image(image: Any) -> np.ndarray:
    """A host float64 copy scaled to [0, 1] between its 0.5 and 99.5 percentiles (the detectors' thresholds
    assume that range; brightness and contrast then no longer matter)."""
    image = np.asarray(_backend.materialize(image), dtype=np.float64)
    low, high = np.percentile(image, [0.5, 99.5])
    if high <= low:
        raise ValueError("from_features: an image is constant; there are no features to match")
    return np.clip((image - low) / (high - low), 0, 1)


def _keypoints(image: np.ndarray, detector: str, n_keypoints: int) -> tuple[np.ndarray, np.ndarray]:
    """``(keypoints (K, 2) in (row, col) pixels, descriptors (K, ...))``; boolean descriptors for ORB."""
    cv2 = _backend.opencv_module(image)
    if cv2 is not None:  # the same detectors, 10-50 times faster (8-bit input)
        create = cv2.ORB_create if detector == "orb" else cv2.SIFT_create
        found, descriptors = create(n_keypoints).detectAndCompute(np.round(image * 255).astype(np.uint8), None)
        if descriptors is None:
            return np.empty((0, 2)), np.empty((0, 1))
        keypoints = np.array([point.pt[::-1] for point in found], dtype=np.float64)  # (x, y) -> (row, col)
        return keypoints, np.unpackbits(descriptors, axis=1).astype(bool) if detector == "orb" else descriptors
    from skimage import feature

    extractor = feature.ORB(n_keypoints=n_keypoints) if detector == "orb" else feature.SIFT()
    try:
        extractor.detect_and_extract(image)
    except RuntimeError:  # scikit-image's ORB raises when it finds no keypoint at all
        return np.empty((0, 2)), np.empty((0, 1))
    keypoints, descriptors = np.asarray(extractor.keypoints, dtype=np.float64), extractor.descriptors
    if len(keypoints) > n_keypoints:  # SIFT has no budget of its own: an even pick over positions and scales
        keep = np.unique(np.linspace(0, len(keypoints) - 1, n_keypoints).round().astype(int))
        keypoints, descriptors = keypoints[keep], descriptors[keep]
    return keypoints, descriptors


def _distances(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Descriptor distances ``(K1, K2)``: Hamming for binary descriptors, Euclidean otherwise (one BLAS product)."""
    if fixed.dtype == bool:  # with -1/+1 codes, a . b = bits - 2 * hamming
        a, b = (np.where(d, 1, -1).astype(np.float32) for d in (fixed, moving))
        return (fixed.shape[1] - a @ b.T) / 2
    a, b = fixed.astype(np.float32), moving.astype(np.float32)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * (a @ b.T)
    return np.sqrt(np.maximum(squared, 0))


def match(fixed_descriptors: np.ndarray, moving_descriptors: np.ndarray, *, ratio: float) -> np.ndarray:
    """Index pairs ``(K, 2)`` of mutual nearest neighbours that pass Lowe's ratio test (none for ``ratio=1``).

    The same pairs as ``skimage.feature.match_descriptors(..., cross_check=True, max_ratio=ratio)``, from one
    BLAS product instead of ``scipy.spatial.distance.cdist``.
    """
    if len(fixed_descriptors) < 2 or len(moving_descriptors) < 2:
        return np.empty((0, 2), dtype=int)
    distances = _distances(fixed_descriptors, moving_descriptors)
    best = distances.argmin(axis=1)
    rows = np.arange(len(best))
    keep = distances.argmin(axis=0)[best] == rows
    if ratio < 1:
        nearest, second = np.partition(distances, 1, axis=1)[:, :2].T
        keep &= nearest < ratio * np.maximum(second, np.finfo(np.float64).eps)
    return np.stack([rows[keep], best[keep]], axis=1)


def from_features(
    fixed: Any,
    moving: Any,
    *,
    model: str = "affine",
    detector: Detector = "orb",
    n_keypoints: int = 2000,
    ratio: float = 0.8,
    threshold: float = 2.0,
    max_trials: int = 2000,
    seed: int | None = 0,
) -> Transform:
    """Align ``moving`` to ``fixed`` from matched keypoints, with RANSAC.

    Parameters
    ----------
    fixed, moving : array, shape ``(M, N)`` and ``(M', N')``
        The reference image and the image to align (any real dtype; NumPy,
        dask or CuPy -- the detectors run on the host, so the images are
        brought there once). Brightness and contrast may differ.
    model : str
        ``"translation"``, ``"euclidean"``, ``"similarity"``, ``"affine"`` or
        ``"projective"`` (homography), fitted to the inlier pairs by least
        squares.
    detector : {"orb", "sift"}
        ORB (fast, binary descriptors) or SIFT (slower, more distinctive,
        sub-pixel keypoints: the more accurate of the two). OpenCV's
        implementation runs when OpenCV is installed, scikit-image's
        otherwise.
    n_keypoints : int
        Keypoints kept per image at most.
    ratio : float
        Lowe's ratio test: a match is kept when its descriptor distance is
        below ``ratio`` times that of the second-best candidate (lower is
        stricter; 1 turns the test off). Matches must also be mutual nearest
        neighbours.
    threshold : float
        RANSAC inlier distance, in moving-image pixels.
    max_trials : int
        RANSAC samples to try at most (it stops once it is 99.9 % sure to
        have drawn a sample of inliers only).
    seed : int, optional
        Seed of the RANSAC sampler (deterministic by default).

    Returns
    -------
    Transform
        Fixed -> moving transform. ``fixed_points`` and ``moving_points``
        hold the matched keypoints ``(K, 2)`` in ``(row, col)`` pixels,
        ``inliers`` which of them RANSAC kept and ``residuals`` each pair's
        distance after the fit; ``metadata`` records the detector and the
        numbers of keypoints and matches. Refine it with
        ``ecc(fixed, moving, initial=t)``.

    Raises
    ------
    ValueError
        When there are too few matches, or fewer than the model's minimal
        sample plus 4 agree on one transform (unrelated images give a few
        chance "inliers"); the message says how many were found and what
        to try.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> from napari_stacklab.register import Transform, warp
    >>> fixed = data.camera().astype(np.float32)
    >>> truth = Transform("similarity", [[0.98, -0.1, 20.0], [0.1, 0.98, -12.0], [0, 0, 1]])
    >>> moving = warp(fixed, truth.inverse())
    >>> t = from_features(fixed, moving, model="similarity")
    >>> bool(np.abs(t.matrix - truth.matrix).max() < 0.5), int(t.inliers.sum()) > 50
    (True, True)
    """
    if model == "homography":
        model = "projective"
    check_choice("model", model, MATRIX_MODELS)
    check_choice("detector", detector, DETECTORS)
    for name, image in (("fixed", fixed), ("moving", moving)):
        check_ndim(image, 2, name, max_ndim=2)
        check_real(image, name)
    check_number("n_keypoints", n_keypoints, low=min_pairs(model), integer=True)
    check_number("ratio", ratio, low=0, high=1, low_inclusive=False)
    check_number("threshold", threshold, low=0, low_inclusive=False)
    check_number("max_trials", max_trials, low=1, integer=True)
    found = [_keypoints(_detector_image(image), detector, n_keypoints) for image in (fixed, moving)]
    (fixed_keys, fixed_desc), (moving_keys, moving_desc) = found
    matches = np.empty((0, 2), dtype=int)
    if len(fixed_keys) and len(moving_keys):
        matches = match(fixed_desc, moving_desc, ratio=ratio)
    other = next(name for name in DETECTORS if name != detector)
    hint = f"try detector={other!r}, more n_keypoints, a larger ratio, or point pairs"
    needed = min_pairs(model) + _MARGIN
    if len(matches) < needed:
        raise ValueError(
            f"from_features: {len(matches)} matches between {len(fixed_keys)} and {len(moving_keys)} "
            f"{detector.upper()} keypoints, {model!r} needs at least {needed}; {hint}"
        )
    transform = from_points(
        fixed_keys[matches[:, 0]], moving_keys[matches[:, 1]], model=model, robust=True, threshold=threshold,
        max_trials=max_trials, seed=seed,
    )
    agreeing = int(transform.inliers.sum())
    if agreeing < needed:  # a minimal sample always fits itself: unrelated images give that many "inliers"
        raise ValueError(
            f"from_features: only {agreeing} of {len(matches)} matches agree on one {model!r} transform, fewer "
            f"than {needed}: the images may not show the same scene; {hint}"
        )
    transform.metadata.update({
        "method": "features", "detector": detector, "keypoints": [len(fixed_keys), len(moving_keys)],
        "matches": len(matches), "inliers": int(transform.inliers.sum()),
    })
    return transform
