"""Filters against their scikit-image / SciPy oracles, lazily and eagerly."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import color, data, exposure, feature, filters as skf, restoration

from napari_stacklab import filters as F


@pytest.fixture(scope="module")
def camera():
    return data.camera()[::2, ::2].copy()  # (256, 256) uint8


@pytest.fixture(scope="module")
def moon_stack():
    moon = data.moon()  # (512, 512) uint8
    return np.stack([moon[i * 40 : i * 40 + 100, i * 50 : i * 50 + 120] for i in range(3)]).astype(np.uint16) * 200


def _loop(func, stack, **params):
    return np.stack([func(frame, **params) for frame in stack])


# --------------------------------------------------------------------------- oracles

ORACLES = [
    ("mean_filter", {"size": 5}, lambda f: ndi.uniform_filter(f.astype(np.float32), 5), 1e-3),
    ("minimum_filter", {"size": 4}, lambda f: ndi.minimum_filter(f, 4), 0),
    ("maximum_filter", {"size": 3}, lambda f: ndi.maximum_filter(f, 3), 0),
    ("percentile_filter", {"percentile": 25, "size": 5}, lambda f: ndi.percentile_filter(f, 25, 5), 0),
    ("median", {"size": 5}, lambda f: ndi.median_filter(f, 5), 0),
    (
        "unsharp_mask",
        {"radius": 2, "amount": 1.5},
        lambda f: skf.unsharp_mask(f, radius=2, amount=1.5, preserve_range=True, channel_axis=None),
        1e-2,
    ),
    ("sobel", {}, lambda f: skf.sobel(f.astype(np.float32)), 1e-3),
    ("scharr", {"axis": "y"}, lambda f: skf.scharr(f.astype(np.float32), axis=0), 1e-3),
    ("prewitt", {"axis": "x"}, lambda f: skf.prewitt(f.astype(np.float32), axis=1), 1e-3),
    ("laplace", {}, lambda f: ndi.laplace(f.astype(np.float32)), 1e-3),
    ("gaussian_laplace", {"sigma": 2.5}, lambda f: ndi.gaussian_laplace(f.astype(np.float32), 2.5), 1e-3),
    (
        "difference_of_gaussians",
        {"low_sigma": 1, "high_sigma": 4},
        lambda f: skf.difference_of_gaussians(f.astype(np.float32), 1, 4),
        1e-2,
    ),
    ("canny", {"sigma": 2, "low_threshold": 10, "high_threshold": 30}, lambda f: feature.canny(f, 2, 10, 30), 0),
    ("equalize_hist", {"nbins": 128}, lambda f: exposure.equalize_hist(f, nbins=128), 1e-6),
    (  # in the frame's range: counts keep their scale (camera spans 0-255)
        "clahe",
        {"clip_limit": 0.02, "kernel_size": 32},
        lambda f: f.min() + np.ptp(f) * exposure.equalize_adapthist(f, kernel_size=32, clip_limit=0.02),
        0.5,
    ),
    ("fft_amplitude", {}, lambda f: np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(f.astype(np.float64))))), 1e-4),
]


@pytest.mark.parametrize("name, params, oracle, atol", ORACLES, ids=[o[0] for o in ORACLES])
def test_matches_oracle(camera, name, params, oracle, atol):
    out = getattr(F, name)(camera, **params)
    expected = oracle(camera)
    assert out.shape == camera.shape
    if atol == 0:
        np.testing.assert_array_equal(out, expected)
    else:
        np.testing.assert_allclose(out, expected, atol=atol, rtol=1e-5)


def test_bilateral_matches_skimage_on_unit_range_and_keeps_counts(camera):
    unit = (camera - camera.min()) / float(np.ptp(camera))  # exactly [0, 1]: no internal rescaling
    expected = restoration.denoise_bilateral(unit, sigma_spatial=2, sigma_color=0.1)
    np.testing.assert_allclose(F.bilateral(unit, sigma_spatial=2, sigma_color=0.1), expected, atol=1e-9)
    counts = camera.astype(np.uint16) * 40 + 1000
    span = float(np.ptp(counts))
    out = F.bilateral(counts, sigma_spatial=2, sigma_color=0.1 * span)  # sigma_color in counts
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected * span + counts.min(), rtol=1e-4, atol=span * 2e-3)


def test_butterworth_matches_skimage_and_gaussian_edge(camera):
    for cutoff, order in ((20.0, 2.0), (50.0, 3.0)):
        ratio = cutoff / camera.shape[1]
        np.testing.assert_allclose(
            F.lowpass(camera.astype(np.float64), cutoff=cutoff, order=order),
            skf.butterworth(camera.astype(np.float64), ratio, high_pass=False, order=order),
            atol=1e-8,
        )
        np.testing.assert_allclose(
            F.highpass(camera.astype(np.float64), cutoff=cutoff, order=order),
            skf.butterworth(camera.astype(np.float64), ratio, high_pass=True, order=order),
            atol=1e-8,
        )
    # a Gaussian low-pass in Fourier space is a (periodic) Gaussian blur with sigma = N / (2 pi cutoff)
    n = camera.shape[1]
    cutoff = 16.0
    out = F.lowpass(camera.astype(np.float64), cutoff=cutoff, edge="gaussian")
    np.testing.assert_allclose(out, ndi.gaussian_filter(camera.astype(np.float64), n / (2 * np.pi * cutoff), mode="wrap", truncate=8), atol=0.05)
    band = F.bandpass(camera, low_cutoff=4, high_cutoff=40, edge="gaussian")
    np.testing.assert_allclose(
        band, F.lowpass(camera, cutoff=40, edge="gaussian") - _gauss_both(camera, 4, 40), atol=1e-2
    )


def _gauss_both(image, low, high):
    # lowpass(high) * lowpass(low) in Fourier space, as a difference to build lowpass(high) * (1 - lowpass(low))
    spectrum = np.fft.rfft2(image.astype(np.float64))
    rows, cols = image.shape
    r2 = (np.fft.fftfreq(rows)[:, None] * cols) ** 2 + (np.fft.rfftfreq(cols)[None, :] * cols) ** 2
    response = np.exp(-r2 / (2 * high**2)) * np.exp(-r2 / (2 * low**2))
    return np.fft.irfft2(spectrum * response, s=image.shape)


def test_non_square_frames_are_round_in_physical_frequency():
    # a cosine with a period of 8 pixels is cut by the same cut-off along y and x
    y, x = np.mgrid[:64, :128]
    along_x = np.cos(2 * np.pi * x / 8)
    along_y = np.cos(2 * np.pi * y / 8)
    kept_x = np.ptp(F.lowpass(along_x, cutoff=128 / 8, order=4))
    kept_y = np.ptp(F.lowpass(along_y, cutoff=128 / 8, order=4))
    assert kept_x == pytest.approx(1.0, abs=1e-6) and kept_y == pytest.approx(1.0, abs=1e-6)  # response 1/2 at the cut-off


def test_intensity_transforms(camera):
    unit = camera.astype(np.float64) / 255
    np.testing.assert_allclose(F.adjust_gamma(unit, gamma=0.6, vmax=1), exposure.adjust_gamma(unit, 0.6), atol=1e-12)
    out = F.adjust_gamma(camera, gamma=2)
    np.testing.assert_allclose(out, 255 * (camera / 255.0) ** 2, rtol=1e-5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(F.adjust_gain(camera, gain=3, offset=-5), camera * 3.0 - 5, rtol=1e-6)
    # the log keeps the range: 0 and the maximum (255 here) are fixed points
    expected = 2 * 255 * np.log1p(camera.astype(np.float64)) / np.log1p(255)
    np.testing.assert_allclose(F.adjust_log(camera, gain=2), expected, rtol=1e-6)
    np.testing.assert_allclose(F.adjust_log(camera, vmax=1000), 1000 * np.log1p(camera.astype(np.float64)) / np.log1p(1000),
                               rtol=1e-6)


def test_rescale_percentile_once_over_the_stack(moon_stack):
    low, high = np.percentile(moon_stack, [2, 98])
    out = F.rescale_percentile(moon_stack, low=2, high=98)
    np.testing.assert_allclose(out, np.clip((moon_stack - low) / (high - low), 0, 1), atol=1e-6)
    assert out.dtype == np.float32 and out.min() == 0 and out.max() == 1
    lazy = F.rescale_percentile(da.from_array(moon_stack, chunks=(1, 37, 50)), low=2, high=98)
    assert isinstance(lazy, da.Array)
    bin_width = (moon_stack.max() - moon_stack.min()) / 65536
    np.testing.assert_allclose(lazy.compute(), out, atol=2 * bin_width / (high - low))
    plane_low, plane_high = np.percentile(moon_stack[1], [2, 98])
    np.testing.assert_allclose(
        F.rescale_percentile(moon_stack, low=2, high=98, plane=1)[1],
        np.clip((moon_stack[1] - plane_low) / (plane_high - plane_low), 0, 1),
        atol=1e-6,
    )
    np.testing.assert_allclose(F.rescale_percentile(moon_stack, vmin=0, vmax=10000), np.clip(moon_stack / 1e4, 0, 1), atol=1e-6)


def test_match_histograms_to_reference(moon_stack):
    reference = data.camera()[:100, :120]
    out = F.match_histograms(moon_stack, reference=reference)
    for frame, matched in zip(moon_stack, out):
        np.testing.assert_allclose(matched, exposure.match_histograms(frame, reference), atol=1e-4)
    lazy = F.match_histograms(da.from_array(moon_stack, chunks=(2, 50, 60)), reference=da.from_array(reference))
    np.testing.assert_allclose(lazy.compute(), out)


def test_match_histograms_to_a_reference_stack_uses_its_pooled_histogram(moon_stack):
    """A stack (e.g. the first frames of a bleaching time-lapse) as reference: was an unclear scikit-image error."""
    reference = moon_stack[:2][:, ::-1]
    out = F.match_histograms(moon_stack, reference=reference)
    pooled = reference.reshape(1, -1)
    for frame, matched in zip(moon_stack, out):
        np.testing.assert_allclose(matched, exposure.match_histograms(frame, pooled), atol=1e-4)
    np.testing.assert_allclose(F.match_histograms(moon_stack, reference=reference.ravel()), out)


def test_adjust_saturation_rgb():
    rgb = data.astronaut()[::4, ::4]  # (128, 128, 3) uint8
    out = F.adjust_saturation(rgb, factor=1.7)
    hsv = color.rgb2hsv(rgb)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.7, 0, 1)
    np.testing.assert_allclose(out, color.hsv2rgb(hsv) * 255, atol=1e-2)
    np.testing.assert_allclose(F.adjust_saturation(rgb, factor=1.0), rgb, atol=1e-3)
    grey = F.adjust_saturation(rgb, factor=0)
    np.testing.assert_allclose(grey[..., 0], grey[..., 2], atol=1e-3)
    stack = np.stack([rgb, rgb[::-1]])
    np.testing.assert_allclose(F.adjust_saturation(da.from_array(stack, chunks=(1, 50, 50, 3)), factor=1.7).compute()[0], out, atol=1e-4)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 90, np.uint8)], axis=-1)
    with_alpha = F.adjust_saturation(rgba, factor=1.7)
    np.testing.assert_allclose(with_alpha[..., :3], out, atol=1e-4)
    assert (with_alpha[..., 3] == 90).all()
    with pytest.raises(ValueError, match="RGB"):
        F.adjust_saturation(np.zeros((8, 8, 5)))


# --------------------------------------------------------------------------- lazy == loop

LAZY = [
    ("gaussian", {"sigma": (2.0, 1.0)}),
    ("mean_filter", {"size": 7}),
    ("minimum_filter", {"size": 5}),
    ("maximum_filter", {"size": 5}),
    ("percentile_filter", {"percentile": 80, "size": 5}),
    ("bilateral", {"sigma_spatial": 1.5, "sigma_color": 3000}),
    ("unsharp_mask", {"radius": 1.5, "amount": 2}),
    ("sobel", {}),
    ("scharr", {"axis": "x"}),
    ("prewitt", {"axis": "y"}),
    ("laplace", {}),
    ("gaussian_laplace", {"sigma": 1.5}),
    ("difference_of_gaussians", {"low_sigma": 1}),
    ("canny", {"sigma": 1.5, "use_quantiles": True, "low_threshold": 0.7, "high_threshold": 0.9}),
    ("adjust_gamma", {"gamma": 0.5}),
    ("adjust_gain", {"gain": 0.5, "offset": 3}),
    ("adjust_log", {}),
    ("clahe", {"kernel_size": 20}),
    ("equalize_hist", {}),
    ("lowpass", {"cutoff": 10}),
    ("highpass", {"cutoff": 5, "edge": "gaussian"}),
    ("bandpass", {"low_cutoff": 3, "high_cutoff": 30}),
    ("fft_amplitude", {}),
]


@pytest.mark.parametrize("name, params", LAZY, ids=[n for n, _ in LAZY])
def test_lazy_with_frame_splitting_chunks_equals_loop(moon_stack, name, params):
    func = getattr(F, name)
    eager = func(moon_stack, **params)
    loop = _loop(func, moon_stack, **params) if name not in ("adjust_gamma", "adjust_log") else eager
    np.testing.assert_allclose(eager, loop, rtol=1e-5, atol=1e-3)
    lazy = func(da.from_array(moon_stack, chunks=(2, 37, 45)), **params)
    assert isinstance(lazy, da.Array) and lazy.dtype == eager.dtype and lazy.shape == eager.shape
    np.testing.assert_allclose(lazy.compute(), eager, rtol=1e-5, atol=1e-2)


# --------------------------------------------------------------------------- dtype rules and validation


@pytest.mark.parametrize("name", ["mean_filter", "sobel", "unsharp_mask", "lowpass", "adjust_gain", "clahe"])
@pytest.mark.parametrize("dtype, expected", [(np.uint8, np.float32), (np.uint16, np.float32), (np.float64, np.float64)])
def test_float_dtype_rule(name, dtype, expected):
    image = (np.arange(64).reshape(8, 8) % 7).astype(dtype)
    assert getattr(F, name)(image).dtype == expected


def test_rank_filters_keep_dtype_and_counts():
    image = (np.arange(64).reshape(8, 8) * 900).astype(np.uint16)
    for func in (F.minimum_filter, F.maximum_filter, F.percentile_filter):
        out = func(image)
        assert out.dtype == np.uint16 and out.max() <= image.max()
    assert F.unsharp_mask(image).max() > 50000  # counts never rescaled to [0, 1]


@pytest.mark.parametrize(
    "func, params, error, words",
    [
        (F.mean_filter, {"size": 0}, ValueError, "size"),
        (F.percentile_filter, {"percentile": 120}, ValueError, "percentile"),
        (F.bilateral, {"sigma_color": -1}, ValueError, "sigma_color"),
        (F.sobel, {"axis": "z"}, ValueError, "axis"),
        (F.difference_of_gaussians, {"low_sigma": 3, "high_sigma": 2}, ValueError, "high_sigma"),
        (F.canny, {"use_quantiles": True, "low_threshold": 5}, ValueError, "low_threshold"),
        (F.canny, {"low_threshold": 50, "high_threshold": 10}, ValueError, "high_threshold"),
        (F.rescale_percentile, {"low": 90, "high": 10}, ValueError, "high"),
        (F.adjust_gamma, {"gamma": 0}, ValueError, "gamma"),
        (F.clahe, {"clip_limit": "high"}, TypeError, "clip_limit"),
        (F.lowpass, {"edge": "box"}, ValueError, "edge"),
        (F.lowpass, {"cutoff": 0}, ValueError, "cutoff"),
        (F.bandpass, {"low_cutoff": 30, "high_cutoff": 3}, ValueError, "high_cutoff"),
        (F.match_histograms, {"reference": [1, 2]}, TypeError, "reference"),
        (F.gaussian, {"sigma": (1, "a")}, TypeError, "sigma"),
    ],
)
def test_invalid_parameters_name_the_parameter(func, params, error, words):
    with pytest.raises(error, match=words):
        func(np.ones((16, 16), np.uint8), **params)


def test_input_never_modified(moon_stack):
    frozen = moon_stack.copy()
    for name, params in LAZY:
        getattr(F, name)(moon_stack, **params)
    np.testing.assert_array_equal(moon_stack, frozen)


# --------------------------------------------------------------------------- dtype-independent canny (issue 9)


def test_canny_defaults_are_a_fraction_of_the_data_range_in_any_dtype(camera):
    """Default thresholds: 10 % / 20 % of the data's max - min, not of the dtype's maximum.

    scikit-image's own defaults gave the same counts as uint8 and float64 different
    edges, and no edges at all for 12-bit data stored as uint16.
    """
    counts = camera[:128, :128] // 3  # 0..85: a narrow range in any dtype
    span = float(counts.max()) - float(counts.min())
    expected = feature.canny(counts.astype(np.float64), 1.0, 0.1 * span, 0.2 * span)
    assert expected.sum() > 100
    for dtype in (np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64):
        np.testing.assert_array_equal(F.canny(counts.astype(dtype)), expected, err_msg=str(np.dtype(dtype)))
    twelve_bit = camera.astype(np.uint16) * 16  # 0..4080 in uint16, the same picture
    np.testing.assert_array_equal(F.canny(twelve_bit), F.canny(camera))
    full = camera.copy()
    full[0, 0] = 0  # an 8-bit image spanning 0-255 gets scikit-image's default thresholds
    np.testing.assert_array_equal(F.canny(full), feature.canny(full))
    assert not F.canny(np.full((32, 32), 7.0)).any()


def test_canny_default_range_is_global_over_the_stack_and_lazy_matches(moon_stack):
    stack = moon_stack.copy()
    stack[1] //= 4  # a dim frame: same thresholds as its neighbours, so fewer edges
    span = float(stack.max()) - float(stack.min())
    eager = F.canny(stack, sigma=1.5)
    np.testing.assert_array_equal(eager, _loop(F.canny, stack, sigma=1.5, low_threshold=0.1 * span, high_threshold=0.2 * span))
    assert eager[1].sum() < eager[0].sum()
    lazy = F.canny(da.from_array(stack, chunks=(2, 60, 70)), sigma=1.5)
    np.testing.assert_array_equal(lazy.compute(), eager)
    quantiles = F.canny(stack, sigma=1.5, use_quantiles=True)  # None: the 0.1 / 0.2 quantiles per frame
    np.testing.assert_array_equal(quantiles[0], feature.canny(stack[0], 1.5, 0.1, 0.2, use_quantiles=True))


@pytest.mark.gpu
def test_gpu_matches_cpu(moon_stack):
    cp = pytest.importorskip("cupy")
    for name, params in LAZY:
        if name in ("bilateral", "clahe", "canny"):
            continue  # need cuCIM; covered when it is installed
        func = getattr(F, name)
        on_gpu = func(cp.asarray(moon_stack), **params)
        assert isinstance(on_gpu, cp.ndarray)
        np.testing.assert_allclose(on_gpu.get(), func(moon_stack, **params), rtol=1e-4, atol=1e-2)
