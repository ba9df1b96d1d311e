"""The 4D-STEM navigator in a real viewer (run under xvfb-run)."""

import dask.array as da
import numpy as np
import pytest

from napari_stacklab import stem
from napari_stacklab._napari import _contrib
from napari_stacklab._napari.navigator import StemNavigator


@pytest.fixture
def scan(rng):
    """(6, 8, 32, 32) counts: a bright disk whose centre moves with the scan position."""
    yy, xx = np.mgrid[:32, :32]
    frames = np.empty((6, 8, 32, 32), np.uint16)
    for i, j in np.ndindex(6, 8):
        disk = np.hypot(yy - 15.5 - 0.3 * i, xx - 15.5 + 0.2 * j) < 6
        frames[i, j] = rng.poisson(2 + 50 * disk)
    return frames


@pytest.fixture
def navigator(make_napari_viewer, qtbot, scan):
    viewer = make_napari_viewer()
    layer = viewer.add_image(da.from_array(scan, chunks=(2, 3, 32, 32)), name="scan4d", scale=(2, 2, 0.1, 0.1),
                             units=("nm", "nm", "mrad", "mrad"), axis_labels=("scan_y", "scan_x", "ky", "kx"))
    nav = StemNavigator(viewer)
    assert nav.source.value is layer
    nav.start()
    qtbot.waitUntil(lambda: not nav.busy, timeout=20000)
    return nav


def _wait(qtbot, nav):
    qtbot.waitUntil(lambda: not nav.busy, timeout=20000)


def test_navigator_is_declared_as_a_tool():
    entry = next(t for t in _contrib.TOOLS if t["id"] == "stem_navigator")
    assert entry["python_name"].endswith("navigator:StemNavigator") and entry["menu"] == "visualize"


def test_navigator_holds_the_4d_layer_and_lays_out_labelled_panels_in_scan_units(navigator, qtbot):
    viewer = navigator.viewer
    held = navigator.held
    assert held.name == "scan4d" and held not in viewer.layers
    assert viewer.dims.ndim == 2  # no scan sliders: the hidden 4-D layer's axes are gone with it
    assert viewer.layers.extent.units is not None and str(viewer.layers.extent.units[-1]) == "nanometer"
    layers = navigator.layers
    for key in ("scan", "mean", "pattern", "mask", "detector", "position", "titles"):
        assert str(layers[key].units[-1]) == "nanometer" and layers[key].metadata["stacklab"]["role"] == "panel"
    # side by side, left to right, none overlapping, each with a title above it
    lefts = [layers[k].extent.world[0][1] for k in ("scan", "mean", "pattern")]
    rights = [layers[k].extent.world[1][1] for k in ("scan", "mean", "pattern")]
    assert lefts[1] > rights[0] and lefts[2] > rights[1]
    titles = layers["titles"]
    assert list(titles.features["title"]) == ["scan image", "mean pattern (0.1 mrad/px)", "pattern at (2, 4)"]
    height = layers["scan"].extent.world[1][0]
    assert titles.data[0, 0] < 0 and titles.data[1, 0] > height and titles.data[2, 0] < 0  # above, below, above
    assert np.all((titles.data[:, 1] > lefts) & (titles.data[:, 1] < rights))  # each over its own panel
    # the view shows all three panels
    viewer.reset_view()
    corners = viewer.layers.extent.world
    assert corners[0][1] <= lefts[0] and corners[1][1] >= rights[2]

    navigator.stop()
    assert "scan4d" in viewer.layers and viewer.layers.index("scan4d") == 0 and viewer.dims.ndim == 4
    assert [layer.name for layer in viewer.layers] == ["scan4d"] and navigator.held is None


def test_navigator_shows_mean_pattern_scan_image_and_pattern_under_marker(navigator, scan, qtbot):
    layers = navigator.layers
    np.testing.assert_allclose(layers["mean"].data, scan.mean(axis=(0, 1)), rtol=1e-5)
    params = navigator.detector()
    assert params == {"inner": 0.0, "outer": 4.0, "center": (15.5, 15.5)}
    np.testing.assert_allclose(layers["scan"].data, stem.virtual_detector(scan, **params), rtol=1e-6)
    assert navigator.position() == (2, 4)  # the marker starts at the scan centre (2.5, 3.5)
    np.testing.assert_array_equal(layers["pattern"].data, scan[2, 4])

    layers["position"].data = np.array([[1.2, 6.7]])
    np.testing.assert_array_equal(layers["pattern"].data, scan[1, 7])
    assert "(1, 7)" in navigator.status.value


