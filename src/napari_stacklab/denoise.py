"""Denoising, deconvolution and image-quality readouts, frame by frame.

Every denoiser takes an image or a stack ``(..., M, N)`` (NumPy, dask or
CuPy), works on each frame independently and returns the same kind of array;
dask input stays lazy. Global statistics (the noise level, the intensity
range) are computed **once** over the whole input before the lazy graph is
built, so every frame is denoised with the same strength.

Counts keep their scale: nothing is rescaled to [0, 1] in the output. The
strength parameters are unit-free instead: ``h`` of :func:`nl_means` is a
multiple of the noise standard deviation, ``weight`` of :func:`tv` a fraction
of the intensity range.

For photon- or electron-counting data (Poisson noise) pass ``anscombe=True``:
the denoiser then works on the variance-stabilised image
(:func:`anscombe`, noise standard deviation close to 1) and maps the result
back with the exact unbiased inverse (:func:`inverse_anscombe`).

The bilateral filter is listed here and in :mod:`napari_stacklab.filters`:
:func:`bilateral` is the same operation in both.
"""

from __future__ import annotations

import math
import warnings
from typing import Annotated, Any, Literal

import numpy as np

from . import _backend
from ._backend import get_namespace
from ._bilateral import bilateral
from ._validation import as_float, check_ndim, check_real, check_same_shape, float_dtype
from .costs import Cost
from .frames import frame_at
from .lift import reduce_frames
from .registry import ImageRef, PerFrame, Range, operation, validated
from .statistics import stack_range

__all__ = [
    "anscombe",
    "inverse_anscombe",
    "estimate_noise",
    "nl_means",
    "tv",
    "wavelet",
    "bm3d",
    "bilateral",
    "psnr",
    "ssim",
    "gaussian_psf",
    "richardson_lucy",
    "wiener",
]

_ANSCOMBE_ZERO = 2.0 * math.sqrt(3.0 / 8.0)  # anscombe(0)



# --- variance stabilisation ---------------------------------------------------------


def _anscombe(image: Any) -> Any:
    xp, _ = get_namespace(image)
    x = as_float(image)
    return 2.0 * xp.sqrt(xp.maximum(x + 3.0 / 8.0, 0))


def _inverse_anscombe(image: Any) -> Any:
    xp, _ = get_namespace(image)
    d = xp.maximum(as_float(image), _ANSCOMBE_ZERO)
    # Makitalo & Foi (2011), closed-form approximation of the exact unbiased inverse.
    s = math.sqrt(1.5)
    out = d**2 / 4 + s / 4 / d - 11.0 / 8.0 / d**2 + 5.0 / 8.0 * s / d**3 - 1.0 / 8.0
    return xp.maximum(out, 0).astype(d.dtype, copy=False)


@operation(menu="filter", vectorized=True, title="Anscombe transform (Poisson counts)")
def anscombe(image):
    """Anscombe transform ``2 sqrt(x + 3/8)``: Poisson counts -> noise of standard deviation ~1.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Counts (photons, electrons); negative values are treated as 0.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input); pixel-wise, no halo.

    Examples
    --------
    >>> import numpy as np
    >>> counts = np.random.default_rng(0).poisson(50, (64, 64)).astype(np.uint16)
    >>> round(float(anscombe(counts).std()), 1)
    1.0
    """
    return _anscombe(image)


@operation(menu="filter", vectorized=True, title="Inverse Anscombe transform")
def inverse_anscombe(image):
    """Exact unbiased inverse of :func:`anscombe` (Makitalo & Foi 2011, closed form).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        A (denoised) Anscombe-transformed image.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), in counts, never negative;
        pixel-wise, no halo.

    Examples
    --------
    >>> import numpy as np
    >>> counts = np.random.default_rng(0).poisson(5.0, (100, 1000))
    >>> mean_stabilised = anscombe(counts).mean()          # E[anscombe(x)] for x ~ Poisson(5)
    >>> round(float(inverse_anscombe(np.full((1, 1), mean_stabilised))[0, 0]), 1)
    5.0
    """
    return _inverse_anscombe(image)


