"""Enhanced correlation coefficient (ECC) image alignment, inverse compositional.

Evangelidis & Psarakis, "Parametric image alignment using enhanced correlation
coefficient maximization", IEEE TPAMI 30(10), 2008, in the inverse
compositional form of Baker & Matthews ("Lucas-Kanade 20 years on", IJCV 56,
2004): the Jacobian is that of the *fixed* image, so the steepest-descent
images and the Hessian are computed once per pyramid level, and every
iteration costs one warp of the moving image and a few dot products. Pixels
that the current warp maps outside the moving image (or outside ``mask``) are
left out by subtracting their share from the precomputed sums.

Everything runs through the array namespace of the data (``xp``), so the same
code runs on CuPy; only the small ``K x K`` systems are solved on the host.
OpenCV, when installed, resamples and smooths host images (``blur``,
``_resample``).
"""

from __future__ import annotations

import math
import warnings
from typing import Annotated, Any, Literal, get_args

import numpy as np

from .. import _backend
from .._validation import check_choice, check_ndim, check_real, float_dtype
from ..registry import ImageRef, Range, validated
from ._phasecorr import phase_shift, rotation_scale
from ._transform import Transform

__all__ = ["ecc", "ECC_MODELS", "STARTS", "ECCError"]

EccModel = Literal["translation", "euclidean", "similarity", "affine", "projective"]
#: Motion models ECC estimates ("homography" is accepted as an alias of "projective").
ECC_MODELS: tuple[str, ...] = get_args(EccModel)

Start = Literal["phase", "identity", "log-polar"]
#: Automatic starting points, in the order ECC tries them by default: a translation from phase
#: correlation at the coarsest pyramid level, the identity, and rotation + scale + translation
#: from log-polar (Fourier-Mellin) phase correlation.
STARTS: tuple[str, ...] = get_args(Start)

_N_PARAMS = {"translation": 2, "euclidean": 3, "similarity": 4, "affine": 6, "projective": 8}
_SWAP = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])  # (row, col) <-> scikit-image's (x, y)


class ECCError(ValueError):
    """ECC could not align the images (no overlap, no texture, or every start diverged)."""


# -- parameters ---------------------------------------------------------------
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


def _project(model: str, matrix: np.ndarray) -> np.ndarray:
    """``matrix`` made an exact member of ``model`` (composition rounding can leave a rigid matrix not quite rigid)."""
    return _matrix_from_params(model, _params_from_matrix(model, matrix))


def _update(model: str, delta: np.ndarray) -> np.ndarray:
    """The incremental warp ``W(x; delta)`` (normalised coordinates), the identity at ``delta = 0``."""
    m = np.eye(3)
    if model == "translation":
        m[:2, 2] = delta
    elif model == "euclidean":
        cos, sin = math.cos(delta[0]), math.sin(delta[0])
        m[:2] = [[cos, -sin, delta[1]], [sin, cos, delta[2]]]
    elif model == "similarity":
        m[:2] = [[1 + delta[0], -delta[1], delta[2]], [delta[1], 1 + delta[0], delta[3]]]
    else:
        m[:2] += delta[:6].reshape(2, 3)
        if model == "projective":
            m[2, :2] = delta[6:]
    return m


def _steepest_descent(model: str, gr: Any, gc: Any, r: Any, c: Any) -> list:
    """``grad(fixed) . dW/dp`` at ``p = 0``: one image per parameter (``r``, ``c`` broadcast as column / row)."""
    if model == "translation":
        return [gr, gc]
    if model == "euclidean":
        return [gc * r - gr * c, gr, gc]
    if model == "similarity":
        return [gr * r + gc * c, gc * r - gr * c, gr, gc]
    affine = [gr * r, gr * c, gr, gc * r, gc * c, gc]
    if model == "affine":
        return affine
    radial = gr * r + gc * c
    return affine + [-radial * r, -radial * c]


# -- pyramid ------------------------------------------------------------------
def _default_levels(shape: tuple) -> int:
    return int(min(5, max(1, math.floor(math.log2(min(shape) / 48)) + 1)))


