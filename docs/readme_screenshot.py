"""Regenerate the README screenshot: the demo sample and its Gaussian result side by side.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/readme_screenshot.py docs/images/readme_demo.png
"""
import warnings
warnings.filterwarnings("ignore", message=".*PyQt5 backend.*")
import sys
import time

from qtpy.QtWidgets import QApplication

from napari_stacklab._napari.demo import build_viewer

viewer = build_viewer("timelapse")
viewer.window._qt_window.resize(1500, 900)
QApplication.processEvents()
# find the OperationWidget inside the dock
from napari_stacklab._napari.widgets import OperationWidget
ops = [w for w in QApplication.allWidgets() if hasattr(w, "_magic_widget") and isinstance(w._magic_widget, OperationWidget)]
op = ops[0]._magic_widget if ops else None
op.fields["sigma"].widget.value = "2.5"
op.run()
for _ in range(300):
    QApplication.processEvents()
    time.sleep(0.05)
    if "timelapse gaussian" in viewer.layers and not op.running:
        break
viewer.grid.enabled = True
viewer.dims.set_current_step(0, 12)
for _ in range(20):
    QApplication.processEvents()
for w in QApplication.allWidgets():
    if type(w).__name__ == "NapariQtNotification":
        w.close()
for _ in range(20):
    QApplication.processEvents()
viewer.screenshot(sys.argv[1], canvas_only=False)
viewer.close()
