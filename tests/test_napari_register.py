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


# --- Auto-match, transforms that travel (issue 17) ------------------------------------------------------
CORNERS = np.array([[0, 0], [0, 255], [255, 0], [255, 255.0]])


def corner_error(transform, truth=TRUTH):
    return float(np.linalg.norm(transform.apply_points(CORNERS) - truth.apply_points(CORNERS), axis=1).max())


def test_point_tool_auto_match_gives_numbered_pairs_to_review_and_refine(make_napari_viewer, qtbot, pair):
    """Auto-match on a bundled image pair with a known affine: the inlier pairs appear numbered, the fit is
    within half a pixel, a deleted pair refits, ECC then reaches hundredths of a pixel."""
    from napari_stacklab._napari.points_tool import PointRegistrationWidget

    fixed, moving = pair
    viewer = make_napari_viewer()
    viewer.add_image(fixed, name="fixed", scale=(0.5, 0.5), units=("um", "um"))
    viewer.add_image(moving * 0.6 + 15, name="moving", scale=(0.5, 0.5), units=("um", "um"))
    widget = PointRegistrationWidget(viewer)
    widget.fixed.value, widget.moving.value = viewer.layers["fixed"], viewer.layers["moving"]
    widget.model.value = "affine"
    widget.max_pairs.value = 25
    assert widget.auto_match() is not None  # starts the point layers itself
    finish(qtbot, widget)
    fixed_pts, moving_pts = widget.pairs()
    assert len(fixed_pts) == len(moving_pts) == 25
    assert list(widget.points["fixed"].features["pair"]) == list(range(1, 26))
    assert list(widget.points["moving"].features["pair"]) == list(range(1, 26))
    # every pair is a true correspondence (keypoints are accurate to about a pixel)
    assert np.linalg.norm(TRUTH.apply_points(fixed_pts) - moving_pts, axis=1).max() < 2.5
    assert corner_error(widget.transform) < 0.5
    assert len(widget.rows) == 25 and "Auto-match: 25 pairs" in widget.status.value
    # the pairs spread over the image, not clustered on one corner
    assert np.ptp(fixed_pts, axis=0).min() > 150
    # review: a pair deleted, the fit follows
    widget.delete_pair(3)
    assert len(widget.pairs()[0]) == 24 and list(widget.points["moving"].features["pair"]) == list(range(1, 25))
    assert corner_error(widget.transform) < 0.5
    widget.refine()
    finish(qtbot, widget)
    assert corner_error(widget.transform) < 0.05 and widget.transform.score > 0.999
    # the pairs stay reviewable after the refinement: each one's residual against the refined fit
    assert np.all(widget.transform.residuals < 2.5)


def test_point_tool_auto_match_on_a_stack_uses_the_shown_frames(make_napari_viewer, qtbot, pair):
    from napari_stacklab._napari.points_tool import PointRegistrationWidget

    fixed, moving = pair
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([np.zeros_like(fixed), fixed]), name="fixed")  # frame 0 is blank
    viewer.add_image(np.stack([np.zeros_like(moving), moving]), name="moving")
    viewer.dims.set_point(0, 1)
    widget = PointRegistrationWidget(viewer)
    widget.fixed.value, widget.moving.value = viewer.layers["fixed"], viewer.layers["moving"]
    widget.detector.value = "sift"
    widget.auto_match()
    finish(qtbot, widget)
    data = np.asarray(widget.points["moving"].data)
    assert data.shape[1] == 3 and np.all(data[:, 0] == 1)  # on the shown time point
    assert corner_error(widget.transform) < 0.5


def test_point_tool_auto_match_says_why_when_too_few_matches(make_napari_viewer, qtbot, pair, monkeypatch):
    from napari_stacklab._napari import points_tool

    shown = []
    monkeypatch.setattr(points_tool.Tool, "fail", lambda self, problem: shown.append(str(problem)) or
                        self.say(str(problem)))
    fixed, _ = pair
    viewer = make_napari_viewer()
    viewer.add_image(fixed, name="fixed")
    viewer.add_image(np.random.default_rng(0).random(fixed.shape).astype(np.float32), name="noise")
    widget = points_tool.PointRegistrationWidget(viewer)
    widget.fixed.value, widget.moving.value = viewer.layers["fixed"], viewer.layers["noise"]
    widget.auto_match()
    finish(qtbot, widget)
    assert len(shown) == 1 and shown[0].startswith("Auto-match: ") and "matches" in shown[0]
    assert "Try the other detector, or click point pairs" in shown[0]
    assert len(widget.points["fixed"].data) == 0 and widget.transform is None  # nothing was added


