"""Enhanced correlation coefficient (ECC) image alignment.

Evangelidis & Psarakis, "Parametric image alignment using enhanced correlation
coefficient maximization", IEEE TPAMI 30(10), 2008 -- the forward-additive
algorithm of OpenCV's ``findTransformECC``, run coarse to fine over a Gaussian
pyramid and written with the array namespace (``xp``, ``ndi.map_coordinates``)
so the same code runs on CuPy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _backend
from .._validation import check_choice, check_ndim, check_number, check_real
from ._transform import Transform

__all__ = ["ecc", "ECC_MODELS", "ECCError"]

#: Motion models ECC estimates ("homography" is accepted as an alias of "projective").
ECC_MODELS = ("translation", "euclidean", "similarity", "affine", "projective")


class ECCError(RuntimeError):
    """ECC diverged (the images do not overlap enough or the start is too far off)."""


def _params_from_matrix(model: str, matrix: np.ndarray) -> np.ndarray:
    """Parameter vector of ``model`` closest to ``matrix`` (a 3x3 fixed -> moving matrix)."""
    m = matrix / matrix[2, 2]
    if model == "translation":
        return m[:2, 2].copy()
    if model == "euclidean":
        return np.array([math.atan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1]), m[0, 2], m[1, 2]])
    if model == "similarity":
        return np.array([(m[0, 0] + m[1, 1]) / 2, (m[1, 0] - m[0, 1]) / 2, m[0, 2], m[1, 2]])
    if model == "affine":
        return m[:2].ravel().copy()
    return np.r_[m[:2].ravel(), m[2, :2]]


def _matrix_from_params(model: str, p: np.ndarray) -> np.ndarray:
    m = np.eye(3)
    if model == "translation":
        m[:2, 2] = p
    elif model == "euclidean":
        cos, sin = math.cos(p[0]), math.sin(p[0])
        m[:2] = [[cos, -sin, p[1]], [sin, cos, p[2]]]
    elif model == "similarity":
        m[:2] = [[p[0], -p[1], p[2]], [p[1], p[0], p[3]]]
    elif model == "affine":
        m[:2] = p.reshape(2, 3)
    else:
        m[:2] = p[:6].reshape(2, 3)
        m[2, :2] = p[6:]
    return m


def _warped_coords(matrix: np.ndarray, rows: Any, cols: Any) -> tuple:
    r = matrix[0, 0] * rows + matrix[0, 1] * cols + matrix[0, 2]
    c = matrix[1, 0] * rows + matrix[1, 1] * cols + matrix[1, 2]
    if matrix[2, 0] == 0 and matrix[2, 1] == 0:
        return r, c, None
    den = matrix[2, 0] * rows + matrix[2, 1] * cols + matrix[2, 2]
    return r / den, c / den, den


def _jacobian(model: str, p: np.ndarray, xp: Any, gr: Any, gc: Any, rows: Any, cols: Any, wr: Any, wc: Any, den: Any):
    """Steepest-descent images ``dI(W(x; p)) / dp``, shape ``(K, n_params)``."""
    if model == "translation":
        columns = [gr, gc]
    elif model == "euclidean":
        cos, sin = math.cos(p[0]), math.sin(p[0])
        d_theta = gr * (-sin * rows - cos * cols) + gc * (cos * rows - sin * cols)
        columns = [d_theta, gr, gc]
    elif model == "similarity":
        columns = [gr * rows + gc * cols, gc * rows - gr * cols, gr, gc]
    elif model == "affine":
        columns = [gr * rows, gr * cols, gr, gc * rows, gc * cols, gc]
    else:
        if den is not None:  # den is None while the perspective row is still (0, 0, 1)
            gr, gc = gr / den, gc / den
        both = gr * wr + gc * wc
        columns = [gr * rows, gr * cols, gr, gc * rows, gc * cols, gc, -both * rows, -both * cols]
    return xp.stack(columns, axis=1)


def _default_levels(shape: tuple) -> int:
    return int(min(5, max(1, math.floor(math.log2(min(shape) / 48)) + 1)))


def _pyramid(image: Any, levels: int, ndi: Any) -> list:
    out = [image]
    for _ in range(levels - 1):
        out.append(ndi.gaussian_filter(out[-1], 1.0)[::2, ::2])
    return out


def _ecc_level(model, fixed, moving, mask, matrix, max_iter, eps, xp, ndi):
    """ECC iterations at one pyramid level; returns ``(matrix, rho, iterations)``."""
    rows, cols = (a.ravel() for a in xp.meshgrid(
        xp.arange(fixed.shape[0], dtype=fixed.dtype), xp.arange(fixed.shape[1], dtype=fixed.dtype), indexing="ij"
    ))
    template = fixed.ravel()
    grad_r, grad_c = xp.gradient(moving)
    p = _params_from_matrix(model, matrix)
    rho, last_rho = -1.0, -2.0
    iterations = 0
    for iterations in range(1, max_iter + 1):
        matrix = _matrix_from_params(model, p)
        wr, wc, den = _warped_coords(matrix, rows, cols)
        inside = (wr >= 0) & (wr <= moving.shape[0] - 1) & (wc >= 0) & (wc <= moving.shape[1] - 1)
        if mask is not None:
            inside &= mask
        weight = inside.astype(fixed.dtype)
        count = float(weight.sum())
        if count < 16:
            raise ECCError("ECC: the warped moving image no longer overlaps the fixed image")
        coords = xp.stack([wr, wc])
        warped = ndi.map_coordinates(moving, coords, order=1, mode="nearest")
        gr = ndi.map_coordinates(grad_r, coords, order=1, mode="nearest") * weight
        gc = ndi.map_coordinates(grad_c, coords, order=1, mode="nearest") * weight
        template_zm = (template - (template * weight).sum() / count) * weight
        warped_zm = (warped - (warped * weight).sum() / count) * weight
        template_norm = float(xp.sqrt((template_zm**2).sum()))
        warped_norm = float(xp.sqrt((warped_zm**2).sum()))
        jac = _jacobian(model, p, xp, gr, gc, rows, cols, wr, wc, den)
        hessian = _backend.to_numpy(jac.T @ jac)
        correlation = float((template_zm * warped_zm).sum())
        if template_norm == 0 or warped_norm == 0:
            raise ECCError("ECC: an image is constant over the overlap")
        rho = correlation / (template_norm * warped_norm)
        image_projection = _backend.to_numpy(jac.T @ warped_zm)
        template_projection = _backend.to_numpy(jac.T @ template_zm)
        try:
            solved = np.linalg.solve(hessian, image_projection)
        except np.linalg.LinAlgError as exc:
            raise ECCError("ECC: singular Hessian (no texture to align on?)") from exc
        lambda_n = warped_norm**2 - image_projection @ solved
        lambda_d = correlation - template_projection @ solved
        if lambda_d <= 0:
            raise ECCError(
                "ECC diverged: the images are too different or the start is too far off; "
                "give an initial transform (e.g. from points) or more pyramid levels"
            )
        error = (lambda_n / lambda_d) * template_zm - warped_zm
        delta = np.linalg.solve(hessian, _backend.to_numpy(jac.T @ error))
        p = p + delta
        if abs(rho - last_rho) < eps:
            break
        last_rho = rho
    return _matrix_from_params(model, p), rho, iterations


def ecc(
    fixed: Any,
    moving: Any,
    *,
    model: str = "affine",
    initial: Transform | None = None,
    mask: Any = None,
    levels: int | None = None,
    max_iter: int = 100,
    eps: float = 1e-6,
    sigma: float = 1.0,
    device: str | None = None,
) -> Transform:
    """Align ``moving`` to ``fixed`` by maximising the enhanced correlation coefficient.

    ECC is invariant to brightness and contrast differences between the two
    images (it correlates zero-mean, normalised intensities), so it aligns
    different exposures, stains or detectors of the same field.

    Parameters
    ----------
    fixed, moving : array, shape ``(M, N)`` and ``(M', N')``
        The reference image and the image to align (NumPy or CuPy; dask is
        computed once, explicitly).
    model : str
        ``"translation"``, ``"euclidean"`` (rigid), ``"similarity"``,
        ``"affine"`` or ``"projective"`` (alias ``"homography"``).
    initial : Transform, optional
        Starting fixed -> moving transform, e.g. from :func:`from_points`
        ("refine" a manual alignment). Default: identity.
    mask : array of bool, shape ``(M, N)``, optional
        Fixed-image pixels to use (False pixels are ignored).
    levels : int, optional
        Gaussian pyramid levels, coarse to fine (default: enough to bring the
        smallest side down to about 48-96 pixels, at most 5).
    max_iter : int
        Iterations per level at most.
    eps : float
        Stop a level when the correlation changes by less than ``eps``.
    sigma : float
        Gaussian smoothing (pixels) of both images at every level before the
        gradients are taken; 0 disables it.
    device : {"cpu", "gpu", "auto"}, optional
        Where to compute (default: where the data is).

    Returns
    -------
    Transform
        Fixed -> moving transform of the chosen model; ``score`` is the final
        correlation coefficient (1 = identical up to brightness/contrast).

    Raises
    ------
    ECCError
        When the iteration diverges.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> from napari_stacklab.register import Transform, warp
    >>> fixed = data.camera()[::2, ::2].astype(np.float32)
    >>> truth = Transform.from_shift([3.3, -2.6])          # fixed (r, c) -> moving (r + 3.3, c - 2.6)
    >>> moving = warp(fixed, truth.inverse(), mode="nearest")
    >>> t = ecc(fixed, moving, model="translation")
    >>> np.round(t.shift, 1).tolist()
    [3.3, -2.6]
    """
    if model == "homography":
        model = "projective"
    check_choice("model", model, ECC_MODELS)
    for name, image in (("fixed", fixed), ("moving", moving)):
        check_ndim(image, 2, name, max_ndim=2)
        check_real(image, name)
    check_number("max_iter", max_iter, low=1, integer=True)
    check_number("eps", eps, low=0)
    check_number("sigma", sigma, low=0)
    if levels is not None:
        check_number("levels", levels, low=1, high=8, integer=True)
    if initial is not None:
        if not isinstance(initial, Transform) or initial.ndim != 2:
            raise TypeError(f"initial must be a 2-D Transform, got {initial!r}")
        if not initial.is_affine and initial.model != "projective":
            initial = initial.affine_approximation(fixed.shape)
    if mask is not None:
        check_ndim(mask, 2, "mask", max_ndim=2)
        if tuple(mask.shape) != tuple(fixed.shape):
            raise ValueError(f"mask must have the fixed image's shape {tuple(fixed.shape)}, got {tuple(mask.shape)}")

    fixed, moving = (
        _backend.to_device(_backend.materialize(a) if _backend.is_dask(a) else a, device) for a in (fixed, moving)
    )
    moving = _backend.to_device(moving, "gpu") if _backend.is_cupy(fixed) else moving
    xp, ndi = _backend.get_namespace(fixed)
    fixed = xp.asarray(fixed, dtype=xp.float64)
    moving = xp.asarray(moving, dtype=xp.float64)
    if mask is not None:
        mask = xp.asarray(_backend.materialize(mask) if _backend.is_dask(mask) else mask, dtype=bool)

    n_levels = levels or _default_levels(tuple(fixed.shape) + tuple(moving.shape))
    fixed_pyramid = _pyramid(fixed, n_levels, ndi)
    moving_pyramid = _pyramid(moving, n_levels, ndi)
    mask_pyramid = [mask[:: 2**k, :: 2**k] if mask is not None else None for k in range(n_levels)]

    matrix = np.eye(3) if initial is None else initial.matrix
    current = Transform(model="projective" if model == "projective" else "affine", matrix=matrix).scaled(
        0.5 ** (n_levels - 1)
    )
    rho, total = -1.0, 0
    for level in reversed(range(n_levels)):
        f, m = fixed_pyramid[level], moving_pyramid[level]
        if sigma:
            f, m = ndi.gaussian_filter(f, sigma), ndi.gaussian_filter(m, sigma)
        level_mask = mask_pyramid[level].ravel() if mask is not None else None
        matrix, rho, iterations = _ecc_level(model, f, m, level_mask, current.matrix, max_iter, eps, xp, ndi)
        total += iterations
        current = Transform(model=current.model, matrix=matrix)
        if level:
            current = current.scaled(2.0)
    return Transform(model=model, matrix=current.matrix, score=float(rho), metadata={"iterations": total, "levels": n_levels})
