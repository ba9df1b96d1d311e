"""Widgets generated from the registry, opened through the manifest in a real viewer.

Run under Xvfb: ``xvfb-run -a python -m pytest tests/test_napari_widgets.py -q``.
"""

from __future__ import annotations

import threading
import time

import napari
import numpy as np
import pytest
from skimage import data

import napari_stacklab as sl
from napari_stacklab import catalog, engine
from napari_stacklab._napari import _layers, widgets
from napari_stacklab.recipe import PROVENANCE_KEY

da = pytest.importorskip("dask.array")

PLUGIN = "napari-stacklab"
SCALE = (2.0, 0.5, 0.25)
UNITS = ("second", "micrometer", "micrometer")
AXES = ("t", "y", "x")


@pytest.fixture
def stack():
    """Three different 96 x 128 uint16 crops of the camera image."""
    cam = data.camera().astype(np.uint16) * 16
    return np.stack([cam[60 * i : 60 * i + 96, 50 * i : 50 * i + 128] for i in range(3)])


@pytest.fixture
def viewer(make_napari_viewer, stack):
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="cells", scale=SCALE, units=UNITS, axis_labels=AXES)
    return viewer


@pytest.fixture
def errors(monkeypatch):
    """Messages the widgets sent to napari's error notifications."""
    shown = []
    monkeypatch.setattr(widgets.notifications, "show_error", lambda message: shown.append(message))
    return shown


def open_widget(viewer, title, layer="cells"):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, title)
    widget.input.value = viewer.layers[layer]
    return widget


def run_and_wait(qtbot, widget, timeout=30_000):
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


CASES = {
    "Gaussian": ({"sigma": 2.0}, lambda x: sl.filters.gaussian(x, sigma=2.0), "image"),
    "Median": ({"size": 5}, lambda x: sl.filters.median(x, size=5), "image"),
    "Threshold": ({"method": "otsu"}, lambda x: sl.segment.threshold(x, method="otsu"), "labels"),
}


@pytest.mark.parametrize("title", list(CASES))
def test_run_on_all_and_lazy_match_headless_api(qtbot, viewer, stack, title):
    params, api, layer_type = CASES[title]
    widget = open_widget(viewer, title)
    widget.set_params(**params)
    run_and_wait(qtbot, widget)
    op = widget.operation
    out = viewer.layers[f"cells {op.name}"]
    assert isinstance(out, getattr(napari.layers, layer_type.capitalize()))
    expected = api(stack)
    if op.output == "mask":
        assert out.data.dtype == np.uint8
        np.testing.assert_array_equal(out.data.astype(bool), expected)
    else:
        assert out.data.dtype == expected.dtype
        np.testing.assert_allclose(out.data, expected, rtol=1e-6)
    assert tuple(out.scale) == SCALE
    assert tuple(str(u) for u in out.units) == UNITS
    assert tuple(out.axis_labels) == AXES
    record = out.metadata[PROVENANCE_KEY]
    assert record["source"] == "cells"
    assert record["version"] == sl.__version__
    assert record["steps"] == [op.step(op.bind(params))]

    widget.lazy.value = True  # the lazy result replaces the computed one, uncomputed
    widget.run()
    assert not widget.running
    lazy = viewer.layers[f"cells {op.name}"]
    assert lazy is out and isinstance(lazy.data, da.Array)
    np.testing.assert_allclose(np.asarray(lazy.data.compute()).astype(float), np.asarray(expected).astype(float),
                               rtol=1e-6)


