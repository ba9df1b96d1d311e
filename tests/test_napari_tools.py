"""The twelve stateful tools against one contract, in real viewers (run under xvfb-run).

Every tool is opened from the manifest, as the menus open it, and driven:

- through a valid run: its outputs keep the source's pixel size and units (napari
  never falls back to "Inconsistent units across layers"), record their history
  as steps, and export as a YAML recipe that ``stacklab run`` replays or, for the
  tools' steps that are not registry operations, as a Python script that
  reproduces the layer in a subprocess;
- through invalid states: nothing to work on, only layers of the wrong kind,
  a missing optional dependency (its import made to fail here), a layer
  deleted while the tool computes: each gives a message in the tool's status
  line and a napari notification, and never an uncaught exception.

It also checks what the base gives every tool: connections released when the
dock closes, tabs instead of a taller window on a 1280 x 800 screen, the
choosers' filters, and the one-time warning about napari's own TIFF writer.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from _gates import Gate
from skimage import data

import napari_stacklab as sl
from napari_stacklab._napari import _tool
from napari_stacklab._napari.align_widget import AlignSetWidget
from napari_stacklab._napari.drift_widget import DriftWidget
from napari_stacklab._napari.equalize_widget import EqualizeSetWidget
from napari_stacklab._napari.histogram_widget import HistogramWidget
from napari_stacklab._napari.matting_widget import BackgroundRemovalWidget
from napari_stacklab._napari.measure_widget import MeasureWidget
from napari_stacklab._napari.navigator import StemNavigator
from napari_stacklab._napari.points_tool import PointRegistrationWidget
from napari_stacklab._napari.prepare_widget import PrepareImageWidget
from napari_stacklab._napari.profile_widget import LineProfileWidget
from napari_stacklab._napari.recipe_widget import RecipeExportWidget
from napari_stacklab._napari.transform_tool import TransformTool
from napari_stacklab.register import Transform, warp

PLUGIN = "napari-stacklab"
WAIT_MS = 60_000
UM = ("um", "um")

#: Menu title -> (class, the method its main button calls).
TOOLS = {
    "Align images to a base": (AlignSetWidget, "run"),
    "Equalize a set of images": (EqualizeSetWidget, "run"),
    "Prepare image": (PrepareImageWidget, "apply"),
    "Remove background": (BackgroundRemovalWidget, "run"),
    "Point registration": (PointRegistrationWidget, "start"),
    "Drift correction": (DriftWidget, "run"),
    "Measure labels": (MeasureWidget, "run"),
    "4D-STEM navigator": (StemNavigator, "start"),
    "Line profile": (LineProfileWidget, "plot"),
    "Histogram": (HistogramWidget, "refresh"),
    "Export recipe or script": (RecipeExportWidget, "save_script"),
    "Apply transform": (TransformTool, "apply"),
}


def open_tool(viewer, title):
    _, tool = viewer.window.add_plugin_dock_widget(PLUGIN, title)
    return tool


def finish(qtbot, tool):
    qtbot.waitUntil(lambda: not tool.running and not getattr(tool, "busy", False), timeout=WAIT_MS)
    qtbot.wait(10)


def messages(notes, tool):
    return [str(note.message) for note in notes if str(note.message).startswith(f"{tool.title}:")]


def units_of(layer):
    return tuple(str(u) for u in layer.units)


def camera(shape=(128, 128)):
    return data.camera()[: shape[0] * 4 : 4, : shape[1] * 4 : 4].astype(np.float32)


def open_and_equalize(viewer, qtbot, paths, reference):
    """Open ``paths`` (name -> file) with the plugin's reader and equalize them to ``reference``'s levels."""
    for path in paths.values():
        viewer.open(str(path), plugin=PLUGIN)
    equalize = open_tool(viewer, "Equalize a set of images")
    equalize.images.value = [viewer.layers[name] for name in paths]
    equalize.reference.value = reference
    equalize.run()
    finish(qtbot, equalize)
    return viewer, equalize


def tif(tmp_path, name, array, scale=(0.5, 0.5), units=UM, labels=None):
    path = tmp_path / f"{name}.tif"
    labels = labels or tuple("tyx"[-array.ndim:]) if array.ndim <= 3 else None
    sl.io.imwrite(path, sl.io.Image(array, scale=scale, units=units, axis_labels=labels, name=name), overwrite=True)
    return path


def run_script(tmp_path, exporter, layer):
    """Export ``layer`` as a script, run it in a subprocess, return what it wrote."""
    exporter.layer.value = layer
    script = exporter.save_script(tmp_path / f"{layer.name.replace(' ', '_')}.py")
    assert script is not None, exporter.status.value
    out = tmp_path / f"{layer.name.replace(' ', '_')}_out.tif"
    done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return sl.io.imread(out)


def replay_with_cli(tmp_path, exporter, layer, source, images=None, output=None):
    """Save ``layer``'s recipe, replay it over ``source`` with ``stacklab run`` in a subprocess.

    ``images`` gives the files of the images the recipe names (``--image NAME=FILE``); ``output``
    picks the written file of a several-output step (``<stem>_<output>.tif``).
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    exporter.layer.value = layer
    recipe = exporter.save(tmp_path / f"{layer.name.replace(' ', '_')}.yaml")
    assert recipe is not None, exporter.status.value
    out = tmp_path / "cli"
    named = [f"--image={name}={path}" for name, path in (images or {}).items()]
    done = subprocess.run([sys.executable, "-m", "napari_stacklab.cli", "run", str(recipe), str(source), "-o",
                           str(out), "--format", "tiff", "-q", *named], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    written = [line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("wrote ")]
    if output is not None:
        written = [path for path in written if path.endswith(f"_{output}.tif")]
    return sl.io.imread(written[0])


# --- every tool is a Tool ---------------------------------------------------------------------------
def test_every_tool_opens_from_the_menu_on_the_one_base(make_napari_viewer):
    viewer = make_napari_viewer()
    for title, (cls, method) in TOOLS.items():
        tool = open_tool(viewer, title)
        assert isinstance(tool, cls) and isinstance(tool, _tool.Tool), title
        assert callable(getattr(tool, method))
        assert tool._scroll.widget() is tool.body.native  # the body scrolls; status and Cancel stay below
        viewer.window.remove_dock_widget(tool.native.parent())
        assert tool.closed and tool._links == [], f"{title} kept connections after its dock closed"


# --- invalid states -----------------------------------------------------------------------------------
@pytest.mark.parametrize("title", TOOLS)
def test_nothing_to_work_on_is_a_message(title, make_napari_viewer, qtbot, escaped):
    viewer = make_napari_viewer()
    tool = open_tool(viewer, title)
    result = getattr(tool, TOOLS[title][1])()
    qtbot.wait(20)
    assert result is None and not tool.running
    assert tool.status.value, f"{title} said nothing"
    if title != "Histogram":  # the histogram follows the selection: it says "select an image layer" quietly
        assert messages(escaped[1], tool), f"{title} sent no notification"
    assert len(viewer.layers) == 0


def _only_labels(viewer):
    viewer.add_labels(np.zeros((32, 32), np.int32), name="labels")


def _only_rgb(viewer):
    viewer.add_image(data.astronaut()[::8, ::8], name="photo", rgb=True)


def _only_a_plane(viewer):
    viewer.add_image(camera(), name="plane")


def _only_a_stack(viewer):
    viewer.add_image(np.zeros((3, 32, 32), np.float32), name="stack")


def _only_fft(viewer):
    fft = sl.filters.fft_amplitude(camera())
    viewer.add_image(fft, name="camera fft_amplitude",
                     metadata={"stacklab": {"steps": [{"op": "fft_amplitude", "params": {}}]}})


#: Title -> a viewer holding only layers the tool cannot use.
WRONG_KINDS = {
    "Align images to a base": _only_labels,
    "Equalize a set of images": _only_labels,
    "Prepare image": _only_labels,
    "Remove background": _only_a_stack,
    "Point registration": _only_fft,
    "Drift correction": _only_a_plane,
    "Measure labels": _only_a_plane,
    "4D-STEM navigator": _only_a_stack,
    "Line profile": _only_rgb,
    "Histogram": _only_labels,
    "Export recipe or script": _only_a_plane,  # a layer with no recorded steps: nothing to export
    "Apply transform": _only_a_plane,  # no layer records a transform, none was loaded
}


@pytest.mark.parametrize("title", TOOLS)
def test_wrong_layer_kinds_are_not_offered_and_said(title, make_napari_viewer, qtbot, escaped):
    viewer = make_napari_viewer()
    WRONG_KINDS[title](viewer)
    tool = open_tool(viewer, title)
    viewer.layers.selection.active = viewer.layers[0]
    before = [layer.name for layer in viewer.layers]
    result = getattr(tool, TOOLS[title][1])()
    qtbot.wait(20)
    assert result is None and not tool.running and tool.status.value
    assert [layer.name for layer in viewer.layers] == before


def test_choosers_never_offer_fft_derived_or_the_same_layer_twice(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(camera(), name="fixed")
    _only_fft(viewer)
    viewer.add_image(camera()[::-1].copy(), name="moving")
    points = PointRegistrationWidget(viewer)
    assert points.fixed.value.name == "fixed" and points.moving.value.name == "moving"  # never the FFT layer
    assert "camera fft_amplitude" not in [layer.name for layer in points.moving.choices]
    points.moving.value = viewer.layers["fixed"]
    assert points.fixed.value is viewer.layers["moving"]  # choosing the other's layer swaps them apart
    _tool.publish(viewer, camera(), source=viewer.layers["fixed"], name="fixed heatmap", role="heatmap")
    assert "fixed heatmap" not in [layer.name for layer in points.fixed.choices]

    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="stack")
    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="channel 2")
    drift = DriftWidget(viewer)
    drift.source.value = viewer.layers["stack"]
    assert drift.other.value is viewer.layers["channel 2"]


