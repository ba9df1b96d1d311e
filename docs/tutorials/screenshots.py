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
#: The window size of every screenshot: a 1280 x 800 screen.
WINDOW = (1280, 800)

Wait = Callable[[Callable[[], bool]], None]
Snap = Callable[..., None]


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


def show_tool(widget: Any) -> None:
    """Bring a docked tool's tab to the front."""
    dock = widget.native.parent()
    dock.show()
    dock.raise_()


def run_operation(viewer: Any, title: str, layer: str, wait: Wait, **params: Any) -> Any:
    """Open an operation's widget, choose the input layer, set parameters, press *Run on all*, wait."""
    widget = open_tool(viewer, title)
    widget.input.value = viewer.layers[layer]
    widget.set_params(**params)
    widget.run()
    wait(lambda: not widget.running)
    return widget


def run_tool(tool: Any, method: str, wait: Wait) -> Any:
    """Press a tool's button (``method``) and wait for its worker; the tool's status must not be a failure."""
    result = getattr(tool, method)()
    wait(lambda: not tool.running)
    return result


def _no_snap(name: str, fit: Any = None) -> None:
    return None


def _show_only(viewer: Any, names: list[str], grid: bool) -> None:
    for layer in viewer.layers:
        layer.visible = layer.name in names
    viewer.canvas.grid.enabled = grid
    viewer.canvas.grid.shape = (1, len(names)) if len(names) <= 3 else (-1, -1)
    viewer.reset_view()


class Clicks:
    """The GUI actions a workflow takes, with the clicks each costs (menus, buttons, choices, drags)."""

    #: Clicks per kind of action.
    COST = {"menu": 1, "button": 1, "choose": 2, "tick": 1, "drag": 1, "multi-select": 2, "dialog": 2,
            "type": 1}

    def __init__(self) -> None:
        self.actions: list[tuple[str, str, int]] = []

    def __call__(self, kind: str, what: str, times: int = 1) -> None:
        self.actions.append((kind, what, self.COST[kind] * times))

    def menu(self, *path: str) -> None:
        """Open a tool through the menus: one click per menu level and one on the entry."""
        for level in path:
            self("menu", level)

    @property
    def total(self) -> int:
        return sum(clicks for _, _, clicks in self.actions)


class UnitWatch:
    """Records every moment the viewer's layers have no common units.

    That is napari's condition for "Inconsistent units across layers; units will
    not be used for rendering" (``viewer.layers.extent.units is None``), checked
    after every layer is added or removed and whenever a layer's units change,
    so it is caught in a viewer that is never drawn too.
    """

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.problems: list[str] = []
        viewer.layers.events.inserted.connect(self._inserted)
        viewer.layers.events.removed.connect(self.check)
        for layer in viewer.layers:
            layer.events.units.connect(self.check)

    def _inserted(self, event: Any) -> None:
        event.value.events.units.connect(self.check)
        self.check()

    def check(self, *_: Any) -> None:
        layers = self.viewer.layers
        if len(layers) and layers.extent.units is None:
            self.problems.append(", ".join(f"{layer.name} {tuple(str(u) for u in layer.units)}" for layer in layers))


# --- 1. compare a set of images -------------------------------------------------------------------


