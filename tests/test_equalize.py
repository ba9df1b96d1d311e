"""equalize_set and laplacian_variance: oracles, tolerances, laziness, validation."""

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data, exposure

from napari_stacklab.equalize import equalize_set, laplacian_variance



@pytest.fixture(scope="module")
def image_set():
    """Three real images of different sizes and levels (uint8, uint8, float64)."""
    camera = data.camera()[::2, ::2]  # 256 x 256
    coins = data.coins()  # 303 x 384
    moon = data.moon()[100:356, 50:306].astype(np.float64) * 3.0 + 40.0
    return [camera, coins, moon]


def _copies(images):
    return [np.array(image, copy=True) for image in images]


@pytest.mark.parametrize("reference", [0, 2, -1])
def test_meanstd_matches_reference_levels(image_set, reference):
    before = _copies(image_set)
    out = equalize_set(image_set, reference=reference, method="meanstd")
    ref = image_set[reference].astype(np.float64)
    for result in out:
        np.testing.assert_allclose(result.mean(dtype=np.float64), ref.mean(), rtol=1e-5)
        np.testing.assert_allclose(result.std(dtype=np.float64), ref.std(), rtol=1e-4)
    for image, copy in zip(image_set, before):
        np.testing.assert_array_equal(image, copy)


def test_meanstd_median_target(image_set):
    out = equalize_set(image_set, reference="median", method="meanstd")
    target_mean = np.median([im.astype(np.float64).mean() for im in image_set])
    target_std = np.median([im.astype(np.float64).std() for im in image_set])
    for result in out:
        np.testing.assert_allclose(result.mean(dtype=np.float64), target_mean, rtol=1e-5)
        np.testing.assert_allclose(result.std(dtype=np.float64), target_std, rtol=1e-4)


def test_output_dtype_and_shape(image_set):
    out = equalize_set(image_set)
    assert [o.dtype for o in out] == [np.float32, np.float32, np.float64]
    assert [o.shape for o in out] == [im.shape for im in image_set]


def test_histogram_reference_matches_skimage(image_set):
    out = equalize_set(image_set, reference=0, method="histogram")
    expected = exposure.match_histograms(image_set[1], image_set[0])
    np.testing.assert_allclose(out[1], expected, rtol=1e-6)
    thresholds = np.arange(0, 256, 4) + 0.5
    ref_cdf = np.searchsorted(np.sort(image_set[0].ravel()), thresholds) / image_set[0].size
    for image, result in zip(image_set, out):
        # Kolmogorov-Smirnov distance to the reference histogram (on 4-level steps): matching maps
        # each source value to one output value, so it can only be off by the largest tie
        # (moon has 9 % of its pixels at one value) plus 1 %
        cdf = np.searchsorted(np.sort(result.ravel()), thresholds) / result.size
        largest_tie = np.unique(image, return_counts=True)[1].max() / image.size
        assert np.abs(cdf - ref_cdf).max() <= largest_tie + 0.01


def test_histogram_median_target(image_set):
    before = _copies(image_set)
    out = equalize_set(image_set, reference="median", method="histogram")
    levels = np.linspace(0, 1, 1025)
    target = np.median([np.quantile(im.astype(np.float64), levels) for im in image_set], axis=0)
    thresholds = np.linspace(target[0], target[-1], 60)
    target_cdf = np.interp(thresholds, target, levels)
    for image, result in zip(image_set, out):
        # Kolmogorov-Smirnov distance to the median histogram: off by at most the largest tie + 1 %
        cdf = np.searchsorted(np.sort(result.ravel()), thresholds) / result.size
        largest_tie = np.unique(image, return_counts=True)[1].max() / image.size
        assert np.abs(cdf - target_cdf).max() <= largest_tie + 0.01
    for image, copy in zip(image_set, before):
        np.testing.assert_array_equal(image, copy)


