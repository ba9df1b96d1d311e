"""MeasureWidget in a real viewer: physical units from the layer scale, features, table dock, CSV."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from napari_stacklab import measure, morphology, segment
from napari_stacklab._napari.measure_widget import MeasureWidget, layer_unit


@pytest.fixture
def coins_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    coins = data.coins()
    labels = segment.label(morphology.clear_border(morphology.binary_closing(segment.threshold(coins), footprint="square")))
    viewer.add_image(coins, name="coins", scale=(0.5, 0.5), units="um")
    viewer.add_labels(labels, name="coins labels", scale=(0.5, 0.5), units="um")
    return viewer, coins, labels


def test_measure_in_physical_units(coins_viewer, qtbot, tmp_path):
    viewer, coins, labels = coins_viewer
    widget = MeasureWidget(viewer)
    assert widget.labels_layer.value is viewer.layers["coins labels"]
    widget.intensity_layer.value = viewer.layers["coins"]
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=20000)
    expected = measure.regionprops_table(labels, intensity=coins)
    np.testing.assert_allclose(widget.table["area"], expected["area"] * 0.25)
    np.testing.assert_allclose(widget.table["intensity_mean"], expected["intensity_mean"])
    assert widget.table.units["area"] == "um^2"
    assert widget.step == {"op": "regionprops_table", "params": {
        "intensity": {"layer": "coins"}, "spacing": [0.5, 0.5], "unit": "um", "mode": "2d"}}
    features = viewer.layers["coins labels"].features
    np.testing.assert_array_equal(features["label"], np.arange(1, labels.max() + 1))
    np.testing.assert_allclose(features["area"], expected["area"] * 0.25)
    dock = widget.table_widget
    assert dock is not None and dock.table_view.rowCount() == labels.max()
    assert "area [um^2]" in [dock.table_view.horizontalHeaderItem(i).text() for i in range(dock.table_view.columnCount())]
    path = tmp_path / "coins.csv"
    dock.save_csv(str(path))
    assert path.read_text().splitlines()[0].startswith("label,area [um^2],perimeter [um]")


def test_measure_stack_rows_per_frame(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    stack = np.zeros((3, 40, 40), np.int32)
    stack[:, 5:10, 5:10] = 1
    stack[1, 20:30, 20:30] = 2
    viewer.add_labels(stack, name="stack", scale=(1.0, 2.0, 2.0))
    widget = MeasureWidget(viewer)
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=20000)
    np.testing.assert_array_equal(widget.table["frame"], [0, 1, 1, 2])
    np.testing.assert_allclose(widget.table["area"], [100, 100, 400, 100])
    assert "4 objects" in widget.status.value


def test_no_labels_layer_is_reported(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = MeasureWidget(viewer)
    assert widget.run() is None
    assert "Labels" in widget.status.value and widget.table is None


def test_layer_unit_defaults_to_pixel(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.zeros((4, 4), np.int32))
    assert layer_unit(layer) == "pixel"
    layer_nm = viewer.add_labels(np.zeros((4, 4), np.int32), units="nm")
    assert layer_unit(layer_nm) == "nm"


def test_widget_opens_through_the_manifest(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((8, 8), np.int32), name="empty")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stacklab", "Measure labels")
    assert isinstance(widget, MeasureWidget)


def test_an_intensity_layer_with_channels_gives_a_column_per_channel(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    photo = data.astronaut()[::4, ::4]
    labels = np.zeros(photo.shape[:2], np.int32)
    labels[10:40, 10:50], labels[60:100, 70:120] = 1, 2
    viewer.add_image(photo, name="photo", rgb=True)
    viewer.add_labels(labels, name="cells")
    stack = np.stack([photo[..., 0], photo[..., 2]]).astype(np.float32)
    viewer.add_image(stack, name="stains", axis_labels=("c", "y", "x"), metadata={"channel_names": ["DAPI", "GFP"]})
    widget = MeasureWidget(viewer)
    widget.labels_layer.value = viewer.layers["cells"]
    widget.intensity_layer.value = viewer.layers["photo"]
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=20000)
    for c, name in enumerate(("red", "green", "blue")):
        expected = [photo[..., c][labels == k].mean() for k in (1, 2)]
        np.testing.assert_allclose(widget.table[f"intensity_mean-{name}"], expected, rtol=1e-6)
    assert widget.step["params"]["channel_names"] == ["red", "green", "blue"]
    widget.intensity_layer.value = viewer.layers["stains"]
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=20000)
    np.testing.assert_allclose(widget.table["intensity_mean-GFP"], [stack[1][labels == k].mean() for k in (1, 2)],
                               rtol=1e-6)
    assert "intensity_mean" not in widget.table
    viewer.add_image(np.zeros((5, 7), np.float32), name="small")
    widget.intensity_layer.value = viewer.layers["small"]
    assert widget.run() is None and "labels' shape" in widget.status.value
