"""The mosaic as an :class:`~napari_stacklab.io.Image`, and stitching in one call."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import __version__
from .._image import Image
from .._mosaic._flatfield import estimate_flatfield
from .._mosaic._fuse import fuse
from .._mosaic._layout import Layout, mosaic_geometry
from .._mosaic._register import register_tiles
from .._mosaic._tiles import Tiles
from ._write import write_mosaic

__all__ = ["mosaic_image", "stitch"]


def mosaic_image(source: Layout | Tiles, *, name: str = "mosaic", **fuse_params: Any) -> Image:
    """The fused mosaic with its physical frame, ready to show in napari or to write.

    Parameters
    ----------
    source : Layout or Tiles
        A solved layout, or tiles to fuse at their nominal positions.
    name : str
        The image's name.
    **fuse_params
        Passed to :func:`fuse` (``blend``, ``flatfield``, ``order``, ...).

    Returns
    -------
    Image
        Lazy ``data`` (see :func:`fuse`); the tiles' pixel size, units and axis
        labels; ``translate`` places the mosaic where the stage frame puts it;
        ``metadata["stitch"]`` records the solve (settings, summary,
        positions) and the fusion settings, ``metadata["files"]`` the tiles'
        files.
    """
    layout = source if isinstance(source, Layout) else None
    tiles = layout.tiles if layout is not None else source
    if not isinstance(tiles, Tiles):
        raise TypeError(f"source must be a Layout or Tiles, got {type(source).__name__}")
    positions = np.asarray(fuse_params.get("positions", layout.positions if layout else tiles.positions), float)
    data = fuse(source, **fuse_params)
    origin, _ = mosaic_geometry(positions, tiles.tile_shape)
    lead = len(tiles.leading_shape)
    translate = (0.0,) * lead + tuple(float(o * s) for o, s in zip(origin, tiles.pixel_size))
    record = layout.record() if layout is not None else {"positions": positions.round(4).tolist(),
                                                         "names": list(tiles.names)}
    record["fuse"] = {k: (v if isinstance(v, (str, int, float, type(None))) else "array")
                      for k, v in fuse_params.items() if k != "positions"}
    record["version"] = __version__
    metadata = {"source": tiles.metadata.get("source", "arrays"), "stitch": record}
    if tiles.metadata.get("files"):
        metadata["files"] = list(tiles.metadata["files"])
    return Image(data, scale=tiles.scale, units=tiles.units, axis_labels=tiles.axis_labels, translate=translate,
                 metadata=metadata, name=name)


def stitch(
    tiles: Tiles,
    *,
    output: str | os.PathLike | None = None,
    plane: int | Sequence[int] | None = None,
    margin: int | None = None,
    refine: bool = True,
    min_confidence: float = 0.6,
    min_distinctiveness: float = 0.1,
    max_residual: float = 2.0,
    exclude: Sequence = (),
    blend: str = "linear",
    flatfield: Any = None,
    order: int = 1,
    chunks: int = 1024,
    levels: int | None = None,
    overwrite: bool = False,
) -> tuple[Image, Layout]:
    """Register, solve and fuse in one call; optionally write the mosaic.

    Parameters
    ----------
    tiles : Tiles
        From :func:`grid_tiles`, :func:`csv_tiles`, :func:`ome_tiles` or
        :func:`tiles_from_translates`.
    output : path, optional
        ``.zarr`` (multiscale OME-Zarr) or ``.tif`` to write (see :func:`write_mosaic`).
    plane, margin, refine, min_confidence, min_distinctiveness, max_residual, exclude
        Registration and solve settings (see :func:`register_tiles`).
    blend, order, chunks
        Fusion settings (see :func:`fuse`).
    flatfield : None, "median" or array
        Flat-field correction for both registration and fusion; ``"median"``
        is estimated once.
    levels : int, optional
        Zarr pyramid levels.
    overwrite : bool
        Replace an existing ``output``.

    Returns
    -------
    mosaic : Image
        Lazy (see :func:`mosaic_image`); after writing, still the lazy graph,
        so open ``output`` to read the stored result.
    layout : Layout
        Positions and the quality report (``layout.summary()``, ``layout.table()``).

    Examples
    --------
    >>> from skimage import data
    >>> from napari_stacklab.stitch import synthetic_tiles
    >>> tiles, _ = synthetic_tiles(data.camera(), rows=2, cols=2, tile_shape=(160, 160), seed=3)
    >>> mosaic, layout = stitch(tiles, margin=24)
    >>> mosaic.shape, mosaic.dtype.name, bool(layout.kept.all())
    ((303, 302), 'float32', True)
    """
    if isinstance(flatfield, str) and flatfield == "median":
        flatfield = estimate_flatfield(tiles)
    layout = register_tiles(tiles, plane=plane, margin=margin, refine=refine, flatfield=flatfield,
                            min_confidence=min_confidence, min_distinctiveness=min_distinctiveness,
                            max_residual=max_residual, exclude=exclude)
    mosaic = mosaic_image(layout, blend=blend, flatfield=flatfield, order=order, chunks=chunks)
    if output is not None:
        write_mosaic(output, mosaic, levels=levels, chunks=chunks, overwrite=overwrite)
    return mosaic, layout