def test_preview_shows_current_plane_and_follows_dims(qtbot, viewer, stack):
    widget = open_widget(viewer, "Gaussian")
    widget.set_params(sigma=3.0)
    viewer.dims.current_step = (2, 0, 0)
    widget.preview.value = True
    widget.update_preview()
    preview = viewer.layers["cells gaussian (preview)"]
    np.testing.assert_allclose(preview.data, sl.filters.gaussian(stack[2], sigma=3.0), rtol=1e-6)
    assert tuple(preview.scale) == SCALE[1:]
    assert "cells gaussian" not in viewer.layers  # a preview is not a result

    viewer.dims.current_step = (1, 0, 0)  # the throttled update follows the plane
    qtbot.waitUntil(lambda: np.allclose(preview.data, sl.filters.gaussian(stack[1], sigma=3.0)), timeout=5000)
    widget.set_params(sigma=1.0)  # ... and the parameters
    qtbot.waitUntil(lambda: np.allclose(preview.data, sl.filters.gaussian(stack[1], sigma=1.0)), timeout=5000)

    widget.preview.value = False
    qtbot.waitUntil(lambda: "cells gaussian (preview)" not in viewer.layers, timeout=5000)
    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert widget.input.choices == (viewer.layers["cells"],)


def test_preview_takes_its_frame_from_the_parameters(qtbot, viewer, stack):
    """A 3-D footprint previews on the volume shown (``frame_ndim`` follows ``footprint``), a 2-D one on the plane."""
    volumes = np.stack([stack > 1500, stack[:, ::-1] > 2000])  # (t, z, y, x)
    viewer.add_labels(volumes.astype(np.uint8), name="masks", scale=(1.0, *SCALE))
    widget = open_widget(viewer, "Binary closing", layer="masks")
    widget.set_params(footprint="ball", radius=1)
    viewer.dims.current_step = (1, 2, 0, 0)
    widget.preview.value = True
    widget.update_preview()
    preview = viewer.layers["masks binary_closing (preview)"]
    np.testing.assert_array_equal(preview.data, sl.morphology.binary_closing(volumes[1], footprint="ball", radius=1))
    assert preview.data.shape == volumes.shape[1:] and tuple(preview.scale) == SCALE

    widget.set_params(footprint="disk")  # a plane now: the preview layer is made again with 2 axes
    name = "masks binary_closing (preview)"
    qtbot.waitUntil(lambda: viewer.layers[name].data.shape == volumes.shape[2:], timeout=5000)
    expected = sl.morphology.binary_closing(volumes[1, 2], footprint="disk", radius=1)
    np.testing.assert_array_equal(viewer.layers[name].data, expected)


def test_rerun_replaces_and_chains_accumulate_steps(qtbot, viewer, stack):
    widget = open_widget(viewer, "Gaussian")
    widget.set_params(sigma=1.0)
    run_and_wait(qtbot, widget)
    first = viewer.layers["cells gaussian"]
    widget.set_params(sigma=4.0)
    run_and_wait(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["cells", "cells gaussian"]
    assert viewer.layers["cells gaussian"] is first
    np.testing.assert_allclose(first.data, sl.filters.gaussian(stack, sigma=4.0), rtol=1e-6)
    assert first.metadata[PROVENANCE_KEY]["steps"][-1]["params"]["sigma"] == 4.0
    assert len(first.metadata[PROVENANCE_KEY]["steps"]) == 1

    threshold = open_widget(viewer, "Threshold", layer="cells gaussian")
    run_and_wait(qtbot, threshold)
    mask = viewer.layers["cells gaussian threshold"]
    steps = mask.metadata[PROVENANCE_KEY]["steps"]
    assert [s["op"] for s in steps] == ["gaussian", "threshold"]
    assert mask.metadata[PROVENANCE_KEY]["source"] == "cells"
    smooth = sl.filters.gaussian(stack, sigma=4.0)
    np.testing.assert_array_equal(mask.data.astype(bool), sl.segment.threshold(smooth, method="otsu"))
    # the threshold computed once over the whole stack is shown in the widget
    assert threshold.info.value.startswith("threshold: value = ")
    shown = float(threshold.info.value.split("=")[1])
    assert shown == pytest.approx(sl.segment.threshold_value(smooth, method="otsu"), rel=1e-5)


def _slow_stack(stack, computed):
    """A lazy stack whose frames take 0.3 s each to 'read' and count how many were read."""

    def read(block):
        computed.append(1)
        time.sleep(0.3)
        return block

    lazy = da.from_array(np.concatenate([stack] * 4), chunks=(1, 96, 128))
    return lazy.map_blocks(read, dtype=lazy.dtype)


def test_cancel_stops_and_adds_nothing(qtbot, make_napari_viewer, stack):
    viewer = make_napari_viewer()
    computed = []
    viewer.add_image(_slow_stack(stack, computed), name="slow", contrast_limits=(0, 4096))
    widget = open_widget(viewer, "Gaussian", layer="slow")
    shown_before = len(computed)
    aborted = []
    widget.run()
    widget._worker.aborted.connect(lambda: aborted.append(True))
    qtbot.waitUntil(lambda: len(computed) > shown_before, timeout=10_000)
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.running, timeout=10_000)
    assert aborted == [True]
    assert "slow gaussian" not in viewer.layers
    assert len(computed) - shown_before < 12  # stopped well before all 12 frames were read
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_worker_error_notifies_and_viewer_survives(qtbot, viewer, stack, errors):
    widget = open_widget(viewer, "Threshold")
    widget.set_params(method="manual", value=None)  # manual needs a value: raised in the worker
    run_and_wait(qtbot, widget)
    assert len(errors) == 1 and "needs a threshold value" in errors[0]
    assert "cells threshold" not in viewer.layers
    assert widget.run_button.enabled
    widget.set_params(value=1000.0)
    run_and_wait(qtbot, widget)
    np.testing.assert_array_equal(viewer.layers["cells threshold"].data.astype(bool), stack > 1000)

    gaussian = open_widget(viewer, "Gaussian")  # invalid text: refused in the main thread
    gaussian.fields["sigma"].widget.value = "two"
    gaussian.run()
    assert len(errors) == 2 and "sigma" in errors[1]
    assert not gaussian.running and "cells gaussian" not in viewer.layers


