"""Tiles from files: a grid of images, a CSV of positions, OME stage positions.

The one module of the stitch package that reads files (through
:mod:`napari_stacklab.io`, lazily: only headers are read here).
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from .. import io
from .._validation import check_array
from ..io._units import LENGTH_IN_UM, normalize_unit
from .._mosaic._tiles import Tiles, _pair, grid_positions

__all__ = ["csv_tiles", "grid_tiles", "ome_tiles"]

PathLike = str | os.PathLike


def _is_paths(source: Any) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return True
    return isinstance(source, (list, tuple)) and bool(source) and all(isinstance(s, (str, os.PathLike)) for s in source)


def _frame(pixel_size: Any, units: Any, default_scale: tuple, default_units: tuple) -> tuple[tuple, tuple]:
    """Per-axis scale and units of the tiles, the spatial ones replaced by ``pixel_size`` / ``units`` if given."""
    scale, unit = tuple(default_scale), tuple(default_units)
    if pixel_size is not None:
        scale = scale[:-2] + _pair("pixel_size", pixel_size, float)
    if units is not None:
        unit = unit[:-2] + tuple(normalize_unit(u) for u in _pair("units", units, str))
    return scale, unit


def grid_tiles(
    source: Any,
    *,
    rows: int,
    cols: int,
    order: str = "row-major",
    overlap: Any = 0.1,
    pixel_size: Any = None,
    units: Any = None,
) -> Tiles:
    """Tiles of a regular grid scan: files (or arrays) in acquisition order.

    Parameters
    ----------
    source : path, glob pattern, list of paths, array or list of arrays
        A folder of TIFF tiles, a pattern (``"scan/tile_*.tif"``), a list of
        files (sorted as given; folders and patterns in natural order), a
        stacked array ``(n_tiles, ..., M, N)`` or a list of arrays. Files are
        read lazily.
    rows, cols : int
        Grid size; ``rows * cols`` must equal the number of tiles.
    order : {"row-major", "column-major", "snake", "snake-column"}
        Acquisition order (see :func:`grid_positions`).
    overlap : float or (float, float)
        Nominal overlap between neighbours, as a fraction of the tile size.
    pixel_size : float or (float, float), optional
        Overrides the files' pixel size (``(row, col)``).
    units : str or (str, str), optional
        Overrides the files' units.

    Returns
    -------
    Tiles
        With nominal grid positions; ``metadata`` holds the grid settings and
        the ``files``.

    Examples
    --------
    >>> import numpy as np
    >>> tiles = grid_tiles(np.zeros((6, 50, 40)), rows=2, cols=3, overlap=0.2)
    >>> tiles.positions[:4].tolist()
    [[0.0, 0.0], [0.0, 32.0], [0.0, 64.0], [40.0, 0.0]]
    """
    if _is_paths(source):
        data, scale, file_units, labels, names, files = _read_stack(source)
    else:
        if hasattr(source, "shape"):
            check_array(source, "source")
            data = [source[k] for k in range(source.shape[0])]
        elif isinstance(source, (list, tuple)) and source:
            data = list(source)
        else:
            raise TypeError(f"source must be paths, an array of tiles or a list of arrays, got {type(source).__name__}")
        ndim = data[0].ndim
        scale, file_units, labels, names, files = (1.0,) * ndim, ("pixel",) * ndim, None, None, None
    scale, file_units = _frame(pixel_size, units, scale, file_units)
    tile_shape = tuple(int(s) for s in data[0].shape[-2:])
    positions, grid = grid_positions(len(data), rows=rows, cols=cols, tile_shape=tile_shape, overlap=overlap,
                                     order=order)
    metadata = {"source": _describe(source), "positions": "grid", "rows": rows, "cols": cols, "order": order,
                "overlap": overlap, "grid": grid.tolist()}
    if files:
        metadata["files"] = files
    return Tiles(data, positions, scale=scale, units=file_units, axis_labels=labels, names=names, metadata=metadata)


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if _is_paths(source):
        return os.fspath(source[0]) + (f" and {len(source) - 1} more" if len(source) > 1 else "")
    return "arrays"


def _read_stack(source: Any) -> tuple:
    """Tiles (lazy) of a folder, pattern or file list, with pixel size, units, labels, names, files."""
    if isinstance(source, (list, tuple)):
        images = [io.imread(p, lazy=True) for p in source]
        files = [os.fspath(p) for p in source]
        return _from_images(images, files)
    image = io.imread(source, lazy=True)
    files = image.metadata.get("files")
    if files:  # a folder or pattern of files: the first axis is the file
        names = [_stem(f) for f in files]
        data = [image.data[k] for k in range(image.shape[0])]
        return data, image.scale[1:], image.units[1:], image.axis_labels[1:], names, list(files)
    if image.ndim < 3:
        raise ValueError(f"{source}: holds one 2-D image, not a set of tiles")
    data = [image.data[k] for k in range(image.shape[0])]
    names = [f"{image.name} [{k}]" for k in range(len(data))]
    return data, image.scale[1:], image.units[1:], image.axis_labels[1:], names, None


def _from_images(images: list, files: list) -> tuple:
    first = images[0]
    for image, file in zip(images, files):
        if image.shape != first.shape or image.dtype != first.dtype:
            raise ValueError(
                f"{file}: shape {image.shape} and dtype {image.dtype} differ from {files[0]} "
                f"({first.shape}, {first.dtype}); all tiles must match"
            )
    return ([im.data for im in images], first.scale, first.units, first.axis_labels,
            [_stem(f) for f in files], files)


def _stem(path: Any) -> str:
    from ..io._units import file_stem

    return file_stem(path)


def csv_tiles(
    path: PathLike,
    *,
    physical: bool = False,
    pixel_size: Any = None,
    units: Any = None,
) -> Tiles:
    """Tiles listed in a CSV file with their positions.

    The file has a header with (at least) the columns ``file``, ``y`` and
    ``x``, in any order and any letter case; relative file names are taken
    from the CSV's folder. :meth:`Layout.positions_to_csv` writes such a
    file, so a solved layout can be fused again later.

    Parameters
    ----------
    path : path
        The CSV file.
    physical : bool
        ``False``: ``y`` and ``x`` are pixels. ``True``: they are in the
        tiles' physical unit and are divided by the pixel size.
    pixel_size, units : optional
        Override the files' pixel size and units.

    Returns
    -------
    Tiles
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = {(name or "").strip().lower(): name for name in (reader.fieldnames or [])}
        missing = [c for c in ("file", "y", "x") if c not in header]
        if missing:
            raise ValueError(f"{path}: the CSV needs the columns file, y, x; missing {missing} "
                             f"(found {list(reader.fieldnames or [])})")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: the CSV lists no tile")
    files, positions = [], []
    for line, row in enumerate(rows, start=2):
        name = (row[header["file"]] or "").strip()
        try:
            positions.append((float(row[header["y"]]), float(row[header["x"]])))
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {line}: y and x must be numbers, got {row[header['y']]!r}, "
                             f"{row[header['x']]!r}") from None
        file = Path(name) if Path(name).is_absolute() else path.parent / name
        if not file.exists():
            raise FileNotFoundError(f"{path}, line {line}: {file}: no such file")
        files.append(str(file))
    data, scale, file_units, labels, names, files = _from_images([io.imread(f, lazy=True) for f in files], files)
    scale, file_units = _frame(pixel_size, units, scale, file_units)
    positions = np.asarray(positions, dtype=np.float64)
    if not np.isfinite(positions).all():
        raise ValueError(f"{path}: positions must be finite")
    if physical:
        if "pixel" in file_units[-2:]:
            raise ValueError(f"{path}: physical=True needs a pixel size; the tiles have none, give pixel_size=")
        positions = positions / np.asarray(scale[-2:])
    return Tiles(data, positions, scale=scale, units=file_units, axis_labels=labels, names=names,
                 metadata={"source": str(path), "positions": "csv", "files": files})


