"""What the screenshot scripts in this folder share (run them as ``python docs/<script>.py``)."""

import time

from qtpy.QtWidgets import QApplication


def settle(seconds: float = 0.5) -> None:
    """Let Qt lay out and paint for ``seconds`` (sizes are known only once the window is shown)."""
    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def screenshot(viewer, path) -> None:
    """The whole window to ``path``, once napari's notifications (which would cover the canvas) are closed."""
    for toast in QApplication.allWidgets():
        if type(toast).__name__ == "NapariQtNotification":
            toast.close()
    settle()
    viewer.screenshot(str(path), canvas_only=False, flash=False)