def test_missing_pymatting_names_the_install_command(make_napari_viewer, qtbot, monkeypatch, escaped):
    monkeypatch.setitem(sys.modules, "pymatting", None)  # "import pymatting" now fails, as without the package
    viewer = make_napari_viewer()
    image = np.zeros((48, 48), np.float32)
    image[12:36, 12:36] = 1.0
    viewer.add_image(image, name="square")
    tool = open_tool(viewer, "Remove background")
    tool.min_size.value = 0
    tool.run()
    finish(qtbot, tool)
    assert "pip install" in tool.status.value and "pymatting" in tool.status.value.lower()
    assert any("pip install" in text for text in messages(escaped[1], tool))
    assert "square alpha" not in viewer.layers
    tool.mask_only.value = True  # the way without PyMatting still works
    tool.run()
    finish(qtbot, tool)
    assert "square alpha" in viewer.layers


def _two_images(viewer):
    viewer.add_image(camera(), name="a", scale=(0.5, 0.5), units=UM)
    viewer.add_image(np.roll(camera(), 3, axis=1), name="b", scale=(0.5, 0.5), units=UM)


#: Title -> (module attribute gated, set the inputs up, the layer deleted mid-run, what the run would add).
MID_RUN = {
    "Align images to a base": ("align_widget.align_images", _two_images, "b", "b aligned"),
    "Equalize a set of images": ("equalize_widget.equalize_task", _two_images, "b", "a equalized"),
    "Prepare image": ("prepare_widget.run_steps_with_progress", _two_images, "b", "b prepared"),
    "Remove background": ("matting_widget.remove_background_task", _two_images, "b", "b alpha"),
    "Drift correction": ("drift_widget.drift", lambda v: v.add_image(np.stack([camera()] * 3), name="b"), "b",
                         "b drift_correct"),
    "Measure labels": ("measure_widget._measure",
                       lambda v: v.add_labels(np.ones((16, 16), np.int32), name="b"), "b", None),
}