def ome_tiles(
    source: PathLike | Sequence[PathLike],
    *,
    pixel_size: Any = None,
    flip_y: bool = False,
    flip_x: bool = False,
) -> Tiles:
    """Tiles placed by the stage positions their OME metadata records.

    Parameters
    ----------
    source : path, glob pattern or list of paths
        One OME-TIFF holding one tile per image series, or several OME-TIFF
        files or OME-Zarr images (a list, a pattern, or a folder of them).
        OME-TIFF positions come from the first ``Plane``'s ``PositionY`` /
        ``PositionX`` (else the ``StageLabel``), converted from their unit
        (the pixel size's unit where none is given); OME-Zarr positions are
        the image's ``translation``.
    pixel_size : float or (float, float), optional
        Overrides the files' pixel size.
    flip_y, flip_x : bool
        The stage's y (x) axis runs against the image rows (columns).

    Returns
    -------
    Tiles

    Raises
    ------
    ValueError
        A tile has no stage position, or positions in a physical unit but no
        pixel size.
    """
    files = _expand(source)
    images = []
    for file in files:
        for image in io.imread_all(file, lazy=True):
            images.append((file, image))
    if not images:
        raise ValueError(f"{source}: no image found")
    first = images[0][1]
    scale, units = _frame(pixel_size, None, first.scale, first.units)
    positions = []
    for file, image in images:
        if image.shape != first.shape or image.dtype != first.dtype:
            raise ValueError(f"{file}: shape {image.shape} and dtype {image.dtype} differ from the first tile's "
                             f"({first.shape}, {first.dtype}); all tiles must match")
        position = _stage_position(file, image, units[-2:])
        positions.append(np.asarray(position) / np.asarray(scale[-2:]))
    positions = np.asarray(positions)
    if flip_y:
        positions[:, 0] *= -1
    if flip_x:
        positions[:, 1] *= -1
    return Tiles(
        [image.data for _, image in images], positions, scale=scale, units=units, axis_labels=first.axis_labels,
        names=[image.name for _, image in images],
        metadata={"source": _describe(source), "positions": "ome", "files": [f for f, _ in images]},
    )


