"""Screenshot for docs/user/stitch.md: a stitched mosaic and its seams coloured by residual, in napari.

Shows what the Python API gives a napari user today (the interactive stitching tool comes later):
the lazy mosaic with its pixel size and offset, the tile outlines, and the seams as a Shapes
layer coloured by each pair's residual, rejected pairs dashed in grey.

    xvfb-run -a -s "-screen 0 1280x800x24" python docs/stitch_screenshot.py docs/images/stitch_mosaic_seams.png
"""

from __future__ import annotations

import sys

import numpy as np
from skimage import color, data


def main(path: str) -> None:
    import napari

    import napari_stacklab as sl

    image = color.rgb2gray(data.hubble_deep_field()) * 255.0
    tiles, _ = sl.stitch.synthetic_tiles(image, rows=4, cols=4, tile_shape=(192, 192), overlap=0.15,
                                         background_tile=5, misplaced_tile=10, seed=0)
    tiles = sl.stitch.Tiles(tiles.data, tiles.positions, scale=(0.5, 0.5), units=("um", "um"), names=tiles.names)
    layout = sl.stitch.register_tiles(tiles, margin=64)
    mosaic = sl.stitch.mosaic_image(layout)
    print(layout.summary())

    viewer = napari.Viewer(title="napari-stacklab: stitched mosaic")
    viewer.add_image(mosaic.data, scale=mosaic.scale, translate=mosaic.translate, units=mosaic.units,
                     name="mosaic", colormap="gray", contrast_limits=(0, 120))
    corners = layout.positions - layout.origin
    outlines = [np.array([[y, x], [y, x + 191], [y + 191, x + 191], [y + 191, x]]) for y, x in corners]
    frame = {"scale": tiles.pixel_size, "translate": layout.translate, "units": tiles.spatial_units}
    viewer.add_shapes(outlines, shape_type="rectangle", edge_color="#ffd54f", face_color="transparent",
                      edge_width=1.5, name="tiles", **frame)
    seams = layout.seams()
    kept = seams["kept"]
    residual = np.where(kept, seams["residual"], 0.0)
    viewer.add_shapes([line for line, k in zip(seams["lines"], kept) if k], shape_type="line", edge_width=5,
                      features={"residual": residual[kept]}, edge_color="residual", edge_colormap="turbo",
                      edge_contrast_limits=(0, 0.05), name="seams (residual, px)", **frame)
    viewer.add_shapes([line for line, k in zip(seams["lines"], kept) if not k], shape_type="line", edge_width=3,
                      edge_color="#9e9e9e", name="rejected pairs", **frame)
    viewer.layers.selection.active = viewer.layers["seams (residual, px)"]
    viewer.scale_bar.visible = True
    viewer.window.resize(1100, 680)
    viewer.reset_view()
    viewer.screenshot(path, canvas_only=False)
    viewer.close()
    # a palette PNG keeps the docs image small
    from PIL import Image

    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "stitch_mosaic_seams.png")
