"""``stacklab demo`` (the README's main command) opens napari with the plugin and a sample."""

import os
import subprocess
import sys

import pytest


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X server (run under xvfb-run)")
def test_demo_opens_napari_with_sample_and_widget(tmp_path):
    shot = tmp_path / "demo.png"
    result = subprocess.run([sys.executable, "-m", "napari_stacklab.cli", "demo", "--screenshot", str(shot)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    from skimage.io import imread

    pixels = imread(shot)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 800
    assert pixels[..., :3].std() > 10, "the screenshot is blank"


def test_demo_viewer_has_sample_and_gaussian_widget(make_napari_viewer, monkeypatch):
    import napari

    from napari_stacklab._napari import demo

    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", lambda **kwargs: viewer)
    built = demo.build_viewer("timelapse")
    assert built is viewer
    assert [layer.name for layer in viewer.layers] == ["timelapse"]
    assert viewer.layers[0].data.shape[0] > 1
    assert any("Gaussian" in name for name in viewer.window.dock_widgets)
