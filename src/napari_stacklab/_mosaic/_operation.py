"""The recipe face of stitching: a stack of grid-scan tiles in, the mosaic out (one registry operation).

A recipe step, ``stacklab run``, and a generated napari widget for the case
where the tiles of a regular grid scan arrive as one stack (an EM montage
saved as a stack, a multi-position acquisition in one file). Tiles placed by
stage metadata or a CSV, the quality report, exclusions and the mosaic's
exact offset are the :mod:`napari_stacklab.stitch` API's, ``stacklab stitch``'s
and the napari stitching tool's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np

from .. import _backend
from .._validation import float_dtype
from ..registry import Range, operation
from ._fuse import Blend, fuse
from ._register import register_tiles
from ._tiles import Order, Tiles, grid_positions

__all__ = ["stitch_grid"]


def _mosaic_dtype(dtype: Any, *, blend: str = "linear", interpolation: int = 1, **_: Any) -> np.dtype:
    """The tiles' dtype when values are only copied (whole pixels, no blending), else the float rule."""
    return np.dtype(dtype) if interpolation == 0 and blend != "linear" else float_dtype(dtype)


@operation(menu="register", lift=False, frame_ndim=3, keeps="frame", channels="refused", family="stitch",
           dtype=_mosaic_dtype, title="Stitch a stack of tiles (grid)")
def stitch_grid(
    tiles: Any,
    *,
    rows: Annotated[int, Range(1, 100_000)] = 1,
    cols: Annotated[int, Range(0, 100_000)] = 0,
    order: Order = "row-major",
    overlap: Annotated[float, Range(0.0, 0.9, 0.05)] = 0.1,
    plane: Annotated[int, Range(0, None)] = 0,
    margin: Annotated[int, Range(0, None)] = 0,
    refine: bool = True,
    min_confidence: Annotated[float, Range(-1.0, 1.0, 0.05)] = 0.6,
    max_residual: Annotated[float, Range(0.0, None, 0.5, low_inclusive=False)] = 2.0,
    blend: Blend = "linear",
    interpolation: Literal[1, 3, 0] = 1,
) -> Any:
    """Stitch the tiles of a regular grid scan, given as one stack, into one mosaic.

    Every neighbouring pair is registered on its overlap, all tiles are
    placed at once (outliers rejected, a tile without a trusted neighbour
    kept at its grid position), and the tiles are blended; see
    :func:`napari_stacklab.stitch.register_tiles` and
    :func:`napari_stacklab.stitch.fuse`, which this step runs with these
    settings.

    Parameters
    ----------
    tiles : array, shape ``(n_tiles, M, N)`` or ``(n_tiles, P, M, N)``
        The tiles in acquisition order (NumPy or dask; dask stays lazy,
        except that the overlaps are read to register them). A second axis
        (channels or z, ``P`` planes, not declared as a channel axis) is
        placed alike: positions are found on plane ``plane``.
    rows, cols : int
        Grid size; ``cols=0`` puts ``n_tiles / rows`` tiles in a row.
    order : {"row-major", "column-major", "snake", "snake-column"}
        Acquisition order (see :func:`napari_stacklab.stitch.grid_positions`).
    overlap : float
        Nominal overlap of neighbours, as a fraction of the tile.
    plane : int
        For ``(n_tiles, P, M, N)`` stacks: the plane registered (must be 0
        for ``(n_tiles, M, N)``).
    margin : int
        Largest stage error searched, in pixels; 0: a tenth of the tile.
    refine : bool
        Polish each pair's shift with ECC.
    min_confidence, max_residual : float
        Pairs less confident, or disagreeing with the solution by more
        pixels, are rejected.
    blend : {"linear", "overwrite", "max"}
        How overlaps are combined.
    interpolation : {1, 3, 0}
        Sub-pixel placement: linear, cubic, or whole pixels.

    Returns
    -------
    array, shape ``(H, W)`` or ``(P, H, W)``
        The mosaic (dask for dask input, computed chunk by chunk), float32
        (float64 for float64 and wide-integer tiles); the tiles' dtype for
        ``interpolation=0`` with ``"overwrite"`` or ``"max"``. It keeps the
        tiles' pixel size; its first pixel is the first pixel of the placed
        tiles, which lies within the stage error of tile 0's grid corner (the
        exact offset, the per-pair report and exclusions: the ``stitch``
        API, ``stacklab stitch``, the napari stitching tool).

    Examples
    --------
    >>> from skimage import data
    >>> from napari_stacklab.stitch import synthetic_tiles
    >>> tiles, _ = synthetic_tiles(data.camera(), rows=2, cols=2, tile_shape=(160, 160), seed=3)
    >>> stack = np.stack(tiles.data)
    >>> mosaic = stitch_grid(stack, rows=2, cols=2, overlap=0.15, margin=24)
    >>> mosaic.shape, mosaic.dtype.name
    ((303, 302), 'float32')
    """
    if _backend.on_gpu(tiles):
        raise _backend.NoGPUImplementation("stitching runs on the CPU")
    n = int(tiles.shape[0])
    if cols == 0:
        if n % rows:
            raise ValueError(f"rows: {n} tiles do not fill {rows} rows of equal length; give cols as well")
        cols = n // rows
    if rows * cols != n:
        raise ValueError(f"rows, cols: a {rows} x {cols} grid holds {rows * cols} tiles, the stack {n}")
    lead = tiles.ndim - 3
    if lead > 1:
        raise ValueError(f"tiles must have shape (n_tiles, M, N) or (n_tiles, P, M, N), got {tuple(tiles.shape)}; "
                         "for more leading axes use napari_stacklab.stitch.register_tiles(plane=(...))")
    if lead == 0 and plane != 0:
        raise ValueError(f"plane: the tiles {tuple(tiles.shape)} have no plane axis; plane must be 0, got {plane}")
    if lead and plane >= tiles.shape[1]:
        raise ValueError(f"plane must be < {tiles.shape[1]} (the tiles' second axis), got {plane}")
    positions, _ = grid_positions(n, rows=rows, cols=cols, tile_shape=tuple(tiles.shape[-2:]), overlap=overlap,
                                  order=order)
    layout = register_tiles(Tiles(tiles, positions), plane=plane if lead else None, margin=margin or None,
                            refine=refine, min_confidence=min_confidence, max_residual=max_residual)
    mosaic = fuse(layout, blend=blend, order=interpolation)
    return mosaic if _backend.is_dask(tiles) else _backend.materialize(mosaic)
