"""Drive the three tutorial workflows in a real napari window and save the tutorial screenshots.

Run under a display (a virtual one on a server)::

    xvfb-run -a python docs/tutorials/screenshots.py            # -> docs/images/tutorial_*.png

Every step goes through the plugin's own dock widgets (opened from the
manifest, as the Plugins/Layers menus open them) on the same data the
example scripts in ``examples/`` generate; ``tests/test_napari_tutorials.py``
runs the same ``*_workflow`` functions and checks the resulting layers.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PLUGIN = "napari-stacklab"
ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
#: Screenshots larger than this are shrunk (documentation images stay small).
MAX_BYTES = 300_000

Wait = Callable[[Callable[[], bool]], None]
Snap = Callable[[str], None]


def example(name: str) -> Any:
    """Import ``examples/<name>.py`` (its data generators and settings)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def qt_wait(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Process Qt events until ``condition()`` holds (workers report back through the event loop)."""
    from qtpy.QtWidgets import QApplication

    start = time.monotonic()
    while not condition():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError("the viewer did not finish in time")


def settle(seconds: float = 0.5) -> None:
    """Let Qt lay out and draw for a moment (sizes are known only after the window is shown)."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def open_tool(viewer: Any, title: str) -> Any:
    """Open a plugin dock widget by its menu title, as the Plugins menu does."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, title)
    return widget


def hide_tools(viewer: Any) -> None:
    """Put away the dock widgets used so far (hidden, not destroyed: their results stay valid)."""
    from qtpy.QtWidgets import QDockWidget

    for dock in viewer.window._qt_window.findChildren(QDockWidget):
        if PLUGIN in dock.windowTitle():
            dock.hide()


def run_operation(viewer: Any, title: str, layer: str, wait: Wait, **params: Any) -> Any:
    """Open an operation's widget, choose the input layer, set parameters, press *Run on all*, wait."""
    widget = open_tool(viewer, title)
    widget.input.value = viewer.layers[layer]
    widget.set_params(**params)
    widget.run()
    wait(lambda: not widget.running)
    return widget


def _no_snap(name: str) -> None:
    return None


def _show_only(viewer: Any, names: list[str], grid: bool) -> None:
    for layer in viewer.layers:
        layer.visible = layer.name in names
    viewer.canvas.grid.enabled = grid
    viewer.canvas.grid.shape = (1, len(names)) if len(names) <= 3 else (-1, -1)
    viewer.reset_view()


# --- 1. compare a set of images -------------------------------------------------------------------


def compare_workflow(viewer: Any, folder: Path, wait: Wait, snap: Snap = _no_snap) -> dict:
    """Open the image set, equalize, threshold, align to the base with affine ECC, save aligned + heatmaps."""
    compare = example("compare_images")
    paths = compare.make_inputs(Path(folder) / "inputs", quick=True)
    for path in paths.values():
        viewer.open(str(path), plugin=PLUGIN)
    names = list(paths)
    base = names[compare.BASE]

    equalize = open_tool(viewer, "Equalize a set of images")
    equalize.images.value = [viewer.layers[n] for n in names]
    equalize.reference.value = base
    equalize.method.value = "meanstd"
    equalize.sharpness.value = True
    equalize.run()
    equalized = [f"{n} equalized" for n in names]

    threshold = run_operation(viewer, "Threshold", f"{base} equalized", wait, method="otsu")
    threshold_info = threshold.info.value
    _show_only(viewer, [*equalized, f"{base} equalized threshold"], grid=True)
    snap("tutorial_compare_equalize")
    hide_tools(viewer)

    align = open_tool(viewer, "Align images to a base (ECC, heatmaps)")
    align.base.value = f"{base} equalized"
    align.targets.value = equalized[1:]
    align.model.value = "affine"
    align.method.value = "ECC"
    results = align.run()
    target = equalized[1]
    _show_only(viewer, [equalized[0], target, f"{target} aligned", f"{target} similarity"], grid=True)
    snap("tutorial_compare_align")

    saved = {}
    for name in equalized[1:]:
        for kind in ("aligned", "similarity"):
            path = Path(folder) / f"{name.replace(' ', '_')}_{kind}.tif"
            saved[f"{name} {kind}"] = viewer.layers[f"{name} {kind}"].save(str(path), plugin=PLUGIN)
    return {"names": names, "threshold_info": threshold_info, "results": results, "saved": saved,
            "module": compare}


# --- 2. prepare one image ---------------------------------------------------------------------------


def prepare_workflow(viewer: Any, folder: Path, wait: Wait, snap: Snap = _no_snap) -> dict:
    """Filter chain side by side with the original, then background removal with a painted mask, then save."""
    from skimage import data

    prepare = example("prepare_image")
    original = data.astronaut()[::2, ::2]
    viewer.add_image(original, name="astronaut", rgb=True)

    tool = open_tool(viewer, "Prepare image (filter chain)")
    tool.image.value = viewer.layers["astronaut"]
    settings = prepare.SETTINGS
    tool.gain.value = settings["gain"]["gain"]
    gain_only = np.asarray(viewer.layers["astronaut prepared"].data).copy()
    tool.gamma.value = settings["gamma"]["gamma"]
    tool.sharpen_sigma.value = settings["sharpen"]["radius"]
    tool.sharpen_amount.value = settings["sharpen"]["amount"]
    tool.clahe_clip.value = settings["clahe"]["clip_limit"]
    tool.clahe_tiles.value = settings["clahe"]["tile_grid"]
    tool.saturation.value = settings["saturation"]["factor"]
    tool.bilateral.value = settings["bilateral"]["sigma_spatial"]
    tool.toggle_compare()
    viewer.reset_view()
    snap("tutorial_prepare_side_by_side")
    tool.toggle_compare()
    steps = [step["op"] for step in viewer.layers["astronaut prepared"].metadata["stacklab_prepare"]["steps"]]
    hide_tools(viewer)

    viewer.layers["astronaut prepared"].visible = False
    mask = viewer.add_labels(prepare.rough_mask(original.shape[:2]), name="rough mask", opacity=0.4)
    matting = open_tool(viewer, "Remove background (alpha matting)")
    matting.image.value = viewer.layers["astronaut"]
    matting.mask_source.value = "labels layer"
    matting.labels.value = mask
    matting.erode_size.value = max(4, original.shape[0] // 32)
    matting.min_size.value = 64
    matting.new_background.value = "white"
    matting.estimate_foreground.value = False
    result = matting.run()
    matting.folder.value = str(folder)
    matting.format.value = "png"
    written = matting.save()
    _show_only(viewer, ["astronaut", "astronaut alpha", "astronaut subject"], grid=True)
    snap("tutorial_prepare_background")
    return {"steps": steps, "gain_only": gain_only, "result": result, "written": written, "original": original,
            "module": prepare}


# --- 3. 4D-STEM --------------------------------------------------------------------------------------


def stem_workflow(viewer: Any, folder: Path, wait: Wait, snap: Snap = _no_snap) -> dict:
    """Open a scan lazily, mean pattern, navigator with an ADF annulus, ADF and COM maps, export, batch."""
    from napari_stacklab.batch import run_batch

    stem = example("stem_batch")
    folder = Path(folder)
    scans = stem.make_scans(folder / "scans", count=2, scan=16, detector=32)
    layer = viewer.open(str(scans[0]), plugin=PLUGIN)[0]
    name = layer.name

    run_operation(viewer, "Mean pattern", name, wait)
    geometry = stem.find_detector(np.asarray(viewer.layers[f"{name} mean_pattern"].data))
    radius = geometry["bf_radius"]
    adf = {"inner": round(stem.ADF_INNER * radius, 2), "outer": round(stem.ADF_OUTER * radius, 2),
           "center": tuple(geometry["center"])}
    viewer.layers.remove(f"{name} mean_pattern")

    from napari_stacklab._napari.navigator import _circle

    navigator = open_tool(viewer, "4D-STEM navigator")
    navigator.source.value = layer
    navigator.start()
    wait(lambda: not navigator.busy)
    navigator.layers["detector"].data = [_circle(adf["center"], adf["inner"]), _circle(adf["center"], adf["outer"])]
    navigator.update_scan_image()
    wait(lambda: not navigator.busy)
    navigator.layers["position"].data = np.array([[4.0, 5.0]])
    snap("tutorial_stem_navigator")
    scan_image = np.asarray(navigator.layers["scan"].data).copy()
    hide_tools(viewer)
    for navigator_layer in navigator.layers.values():
        viewer.layers.remove(navigator_layer)

    run_operation(viewer, "Annular dark field", name, wait, **adf)
    run_operation(viewer, "Center of mass", name, wait, center=adf["center"])
    outputs = [f"{name} annular_dark_field", f"{name} center_of_mass com_y", f"{name} center_of_mass com_x"]
    viewer.layers[outputs[1]].colormap = viewer.layers[outputs[2]].colormap = "coolwarm"

    export = open_tool(viewer, "Export recipe")
    export.layer.value = viewer.layers[outputs[0]]
    recipe_path = export.save(folder / "recipe_adf.yaml")
    viewer.layers.remove(name)  # the scan stays on disk; the maps are what we look at now
    _show_only(viewer, outputs, grid=True)
    snap("tutorial_stem_maps")

    batch = run_batch(recipe_path, scans, folder / "batch", progress=False)
    return {"scans": scans, "layer": name, "adf": adf, "scan_image": scan_image, "outputs": outputs,
            "recipe": recipe_path, "batch": batch, "module": stem}


# --- screenshots --------------------------------------------------------------------------------------


def narrow_docks(viewer: Any, width: int = 430) -> None:
    """Give the canvas room: plugin dock widgets on the right get ``width`` pixels."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget

    window = viewer.window._qt_window
    docks = [d for d in window.findChildren(QDockWidget)
             if window.dockWidgetArea(d) == Qt.RightDockWidgetArea and d.isVisible()]
    if docks:
        window.resizeDocks(docks, [width] * len(docks), Qt.Horizontal)


def save_screenshot(viewer: Any, path: Path) -> Path:
    """The whole window (canvas, layer list, dock widgets) as a PNG under MAX_BYTES."""
    from PIL import Image

    viewer.screenshot(str(path), canvas_only=False, flash=False)
    picture = Image.open(path).convert("RGB")
    while path.stat().st_size > MAX_BYTES:
        picture = picture.resize((picture.width * 4 // 5, picture.height * 4 // 5), Image.LANCZOS)
        picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def main(out_dir: Path = IMAGES, work_dir: Path | None = None) -> list[Path]:
    """Run every workflow in its own napari window and save the screenshots into ``out_dir``."""
    import tempfile

    import napari
    from napari.settings import get_settings

    get_settings().application.gui_notification_level = "error"  # no warning toasts over the canvas
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(work_dir or tempfile.mkdtemp(prefix="stacklab_tutorials_"))
    written = []
    for workflow in (compare_workflow, prepare_workflow, stem_workflow):
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1700, 900)

        def snap(name: str, viewer: Any = viewer) -> None:
            narrow_docks(viewer)
            settle()
            viewer.reset_view()  # after the canvas knows its size
            settle()
            written.append(save_screenshot(viewer, out_dir / f"{name}.png"))

        workflow(viewer, work / workflow.__name__, qt_wait, snap)
        viewer.close()
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(IMAGES), help="folder for the PNGs (default docs/images)")
    args = parser.parse_args()
    for png in main(Path(args.out)):
        print(png, png.stat().st_size // 1000, "kB")
