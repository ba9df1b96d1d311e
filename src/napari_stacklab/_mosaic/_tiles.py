"""The tile set a mosaic is made from: images, where the stage put them, and their pixel size."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np

from .. import _backend
from .._validation import check_array, check_choice, check_number, check_real

__all__ = ["ORDERS", "Order", "Tiles", "grid_positions", "tiles_from_translates"]

#: How tiles of a grid scan are numbered: along rows, along columns, or back and forth ("snake").
Order = Literal["row-major", "column-major", "snake", "snake-column"]
ORDERS = get_args(Order)


@dataclass
class Tiles:
    """Overlapping tiles and their nominal (stage) positions.

    Attributes
    ----------
    data : list of array, each shape ``(..., M, N)``
        The tiles (NumPy or dask; dask stays lazy), one shape and dtype for
        all. Leading axes (channels, z, time) are carried through: positions
        are estimated on one plane and applied to every plane.
    positions : ndarray of float64, shape ``(n_tiles, 2)``
        Nominal ``(row, col)`` position of each tile's first pixel, in
        pixels of the common stage frame (stage coordinate / pixel size).
    scale : tuple of float
        Pixel size along each tile axis, in ``units`` (give two values for
        the spatial axes alone: leading axes then get 1). ``scale[-2:]`` is
        :attr:`pixel_size`.
    units : tuple of str
        Unit of each tile axis (``"pixel"`` where unknown; two values work as for ``scale``).
    axis_labels : tuple of str
        Labels of a tile's axes, e.g. ``("c", "y", "x")``.
    names : tuple of str
        A name per tile (the file name when read from files).
    metadata : dict
        Where the tiles came from (``"source"``, ``"positions"``) and, for a
        grid, its ``"rows"``, ``"cols"``, ``"order"`` and ``"overlap"``.
    """

    data: Any
    positions: Any
    scale: tuple = (1.0, 1.0)
    units: tuple = ("pixel", "pixel")
    axis_labels: tuple | None = None
    names: tuple | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if hasattr(self.data, "shape") and hasattr(self.data, "ndim"):
            check_array(self.data, "data")
            if self.data.ndim < 3:
                raise ValueError(
                    f"data: a stacked array of tiles needs shape (n_tiles, ..., M, N), got {tuple(self.data.shape)}"
                )
            self.data = [self.data[k] for k in range(self.data.shape[0])]
        if not isinstance(self.data, (list, tuple)) or not self.data:
            raise TypeError("data must be a non-empty list of arrays (or an array of shape (n_tiles, ..., M, N))")
        self.data = list(self.data)
        first = self.data[0]
        for k, tile in enumerate(self.data):
            check_array(tile, f"data[{k}]")
            check_real(tile, f"data[{k}]")
            if tile.ndim < 2 or 0 in tuple(tile.shape):
                raise ValueError(f"data[{k}] must have shape (..., M, N) with M, N > 0, got {tuple(tile.shape)}")
            if tuple(tile.shape) != tuple(first.shape) or np.dtype(tile.dtype) != np.dtype(first.dtype):
                raise ValueError(
                    f"data[{k}] has shape {tuple(tile.shape)} and dtype {np.dtype(tile.dtype)}; every tile must "
                    f"match data[0] ({tuple(first.shape)}, {np.dtype(first.dtype)})"
                )
        positions = np.array(self.positions, dtype=np.float64)
        if positions.shape != (len(self.data), 2) or not np.isfinite(positions).all():
            raise ValueError(
                f"positions must be a finite array of shape ({len(self.data)}, 2) (one (row, col) per tile), "
                f"got shape {positions.shape}"
            )
        self.positions = positions
        ndim = first.ndim
        self.scale = _per_axis("scale", self.scale, float, 1.0, ndim)
        if not all(np.isfinite(s) and s > 0 for s in self.scale):
            raise ValueError(f"scale must hold positive pixel sizes, got {self.scale}")
        self.units = _per_axis("units", self.units, str, "pixel", ndim)
        default_labels = tuple(f"axis{i}" for i in range(ndim - 2)) + ("y", "x")
        self.axis_labels = tuple(str(a) for a in (self.axis_labels or default_labels))
        if len(self.axis_labels) != ndim:
            raise ValueError(f"axis_labels must have one label per tile axis ({ndim}), got {self.axis_labels}")
        names = tuple(str(n) for n in self.names) if self.names is not None else tuple(
            f"tile {k}" for k in range(len(self.data))
        )
        if len(names) != len(self.data):
            raise ValueError(f"names must have one entry per tile ({len(self.data)}), got {len(names)}")
        self.names = names

    # -- shape -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        kind = "lazy" if self.lazy else "in memory"
        return (f"Tiles({len(self)} tiles of {self.shape} {self.dtype}, {kind}, pixel size {self.pixel_size} "
                f"{self.spatial_units[0]}, positions: {self.metadata.get('positions', 'given')})")

    @property
    def shape(self) -> tuple:
        """Shape of one tile, ``(..., M, N)``."""
        return tuple(int(s) for s in self.data[0].shape)

    @property
    def tile_shape(self) -> tuple[int, int]:
        """The spatial shape ``(M, N)`` of one tile."""
        return self.shape[-2:]

    @property
    def leading_shape(self) -> tuple:
        """Shape of the leading (channel, z, time) axes of a tile; ``()`` for 2-D tiles."""
        return self.shape[:-2]

    @property
    def pixel_size(self) -> tuple[float, float]:
        """``(row, col)`` pixel size, in :attr:`spatial_units`."""
        return self.scale[-2:]

    @property
    def spatial_units(self) -> tuple[str, str]:
        return self.units[-2:]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data[0].dtype)

    @property
    def lazy(self) -> bool:
        """True when the tiles are dask arrays (read from files on demand)."""
        return any(_backend.is_dask(t) for t in self.data)

    # -- derived -----------------------------------------------------------
    def plane(self, index: int | Sequence[int] | None = None) -> list:
        """The 2-D frame of every tile that positions are estimated on.

        ``index`` selects along the leading axes (an int for one leading axis,
        a tuple for several); ``None`` takes index 0 of every leading axis.
        """
        lead = self.leading_shape
        if index is None:
            index = (0,) * len(lead)
        elif isinstance(index, numbers.Integral) and not isinstance(index, bool):
            index = (int(index),)
        else:
            try:
                index = tuple(index)
            except TypeError:
                raise TypeError(f"plane must be an integer or a tuple of integers, got {index!r}") from None
        if len(index) != len(lead) or not all(
            isinstance(i, numbers.Integral) and not isinstance(i, bool) and 0 <= i < n for i, n in zip(index, lead)
        ):
            raise ValueError(
                f"plane must index the tiles' leading axes {dict(zip(self.axis_labels[:-2], lead))} "
                f"with {len(lead)} integer(s) in range, got {index!r}"
            )
        return [tile[tuple(int(i) for i in index)] for tile in self.data]

    def with_positions(self, positions: Any) -> Tiles:
        """The same tiles at other nominal positions (e.g. solved ones saved earlier)."""
        return replace(self, positions=positions, metadata=dict(self.metadata))

    def positions_physical(self) -> np.ndarray:
        """Nominal positions in ``units`` (pixels times the pixel size)."""
        return self.positions * np.asarray(self.pixel_size)


def _pair(name: str, value: Any, kind: type) -> tuple:
    if isinstance(value, (str, numbers.Number)):
        value = (value, value)
    try:
        value = tuple(kind(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be one value or a (row, col) pair, got {value!r}") from None
    if len(value) != 2:
        raise ValueError(f"{name} must be one value or a (row, col) pair, got {value!r}")
    return value


def _per_axis(name: str, value: Any, kind: type, fill: Any, ndim: int) -> tuple:
    """One value per tile axis, from a scalar, a ``(row, col)`` pair or a value per axis."""
    if isinstance(value, (str, numbers.Number)):
        value = (value, value)
    try:
        value = tuple(kind(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be one value, a (row, col) pair or one value per axis, got {value!r}") from None
    if len(value) == 2:
        return (fill,) * (ndim - 2) + value
    if len(value) != ndim:
        raise ValueError(f"{name} must be one value, a (row, col) pair or one value per axis ({ndim}), got {value!r}")
    return value


def _overlap_pair(overlap: Any) -> tuple[float, float]:
    values = (overlap, overlap) if isinstance(overlap, numbers.Real) else overlap
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(f"overlap must be a fraction or a (row, col) pair of fractions, got {overlap!r}") from None
    if len(values) != 2:
        raise ValueError(f"overlap must be a fraction or a (row, col) pair of fractions, got {overlap!r}")
    for v in values:
        check_number("overlap", v, low=0.0, high=0.9)
    return float(values[0]), float(values[1])


def grid_positions(
    n_tiles: int, *, rows: int, cols: int, tile_shape: Sequence[int], overlap: Any = 0.1, order: str = "row-major"
) -> tuple[np.ndarray, np.ndarray]:
    """Nominal positions of a regular grid scan.

    Parameters
    ----------
    n_tiles : int
        Number of tiles; must equal ``rows * cols``.
    rows, cols : int
        Grid size.
    tile_shape : (int, int)
        ``(M, N)`` of one tile.
    overlap : float or (float, float)
        Fraction of a tile shared with the next one along rows and columns
        (0 to 0.9).
    order : {"row-major", "column-major", "snake", "snake-column"}
        Acquisition order: along each row left to right, along each column
        top to bottom, or back and forth (every other row, or column, reversed).

    Returns
    -------
    positions : ndarray of float64, shape ``(n_tiles, 2)``
        ``(row, col)`` pixel position of each tile's first pixel.
    grid : ndarray of int, shape ``(n_tiles, 2)``
        ``(grid row, grid column)`` of each tile.

    Examples
    --------
    >>> positions, grid = grid_positions(4, rows=2, cols=2, tile_shape=(100, 200), overlap=0.1, order="snake")
    >>> positions.tolist()
    [[0.0, 0.0], [0.0, 180.0], [90.0, 180.0], [90.0, 0.0]]
    """
    check_number("rows", rows, low=1, integer=True)
    check_number("cols", cols, low=1, integer=True)
    check_choice("order", order, ORDERS)
    if n_tiles != rows * cols:
        raise ValueError(f"a {rows} x {cols} grid holds {rows * cols} tiles, got {n_tiles}")
    step_y, step_x = ((1.0 - o) * s for o, s in zip(_overlap_pair(overlap), tile_shape))
    k = np.arange(n_tiles)
    if order in ("row-major", "snake"):
        grid_row, grid_col = k // cols, k % cols
        if order == "snake":
            grid_col = np.where(grid_row % 2 == 1, cols - 1 - grid_col, grid_col)
    else:
        grid_col, grid_row = k // rows, k % rows
        if order == "snake-column":
            grid_row = np.where(grid_col % 2 == 1, rows - 1 - grid_row, grid_row)
    grid = np.stack([grid_row, grid_col], axis=1)
    return grid * np.array([step_y, step_x]), grid


def tiles_from_translates(
    data: Sequence[Any],
    translates: Any,
    *,
    scale: Any = (1.0, 1.0),
    units: Any = ("pixel", "pixel"),
    axis_labels: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
) -> Tiles:
    """Tiles placed by physical offsets, as napari layers are by their ``translate``.

    Parameters
    ----------
    data : sequence of array, each shape ``(..., M, N)``
        The tiles.
    translates : array, shape ``(n_tiles, D)``
        Each tile's offset in physical units; only the last two entries
        (``y``, ``x``) are used, so a layer's whole ``translate`` can be given.
    scale : float or sequence of float
        Pixel size shared by the tiles: ``(row, col)``, or one per tile axis
        (a layer's ``scale``).
    units, axis_labels, names
        As in :class:`Tiles`.

    Returns
    -------
    Tiles
        ``positions = translate[-2:] / scale``.

    Examples
    --------
    >>> import numpy as np
    >>> tiles = tiles_from_translates([np.zeros((8, 8))] * 2, [[0, 0], [0, 3.0]], scale=0.5, units="um")
    >>> tiles.positions.tolist()
    [[0.0, 0.0], [0.0, 6.0]]
    """
    translates = np.asarray(translates, dtype=np.float64)
    if translates.ndim != 2 or translates.shape[1] < 2:
        raise ValueError(f"translates must have shape (n_tiles, D >= 2), got {translates.shape}")
    pixel_size = _pair("scale", scale if isinstance(scale, numbers.Number) else tuple(scale)[-2:], float)
    return Tiles(
        list(data), translates[:, -2:] / np.asarray(pixel_size), scale=scale, units=units, axis_labels=axis_labels,
        names=names, metadata={"positions": "translate"},
    )
