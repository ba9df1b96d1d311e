"""Denoisers, deconvolution and quality readouts against scikit-image oracles."""

from __future__ import annotations

import sys

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data, metrics, restoration

from napari_stacklab import denoise

RNG_SEED = 1234


@pytest.fixture(scope="module")
def clean():
    return data.camera()[128:256, 192:320].astype(np.float32)


@pytest.fixture(scope="module")
def noisy(clean):
    rng = np.random.default_rng(RNG_SEED)
    return (clean + rng.normal(0, 20, clean.shape)).astype(np.float32)


def _psnr(image, reference):
    return metrics.peak_signal_noise_ratio(reference, image, data_range=255)


def _stack(clean, n=3):
    rng = np.random.default_rng(RNG_SEED)
    frames = [np.roll(clean, 7 * i, axis=1) for i in range(n)]
    return np.stack([f + rng.normal(0, 20, f.shape) for f in frames]).astype(np.float32)


# --- every denoiser improves PSNR ---------------------------------------------------------


@pytest.mark.parametrize(
    "func, params",
    [
        (denoise.nl_means, {}),
        (denoise.tv, {"weight": 0.08}),
        (denoise.wavelet, {"method": "BayesShrink"}),
        (denoise.wavelet, {"method": "VisuShrink", "mode": "hard", "family": "sym4"}),
    ],
)
def test_denoiser_improves_psnr(func, params, clean, noisy):
    out = func(noisy, **params)
    assert out.dtype == np.float32 and out.shape == noisy.shape
    assert _psnr(out, clean) > _psnr(noisy, clean) + 2.0


def test_bm3d_improves_psnr(clean, noisy):
    pytest.importorskip("bm3d")
    out = denoise.bm3d(noisy[:64, :64], sigma=20.0, stage="hard")
    assert out.dtype == np.float32
    assert _psnr(out, clean[:64, :64]) > _psnr(noisy[:64, :64], clean[:64, :64]) + 2.0


def test_bm3d_missing_package_gives_clear_error(noisy, monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)
    with pytest.raises(ImportError, match="pip install bm3d"):
        denoise.bm3d(noisy, sigma=20.0)


@pytest.mark.parametrize("func", [denoise.nl_means, denoise.tv, denoise.wavelet])
def test_anscombe_denoises_counts_and_keeps_their_scale(func, clean):
    expected = clean / 255 * 30 + 2  # photon counts, 2..32 per pixel
    counts = np.random.default_rng(RNG_SEED).poisson(expected).astype(np.uint16)
    out = func(counts, anscombe=True)
    assert out.dtype == np.float32
    assert abs(float(out.mean()) - float(expected.mean())) < 0.5  # counts, not [0, 1]
    err_noisy = np.sqrt(np.mean((counts - expected) ** 2))
    err_out = np.sqrt(np.mean((out - expected) ** 2))
    assert err_out < 0.7 * err_noisy


def test_anscombe_pair():
    counts = np.random.default_rng(RNG_SEED).poisson(20.0, (200, 500))
    stabilised = denoise.anscombe(counts.astype(np.uint16))
    assert stabilised.dtype == np.float32
    assert abs(float(stabilised.std()) - 1.0) < 0.03
    assert float(
        denoise.inverse_anscombe(np.full((1, 1), stabilised.mean(), np.float64))[0, 0]
    ) == pytest.approx(20.0, abs=0.05)
    assert float(denoise.inverse_anscombe(np.zeros((2, 2))).min()) == 0.0


# --- oracles --------------------------------------------------------------------------------


def test_nl_means_matches_skimage(noisy):
    out = denoise.nl_means(noisy, sigma=20.0, h=0.7, patch_size=5, patch_distance=6)
    expected = restoration.denoise_nl_means(
        noisy, patch_size=5, patch_distance=6, h=14.0, sigma=20.0, fast_mode=True
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-3)


def test_nl_means_estimates_sigma_once_over_the_stack(clean):
    stack = _stack(clean)
    expected_sigma = np.mean([restoration.estimate_sigma(f) for f in stack])
    assert denoise.estimate_noise(stack) == pytest.approx(expected_sigma, rel=1e-6)
    out = denoise.nl_means(stack, patch_size=5, patch_distance=4)
    again = denoise.nl_means(stack, patch_size=5, patch_distance=4, sigma=expected_sigma)
    np.testing.assert_allclose(out, again, rtol=1e-6)


def test_tv_matches_skimage_on_unit_range(noisy):
    out = denoise.tv(noisy, weight=0.1, data_range=255.0)
    expected = 255.0 * restoration.denoise_tv_chambolle(noisy / 255.0, weight=0.1)
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=0.05)
    # default data_range = max - min of the input, computed once
    span = float(noisy.max() - noisy.min())
    np.testing.assert_allclose(
        denoise.tv(noisy, weight=0.1), denoise.tv(noisy, weight=0.1, data_range=span), atol=1e-4
    )


