"""What the screenshot scripts in this folder share (run them as ``python docs/<script>.py``)."""

import time

from qtpy.QtWidgets import QApplication


def settle(seconds: float = 0.5) -> None:
    """Let Qt lay out and paint for ``seconds`` (sizes are known only once the window is shown)."""
    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)