@pytest.mark.parametrize("title", MID_RUN)
def test_deleting_the_input_mid_run_adds_nothing_and_says_so(title, make_napari_viewer, qtbot, monkeypatch, escaped):
    import importlib

    target, setup, doomed, output = MID_RUN[title]
    module_name, attribute = target.split(".")
    module = importlib.import_module(f"napari_stacklab._napari.{module_name}")
    gate = Gate(WAIT_MS)
    monkeypatch.setattr(module, attribute, gate.wrap(getattr(module, attribute)))
    viewer = make_napari_viewer()
    setup(viewer)
    tool = open_tool(viewer, title)
    if title == "Equalize a set of images":
        tool.images.value = list(viewer.layers)
    if title == "Align images to a base":
        tool.base.value, tool.targets.value = viewer.layers["a"], [viewer.layers["b"]]
    for chooser in ("image", "source"):
        if hasattr(tool, chooser):
            getattr(tool, chooser).value = viewer.layers[doomed]
    worker = getattr(tool, TOOLS[title][1])()
    assert worker is not None, tool.status.value
    assert gate.entered.wait(WAIT_MS / 1000)
    assert tool.running and tool.cancel_button.enabled
    viewer.layers.remove(doomed)
    gate.opened.set()
    finish(qtbot, tool)
    assert f"{doomed!r} was removed" in tool.status.value
    assert output is None or output not in viewer.layers
    assert any("was removed" in text for text in messages(escaped[1], tool))