def _frame(layer):
    return np.asarray(layer.scale, float), np.asarray(layer.translate, float)


def test_transform_tool_moves_points_shapes_labels_and_images_in_world_units(make_napari_viewer, qtbot, pair,
                                                                            tmp_path):
    """A point-tool transform between layers of different pixel sizes, saved, loaded and applied to a Points
    layer (in world units, its own scale), a Shapes layer, Labels (nearest, integer kept) and another channel."""
    from scipy import ndimage as ndi

    from napari_stacklab._napari.points_tool import PointRegistrationWidget
    from napari_stacklab._napari.transform_tool import TransformTool

    fixed, moving = pair
    viewer = make_napari_viewer()
    viewer.add_image(fixed, name="fixed", scale=(0.5, 0.5), translate=(10.0, -4.0), units=("um", "um"))
    viewer.add_image(moving, name="moving", scale=(0.25, 0.25), translate=(3.0, -2.0), units=("um", "um"))
    points = PointRegistrationWidget(viewer)
    points.fixed.value, points.moving.value = viewer.layers["fixed"], viewer.layers["moving"]
    points.start()
    _click_pairs(points, FIXED_PTS, TRUTH.apply_points(FIXED_PTS))
    saved = points.save_transform(tmp_path / "moving_to_fixed.json")
    assert saved.exists()

    # annotations drawn on the moving image: spots (a layer in world units) and shapes (the image's frame)
    on_moving = np.array([[40.0, 60.0], [150.0, 90.0], [200.0, 210.0]])  # moving pixels
    world = on_moving * 0.25 + np.array([3.0, -2.0])
    viewer.add_points(world, name="spots", size=2)  # scale 1: data = world coordinates
    rectangle = np.array([[50.0, 50], [50, 120], [100, 120], [100, 50]])
    polygon = np.array([[150.0, 150], [180, 200], [130, 210]])
    viewer.add_shapes([rectangle, polygon], shape_type=["rectangle", "polygon"], name="outlines",
                      scale=(0.25, 0.25), translate=(3.0, -2.0))
    labels = np.zeros(moving.shape, np.int32)
    labels[40:90, 60:120] = 3
    labels[150:200, 30:70] = 7
    viewer.add_labels(labels, name="cells", scale=(0.25, 0.25), translate=(3.0, -2.0))
    viewer.add_image(moving * 2, name="channel 2", scale=(0.25, 0.25), translate=(3.0, -2.0))

    tool = TransformTool(viewer)
    loaded = tool.load(saved)
    np.testing.assert_allclose(loaded.transform.matrix, TRUTH.matrix, atol=1e-9)
    assert loaded.output_shape == fixed.shape and (loaded.fixed, loaded.moving) == ("fixed", "moving")
    assert tool.moving.value is viewer.layers["moving"] and tool.grid.value is viewer.layers["fixed"]

    # Points: where the registered image puts those features, in the fixed layer's world
    tool.target.value = viewer.layers["spots"]
    moved = tool.apply()
    expected_world = TRUTH.inverse().apply_points(on_moving) * 0.5 + np.array([10.0, -4.0])
    np.testing.assert_allclose([moved.data_to_world(p) for p in moved.data], expected_world, atol=1e-9)
    assert moved.name == "spots warp_points" and tuple(moved.scale) == (1.0, 1.0)
    assert moved.metadata["stacklab"]["steps"][-1]["op"] == "warp_points"

    # Shapes: every vertex moved; the rectangle, sheared by the affine, becomes a polygon
    tool.target.value = viewer.layers["outlines"]
    shapes = tool.apply()
    assert list(shapes.shape_type) == ["polygon", "polygon"]
    for vertices, original in zip(shapes.data, (rectangle, polygon)):
        got = np.array([shapes.data_to_world(v) for v in vertices])
        want = TRUTH.inverse().apply_points(original) * 0.5 + np.array([10.0, -4.0])
        np.testing.assert_allclose(got, want, atol=1e-9)

    # Labels: nearest neighbour onto the fixed grid, integer dtype and values kept
    tool.target.value = viewer.layers["cells"]
    warped = tool.apply()
    assert warped.name == "cells apply_transform" and type(warped).__name__ == "Labels"
    values = np.asarray(warped.data)
    assert values.dtype == np.int32 and values.shape == fixed.shape and set(np.unique(values)) == {0, 3, 7}
    oracle = ndi.affine_transform(labels, TRUTH.matrix, output_shape=fixed.shape, order=0)
    assert np.mean(values != oracle) < 1e-3  # the same nearest pixel, up to rounding ties at label edges
    assert tuple(warped.scale) == (0.5, 0.5) and tuple(warped.translate) == (10.0, -4.0)
    region = np.argwhere(values == 3).mean(axis=0)
    np.testing.assert_allclose(region, TRUTH.inverse().apply_points(np.argwhere(labels == 3).mean(axis=0)),
                               atol=0.5)

    # another channel: lazily, onto the fixed grid, as the moving image itself
    tool.target.value = viewer.layers["channel 2"]
    channel = tool.apply()
    assert isinstance(channel.data, da.Array) and channel.data.shape == fixed.shape
    expected = ndi.affine_transform(moving * 2, loaded.transform.matrix, output_shape=fixed.shape, order=1)
    np.testing.assert_allclose(np.asarray(channel.data), expected, rtol=1e-5, atol=1e-3)
    step = channel.metadata["stacklab"]["steps"][-1]
    assert step["op"] == "apply_transform" and step["params"]["output_shape"] == [256, 256]


