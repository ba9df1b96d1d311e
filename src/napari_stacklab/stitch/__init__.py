"""Mosaics: stitch overlapping tiles into one lazy image, with a quality report.

Tiles come from a grid of files, from the stage positions in OME-TIFF/OME-Zarr
metadata, from a CSV of positions, or from arrays placed by their (napari)
``translate``. Every neighbouring pair is registered on its overlap, all
tiles are placed at once by weighted least squares with outlier rejection,
and the mosaic is blended lazily, chunk by chunk. The computation lives in ``napari_stacklab._mosaic`` (built from
``register``, knowing no files); this namespace adds reading tiles and writing mosaics::

    import napari_stacklab as sl
    tiles = sl.stitch.grid_tiles("scan/*.tif", rows=4, cols=5, overlap=0.1, order="snake")
    layout = sl.stitch.register_tiles(tiles)         # pairwise registration + global solve
    print(layout.summary())                           # largest residual, pairs rejected
    layout = layout.solve(exclude=[(3, 4)])           # leave a pair out, re-solve (no re-measuring)
    mosaic = sl.stitch.fuse(layout, blend="linear")   # lazy dask array
    sl.stitch.write_mosaic("mosaic.zarr", sl.stitch.mosaic_image(layout, mosaic))  # OME-Zarr pyramid

    image, layout = sl.stitch.stitch(tiles, output="mosaic.zarr")   # all of it in one call

Positions are ``(row, col)`` pixels of the stage frame (stage coordinate /
pixel size); the mosaic's physical offset is ``layout.translate``. Tiles with
channels, z or time axes are registered on one plane (``plane=``) and every
plane is placed the same way.
"""

from .._mosaic._flatfield import estimate_flatfield
from .._mosaic._fuse import BLENDS, fuse, pyramid
from .._mosaic._layout import Layout, mosaic_geometry
from .._mosaic._operation import stitch_grid
from .._mosaic._pairs import Pairs, find_pairs, masked_ncc
from ._read import csv_tiles, grid_tiles, ome_tiles
from .._mosaic._register import register_tiles, register_tiles_stepwise
from ._run import mosaic_image, stitch
from .._mosaic._synthetic import synthetic_tiles
from .._mosaic._tiles import ORDERS, Tiles, grid_positions, tiles_from_translates
from ._write import write_mosaic

__all__ = [
    "BLENDS",
    "ORDERS",
    "Layout",
    "Pairs",
    "Tiles",
    "csv_tiles",
    "estimate_flatfield",
    "find_pairs",
    "fuse",
    "grid_positions",
    "grid_tiles",
    "masked_ncc",
    "mosaic_geometry",
    "mosaic_image",
    "ome_tiles",
    "pyramid",
    "register_tiles",
    "register_tiles_stepwise",
    "stitch",
    "stitch_grid",
    "synthetic_tiles",
    "tiles_from_translates",
    "write_mosaic",
]
