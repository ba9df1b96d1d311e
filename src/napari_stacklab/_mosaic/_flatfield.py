"""Flat-field (shading) correction of tiles: a given flat, or one estimated as the median tile."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend
from .._validation import check_array, check_number, check_real
from ._tiles import Tiles

__all__ = ["check_field", "correct", "estimate_flatfield"]


def estimate_flatfield(tiles: Tiles, *, sigma: float | None = None) -> np.ndarray:
    """The shading common to all tiles: their pixel-wise median, smoothed, scaled to mean 1.

    Computed once, explicitly (a pass over every tile, a band of rows at a
    time for lazy tiles); the result is small (one tile) and is then passed
    into the lazy mosaic.

    Parameters
    ----------
    tiles : Tiles
        At least 3 tiles, so the median is not one tile's content; the more
        tiles (and the less they share structure), the cleaner the estimate.
    sigma : float, optional
        Gaussian smoothing (pixels) of the median, which removes what is left
        of the sample (shading varies slowly); default ``max(M, N) / 16``.

    Returns
    -------
    ndarray of float32, shape of one tile ``(..., M, N)``
        One flat per plane (channel, z, time) of the tiles, each with mean 1:
        dividing by it keeps the counts' level.

    Raises
    ------
    ValueError
        Fewer than 3 tiles, or a median plane that is not positive everywhere
        (background-subtracted data: give a flat field instead).

    Examples
    --------
    >>> import numpy as np
    >>> from napari_stacklab.stitch import Tiles
    >>> shading = np.outer(np.hanning(32) + 0.5, np.hanning(32) + 0.5)
    >>> rng = np.random.default_rng(0)
    >>> tiles = Tiles([shading * rng.uniform(90, 110, (32, 32)) for _ in range(9)], np.zeros((9, 2)))
    >>> flat = estimate_flatfield(tiles, sigma=2)
    >>> flat.shape, round(float(flat.mean()), 3), bool(np.corrcoef(flat.ravel(), shading.ravel())[0, 1] > 0.99)
    ((32, 32), 1.0, True)
    """
    from scipy import ndimage as ndi

    if not isinstance(tiles, Tiles):
        raise TypeError(f"tiles must be a Tiles, got {type(tiles).__name__}")
    if len(tiles) < 3:
        raise ValueError(f"estimating a flat field needs at least 3 tiles, got {len(tiles)}")
    if sigma is None:
        sigma = max(1.0, max(tiles.tile_shape) / 16)
    check_number("sigma", sigma, low=0)
    da = _backend.dask_module()
    stack = da.stack([_backend.to_numpy(_backend.as_dask(t)) for t in tiles.data]).astype(np.float32)
    band = {0: -1, stack.ndim - 2: max(1, 2**24 // (len(tiles) * tiles.tile_shape[1])), stack.ndim - 1: -1}
    band.update({axis: 1 for axis in range(1, stack.ndim - 2)})
    median = _backend.materialize(da.median(stack.rechunk(band), axis=0)).astype(np.float64)
    lead = median.ndim - 2
    flat = ndi.gaussian_filter(median, (0,) * lead + (sigma, sigma), mode="nearest") if sigma else median
    for index in np.ndindex(*flat.shape[:lead]):
        plane = flat[index]
        if not (np.isfinite(plane).all() and plane.min() > 0):
            raise ValueError(
                "flatfield='median': the median tile is not positive everywhere "
                f"(minimum {float(plane.min()):g}); give a measured flat field instead"
            )
        flat[index] = plane / plane.mean()
    return flat.astype(np.float32)


def check_field(name: str, field: Any, tiles: Tiles, *, positive: bool) -> np.ndarray:
    """A flat or dark field as float32 NumPy: shape ``(M, N)`` (every plane) or the tiles' whole shape."""
    check_array(field, name)
    check_real(field, name)
    field = np.asarray(_backend.materialize(field), dtype=np.float64)
    if field.shape not in (tiles.tile_shape, tiles.shape):
        raise ValueError(f"{name} must have shape {tiles.tile_shape} or {tiles.shape}, got {field.shape}")
    if not np.isfinite(field).all():
        raise ValueError(f"{name} must be finite everywhere")
    if positive:
        if field.min() <= 0:
            raise ValueError(f"{name} must be positive everywhere (minimum {float(field.min()):g})")
        planes = field.reshape((-1,) + tiles.tile_shape)
        field = (planes / planes.mean(axis=(1, 2), keepdims=True)).reshape(field.shape)
    return field.astype(np.float32)


def correct(frame: Any, flat: Any = None, dark: Any = None) -> Any:
    """``(frame - dark) / flat`` in float (either may be None)."""
    frame = frame.astype(np.float32 if frame.dtype != np.float64 else np.float64, copy=False)
    if dark is not None:
        frame = frame - dark
    if flat is not None:
        frame = frame / flat
    return frame