def test_transform_tool_takes_drift_from_a_layer_saves_it_and_moves_tracks(make_napari_viewer, qtbot, tmp_path):
    """Per-frame drift from the drift tool's layer: saved and loaded as JSON, applied to (t, y, x) points and a
    shapes layer (a rectangle stays a rectangle under a shift) and to a labels stack."""
    from napari_stacklab._napari.drift_widget import DriftWidget
    from napari_stacklab._napari.transform_tool import TransformTool

    big = data.camera().astype(np.float32)
    truth = np.array([[0.0, 0.0], [1.5, -2.0], [3.0, -1.0], [4.5, 0.5]])
    frames = np.stack([warp(big, Transform.from_shift(np.array([150.0, 150.0]) - s), output_shape=(128, 128),
                            order=3) for s in truth])
    viewer = make_napari_viewer()
    frame = {"scale": (2.0, 0.5, 0.5), "units": ("s", "um", "um")}
    viewer.add_image(frames, name="movie", **frame)
    drift = DriftWidget(viewer)
    drift.source.value = viewer.layers["movie"]
    drift.run()
    finish(qtbot, drift)
    shifts = drift.shifts
    np.testing.assert_allclose(shifts, truth, atol=0.05)

    tracks = np.array([[0, 60.0, 60.0], [1, 61.5, 58.0], [3, 64.5, 60.5]])  # (t, row, col) on the movie
    viewer.add_points(tracks, name="tracks", **frame)
    box = np.array([[2, 20.0, 20], [2, 20, 40], [2, 30, 40], [2, 30, 20]])
    viewer.add_shapes([box], shape_type=["rectangle"], name="roi", **frame)
    cells = np.zeros(frames.shape, np.uint16)
    for t, (dy, dx) in enumerate(truth):
        cells[t, 40 + int(round(dy)) : 60 + int(round(dy)), 50 + int(round(dx)) : 80 + int(round(dx))] = 5
    viewer.add_labels(cells, name="cells", **frame)

    tool = TransformTool(viewer)
    assert tool.source.value is viewer.layers["movie drift_correct"]  # the newest layer with a recorded drift
    np.testing.assert_allclose(tool.recorded().shifts, shifts)
    path = tool.save(tmp_path / "drift")
    assert path.suffix == ".json"
    loaded = tool.load(path)
    np.testing.assert_allclose(loaded.shifts, shifts) and tool.source.value is loaded

    tool.target.value = viewer.layers["tracks"]
    moved = tool.apply()
    expected = tracks.copy()
    expected[:, 1:] -= shifts[tracks[:, 0].astype(int)]
    np.testing.assert_allclose(moved.data, expected, atol=1e-9)

    tool.target.value = viewer.layers["roi"]
    roi = tool.apply()
    assert list(roi.shape_type) == ["rectangle"]
    np.testing.assert_allclose(roi.data[0][:, 1:], box[:, 1:] - shifts[2], atol=1e-9)

    tool.target.value = viewer.layers["cells"]
    still = tool.apply()
    values = np.asarray(still.data)
    assert still.name == "cells apply_drift" and values.dtype == np.uint16 and set(np.unique(values)) == {0, 5}
    for t in range(1, 4):  # each frame's cell back where it was at time 0 (the truth was rounded to pixels)
        centre = np.argwhere(values[t] == 5).mean(axis=0)
        assert np.all(np.abs(centre - np.argwhere(values[0] == 5).mean(axis=0)) <= 1.0), (t, centre)
    assert still.metadata["stacklab"]["steps"][-1]["params"]["shifts"] == shifts.tolist()