@pytest.mark.parametrize("reference", [0, "median"])
def test_sharpness_reaches_target(reference):
    rng = np.random.default_rng(1)
    base = data.camera()[100:300, 150:350].astype(np.float32)
    images = [
        ndi.gaussian_filter(base, 1.0),
        ndi.gaussian_filter(base, 2.0) + rng.normal(0, 0.5, base.shape).astype(np.float32),
        base,
    ]
    before = _copies(images)
    equalized = equalize_set(images, reference=reference, method="meanstd", sharpness=False)
    out = equalize_set(images, reference=reference, method="meanstd", sharpness=True, max_amount=50)
    lv = [laplacian_variance(e) for e in equalized]
    target = lv[0] if reference == 0 else float(np.median(lv))
    for result in out:
        np.testing.assert_allclose(laplacian_variance(result), target, rtol=0.02)
    # brightness/contrast are changed only by the sharpening itself: means stay within 1 %
    for result, eq in zip(out, equalized):
        np.testing.assert_allclose(result.mean(), eq.mean(), rtol=0.01)
    for image, copy in zip(images, before):
        np.testing.assert_array_equal(image, copy)


def test_stacks_are_equalized_frame_by_frame():
    rng = np.random.default_rng(2)
    a = rng.normal(10, 3, (3, 40, 50))
    b = rng.gamma(2.0, 5.0, (3, 30, 35))
    out = equalize_set([a, b], reference=0, method="histogram", sharpness=True)
    for i in range(3):
        single = equalize_set([a[i], b[i]], reference=0, method="histogram", sharpness=True)
        np.testing.assert_allclose(out[1][i], single[1], rtol=1e-10)
        np.testing.assert_allclose(out[0][i], single[0], rtol=1e-10)


@pytest.mark.parametrize("method", ["meanstd", "histogram"])
def test_dask_with_awkward_chunks_matches_eager(method):
    rng = np.random.default_rng(3)
    a = rng.normal(100, 20, (3, 45, 60)).astype(np.float32)
    b = (rng.gamma(2.0, 10.0, (3, 45, 60))).astype(np.uint16)
    eager = equalize_set([a, b], method=method, sharpness=True)
    lazy = equalize_set([da.from_array(a, chunks=(2, 17, 25)), da.from_array(b, chunks=(1, 30, 13))],
                        method=method, sharpness=True)
    for e, result in zip(eager, lazy):
        assert isinstance(result, da.Array)
        assert result.dtype == e.dtype
        np.testing.assert_allclose(result.compute(), e, rtol=1e-5, atol=1e-3)


def test_laplacian_variance_oracle_and_stacks():
    image = data.camera()
    expected = ndi.laplace(image.astype(np.float32)).astype(np.float64).var()
    np.testing.assert_allclose(laplacian_variance(image), expected, rtol=1e-6)
    stack = np.stack([image, ndi.gaussian_filter(image, 2)])
    values = laplacian_variance(da.from_array(stack, chunks=(1, 100, 300)))
    assert values.shape == (2,)
    np.testing.assert_allclose(values[0], expected, rtol=1e-6)
    assert values[1] < values[0] / 4


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"reference": 5}, ValueError, "reference"),
        ({"reference": "mean"}, ValueError, "reference"),
        ({"reference": 1.5}, TypeError, "reference"),
        ({"method": "clahe"}, ValueError, "method"),
        ({"sharpness": "yes"}, TypeError, "sharpness"),
        ({"sharpness_radius": 0}, ValueError, "sharpness_radius"),
        ({"max_amount": -1}, ValueError, "max_amount"),
        ({"max_amount": 200}, ValueError, "max_amount"),
    ],
)
def test_invalid_parameters_name_the_parameter(kwargs, error, name):
    with pytest.raises(error, match=name):
        equalize_set([np.ones((8, 8)), np.zeros((8, 8))], **kwargs)


def test_invalid_images():
    with pytest.raises(TypeError, match="images"):
        equalize_set(np.ones((8, 8)))
    with pytest.raises(ValueError, match="images"):
        equalize_set([])
    with pytest.raises(ValueError, match="leading"):
        equalize_set([np.ones((2, 8, 8)), np.ones((3, 8, 8))])
    with pytest.raises(TypeError, match=r"images\[1\]"):
        equalize_set([np.ones((8, 8)), np.ones((8, 8), complex)])
    with pytest.raises(ValueError, match=r"images\[0\]"):
        equalize_set([np.ones(8)])


# --- the two steps: targets read off a set, then each image brought to them ------------------------------
from napari_stacklab.equalize import N_QUANTILES, equalize_levels, equalize_targets  # noqa: E402
from napari_stacklab.recipe import Recipe  # noqa: E402


