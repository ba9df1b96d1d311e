"""The registration tools in a real napari viewer (run under xvfb-run)."""

WAIT_MS = 60_000


def units_of(layer):
    return tuple(str(u) for u in layer.units)


def finish(qtbot, tool):
    """Wait until the tool's worker is done and its result was shown."""
    qtbot.waitUntil(lambda: not tool.running, timeout=WAIT_MS)

import dask.array as da
import numpy as np
import pytest
from skimage import data

from napari_stacklab.register import Transform, warp

TRUTH = Transform("affine", np.array([[1.02, 0.05, 6.0], [-0.04, 0.98, -4.0], [0, 0, 1]]))


@pytest.fixture
def pair():
    fixed = data.camera()[::2, ::2].astype(np.float32)
    moving = warp(fixed, TRUTH.inverse(), order=3, mode="nearest")
    return fixed, moving


FIXED_PTS = np.array([[30.0, 40.0], [200.0, 60.0], [120.0, 220.0], [60.0, 180.0], [220.0, 210.0]])


def _click_pairs(widget, fixed_pts, moving_pts):
    """Add points as clicks would: fixed, moving, fixed, moving ... checking the active layer flips."""
    viewer = widget.viewer
    for f, m in zip(fixed_pts, moving_pts):
        assert viewer.layers.selection.active is widget.points["fixed"]
        widget.points["fixed"].add(f)
        assert viewer.layers.selection.active is widget.points["moving"]
        widget.points["moving"].add(m)


def test_point_tool_fit_undo_delete_refine_apply(make_napari_viewer, qtbot, pair):
    from napari_stacklab._napari.points_tool import PointRegistrationWidget

    fixed, moving = pair
    viewer = make_napari_viewer()
    viewer.add_image(fixed, name="fixed", scale=(0.5, 0.5), units=("um", "um"))
    viewer.add_image(moving, name="moving", scale=(0.25, 0.25), translate=(3.0, -2.0), units=("um", "um"))
    widget = PointRegistrationWidget(viewer)
    widget.fixed.value, widget.moving.value = viewer.layers["fixed"], viewer.layers["moving"]
    widget.model.value = "affine"
    widget.start()
    assert {"fixed points", "moving points"} <= {layer.name for layer in viewer.layers}
    # the point layers are in their images' frame: no "inconsistent units" for napari
    assert tuple(str(u) for u in widget.points["moving"].units) == ("micrometer", "micrometer")
    assert tuple(widget.points["moving"].scale) == (0.25, 0.25)
    assert viewer.layers.extent.units is not None

    _click_pairs(widget, FIXED_PTS[:2], TRUTH.apply_points(FIXED_PTS[:2]))
    assert widget.transform is None and "needs 3" in widget.status.value
    _click_pairs(widget, FIXED_PTS[2:], TRUTH.apply_points(FIXED_PTS[2:]))
    assert widget.transform is not None
    np.testing.assert_allclose(widget.transform.matrix, TRUTH.matrix, atol=1e-9)
    assert list(widget.points["fixed"].features["pair"]) == [1, 2, 3, 4, 5]
    assert len(widget.rows) == 5 and widget.rows[0][0] == 1

    # the live overlay: a fixed pixel and its moving match land on the same world point
    f_world = viewer.layers["fixed"].data_to_world(FIXED_PTS[1])
    m_world = viewer.layers["moving"].data_to_world(TRUTH.apply_points(FIXED_PTS[1]))
    np.testing.assert_allclose(f_world, m_world, atol=1e-6)

    # a misclick, then undo
    widget.points["fixed"].add([100.0, 100.0])
    assert len(widget.points["fixed"].data) == 6
    widget.undo()
    assert len(widget.points["fixed"].data) == 5
    assert viewer.layers.selection.active is widget.points["fixed"]

    # a bad pair: flagged by RANSAC, then deleted
    _click_pairs(widget, [[150.0, 150.0]], [[10.0, 240.0]])
    widget.robust.value = True
    assert not widget.transform.inliers[5] and widget.transform.inliers[:5].all()
    assert widget.rows[5][3] is False and widget.rows[5][1] > 10
    widget.delete_pair(6)
    assert len(widget.points["moving"].data) == 5 and widget.transform.inliers.all()

    # rough clicks refined with ECC
    widget.points["moving"].data = TRUTH.apply_points(FIXED_PTS) + np.array([[1.5, -1], [-1, 1.5], [1, 1], [-1.5, 0], [0, 1]])
    rough = widget.transform
    corners = np.array([[0, 0], [0, 255], [255, 0], [255, 255.0]])
    err = lambda t: np.linalg.norm(t.apply_points(corners) - TRUTH.apply_points(corners), axis=1).mean()
    assert err(rough) > 0.5
    widget.refine()
    finish(qtbot, widget)
    refined = widget.transform
    assert err(refined) < 0.1 and refined.score > 0.999

    layer = widget.apply()
    assert layer.name == "moving registered" and isinstance(layer.data, da.Array)
    assert tuple(layer.scale) == (0.5, 0.5) and tuple(str(u) for u in layer.units) == ("micrometer", "micrometer")
    step = layer.metadata["stacklab"]["steps"][-1]
    assert step["op"] == "apply_transform" and step["params"]["output_shape"] == [256, 256]
    np.testing.assert_allclose(Transform.from_dict(step["params"]["transform"]).matrix, refined.matrix)
    registered = np.asarray(layer.data)
    core = (slice(30, -30), slice(30, -30))
    expected = warp(moving, TRUTH)  # the same resampling with the true transform
    assert np.abs(registered[core] - expected[core]).mean() < 0.5