def blur(image: Any, sigma: float) -> Any:
    """Gaussian smoothing (``sigma`` pixels, truncated at 3 sigma, mirrored edges), same dtype.

    OpenCV's separable filter when it is installed (about ten times faster on
    the host), else ``scipy.ndimage`` / ``cupyx.scipy.ndimage``.
    """
    cv2 = _backend.opencv_module(image)
    if cv2 is not None and image.dtype in (np.float32, np.float64):
        size = 2 * math.ceil(3 * sigma) + 1
        return cv2.GaussianBlur(image, (size, size), sigma, borderType=cv2.BORDER_REFLECT)
    _, ndi = _backend.get_namespace(image)
    return ndi.gaussian_filter(image, sigma, truncate=3.0, mode="reflect")


def _pyramid(image: Any, levels: int, sigma: float, xp: Any) -> list:
    """The smoothed image at every level (finest first); level ``k + 1`` is level ``k`` blurred and decimated."""
    out = []
    current = image
    for level in range(levels):
        smoothed = blur(current, sigma) if sigma else current
        out.append(smoothed)
        if level < levels - 1:
            blurred = smoothed if sigma == 1.0 else blur(current, 1.0)
            current = xp.ascontiguousarray(blurred[::2, ::2])
    return out


def _normaliser(shape: tuple) -> np.ndarray:
    """Pixel -> normalised coordinates: centred, the half-diagonal scaled to about 1 (a well-conditioned Hessian)."""
    scale = 2.0 / max(1.0, math.hypot(shape[0] - 1, shape[1] - 1))
    centre = (np.asarray(shape, dtype=np.float64) - 1) / 2
    n = np.eye(3)
    n[:2, :2] *= scale
    n[:2, 2] = -scale * centre
    return n


class _Template:
    """What the inverse compositional ECC precomputes from the fixed image at one pyramid level."""

    def __init__(self, fixed: Any, mask: Any, model: str, xp: Any) -> None:
        self.shape = tuple(int(s) for s in fixed.shape)
        self.size = int(fixed.size)
        self.model = model
        self.xp = xp
        self.normaliser = _normaliser(self.shape)
        scale, offset = self.normaliser[0, 0], self.normaliser[:2, 2]
        dtype = fixed.dtype
        r = (xp.arange(self.shape[0], dtype=dtype) * dtype.type(scale) + dtype.type(offset[0]))[:, None]
        c = (xp.arange(self.shape[1], dtype=dtype) * dtype.type(scale) + dtype.type(offset[1]))[None, :]
        gr, gc = xp.gradient(fixed)
        # the gradients are per pixel; per normalised unit they are 1 / scale larger
        gr *= dtype.type(1 / scale)
        gc *= dtype.type(1 / scale)
        columns = _steepest_descent(model, gr, gc, r, c)
        self.jacobian = xp.empty((len(columns), self.size), dtype=dtype)  # (K, n)
        for row, column in zip(self.jacobian, columns):
            row.reshape(self.shape)[...] = column
        self.template = xp.ascontiguousarray(fixed.ravel())
        self.mask = None if mask is None else ~xp.asarray(mask, dtype=bool).ravel()  # True = left out
        if self.mask is not None:
            self.jacobian[:, self.mask] = 0
            self.template = xp.where(self.mask, 0, self.template).astype(dtype)
        self.sums = _sums(self.jacobian, self.template, xp)  # (hessian, J^T 1, J^T t, sum t, t . t) over all
        self.corners = np.array([[0, 0], [0, self.shape[1] - 1], [self.shape[0] - 1, 0],
                                 [self.shape[0] - 1, self.shape[1] - 1]], dtype=np.float64)

    def statistics(self, warped: Any) -> dict:
        """Sums over the pixels both images share, for a warped moving image with NaN outside."""
        xp = self.xp
        flat = warped.ravel()
        left_out = xp.isnan(flat)
        if self.mask is not None:
            left_out |= self.mask
        out = xp.flatnonzero(left_out)
        flat[out] = 0
        j, t = self.jacobian, self.template
        n_out = int(out.size)
        if n_out * 2 < self.size:  # subtract the few pixels left out from the precomputed sums
            hessian, j_sum, j_t, t_sum, t_t = (
                total - part for total, part in zip(self.sums, _sums(j[:, out], t[out], xp))
            )
        else:  # most pixels left out: sum over the rest directly
            keep = xp.flatnonzero(~left_out)
            hessian, j_sum, j_t, t_sum, t_t = _sums(j[:, keep], t[keep], xp)
        k = len(j)
        image = _backend.to_numpy(xp.stack(_dots(j, flat) + [flat.sum(), flat @ flat, flat @ t])).astype(np.float64)
        return {"n": self.size - n_out, "hessian": hessian, "j_sum": j_sum, "j_t": j_t, "t_sum": t_sum,
                "t_t": t_t, "j_w": image[:k], "w_sum": image[k], "w_w": image[k + 1], "w_t": image[k + 2]}


