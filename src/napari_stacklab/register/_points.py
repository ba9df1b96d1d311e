"""Transforms fitted to pairs of matching points (manual clicks or detected features)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validation import check_choice, check_number
from ._transform import MODELS, Transform, polynomial_terms

__all__ = ["from_points", "min_pairs"]


def min_pairs(model: str, ndim: int = 2, order: int = 2) -> int:
    """Fewest point pairs that determine ``model`` in ``ndim`` dimensions."""
    check_choice("model", model, MODELS)
    if model == "polynomial":
        return (order + 1) * (order + 2) // 2
    return {
        "translation": 1,
        "euclidean": 2 if ndim == 2 else 3,
        "similarity": 2 if ndim == 2 else 3,
        "affine": ndim + 1,
        "projective": ndim + 2,
    }[model]


def _fit_translation(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    matrix = np.eye(src.shape[1] + 1)
    matrix[:-1, -1] = (dst - src).mean(axis=0)
    return matrix


def _fit_umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool) -> np.ndarray:
    """Least-squares rotation (+ scale) + translation, without reflections (Umeyama 1991)."""
    d = src.shape[1]
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    sign = np.ones(d)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = 1.0
    if with_scale:
        variance = (src_c**2).sum() / len(src)
        scale = float((s * sign).sum() / variance) if variance > 0 else 1.0
    matrix = np.eye(d + 1)
    matrix[:d, :d] = scale * rotation
    matrix[:d, -1] = dst_mean - scale * rotation @ src_mean
    return matrix


def _fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    d = src.shape[1]
    solution, *_ = np.linalg.lstsq(np.c_[src, np.ones(len(src))], dst, rcond=None)
    matrix = np.eye(d + 1)
    matrix[:d] = solution.T
    return matrix


def _normalizer(points: np.ndarray) -> np.ndarray:
    """Hartley normalisation: centroid to 0, mean distance to sqrt(D)."""
    d = points.shape[1]
    centre = points.mean(axis=0)
    spread = np.sqrt(((points - centre) ** 2).sum(axis=1)).mean()
    factor = np.sqrt(d) / spread if spread > 0 else 1.0
    matrix = np.eye(d + 1)
    matrix[:d, :d] *= factor
    matrix[:d, -1] = -factor * centre
    return matrix


def _fit_projective(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Direct linear transform on normalised points (any dimension)."""
    d = src.shape[1]
    n_src, n_dst = _normalizer(src), _normalizer(dst)
    hs = np.c_[src, np.ones(len(src))] @ n_src.T
    hd = np.c_[dst, np.ones(len(dst))] @ n_dst.T
    rows = []
    for i in range(d):
        block = np.zeros((len(src), (d + 1) ** 2))
        block[:, i * (d + 1) : (i + 1) * (d + 1)] = hs
        block[:, d * (d + 1) :] = -hd[:, i : i + 1] * hs
        rows.append(block)
    system = np.concatenate(rows)
    # the null vector is the last right-singular vector; the full U of a tall system would be (2K)^2 numbers
    _, _, vt = np.linalg.svd(system, full_matrices=len(system) < system.shape[1])
    matrix = vt[-1].reshape(d + 1, d + 1)
    matrix = np.linalg.inv(n_dst) @ matrix @ n_src
    return matrix / matrix[-1, -1]