@pytest.mark.parametrize("reference", ["median", 1])
@pytest.mark.parametrize("method", ["meanstd", "histogram"])
def test_equalize_set_is_targets_then_levels_and_the_steps_replay_from_yaml(image_set, reference, method):
    out = equalize_set(image_set, reference=reference, method=method, sharpness=True)
    targets = equalize_targets(image_set, reference=reference, method=method, sharpness=True)
    for image, levels, expected in zip(image_set, targets, out):
        np.testing.assert_array_equal(equalize_levels(image, **levels), expected)
        # a recipe step (the reference image recorded by name), through YAML and back
        params = dict(levels)
        inputs = {}
        if "reference" in params:
            params["reference"] = {"layer": "ref"}
            inputs["ref"] = image_set[reference]
        recipe = Recipe.from_yaml(Recipe(steps=[{"op": "equalize_levels", "params": params}]).to_yaml())
        np.testing.assert_array_equal(recipe.run(image, inputs=inputs), expected)
    if method == "histogram" and reference == "median":
        assert len(targets[0]["target"][0]) == N_QUANTILES


def test_levels_bring_any_image_to_the_target():
    rng = np.random.default_rng(5)
    stack = rng.gamma(2.0, 10.0, (2, 40, 50))
    out = equalize_levels(stack, target=[[100.0, 5.0], [50.0, 2.0]])
    np.testing.assert_allclose(out.mean(axis=(1, 2)), [100.0, 50.0], rtol=1e-6)
    np.testing.assert_allclose(out.std(axis=(1, 2)), [5.0, 2.0], rtol=1e-5)
    same = equalize_levels(stack, target=[100.0, 5.0])  # one entry for every frame
    np.testing.assert_allclose(same.mean(axis=(1, 2)), [100.0, 100.0], rtol=1e-6)
    # a quantile function: the uniform distribution on [0, 1]
    uniform = equalize_levels(stack[0], method="histogram", target=np.linspace(0, 1, 101).tolist())
    np.testing.assert_allclose(np.quantile(uniform, [0.25, 0.5, 0.75]), [0.25, 0.5, 0.75], atol=0.01)
    sharp = equalize_levels(data.camera()[::4, ::4], target=[[100.0, 40.0]], sharpness=2 * 3000.0)
    np.testing.assert_allclose(laplacian_variance(sharp), 6000.0, rtol=1e-3)
    lazy = equalize_levels(da.from_array(stack, chunks=(1, 20, 25)), target=[[100.0, 5.0], [50.0, 2.0]])
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), out, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({}, "target"),
        ({"target": [[1.0, 2.0, 3.0]]}, "target"),
        ({"target": [[1.0, 2.0]] * 3}, "frame"),
        ({"target": [[1.0, -2.0]]}, "standard deviation"),
        ({"target": [["a", "b"]]}, "target"),
        ({"method": "histogram"}, "reference"),
        ({"method": "histogram", "target": [3.0, 2.0, 1.0]}, "decrease"),
        ({"method": "histogram", "target": [1.0, 2.0], "reference": np.ones((8, 8))}, "not both"),
        ({"method": "histogram", "reference": np.ones((3, 8, 8))}, "leading"),
        ({"target": [[1.0, 2.0]], "sharpness": -1.0}, "sharpness"),
        ({"target": [[1.0, 2.0]], "reference": np.ones((8, 8))}, "histogram"),
        ({"target": [[1.0, 2.0]], "method": "clahe"}, "method"),
    ],
)
def test_levels_refuse_wrong_targets_by_name(kwargs, words):
    with pytest.raises((TypeError, ValueError), match=words):
        equalize_levels(np.ones((2, 8, 8)) + np.arange(64).reshape(8, 8), **kwargs)


def test_colour_levels_and_targets():
    photo = data.astronaut()[::4, ::4]
    dim = (photo * 0.5).astype(np.uint8)
    targets = equalize_targets([photo, dim], reference=0, rgb=True)
    out = equalize_levels(dim, rgb=True, **targets[1])
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, equalize_set([photo, dim], reference=0, rgb=True)[1])
    rgba = np.concatenate([dim, np.full(dim.shape[:2] + (1,), 77, np.uint8)], axis=-1)
    with_alpha = equalize_levels(rgba, rgb=True, **targets[1])
    np.testing.assert_array_equal(with_alpha[..., :3], out)
    assert (with_alpha[..., 3] == 77).all()
    with pytest.raises(ValueError, match="colour"):
        equalize_levels(dim, rgb=True, method="histogram", reference=photo[..., 0])