def test_per_axis_image_and_device_parameters(qtbot, viewer, stack, monkeypatch):
    seen = []
    real = engine.run

    def spy(op, image, params, device=None, **channels):
        seen.append((threading.current_thread() is threading.main_thread(), device))
        return real(op, image, params, device=device, **channels)

    monkeypatch.setattr(engine, "run", spy)
    widget = open_widget(viewer, "Gaussian")
    widget.fields["sigma"].widget.value = "1, 3"
    widget.device.value = "cpu"
    run_and_wait(qtbot, widget)
    assert seen == [(False, "cpu")]  # computed in the worker thread, on the chosen device
    out = viewer.layers["cells gaussian"]
    np.testing.assert_allclose(out.data, sl.filters.gaussian(stack, sigma=(1.0, 3.0)), rtol=1e-6)
    assert out.metadata[PROVENANCE_KEY]["steps"][0]["params"]["sigma"] == [1.0, 3.0]

    reference = stack[1, ::-1] // 2
    viewer.add_image(reference, name="reference")
    widget = open_widget(viewer, "Match histograms")
    widget.set_params(reference=viewer.layers["reference"])
    run_and_wait(qtbot, widget)
    out = viewer.layers["cells match_histograms"]
    expected = sl.filters.match_histograms(stack, reference=reference)
    np.testing.assert_allclose(out.data, expected, rtol=1e-6)
    assert out.metadata[PROVENANCE_KEY]["steps"][0]["params"]["reference"] == {"layer": "reference"}


def test_table_and_points_outputs(qtbot, viewer, tmp_path):
    labels = np.zeros((64, 64), np.int32)
    labels[5:15, 5:25] = 1
    labels[30:50, 30:40] = 2
    viewer.add_labels(labels, name="nuclei", scale=(0.5, 0.5), units=("micrometer", "micrometer"))
    widget = open_widget(viewer, "Regionprops table", layer="nuclei")
    run_and_wait(qtbot, widget)
    table = viewer.window.dock_widgets["nuclei regionprops_table"]
    expected = sl.measure.regionprops_table(labels, spacing=(0.5, 0.5))
    np.testing.assert_allclose(table.frame["label"], expected["label"])
    assert table.table_view.rowCount() == 2
    features = viewer.layers["nuclei"].features
    np.testing.assert_array_equal(features["index"], [1, 2])
    path = tmp_path / "props.csv"
    table.save_csv(path)
    assert path.read_text().splitlines()[0].split(",") == list(table.frame.columns)
    run_and_wait(qtbot, widget)  # re-running refreshes the same dock
    assert table is viewer.window.dock_widgets["nuclei regionprops_table"]

    image = np.zeros((2, 40, 40), np.float32)
    image[:, 10, 12] = 5
    image[:, 30, 25] = 9
    viewer.add_image(image, name="spots", scale=(1, 0.2, 0.2))
    widget = open_widget(viewer, "Find peaks", layer="spots")
    run_and_wait(qtbot, widget)
    points = viewer.layers["spots find_peaks"]
    assert isinstance(points, napari.layers.Points)
    expected = np.asarray(sl.measure.find_peaks(image))
    np.testing.assert_allclose(np.sort(points.data, axis=0), np.sort(expected, axis=0), atol=1e-6)
    np.testing.assert_allclose(points.scale[-2:], (0.2, 0.2))


