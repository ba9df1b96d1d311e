"""Denoise and phase widgets in a real viewer: hologram -> amplitude/phase -> unwrapped phase.

Run under Xvfb: ``xvfb-run -a python -m pytest tests/test_napari_phase.py -q``.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_stacklab import datasets, denoise, phase
from napari_stacklab._napari import widgets
from napari_stacklab.recipe import PROVENANCE_KEY

PLUGIN = "napari-stacklab"


@pytest.fixture
def errors(monkeypatch):
    shown = []
    monkeypatch.setattr(widgets.notifications, "show_error", lambda message: shown.append(message))
    return shown


def open_widget(viewer, title, layer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, title)
    widget.input.value = viewer.layers[layer]
    return widget


def run_and_wait(qtbot, widget, timeout=30_000):
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def test_hologram_to_unwrapped_phase_through_the_menus(make_napari_viewer, qtbot, errors):
    sample = datasets.hologram()
    viewer = make_napari_viewer()
    viewer.add_image(sample.data, name="hologram", scale=sample.scale, units=sample.units)

    reconstruct = open_widget(viewer, "Reconstruct off-axis hologram", "hologram")
    reconstruct.set_params(aperture_smoothness=0.2)
    run_and_wait(qtbot, reconstruct)
    assert not errors
    expected = phase.reconstruct_hologram(sample.data, aperture_smoothness=0.2)
    wrapped = viewer.layers["hologram reconstruct_hologram phase"]
    amplitude = viewer.layers["hologram reconstruct_hologram amplitude"]
    np.testing.assert_allclose(np.asarray(wrapped.data), expected["phase"], atol=1e-6)
    np.testing.assert_allclose(np.asarray(amplitude.data), expected["amplitude"], rtol=1e-5)
    assert tuple(wrapped.scale) == (0.5, 0.5)
    step = wrapped.metadata[PROVENANCE_KEY]["steps"][-1]
    assert step["op"] == "reconstruct_hologram" and step["params"]["aperture_smoothness"] == 0.2

    unwrap = open_widget(viewer, "Unwrap phase", "hologram reconstruct_hologram phase")
    unwrap.set_params(method="fast")
    run_and_wait(qtbot, unwrap)
    assert not errors
    unwrapped = viewer.layers["hologram reconstruct_hologram phase unwrap"]
    np.testing.assert_allclose(
        np.asarray(unwrapped.data), phase.unwrap(expected["phase"], method="fast"), atol=1e-5
    )
    steps = [s["op"] for s in unwrapped.metadata[PROVENANCE_KEY]["steps"]]
    assert steps == ["reconstruct_hologram", "unwrap"]


def test_denoise_widget_matches_the_api(make_napari_viewer, qtbot, errors):
    clean = datasets.hologram().metadata["true_amplitude"].astype(np.float32) * 100
    noisy = clean + np.random.default_rng(0).normal(0, 5, clean.shape).astype(np.float32)
    stack = np.stack([noisy, noisy[::-1]])
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="noisy")
    widget = open_widget(viewer, "Total-variation denoising", "noisy")
    widget.set_params(weight=0.05)
    run_and_wait(qtbot, widget)
    assert not errors
    np.testing.assert_allclose(
        np.asarray(viewer.layers["noisy tv"].data), denoise.tv(stack, weight=0.05), atol=1e-4
    )


def test_unwrap_widget_reports_a_wrong_mask(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32), name="phi")
    viewer.add_labels(np.ones((8, 8), np.uint8), name="small mask")
    widget = open_widget(viewer, "Unwrap phase", "phi")
    widget.set_params(mask=viewer.layers["small mask"])
    run_and_wait(qtbot, widget)
    assert errors and "mask" in str(errors[-1])
    assert "phi unwrap" not in viewer.layers