def _stabilized(image: Any, use_anscombe: bool) -> Any:
    return _anscombe(image) if use_anscombe else as_float(image)


def _restored(result: Any, use_anscombe: bool, dtype: Any) -> Any:
    if use_anscombe:
        result = _inverse_anscombe(result)
    return result.astype(dtype, copy=False)


# --- noise level ----------------------------------------------------------------------


def _frame_sigma(frame: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the median of no coefficients: handled below
        sigma = _backend.skimage_function(frame, "restoration", "estimate_sigma")(frame)
    xp, _ = get_namespace(frame)
    # skimage takes the median of the *nonzero* finest details: NaN when there are none
    # (a constant frame). Finite pixels and no detail at all is no noise, not an unknown one.
    if math.isnan(float(sigma)) and bool(xp.isfinite(frame).all()):
        return 0.0
    return sigma


def _constant(frame: Any) -> bool:
    """A constant frame has no noise: it is its own denoised value (and 0/0 for some denoisers)."""
    return bool(frame.min() == frame.max())


def _unchanged(image: Any, dtype: Any) -> Any:
    return image.astype(dtype, copy=True)


def _noise_sigma(image: Any, plane: int | None = None, use_anscombe: bool = False) -> float:
    sample = _stabilized(frame_at(image, plane), use_anscombe)
    sigmas = reduce_frames(_frame_sigma, sample, dtype=np.float64)
    return float(np.mean(_backend.materialize(sigmas)))


@operation(menu="measure", output="value", lift=False, title="Estimate noise level")
def estimate_noise(image, *, plane: Annotated[int, Range(None, None)] | None = None):
    """Standard deviation of Gaussian noise, from the finest wavelet details.

    Donoho's robust estimator (``skimage.restoration.estimate_sigma``),
    averaged over every frame of a stack (or taken from one frame).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    plane : int, optional
        Use only this frame (C-order index over the batch axes).

    Returns
    -------
    float
        The noise standard deviation, in the units of ``image``; 0 for a
        constant image (or one without any fine detail), NaN when a frame
        holds NaN pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> noisy = data.camera() + np.random.default_rng(0).normal(0, 10, (512, 512))
    >>> round(estimate_noise(noisy))   # 10 added + about 1 of camera's own fine texture
    11
    """
    check_real(image)
    return _noise_sigma(image, plane)


def _resolve_sigma(image: Any, **params: Any) -> dict:
    if params.get("sigma") is None:
        params["sigma"] = _noise_sigma(image, use_anscombe=params["anscombe"])
    return params


# --- denoisers -------------------------------------------------------------------------

#: A noise standard deviation, or an intensity range, in the units of the image: up to 1e30 keeps
#: every square and product the denoisers form inside float64 (and their results inside float32).
Sigma = Annotated[float, Range(0, 1e30)]


def _nl_means_cost(shape, dtype, patch_size, patch_distance, fast_mode, **_):
    # scikit-image's loops: about 10 ns a pixel and search offset (fast mode, patch sums by running
    # sums), about 3.5 ns a pixel, offset and patch pixel otherwise; twice that for a busy core
    window = (2 * patch_distance + 1) ** 2
    pixels = math.prod(shape)
    seconds = pixels * window * (20e-9 if fast_mode else 7e-9 * patch_size**2)
    why = f"a {2 * patch_distance + 1}-pixel search window" + ("" if fast_mode else f" of {patch_size}-pixel patches")
    return Cost(8 * pixels * 8, seconds, why, "a smaller patch_distance (or patch_size), fast_mode=True")



@operation(
    menu="filter",
    prepare=_resolve_sigma,
    halo=lambda patch_size, patch_distance, **_: patch_size // 2 + patch_distance,
    title="Non-local means denoising",
    cost=_nl_means_cost,
)
def nl_means(
    image,
    *,
    patch_size: Annotated[int, Range(1, 31)] = 7,
    patch_distance: Annotated[int, Range(1, 50)] = 11,
    h: Annotated[float, Range(0, 10, 0.05, low_inclusive=False)] = 0.8,
    fast_mode: bool = True,
    sigma: Sigma | None = None,
    anscombe: bool = False,
):
    """Non-local means: average pixels whose surrounding patches look alike.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; frames are denoised independently.
    patch_size : int
        Side of the patches compared, in pixels.
    patch_distance : int
        Search radius in pixels; the halo is ``patch_size // 2 + patch_distance``.
    h : float
        Filtering strength as a multiple of the noise standard deviation
        (scikit-image's cut-off distance is ``h * sigma``); 0.6-0.8 for
        ``fast_mode``, larger removes more noise and more detail.
    fast_mode : bool
        Use the fast (uniform patch weights) algorithm.
    sigma : float, optional
        Noise standard deviation (in the units of ``image``, or of the
        Anscombe-transformed image with ``anscombe=True``). Estimated once
        with :func:`estimate_noise` over the whole stack when not given.
    anscombe : bool
        Poisson (counting) noise: denoise the variance-stabilised image.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), same scale as the input. With
        ``sigma=0`` (no noise), and for a constant frame, the input unchanged.
        A pixel whose every neighbouring patch weighs nothing (``h * sigma``
        far below the patch differences, as on a noise-free two-level image
        with ``fast_mode=False``, where scikit-image divides 0 by 0) keeps its
        value: the limit of the weighted mean as the weights vanish.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> clean = data.camera()[:128, :128].astype(np.float32)
    >>> noisy = clean + np.random.default_rng(0).normal(0, 20, clean.shape)
    >>> out = nl_means(noisy.astype(np.float32))
    >>> out.dtype, bool(np.abs(out - clean).mean() < np.abs(noisy - clean).mean())
    (dtype('float32'), True)
    """
    dtype = float_dtype(image.dtype)
    if sigma == 0 or _constant(image):
        return _unchanged(image, dtype)
    x = _stabilized(image, anscombe)
    func = _backend.skimage_function(x, "restoration", "denoise_nl_means")
    out = func(
        x,
        patch_size=patch_size,
        patch_distance=patch_distance,
        h=h * sigma,
        sigma=sigma,
        fast_mode=fast_mode,
        preserve_range=True,
    )
    xp, _ = get_namespace(out)
    out = xp.where(xp.isfinite(out), out, x)  # 0 / 0 where every weight underflowed: the pixel itself
    return _restored(out, anscombe, dtype)


def _resolve_range(image: Any, **params: Any) -> dict:
    if params.get("data_range") is None:
        params["data_range"] = stack_range(_stabilized(image, params["anscombe"])) or 1.0
    return params


def _tv_cost(shape, dtype, max_num_iter, **_):
    # about 6 ns a pixel and iteration (gradient, divergence and the dual update in float), twice that
    # for a busy core; it may stop earlier, when it converges
    pixels = math.prod(shape)
    return Cost(8 * pixels * 8, pixels * max_num_iter * 12e-9, f"{max_num_iter} iterations", "fewer max_num_iter")


@operation(menu="filter", prepare=_resolve_range, title="Total-variation denoising", cost=_tv_cost)
def tv(
    image,
    *,
    weight: Annotated[float, Range(0, 10, 0.01, low_inclusive=False)] = 0.1,
    max_num_iter: Annotated[int, Range(1, 1000)] = 200,
    data_range: Annotated[float, Range(0, 1e30, low_inclusive=False)] | None = None,
    anscombe: bool = False,
):
    """Total-variation denoising (Chambolle): flat regions, sharp edges.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; frames are denoised independently (whole frames, no halo).
    weight : float
        Strength as a fraction of the intensity range (0.1 on an 8-bit image
        equals scikit-image's ``weight=0.1`` on the image scaled to [0, 1]).
    max_num_iter : int
        Maximal number of Chambolle iterations.
    data_range : float, optional
        Intensity range ``weight`` refers to; by default ``max - min`` of the
        whole input, computed once.
    anscombe : bool
        Poisson (counting) noise: denoise the variance-stabilised image.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), same scale as the input; a
        constant frame unchanged, and so is a frame for which
        ``weight * data_range`` is too small to change any value at the
        output's precision (Chambolle's steps divide by it).

    Examples
    --------
    >>> import numpy as np
    >>> step = np.zeros((32, 32)); step[:, 16:] = 100
    >>> noisy = step + np.random.default_rng(0).normal(0, 10, step.shape)
    >>> out = tv(noisy, weight=0.2)
    >>> bool(out[:, 20:].std() < noisy[:, 20:].std() / 3)
    True
    """
    dtype = float_dtype(image.dtype)
    if _constant(image):
        return _unchanged(image, dtype)
    x = _stabilized(image, anscombe)
    xp, _ = get_namespace(x)
    # the result moves each value by at most 4 * weight (|div p| <= 4 in 2-D): below the precision
    # of the largest value nothing changes, and weight -> 0 is where scikit-image divides by zero
    if 4 * weight * data_range <= np.finfo(dtype).eps * float(xp.abs(x).max()):
        return _restored(x, anscombe, dtype)
    func = _backend.skimage_function(x, "restoration", "denoise_tv_chambolle")
    return _restored(
        func(x, weight=weight * data_range, max_num_iter=max_num_iter), anscombe, dtype
    )


@operation(menu="filter", prepare=_resolve_sigma, title="Wavelet denoising")
def wavelet(
    image,
    *,
    method: Literal["BayesShrink", "VisuShrink"] = "BayesShrink",
    family: Literal["db1", "db2", "db4", "sym4", "coif1"] = "db1",
    mode: Literal["soft", "hard"] = "soft",
    levels: Annotated[int, Range(1, 12)] | None = None,
    sigma: Sigma | None = None,
    anscombe: bool = False,
):
    """Wavelet shrinkage: small wavelet coefficients (noise) are shrunk to zero.

    Needs PyWavelets (``pip install PyWavelets``).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; frames are denoised independently (whole frames, no halo).
    method : {"BayesShrink", "VisuShrink"}
        Adaptive per-subband thresholds, or one universal threshold (much
        smoother; with ``mode="soft"`` it often removes real detail too).
    family : str
        Wavelet family (PyWavelets name; ``db1`` is the Haar wavelet).
    mode : {"soft", "hard"}
        Thresholding kind.
    levels : int, optional
        Decomposition levels (default: 3 below the maximum).
    sigma : float, optional
        Noise standard deviation; estimated once over the whole stack when not given.
    anscombe : bool
        Poisson (counting) noise: denoise the variance-stabilised image.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), same scale as the input. With
        ``sigma=0`` (no noise), and for a constant frame, the input unchanged
        (scikit-image's thresholds would be 0/0 there).

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> clean = data.camera()[:128, :128].astype(np.float32)
    >>> noisy = clean + np.random.default_rng(0).normal(0, 20, clean.shape).astype(np.float32)
    >>> out = wavelet(noisy)
    >>> bool(np.abs(out - clean).mean() < np.abs(noisy - clean).mean())
    True
    """
    dtype = float_dtype(image.dtype)
    if sigma == 0 or _constant(image):
        return _unchanged(image, dtype)
    x = _stabilized(image, anscombe)
    func = _backend.skimage_function(x, "restoration", "denoise_wavelet")
    out = func(
        x,
        sigma=sigma,
        wavelet=family,
        mode=mode,
        wavelet_levels=levels,
        method=method,
        rescale_sigma=True,
    )
    return _restored(out, anscombe, dtype)


def _bm3d_module():
    try:
        import bm3d as bm3d_module
    except ImportError:
        raise ImportError(
            "denoise.bm3d needs the optional 'bm3d' package: pip install bm3d"
        ) from None
    return bm3d_module


def _resolve_bm3d(image: Any, **params: Any) -> dict:
    _bm3d_module()
    return _resolve_sigma(image, **params)


def _bm3d_cost(shape, dtype, stage, **_):
    # the bm3d package: about 85 (both stages) or 50 (the first) microseconds a pixel on an idle core, twice
    # that on a busy one; the estimate takes the busy figure
    pixels = math.prod(shape)
    return Cost(40 * pixels * 8, pixels * (170e-6 if stage == "all" else 100e-6), "block matching at every pixel",
                "stage='hard', a smaller frame (crop)")


@operation(menu="filter", prepare=_resolve_bm3d, title="BM3D denoising", cost=_bm3d_cost)
def bm3d(
    image,
    *,
    sigma: Annotated[float, Range(0, 1e12)] | None = None,
    stage: Literal["all", "hard"] = "all",
    anscombe: bool = False,
):
    """BM3D: collaborative filtering of groups of similar patches (state of the art, slow).

    Needs the optional ``bm3d`` package (``pip install bm3d``); runs on the
    CPU only (GPU data fall back to the CPU with a warning).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; frames are denoised independently (whole frames, no halo).
    sigma : float, optional
        Noise standard deviation; estimated once over the whole stack when not
        given. At most 1e12: the bm3d package squares it in float32.
    stage : {"all", "hard"}
        Both BM3D stages (hard thresholding then Wiener), or the first only (faster).
    anscombe : bool
        Poisson (counting) noise: denoise the variance-stabilised image.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), same scale as the input. With
        ``sigma=0`` (no noise), and for a constant frame, the input unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> clean = data.camera()[:64, :64].astype(np.float32)
    >>> noisy = clean + np.random.default_rng(0).normal(0, 20, clean.shape).astype(np.float32)
    >>> out = bm3d(noisy, sigma=20.0, stage="hard")   # doctest: +SKIP
    """
    if _backend.on_gpu(image):
        raise _backend.NoGPUImplementation("bm3d has no GPU implementation")
    module = _bm3d_module()
    dtype = float_dtype(image.dtype)
    if sigma == 0 or _constant(image):
        return _unchanged(image, dtype)
    x = _stabilized(image, anscombe)
    stage_arg = (
        module.BM3DStages.ALL_STAGES if stage == "all" else module.BM3DStages.HARD_THRESHOLDING
    )
    out = module.bm3d(np.asarray(x, dtype=np.float64), sigma_psd=sigma, stage_arg=stage_arg)
    return _restored(out, anscombe, dtype)


# --- image-quality readouts ------------------------------------------------------------


def _paired(image: Any, reference: Any) -> Any:
    """``reference`` with the shape of ``image``: one frame is compared with every frame."""
    check_real(image)
    check_real(reference, "reference")
    if tuple(reference.shape) == tuple(image.shape[-2:]) and image.ndim > 2:
        reference = np.broadcast_to(reference, image.shape)  # dispatches to dask / CuPy (NEP 18)
    check_same_shape(image, reference, ("image", "reference"))
    return reference


def _reference_range(reference: Any, data_range: float | None) -> float:
    return stack_range(reference) or 1.0 if data_range is None else data_range


@operation(menu="measure", output="value", lift=False, title="PSNR against a reference")
def psnr(
    image,
    *,
    reference: Annotated[ImageRef, PerFrame],
    data_range: Annotated[float, Range(0, 1e30, low_inclusive=False)] | None = None,
):
    """Peak signal-to-noise ratio of ``image`` against a clean ``reference``, in dB.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        The image to rate (a denoised or noisy image).
    reference : array, shape ``(..., M, N)`` or ``(M, N)``
        The ground truth: the same shape, or one frame compared with every frame.
    data_range : float, optional
        Peak value range; ``max - min`` of ``reference`` by default.

    Returns
    -------
    float
        ``10 log10(data_range**2 / MSE)`` over every pixel of the stack
        (computed as ``20 log10(data_range) - 10 log10(MSE)``, so that no
        square underflows); ``inf`` when the images are identical.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.zeros((8, 8)); ref[0, 0] = 1.0
    >>> round(psnr(ref + 0.1, reference=ref), 6)
    20.0
    """
    reference = _paired(image, reference)
    data_range = _reference_range(reference, data_range)
    xp, _ = get_namespace(image)
    difference = image.astype(np.float64) - reference.astype(np.float64)
    mse = float(_backend.materialize(xp.mean(difference * difference)))
    return math.inf if mse == 0 else 20.0 * math.log10(data_range) - 10.0 * math.log10(mse)


def _frame_ssim(pair: Any, *, data_range: float) -> Any:
    metrics = _backend.skimage_module(pair, "metrics")
    return metrics.structural_similarity(pair[0], pair[1], data_range=data_range)


@operation(menu="measure", output="value", lift=False, title="SSIM against a reference")
def ssim(
    image,
    *,
    reference: Annotated[ImageRef, PerFrame],
    data_range: Annotated[float, Range(0, 1e30, low_inclusive=False)] | None = None,
):
    """Structural similarity of ``image`` and ``reference`` (1 = identical), mean over frames.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        The image to rate.
    reference : array, shape ``(..., M, N)`` or ``(M, N)``
        The ground truth: the same shape, or one frame compared with every frame.
    data_range : float, optional
        Intensity range; ``max - min`` of ``reference`` by default.

    Returns
    -------
    float
        Mean SSIM (scikit-image's 7x7 window) of the 2-D frames.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.random.default_rng(0).random((32, 32))
    >>> ssim(ref, reference=ref)
    1.0
    """
    reference = _paired(image, reference)
    data_range = _reference_range(reference, data_range)
    stack = _backend.array_module(reference if _backend.is_dask(reference) else image).stack
    pairs = stack([image.astype(np.float64), reference.astype(np.float64)], axis=-3)
    values = reduce_frames(
        _frame_ssim, pairs, frame_ndim=3, dtype=np.float64, data_range=data_range
    )
    return float(np.mean(_backend.materialize(values)))


# --- deconvolution ---------------------------------------------------------------------


@validated(device=False)
def gaussian_psf(
    sigma: Annotated[float | tuple[float, float], Range(0, None)],
    *,
    truncate: Annotated[float, Range(0, None, low_inclusive=False)] = 4.0,
    like: Any = None,
) -> Any:
    """A normalised 2-D Gaussian point-spread function.

    Shape ``(2r + 1, 2r + 1)`` with ``r = ceil(truncate * sigma)`` (per axis for two sigmas).

    Examples
    --------
    >>> psf = gaussian_psf(1.5)
    >>> psf.shape, round(float(psf.sum()), 6)
    ((13, 13), 1.0)
    """
    xp, _ = get_namespace(np.empty(0) if like is None else like)
    sigmas = tuple(sigma) if isinstance(sigma, (tuple, list)) else (sigma, sigma)
    axes = []
    for s in sigmas:
        r = max(1, math.ceil(truncate * s))
        axes.append(xp.exp(-0.5 * (xp.arange(-r, r + 1, dtype=np.float64) / max(s, 1e-12)) ** 2))
    psf = axes[0][:, None] * axes[1][None, :]
    return psf / psf.sum()


def _resolve_psf(image: Any, **params: Any) -> dict:
    psf = params["psf"]
    if psf is None:
        psf = gaussian_psf(params["sigma"], like=_backend.tiny_like(image, 2))
    else:
        check_ndim(psf, 2, "psf", max_ndim=2)
        check_real(psf, "psf")
        psf = psf.astype(np.float64)
        total = float(_backend.materialize(psf.sum()))
        if not total > 0:
            raise ValueError(f"psf must have a positive sum, got {total}")
        psf = psf / total
    params["psf"] = psf.astype(float_dtype(image.dtype))
    return params


def _psf_side(sigma: float) -> int:
    return 2 * max(1, math.ceil(4.0 * sigma)) + 1  # gaussian_psf's


def _convolution_seconds(pixels: int, psf_pixels: int, padded: int) -> float:
    """scipy.signal.convolve's cheaper method: direct (1 ns a tap) or three FFTs of the padded frame."""
    return min(pixels * psf_pixels * 0.5e-9, 3 * padded * max(math.log2(padded), 1) * 0.75e-9)


def _richardson_lucy_cost(shape, dtype, psf, sigma, num_iter, **_):
    side = tuple(psf.shape) if psf is not None else (_psf_side(sigma),) * 2
    framed = tuple(n + 4 * p for n, p in zip(shape, side))  # the frame reflected by two PSF widths a side
    padded = math.prod(n + p - 1 for n, p in zip(framed, side))
    conv = _convolution_seconds(math.prod(framed), math.prod(side), padded)
    # and each iteration's ratio and product over the reflected frame, about 10 ns a pixel
    return Cost(10 * padded * 16, num_iter * (2 * conv + math.prod(framed) * 10e-9), f"{num_iter} iterations of two convolutions with a "
                f"{' x '.join(map(str, side))} PSF", "fewer num_iter, or a smaller sigma")


@operation(menu="filter", prepare=_resolve_psf, title="Richardson-Lucy deconvolution", cost=_richardson_lucy_cost)
def richardson_lucy(
    image,
    *,
    psf: ImageRef | None = None,
    sigma: Annotated[float, Range(0.1, 50)] = 1.5,
    num_iter: Annotated[int, Range(1, 500)] = 30,
):
    """Richardson-Lucy deconvolution with a Gaussian or a measured PSF.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack of non-negative intensities; frames are deconvolved
        independently (whole frames, no halo).
    psf : array, shape ``(P, Q)``, optional
        Measured point-spread function (normalised to sum 1 here); when not
        given a Gaussian PSF of standard deviation ``sigma`` is used.
    sigma : float
        Gaussian PSF standard deviation in pixels (ignored when ``psf`` is given).
    num_iter : int
        Iterations (more: sharper and noisier).

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), same scale as the input (not clipped). The frame
        is extended by reflection past its border, so edges are not darkened.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> spots = np.zeros((32, 32)); spots[10, 10] = spots[20, 24] = 100
    >>> blurred = ndi.gaussian_filter(spots, 1.5)
    >>> out = richardson_lucy(blurred, sigma=1.5, num_iter=50)
    >>> bool(out[10, 10] > 3 * blurred[10, 10])
    True
    """
    xp, _ = get_namespace(image)
    x = as_float(image)
    func = _backend.skimage_function(x, "restoration", "richardson_lucy")
    # scikit-image convolves with zero padding, which darkens the border, and the dark rim creeps
    # inward with every iteration; extend the frame by reflection (two PSF widths on each side,
    # which keeps a flat field flat to ~1e-5 after 20 iterations) and crop back.
    pad = tuple((2 * s, 2 * s) for s in psf.shape)
    out = func(xp.pad(x, pad, mode="reflect"), psf, num_iter=num_iter, clip=False)
    return out[tuple(slice(p, p + n) for (p, _), n in zip(pad, x.shape))].astype(x.dtype, copy=False)


@operation(menu="filter", prepare=_resolve_psf, title="Wiener deconvolution")
def wiener(
    image,
    *,
    psf: ImageRef | None = None,
    sigma: Annotated[float, Range(0.1, 50)] = 1.5,
    balance: Annotated[float, Range(0, 100, 0.001, low_inclusive=False)] = 0.05,
):
    """Wiener(-Hunt) deconvolution with a Gaussian or a measured PSF.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; frames are deconvolved independently (whole frames,
        no halo; the frame is treated as periodic).
    psf : array, shape ``(P, Q)``, optional
        Measured point-spread function (normalised to sum 1 here); when not
        given a Gaussian PSF of standard deviation ``sigma`` is used.
    sigma : float
        Gaussian PSF standard deviation in pixels (ignored when ``psf`` is given).
    balance : float
        Regularisation: larger is smoother, smaller is sharper and noisier.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), same scale as the input (not clipped).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> spots = np.zeros((32, 32)); spots[10, 10] = spots[20, 24] = 100
    >>> blurred = ndi.gaussian_filter(spots, 1.5, mode="wrap")
    >>> out = wiener(blurred, sigma=1.5, balance=0.001)
    >>> bool(out[10, 10] > 2 * blurred[10, 10])
    True
    """
    x = as_float(image)
    func = _backend.skimage_function(x, "restoration", "wiener")
    return func(x, psf, balance, clip=False).astype(x.dtype, copy=False)
