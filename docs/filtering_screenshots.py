"""Regenerate the screenshots of the Prepare image and Remove background tools (1280 x 800 windows).

    xvfb-run -a -s "-screen 0 1280x800x24" python docs/filtering_screenshots.py [docs/images]

- ``prepare_image.png``: the Prepare tool on ``skimage.data.astronaut()`` (an RGB
  layer) with the tutorial's settings (``examples/prepare_image.py``), applied at
  full resolution and shown side by side with the original (original | prepared);
- ``background_removal.png``: the Remove background tool on ``skimage.data.coffee()``,
  the dark cup on the light table cut out with thresholds at luminance 100 and 160,
  erode size 6, put on white.

Each tool is opened from the plugin's menu entry, as a user opens it, and driven
through its controls; the script waits for the tools' workers and looks at nothing
else. Screenshots above 300 KB are reduced to 256 colours.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import warnings
from pathlib import Path

import napari
from skimage import data
from _screens import screenshot, settle  # noqa: E402 - this folder is on sys.path when run as a script

warnings.filterwarnings("ignore", message=".*PyQt5 backend.*")

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "napari-stacklab"
WINDOW = (1280, 800)
MAX_BYTES = 300_000


def wait(condition, timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise TimeoutError("the tool did not finish in time")
        settle(0.05)


def window() -> napari.Viewer:
    from napari.settings import get_settings

    get_settings().application.gui_notification_level = "error"  # no warning toasts over the canvas
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(*WINDOW)
    return viewer


def snap(viewer: napari.Viewer, path: Path) -> Path:
    from PIL import Image

    screenshot(viewer, path)
    if path.stat().st_size > MAX_BYTES:
        Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)
    return path


def prepare_image(out: Path) -> Path:
    spec = importlib.util.spec_from_file_location("prepare_example", ROOT / "examples" / "prepare_image.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    settings = example.SETTINGS
    viewer = window()
    viewer.add_image(data.astronaut(), name="astronaut", rgb=True)
    _, tool = viewer.window.add_plugin_dock_widget(PLUGIN, "Prepare image")
    tool.image.value = viewer.layers["astronaut"]
    for slider, value in ((tool.bilateral, settings["bilateral"]["sigma_spatial"]),
                          (tool.saturation, settings["saturation"]["factor"]),
                          (tool.clahe_clip, settings["clahe"]["clip_limit"]),
                          (tool.clahe_tiles, settings["clahe"]["tile_grid"]),
                          (tool.sharpen_sigma, settings["sharpen"]["radius"]),
                          (tool.sharpen_amount, settings["sharpen"]["amount"]),
                          (tool.gamma, settings["gamma"]["gamma"]),
                          (tool.gain, settings["gain"]["gain"])):
        slider.value = value
    wait(lambda: not tool.previewing)
    tool.apply()
    wait(lambda: not tool.running and "astronaut prepared" in viewer.layers)
    tool.toggle_compare()  # original | prepared
    viewer.layers.selection.active = viewer.layers["astronaut prepared"]
    settle()
    viewer.reset_view()
    path = snap(viewer, out / "prepare_image.png")
    viewer.close()
    return path


def background_removal(out: Path) -> Path:
    from napari_stacklab._napari.matting_widget import value_range

    coffee = data.coffee()
    viewer = window()
    viewer.add_image(coffee, name="coffee", rgb=True)
    _, tool = viewer.window.add_plugin_dock_widget(PLUGIN, "Remove background")
    tool.image.value = viewer.layers["coffee"]
    low, high = value_range(coffee)
    tool.foreground.value = (100 - low) / (high - low)  # a dark subject: foreground below background
    tool.background.value = (160 - low) / (high - low)
    tool.erode_size.value = 6
    tool.min_size.value = 500
    tool.new_background.value = "white"
    tool.run()
    wait(lambda: not tool.running and "coffee subject" in viewer.layers)
    for name in ("coffee", "coffee mask", "coffee alpha"):
        viewer.layers[name].visible = False
    viewer.layers.selection.active = viewer.layers["coffee subject"]
    settle()
    viewer.reset_view()
    path = snap(viewer, out / "background_removal.png")
    viewer.close()
    return path


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images"
    for made in (prepare_image(folder), background_removal(folder)):
        print(made, made.stat().st_size // 1000, "kB")