def test_a_runtime_error_in_a_tool_worker_ends_the_run(make_napari_viewer, qtbot, monkeypatch, escaped):
    """A RuntimeError (a CUDA driver error, say) escaping a tool's task, which superqt's worker would swallow."""
    from napari_stacklab._napari import drift_widget

    def failing(*_args, **_kwargs):
        raise RuntimeError("cuFFT failed to execute")

    monkeypatch.setattr(drift_widget, "drift", failing)
    stack = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="stack")
    tool = open_tool(viewer, "Drift correction")
    tool.run()
    finish(qtbot, tool)
    assert tool.status.value.startswith("Drift correction: cuFFT failed to execute"), tool.status.value
    assert [layer.name for layer in viewer.layers] == ["stack"] and tool.run_button.enabled


def test_frames_drift_cannot_match_end_the_run_with_a_message(make_napari_viewer, qtbot, escaped):
    """Frames of pure noise match nothing: drift says which frame, no layer is added."""
    noise = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    viewer = make_napari_viewer()
    viewer.add_image(noise, name="noise")
    tool = open_tool(viewer, "Drift correction")
    tool.set_params(refine=True)
    tool.run()
    finish(qtbot, tool)
    assert tool.status.value.startswith("Drift correction: ") and "frame" in tool.status.value, tool.status.value
    assert [layer.name for layer in viewer.layers] == ["noise"] and tool.run_button.enabled


def test_cancel_stops_align_between_images(make_napari_viewer, qtbot, monkeypatch, escaped):
    from napari_stacklab._napari import align_widget

    estimated = []
    real = align_widget._estimate

    def counted(*args):
        estimated.append(args[0])
        if len(estimated) == 1:
            tool.cancel()  # pressed while the first image is aligned
        return real(*args)

    monkeypatch.setattr(align_widget, "_estimate", counted)
    viewer = make_napari_viewer()
    _two_images(viewer)
    viewer.add_image(np.roll(camera(), 2, axis=0), name="c", scale=(0.5, 0.5), units=UM)
    tool = open_tool(viewer, "Align images to a base")
    tool.base.value = viewer.layers["a"]
    tool.targets.value = [viewer.layers["b"], viewer.layers["c"]]
    tool.method.value = "phase correlation"
    tool.run()
    finish(qtbot, tool)
    assert len(estimated) == 1  # the second image was never started
    assert "cancelled" in tool.status.value and "b aligned" not in viewer.layers


# --- valid runs: units, scale, history, exports -------------------------------------------------------
def test_compare_tools_keep_units_and_export_scripts_that_reproduce_the_layers(make_napari_viewer, qtbot, tmp_path,
                                                                              escaped):
    truth = Transform("affine", np.array([[1.01, 0.02, 2.0], [-0.02, 0.99, -1.5], [0, 0, 1]]))
    base = camera()
    paths = {"base": tif(tmp_path, "base", base),
             "moved": tif(tmp_path, "moved", warp(base, truth.inverse(), order=3, mode="nearest") * 0.5 + 10)}
    viewer, equalize = open_and_equalize(make_napari_viewer(), qtbot, paths, "base")
    align = open_tool(viewer, "Align images to a base")
    align.base.value = viewer.layers["base equalized"]
    align.targets.value = [viewer.layers["moved equalized"]]
    align.run()
    finish(qtbot, align)
    aligned = viewer.layers["moved equalized aligned"]
    for layer in viewer.layers:
        assert units_of(layer)[-2:] == ("micrometer", "micrometer") and tuple(layer.scale)[-2:] == (0.5, 0.5), layer
    assert viewer.layers.extent.units is not None
    assert [s["op"] for s in aligned.metadata["stacklab"]["steps"]] == ["equalize_levels", "apply_transform"]

    exporter = open_tool(viewer, "Export recipe or script")
    exporter.layer.value = aligned
    # both steps are registry operations: the recipe replays with stacklab run, and so does the script
    assert exporter.save_button.enabled, exporter.status.value
    assert "op: equalize_levels" in exporter.yaml.value and "op: apply_transform" in exporter.yaml.value
    replayed = replay_with_cli(tmp_path / "recipe", exporter, aligned, paths["moved"])
    np.testing.assert_allclose(np.asarray(replayed.data), np.asarray(aligned.data), rtol=1e-5, atol=1e-4)
    written = run_script(tmp_path, exporter, aligned)
    np.testing.assert_allclose(np.asarray(written.data), np.asarray(aligned.data), rtol=1e-5, atol=1e-4)
    assert written.scale == (0.5, 0.5) and written.units == UM