def test_spatial_kwargs_copy_trailing_axes(stack):
    layer = napari.layers.Image(stack, scale=SCALE, units=UNITS, axis_labels=AXES, rotate=30)
    fewer = _layers.spatial_kwargs(layer, 2)
    assert fewer["scale"] == SCALE[1:]
    assert fewer["units"] == UNITS[1:]
    assert fewer["axis_labels"] == AXES[1:]
    np.testing.assert_allclose(fewer["rotate"], np.asarray(layer.rotate)[1:, 1:])
    more = _layers.spatial_kwargs(layer, 4)
    assert more["scale"] == (1.0, *SCALE)
    assert more["units"] == ("pixel", *UNITS)
    assert len(set(more["axis_labels"])) == 4 and more["axis_labels"][1:] == AXES


def test_every_operation_widget_opens_through_the_manifest(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 16, 16), np.float32), name="x")
    from napari_stacklab._napari._contrib import OPERATION_TOOLS

    for op in catalog.operations():
        if op.name in OPERATION_TOOLS:  # a tool built on the operation opens instead (test_napari_tools.py)
            continue
        dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, op.title)
        assert isinstance(widget, widgets.OperationWidget) and widget.operation is op
        assert set(widget.fields) == {p.name for p in op.params}
        assert widget.input.value is viewer.layers["x"]
        viewer.window.remove_dock_widget(dock)



def test_rgb_layer_result_is_shown_as_rgb_with_the_layer_pixel_size(qtbot, viewer):
    photo = data.astronaut()[::4, ::4]
    viewer.add_image(photo, name="photo", rgb=True, scale=(0.5, 0.5), units=("um", "um"))
    widget = open_widget(viewer, "Adjust saturation", layer="photo")
    widget.set_params(factor=1.5)
    run_and_wait(qtbot, widget)
    out = viewer.layers["photo adjust_saturation"]
    assert out.rgb and out.data.shape == photo.shape
    assert tuple(out.scale) == (0.5, 0.5) and tuple(str(u) for u in out.units) == ("micrometer", "micrometer")
    params = {k: v for k, v in out.metadata["stacklab"]["steps"][-1]["params"].items()}
    np.testing.assert_array_equal(out.data, sl.filters.adjust_saturation(photo, rgb=True, **params))  # uint8 RGB


def test_inpaint_with_a_mask_layer_per_frame_runs_previews_and_records(qtbot, viewer, stack):
    """A Labels stack (a mask per time point, e.g. from a threshold) as the mask of every frame in turn."""
    masks = np.zeros(stack.shape, np.uint8)
    for t in range(len(stack)):
        masks[t, 10 + 20 * t : 14 + 20 * t, 30:36] = 1
    viewer.add_labels(masks, name="defects", scale=SCALE)
    widget = open_widget(viewer, "Inpaint")
    widget.set_params(mask=viewer.layers["defects"], method="nearest")
    expected = sl.preprocess.inpaint(stack, mask=masks, method="nearest")
    viewer.dims.current_step = (2, 0, 0)
    widget.preview.value = True
    widget.update_preview()
    np.testing.assert_array_equal(viewer.layers["cells inpaint (preview)"].data, expected[2])
    run_and_wait(qtbot, widget)
    out = viewer.layers["cells inpaint"]
    np.testing.assert_array_equal(out.data, expected)
    assert out.metadata[PROVENANCE_KEY]["steps"][0]["params"]["mask"] == {"layer": "defects"}