def _fit_matrix(model: str, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    if model == "translation":
        return _fit_translation(src, dst)
    if model in ("euclidean", "similarity"):
        return _fit_umeyama(src, dst, with_scale=model == "similarity")
    if model == "affine":
        return _fit_affine(src, dst)
    return _fit_projective(src, dst)


def _fit(model: str, src: np.ndarray, dst: np.ndarray, order: int) -> Transform:
    if model != "polynomial":
        return Transform(model=model, matrix=_fit_matrix(model, src, dst))
    forward, *_ = np.linalg.lstsq(polynomial_terms(src, order), dst, rcond=None)
    backward, *_ = np.linalg.lstsq(polynomial_terms(dst, order), src, rcond=None)
    return Transform(
        model="polynomial",
        matrix=_fit_affine(src, dst),
        coefficients=forward.T,
        inverse_coefficients=backward.T,
        order=order,
    )


def _residuals(transform: Transform, src: np.ndarray, dst: np.ndarray, units: np.ndarray | None = None) -> np.ndarray:
    """Distance of every pair after the fit, in moving-image pixels or, with ``units``, in its units."""
    error = transform.apply_points(src) - dst
    if units is not None:
        error = error * units
    return np.sqrt((error**2).sum(axis=1))


def _spacing(value: Any, name: str, ndim: int) -> np.ndarray | None:
    """A pixel size per spatial axis (the last ``ndim`` entries of a layer's scale), or None."""
    if value is None:
        return None
    scale = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if scale.ndim != 1 or len(scale) < ndim or not np.isfinite(scale).all() or (scale[-ndim:] <= 0).any():
        raise ValueError(f"{name} must give {ndim} positive pixel sizes (a layer's scale), got {value!r}")
    return scale[-ndim:]


def from_points(
    fixed_points: Any,
    moving_points: Any,
    *,
    model: str = "similarity",
    robust: bool = False,
    threshold: float = 2.0,
    max_trials: int = 2000,
    order: int = 2,
    seed: int | None = 0,
    scale_fixed: Any = None,
    scale_moving: Any = None,
) -> Transform:
    """Fit a transform to matching point pairs (least squares, optionally RANSAC).

    Parameters
    ----------
    fixed_points, moving_points : array, shape ``(K, D)``
        Matching points in ``(row, col)`` (``D = 2``) or ``(plane, row, col)``
        (``D = 3``) pixel coordinates of the fixed and the moving image; pair
        ``k`` is ``fixed_points[k] <-> moving_points[k]``.
    model : str
        ``"translation"``, ``"euclidean"`` (rigid), ``"similarity"``,
        ``"affine"``, ``"projective"`` or ``"polynomial"`` (2-D, ``order`` 2 or 3).
        Every model is fitted by least squares and is exact (to rounding) on
        exact pairs.
    robust : bool
        Use RANSAC: fit many minimal random samples, keep the one most pairs
        agree with (within ``threshold`` pixels), refit on those. Outliers
        are flagged in the result's ``inliers``.
    threshold : float
        RANSAC inlier distance in moving-image pixels.
    max_trials : int
        RANSAC samples to try at most; it stops earlier once it is 99.9 %
        sure to have drawn a sample of inliers only (a few dozen samples when
        most pairs are right).
    order : int
        Polynomial order (2 or 3) for ``model="polynomial"``.
    seed : int, optional
        Seed of the RANSAC sampler (deterministic by default).
    scale_fixed, scale_moving : sequence of float, optional
        Pixel size of each image per axis (a napari layer's ``scale``; only
        the last ``D`` entries are used), e.g. ``(2.0, 0.3, 0.3)`` µm for a
        z-stack with 2 µm steps. The model is then fitted in physical units,
        so ``"euclidean"`` is a true rotation of the specimen however
        anisotropic the voxels, and ``threshold`` and the residuals are in
        the moving layer's units. The returned transform still maps pixels to
        pixels.

    Returns
    -------
    Transform
        Maps fixed to moving pixel coordinates; ``residuals`` holds each
        pair's distance after the fit (pixels, or the units of
        ``scale_moving``), ``inliers`` the RANSAC flags (all True without
        ``robust``), ``score`` the inlier RMS residual, ``fixed_points`` and
        ``moving_points`` the pairs.

    Examples
    --------
    >>> import numpy as np
    >>> fixed = np.array([[10., 10], [10, 50], [60, 30], [40, 80]])
    >>> moving = fixed + [3.0, -2.0]
    >>> t = from_points(fixed, moving, model="translation")
    >>> t.shift.round(6).tolist(), float(t.residuals.max()) < 1e-9
    ([3.0, -2.0], True)
    """
    check_choice("model", model, MODELS)
    src = np.asarray(fixed_points, dtype=np.float64)
    dst = np.asarray(moving_points, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] not in (2, 3):
        raise ValueError(f"fixed_points must have shape (K, 2) or (K, 3), got {src.shape}")
    if dst.shape != src.shape:
        raise ValueError(f"moving_points must have the shape of fixed_points {src.shape}, got {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("fixed_points and moving_points must be finite")
    if model == "polynomial":
        check_choice("order", order, (2, 3))
        if src.shape[1] != 2:
            raise ValueError("model='polynomial' is 2-D only")
    check_number("threshold", threshold, low=0, low_inclusive=False)
    check_number("max_trials", max_trials, low=1, integer=True)
    needed = min_pairs(model, src.shape[1], order)
    if len(src) < needed:
        raise ValueError(f"model={model!r} needs at least {needed} point pairs, got {len(src)}")

    ndim = src.shape[1]
    sf, sm = _spacing(scale_fixed, "scale_fixed", ndim), _spacing(scale_moving, "scale_moving", ndim)
    physical = (sf is not None or sm is not None) and model != "polynomial"
    if physical:  # fit in physical units, then express the fit in pixels: S_m^-1 T S_f
        sf = np.ones(ndim) if sf is None else sf
        sm = np.ones(ndim) if sm is None else sm
        fit_src, fit_dst = src * sf, dst * sm
    else:  # a polynomial absorbs a change of units exactly: fit it in pixels
        fit_src, fit_dst = src, dst
    inliers = np.ones(len(src), dtype=bool)
    if robust and len(src) > needed:
        inliers = _ransac(model, fit_src, fit_dst, order, needed, threshold, max_trials, seed,
                          None if physical else sm)
    transform = _fit(model, fit_src[inliers], fit_dst[inliers], order)
    if physical:
        transform.matrix = np.diag(np.r_[1 / sm, 1.0]) @ transform.matrix @ np.diag(np.r_[sf, 1.0])
    transform.residuals = _residuals(transform, src, dst, sm)
    transform.inliers = inliers
    transform.score = float(np.sqrt(np.mean(transform.residuals[inliers] ** 2)))
    transform.fixed_points, transform.moving_points = src, dst
    if physical:
        transform.metadata["scale"] = {"fixed": sf.tolist(), "moving": sm.tolist()}
    return transform


def _trials_needed(inlier_fraction: float, sample_size: int, max_trials: int) -> int:
    """Samples after which an all-inlier sample has been drawn with probability :data:`_CONFIDENCE`."""
    clean = inlier_fraction**sample_size
    if clean >= 1:
        return 0
    if clean <= 0:
        return max_trials
    return min(max_trials, math.ceil(math.log(1 - _CONFIDENCE) / math.log(1 - clean)))


#: RANSAC stops once it is this sure to have drawn at least one sample of inliers only.
_CONFIDENCE = 0.999


def _ransac(model, src, dst, order, needed, threshold, max_trials, seed, units=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    best, best_count, best_error = None, -1, np.inf
    trials = max_trials
    for trial in range(max_trials):
        if trial >= trials:
            break
        sample = rng.choice(len(src), needed, replace=False)
        try:
            candidate = _fit(model, src[sample], dst[sample], order)
            with np.errstate(divide="ignore", invalid="ignore"):  # degenerate samples are skipped below
                residuals = _residuals(candidate, src, dst, units)
        except np.linalg.LinAlgError:
            continue
        if not np.isfinite(residuals).all():
            continue
        agree = residuals < threshold
        count, error = int(agree.sum()), float(residuals[agree].sum())
        if count > best_count or (count == best_count and error < best_error):
            best, best_count, best_error = agree, count, error
            trials = _trials_needed(best_count / len(src), needed, max_trials)
    if best is None or best_count < needed:
        raise ValueError("RANSAC found no consistent set of point pairs; raise threshold or check the pairs")
    # One refinement pass: refit on the consensus set and re-select (removes sample noise).
    refit = _fit(model, src[best], dst[best], order)
    refined = _residuals(refit, src, dst, units) < threshold
    return refined if refined.sum() >= best_count else best