def test_prepare_and_drift_results_replay_with_stacklab_run(make_napari_viewer, qtbot, tmp_path, escaped):
    rng = np.random.default_rng(3)
    frames = np.stack([np.roll(camera(), (i, -i), axis=(0, 1)) for i in range(4)]) + rng.normal(0, 1, (4, 128, 128))
    paths = {"plane": tif(tmp_path, "plane", camera()),
             "movie": tif(tmp_path, "movie", frames.astype(np.float32), scale=(2.0, 0.5, 0.5),
                          units=("s", "um", "um"), labels=("t", "y", "x"))}
    viewer = make_napari_viewer()
    for path in paths.values():
        viewer.open(str(path), plugin=PLUGIN)
    prepare = open_tool(viewer, "Prepare image")
    prepare.image.value = viewer.layers["plane"]
    prepare.gamma.value, prepare.gain.value = 0.8, 1.5
    prepare.apply()
    finish(qtbot, prepare)
    drift = open_tool(viewer, "Drift correction")
    drift.source.value = viewer.layers["movie"]
    drift.set_params(refine=False)
    drift.run()
    finish(qtbot, drift)
    assert viewer.layers.extent.units is not None
    exporter = open_tool(viewer, "Export recipe or script")
    for name, source in (("plane prepared", paths["plane"]), ("movie drift_correct", paths["movie"])):
        layer = viewer.layers[name]
        assert units_of(layer)[-1] == "micrometer" and tuple(layer.scale)[-1] == 0.5
        replayed = replay_with_cli(tmp_path / name.replace(" ", "_"), exporter, layer, source)
        np.testing.assert_allclose(np.asarray(replayed.data), np.asarray(layer.data), rtol=1e-5, atol=1e-4)
        assert replayed.scale[-1] == 0.5
        scripted = run_script(tmp_path, exporter, layer)
        np.testing.assert_allclose(np.asarray(scripted.data), np.asarray(layer.data), rtol=1e-5, atol=1e-4)


def test_point_tool_and_drift_shift_results_replay_with_stacklab_run(make_napari_viewer, qtbot, tmp_path, escaped):
    """The point tool's "registered" layer and the drift tool's "apply the same shifts" layer record registry
    steps (apply_transform, apply_drift): their YAML recipes replay with ``stacklab run`` to the same data."""
    truth = Transform("affine", np.array([[1.01, 0.03, 2.0], [-0.02, 0.99, -1.5], [0, 0, 1]]))
    rng = np.random.default_rng(5)
    movie = np.stack([np.roll(camera(), (i, -2 * i), axis=(0, 1)) for i in range(4)]) + rng.normal(0, 1, (4, 128, 128))
    frame = {"scale": (2.0, 0.5, 0.5), "units": ("s", "um", "um"), "labels": ("t", "y", "x")}
    paths = {"fixed": tif(tmp_path, "fixed", camera()),
             "moving": tif(tmp_path, "moving", warp(camera(), truth.inverse(), order=3, mode="nearest")),
             "ch1": tif(tmp_path, "ch1", movie.astype(np.float32), **frame),
             "ch2": tif(tmp_path, "ch2", (0.5 * movie + 3).astype(np.float32), **frame)}
    viewer = make_napari_viewer()
    for path in paths.values():
        viewer.open(str(path), plugin=PLUGIN)
    points = open_tool(viewer, "Point registration")
    points.fixed.value, points.moving.value = viewer.layers["fixed"], viewer.layers["moving"]
    points.start()
    for f in np.array([[20.0, 30.0], [90.0, 40.0], [60.0, 100.0], [110.0, 110.0]]):
        points.points["fixed"].add(f)
        points.points["moving"].add(truth.apply_points(f))
    registered = points.apply()
    drift = open_tool(viewer, "Drift correction")
    drift.source.value = viewer.layers["ch1"]
    drift.set_params(refine=False)
    drift.run()
    finish(qtbot, drift)
    shifted = drift.apply_to(viewer.layers["ch2"])
    exporter = open_tool(viewer, "Export recipe or script")
    for layer, source, op in ((registered, paths["moving"], "apply_transform"), (shifted, paths["ch2"], "apply_drift")):
        exporter.layer.value = layer
        assert exporter.save_button.enabled and f"op: {op}" in exporter.yaml.value, exporter.status.value
        replayed = replay_with_cli(tmp_path / op, exporter, layer, source)
        np.testing.assert_allclose(np.asarray(replayed.data), np.asarray(layer.data), rtol=1e-5, atol=1e-4)
        assert tuple(replayed.units[-2:]) == UM and replayed.scale[-1] == 0.5


