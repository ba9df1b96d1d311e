"""Background removal: trimaps, alpha matting against a known soft-edged disk, compositing."""

import sys

import cv2
import numpy as np
import pytest
from skimage import data, morphology

from napari_stacklab import matting
from napari_stacklab.matting import (
    alpha_matte,
    extract_subject,
    postprocess_mask,
    remove_background,
    trimap_from_mask,
    trimap_from_thresholds,
)

pytest.importorskip("pymatting")

FG_COLOUR = np.array([220.0, 90.0, 40.0])
BG_COLOUR = np.array([30.0, 120.0, 200.0])


def _cv2_erode(mask, radius):
    """OpenCV erosion with a disk (its default border value does not erode from the image edge)."""
    return cv2.erode(mask.astype(np.uint8), morphology.disk(radius).astype(np.uint8)).astype(bool)


def _cv2_dilate(mask, radius):
    return cv2.dilate(mask.astype(np.uint8), morphology.disk(radius).astype(np.uint8)).astype(bool)


@pytest.fixture(scope="module")
def soft_disk():
    """uint8 RGB composite of a disk whose edge ramps linearly over 6 px, and its true alpha."""
    yy, xx = np.mgrid[:128, :128]
    radius = np.hypot(yy - 60.3, xx - 66.8)
    truth = np.clip((40 - radius) / 6 + 0.5, 0, 1)
    rng = np.random.default_rng(0)
    image = truth[..., None] * FG_COLOUR + (1 - truth[..., None]) * BG_COLOUR
    image = np.clip(np.rint(image + rng.normal(0, 1.0, image.shape)), 0, 255).astype(np.uint8)
    return image, truth


def test_trimap_from_mask_matches_morphology():
    mask = data.horse() == 0  # the horse is dark on white: True on the horse
    trimap = trimap_from_mask(mask, erode_size=4, dilate_size=6)
    np.testing.assert_array_equal(trimap == 1, _cv2_erode(mask, 4))
    np.testing.assert_array_equal(trimap == 0, ~_cv2_dilate(mask, 6))
    assert set(np.unique(trimap)) == {0.0, 0.5, 1.0}
    assert trimap.shape == mask.shape and trimap.dtype == np.float64


def test_trimap_from_thresholds_bright_and_dark():
    coins = data.coins()
    bright = trimap_from_thresholds(coins, foreground=150, background=80, erode_size=0)
    np.testing.assert_array_equal(bright == 1, coins >= 150)
    np.testing.assert_array_equal(bright == 0, coins <= 80)
    dark = trimap_from_thresholds(coins, foreground=80, background=150, erode_size=2)
    np.testing.assert_array_equal(dark == 1, _cv2_erode(coins <= 80, 2))
    rgb = data.astronaut()
    gray = rgb @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_array_equal(trimap_from_thresholds(rgb, foreground=200, background=20, erode_size=0) == 1,
                                  gray >= 200)


def test_postprocess_mask_matches_skimage():
    rng = np.random.default_rng(4)
    mask = rng.random((96, 96)) > 0.93
    mask[20:60, 20:60] = True
    mask[30:40, 30:40] = False  # an enclosed hole
    out = postprocess_mask(mask, fill_holes=True, min_size=20)
    # oracle: OpenCV flood fill of the background from outside (4-connected) ...
    outside = np.pad(~mask, 1, constant_values=True).astype(np.uint8)
    cv2.floodFill(outside, None, (0, 0), 2, flags=4)
    filled = (outside[1:-1, 1:-1] != 2)
    # ... then scikit-image's removal of objects of at most 19 pixels
    expected = morphology.remove_small_objects(filled, max_size=19, connectivity=1)
    np.testing.assert_array_equal(out, expected)
    assert out[35, 35] and out.dtype == bool
    np.testing.assert_array_equal(postprocess_mask(mask, fill_holes=False, min_size=0), mask)