def test_wavelet_matches_skimage(noisy):
    out = denoise.wavelet(noisy, sigma=20.0, method="VisuShrink", family="db2")
    expected = restoration.denoise_wavelet(noisy, sigma=20.0, method="VisuShrink", wavelet="db2")
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-3)


def test_estimate_noise_matches_skimage(noisy):
    assert denoise.estimate_noise(noisy) == pytest.approx(
        restoration.estimate_sigma(noisy), rel=1e-6
    )
    stack = np.stack([noisy, noisy * 2])
    assert denoise.estimate_noise(stack, plane=1) == pytest.approx(
        restoration.estimate_sigma(noisy * 2), rel=1e-6
    )


def test_psnr_and_ssim_match_skimage(clean, noisy):
    assert denoise.psnr(noisy, reference=clean) == pytest.approx(
        metrics.peak_signal_noise_ratio(clean, noisy, data_range=float(clean.max() - clean.min())),
        rel=1e-6,
    )
    assert denoise.psnr(noisy, reference=clean, data_range=255.0) == pytest.approx(
        _psnr(noisy, clean), rel=1e-6
    )
    expected = metrics.structural_similarity(
        clean.astype(float), noisy.astype(float), data_range=255.0
    )
    assert denoise.ssim(noisy, reference=clean, data_range=255.0) == pytest.approx(
        expected, rel=1e-6
    )
    stack, ref = np.stack([noisy, clean]), np.stack([clean, clean])
    lazy = denoise.ssim(
        da.from_array(stack, chunks=(1, 50, 70)),
        reference=da.from_array(ref, chunks=(2, 64, 64)),
        data_range=255.0,
    )
    assert lazy == pytest.approx((expected + 1.0) / 2, rel=1e-6)
    assert denoise.psnr(clean, reference=clean) == np.inf


def test_richardson_lucy_and_wiener_match_skimage_and_sharpen(clean):
    blurred = ndi.gaussian_filter(clean, 2.0)
    psf = denoise.gaussian_psf(2.0)
    rl = denoise.richardson_lucy(blurred, sigma=2.0, num_iter=20)
    pad = 2 * psf.shape[0]  # the oracle on the same reflect-extended frame, cropped back
    oracle = restoration.richardson_lucy(np.pad(blurred, pad, mode="reflect"), psf, num_iter=20, clip=False)
    np.testing.assert_allclose(rl, oracle[pad:-pad, pad:-pad], rtol=1e-4, atol=1e-2)
    # away from the border it is scikit-image's zero-padded result too
    inner = (slice(40, -40),) * 2
    np.testing.assert_allclose(rl[inner], restoration.richardson_lucy(blurred, psf, num_iter=20, clip=False)[inner],
                               rtol=1e-3, atol=1e-1)
    wn = denoise.wiener(
        blurred, psf=psf * 5, balance=0.01
    )  # any positive scale: the PSF is normalised
    np.testing.assert_allclose(
        wn, restoration.wiener(blurred, psf, 0.01, clip=False), rtol=1e-4, atol=1e-2
    )
    inner = (slice(16, -16), slice(16, -16))
    for out in (rl, wn):
        assert out.dtype == np.float32
        assert _psnr(out[inner], clean[inner]) > _psnr(blurred[inner], clean[inner]) + 1.0


# --- lifting and laziness ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "func, params",
    [
        (denoise.nl_means, {"patch_size": 5, "patch_distance": 4, "sigma": 20.0}),
        (denoise.tv, {"weight": 0.1, "data_range": 255.0}),
        (denoise.wavelet, {"sigma": 20.0}),
        (denoise.richardson_lucy, {"sigma": 1.0, "num_iter": 5}),
    ],
)
def test_dask_stack_with_awkward_chunks_equals_eager_loop(func, params, clean):
    stack = _stack(clean)
    lazy = func(da.from_array(stack, chunks=(2, 50, 70)), **params)
    assert isinstance(lazy, da.Array) and lazy.dtype == np.float32
    expected = np.stack([func(frame, **params) for frame in stack])
    np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-5, atol=1e-3)


def test_dtype_rule(clean):
    assert denoise.tv(clean.astype(np.uint8)).dtype == np.float32
    assert denoise.tv(clean.astype(np.float64)).dtype == np.float64
    assert denoise.wiener(clean.astype(np.uint16)).dtype == np.float32


# --- invalid parameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda x: denoise.nl_means(x, h=-1.0), ValueError, "h"),
        (lambda x: denoise.nl_means(x, patch_size=0), ValueError, "patch_size"),
        (lambda x: denoise.nl_means(x, sigma=-2.0), ValueError, "sigma"),
        (lambda x: denoise.tv(x, weight="strong"), TypeError, "weight"),
        (lambda x: denoise.wavelet(x, method="SureShrink"), ValueError, "method"),
        (lambda x: denoise.psnr(x, reference=x[:, :10]), ValueError, "reference"),
        (lambda x: denoise.richardson_lucy(x, psf=-np.ones((3, 3))), ValueError, "psf"),
        (lambda x: denoise.richardson_lucy(x, num_iter=0), ValueError, "num_iter"),
        (lambda x: denoise.wiener(x, balance=0.0), ValueError, "balance"),
        (lambda x: denoise.tv(x.astype(np.complex64)), TypeError, "dtype"),
        (lambda x: denoise.estimate_noise(x, plane=5), ValueError, "plane"),
    ],
)
def test_invalid_parameters_name_the_parameter(call, error, name, noisy):
    with pytest.raises(error, match=name):
        call(np.stack([noisy, noisy]))