def test_equalized_layers_replay_alone_with_stacklab_run(make_napari_viewer, qtbot, tmp_path, escaped):
    """Issue 16: "Export recipe" said an equalized layer "records no stacklab steps"."""
    base = camera()
    paths = {"base": tif(tmp_path, "base", base),
             "dim": tif(tmp_path, "dim", (base * 0.4 + 30).astype(np.uint16)),
             "soft": tif(tmp_path, "soft", sl.filters.gaussian(base, sigma=2.0) * 1.3 - 5)}
    viewer = make_napari_viewer()
    for path in paths.values():
        viewer.open(str(path), plugin=PLUGIN)
    equalize = open_tool(viewer, "Equalize a set of images")
    exporter = open_tool(viewer, "Export recipe or script")
    chosen = [viewer.layers[name] for name in paths]
    runs = [("median", "histogram", True), ("base", "histogram", False), ("median", "meanstd", True)]
    for reference, method, sharpness in runs:
        equalize.images.value = chosen
        equalize.reference.value = reference
        equalize.method.value, equalize.sharpness.value = method, sharpness
        equalize.run()
        finish(qtbot, equalize)
        for name, source in paths.items():
            layer = viewer.layers[f"{name} equalized"]
            step = layer.metadata["stacklab"]["steps"][-1]
            assert step["op"] == "equalize_levels" and step["params"]["method"] == method
            assert units_of(layer) == ("micrometer", "micrometer") and tuple(layer.scale) == (0.5, 0.5)
            images = {"base": paths["base"]} if reference == "base" else None
            replayed = replay_with_cli(tmp_path / f"{reference}_{method}_{name}", exporter, layer, source, images)
            np.testing.assert_allclose(np.asarray(replayed.data), layer.data, rtol=1e-5, atol=1e-3)
            assert replayed.scale == (0.5, 0.5)
    # the recipe of a layer brings another image to the same levels (mean, sharpness): the set's median
    levels = sl.Recipe.from_metadata(viewer.layers["dim equalized"].metadata)
    again = np.asarray(levels.run(np.flipud(base) * 3.0 + 7).data)
    target = viewer.layers["dim equalized"].data
    np.testing.assert_allclose(again.mean(), target.mean(), rtol=1e-3)
    np.testing.assert_allclose(sl.equalize.laplacian_variance(again), sl.equalize.laplacian_variance(target),
                               rtol=0.02)
    assert viewer.layers.extent.units is not None


def test_colour_images_are_equalized_on_lightness_in_the_tool(make_napari_viewer, qtbot, tmp_path, escaped):
    import tifffile

    photo = data.astronaut()[::4, ::4]
    paths = {"bright": tmp_path / "bright.tif", "dark": tmp_path / "dark.tif"}
    tifffile.imwrite(paths["bright"], photo, photometric="rgb")
    tifffile.imwrite(paths["dark"], (photo * 0.45).astype(np.uint8), photometric="rgb")
    viewer, equalize = open_and_equalize(make_napari_viewer(), qtbot, paths, "bright")
    out = viewer.layers["dark equalized"]
    expected = sl.equalize.equalize_set([photo, (photo * 0.45).astype(np.uint8)], reference=0, rgb=True)[1]
    assert out.rgb and out.data.dtype == np.uint8
    np.testing.assert_array_equal(out.data, expected)
    exporter = open_tool(viewer, "Export recipe or script")
    replayed = replay_with_cli(tmp_path / "cli", exporter, out, paths["dark"])
    assert replayed.rgb
    np.testing.assert_array_equal(np.asarray(replayed.data), out.data)
    viewer.add_image(np.zeros((32, 32), np.float32), name="grey")
    equalize.images.value = [viewer.layers["bright"], viewer.layers["grey"]]
    assert equalize.run() is None and "all grey or all colour" in equalize.status.value