@pytest.mark.parametrize("method", ["cf", "lkm"])
def test_alpha_close_to_truth_at_the_edge(soft_disk, method):
    image, truth = soft_disk
    before = image.copy()
    trimap = trimap_from_mask(truth > 0.5, erode_size=6, dilate_size=6)
    alpha = alpha_matte(image, trimap, method=method)
    band = trimap == 0.5
    error = np.abs(alpha - truth)[band]
    # noise of 1 grey level on a 190-level contrast: mean error < 0.03, worst pixel < 0.15
    assert error.mean() < 0.03
    assert error.max() < 0.15
    np.testing.assert_array_equal(alpha[trimap == 1], 1.0)
    np.testing.assert_array_equal(alpha[trimap == 0], 0.0)
    np.testing.assert_array_equal(image, before)


def test_alpha_on_gray_image(soft_disk):
    _, truth = soft_disk
    gray = (1000 + 3000 * truth).astype(np.uint16)  # counts, not [0, 1]
    alpha = alpha_matte(gray, trimap_from_mask(truth > 0.5, erode_size=5))
    assert np.abs(alpha - truth).mean() < 0.01


def test_extract_subject_backgrounds(soft_disk):
    image, truth = soft_disk
    rgba = extract_subject(image, truth, background="transparent")
    assert rgba.shape == image.shape[:2] + (4,) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., :3], image)
    np.testing.assert_array_equal(rgba[..., 3], np.rint(truth * 255).astype(np.uint8))
    white = extract_subject(image, truth, background="white")
    black = extract_subject(image, truth, background="black")
    expected_white = np.rint(truth[..., None] * image + (1 - truth[..., None]) * 255)
    np.testing.assert_array_equal(white, expected_white.astype(np.uint8))
    np.testing.assert_array_equal(black, np.rint(truth[..., None] * image).astype(np.uint8))
    assert (white[truth == 0] == 255).all() and (black[truth == 0] == 0).all()
    counts = np.linspace(0, 5000, 128 * 128).reshape(128, 128)  # float counts keep their scale
    rgba = extract_subject(counts.astype(np.float32), truth)
    assert rgba.dtype == np.float32 and rgba[..., 3].max() == 1.0
    np.testing.assert_allclose(rgba[..., 0], counts, rtol=1e-6)
    white = extract_subject(counts, truth, background="white")
    np.testing.assert_allclose(white[truth == 0], 5000.0)


def test_estimated_foreground_removes_background_tint(soft_disk):
    image, truth = soft_disk
    subject = extract_subject(image, truth, background="black", estimate_foreground=True)
    band = (truth > 0.3) & (truth < 0.7)
    colours = subject[band].astype(np.float64) / truth[band][:, None]
    # the estimated pure colour at the edge is within 10 grey levels of the true foreground colour
    assert np.abs(np.median(colours, axis=0) - FG_COLOUR).max() < 10


def test_remove_background_from_thresholds(soft_disk):
    image, truth = soft_disk
    gray = image @ np.array([0.299, 0.587, 0.114])
    fg_level, bg_level = np.percentile(gray[truth == 1], 5), np.percentile(gray[truth == 0], 95)
    threshold = (fg_level + bg_level) / 2
    foreground, background = (threshold, bg_level) if fg_level > bg_level else (threshold, bg_level)
    out = remove_background(image, foreground=foreground, background=background, erode_size=5,
                            new_background="white")
    assert set(out) == {"mask", "trimap", "alpha", "subject"}
    np.testing.assert_array_equal(out["mask"], (gray >= threshold) if fg_level > bg_level else (gray <= threshold))
    assert np.abs(out["alpha"] - truth).mean() < 0.01
    assert out["subject"].shape == image.shape and out["subject"].dtype == np.uint8


