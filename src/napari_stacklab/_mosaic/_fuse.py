"""The lazy mosaic: every output chunk blends only the tiles that cover it."""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import numpy as np

from .. import _backend
from .._validation import check_choice, check_number, float_dtype
from ._flatfield import check_field, correct, estimate_flatfield
from ._layout import Layout, mosaic_geometry
from ._tiles import Tiles

__all__ = ["BLENDS", "Blend", "fuse", "pyramid"]

#: ``linear``: weighted mean, weights falling linearly to the tile borders (feathered seams);
#: ``overwrite``: later tiles cover earlier ones; ``max``: the brightest tile wins.
Blend = Literal["linear", "overwrite", "max"]
BLENDS = get_args(Blend)


def fuse(
    tiles: Tiles | Layout,
    *,
    positions: Any = None,
    blend: str = "linear",
    flatfield: Any = None,
    darkfield: Any = None,
    order: int = 1,
    chunks: int = 1024,
    cval: float = 0.0,
    dtype: Any = None,
) -> Any:
    """Blend tiles into one lazy mosaic, computed chunk by chunk.

    Parameters
    ----------
    tiles : Tiles or Layout
        The tiles; a :class:`Layout` brings its solved positions.
    positions : array, shape ``(n_tiles, 2)``, optional
        ``(row, col)`` pixel position of each tile (default: the layout's
        solved positions, or the tiles' nominal ones).
    blend : {"linear", "overwrite", "max"}
        How overlaps are combined (see :data:`BLENDS`).
    flatfield : None, "median" or array
        Divide each tile by a flat field: an array of shape ``(M, N)`` (every
        plane) or of one tile's whole shape, or ``"median"`` to estimate it
        from the tiles (:func:`estimate_flatfield`, computed once, now).
        Either is scaled to mean 1 per plane, so counts keep their level.
    darkfield : array, optional
        Subtracted from each tile before the flat-field division.
    order : int
        0: tiles are placed at whole pixels (positions rounded; no
        resampling). 1: the sub-pixel part of each position is applied by
        linear interpolation.
    chunks : int
        Rows and columns of an output chunk.
    cval : float
        Value of mosaic pixels no tile covers.
    dtype : dtype, optional
        Output dtype; integer outputs are rounded and clipped to the dtype's
        range. Default: the tiles' dtype for ``order=0`` with ``"overwrite"``
        or ``"max"`` and no flat or dark field (values are copied, not
        computed), else float32 (float64 for float64 tiles).

    Returns
    -------
    dask.array.Array, shape ``(..., H, W)``
        The tiles' leading axes (channels, z, time) followed by the mosaic's
        rows and columns; chunks of one plane and ``chunks`` pixels. Nothing
        is computed until the mosaic is displayed or written. Its first pixel
        lies at pixel :func:`mosaic_geometry` ``(positions)[0]`` of the stage
        frame (``Layout.origin``; the physical offset is ``Layout.translate``).
        No halo: each chunk reads only the tiles that overlap it.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_stacklab.stitch import Tiles
    >>> tiles = Tiles([np.full((4, 6), 1.0), np.full((4, 6), 3.0)], [[0, 0], [0, 4]])
    >>> fuse(tiles, blend="max").compute()[0].tolist()
    [1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    if isinstance(tiles, Layout):
        layout, tiles = tiles, tiles.tiles
        positions = layout.positions if positions is None else positions
    elif not isinstance(tiles, Tiles):
        raise TypeError(f"tiles must be a Tiles or a Layout, got {type(tiles).__name__}")
    positions = tiles.positions if positions is None else np.asarray(positions, dtype=np.float64)
    if positions.shape != (len(tiles), 2) or not np.isfinite(positions).all():
        raise ValueError(f"positions must be finite, of shape ({len(tiles)}, 2), got shape {positions.shape}")
    check_choice("blend", blend, BLENDS)
    check_number("order", order, low=0, high=3, integer=True)
    check_number("chunks", chunks, low=16, integer=True)
    check_number("cval", cval)
    flat = _flat(flatfield, tiles)
    dark = check_field("darkfield", darkfield, tiles, positive=False) if darkfield is not None else None
    copies = order == 0 and blend != "linear" and flat is None and dark is None
    out_dtype = np.dtype(dtype) if dtype is not None else (tiles.dtype if copies else float_dtype(tiles.dtype))
    work_dtype = tiles.dtype if copies else float_dtype(tiles.dtype)

    M, N = tiles.tile_shape
    lead = tiles.leading_shape
    origin, (height, width) = mosaic_geometry(positions, (M, N))
    placed = positions - origin
    if order == 0:
        whole, fraction = np.round(placed).astype(np.int64), np.zeros_like(placed)
    else:
        whole = np.floor(placed + 1e-9).astype(np.int64)
        fraction = placed - whole
        fraction[fraction < 1e-6] = 0.0

    plane_chunks = (1,) * len(lead) + (M, N)
    flat_d = da.from_array(flat, chunks=plane_chunks[-flat.ndim:]) if flat is not None else None
    dark_d = da.from_array(dark, chunks=plane_chunks[-dark.ndim:]) if dark is not None else None
    prepared = []
    for k, tile in enumerate(tiles.data):
        tile = _backend.to_numpy(_backend.as_dask(tile, chunks=plane_chunks)).rechunk(plane_chunks)
        prepared.append(
            da.map_blocks(
                _prepare_tile, tile, flat_d, dark_d, fraction=tuple(fraction[k]), order=order, work_dtype=work_dtype,
                dtype=work_dtype, meta=np.empty((0,) * tile.ndim, work_dtype),
            ) if not copies or np.any(fraction[k]) else tile
        )

    row_chunks = _split(height, chunks)
    col_chunks = _split(width, chunks)
    name = "stitch-fuse-" + tokenize([p.name for p in prepared], whole, blend, cval, out_dtype, row_chunks, col_chunks)
    graph: dict = {}
    row_edges = np.cumsum((0,) + row_chunks)
    col_edges = np.cumsum((0,) + col_chunks)
    for by in range(len(row_chunks)):
        y0, y1 = int(row_edges[by]), int(row_edges[by + 1])
        rows_hit = (whole[:, 0] < y1) & (whole[:, 0] + M > y0)
        for bx in range(len(col_chunks)):
            x0, x1 = int(col_edges[bx]), int(col_edges[bx + 1])
            members = np.flatnonzero(rows_hit & (whole[:, 1] < x1) & (whole[:, 1] + N > x0))
            origins = [tuple(int(v) for v in whole[k]) for k in members]
            for index in np.ndindex(*lead):
                keys = [(prepared[k].name,) + index + (0, 0) for k in members]
                graph[(name,) + index + (by, bx)] = (
                    _fuse_block, keys, origins, (y0, y1, x0, x1), (M, N), blend, float(cval), out_dtype, len(lead),
                )
    hlg = HighLevelGraph.from_collections(name, graph, dependencies=prepared)
    out_chunks = tuple((1,) * n for n in lead) + (row_chunks, col_chunks)
    return da.Array(hlg, name, out_chunks, dtype=out_dtype, meta=np.empty((0,) * (len(lead) + 2), out_dtype))


def _flat(flatfield: Any, tiles: Tiles) -> np.ndarray | None:
    if flatfield is None:
        return None
    if isinstance(flatfield, str):
        if flatfield != "median":
            raise ValueError(f"flatfield must be None, 'median' or an array, got {flatfield!r}")
        return estimate_flatfield(tiles)
    return check_field("flatfield", flatfield, tiles, positive=True)


def _split(size: int, chunk: int) -> tuple[int, ...]:
    return (chunk,) * (size // chunk) + ((size % chunk,) if size % chunk else ())


def _prepare_tile(block: np.ndarray, flat: Any, dark: Any, *, fraction: tuple, order: int,
                  work_dtype: np.dtype) -> np.ndarray:
    """Flat-field correction, then the sub-pixel part of the position (tile content moves by ``fraction``)."""
    from scipy import ndimage as ndi

    out = correct(block, flat, dark) if (flat is not None or dark is not None) else block
    out = out.astype(work_dtype, copy=False)
    if any(fraction):
        shift = (0.0,) * (out.ndim - 2) + tuple(fraction)
        out = ndi.shift(out, shift, order=order, mode="nearest")
    return out


def _ramp(n: int, start: int, stop: int) -> np.ndarray:
    """Feathering weight of pixels ``start:stop`` of a tile of ``n``: distance to the nearer border plus one."""
    i = np.arange(start, stop, dtype=np.float64)
    return np.minimum(i + 1.0, n - i)


def _fuse_block(frames, origins, bounds, tile_shape, blend, cval, out_dtype, n_lead):
    """One output chunk from the tiles that overlap it."""
    y0, y1, x0, x1 = bounds
    M, N = tile_shape
    shape = (y1 - y0, x1 - x0)
    if blend == "linear":
        total = np.zeros(shape)
        weight = np.zeros(shape)
    else:
        out = np.zeros(shape, dtype=frames[0].dtype if frames else np.float64)
        covered = np.zeros(shape, dtype=bool)
    for frame, (oy, ox) in zip(frames, origins):
        frame = frame.reshape(M, N)
        ry0, ry1 = max(y0, oy), min(y1, oy + M)
        rx0, rx1 = max(x0, ox), min(x1, ox + N)
        part = frame[ry0 - oy : ry1 - oy, rx0 - ox : rx1 - ox]
        region = (slice(ry0 - y0, ry1 - y0), slice(rx0 - x0, rx1 - x0))
        if blend == "linear":
            w = _ramp(M, ry0 - oy, ry1 - oy)[:, None] * _ramp(N, rx0 - ox, rx1 - ox)[None, :]
            total[region] += w * part
            weight[region] += w
        elif blend == "overwrite":
            out[region] = part
            covered[region] = True
        else:
            seen = covered[region]
            out[region] = np.where(seen, np.maximum(out[region], part), part)
            covered[region] = True
    if blend == "linear":
        with np.errstate(invalid="ignore", divide="ignore"):
            result = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), cval)
    else:
        result = np.where(covered, out, cval) if not covered.all() else out
    return _cast(result, out_dtype).reshape((1,) * n_lead + shape)


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if values.dtype == dtype:
        return values
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    if dtype == bool:
        return values != 0
    return values.astype(dtype)


def pyramid(mosaic: Any, *, levels: int | None = None, min_size: int = 256) -> list:
    """Multiscale levels of a (lazy) mosaic: each level halves the rows and columns (2 x 2 mean).

    Parameters
    ----------
    mosaic : array, shape ``(..., H, W)``
    levels : int, optional
        Number of levels including the full resolution; default: halve until
        the larger side is below ``min_size``.
    min_size : int
        See ``levels``.

    Returns
    -------
    list of dask.array.Array
        ``[mosaic, half, quarter, ...]`` (napari's multiscale ``data``), each
        in the mosaic's dtype (integer means rounded). Level ``k`` has pixel
        size ``2**k`` times the original and its first pixel centre moved by
        ``(2**k - 1) / 2`` original pixels.
    """
    da = _backend.dask_module()
    if levels is None:
        levels = default_levels(mosaic.shape, min_size)
    check_number("levels", levels, low=1, high=30, integer=True)
    out = [_backend.as_dask(mosaic)]
    for _ in range(levels - 1):
        previous = out[-1]
        if min(previous.shape[-2:]) < 2:
            break
        out.append(_halve(previous, da))
    return out


def default_levels(shape: tuple, min_size: int = 256) -> int:
    """Pyramid levels that bring the larger of the last two axes below ``min_size`` pixels."""
    return 1 + max(0, math.ceil(math.log2(max(shape[-2:]) / min_size)))


def _halve(array: Any, da: Any) -> Any:
    dtype = np.dtype(array.dtype)
    axes = {array.ndim - 2: 2, array.ndim - 1: 2}
    even = array[..., : array.shape[-2] // 2 * 2, : array.shape[-1] // 2 * 2]
    chunk = tuple(max(2, c[0] // 2 * 2) for c in even.chunks[-2:])
    even = even.rechunk(even.chunks[:-2] + chunk)
    mean = da.coarsen(np.mean, even.astype(np.float64), axes, trim_excess=True)
    return mean.map_blocks(_cast, dtype, dtype=dtype) if dtype != np.float64 else mean