def test_background_removal_replays_with_stacklab_run(make_napari_viewer, qtbot, tmp_path, escaped):
    pytest.importorskip("pymatting")
    disk = np.zeros((64, 64), np.float32)
    yy, xx = np.mgrid[:64, :64]
    disk[np.hypot(yy - 32, xx - 30) < 15] = 200.0
    source = tif(tmp_path, "disk", disk + 20)
    rough = np.zeros((64, 64), np.uint8)
    rough[np.hypot(yy - 32, xx - 30) < 13] = 1
    rough_file = tif(tmp_path, "rough", rough)
    viewer = make_napari_viewer()
    viewer.open(str(source), plugin=PLUGIN)
    viewer.add_labels(rough, name="rough", scale=(0.5, 0.5), units=UM)
    matting = open_tool(viewer, "Remove background")
    exporter = open_tool(viewer, "Export recipe or script")
    matting.image.value = viewer.layers["disk"]
    matting.erode_size.value = 3
    for mask_from in ("intensity thresholds", "labels layer"):
        matting.mask_source.value = mask_from
        matting.labels.value = viewer.layers["rough"]
        matting.run()
        finish(qtbot, matting)
        images = {"rough": rough_file} if mask_from == "labels layer" else None
        for key in ("alpha", "subject", "mask"):
            layer = viewer.layers[f"disk {key}"]
            step = layer.metadata["stacklab"]["steps"][-1]
            assert step["op"] == "remove_background"
            assert ("mask" in step["params"]) == (images is not None)
            replayed = replay_with_cli(tmp_path / f"{mask_from[:6]}_{key}", exporter, layer, source, images,
                                       output=key)
            np.testing.assert_allclose(np.asarray(replayed.data), layer.data, atol=1e-6)
            assert replayed.scale[:2] == (0.5, 0.5)


def test_point_tool_matting_and_measure_keep_units_and_record_steps(make_napari_viewer, qtbot, tmp_path, escaped):
    pytest.importorskip("pymatting")
    truth = Transform.from_shift([2.0, -3.0])
    viewer = make_napari_viewer()
    viewer.open(str(tif(tmp_path, "fixed", camera())), plugin=PLUGIN)
    viewer.open(str(tif(tmp_path, "moving", warp(camera(), truth.inverse()))), plugin=PLUGIN)
    points = open_tool(viewer, "Point registration")
    points.fixed.value, points.moving.value = viewer.layers["fixed"], viewer.layers["moving"]
    points.model.value = "translation"
    points.start()
    for f in np.array([[20.0, 30.0], [90.0, 40.0], [60.0, 100.0]]):
        points.points["fixed"].add(f)
        points.points["moving"].add(truth.apply_points(f))
    registered = points.apply()
    assert units_of(points.points["moving"])[-1] == "micrometer" and units_of(registered)[-1] == "micrometer"
    assert registered.metadata["stacklab"]["steps"][-1]["op"] == "apply_transform"
    exporter = open_tool(viewer, "Export recipe or script")
    scripted = run_script(tmp_path, exporter, registered)
    np.testing.assert_allclose(np.asarray(scripted.data), np.asarray(registered.data), rtol=1e-5, atol=1e-4)

    disk = np.zeros((64, 64), np.float32)
    yy, xx = np.mgrid[:64, :64]
    disk[np.hypot(yy - 32, xx - 30) < 15] = 200.0
    viewer.open(str(tif(tmp_path, "disk", disk + 20)), plugin=PLUGIN)
    matting = open_tool(viewer, "Remove background")
    matting.image.value = viewer.layers["disk"]
    matting.erode_size.value = 3
    matting.run()
    finish(qtbot, matting)
    for key in ("mask", "alpha", "subject"):
        layer = viewer.layers[f"disk {key}"]
        assert units_of(layer)[-1] == "micrometer" and layer.metadata["stacklab"]["steps"][-1]["op"] == "remove_background"
    scripted = run_script(tmp_path, exporter, viewer.layers["disk alpha"])
    np.testing.assert_allclose(np.asarray(scripted.data), viewer.layers["disk alpha"].data, atol=1e-6)

    measure = open_tool(viewer, "Measure labels")
    measure.labels_layer.value = viewer.layers["disk mask"]
    measure.run()
    finish(qtbot, measure)
    assert measure.table.units["area"] == "um^2" and measure.step["op"] == "regionprops_table"
    np.testing.assert_allclose(measure.table["area"], viewer.layers["disk mask"].data.sum() * 0.25)
    assert viewer.layers.extent.units is not None


def test_viewer_tools_follow_physical_units(make_napari_viewer, qtbot, escaped):
    viewer = make_napari_viewer()
    viewer.add_image(camera(), name="cam", scale=(0.25, 0.25), units=UM)
    viewer.add_shapes([[[10, 10], [10, 70]]], shape_type="line", name="line", scale=(0.25, 0.25), units=UM)
    profile = open_tool(viewer, "Line profile")
    distance, _ = profile.plot()
    assert distance[-1] == pytest.approx(60 * 0.25) and "micrometer" in profile.axes.get_xlabel()
    viewer.layers.selection.active = viewer.layers["cam"]
    histogram = open_tool(viewer, "Histogram")
    qtbot.waitUntil(lambda: not histogram.busy and histogram.counts is not None, timeout=WAIT_MS)
    assert histogram.counts.sum() == camera().size
    assert viewer.layers.extent.units is not None


