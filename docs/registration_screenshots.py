"""Regenerate the screenshots of the registration page (docs/user/registration.md) in a 1280 x 800 window.

    xvfb-run -a -s "-screen 0 1280x800x24" python docs/registration_screenshots.py

writes ``docs/images/registration_{points,automatch,transform,drift}.png``. Each one drives the plugin's
own tools, opened from the manifest as the Layers menu opens them, on bundled or generated data.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import napari
import numpy as np
from skimage import data

import napari_stacklab as sl
from napari_stacklab.register import Transform, warp
from _screens import screenshot, settle  # noqa: E402 - this folder is on sys.path when run as a script

warnings.filterwarnings("ignore")
PLUGIN = "napari-stacklab"
IMAGES = Path(__file__).resolve().parent / "images"
MAX_BYTES = 290_000
#: A tilted, slightly smaller, darker second exposure (fixed -> moving pixels, about the image's middle).
TILT = (Transform.from_shift([256.0, 256.0])
        @ Transform("similarity", [[0.97 * np.cos(0.14), -0.97 * np.sin(0.14), -9.0],
                                   [0.97 * np.sin(0.14), 0.97 * np.cos(0.14), 14.0], [0, 0, 1]])
        @ Transform.from_shift([-256.0, -256.0]))


def wait(tool) -> None:
    deadline = time.time() + 300
    while tool.running and time.time() < deadline:
        settle(0.05)
    if tool.running:
        raise TimeoutError(f"{tool.title} did not finish")


def new_viewer() -> napari.Viewer:
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1280, 800)
    return viewer


def open_tool(viewer: napari.Viewer, title: str):
    _, tool = viewer.window.add_plugin_dock_widget(PLUGIN, title)
    return tool


def snap(viewer: napari.Viewer, name: str) -> Path:
    path = IMAGES / f"{name}.png"
    screenshot(viewer, path)
    from PIL import Image  # a palette: the page's images stay small (under 300 KB)

    shot = Image.open(path).convert("RGB")
    for colours in (256, 128, 64):
        shot.quantize(colors=colours).save(path, optimize=True)
        if path.stat().st_size < MAX_BYTES:
            break
    viewer.close()
    return path


def camera_pair(viewer: napari.Viewer) -> None:
    """Camera (fixed, magenta) and its tilted, darker second exposure (moving, green, additive)."""
    fixed = data.camera().astype(np.float32)
    moving = warp(fixed, TILT.inverse(), order=3, mode="nearest") * 0.6 + 20
    viewer.add_image(fixed, name="camera", colormap="magenta", scale=(0.2, 0.2), units=("um", "um"))
    viewer.add_image(moving, name="camera tilted", colormap="green", blending="additive", scale=(0.2, 0.2),
                     units=("um", "um"))


def points_screenshot() -> Path:
    """Five clicked pairs, the fifth misplaced: RANSAC flags it, the overlay follows the four good ones."""
    viewer = new_viewer()
    camera_pair(viewer)
    tool = open_tool(viewer, "Point registration")
    tool.fixed.value, tool.moving.value = viewer.layers["camera"], viewer.layers["camera tilted"]
    tool.robust.value = True
    tool.start()
    clicks = np.array([[90.0, 130.0], [400.0, 70.0], [250.0, 430.0], [440.0, 380.0], [180.0, 300.0]])
    rng = np.random.default_rng(1)
    for k, f in enumerate(clicks):
        tool.points["fixed"].add(f)
        m = TILT.apply_points(f) + rng.normal(0, 0.7, 2) + (np.array([35.0, -20.0]) if k == 4 else 0)
        tool.points["moving"].add(m)
    viewer.layers.selection.active = viewer.layers["camera points"]
    return snap(viewer, "registration_points")


def automatch_screenshot() -> Path:
    """Auto-match: 30 inlier keypoint pairs, numbered, with their residuals, the overlay already aligned."""
    viewer = new_viewer()
    camera_pair(viewer)
    tool = open_tool(viewer, "Point registration")
    tool.fixed.value, tool.moving.value = viewer.layers["camera"], viewer.layers["camera tilted"]
    tool.max_pairs.value = 30
    tool.auto_match()
    wait(tool)
    tool._scroll.verticalScrollBar().setValue(tool._scroll.verticalScrollBar().maximum())  # the table in view
    return snap(viewer, "registration_automatch")


def transform_screenshot() -> Path:
    """Coins seen twice: labels, spots and an outline made on the tilted exposure, moved onto the first one."""
    viewer = new_viewer()
    fixed = data.coins().astype(np.float32)
    turn = (Transform.from_shift([151.0, 192.0]) @ Transform("euclidean", [[np.cos(0.1), -np.sin(0.1), 6.0],
                                                                            [np.sin(0.1), np.cos(0.1), -8.0],
                                                                            [0, 0, 1]])
            @ Transform.from_shift([-151.0, -192.0]))
    moving = warp(fixed, turn.inverse(), order=3, mode="nearest")
    frame = {"scale": (0.5, 0.5), "units": ("um", "um")}
    viewer.add_image(fixed, name="coins", **frame)
    viewer.add_image(moving, name="coins tilted", **frame)
    smooth = sl.filters.gaussian(moving, sigma=2)
    coins = sl.morphology.remove_small_objects(sl.segment.threshold_local(smooth, block_size=151, offset=-5),
                                               max_size=300)
    labels = sl.segment.label(sl.morphology.clear_border(coins))
    viewer.add_labels(labels, name="coins tilted labels", opacity=0.45, **frame)
    centres = np.array([np.argwhere(labels == k).mean(axis=0) for k in np.unique(labels)[1:]])
    viewer.add_points(centres, name="spots", size=10, face_color="yellow", **frame)
    viewer.add_shapes([np.array([[40.0, 30], [40, 120], [120, 120], [120, 30]])], shape_type=["rectangle"],
                      name="region", edge_color="cyan", face_color="transparent", edge_width=2, **frame)

    points = open_tool(viewer, "Point registration")
    points.fixed.value, points.moving.value = viewer.layers["coins"], viewer.layers["coins tilted"]
    points.model.value = "euclidean"
    points.auto_match()
    wait(points)
    points.refine()
    wait(points)
    points.apply()
    for layer in viewer.layers:
        layer.affine = np.eye(3)  # the overlay preview off: the annotations are moved for real below

    tool = open_tool(viewer, "Apply transform")
    tool.source.value = viewer.layers["coins tilted registered"]
    for name in ("coins tilted labels", "spots", "region"):
        tool.target.value = viewer.layers[name]
        tool.apply()
    keep = {"coins", "coins tilted labels apply_transform", "spots warp_points", "region warp_points"}
    for layer in viewer.layers:
        layer.visible = layer.name in keep
    viewer.layers["coins tilted labels apply_transform"].opacity = 0.45
    viewer.layers.selection.active = viewer.layers["spots warp_points"]
    viewer.reset_view()
    return snap(viewer, "registration_transform")


def drift_screenshot() -> Path:
    """The drift of the sample time-lapse over time (micrometres), and the corrected stack."""
    viewer = new_viewer()
    movie = sl.datasets.timelapse(seed=2, frames=20)
    viewer.add_image(movie.data, name="timelapse", scale=movie.scale, units=movie.units,
                     axis_labels=movie.axis_labels)
    tool = open_tool(viewer, "Drift correction")
    tool.source.value = viewer.layers["timelapse"]
    tool.run()
    wait(tool)
    viewer.layers["timelapse"].visible = False
    viewer.dims.set_point(0, viewer.dims.range[0].stop)
    return snap(viewer, "registration_drift")


def main(names: list[str]) -> None:
    shots = {"points": points_screenshot, "automatch": automatch_screenshot,
             "transform": transform_screenshot, "drift": drift_screenshot}
    for name in names or shots:
        path = shots[name]()
        print(f"wrote {path} ({path.stat().st_size // 1000} KB)")


if __name__ == "__main__":
    main(sys.argv[1:])