def test_remove_background_mask_only_with_labels(soft_disk):
    image, truth = soft_disk
    labels = np.zeros(truth.shape, np.int32)
    labels[truth > 0.5] = 3
    labels[2:4, 2:4] = 1  # a speck removed by min_size
    out = remove_background(image, mask=labels, mask_only=True, min_size=10, new_background="black")
    np.testing.assert_array_equal(out["mask"], truth > 0.5)
    np.testing.assert_array_equal(out["alpha"], (truth > 0.5).astype(float))
    np.testing.assert_array_equal(out["subject"][truth <= 0.5], 0)
    np.testing.assert_array_equal(out["subject"][truth > 0.5], image[truth > 0.5])


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda m, i: trimap_from_mask(m, erode_size=-1), ValueError, "erode_size"),
        (lambda m, i: trimap_from_mask(m, erode_size=2, dilate_size=1.5), TypeError, "dilate_size"),
        (lambda m, i: trimap_from_thresholds(i, foreground=10, background=10), ValueError, "foreground"),
        (lambda m, i: alpha_matte(i, m.astype(float), method="knn"), ValueError, "method"),
        (lambda m, i: alpha_matte(i, m[:10].astype(float)), ValueError, "trimap"),
        (lambda m, i: alpha_matte(i, m * 2.0), ValueError, "trimap"),
        (lambda m, i: extract_subject(i, m.astype(float), background="grey"), ValueError, "background"),
        (lambda m, i: extract_subject(i, m * 3.0), ValueError, "alpha"),
        (lambda m, i: extract_subject(np.ones((4, 4, 2)), np.ones((4, 4))), ValueError, "image"),
        (lambda m, i: postprocess_mask(m, min_size=-2), ValueError, "min_size"),
        (lambda m, i: postprocess_mask(m, fill_holes="yes"), TypeError, "fill_holes"),
        (lambda m, i: remove_background(i), ValueError, "foreground"),
    ],
)
def test_invalid_parameters_name_the_parameter(call, error, name):
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    image = np.where(mask, 200, 20).astype(np.uint8)
    with pytest.raises(error, match=name):
        call(mask, image)


def test_missing_pymatting_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymatting", None)
    trimap = np.full((8, 8), 0.5)
    trimap[0], trimap[-1] = 0, 1
    with pytest.raises(ImportError, match="pip install pymatting"):
        matting.alpha_matte(np.zeros((8, 8)), trimap)


def test_remove_background_is_a_registry_operation_that_replays(soft_disk, tmp_path):
    import napari_stacklab as sl
    from napari_stacklab import catalog
    from napari_stacklab.recipe import Recipe

    image, truth = soft_disk
    op = catalog.get("remove_background")
    assert op.output == "images" and op.parts == ("mask", "trimap", "alpha", "subject")
    assert op.param("mask").kind.__name__ == "ImageRef" and op.title == "Remove background"
    params = {"foreground": 100.0, "background": 60.0, "erode_size": 4, "new_background": "white"}
    direct = remove_background(image, **params)
    # a colour image named as such: the same result, the subject keeps its colour axis
    told = remove_background(image, rgb=True, **params)
    for key in direct:
        np.testing.assert_array_equal(told[key], direct[key])
    moved = remove_background(np.moveaxis(image, -1, 0), channel_axis=0, **params)
    np.testing.assert_array_equal(np.moveaxis(moved["subject"], 0, -1), direct["subject"])
    np.testing.assert_array_equal(moved["alpha"], direct["alpha"])
    # a recipe step, the drawn mask recorded by name, on an RGB Image: one Image per part, in its frame
    labels = (truth > 0.5).astype(np.uint8)
    recipe = Recipe.from_yaml(Recipe(steps=[{"op": "remove_background",
                                             "params": {"mask": {"layer": "drawn"}, "mask_only": True}}]).to_yaml())
    assert recipe.image_names == ("drawn",)
    photo = sl.io.Image(image, scale=(0.5, 0.5, 1.0), units=("um", "um", "pixel"), axis_labels=("y", "x", "s"))
    parts = recipe.run(photo, inputs={"drawn": labels})
    expected = remove_background(image, mask=labels, mask_only=True)
    assert set(parts) == set(op.parts)
    for key, part in parts.items():
        np.testing.assert_array_equal(np.asarray(part.data), expected[key])
    assert parts["alpha"].scale == (0.5, 0.5) and parts["alpha"].axis_labels == ("y", "x")
    assert parts["subject"].scale == (0.5, 0.5, 1.0) and parts["subject"].rgb
    with pytest.raises(ValueError, match="drawn"):
        recipe.run(photo)
