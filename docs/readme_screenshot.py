"""Regenerate the README screenshot: the demo sample and its Gaussian result side by side.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/readme_screenshot.py docs/images/readme_demo.png
"""

import sys
import time
import warnings

from qtpy.QtWidgets import QApplication

from napari_stacklab._napari.demo import build_viewer
from napari_stacklab._napari.widgets import OperationWidget
from _screens import screenshot, settle  # noqa: E402 - this folder is on sys.path when run as a script

warnings.filterwarnings("ignore", message=".*PyQt5 backend.*")


def main(path: str) -> None:
    viewer = build_viewer("timelapse")
    viewer.window._qt_window.resize(1500, 900)
    settle()
    docked = [w for w in QApplication.allWidgets() if isinstance(getattr(w, "_magic_widget", None), OperationWidget)]
    gaussian = docked[0]._magic_widget
    gaussian.fields["sigma"].widget.value = "2.5"
    gaussian.run()
    deadline = time.time() + 60
    while (gaussian.running or "timelapse gaussian" not in viewer.layers) and time.time() < deadline:
        settle(0.1)
    viewer.canvas.grid.enabled = True
    viewer.dims.set_current_step(0, 12)
    screenshot(viewer, path)
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1])
