"""Region properties in physical units, sub-pixel peaks and template matching."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import skimage.filters as skf
import skimage.measure as skm
import skimage.morphology as skmo
import skimage.segmentation as sks
from skimage import data
from skimage.feature import match_template as sk_match_template
from skimage.feature import peak_local_max

from napari_stacklab import measure, morphology, segment


@pytest.fixture(scope="module")
def coins_labels():
    """The scikit-image 'label image regions' pipeline on coins, and ours."""
    coins = data.coins()
    expected = skm.label(sks.clear_border(skmo.closing(coins > skf.threshold_otsu(coins), skmo.square(3))))
    mask = segment.threshold(coins, method="otsu")
    ours = segment.label(morphology.clear_border(morphology.binary_closing(mask, footprint="square", radius=1)))
    return coins, expected, ours


def test_coins_pipeline_matches_skimage(coins_labels):
    coins, expected, ours = coins_labels
    np.testing.assert_array_equal(ours, expected)
    table = measure.regionprops_table(ours, intensity=coins)
    reference = skm.regionprops_table(expected, coins, properties=("label", "area", "perimeter", "intensity_mean"))
    assert len(table["label"]) == len(reference["label"]) == expected.max()
    np.testing.assert_array_equal(table["area"], reference["area"])
    np.testing.assert_allclose(table["perimeter"], reference["perimeter"])
    np.testing.assert_allclose(table["intensity_mean"], reference["intensity_mean"])


def test_units_follow_isotropic_spacing(coins_labels):
    _, _, labels = coins_labels
    pixels = measure.regionprops_table(labels)
    microns = measure.regionprops_table(labels, spacing=(0.5, 0.5), unit="um")
    np.testing.assert_allclose(microns["area"], pixels["area"] * 0.25)
    for column in ("perimeter", "equivalent_diameter_area", "centroid-0", "centroid-1"):
        np.testing.assert_allclose(microns[column], pixels[column] * 0.5, rtol=1e-12)
    np.testing.assert_allclose(microns["eccentricity"], pixels["eccentricity"])
    np.testing.assert_array_equal(microns["bbox-2"], pixels["bbox-2"])
    assert microns.units["area"] == "um^2" and microns.units["centroid-1"] == "um"
    assert microns.units["bbox-0"] == "pixel" and microns.units["orientation"] == "rad"
    assert pixels.units["area"] == "pixel^2"


def test_anisotropic_spacing(coins_labels):
    _, _, labels = coins_labels
    pixels = measure.regionprops_table(labels, properties=["area", "centroid", "equivalent_diameter_area"])
    scaled = measure.regionprops_table(
        labels, spacing=(1.0, 0.2, 0.5), properties=["area", "centroid", "equivalent_diameter_area"]
    )
    np.testing.assert_allclose(scaled["area"], pixels["area"] * 0.1)
    np.testing.assert_allclose(scaled["centroid-0"], pixels["centroid-0"] * 0.2)
    np.testing.assert_allclose(scaled["centroid-1"], pixels["centroid-1"] * 0.5)
    np.testing.assert_allclose(scaled["equivalent_diameter_area"], np.sqrt(4 * scaled["area"] / np.pi))
    with pytest.raises(ValueError, match="spacing"):
        measure.regionprops_table(labels, spacing=(0.2, 0.5))


def test_stack_tables_have_frame_column_and_dask_matches(coins_labels):
    coins, _, labels = coins_labels
    stack = np.stack([labels, labels[:, ::-1], np.zeros_like(labels)])
    intensity = np.stack([coins, coins[:, ::-1], coins])
    table = measure.regionprops_table(stack, intensity=intensity, spacing=(1.0, 2.0, 2.0), unit="nm")
    n = labels.max()
    np.testing.assert_array_equal(table["frame"], np.repeat([0, 1], n))
    np.testing.assert_allclose(np.sort(table["area"][:n]), np.sort(table["area"][n:]))
    np.testing.assert_allclose(table["intensity_max"][:n], skm.regionprops_table(labels, coins, properties=["intensity_max"])["intensity_max"])
    lazy = measure.regionprops_table(
        da.from_array(stack, chunks=(1, 100, 100)),
        intensity=da.from_array(intensity, chunks=(2, 303, 384)),
        spacing=(1.0, 2.0, 2.0),
        unit="nm",
    )
    assert list(lazy) == list(table)
    for column in table:
        np.testing.assert_allclose(lazy[column], table[column])
    four_d = measure.regionprops_table(stack.reshape(1, 3, *labels.shape), properties=["area"])
    np.testing.assert_array_equal(four_d["frame-1"], table["frame"])


def test_volumes_measured_in_3d():
    volume = np.zeros((2, 8, 20, 20), np.int32)
    volume[0, 2:6, 5:10, 5:15] = 1
    volume[1, 1:3, 1:3, 1:3] = 4
    table = measure.regionprops_table(volume, mode="3d", spacing=(1.0, 2.0, 0.5, 0.5), unit="um")
    np.testing.assert_allclose(table["area"], [4 * 5 * 10 * 0.5, 8 * 0.5])
    assert table.units["area"] == "um^3"
    np.testing.assert_array_equal(table["label"], [1, 4])
    with pytest.raises(ValueError, match="properties"):
        measure.regionprops_table(volume, mode="3d", properties=["perimeter"])


def test_table_csv_and_pandas(tmp_path, coins_labels):
    _, _, labels = coins_labels
    table = measure.regionprops_table(labels, spacing=0.5, unit="um", properties=["area", "centroid"])
    path = tmp_path / "coins.csv"
    table.to_csv(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "label,area [um^2],centroid-0 [um],centroid-1 [um]"
    assert len(lines) == labels.max() + 1
    assert float(lines[1].split(",")[1]) == pytest.approx(table["area"][0])
    pd = pytest.importorskip("pandas")
    frame = table.to_pandas()
    assert isinstance(frame, pd.DataFrame) and frame.attrs["units"]["area"] == "um^2"


def test_regionprops_invalid(coins_labels):
    coins, _, labels = coins_labels
    with pytest.raises(ValueError, match="properties"):
        measure.regionprops_table(labels, properties=["area", "colour"])
    with pytest.raises(TypeError, match="properties"):
        measure.regionprops_table(labels, properties="area")
    with pytest.raises(ValueError, match="intensity"):
        measure.regionprops_table(labels, properties=["intensity_mean"])
    with pytest.raises(ValueError, match="intensity"):
        measure.regionprops_table(labels, intensity=coins[:10])
    with pytest.raises(TypeError, match="labels"):
        measure.regionprops_table(coins.astype(float))
    with pytest.raises(ValueError, match="spacing"):
        measure.regionprops_table(labels, spacing=-1.0)


# ----------------------------------------------------------------------------- peaks
def _spots(centres, shape=(64, 80), sigma=1.2, background=20.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, background)
    for y, x in centres:
        image += 200 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    return image


def test_find_peaks_subpixel_accuracy():
    centres = np.array([[12.3, 15.7], [30.45, 40.1], [50.8, 62.25], [20.1, 70.6]])
    image = _spots(centres)
    found = measure.find_peaks(image, min_distance=4, threshold_rel=0.3, window=4)
    assert found.shape == (4, 2)
    order = np.argsort(found[:, 0])
    np.testing.assert_allclose(found[order], centres[np.argsort(centres[:, 0])], atol=0.05)
    integer = measure.find_peaks(image, min_distance=4, threshold_rel=0.3, subpixel=False)
    np.testing.assert_array_equal(integer, peak_local_max(image, min_distance=4, threshold_rel=0.3))


def test_find_peaks_on_a_lazy_stack():
    stack = np.stack([_spots([[20.2, 30.3]]), _spots([[40.6, 10.4], [10.0, 60.0]])]).astype(np.float32)
    found = measure.find_peaks(da.from_array(stack, chunks=(1, 30, 40)), threshold_abs=100, window=4)
    assert found.shape == (3, 3)
    np.testing.assert_array_equal(found[:, 0], [0, 1, 1])
    np.testing.assert_allclose(found[0, 1:], [20.2, 30.3], atol=0.05)
    second = found[1:, 1:][np.argsort(found[1:, 1])]
    np.testing.assert_allclose(second, [[10.0, 60.0], [40.6, 10.4]], atol=0.05)
    with pytest.raises(ValueError, match="min_distance"):
        measure.find_peaks(stack, min_distance=0)


def test_find_peaks_reads_a_bool_image_as_0_1():
    """A mask once failed deep in numpy ('boolean negative'); it is the same as its 0/1 image."""
    mask = np.zeros((2, 40, 50), bool)
    mask[0, 10, 12] = mask[0, 25, 30] = mask[1, 18, 40] = True
    for lazy in (False, True):
        image = da.from_array(mask, chunks=(1, 15, 20)) if lazy else mask
        found = measure.find_peaks(image, min_distance=2, subpixel=False)
        np.testing.assert_array_equal(found, measure.find_peaks(mask.astype(np.uint8), min_distance=2, subpixel=False))
    np.testing.assert_array_equal(found, [[0, 10, 12], [0, 25, 30], [1, 18, 40]])
    for frame in mask:
        assert len(measure.find_peaks(frame, min_distance=2)) == len(peak_local_max(frame.astype(np.uint8), min_distance=2))


def test_match_template_matches_skimage():
    image = data.camera()[::2, ::2]
    template = image[100:121, 60:81]
    correlation = measure.match_template(image, template=template)
    assert correlation.dtype == np.float32 and correlation.shape == image.shape
    np.testing.assert_allclose(correlation, sk_match_template(image.astype(np.float32), template.astype(np.float32), pad_input=True), atol=1e-5)
    valid = measure.match_template(np.stack([image, image]), template=template, pad_input=False)
    assert valid.shape == (2, 256 - 20, 256 - 20)
    lazy = measure.match_template(da.from_array(np.stack([image, image]), chunks=(1, 100, 100)), template=template, pad_input=False)
    np.testing.assert_allclose(lazy.compute(), valid, atol=1e-5)
    with pytest.raises(ValueError, match="template"):
        measure.match_template(image, template=np.ones((300, 3)))


def test_template_peaks_finds_every_copy():
    rng = np.random.default_rng(7)
    motif = data.coins()[30:51, 290:311].astype(np.float32)
    image = rng.normal(80, 5, (160, 200)).astype(np.float32)
    corners = [(10, 20), (70, 120), (120, 40)]
    for y, x in corners:
        image[y : y + 21, x : x + 21] = motif
    found = measure.template_peaks(image, template=motif, threshold=0.8)
    expected = np.array([(y + 10, x + 10) for y, x in corners], float)
    np.testing.assert_allclose(found[np.argsort(found[:, 0])], expected, atol=0.5)


def test_points_to_markers():
    markers = measure.points_to_markers(np.array([[3.4, 4.6], [0, 0]]), (2, 6, 8))
    assert markers.shape == (2, 6, 8) and markers.dtype == np.int32
    assert markers[1, 3, 5] == 1 and markers[0, 0, 0] == 2 and markers.sum() == 6
    with pytest.raises(ValueError, match="outside"):
        measure.points_to_markers([[7, 0]], (6, 8))
    with pytest.raises(ValueError, match="points"):
        measure.points_to_markers([1, 2], (6, 8))