def compare_workflow(viewer: Any, folder: Path, wait: Wait, snap: Snap = _no_snap) -> dict:
    """Open the image set, equalize, threshold, align to the base with affine ECC, save aligned + heatmaps."""
    compare = example("compare_images")
    units, clicks = UnitWatch(viewer), Clicks()
    paths = compare.make_inputs(Path(folder) / "inputs", quick=True)
    clicks.menu("File", "Open Files...")
    clicks("multi-select", "the four TIFFs")
    clicks("button", "Open")
    clicks("choose", "reader: napari-stacklab")  # napari asks which plugin reads .tif ...
    clicks("tick", "remember the choice")  # ... once
    clicks("button", "OK")
    for path in paths.values():
        viewer.open(str(path), plugin=PLUGIN)
    names = list(paths)
    base = names[compare.BASE]

    clicks.menu("Layers", "Filter", "Equalize a set of images")
    equalize = open_tool(viewer, "Equalize a set of images")
    clicks("multi-select", "the four images")
    equalize.images.value = [viewer.layers[n] for n in names]
    clicks("choose", "reference")
    equalize.reference.value = base
    equalize.method.value = "meanstd"
    clicks("tick", "match sharpness")
    equalize.sharpness.value = True
    clicks("button", "Equalize")
    run_tool(equalize, "run", wait)
    equalized = [f"{n} equalized" for n in names]

    clicks.menu("Layers", "Segment", "Segmentation", "Threshold")
    clicks("choose", "input")
    clicks("choose", "method otsu")
    clicks("button", "Run on all")
    threshold = run_operation(viewer, "Threshold", f"{base} equalized", wait, method="otsu")
    threshold_info = threshold.info.value
    _show_only(viewer, [*equalized, f"{base} equalized threshold"], grid=True)
    snap("tutorial_compare_equalize")
    hide_tools(viewer)

    clicks.menu("Layers", "Register", "Align images to a base")
    align = open_tool(viewer, "Align images to a base")
    clicks("choose", "base")
    align.base.value = viewer.layers[f"{base} equalized"]
    clicks("multi-select", "the three other equalized images")
    align.targets.value = [viewer.layers[n] for n in equalized[1:]]
    align.model.value = "affine"
    align.method.value = "ECC"
    clicks("button", "Align")
    run_tool(align, "run", wait)
    results = align.results
    target = equalized[1]

    # the point tool and the navigator open beside the align tool: three tools in tabs, on 1280 x 800
    points = open_tool(viewer, "Point registration")
    points.fixed.value = viewer.layers[f"{base} equalized"]
    points.moving.value = viewer.layers[target]
    points.start()
    truth = compare.cropped_truth(names[1], (256, 256), 32)
    fixed_pts = np.array([[40.0, 50.0], [150.0, 60.0], [100.0, 160.0], [60.0, 130.0]])
    for f, m in zip(fixed_pts, truth.apply_points(fixed_pts)):
        points.points["fixed"].add(f)
        points.points["moving"].add(m)
    navigator = open_tool(viewer, "4D-STEM navigator")
    settle()
    _show_only(viewer, [equalized[0], target, f"{target} aligned", f"{target} similarity"], grid=True)
    show_tool(align)
    snap("tutorial_compare_align")
    snap("tools_1280x800_align")
    _show_only(viewer, [f"{base} equalized", target, f"{base} equalized points", f"{target} points"], grid=False)
    show_tool(points)
    snap("tools_1280x800_points")
    viewer.layers[target].affine = np.eye(3)  # the point tool's live overlay: back to the file's frame
    for layer in (points, navigator):
        viewer.window.remove_dock_widget(layer.native.parent())

    saved = {}
    for name in equalized[1:]:
        for kind in ("aligned", "similarity"):
            clicks("button", f"select {name} {kind}")
            clicks.menu("File", "Save Selected Layers...")
            clicks("choose", "type: napari-stacklab Save as TIFF")
            clicks("type", "file name")
            clicks("button", "Save")
            path = Path(folder) / f"{name.replace(' ', '_')}_{kind}.tif"
            saved[f"{name} {kind}"] = viewer.layers[f"{name} {kind}"].save(str(path), plugin=PLUGIN)
    return {"names": names, "threshold_info": threshold_info, "results": results, "saved": saved,
            "module": compare, "clicks": clicks, "units": units.problems, "align": align}


# --- 2. prepare one image ---------------------------------------------------------------------------