def test_transform_tool_refuses_clearly(make_napari_viewer, qtbot, tmp_path, pair):
    from napari_stacklab._napari.transform_tool import TransformTool

    viewer = make_napari_viewer()
    viewer.add_image(pair[0], name="plane")
    tool = TransformTool(viewer)
    assert tool.apply() is None and "no transform" in tool.status.value
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": "affine"}')
    assert tool.load(bad) is None and "holds no transform" in tool.status.value
    shifts = tmp_path / "shifts.json"
    shifts.write_text('{"stacklab_shifts": 1, "shifts": [[0, 0], [1, 2]]}')
    tool.load(shifts)
    tool.target.value = viewer.layers["plane"]
    assert tool.apply() is None and "frames" in tool.status.value  # a 2-D image has no frames to shift
    assert [layer.name for layer in viewer.layers] == ["plane"]


def test_align_set_offers_features_then_ecc(make_napari_viewer, qtbot, pair):
    from napari_stacklab._napari.align_widget import METHODS, AlignSetWidget

    fixed, moving = pair
    turned = Transform("euclidean", np.array([[np.cos(0.5), -np.sin(0.5), 0], [np.sin(0.5), np.cos(0.5), 0],
                                              [0, 0, 1]]))
    centre = Transform.from_shift([128.0, 128.0])
    about_centre = centre @ turned @ centre.inverse()  # 29 degrees: beyond ECC's automatic starts
    viewer = make_napari_viewer()
    viewer.add_image(fixed, name="base")
    viewer.add_image(warp(fixed, about_centre.inverse(), order=3), name="turned")
    widget = AlignSetWidget(viewer)
    assert "features + ECC" in METHODS
    widget.base.value, widget.targets.value = viewer.layers["base"], [viewer.layers["turned"]]
    widget.method.value, widget.model.value = "features + ECC", "euclidean"
    widget.run()
    finish(qtbot, widget)
    found = widget.results["turned"]["transform"]
    assert corner_error(found, about_centre) < 0.05 and "iterations" in found.metadata  # refined by ECC
    step = viewer.layers["turned aligned"].metadata["stacklab"]["steps"][-1]
    assert step["result"]["method"] == "features + ECC" and step["result"]["fixed"] == "base"


def test_transform_tool_moves_every_channel_of_rgb_and_channel_axis_layers_alike(make_napari_viewer, tmp_path):
    from napari_stacklab._napari.transform_tool import TransformTool, Recorded, write_transform_file

    photo = data.astronaut()[::4, ::4]  # (128, 128, 3) uint8
    shift = Transform.from_shift([3.0, -5.0])
    write_transform_file(Recorded(transform=shift), tmp_path / "shift.json")
    viewer = make_napari_viewer()
    viewer.add_image(photo, name="photo", rgb=True)
    channels = np.moveaxis(photo, -1, 0).astype(np.float32)  # (3, 128, 128), a "c" axis
    viewer.add_image(channels, name="channels", axis_labels=("c", "y", "x"))
    tool = TransformTool(viewer)
    tool.load(tmp_path / "shift.json")
    tool.target.value = viewer.layers["photo"]
    colour = tool.apply()
    assert colour.rgb and colour.data.shape == photo.shape
    expected = np.stack([ndi_shift(photo[..., c].astype(np.float32), (-3.0, 5.0)) for c in range(3)], axis=-1)
    np.testing.assert_allclose(np.asarray(colour.data), expected, atol=1e-3)
    tool.target.value = viewer.layers["channels"]
    moved = tool.apply()
    assert moved.data.shape == channels.shape
    np.testing.assert_allclose(np.asarray(moved.data), np.moveaxis(expected, -1, 0), atol=1e-3)


def ndi_shift(frame, by):
    from scipy import ndimage as ndi

    return ndi.shift(frame, by, order=1, mode="constant")


def test_ellipses_become_polygons_when_the_transform_shears_them():
    from napari_stacklab._napari.transform_tool import moved_shapes

    ellipse = np.array([[10.0, 10], [10, 30], [20, 30], [20, 10]])  # napari's corners of the bounding box
    shear = Transform("affine", [[1.0, 0.4, 0], [0, 1.0, 0], [0, 0, 1]])
    turn = Transform("euclidean", [[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]])
    for t, kind in ((shear, "polygon"), (turn, "ellipse")):
        (moved,), (shape_type,) = moved_shapes([ellipse], ["ellipse"], lambda v: t.inverse().apply_points(v))
        assert shape_type == kind
        if kind == "polygon":  # the outline itself moved: every vertex on the image of the ellipse
            back = t.apply_points(moved)
            centre, radii = np.array([15.0, 20.0]), np.array([5.0, 10.0])
            np.testing.assert_allclose((((back - centre) / radii) ** 2).sum(axis=1), 1.0, atol=1e-9)
        else:
            np.testing.assert_allclose(moved, t.inverse().apply_points(ellipse))