def test_point_tool_uses_only_spatial_axes_of_a_stack(make_napari_viewer, pair):
    from napari_stacklab._napari.points_tool import PointRegistrationWidget

    fixed, moving = pair
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([fixed, fixed * 2]), name="fixed")  # (T, M, N)
    viewer.add_image(np.stack([moving, moving * 2]), name="moving")
    widget = PointRegistrationWidget(viewer)
    widget.fixed.value, widget.moving.value = viewer.layers["fixed"], viewer.layers["moving"]
    widget.model.value = "similarity"
    widget.start()
    moved = TRUTH.apply_points(FIXED_PTS[:3])
    _click_pairs(widget, np.c_[[1, 1, 1], FIXED_PTS[:3]], np.c_[[1, 1, 1], moved])
    assert widget.transform.ndim == 2
    layer = widget.apply()
    assert layer.data.shape == (2, 256, 256)


def test_align_set_gives_aligned_layers_heatmaps_and_scores(make_napari_viewer, qtbot, pair):
    from napari_stacklab._napari.align_widget import HEATMAP_COLORMAP, AlignSetWidget

    fixed, moving = pair
    viewer = make_napari_viewer()
    frame = {"scale": (0.5, 0.5), "units": ("um", "um")}
    viewer.add_image(fixed, name="base", **frame)
    viewer.add_image(moving, name="tilted", **frame)
    viewer.add_image(np.roll(fixed, (3, -5), axis=(0, 1)) * 0.5 + 20, name="shifted", **frame)
    widget = AlignSetWidget(viewer)
    widget.base.value = viewer.layers["base"]
    assert [layer.name for layer in widget.targets.choices] == ["tilted", "shifted"]  # never the base itself
    widget.targets.value = [viewer.layers["tilted"], viewer.layers["shifted"]]
    assert widget.model.value == "affine"
    widget.run()
    finish(qtbot, widget)
    results = widget.results
    assert set(results) == {"tilted", "shifted"}
    corners = np.array([[0, 0], [0, 255], [255, 0], [255, 255.0]])
    error = np.linalg.norm(results["tilted"]["transform"].apply_points(corners) - TRUTH.apply_points(corners), axis=1)
    assert error.mean() < 0.1
    assert results["tilted"]["similarity"] > 0.99
    heat = viewer.layers["tilted similarity"]
    assert heat.colormap.name == HEATMAP_COLORMAP
    values = np.asarray(heat.data)
    assert values[30:-30, 30:-30].mean() > 0.9 and values.max() <= 1.0
    aligned = viewer.layers["tilted aligned"]
    assert isinstance(aligned.data, np.ndarray)  # an image is resampled in the worker; a stack lazily (below)
    assert tuple(aligned.scale) == (0.5, 0.5) and str(aligned.units[-1]) == "micrometer"
    assert [s["op"] for s in aligned.metadata["stacklab"]["steps"]] == ["apply_transform"]
    assert [s["op"] for s in heat.metadata["stacklab"]["steps"]] == ["apply_transform", "similarity_map"]
    assert heat.metadata["stacklab"]["role"] == "heatmap" and str(heat.units[-1]) == "micrometer"
    assert viewer.layers.extent.units is not None
    assert widget.table.native.rowCount() == 2

    widget.method.value = "phase correlation"
    widget.targets.value = [viewer.layers["shifted"]]
    widget.run()
    finish(qtbot, widget)
    np.testing.assert_allclose(widget.results["shifted"]["transform"].shift, [3, -5], atol=0.05)
    # the heatmaps are never offered as images to align
    assert "tilted similarity" not in [layer.name for layer in widget.targets.choices]

    viewer.add_image(np.stack([moving, moving * 2]), name="tilted stack", **{**frame, "scale": (1.0, 0.5, 0.5),
                                                                             "units": ("s", "um", "um")})
    widget.method.value = "ECC"
    widget.targets.value = [viewer.layers["tilted stack"]]
    widget.run()
    finish(qtbot, widget)
    stack = viewer.layers["tilted stack aligned"]
    assert isinstance(stack.data, da.Array) and stack.data.shape == (2, 256, 256)
    assert tuple(stack.scale) == (1.0, 0.5, 0.5) and units_of(stack) == ("second", "micrometer", "micrometer")
    np.testing.assert_allclose(np.asarray(stack.data[1]), 2 * np.asarray(stack.data[0]), rtol=1e-4, atol=1e-3)


