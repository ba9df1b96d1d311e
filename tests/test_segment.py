"""Thresholds, labeling and watershed against scikit-image, eager and lazy."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import skimage.filters as skf
import skimage.measure as skm
import skimage.segmentation as sks
from scipy import ndimage as ndi
from skimage import data
from skimage.feature import peak_local_max

from napari_stacklab import segment
from napari_stacklab.measure import points_to_markers


@pytest.fixture(scope="module")
def coins_stack():
    coins = data.coins()[:200, :256]
    return np.stack([coins, coins[::-1], coins[:, ::-1]])


def _two_disks(shift=0):
    yy, xx = np.mgrid[:60, :90]
    return ((yy - 30) ** 2 + (xx - 28 - shift) ** 2 < 18**2) | ((yy - 30) ** 2 + (xx - 60 - shift) ** 2 < 16**2)


# ----------------------------------------------------------------------------- global thresholds
@pytest.mark.parametrize("method", sorted(segment.THRESHOLD_METHODS))
def test_threshold_value_is_skimage_value(method, coins_stack):
    expected = getattr(skf, segment.THRESHOLD_METHODS[method])(coins_stack)
    assert segment.threshold_value(coins_stack, method=method) == pytest.approx(float(expected), abs=0)


@pytest.mark.parametrize("method", sorted(segment.THRESHOLD_METHODS))
def test_lazy_threshold_matches_in_memory_for_integers(method, coins_stack):
    lazy = da.from_array(coins_stack, chunks=(1, 70, 90))
    expected = segment.threshold_value(coins_stack, method=method)
    assert segment.threshold_value(lazy, method=method) == pytest.approx(expected, abs=0.5)


@pytest.mark.parametrize("method", ["otsu", "li", "yen", "triangle", "isodata", "mean"])
def test_lazy_threshold_float_within_one_bin(method):
    image = data.camera()[::2, ::2].astype(np.float32) * 0.37
    stack = np.stack([image, image.T])
    bin_width = (stack.max() - stack.min()) / 256
    expected = segment.threshold_value(stack, method=method)
    lazy = segment.threshold_value(da.from_array(stack, chunks=(1, 100, 64)), method=method)
    assert lazy == pytest.approx(float(expected), abs=float(bin_width))


def test_threshold_mask_and_plane(coins_stack):
    mask = segment.threshold(coins_stack, method="li")
    np.testing.assert_array_equal(mask, coins_stack > skf.threshold_li(coins_stack))
    from_plane = segment.threshold(coins_stack, method="otsu", plane=1)
    np.testing.assert_array_equal(from_plane, coins_stack > skf.threshold_otsu(coins_stack[1]))


def test_threshold_lazy_stays_lazy(coins_stack):
    lazy = da.from_array(coins_stack, chunks=(1, 100, 100))
    out = segment.threshold(lazy, method="yen")
    assert isinstance(out, da.Array) and out.dtype == bool
    np.testing.assert_array_equal(out.compute(), segment.threshold(coins_stack, method="yen"))


def test_threshold_invalid():
    image = data.coins()
    with pytest.raises(ValueError, match="method"):
        segment.threshold(image, method="magic")
    with pytest.raises(ValueError, match="value"):
        segment.threshold(image, method="manual")
    with pytest.raises(ValueError, match="method"):
        segment.threshold_value(np.r_[np.zeros(50), np.ones(50)].reshape(10, 10), method="minimum")


# ----------------------------------------------------------------------------- multi-Otsu
def test_multiotsu_classes_match_skimage():
    image = data.camera()[::2, ::2]
    thresholds = skf.threshold_multiotsu(image, classes=3)
    classes = segment.threshold_multiotsu(image, classes=3)
    assert classes.dtype == np.int32
    np.testing.assert_array_equal(classes, np.digitize(image, thresholds, right=True))
    off_threshold = ~np.isin(image, thresholds)
    np.testing.assert_array_equal(classes[off_threshold], np.digitize(image, thresholds)[off_threshold])


def test_multiotsu_lazy_and_given_thresholds(coins_stack):
    lazy = da.from_array(coins_stack, chunks=(1, 64, 100))
    out = segment.threshold_multiotsu(lazy, classes=4)
    assert isinstance(out, da.Array)
    np.testing.assert_array_equal(out.compute(), segment.threshold_multiotsu(coins_stack, classes=4))
    manual = segment.threshold_multiotsu(coins_stack, classes=3, thresholds=(50, 150))
    np.testing.assert_array_equal(manual, np.digitize(coins_stack, [50, 150], right=True))
    with pytest.raises(ValueError, match="thresholds"):
        segment.threshold_multiotsu(coins_stack, classes=3, thresholds=(150, 50))
    with pytest.raises(ValueError, match="classes"):
        segment.threshold_multiotsu(coins_stack, classes=9)


# ----------------------------------------------------------------------------- local thresholds
LOCAL = [
    (segment.threshold_local, {"block_size": 35, "offset": 2}, lambda im: skf.threshold_local(im, 35, offset=2)),
    (segment.threshold_local, {"block_size": 21, "method": "mean"}, lambda im: skf.threshold_local(im, 21, method="mean")),
    (segment.threshold_niblack, {"window_size": 25, "k": 0.1}, lambda im: skf.threshold_niblack(im, 25, 0.1)),
    # data.page spans 0-255, so the default r (half the data range) is scikit-image's 127.5
    (segment.threshold_sauvola, {"window_size": 25}, lambda im: skf.threshold_sauvola(im, 25, r=127.5)),
]


@pytest.mark.parametrize("func, params, oracle", LOCAL)
def test_local_thresholds_match_skimage_and_split_frames(func, params, oracle):
    page = data.page()
    stack = np.stack([page, page[::-1]])
    eager = func(stack, **params)
    for frame, result in zip(stack, eager):
        np.testing.assert_array_equal(result, frame > oracle(frame))
    lazy = func(da.from_array(stack, chunks=(1, 77, 150)), **params)
    assert isinstance(lazy, da.Array)
    # the local statistic is summed in a different order per chunk: only exact ties may flip
    ties = np.stack([np.abs(frame - oracle(frame)) < 1e-6 * 255 for frame in stack])
    np.testing.assert_array_equal(lazy.compute()[~ties], eager[~ties])


def test_sauvola_default_r_is_half_the_data_range_in_any_dtype():
    """r=None: half of max - min of the whole input (scikit-image: 1 for floats, half the dtype range
    for integers, so the same counts once gave 66 % different masks as uint8 and float64)."""
    page = data.page()[:120, :160]
    counts = page // 3  # 0..85
    r = 0.5 * (float(counts.max()) - float(counts.min()))
    expected = counts > skf.threshold_sauvola(counts.astype(np.float64), 15, 0.2, r=r)
    for dtype in (np.uint8, np.uint16, np.int32, np.float32, np.float64):
        np.testing.assert_array_equal(segment.threshold_sauvola(counts.astype(dtype)), expected, err_msg=str(np.dtype(dtype)))
    # an 8-bit page spanning 0-255 keeps scikit-image's default r = 127.5
    full = data.page()
    assert full.min() == 0 and full.max() == 255
    np.testing.assert_array_equal(segment.threshold_sauvola(full, window_size=25), full > skf.threshold_sauvola(full, 25))
    # one r for the whole stack, also lazily
    stack = np.stack([counts, counts // 2]).astype(np.float32)
    r = 0.5 * float(stack.max() - stack.min())
    eager = segment.threshold_sauvola(stack)
    for frame, result in zip(stack, eager):
        np.testing.assert_array_equal(result, frame > skf.threshold_sauvola(frame, 15, 0.2, r=r))
    lazy = segment.threshold_sauvola(da.from_array(stack, chunks=(1, 50, 70))).compute()
    assert np.mean(lazy != eager) < 1e-3  # the window sums differ in order per chunk: only ties may flip
    assert segment.threshold_sauvola(np.full((20, 20), 5.0)).all()  # flat and positive: above mean * (1 - k)


def test_local_threshold_invalid():
    with pytest.raises(ValueError, match="block_size"):
        segment.threshold_local(data.page(), block_size=20)
    with pytest.raises(ValueError, match="window_size"):
        segment.threshold_sauvola(data.page(), window_size=4)
    with pytest.raises(ValueError, match="block_size"):
        segment.threshold_local(data.page(), block_size=1)


# ----------------------------------------------------------------------------- labels
def test_label_2d_per_frame_matches_skimage(coins_stack):
    mask = coins_stack > 120
    labels = segment.label(mask)
    assert labels.dtype == np.int32
    for frame, result in zip(mask, labels):
        np.testing.assert_array_equal(result, skm.label(frame))
    four = segment.label(mask, connectivity=1)
    np.testing.assert_array_equal(four[0], skm.label(mask[0], connectivity=1))


def test_label_2d_lazy_per_frame(coins_stack):
    mask = coins_stack > 120
    lazy = segment.label(da.from_array(mask, chunks=(1, 50, 60)))
    assert isinstance(lazy, da.Array) and lazy.dtype == np.int32
    assert lazy.chunks[1:] == ((mask.shape[1],), (mask.shape[2],)), "whole frames per chunk"
    np.testing.assert_array_equal(lazy[2].compute(), skm.label(mask[2]))
    np.testing.assert_array_equal(lazy.compute(), segment.label(mask))


def test_label_3d_volumes():
    rng = np.random.default_rng(1)
    volumes = ndi.gaussian_filter(rng.random((2, 12, 30, 30)), (0, 1.5, 1.5, 1.5)) > 0.5
    labels = segment.label(volumes, mode="3d")
    for volume, result in zip(volumes, labels):
        np.testing.assert_array_equal(result, skm.label(volume))
    lazy = segment.label(da.from_array(volumes, chunks=(1, 5, 10, 30)), mode="3d", connectivity=1)
    np.testing.assert_array_equal(lazy.compute()[1], skm.label(volumes[1], connectivity=1))


def test_label_invalid():
    mask = np.ones((5, 5), bool)
    with pytest.raises(ValueError, match="connectivity"):
        segment.label(mask, connectivity=3)
    with pytest.raises(ValueError, match="mode"):
        segment.label(mask, mode="3d")
    with pytest.raises(ValueError, match="mode"):
        segment.label(mask, mode="4d")


# ----------------------------------------------------------------------------- watershed
def test_watershed_splits_touching_disks_like_skimage():
    mask = _two_disks()
    distance = ndi.distance_transform_edt(mask)
    coords = peak_local_max(distance, min_distance=10, labels=skm.label(mask))
    peaks = np.zeros(mask.shape, bool)
    peaks[tuple(coords.T)] = True
    expected = sks.watershed(-distance, ndi.label(peaks)[0], mask=mask)
    labels = segment.watershed(mask, min_distance=10)
    assert labels.dtype == np.int32 and labels.max() == 2
    np.testing.assert_array_equal(labels, expected)


def test_watershed_with_point_markers_on_a_stack():
    stack = np.stack([_two_disks(), _two_disks(shift=3)])
    markers = points_to_markers([[0, 30, 28], [0, 30, 60], [1, 30, 31], [1, 30, 63]], stack.shape)
    labels = segment.watershed(stack, markers=markers)
    for i in range(2):
        distance = ndi.distance_transform_edt(stack[i])
        np.testing.assert_array_equal(labels[i], sks.watershed(-distance, markers[i], mask=stack[i]))
    lazy = segment.watershed(da.from_array(stack, chunks=(1, 30, 45)), markers=markers)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), labels)
    frame_markers = segment.watershed(stack, markers=markers[0])
    np.testing.assert_array_equal(frame_markers[0], labels[0])
    with pytest.raises(ValueError, match="markers"):
        segment.watershed(stack, markers=markers[:, :10])


def test_watershed_intensity_landscape():
    image = data.coins()[:100, :100].astype(np.float32)
    gradient = skf.sobel(image)
    markers = np.zeros(image.shape, np.int32)
    markers[5, 5], markers[50, 50] = 1, 2
    np.testing.assert_array_equal(
        segment.watershed(gradient, markers=markers, landscape="intensity"), sks.watershed(gradient, markers)
    )


def test_expand_labels_matches_skimage_and_splits_frames():
    rng = np.random.default_rng(3)
    seeds = np.zeros((2, 90, 120), np.int32)
    for i in range(2):
        ys, xs = rng.integers(0, 90, 25), rng.integers(0, 120, 25)
        seeds[i, ys, xs] = np.arange(1, 26)
    expanded = segment.expand_labels(seeds, distance=6)
    for frame, result in zip(seeds, expanded):
        np.testing.assert_array_equal(result, sks.expand_labels(frame, distance=6))
    lazy = segment.expand_labels(da.from_array(seeds, chunks=(1, 40, 50)), distance=6)
    np.testing.assert_array_equal(lazy.compute(), expanded)
