"""Colour and channel layers in a real viewer: the widgets pass the layer's channel axis to the operations.

Run under Xvfb: ``xvfb-run -a python -m pytest tests/test_napari_channels.py -q``.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from skimage import data

import napari_stacklab as sl
from napari_stacklab._napari import _channels
from napari_stacklab.channels import Channels
from napari_stacklab.recipe import Recipe

PLUGIN = "napari-stacklab"


def open_widget(viewer, title, layer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, title)
    widget.input.value = viewer.layers[layer]
    return widget


def run_and_wait(qtbot, widget, timeout=60_000):
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


@pytest.fixture
def photo_viewer(make_napari_viewer, tmp_path):
    """An RGB TIFF opened through the plugin's reader: an RGB layer with the file's pixel size."""
    path = tmp_path / "astronaut.tif"
    tifffile.imwrite(path, data.astronaut()[::4, ::4], photometric="rgb")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    return viewer, path


def test_gaussian_on_an_rgb_layer_equals_the_recipe_and_each_channel(qtbot, photo_viewer):
    viewer, path = photo_viewer
    layer = viewer.layers["astronaut"]
    assert layer.rgb and _channels.layer_channels(layer) == Channels(-1, rgb=True)
    widget = open_widget(viewer, "Gaussian", "astronaut")
    widget.set_params(sigma=2.0)
    run_and_wait(qtbot, widget)
    out = viewer.layers["astronaut gaussian"]
    assert out.rgb and out.data.shape == layer.data.shape
    assert tuple(out.scale) == tuple(layer.scale)
    photo = np.asarray(layer.data)
    per_channel = np.stack([sl.filters.gaussian(photo[..., c], sigma=2.0) for c in range(3)], axis=-1)
    np.testing.assert_array_equal(out.data, per_channel)
    recipe = Recipe.from_metadata(out.metadata)
    np.testing.assert_array_equal(np.asarray(recipe.run(sl.io.imread(path)).data), out.data)


def test_threshold_on_an_rgb_layer_gives_one_mask_from_the_luminance(qtbot, photo_viewer, monkeypatch):
    """Issue 15: Threshold on an RGB layer crashed (add_labels() got an unexpected keyword argument 'rgb')."""
    viewer, _ = photo_viewer
    shown = []
    monkeypatch.setattr("napari_stacklab._napari.widgets.notifications.show_error", shown.append)
    widget = open_widget(viewer, "Threshold", "astronaut")
    widget.preview.value = True
    widget.update_preview()
    assert viewer.layers["astronaut threshold (preview)"].data.shape == (128, 128)
    run_and_wait(qtbot, widget)
    assert not shown
    out = viewer.layers["astronaut threshold"]
    photo = np.asarray(viewer.layers["astronaut"].data)
    np.testing.assert_array_equal(out.data, sl.segment.threshold(sl.channels.luminance(photo)).astype(np.uint8))


def test_a_mask_per_colour_channel_is_shown_with_the_channels_first(qtbot, photo_viewer):
    viewer, _ = photo_viewer
    widget = open_widget(viewer, "Binary erosion", "astronaut")
    run_and_wait(qtbot, widget)
    out = viewer.layers["astronaut binary_erosion"]
    photo = np.asarray(viewer.layers["astronaut"].data)
    assert out.data.shape == (3, 128, 128) and out.axis_labels[0] == "channel"
    np.testing.assert_array_equal(out.data[1], sl.morphology.binary_erosion(photo[..., 1]).astype(np.uint8))


def test_a_channel_axis_layer_previews_and_runs_each_channel(qtbot, make_napari_viewer):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    stack = np.stack([rng.normal(10, 1, (2, 48, 48)), rng.normal(1000, 30, (2, 48, 48))], axis=1)  # t, c, y, x
    stack[:, 0, 10:30, 10:30] += 10
    stack[:, 1, :, :20] += 900
    viewer.add_image(stack.astype(np.float32), name="fluo", axis_labels=("t", "c", "y", "x"))
    widget = open_widget(viewer, "Threshold", "fluo")
    viewer.dims.current_step = (1, 1, 0, 0)
    widget.preview.value = True
    widget.update_preview()
    preview = viewer.layers["fluo threshold (preview)"].data
    expected = sl.segment.threshold(stack.astype(np.float32), channel_axis=1)
    assert preview.shape == (2, 48, 48)  # every channel of the shown time point
    np.testing.assert_array_equal(preview, expected[1].astype(np.uint8))
    run_and_wait(qtbot, widget)
    np.testing.assert_array_equal(viewer.layers["fluo threshold"].data, expected.astype(np.uint8))
    assert expected[:, 0].mean() < 0.3 and 0.3 < expected[:, 1].mean() < 0.6  # each channel its own threshold


def test_the_previewed_plane_holds_every_channel_and_the_whole_frame(make_napari_viewer):
    viewer = make_napari_viewer()
    t_c = viewer.add_image(np.zeros((4, 2, 8, 8), np.float32), axis_labels=("t", "c", "y", "x"))
    c_last = viewer.add_image(np.zeros((4, 8, 8, 2), np.float32), axis_labels=("t", "y", "x", "c"))
    rgb = viewer.add_image(np.zeros((4, 8, 8, 3), np.uint8), rgb=True)
    every = slice(None)
    assert _channels.with_channel_axis((1, 0), _channels.layer_channels(t_c), t_c) == (1, every)
    assert _channels.with_channel_axis((1,), _channels.layer_channels(t_c), t_c) == ()  # a (t, y, x) frame
    assert _channels.with_channel_axis((1, 3), _channels.layer_channels(c_last), c_last) == (1,)
    assert _channels.with_channel_axis((1,), _channels.layer_channels(rgb), rgb) == (1,)
