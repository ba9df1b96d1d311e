"""The three tutorial workflows driven through the plugin's widgets in a real viewer.

The steps are the ones ``docs/tutorials/screenshots.py`` takes for the
tutorial screenshots (opened from the manifest, as the menus open them);
here the resulting layers and files are checked against ground truth and
against the headless API, and napari never loses its units on the way (no
"Inconsistent units across layers"). Run under Xvfb::

    xvfb-run -a python -m pytest tests/test_napari_tutorials.py -q
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import napari_stacklab as sl

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "screenshots.py"


@pytest.fixture(scope="module")
def tutorial():
    spec = importlib.util.spec_from_file_location("tutorial_screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def wait(qtbot):
    return lambda condition: qtbot.waitUntil(condition, timeout=60_000)


def corner_error(a, b, shape) -> float:
    rows, cols = shape[0] - 1, shape[1] - 1
    corners = np.array([[0, 0, 1], [0, cols, 1], [rows, 0, 1], [rows, cols, 1]], float).T
    return float(np.abs((np.asarray(a) @ corners)[:2] - (np.asarray(b) @ corners)[:2]).max())


def test_compare_workflow_in_napari(make_napari_viewer, tutorial, wait, tmp_path):
    viewer = make_napari_viewer()
    run = tutorial.compare_workflow(viewer, tmp_path, wait)
    names, module = run["names"], run["module"]
    assert run["units"] == [], "a step left layers with inconsistent units"
    assert viewer.layers.extent.units is not None and str(viewer.layers.extent.units[-1]) == "micrometer"
    base = names[0]
    # opened through the plugin's reader: pixel size from the TIFFs
    assert all(viewer.layers[n].scale.tolist() == [0.5, 0.5] for n in names)

    # equalized layers equal the headless equalize_set, record it, keep the pixel size
    expected = sl.equalize.equalize_set([viewer.layers[n].data for n in names], reference=0, sharpness=True)
    for name, array in zip(names, expected):
        layer = viewer.layers[f"{name} equalized"]
        np.testing.assert_allclose(layer.data, array, rtol=1e-5, atol=1e-3)
        assert layer.metadata["stacklab"]["steps"][-1]["op"] == "equalize_levels"
        assert tuple(layer.scale) == (0.5, 0.5)

    # Otsu threshold layer: a mask equal to the API's, recording its step
    mask_layer = viewer.layers[f"{base} equalized threshold"]
    np.testing.assert_array_equal(np.asarray(mask_layer.data) > 0,
                                  sl.segment.threshold(viewer.layers[f"{base} equalized"].data, method="otsu"))
    assert mask_layer.metadata["stacklab"]["steps"][-1]["op"] == "threshold"
    assert "threshold: value" in run["threshold_info"]

    # affine ECC recovers the known distortions; similarity heatmaps warm where aligned
    for name in names[1:]:
        result = run["results"][f"{name} equalized"]
        truth = module.cropped_truth(name, (256, 256), 32)
        assert corner_error(result["transform"].matrix, truth.matrix, (192, 192)) < 0.1
        assert result["similarity"] > 0.97
        heat = np.asarray(viewer.layers[f"{name} equalized similarity"].data)
        assert heat.min() >= -1 and heat.max() <= 1 and heat[20:-20, 20:-20].mean() > 0.5
        aligned = viewer.layers[f"{name} equalized aligned"]
        assert [s["op"] for s in aligned.metadata["stacklab"]["steps"]] == ["equalize_levels", "apply_transform"]
        assert tuple(str(u) for u in aligned.units) == ("micrometer", "micrometer")

    # saved through the plugin's writer: readable TIFFs with the pixel size
    for key, paths in run["saved"].items():
        image = sl.io.imread(paths[0])
        assert image.shape == (192, 192) and image.dtype == np.float32 and image.scale == (0.5, 0.5), key
        np.testing.assert_allclose(np.asarray(image.data), np.asarray(viewer.layers[key].data), rtol=1e-6)


def test_prepare_workflow_in_napari(make_napari_viewer, tutorial, wait, tmp_path):
    pytest.importorskip("pymatting")
    import imageio.v3 as iio

    viewer = make_napari_viewer()
    run = tutorial.prepare_workflow(viewer, tmp_path, wait)
    original = run["original"]
    assert run["units"] == []
    # the preview of gain alone is the colour gain (brightest channel, hue kept), uint8 RGB like the photograph
    assert run["preview_of_gain"].shape == original.shape  # small enough to be previewed whole
    np.testing.assert_array_equal(run["preview_of_gain"], sl.filters.adjust_gain(original, gain=1.3, rgb=True))
    assert run["steps"] == ["bilateral", "adjust_saturation", "clahe", "unsharp_mask", "adjust_gamma", "adjust_gain"]
    prepared = viewer.layers["astronaut prepared"]
    assert prepared.rgb and prepared.data.shape == original.shape and not np.allclose(prepared.data, original)
    assert prepared.data.dtype == np.uint8

    # the matting widget gives the headless remove_background result for the painted mask
    module = run["module"]
    expected = sl.matting.remove_background(original, mask=module.rough_mask(original.shape[:2]), erode_size=8,
                                            min_size=64, new_background="white")
    np.testing.assert_allclose(viewer.layers["astronaut alpha"].data, expected["alpha"], atol=1e-6)
    np.testing.assert_array_equal(viewer.layers["astronaut subject"].data, expected["subject"])
    np.testing.assert_array_equal(np.asarray(viewer.layers["astronaut mask"].data) > 0, expected["mask"])

    # saved: original, background removed, subject cropped to the mask (RGBA)
    files = {Path(p).stem.split("_", 1)[1]: Path(p) for p in run["written"]}
    assert set(files) == {"original", "background_removed", "subject"}
    np.testing.assert_array_equal(iio.imread(files["original"]), original)
    np.testing.assert_array_equal(iio.imread(files["background_removed"]), expected["subject"])
    rows, cols = np.nonzero(expected["mask"])
    subject = iio.imread(files["subject"])
    assert subject.shape == (np.ptp(rows) + 1, np.ptp(cols) + 1, 4)
    np.testing.assert_allclose(subject[..., 3], np.rint(255 * expected["alpha"][rows.min():rows.max() + 1,
                                                                                  cols.min():cols.max() + 1]), atol=1)


def test_stem_workflow_in_napari(make_napari_viewer, tutorial, wait, tmp_path):
    da = pytest.importorskip("dask.array")
    viewer = make_napari_viewer()
    run = tutorial.stem_workflow(viewer, tmp_path, wait)
    assert run["units"] == [], "a step left layers with inconsistent units"
    scan = sl.io.imread(run["scans"][0], lazy=True)
    assert isinstance(scan.data, da.Array)
    counts = np.asarray(scan.data).astype(np.float64)
    adf = run["adf"]

    # while the navigator runs it holds the 4-D layer: no scan sliders, one 2-D world in nanometres
    assert run["layer"] not in viewer.layers and run["navigator"].held.name == run["layer"]
    assert viewer.dims.ndim == 2 and str(viewer.layers.extent.units[-1]) == "nanometer"

    # the navigator's annulus gives the ADF image of the headless API and of a NumPy sum
    expected = np.asarray(sl.stem.annular_dark_field(scan.data, **adf))
    np.testing.assert_allclose(run["scan_image"], expected, rtol=1e-5)
    ky, kx = np.mgrid[:32, :32]
    r = np.hypot(ky - adf["center"][0], kx - adf["center"][1])
    ring = (r >= adf["inner"]) & (r <= adf["outer"])
    np.testing.assert_allclose(expected, (counts * ring).sum(axis=(2, 3)), rtol=1e-5)

    # the operation layers: ADF and centre-of-mass maps in the scan's pixel size
    adf_layer, com_y, com_x = (viewer.layers[name] for name in run["outputs"])
    np.testing.assert_allclose(adf_layer.data, expected, rtol=1e-5)
    com = sl.stem.center_of_mass(scan.data, center=adf["center"])
    np.testing.assert_allclose(com_y.data, np.asarray(com["com_y"]), atol=1e-5)
    np.testing.assert_allclose(com_x.data, np.asarray(com["com_x"]), atol=1e-5)

    # the exported recipe replays the layer; the batch run over both scans matches it
    recipe = sl.Recipe.load(run["recipe"])
    assert recipe.steps == [{"op": "annular_dark_field",
                             "params": {"inner": adf["inner"], "outer": adf["outer"], "center": list(adf["center"])}}]
    assert [p.name for p in run["batch"]] == ["scan_0.zarr", "scan_1.zarr"]
    np.testing.assert_allclose(np.asarray(sl.io.imread(run["batch"][0]).data), adf_layer.data, rtol=1e-5)
    second = sl.io.imread(run["scans"][1], lazy=True)
    np.testing.assert_allclose(np.asarray(sl.io.imread(run["batch"][1]).data),
                               np.asarray(recipe.run(second.data)), rtol=1e-5)


def test_stem_maps_keep_the_scan_pixel_size(make_napari_viewer, tutorial, wait):
    viewer = make_napari_viewer()
    scan = sl.datasets.stem4d(scan=8, detector=16)
    viewer.add_image(scan.data, name="scan", **{k: v for k, v in scan.layer_kwargs().items() if k != "name"})
    tutorial.run_operation(viewer, "Annular dark field", "scan", wait, inner=4.0, outer=8.0)
    layer = viewer.layers["scan annular_dark_field"]
    assert tuple(layer.scale) == (0.4, 0.4)
    assert tuple(str(u) for u in layer.units) == ("nanometer", "nanometer")