# --- constant images and zero noise (issue 9) --------------------------------------------------

DENOISERS = ["nl_means", "tv", "wavelet", "bm3d"]


def _denoiser(name):
    if name == "bm3d":
        pytest.importorskip("bm3d")
    return getattr(denoise, name)


@pytest.mark.parametrize("anscombe", [False, True])
@pytest.mark.parametrize("value", [0, 7])
@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
@pytest.mark.parametrize("name", DENOISERS)
def test_a_constant_image_comes_back_unchanged(name, dtype, value, anscombe):
    """A constant image has no noise: it is returned as is (it once came back all NaN: 0/0 noise)."""
    flat = np.full((40, 48), value, dtype)
    out = _denoiser(name)(flat, anscombe=anscombe)
    expected_dtype = np.float64 if dtype == np.float64 else np.float32
    assert out.dtype == expected_dtype
    np.testing.assert_array_equal(out, flat.astype(expected_dtype))
    assert not np.shares_memory(out, flat)


@pytest.mark.parametrize("name", DENOISERS)
def test_a_constant_frame_in_a_stack_is_unchanged_and_the_others_denoised(name, noisy):
    frame = noisy[:48, :48]
    stack = np.stack([np.zeros_like(frame), frame])
    func = _denoiser(name)
    params = {} if name == "tv" else {"sigma": 20.0}
    out = func(da.from_array(stack, chunks=(1, 48, 48)), **params).compute()
    np.testing.assert_array_equal(out[0], 0)
    # the bm3d package itself is not bit-reproducible (its native code differs by up to ~0.02 on
    # 0-255 data between identical calls), so it is compared with a matching tolerance
    np.testing.assert_allclose(out[1], func(frame, **params), atol=0.1 if name == "bm3d" else 1e-4)
    assert np.abs(out[1] - frame).mean() > 1  # the noisy frame was denoised


@pytest.mark.parametrize("name", ["nl_means", "wavelet", "bm3d"])
def test_sigma_zero_means_no_noise(name, noisy):
    """skimage's wavelet thresholds are 0/0 with sigma=0 (NaN on two thirds of the camera)."""
    out = _denoiser(name)(noisy[:48, :48], sigma=0.0)
    np.testing.assert_array_equal(out, noisy[:48, :48])


def test_estimate_noise_of_a_flat_image_is_zero_and_nan_pixels_stay_visible(noisy):
    assert denoise.estimate_noise(np.zeros((32, 32))) == 0.0
    assert denoise.estimate_noise(np.zeros((2, 32, 32), np.uint16)) == 0.0
    holed = noisy.copy()
    holed[3, 3] = np.nan
    assert np.isnan(denoise.estimate_noise(holed))  # not silently "noise-free"


@pytest.mark.gpu
def test_gpu_matches_cpu(noisy):
    cp = pytest.importorskip("cupy")
    from napari_stacklab import _backend

    if not _backend.gpu_available():
        pytest.skip("no CUDA device")
    gpu = denoise.tv(cp.asarray(noisy), weight=0.1, data_range=255.0)
    np.testing.assert_allclose(
        cp.asnumpy(gpu), denoise.tv(noisy, weight=0.1, data_range=255.0), rtol=1e-3, atol=0.05
    )


def test_richardson_lucy_keeps_a_flat_field_flat_up_to_the_edges():
    flat = np.full((40, 50), 7.0)
    out = denoise.richardson_lucy(flat, sigma=2.0, num_iter=20)
    np.testing.assert_allclose(out, 7.0, rtol=1e-4)


def test_psnr_and_ssim_compare_every_frame_with_one_reference_frame(clean, noisy):
    stack = np.stack([noisy, noisy[::-1], noisy + 5])
    repeated = np.broadcast_to(clean, stack.shape).copy()
    assert denoise.psnr(stack, reference=clean) == pytest.approx(denoise.psnr(stack, reference=repeated), rel=1e-12)
    assert denoise.ssim(stack, reference=clean) == pytest.approx(denoise.ssim(stack, reference=repeated), rel=1e-12)
    lazy = da.from_array(stack, chunks=(1,) + stack.shape[1:])
    assert denoise.ssim(lazy, reference=clean) == pytest.approx(denoise.ssim(stack, reference=clean), rel=1e-12)
    with pytest.raises(ValueError, match="reference must have the frame shape"):
        denoise.psnr(stack, reference=clean[:10])