def _dots(rows: Any, vector: Any) -> list:
    """``rows @ vector`` as one dot product per row: OpenBLAS's threaded matrix-vector product can spend
    milliseconds waking threads on a busy machine, where single dot products take microseconds."""
    return [row @ vector for row in rows]


def _sums(jacobian: Any, template: Any, xp: Any) -> tuple:
    """``(J J^T, J 1, J t, sum t, t . t)`` in float64 on the host, from one transfer."""
    k = len(jacobian)
    gram = jacobian @ jacobian.T
    vector = xp.stack([*_dots(jacobian, template), *jacobian.sum(axis=1), template.sum(), template @ template])
    gram, vector = (_backend.to_numpy(a).astype(np.float64) for a in (gram, vector))
    return gram, vector[k : 2 * k], vector[:k], vector[2 * k], vector[2 * k + 1]


def _resample(image: Any, matrix: np.ndarray, shape: tuple) -> Any:
    """Bilinear samples of ``image`` at ``matrix @ (row, col, 1)`` for every pixel of ``shape``; NaN outside.

    OpenCV's warp when it is installed (about eight times faster; its 1/32
    pixel interpolation grid averages out over an image: the alignments agree
    to a ten-thousandth of a pixel), else scikit-image's (cuCIM's on the GPU),
    itself about twice as fast as ``scipy.ndimage.affine_transform``.
    """
    cv2 = _backend.opencv_module(image)
    if cv2 is not None:
        xy = _SWAP @ matrix @ _SWAP
        size, flags = (int(shape[1]), int(shape[0])), cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        if matrix[2, 0] == 0 and matrix[2, 1] == 0:
            return cv2.warpAffine(image, xy[:2], size, flags=flags, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=np.nan)
        return cv2.warpPerspective(image, xy, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    warp = _backend.skimage_function(image, "transform", "warp")
    same = tuple(image.shape) == tuple(shape)  # (no output shape to check: a measurable saving on small levels)
    return warp(image, _SWAP @ matrix @ _SWAP, output_shape=None if same else shape, order=1, mode="constant",
                cval=np.nan, clip=False, preserve_range=True)


def host_fallback(name: str, func: Any, *arrays: Any, **params: Any) -> Any:
    """``func(*arrays, **params)``; if the GPU cannot run it (no cuCIM, out of memory), again on the CPU.

    For public functions outside the registry (which has its own fallback);
    the warning is the same :class:`GPUFallbackWarning`.
    """
    try:
        return func(*arrays, **params)
    except _backend.gpu_failure_types() as exc:
        _backend.free_gpu_memory()
        warnings.warn(f"{name}: the GPU could not run it ({exc}); running on the CPU instead.",
                      _backend.GPUFallbackWarning, stacklevel=3)
        return func(*(None if a is None else _backend.to_numpy(a) for a in arrays), **params)


def _correlation(s: dict, n_params: int) -> tuple[float, float, float, float, float]:
    """``(rho, t_mean, w_mean, |t|^2, t . w)`` of the zero-mean images over the overlap, from its sums."""
    n = s["n"]
    if n < max(16, 2 * n_params):
        raise ECCError("the warped moving image no longer overlaps the fixed image")
    t_mean, w_mean = s["t_sum"] / n, s["w_sum"] / n
    t_norm2 = s["t_t"] - n * t_mean**2
    w_norm2 = s["w_w"] - n * w_mean**2
    correlation = s["w_t"] - n * w_mean * t_mean
    if t_norm2 <= 0 or w_norm2 <= 0:
        raise ECCError("an image is constant over the overlap")
    return correlation / math.sqrt(t_norm2 * w_norm2), t_mean, w_mean, t_norm2, correlation


def _ecc_step(s: dict, n_params: int) -> tuple[np.ndarray, float]:
    """One ECC update ``delta`` of the inverse compositional warp, and the correlation, from the overlap's sums.

    ``s`` holds, over the ``n`` pixels both images share, the sums of the
    template ``t``, the warped image ``w``, the steepest-descent images ``J``
    and their products. Evangelidis & Psarakis' closed form, with the roles
    of the images swapped (the template is the one linearised):
    ``delta = H^-1 (lambda J^T w - J^T t)``, all images zero-mean.
    """
    n = s["n"]
    rho, t_mean, w_mean, t_norm2, correlation = _correlation(s, n_params)
    j_sum = s["j_sum"]
    hessian = s["hessian"] - j_sum[:, None] * j_sum[None, :] / n  # of the zero-mean Jacobian
    a = s["j_t"] - j_sum * t_mean  # J^T t (zero-mean)
    b = s["j_w"] - j_sum * w_mean  # J^T w (zero-mean)
    try:
        h_inv_a, h_inv_b = np.linalg.solve(hessian, np.stack([a, b], axis=1)).T
    except np.linalg.LinAlgError as exc:
        raise ECCError("singular Hessian (no texture to align on?)") from exc
    lambda_n = t_norm2 - a @ h_inv_a
    lambda_d = correlation - b @ h_inv_a
    if lambda_d <= 0:
        raise ECCError("the correlation became negative (the start is too far off)")
    delta = (lambda_n / lambda_d) * h_inv_b - h_inv_a
    if not np.isfinite(delta).all():
        raise ECCError("the update is not finite (no texture to align on?)")
    return delta, float(rho)


def _align_level(template: _Template, moving: Any, matrix: np.ndarray, max_iter: int, eps: float,
                 tol: float) -> tuple[np.ndarray, float, int, bool]:
    """Inverse compositional ECC iterations at one level; returns ``(matrix, rho, iterations, converged)``.

    A level converges when an update moves no corner by ``tol`` pixels or
    the correlation changes by less than ``eps``; or when the correlation
    has not improved for :data:`_STALL` iterations (pixels entering and
    leaving the overlap at its border can make the last steps cycle), and
    then the best matrix seen is kept.
    """
    model = template.model
    norm = template.normaliser
    norm_inv = np.linalg.inv(norm)
    corners = np.c_[template.corners, np.ones(4)]
    last_rho, best_rho, best_matrix, since_best = -2.0, -2.0, matrix, 0
    for iterations in range(1, max_iter + 1):
        stats = template.statistics(_resample(moving, matrix, template.shape))
        delta, rho = _ecc_step(stats, _N_PARAMS[model])
        if rho > best_rho:
            best_rho, best_matrix, since_best = rho, matrix, 0
        else:
            since_best += 1
            if since_best >= _STALL:
                return best_matrix / best_matrix[2, 2], best_rho, iterations, True
        step = norm_inv @ _update(model, delta) @ norm
        matrix = matrix @ np.linalg.inv(step)
        moved = corners @ step.T
        moved = moved[:, :2] / moved[:, 2:] - template.corners
        if np.abs(moved).max() < tol or abs(rho - last_rho) < eps:
            return matrix / matrix[2, 2], rho, iterations, True
        last_rho = rho
    return matrix / matrix[2, 2], rho, max_iter, False


#: Iterations without a better correlation after which a level stops.
_STALL = 5


def refine_translation(template: Any, gradients: tuple, moving: Any, shift: np.ndarray, *, max_iter: int = 20,
                       tol: float = 1e-3) -> tuple[np.ndarray, float, float, bool]:
    """Translation-only inverse compositional ECC from ``shift``, for drift correction.

    ``template`` is the (smoothed, mean-free) fixed frame and ``gradients``
    its ``(d/drow, d/dcol)``, computed once per reference; ``moving`` a frame
    of the same shape, smoothed the same way. The overlap of the two frames
    is a rectangle, so the bilinear samples are four shifted slices (no
    coordinate arrays), written into a frame-sized buffer that is zero
    outside the overlap: every sum with the template is then one dot product
    of contiguous arrays.

    Returns ``(shift, rho_start, rho_end, converged)``: the refined fixed ->
    moving shift, the correlation at the first and at the last iteration, and
    whether the last update was below ``tol``. ``max_iter=0`` only measures
    the correlation at ``shift``. Raises :class:`ECCError` when it diverges.
    """
    xp, _ = _backend.get_namespace(template)
    rows, cols = template.shape
    gr, gc = gradients
    flat_t, flat_r, flat_c = template.ravel(), gr.ravel(), gc.ravel()
    warped = xp.zeros_like(template)
    flat_w = warped.ravel()
    shift = np.asarray(shift, dtype=np.float64)
    overlap, template_sums = None, None
    rho_start = rho = -1.0
    for iteration in range(max(max_iter, 1)):
        whole = np.floor(shift).astype(int)
        frac = (shift - whole).astype(template.dtype)
        r0, c0 = max(0, -whole[0]), max(0, -whole[1])
        r1, c1 = min(rows, moving.shape[0] - 1 - whole[0]), min(cols, moving.shape[1] - 1 - whole[1])
        if r1 - r0 < 4 or c1 - c0 < 4:
            raise ECCError("the frames no longer overlap")
        box = (slice(r0, r1), slice(c0, c1))
        if (r0, r1, c0, c1) != overlap:  # the template's sums change only when the overlap does
            overlap = (r0, r1, c0, c1)
            t, jr, jc = template[box], gr[box], gc[box]
            sums = [(jr * jr).sum(), (jr * jc).sum(), (jc * jc).sum(), jr.sum(), jc.sum(), (jr * t).sum(),
                    (jc * t).sum(), t.sum(), (t * t).sum()]
            template_sums = _backend.to_numpy(xp.stack(sums)).astype(np.float64)
            warped[...] = 0
        rr, rc, cc, sr, sc, rt, ct, st, tt = template_sums
        top, left, height, width = r0 + whole[0], c0 + whole[1], r1 - r0, c1 - c0
        band = (1 - frac[0]) * moving[top : top + height] + frac[0] * moving[top + 1 : top + 1 + height]
        warped[box] = (1 - frac[1]) * band[:, left : left + width] + frac[1] * band[:, left + 1 : left + 1 + width]
        w_sums = xp.stack([flat_w @ flat_r, flat_w @ flat_c, flat_w.sum(), flat_w @ flat_w, flat_w @ flat_t])
        wr, wc, sw, ww, wt = _backend.to_numpy(w_sums).astype(np.float64)
        stats = {"n": height * width, "hessian": np.array([[rr, rc], [rc, cc]]), "j_sum": np.array([sr, sc]),
                 "j_t": np.array([rt, ct]), "t_sum": st, "t_t": tt, "j_w": np.array([wr, wc]), "w_sum": sw,
                 "w_w": ww, "w_t": wt}
        if max_iter == 0:
            rho = _correlation(stats, 2)[0]
            return shift, rho, rho, False
        delta, rho = _ecc_step(stats, 2)
        if iteration == 0:
            rho_start = rho
        shift = shift - delta  # inverse compositional: W(p) o W(delta)^-1
        if np.abs(delta).max() < tol:
            return shift, rho_start, rho, True
    return shift, rho_start, rho, False


def _scaled(matrix: np.ndarray, factor: float) -> np.ndarray:
    """``matrix`` for images resampled by ``factor`` (pyramid levels): ``S M S^-1``."""
    return np.diag([factor, factor, 1.0]) @ matrix @ np.diag([1 / factor, 1 / factor, 1.0])


def _phase_start(fixed: Any, moving: Any) -> np.ndarray:
    """Translation by phase correlation of the two images of one level (their top-left corners aligned)."""
    rows, cols = min(fixed.shape[0], moving.shape[0]), min(fixed.shape[1], moving.shape[1])
    shift, _ = phase_shift(fixed[:rows, :cols], moving[:rows, :cols], upsample=4)
    return Transform.from_shift(shift).matrix


def _log_polar_start(fixed: Any, moving: Any) -> np.ndarray:
    """Rotation and scale by log-polar phase correlation of centred squares, then the translation."""
    xp, _ = _backend.get_namespace(fixed)
    size = min(fixed.shape + moving.shape) // 2 * 2
    if size < 32:
        raise ECCError(f"the images are too small for a log-polar start ({size} pixels, 32 needed)")
    crops = []
    for image in (fixed, moving):
        top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
        crops.append(image[top : top + size, left : left + size])
    angle, scale, _ = rotation_scale(*crops)
    centre_fixed = (np.asarray(fixed.shape, dtype=np.float64) - 1) / 2
    centre_moving = (np.asarray(moving.shape, dtype=np.float64) - 1) / 2
    best, best_peak = None, -1.0
    for turn in (angle, angle + math.pi):  # the Fourier magnitude cannot tell a half turn apart
        linear = scale * np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        matrix = np.eye(3)
        matrix[:2, :2] = linear
        matrix[:2, 2] = centre_moving - linear @ centre_fixed
        warped = _resample(moving, matrix, tuple(fixed.shape))
        warped = xp.where(xp.isnan(warped), 0, warped).astype(warped.dtype)  # 0 is the (centred) mean
        shift, peak = phase_shift(fixed, warped, upsample=4)
        if peak > best_peak:
            best, best_peak = matrix @ Transform.from_shift(shift).matrix, peak
    return best


def _start_matrix(name: str, fixed_pyramid: list, moving_pyramid: list) -> np.ndarray:
    """Full-resolution fixed -> moving matrix of an automatic start."""
    if name == "identity":
        return np.eye(3)
    coarsest = len(fixed_pyramid) - 1
    if name == "phase":
        level, finder = coarsest, _phase_start
    else:  # the log-polar spectrum needs detail: the first level with a side of at most 384 pixels
        sides = [min(f.shape + m.shape) for f, m in zip(fixed_pyramid, moving_pyramid)]
        level, finder = next((k for k, side in enumerate(sides) if side <= 384), coarsest), _log_polar_start
    return _scaled(finder(fixed_pyramid[level], moving_pyramid[level]), 2.0**level)


class _Reference:
    """The fixed image prepared once for ECC: its pyramid and the inverse compositional precomputation per level.

    :func:`stack_transforms` builds one and aligns every frame of a stack to it.
    """

    def __init__(self, fixed: Any, *, model: str, levels: int, sigma: float, mask: Any = None,
                 dtype: Any = np.float32) -> None:
        xp, _ = _backend.get_namespace(fixed)
        self.dtype, self.sigma, self.levels, self.model = np.dtype(dtype), sigma, levels, model
        self.pyramid = _pyramid(_centred(fixed, self.dtype, xp), levels, sigma, xp)
        masks = [None if mask is None else mask[:: 2**k, :: 2**k] for k in range(levels)]
        self.templates = [_Template(image, m, model, xp) for image, m in zip(self.pyramid, masks)]

    def moving_pyramid(self, moving: Any) -> list:
        xp, _ = _backend.get_namespace(moving)
        return _pyramid(_centred(moving, self.dtype, xp), self.levels, self.sigma, xp)

    def run(self, moving_pyramid: list, start: np.ndarray, max_iter: int, eps: float, tol: float) -> dict:
        """Coarse to fine from ``start`` (full-resolution fixed -> moving matrix)."""
        matrix = _scaled(start, 0.5 ** (self.levels - 1))
        total = 0
        for level in reversed(range(self.levels)):
            # coarse levels only have to bring the next level into its basin
            matrix, rho, iterations, done = _align_level(
                self.templates[level], moving_pyramid[level], matrix, max_iter, eps, tol * (10 if level else 1)
            )
            total += iterations
            if level:
                matrix = _scaled(matrix, 2.0)
        # coarse levels only have to bring the finest into its basin: its convergence is the verdict
        return {"matrix": _project(self.model, matrix), "score": rho, "iterations": total, "converged": done}

    def align(self, moving: Any, *, initial: Transform | None, starts: tuple, max_iter: int, eps: float,
              tol: float, min_correlation: float) -> Transform:
        """Try ``initial`` and then the automatic ``starts`` until one converges well; the best one wins."""
        moving_pyramid = self.moving_pyramid(moving)
        candidates = ([("initial", initial.matrix)] if initial is not None else []) + list(starts)
        tried, best = [], None
        for candidate in candidates:
            name, start = candidate if isinstance(candidate, tuple) else (candidate, None)
            try:
                if start is None:
                    start = _start_matrix(name, self.pyramid, moving_pyramid)
                result = self.run(moving_pyramid, start, max_iter, eps, tol)
            except ECCError as exc:
                tried.append({"start": name, "outcome": f"failed: {exc}"})
                continue
            verdict = "converged" if result["converged"] else f"not converged in {max_iter} iterations"
            if result["converged"] and result["score"] < min_correlation:
                verdict = f"converged below min_correlation={min_correlation:g}"
            tried.append({"start": name, "outcome": f"{verdict}, correlation {result['score']:.4f}"})
            acceptable = result["converged"] and result["score"] >= min_correlation
            if acceptable and (best is None or result["score"] > best[1]["score"]):
                best = (name, result)
            if best is not None and best[1]["score"] >= _GOOD_CORRELATION:
                break
        if best is None:
            report = "; ".join(f"{t['start']}: {t['outcome']}" for t in tried)
            raise ECCError(
                f"ECC diverged: no start converged ({report}). Give an initial transform (e.g. from "
                "points or from_features), check that the images overlap and show the same structures, or "
                "raise max_iter."
            )
        name, result = best
        return Transform(model=self.model, matrix=result["matrix"], score=float(result["score"]),
                         metadata={"start": name, "tried": tried, "iterations": result["iterations"],
                                   "levels": self.levels})


#: A start that converges to at least this correlation is kept without trying the others.
_GOOD_CORRELATION = 0.8
#: Below this correlation two images are taken not to show the same thing (unrelated smoothed noise
#: reaches 0.1 - 0.2 on small frames).
MIN_CORRELATION = 0.25


def _centred(image: Any, dtype: np.dtype, xp: Any) -> Any:
    """``image`` in ``dtype`` less its mean: ECC ignores offsets, and float32 sums stay exact without one."""
    image = xp.asarray(image, dtype=dtype)
    return image - image.mean(dtype=np.float64).astype(dtype)


def _starts(start: Any) -> tuple:
    """The automatic starts to try, in order: one name first and then the others, or exactly a sequence."""
    if isinstance(start, str) and start in STARTS:
        return (start,) + tuple(n for n in STARTS if n != start)
    if isinstance(start, (list, tuple)) and all(isinstance(n, str) and n in STARTS for n in start):
        return tuple(start)
    raise ValueError(f"start must be one of {STARTS} or a sequence of them, got {start!r}")


@validated
def ecc(
    fixed: ImageRef,
    moving: ImageRef,
    *,
    model: str = "affine",
    initial: Transform | None = None,
    start: Start | tuple[Start, ...] = "phase",
    mask: ImageRef | None = None,
    levels: Annotated[int, Range(1, 8)] | None = None,
    max_iter: Annotated[int, Range(1, None)] = 100,
    eps: Annotated[float, Range(0, None)] = 1e-6,
    tol: Annotated[float, Range(0, None)] = 0.05,
    sigma: Annotated[float, Range(0, None)] = 1.0,
    min_correlation: Annotated[float, Range(-1, 1)] = MIN_CORRELATION,
) -> Transform:
    """Align ``moving`` to ``fixed`` by maximising the enhanced correlation coefficient.

    ECC is invariant to brightness and contrast differences between the two
    images (it correlates zero-mean, normalised intensities), so it aligns
    different exposures, stains or detectors of the same field. It runs coarse
    to fine over a Gaussian pyramid, in the inverse compositional form (one
    warp of the moving image per iteration), in float32 for up to 16-bit and
    float32 images.

    Where the iteration starts decides what it can reach: repetitive textures
    (bricks, grass, crystal lattices) lock onto the wrong period from a poor
    start. ECC therefore tries several starts: ``initial`` if given, then the
    automatic ones of ``start``, and keeps the first that converges to a
    correlation of at least 0.8 (or, failing that, the best one that
    converged). The result's ``metadata["start"]`` names the start that won
    and ``metadata["tried"]`` what happened to each.

    Parameters
    ----------
    fixed, moving : array, shape ``(M, N)`` and ``(M', N')``
        The reference image and the image to align (NumPy or CuPy; dask is
        computed once, explicitly).
    model : str
        ``"translation"``, ``"euclidean"`` (rigid), ``"similarity"``,
        ``"affine"`` or ``"projective"`` (alias ``"homography"``).
    initial : Transform, optional
        Starting fixed -> moving transform, e.g. from :func:`from_points` or
        :func:`from_features` ("refine" a rough alignment); tried first.
    start : {"phase", "identity", "log-polar"} or sequence of them
        Automatic starts: ``"phase"``, a translation by phase correlation at
        the coarsest pyramid level; ``"identity"``; ``"log-polar"``,
        rotation and scale by log-polar (Fourier-Mellin) phase correlation,
        then the translation. One name puts that start first and keeps the
        others as fallbacks; a sequence tries exactly those, in order.
    mask : array of bool, shape ``(M, N)``, optional
        Fixed-image pixels to use (False pixels are ignored).
    levels : int, optional
        Gaussian pyramid levels, coarse to fine (default: enough to bring the
        smallest side down to about 48-96 pixels, at most 5).
    max_iter : int
        Iterations per level at most; a start that needs more has not
        converged.
    eps : float
        A level has converged when the correlation changes by less than
        ``eps`` between iterations ...
    tol : float
        ... or when an update moves no corner of the image by more than
        ``tol`` pixels (at the finest level; coarser levels stop at ten times
        that, in their own pixels). The last update is applied, and ECC
        converges fast near the optimum: the result is typically within a
        few thousandths of a pixel of it.
    sigma : float
        Gaussian smoothing (pixels) of both images at every level before the
        gradients are taken; 0 disables it.
    min_correlation : float
        A start whose final correlation stays below this has not found the
        images in each other (unrelated images reach 0.1-0.2 by chance on
        small frames); it counts as failed.
    device : {"auto", "cpu", "gpu"}, optional
        Where to compute; default: where the images are.

    Returns
    -------
    Transform
        Fixed -> moving transform of the chosen model; ``score`` is the final
        correlation coefficient (1 = identical up to brightness/contrast);
        ``metadata`` holds ``start``, ``tried``, ``iterations`` and ``levels``.

    Raises
    ------
    ECCError
        A ``ValueError``, when no start converges to ``min_correlation``; the
        message lists what each start gave.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> from napari_stacklab.register import Transform, warp
    >>> fixed = data.camera()[::2, ::2].astype(np.float32)
    >>> truth = Transform.from_shift([3.3, -2.6])          # fixed (r, c) -> moving (r + 3.3, c - 2.6)
    >>> moving = warp(fixed, truth.inverse(), mode="nearest")
    >>> t = ecc(fixed, moving, model="translation")
    >>> np.round(t.shift, 1).tolist(), t.metadata["start"]
    ([3.3, -2.6], 'phase')
    """
    if model == "homography":
        model = "projective"
    check_choice("model", model, ECC_MODELS)
    for name, image in (("fixed", fixed), ("moving", moving)):
        check_ndim(image, 2, name, max_ndim=2)
        check_real(image, name)
    starts = _starts(start)
    if not starts and initial is None:
        raise ValueError("start: an empty sequence of starts needs an initial transform")
    if initial is not None:
        if initial.ndim != 2:
            raise TypeError(f"initial must be a 2-D Transform, got {initial!r}")
        if not initial.is_affine and initial.model != "projective":
            initial = initial.affine_approximation(fixed.shape)
    if mask is not None:
        check_ndim(mask, 2, "mask", max_ndim=2)
        if tuple(mask.shape) != tuple(fixed.shape):
            raise ValueError(f"mask must have the fixed image's shape {tuple(fixed.shape)}, got {tuple(mask.shape)}")

    fixed, moving, mask = (None if a is None else _backend.compute_here(a) for a in (fixed, moving, mask))
    moving = _backend.like(moving, fixed)
    mask = None if mask is None else _backend.like(mask, fixed)
    levels = levels or _default_levels(tuple(fixed.shape) + tuple(moving.shape))
    return host_fallback("ecc", _ecc, fixed, moving, mask, model=model, levels=levels, sigma=sigma,
                         initial=initial, starts=starts, max_iter=max_iter, eps=eps, tol=tol,
                         min_correlation=min_correlation)


def _ecc(fixed: Any, moving: Any, mask: Any, *, model: str, levels: int, sigma: float, **align: Any) -> Transform:
    dtype = float_dtype(np.result_type(fixed.dtype, moving.dtype))
    reference = _Reference(fixed, model=model, levels=levels, sigma=sigma, mask=mask, dtype=dtype)
    return reference.align(moving, **align)
