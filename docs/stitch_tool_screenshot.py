"""Screenshots of the napari stitching tool for docs/user/stitch.md, in a 1280 x 800 window.

A 4 x 4 scan cut from a bundled image (a tile of pure background, a tile the stage put 40 px
off) is written to a folder of TIFF tiles, loaded with the tool, registered, one pair is
excluded, and the mosaic is fused; one picture after each step:

    xvfb-run -a -s "-screen 0 1280x800x24" python docs/stitch_tool_screenshot.py docs/images

writes ``stitch_tool_tiles.png``, ``stitch_tool_pairs.png`` and ``stitch_tool_mosaic.png``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from skimage import color, data
from _screens import screenshot, settle  # noqa: E402 - this folder is on sys.path when run as a script


def wait(tool, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while tool.running and time.time() < deadline:
        settle(0.1)
    settle()


def shoot(viewer, path: Path) -> None:
    from PIL import Image

    screenshot(viewer, path)
    Image.open(path).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    print("wrote", path)


def main(folder: str) -> None:
    import napari

    import napari_stacklab as sl

    out = Path(folder)
    image = color.rgb2gray(data.hubble_deep_field()) * 255.0
    tiles, _ = sl.stitch.synthetic_tiles(image, rows=4, cols=4, tile_shape=(192, 192), overlap=0.15,
                                         background_tile=5, misplaced_tile=10, seed=0)
    scan = Path(tempfile.mkdtemp()) / "scan"
    scan.mkdir()
    for k, tile in enumerate(tiles.data):
        sl.io.imwrite(scan / f"tile_{k:02d}.tif", sl.io.Image(tile, scale=(0.5, 0.5), units=("um", "um")))

    viewer = napari.Viewer(title="napari-stacklab: stitching tool")
    viewer.window._qt_window.resize(1280, 800)
    _, tool = viewer.window.add_plugin_dock_widget("napari-stacklab", "Stitch tiles into a mosaic")
    settle()
    tool.source.value = "folder or pattern (grid)"
    tool.path.value = str(scan)
    tool.rows.value, tool.cols.value, tool.overlap.value = 4, 4, 0.15
    tool.load()
    wait(tool)
    tool.margin.value = 64
    viewer.canvas.overlays.scale_bar.visible = True
    viewer.reset_view()
    shoot(viewer, out / "stitch_tool_tiles.png")

    tool.register()
    wait(tool)
    layout = tool.solved
    pair = next(k for k, (i, j) in enumerate(layout.pairs.index.tolist()) if (i, j) == (2, 3))
    tool.select_pair(pair)
    tool.toggle_pair()
    wait(tool)
    tool.select_pair(pair)
    shoot(viewer, out / "stitch_tool_pairs.png")

    tool.fuse()
    wait(tool)
    for layer in tool.tile_layers:
        layer.visible = False
    tool.tabs.setCurrentIndex(2)
    viewer.layers.selection.active = tool.mosaic_layer
    shoot(viewer, out / "stitch_tool_mosaic.png")
    print(tool.solved.summary())
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
