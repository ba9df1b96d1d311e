"""Synthetic tile scans cut from one image, with known true positions (tests, benchmarks, demos)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_ndim, check_number, check_real
from ._tiles import Tiles, grid_positions

__all__ = ["synthetic_tiles"]


def synthetic_tiles(
    image: Any,
    *,
    rows: int = 4,
    cols: int = 4,
    tile_shape: tuple[int, int] = (128, 128),
    overlap: float = 0.15,
    jitter: float = 0.05,
    noise: float = 0.02,
    background_tile: int | None = None,
    misplaced_tile: int | None = None,
    misplacement: tuple[float, float] = (0.0, 40.0),
    order: str = "row-major",
    seed: int = 0,
) -> tuple[Tiles, np.ndarray]:
    """Cut a grid of overlapping tiles out of ``image`` as a stage with errors would.

    Each tile is sampled (cubic spline) at a true position: the nominal grid
    position plus a random sub-pixel jitter. The returned :class:`Tiles`
    carry the nominal grid positions only, as a real scan would.

    Parameters
    ----------
    image : array, shape ``(H, W)``
        Source image; must be large enough for the grid plus jitter.
    rows, cols : int
        Grid size.
    tile_shape : (int, int)
        ``(M, N)`` of a tile.
    overlap : float
        Nominal overlap fraction between neighbours.
    jitter : float
        Largest stage error along each axis, as a fraction of the tile size
        (uniform in ``[-jitter, jitter] * tile_shape``).
    noise : float
        Standard deviation of the Gaussian noise added to each tile
        independently, as a fraction of the image's value range.
    background_tile : int, optional
        Index of a tile replaced by pure background (the image's median plus noise).
    misplaced_tile : int, optional
        Index of a tile whose true position is off by ``misplacement`` pixels
        on top of the jitter (a stage that missed).
    misplacement : (float, float)
        The extra ``(row, col)`` error of ``misplaced_tile``.
    order : str
        Grid order (see :func:`grid_positions`).
    seed : int
        Random seed.

    Returns
    -------
    tiles : Tiles
        float32 tiles at their nominal positions; the grid settings are in
        ``tiles.metadata``.
    truth : ndarray of float64, shape ``(rows * cols, 2)``
        True ``(row, col)`` position of every tile in ``image`` (pixels).

    Examples
    --------
    >>> from skimage import data
    >>> tiles, truth = synthetic_tiles(data.camera(), rows=2, cols=3, tile_shape=(96, 96))
    >>> len(tiles), tiles.tile_shape, truth.shape
    (6, (96, 96), (6, 2))
    """
    from scipy import ndimage as ndi

    check_ndim(image, 2, "image", max_ndim=2)
    check_real(image, "image")
    check_number("jitter", jitter, low=0, high=0.25)
    check_number("noise", noise, low=0)
    source = np.asarray(image, dtype=np.float64)
    n = rows * cols
    nominal, grid_index = grid_positions(n, rows=rows, cols=cols, tile_shape=tile_shape, overlap=overlap, order=order)
    rng = np.random.default_rng(seed)
    error = rng.uniform(-1, 1, size=(n, 2)) * jitter * np.asarray(tile_shape)
    if misplaced_tile is not None:
        error[misplaced_tile] += misplacement
    # centre the grid in the image, leaving room for the errors
    span = nominal.max(axis=0) + np.asarray(tile_shape)
    offset = (np.asarray(source.shape) - span) / 2
    truth = nominal + error + offset
    if np.any(truth.min(axis=0) < 0) or np.any(truth.max(axis=0) + tile_shape > np.asarray(source.shape) - 1):
        raise ValueError(
            f"image of shape {source.shape} is too small for a {rows} x {cols} grid of {tuple(tile_shape)} tiles "
            "with this overlap and jitter"
        )
    value_range = float(source.max() - source.min()) or 1.0
    grid = np.stack(np.meshgrid(*(np.arange(s, dtype=np.float64) for s in tile_shape), indexing="ij"))
    data = []
    for k in range(n):
        if k == background_tile:
            tile = np.full(tuple(tile_shape), float(np.median(source)))
        else:
            coords = grid + truth[k].reshape(2, 1, 1)
            tile = ndi.map_coordinates(source, coords, order=3, mode="nearest")
        tile = tile + rng.normal(0.0, noise * value_range, size=tile.shape)
        data.append(tile.astype(np.float32))
    tiles = Tiles(
        data, nominal, names=[f"tile_{k:03d}" for k in range(n)],
        metadata={"source": "synthetic", "positions": "grid", "rows": rows, "cols": cols, "order": order,
                  "overlap": overlap, "grid": grid_index.tolist()},
    )
    return tiles, truth