def prepare_workflow(viewer: Any, folder: Path, wait: Wait, snap: Snap = _no_snap) -> dict:
    """Filter chain side by side with the original, then background removal with a painted mask, then save."""
    from skimage import data

    prepare = example("prepare_image")
    units, clicks = UnitWatch(viewer), Clicks()
    original = data.astronaut()[::2, ::2]
    clicks.menu("File", "Open...")
    clicks("dialog", "astronaut.png")
    viewer.add_image(original, name="astronaut", rgb=True)

    clicks.menu("Layers", "Filter", "Prepare image")
    tool = open_tool(viewer, "Prepare image")
    tool.image.value = viewer.layers["astronaut"]
    settings = prepare.SETTINGS
    clicks("drag", "gain")
    tool.gain.value = settings["gain"]["gain"]
    tool.update_preview()
    wait(lambda: not tool.previewing)
    preview_of_gain = np.asarray(viewer.layers["astronaut prepared (preview)"].data).copy()
    for slider, value in ((tool.gamma, settings["gamma"]["gamma"]),
                          (tool.sharpen_sigma, settings["sharpen"]["radius"]),
                          (tool.sharpen_amount, settings["sharpen"]["amount"]),
                          (tool.clahe_clip, settings["clahe"]["clip_limit"]),
                          (tool.clahe_tiles, settings["clahe"]["tile_grid"]),
                          (tool.saturation, settings["saturation"]["factor"]),
                          (tool.bilateral, settings["bilateral"]["sigma_spatial"])):
        clicks("drag", slider.label)
        slider.value = value
    wait(lambda: not tool.previewing)
    clicks("button", "Apply (full resolution)")
    run_tool(tool, "apply", wait)
    clicks("button", "Side by side with original")
    tool.toggle_compare()
    viewer.reset_view()
    snap("tutorial_prepare_side_by_side")
    clicks("button", "Overlay")
    tool.toggle_compare()
    steps = [step["op"] for step in viewer.layers["astronaut prepared"].metadata["stacklab"]["steps"]]
    hide_tools(viewer)

    viewer.layers["astronaut prepared"].visible = False
    clicks("button", "new Labels layer")
    clicks("drag", "paint the rough outline of the subject", 6)
    mask = viewer.add_labels(prepare.rough_mask(original.shape[:2]), name="rough mask", opacity=0.4)
    clicks.menu("Layers", "Filter", "Remove background")
    matting = open_tool(viewer, "Remove background")
    matting.image.value = viewer.layers["astronaut"]
    clicks("choose", "mask from: labels layer")
    matting.mask_source.value = "labels layer"
    matting.labels.value = mask
    clicks("type", "erode size")
    matting.erode_size.value = max(4, original.shape[0] // 32)
    matting.min_size.value = 64
    clicks("choose", "background: white")
    matting.new_background.value = "white"
    clicks("tick", "estimate edge colours off")
    matting.estimate_foreground.value = False
    clicks("button", "Remove background")
    run_tool(matting, "run", wait)
    result = matting.result
    clicks("button", "Save original, removed, subject...")
    clicks("dialog", "choose the folder")
    matting.folder.value = str(folder)
    matting.format.value = "png"
    written = matting.save()
    _show_only(viewer, ["astronaut", "astronaut alpha", "astronaut subject"], grid=True)
    snap("tutorial_prepare_background")
    return {"steps": steps, "preview_of_gain": preview_of_gain, "result": result, "written": written,
            "original": original, "module": prepare, "clicks": clicks, "units": units.problems}


# --- 3. 4D-STEM --------------------------------------------------------------------------------------


def stem_workflow(viewer: Any, folder: Path, wait: Wait, snap: Snap = _no_snap) -> dict:
    """Open a scan lazily, navigator with an ADF annulus, ADF and COM maps from it, export, batch."""
    from napari_stacklab._napari.navigator import _circle
    from napari_stacklab.batch import run_batch

    stem = example("stem_batch")
    units, clicks = UnitWatch(viewer), Clicks()
    folder = Path(folder)
    scans = stem.make_scans(folder / "scans", count=2, scan=16, detector=32)
    clicks.menu("File", "Open Folder...")
    clicks("dialog", "scan_0.zarr")
    layer = viewer.open(str(scans[0]), plugin=PLUGIN)[0]
    name = layer.name

    align = open_tool(viewer, "Align images to a base")  # opened earlier in the session: tabs, not a taller window
    points = open_tool(viewer, "Point registration")
    clicks.menu("Layers", "Visualize", "4D-STEM navigator")
    navigator = open_tool(viewer, "4D-STEM navigator")
    navigator.source.value = layer
    clicks("button", "Open navigator")
    navigator.start()
    wait(lambda: not navigator.busy)
    geometry = stem.find_detector(np.asarray(navigator.layers["mean"].data))
    radius = geometry["bf_radius"]
    adf = {"inner": round(stem.ADF_INNER * radius, 2), "outer": round(stem.ADF_OUTER * radius, 2),
           "center": tuple(geometry["center"])}
    clicks("drag", "move and resize the circle to the inner radius", 2)
    clicks("button", "ellipse tool")
    clicks("drag", "draw the outer circle")
    navigator.layers["detector"].data = [_circle(adf["center"], adf["inner"]), _circle(adf["center"], adf["outer"])]
    navigator.update_scan_image()
    wait(lambda: not navigator.busy)
    clicks("drag", "move the marker")
    navigator.layers["position"].data = np.array([[4.0, 5.0]])
    show_tool(navigator)
    snap("tutorial_stem_navigator")
    snap("tools_1280x800_navigator")
    scan_image = np.asarray(navigator.layers["scan"].data).copy()
    for tool in (align, points):
        viewer.window.remove_dock_widget(tool.native.parent())

    clicks("button", "Add virtual image")
    run_tool(navigator, "add_virtual_image", wait)
    clicks("button", "Add centre of mass")
    run_tool(navigator, "add_center_of_mass", wait)
    outputs = [f"{name} annular_dark_field", f"{name} center_of_mass com_y", f"{name} center_of_mass com_x"]
    viewer.layers[outputs[1]].colormap = viewer.layers[outputs[2]].colormap = "coolwarm"

    clicks.menu("Layers", "Data", "Export recipe or script")
    export = open_tool(viewer, "Export recipe or script")
    clicks("choose", "layer")
    export.layer.value = viewer.layers[outputs[0]]
    clicks("button", "Save recipe...")
    clicks("type", "file name")
    clicks("button", "Save")
    recipe_path = export.save(folder / "recipe_adf.yaml")
    _show_only(viewer, outputs[:1], grid=False)
    show_tool(export)
    snap("tutorial_stem_maps", fit=navigator.layers["scan"])

    batch = run_batch(recipe_path, scans, folder / "batch", progress=False)  # or: stacklab run (no clicks)
    return {"scans": scans, "layer": name, "adf": adf, "scan_image": scan_image, "outputs": outputs,
            "recipe": recipe_path, "batch": batch, "module": stem, "clicks": clicks, "units": units.problems,
            "navigator": navigator}


# --- screenshots --------------------------------------------------------------------------------------


def fit_view(viewer: Any, layer: Any, margin: float = 0.9) -> None:
    """Centre the camera on ``layer`` and zoom so that it fills the canvas (not the extent of every layer)."""
    (top, left), (bottom, right) = np.asarray(layer.extent.world)[:, -2:]
    canvas = viewer.window._qt_viewer.canvas.native
    height, width = canvas.height(), canvas.width()
    viewer.scene.camera.center = ((top + bottom) / 2, (left + right) / 2)
    viewer.scene.camera.zoom = margin * min(height / (bottom - top), width / (right - left))


def narrow_docks(viewer: Any, width: int = 380) -> None:
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


def main(out_dir: Path = IMAGES, work_dir: Path | None = None, only: tuple[str, ...] = ()) -> list[Path]:
    """Run every workflow (or those named in ``only``) in its own napari window; save the screenshots into ``out_dir``."""
    import tempfile

    import napari
    from napari.settings import get_settings

    get_settings().application.gui_notification_level = "error"  # no warning toasts over the canvas
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(work_dir or tempfile.mkdtemp(prefix="stacklab_tutorials_"))
    written = []
    for workflow in (compare_workflow, prepare_workflow, stem_workflow):
        if only and workflow.__name__.removesuffix("_workflow") not in only:
            continue
        viewer = napari.Viewer(show=True)
        viewer.window.resize(*WINDOW)

        def snap(name: str, viewer: Any = viewer, fit: Any = None) -> None:
            narrow_docks(viewer)
            settle()
            viewer.reset_view()  # after the canvas knows its size
            if fit is not None:
                fit_view(viewer, fit)
            settle()
            written.append(save_screenshot(viewer, out_dir / f"{name}.png"))

        run = workflow(viewer, work / workflow.__name__, qt_wait, snap)
        print(f"{workflow.__name__}: {run['clicks'].total} clicks, inconsistent units: {run['units'] or 'never'}")
        viewer.close()
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(IMAGES), help="folder for the PNGs (default docs/images)")
    parser.add_argument("--only", nargs="*", default=(), choices=("compare", "prepare", "stem"),
                        help="run only these workflows")
    args = parser.parse_args()
    for png in main(Path(args.out), only=tuple(args.only)):
        print(png, png.stat().st_size // 1000, "kB")