def test_annulus_rectangle_and_labels_detectors_with_cache(navigator, scan, qtbot, monkeypatch):
    layers = navigator.layers
    calls = []
    real = stem.virtual_detector
    monkeypatch.setattr(stem, "virtual_detector", lambda data, **p: calls.append(p) or real(data, **p))
    first = layers["scan"].data.copy()

    # two circles: an annulus 5 <= r <= 12 around (15, 16)
    layers["detector"].data = []
    layers["detector"].add_ellipses([np.array([[10, 11], [10, 21], [20, 21], [20, 11]]),
                                     np.array([[3, 4], [3, 28], [27, 28], [27, 4]])])
    _wait(qtbot, navigator)
    assert navigator.detector() == {"inner": 5.0, "outer": 12.0, "center": (15.0, 16.0)}
    np.testing.assert_allclose(layers["scan"].data, real(scan, inner=5, outer=12, center=(15, 16)), rtol=1e-6)

    # a rectangle: its rasterised mask
    layers["detector"].data = []
    layers["detector"].add_rectangles(np.array([[2, 3], [9, 12]]))
    _wait(qtbot, navigator)
    mask = np.zeros((32, 32), bool)
    mask[2:10, 3:13] = True
    np.testing.assert_array_equal(navigator.detector()["mask"], mask)
    np.testing.assert_allclose(layers["scan"].data, (scan * mask).sum(axis=(2, 3)), rtol=1e-6)

    # painted labels
    painted = np.zeros((32, 32), np.int32)
    painted[20:25, 5:30] = 1
    layers["mask"].data = painted
    navigator.mode.value = "labels"
    _wait(qtbot, navigator)
    np.testing.assert_allclose(layers["scan"].data, (scan * (painted > 0)).sum(axis=(2, 3)), rtol=1e-6)
    assert len(calls) == 3 and navigator.cache_size == 4

    # back to the first disk: served from the cache, not recomputed
    navigator.mode.value = "shapes"
    layers["detector"].data = []
    layers["detector"].add_ellipses(np.array([[11.5, 11.5], [11.5, 19.5], [19.5, 19.5], [19.5, 11.5]]))
    _wait(qtbot, navigator)
    assert len(calls) == 3
    np.testing.assert_array_equal(layers["scan"].data, first)


def test_navigator_maps_are_operation_layers_that_replay(navigator, scan, qtbot, tmp_path):
    from napari_stacklab import Recipe

    viewer = navigator.viewer
    layers = navigator.layers
    layers["detector"].data = []
    layers["detector"].add_ellipses([np.array([[10, 11], [10, 21], [20, 21], [20, 11]]),
                                     np.array([[3, 4], [3, 28], [27, 28], [27, 4]])])
    _wait(qtbot, navigator)
    navigator.add_virtual_image()
    _wait(qtbot, navigator)
    adf = viewer.layers["scan4d annular_dark_field"]
    np.testing.assert_allclose(adf.data, stem.annular_dark_field(scan, inner=5, outer=12, center=(15, 16)), rtol=1e-6)
    assert tuple(adf.scale) == (2.0, 2.0) and str(adf.units[-1]) == "nanometer"
    recipe = Recipe.from_metadata(adf.metadata)
    np.testing.assert_allclose(np.asarray(recipe.run(scan)), adf.data, rtol=1e-6)

    navigator.add_center_of_mass()
    _wait(qtbot, navigator)
    com = stem.center_of_mass(scan, center=(15.0, 16.0))
    np.testing.assert_allclose(viewer.layers["scan4d center_of_mass com_x"].data, np.asarray(com["com_x"]), atol=1e-5)
    assert "centre 15, 16 px" in navigator.status.value
    assert viewer.layers.extent.units is not None  # maps and panels share the scan's units
    assert viewer.layers[-1] is layers["titles"] and viewer.layers[-2] is layers["position"]  # marker on top


def test_navigator_without_a_4d_layer_says_so(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8)))
    nav = StemNavigator(viewer)
    nav.start()
    assert "4-D layer" in nav.status.value
