"""Regenerate the colour screenshot: CLAHE on an RGB layer, per channel (before issue 15) and on lightness.

    xvfb-run -a -s "-screen 0 1280x800x24" python docs/channels_screenshot.py docs/images/channels_clahe.png

The right panel is what the generated CLAHE widget gives on the RGB layer (the
layer's colour axis passed to the operation); the middle panel is each colour
channel equalised alone, what the widget did before the channel axis was known.
"""

import sys
import time
import warnings

import napari
import numpy as np
from skimage import data

import napari_stacklab as sl
from napari_stacklab import catalog
from napari_stacklab._napari.widgets import OperationWidget
from _screens import screenshot, settle  # noqa: E402 - this folder is on sys.path when run as a script

warnings.filterwarnings("ignore", message=".*PyQt5 backend.*")


def main(path: str) -> None:
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1280, 800)
    photo = data.astronaut()[::2, ::2]
    viewer.add_image(photo, name="astronaut", rgb=True)
    per_channel = np.stack([sl.filters.clahe(photo[..., c], clip_limit=0.02) for c in range(3)], axis=-1)
    viewer.add_image(per_channel.astype(np.float32), name="CLAHE per channel (before)", rgb=True,
                     contrast_limits=(0, 255))
    widget = OperationWidget(catalog.get("clahe"), viewer)
    viewer.window.add_dock_widget(widget, name="CLAHE", area="right")
    widget.input.value = viewer.layers["astronaut"]
    widget.set_params(clip_limit=0.02)
    widget.run()
    deadline = time.time() + 120
    while (widget.running or "astronaut clahe" not in viewer.layers) and time.time() < deadline:
        settle(0.1)
    viewer.layers["astronaut clahe"].name = "CLAHE on lightness (rgb layer)"
    viewer.canvas.grid.enabled = True  # original, per channel, lightness: left to right
    viewer.canvas.grid.shape = (1, 3)
    viewer.canvas.grid.stride = 1
    viewer.reset_view()
    screenshot(viewer, path)
    viewer.close()
    from PIL import Image  # 256 colours: the page's image stays small (under 300 KB)

    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)


if __name__ == "__main__":
    main(sys.argv[1])