def test_drift_widget_estimates_plots_and_reuses_shifts(make_napari_viewer, qtbot):
    from napari_stacklab.register import drift_correct
    from napari_stacklab._napari.drift_widget import DriftWidget

    rng = np.random.default_rng(2)
    big = data.camera().astype(np.float32)
    truth = np.cumsum(rng.normal(0, 1.0, (5, 2)), axis=0)
    truth[0] = 0
    frames = np.stack([warp(big, Transform.from_shift(np.array([150.0, 150.0]) - s), output_shape=(160, 160),
                            order=3) for s in truth])
    viewer = make_napari_viewer()
    frame = {"scale": (1.0, 0.2, 0.2), "units": ("s", "um", "um")}
    viewer.add_image(frames, name="channel 1", **frame)
    viewer.add_image(frames * 0.5, name="channel 2", **frame)
    widget = DriftWidget(viewer)
    widget.source.value = viewer.layers["channel 1"]
    assert widget.other.value is viewer.layers["channel 2"]  # never the drifting stack itself
    widget.run()
    finish(qtbot, widget)
    assert np.abs(widget.shifts - truth).max() <= 0.05
    lines = widget.plot.axes.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), widget.shifts[:, 0] * 0.2)
    corrected = viewer.layers["channel 1 drift_correct"]
    assert isinstance(corrected.data, da.Array) and tuple(corrected.scale) == (1.0, 0.2, 0.2)
    step = corrected.metadata["stacklab"]["steps"][-1]
    assert step["op"] == "drift_correct" and step["params"] == widget.params()
    # the layer is what the drift_correct operation gives with the recorded parameters
    np.testing.assert_allclose(np.asarray(corrected.data), drift_correct(frames, **step["params"]), atol=1e-4)
    other = widget.apply_to(viewer.layers["channel 2"])
    assert other.name == "channel 2 apply_drift" and isinstance(other.data, da.Array)
    np.testing.assert_allclose(np.asarray(other.data), 0.5 * np.asarray(corrected.data), atol=1e-3)
    assert other.metadata["stacklab"]["steps"][-1]["params"]["shifts"] == widget.shifts.tolist()


def test_point_tool_fits_volumes_in_3d(make_napari_viewer):
    from napari_stacklab._napari.points_tool import PointRegistrationWidget

    rng = np.random.default_rng(4)
    volume = rng.random((12, 40, 40)).astype(np.float32)
    truth = Transform.from_shift([1.0, 2.5, -3.0])
    viewer = make_napari_viewer()
    viewer.add_image(volume, name="fixed", scale=(2.0, 0.5, 0.5))
    viewer.add_image(warp(volume, truth.inverse()), name="moving", scale=(2.0, 0.5, 0.5))
    viewer.dims.ndisplay = 3
    widget = PointRegistrationWidget(viewer)
    widget.fixed.value, widget.moving.value = viewer.layers["fixed"], viewer.layers["moving"]
    widget.model.value = "euclidean"
    widget.start()
    fixed_pts = np.array([[2.0, 5, 5], [8, 30, 10], [5, 12, 33], [9, 25, 25]])
    _click_pairs(widget, fixed_pts, truth.apply_points(fixed_pts))
    assert widget.transform.ndim == 3
    np.testing.assert_allclose(widget.transform.matrix, truth.matrix, atol=1e-9)
    assert widget.rows[0][2].endswith("pixel")
    f_world = viewer.layers["fixed"].data_to_world(fixed_pts[2])
    m_world = viewer.layers["moving"].data_to_world(truth.apply_points(fixed_pts[2]))
    np.testing.assert_allclose(f_world, m_world, atol=1e-6)
    assert widget.apply().data.shape == volume.shape