# --- small truths: the frame, the units and the values a widget shows ---------------------------------
def test_fft_layer_is_in_reciprocal_units(qtbot, viewer, stack):
    """Issue 16: the FFT layer kept the image's pixel size (micrometres) for frequencies."""
    widget = open_widget(viewer, "Fft amplitude", "cells")
    run_and_wait(qtbot, widget)
    fft = viewer.layers["cells fft_amplitude"]
    rows, cols = stack.shape[1:]
    np.testing.assert_allclose(fft.scale, (2.0, 1 / (rows * 0.5), 1 / (cols * 0.25)))
    np.testing.assert_allclose(fft.translate[1:], (-(rows // 2) / (rows * 0.5), -(cols // 2) / (cols * 0.25)))
    assert [str(u) for u in fft.units] == ["second", "1 / micrometer", "1 / micrometer"]
    assert tuple(fft.axis_labels) == ("t", "ky", "kx")
    # zero frequency (the brightest pixel, the mean) sits at the origin of the frequency axes
    peak = np.unravel_index(np.argmax(fft.data[0]), fft.data.shape[1:])
    np.testing.assert_allclose(fft.data_to_world((0, *peak))[1:], (0.0, 0.0), atol=1e-12)
    # a 1 / (16 px) stripe pattern peaks at the frequency 1 / (16 * pixel size)
    stripes = np.cos(2 * np.pi * np.arange(128) / 16)[None, :] * np.ones((96, 1))
    viewer.add_image(stripes.astype(np.float32), name="stripes", scale=(0.5, 0.25), units=("um", "um"))
    widget.input.value = viewer.layers["stripes"]
    run_and_wait(qtbot, widget)
    spectrum = viewer.layers["stripes fft_amplitude"]
    row = spectrum.data[48].copy()
    row[64] = 0  # the zero frequency
    kx = spectrum.data_to_world((48, int(np.argmax(row))))[1]
    assert abs(kx) == pytest.approx(1 / (16 * 0.25))


def test_band_pass_widget_states_the_unit_of_its_cutoffs(make_napari_viewer):
    viewer = make_napari_viewer()
    for title in ("Bandpass", "Lowpass", "Highpass"):
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, title)
        labels = [f.widget.label for name, f in widget.fields.items() if "cutoff" in name]
        assert labels and all(label.endswith("(cycles per frame width)") for label in labels), labels


def test_centre_of_mass_shows_the_centre_it_used_and_takes_the_beam_centre(qtbot, make_napari_viewer):
    """Issue 16: the sample's beam centre is 32.0; the automatic one is 31.5, and the widget did not say so."""
    scan = sl.datasets.stem4d(scan=12, detector=64)
    viewer = make_napari_viewer()
    viewer.add_image(np.asarray(scan.data), name="scan", scale=scan.scale, units=scan.units,
                     axis_labels=scan.axis_labels)
    widget = open_widget(viewer, "Center of mass", "scan")
    assert "detector pixels" in widget.fields["center"].widget.label
    run_and_wait(qtbot, widget)
    assert "center = (31.5, 31.5)" in widget.info.value
    assert widget.fields["center"].widget.native.placeholderText() == "auto: 31.5, 31.5"
    automatic = viewer.layers["scan center_of_mass com_x"].data.copy()
    beam = scan.metadata["center"]
    assert beam == (32.0, 32.0)
    widget.set_params(center=beam)  # typed into the field
    run_and_wait(qtbot, widget)
    placed = viewer.layers["scan center_of_mass com_x"].data
    np.testing.assert_allclose(automatic - placed, 0.5, atol=1e-4)  # the origin moved by half a pixel
    expected = sl.stem.center_of_mass(np.asarray(scan.data), center=beam)["com_x"]
    np.testing.assert_allclose(placed, expected, atol=1e-5)
    step = viewer.layers["scan center_of_mass com_x"].metadata[PROVENANCE_KEY]["steps"][-1]
    assert step["params"]["center"] == [32.0, 32.0]
