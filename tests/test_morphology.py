"""Morphology against scikit-image / SciPy, per frame, per volume and lazily with split frames."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import skimage.morphology as skmo
import skimage.segmentation as sks
from scipy import ndimage as ndi
from skimage import data

from napari_stacklab import morphology as mo


@pytest.fixture(scope="module")
def grey_stack():
    coins = data.coins()[:120, :160]
    return np.stack([coins, coins[::-1], coins[:, ::-1]])


@pytest.fixture(scope="module")
def mask_stack(grey_stack):
    return grey_stack > 110


NEIGHBOURHOOD = ["erosion", "dilation", "opening", "closing"]


@pytest.mark.parametrize("name", NEIGHBOURHOOD)
@pytest.mark.parametrize("footprint, radius", [("disk", 3), ("square", 2), ("diamond", 2)])
def test_grey_morphology_matches_skimage_and_splits_frames(name, footprint, radius, grey_stack):
    op = getattr(mo, name)
    element = mo.footprint_array(footprint, radius)
    eager = op(grey_stack, footprint=footprint, radius=radius)
    assert eager.dtype == grey_stack.dtype
    for frame, result in zip(grey_stack, eager):
        np.testing.assert_array_equal(result, getattr(skmo, name)(frame, element))
    lazy = op(da.from_array(grey_stack, chunks=(2, 37, 45)), footprint=footprint, radius=radius)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), eager)


@pytest.mark.parametrize("name", NEIGHBOURHOOD)
def test_binary_morphology_matches_skimage_and_splits_frames(name, mask_stack):
    op = getattr(mo, f"binary_{name}")
    eager = op(mask_stack, radius=3)
    assert eager.dtype == bool
    for frame, result in zip(mask_stack, eager):
        np.testing.assert_array_equal(result, getattr(skmo, f"binary_{name}")(frame, skmo.disk(3)))
    lazy = op(da.from_array(mask_stack, chunks=(1, 33, 70)), radius=3)
    np.testing.assert_array_equal(lazy.compute(), eager)
    labels_in = op(mask_stack.astype(np.uint16) * 7, radius=3)
    np.testing.assert_array_equal(labels_in, eager)


def test_ball_acts_on_volumes():
    rng = np.random.default_rng(0)
    volumes = ndi.gaussian_filter(rng.random((2, 10, 24, 24)), (0, 1, 1, 1)) > 0.5
    closed = mo.binary_closing(volumes, footprint="ball", radius=1)
    for volume, result in zip(volumes, closed):
        np.testing.assert_array_equal(result, skmo.binary_closing(volume, skmo.ball(1)))
    lazy = mo.binary_closing(da.from_array(volumes, chunks=(1, 5, 11, 24)), footprint="ball", radius=1)
    np.testing.assert_array_equal(lazy.compute(), closed)
    grey = mo.dilation(volumes.astype(np.uint8), footprint="cube", radius=1)
    np.testing.assert_array_equal(grey[0], ndi.grey_dilation(volumes[0].astype(np.uint8), size=(3, 3, 3)))


def test_morphological_gradient(grey_stack, mask_stack):
    gradient = mo.morphological_gradient(grey_stack, footprint="square", radius=1)
    for frame, result in zip(grey_stack, gradient):
        np.testing.assert_array_equal(result, ndi.morphological_gradient(frame, size=(3, 3)))
    lazy = mo.morphological_gradient(da.from_array(grey_stack, chunks=(1, 50, 50)), footprint="square", radius=1)
    np.testing.assert_array_equal(lazy.compute(), gradient)
    edges = mo.morphological_gradient(mask_stack[0])
    assert edges.dtype == bool and edges.sum() < mask_stack[0].sum()


def test_fill_holes(mask_stack):
    filled = mo.fill_holes(mask_stack)
    for frame, result in zip(mask_stack, filled):
        np.testing.assert_array_equal(result, ndi.binary_fill_holes(frame))
    lazy = mo.fill_holes(da.from_array(mask_stack, chunks=(1, 40, 40)))
    np.testing.assert_array_equal(lazy.compute(), filled)


def test_remove_small_objects_pixels_and_physical(mask_stack):
    cleaned = mo.remove_small_objects(mask_stack, max_size=50)
    assert cleaned.dtype == bool
    for frame, result in zip(mask_stack, cleaned):
        np.testing.assert_array_equal(result, skmo.remove_small_objects(frame, max_size=50))
    # 50 pixels of 0.5 x 0.5 um are 12.5 um^2
    np.testing.assert_array_equal(mo.remove_small_objects(mask_stack, max_size=12.5, spacing=(1.0, 0.5, 0.5)), cleaned)
    labels = ndi.label(mask_stack[0])[0]
    kept = mo.remove_small_objects(labels, max_size=50)
    assert kept.dtype == np.int32
    np.testing.assert_array_equal(kept, skmo.remove_small_objects(labels, max_size=50))
    lazy = mo.remove_small_objects(da.from_array(mask_stack, chunks=(1, 60, 60)), max_size=50)
    np.testing.assert_array_equal(lazy.compute(), cleaned)


def test_remove_small_holes(mask_stack):
    filled = mo.remove_small_holes(mask_stack, max_size=30, connectivity=2)
    for frame, result in zip(mask_stack, filled):
        np.testing.assert_array_equal(result, skmo.remove_small_holes(frame, max_size=30, connectivity=2))


def test_clear_border(mask_stack):
    cleared = mo.clear_border(mask_stack, buffer_size=2)
    assert cleared.dtype == bool
    for frame, result in zip(mask_stack, cleared):
        np.testing.assert_array_equal(result, sks.clear_border(frame, buffer_size=2))
    labels = ndi.label(mask_stack)[0]
    np.testing.assert_array_equal(mo.clear_border(labels)[1], sks.clear_border(labels[1]))
    lazy = mo.clear_border(da.from_array(mask_stack, chunks=(1, 50, 50)), buffer_size=2)
    np.testing.assert_array_equal(lazy.compute(), cleared)


def test_skeletonize(mask_stack):
    skeleton = mo.skeletonize(da.from_array(mask_stack, chunks=(1, 50, 50)))
    assert isinstance(skeleton, da.Array)
    np.testing.assert_array_equal(skeleton.compute()[2], skmo.skeletonize(mask_stack[2]))


def test_distance_transform_with_sampling(mask_stack):
    distance = mo.distance_transform(mask_stack, sampling=(2.0, 0.25, 0.5))
    assert distance.dtype == np.float32
    expected = ndi.distance_transform_edt(mask_stack[0], sampling=(0.25, 0.5))
    np.testing.assert_allclose(distance[0], expected, rtol=1e-6)
    assert mo.distance_transform(mask_stack[0].astype(np.float64)).dtype == np.float64
    volume = mo.distance_transform(mask_stack, mode="3d", sampling=1.0)
    np.testing.assert_allclose(volume, ndi.distance_transform_edt(mask_stack), rtol=1e-6)


def test_invalid_parameters(mask_stack):
    with pytest.raises(ValueError, match="footprint"):
        mo.erosion(mask_stack, footprint="star")
    with pytest.raises(ValueError, match="radius"):
        mo.dilation(mask_stack, radius=0)
    with pytest.raises(ValueError, match="footprint"):
        mo.binary_opening(mask_stack[0], footprint="ball")
    with pytest.raises(ValueError, match="connectivity"):
        mo.remove_small_objects(mask_stack, connectivity=3)
    with pytest.raises(ValueError, match="max_size"):
        mo.remove_small_holes(mask_stack, max_size=-1)
    with pytest.raises(ValueError, match="spacing"):
        mo.remove_small_objects(mask_stack, spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="spacing"):
        mo.remove_small_objects(mask_stack, spacing=(1.0,))