def _expand(source: Any) -> list[str]:
    if isinstance(source, (list, tuple)):
        if not source:
            raise ValueError("source is an empty list")
        return [os.fspath(s) for s in source]
    source = os.fspath(source)
    if os.path.isdir(source) and not source.rstrip("/").lower().endswith(".zarr"):
        from ..io._stack import natural_key

        entries = [os.path.join(source, name) for name in os.listdir(source) if not name.startswith(".")]
        files = [e for e in entries if e.lower().endswith((".tif", ".tiff", ".zarr"))]
        if not files:
            raise ValueError(f"{source}: the folder holds no .tif, .tiff or .zarr tiles")
        return sorted(files, key=natural_key)
    if not os.path.exists(source) and glob.has_magic(source):
        from ..io._stack import natural_key

        files = sorted(glob.glob(source), key=natural_key)
        if not files:
            raise FileNotFoundError(f"no files match the pattern {source!r}")
        return files
    if not os.path.exists(source):
        raise FileNotFoundError(f"{source}: no such file or folder")
    return [source]


def _stage_position(file: str, image: Any, units: tuple) -> tuple[float, float]:
    """``(y, x)`` of the tile in the pixel size's units."""
    xml = image.metadata.get("ome_xml")
    if xml:
        found = _ome_position(xml, int(image.metadata.get("series", 0)))
        if found is None:
            raise ValueError(f"{file} ({image.name}): the OME metadata records no stage position "
                             "(Plane PositionX/PositionY or StageLabel X/Y)")
        out = []
        for value, unit, target in zip(found[:2], found[2:], units):
            unit = normalize_unit(unit) if unit and unit != "reference frame" else target
            if unit == target:
                out.append(value)
            elif unit in LENGTH_IN_UM and target in LENGTH_IN_UM:
                out.append(value * LENGTH_IN_UM[unit] / LENGTH_IN_UM[target])
            else:
                raise ValueError(f"{file}: the stage position is in {unit!r} but the pixel size in {target!r}; "
                                 "give pixel_size= in the position's unit")
        return out[0], out[1]
    if image.metadata.get("format") == "zarr":
        return float(image.translate[-2]), float(image.translate[-1])
    raise ValueError(f"{file}: not an OME-TIFF or OME-Zarr image with stage positions")


def _ome_position(xml: str, series: int) -> tuple | None:
    """``(y, x, unit_y, unit_x)`` of OME image ``series`` (first Plane, else StageLabel), or None."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    images = [el for el in root if el.tag.split("}")[-1] == "Image"]
    if series >= len(images):
        return None
    for element in images[series].iter():
        tag = element.tag.split("}")[-1]
        if tag == "Plane" and element.get("PositionX") is not None and element.get("PositionY") is not None:
            return (float(element.get("PositionY")), float(element.get("PositionX")),
                    element.get("PositionYUnit"), element.get("PositionXUnit"))
    for element in images[series].iter():
        if element.tag.split("}")[-1] == "StageLabel" and element.get("X") is not None and element.get("Y") is not None:
            return float(element.get("Y")), float(element.get("X")), element.get("YUnit"), element.get("XUnit")
    return None