# --- the base ---------------------------------------------------------------------------------------
def test_tools_opened_together_share_tabs_in_a_1280_by_800_window(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QDockWidget

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    viewer.window.resize(1280, 800)
    qtbot.wait(50)
    tools = [open_tool(viewer, title) for title in TOOLS]
    qtbot.wait(200)
    assert window.width() <= 1280 and window.height() <= 800, (window.width(), window.height())
    docks = [tool.native.parent() for tool in tools]
    assert all(isinstance(dock, QDockWidget) for dock in docks)
    group = set(window.tabifiedDockWidgets(docks[0])) | {docks[0]}
    assert group == set(docks)  # one tab group: one tool shown at a time, the canvas keeps its room
    assert all(dock.minimumSizeHint().height() < 400 for dock in docks)
    assert viewer.window._qt_viewer.canvas.native.width() > 500
    gaussian = open_tool(viewer, "Gaussian")  # an operation widget opened later joins the tabs too
    qtbot.wait(100)
    assert gaussian.native.parent() in window.tabifiedDockWidgets(docks[0])
    assert window.width() <= 1280 and window.height() <= 800


@pytest.mark.parametrize("title", TOOLS)
def test_each_tool_is_shown_as_wide_as_its_controls_in_a_1280_by_800_window(title, make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 800)
    tool = open_tool(viewer, title)
    qtbot.wait(100)
    needed = tool.body.native.sizeHint().width()  # labels and fields whole
    shown = tool._scroll.viewport().width()
    assert shown >= needed, f"{title}: {shown} px shown of the {needed} px its controls need (labels cut)"
    assert viewer.window._qt_window.width() <= 1280


def test_operation_widgets_opened_alone_share_tabs(make_napari_viewer, qtbot):
    """With no tool open, operation docks (docked by napari, not through a tool) still join one tab group."""
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    viewer.window.resize(1280, 800)
    qtbot.wait(50)
    widgets = [open_tool(viewer, title) for title in ("Gaussian", "Threshold", "Bandpass")]
    qtbot.wait(200)
    docks = [widget.native.parent() for widget in widgets]
    assert set(window.tabifiedDockWidgets(docks[0])) | {docks[0]} == set(docks)
    assert window.width() <= 1280 and window.height() <= 800
    viewer.window.remove_dock_widget(docks[1])
    assert widgets[1]._closed is False and widgets[1].preview.value is False  # closing stops it, nothing more


def test_publish_copies_the_physical_frame_and_warns_once_about_the_builtin_writer(make_napari_viewer,
                                                                                   monkeypatch, escaped):
    monkeypatch.setattr(_tool, "_WRITER_WARNED", False)
    viewer = make_napari_viewer()
    source = viewer.add_image(np.zeros((3, 16, 16), np.float32), name="src", scale=(2.0, 0.5, 0.5),
                              translate=(0, 1, 2), units=("s", "um", "um"), axis_labels=("t", "y", "x"))
    out = _tool.publish(viewer, np.ones((3, 16, 16), np.float32), source=source, name="src made",
                        steps=[{"op": "gaussian", "params": {"sigma": 1.0}}])
    assert tuple(out.scale) == (2.0, 0.5, 0.5) and tuple(out.translate) == (0, 1, 2)
    assert units_of(out) == ("second", "micrometer", "micrometer") and tuple(out.axis_labels) == ("t", "y", "x")
    assert out.metadata["stacklab"]["steps"] == [{"op": "gaussian", "params": {"sigma": 1.0}}]
    _tool.publish(viewer, np.ones((3, 16, 16), np.float32), source=source, name="src again")
    writer_notes = [n for n in escaped[1] if "napari's own TIFF writer" in str(n.message)]
    assert len(writer_notes) == 1 and "napari-stacklab Save as TIFF" in str(writer_notes[0].message)


def test_export_dock_sets_the_tif_reader_through_napari_settings(make_napari_viewer):
    from napari.settings import get_settings

    viewer = make_napari_viewer()
    exporter = open_tool(viewer, "Export recipe or script")
    exporter.prefer_reader()
    readers = get_settings().plugins.extension2reader
    assert readers["*.tif"] == PLUGIN and readers["*.tiff"] == PLUGIN
    assert "Save as TIFF" in exporter.status.value
