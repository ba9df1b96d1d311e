"""Steps recorded by the GUI, exported as YAML and replayed headless, give the GUI's result.

Run under Xvfb: ``xvfb-run -a python -m pytest tests/test_napari_recipe.py -q``.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from skimage import data

from napari_stacklab import Recipe
from napari_stacklab._napari import recipe_widget

PLUGIN = "napari-stacklab"


@pytest.fixture
def stack():
    """Three different 96 x 128 crops of the moon image, as uint8 counts."""
    moon = data.moon()
    return np.stack([moon[80 * i : 80 * i + 96, 60 * i : 60 * i + 128] for i in range(3)])


def run_op(qtbot, viewer, title, layer, **params):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, title)
    widget.input.value = viewer.layers[layer]
    widget.set_params(**params)
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=30_000)
    return widget


def test_exported_recipe_replays_to_the_gui_result(qtbot, make_napari_viewer, stack, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="moon")
    run_op(qtbot, viewer, "Median", "moon", size=3)
    run_op(qtbot, viewer, "Gaussian", "moon median", sigma=1.5)
    run_op(qtbot, viewer, "Threshold", "moon median gaussian", method="otsu")
    result = viewer.layers["moon median gaussian threshold"]

    _, exporter = viewer.window.add_plugin_dock_widget(PLUGIN, "Export recipe or script")
    assert isinstance(exporter, recipe_widget.RecipeExportWidget)
    exporter.layer.value = result
    shown = yaml.safe_load(exporter.yaml.value)
    assert [s["op"] for s in shown["steps"]] == ["median", "gaussian", "threshold"]
    assert shown["steps"][1]["params"]["sigma"] == 1.5

    path = exporter.save(tmp_path / "moon.yaml")
    assert path == tmp_path / "moon.yaml"
    replayed = Recipe.load(path).run(viewer.layers["moon"].data)
    np.testing.assert_array_equal(np.asarray(replayed), result.data.astype(bool))

    smooth = viewer.layers["moon median gaussian"]  # an intermediate layer replays its own prefix
    exporter.layer.value = smooth
    np.testing.assert_allclose(Recipe.from_yaml(exporter.yaml.value).run(stack), smooth.data, rtol=1e-6)


def test_save_refuses_to_overwrite_without_confirmation(qtbot, make_napari_viewer, stack, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="moon")
    run_op(qtbot, viewer, "Gaussian", "moon", sigma=2.0)
    _, exporter = viewer.window.add_plugin_dock_widget(PLUGIN, "Export recipe or script")
    exporter.layer.value = viewer.layers["moon gaussian"]
    target = tmp_path / "recipe.yaml"
    target.write_text("keep me", encoding="utf-8")

    asked = []
    # patch the class: magicgui's Container turns deleting an instance attribute into removing a widget
    monkeypatch.setattr(type(exporter), "_confirm_overwrite", lambda self, path: asked.append(path) or False)
    assert exporter.save(target) is None
    assert target.read_text(encoding="utf-8") == "keep me"
    assert asked == [target] and "not saved" in exporter.status.value

    monkeypatch.setattr(type(exporter), "_confirm_overwrite", lambda self, path: True)
    exporter.path.value = target
    assert exporter.save() == target
    assert Recipe.load(target).steps == [{"op": "gaussian", "params": {"sigma": 2.0, "truncate": 4.0,
                                                                        "mode": "reflect"}}]


def test_layer_without_steps_cannot_be_exported(make_napari_viewer, stack, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="raw")
    _, exporter = viewer.window.add_plugin_dock_widget(PLUGIN, "Export recipe or script")
    assert exporter.layer.value is viewer.layers["raw"]
    assert exporter.yaml.value == ""
    assert not exporter.save_button.enabled
    assert "records no stacklab steps" in exporter.status.value
    assert exporter.save(tmp_path / "x.yaml") is None
    assert not (tmp_path / "x.yaml").exists()


def test_recipe_with_an_image_parameter_replays_with_inputs(qtbot, make_napari_viewer, stack, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="moon")
    reference = data.camera()[:96, :128]
    viewer.add_image(reference, name="camera")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Match histograms")
    widget.input.value = viewer.layers["moon"]
    widget.set_params(reference=viewer.layers["camera"])
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=30_000)
    result = viewer.layers["moon match_histograms"]

    _, exporter = viewer.window.add_plugin_dock_widget(PLUGIN, "Export recipe or script")
    exporter.layer.value = result
    path = exporter.save(tmp_path / "match")
    assert path.suffix == ".yaml"
    recipe = Recipe.load(path)
    assert recipe.steps[0]["params"]["reference"] == {"layer": "camera"}
    replayed = recipe.run(stack, inputs={"camera": reference})
    np.testing.assert_allclose(replayed, result.data, rtol=1e-6)
