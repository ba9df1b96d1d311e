"""Write a (lazy) mosaic chunk by chunk: a multiscale OME-Zarr, or a tiled BigTIFF.

The writer of the stitch package: it never holds the whole mosaic, writes
under a temporary name next to the target and renames it into place when
complete.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import _backend
from .._validation import check_array, check_number
from ..io import Image
from .._mosaic._fuse import _halve, default_levels

__all__ = ["FORMATS", "write_mosaic"]

FORMATS = {".zarr": "zarr", ".ome.zarr": "zarr", ".tif": "tiff", ".tiff": "tiff", ".ome.tif": "tiff",
           ".ome.tiff": "tiff"}
#: Metadata keys written along with the mosaic: the recipe provenance and the stitching record.
_RECORD_KEYS = ("stacklab", "stitch")


def _format(path: str) -> str:
    name = Path(path).name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    raise ValueError(f"path must end in one of {sorted(FORMATS)}, got {path!r}")


def _default_compute(tasks: list) -> None:
    import dask

    dask.compute(*tasks)


def write_mosaic(
    path: str | os.PathLike,
    image: Image | Any,
    *,
    levels: int | None = None,
    chunks: int = 1024,
    overwrite: bool = False,
    compute: Callable[[list], Any] | None = None,
) -> Path:
    """Write a mosaic without ever holding it whole in memory.

    ``.zarr``: an OME-NGFF 0.4 multiscale group (levels ``"0"``, ``"1"``,
    ... each halving rows and columns), chunks of one plane and ``chunks``
    pixels; level ``k`` is computed from level ``k - 1`` as stored, so the
    mosaic itself is computed once. napari opens it lazily and shows a large
    mosaic quickly. ``.tif``/``.tiff``: one tiled BigTIFF (512-pixel tiles),
    computed a band of rows at a time. Both keep the pixel size, units, axis
    labels and the mosaic's physical offset (``translate``), which
    :func:`napari_stacklab.io.imread` reads back, and the ``stacklab`` record
    of how it was made (zarr attributes, TIFF description).

    Parameters
    ----------
    path : path
        ``.zarr`` / ``.ome.zarr`` folder or ``.tif`` / ``.tiff`` file.
    image : Image or array, shape ``(..., H, W)``
        The mosaic (see :func:`mosaic_image`); dask data stay lazy until written.
    levels : int, optional
        Zarr pyramid levels including full resolution (default: halve until
        the larger side is under 256 pixels). Ignored for TIFF.
    chunks : int
        Stored chunk (zarr) side in pixels.
    overwrite : bool
        Replace an existing output.
    compute : callable, optional
        ``compute(tasks)`` runs a list of dask store tasks (default
        ``dask.compute`` on the active scheduler; ``stacklab stitch`` passes one
        with a progress bar).

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    fmt = _format(str(path))
    if not isinstance(image, Image):
        check_array(image, "image")
        image = Image(image)
    if image.ndim < 2:
        raise ValueError(f"image must have at least 2 dimensions, got shape {image.shape}")
    check_number("chunks", chunks, low=16, integer=True)
    if levels is not None:
        check_number("levels", levels, low=1, high=30, integer=True)
    sources = [os.path.realpath(f) for f in (image.metadata.get("files") or [])]
    if os.path.realpath(path) in sources:
        raise FileExistsError(f"refusing to overwrite {path}: it is one of the tiles")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    _remove(partial)
    try:
        if fmt == "zarr":
            _write_zarr(str(partial), image, levels, int(chunks), compute or _default_compute)
        else:
            _write_tiff(str(partial), image)
    except BaseException:
        _remove(partial)
        raise
    if path.exists():
        _remove(path)
    os.replace(partial, path)
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _write_zarr(path: str, image: Image, levels: int | None, chunks: int, compute: Callable) -> None:
    import zarr

    from ..io._zarr import ngff_attrs

    da = _backend.dask_module()
    data = _backend.to_numpy(_backend.as_dask(image.data))
    lead = data.ndim - 2
    store_chunks = (1,) * lead + (min(chunks, data.shape[-2]), min(chunks, data.shape[-1]))
    n_levels = levels or default_levels(data.shape)
    group = zarr.open_group(path, mode="w", zarr_format=2)
    attrs = ngff_attrs(image)
    datasets = []
    level = data.rechunk(store_chunks)
    for k in range(n_levels):
        if k:
            previous = da.from_zarr(group[str(k - 1)])
            if min(previous.shape[-2:]) < 2:
                break
            level = _halve(previous.rechunk((1,) * lead + tuple(2 * c for c in store_chunks[-2:])), da)
            level = level.rechunk(store_chunks)
        array = group.create_array(str(k), shape=level.shape, dtype=level.dtype,
                                   chunks=tuple(min(c, s) for c, s in zip(store_chunks, level.shape)))
        compute([da.store(level, array, lock=False, compute=False)])
        datasets.append({"path": str(k), "coordinateTransformations": _level_transforms(image, k)})
    attrs["multiscales"][0]["datasets"] = datasets
    attrs.update({key: image.metadata[key] for key in _RECORD_KEYS if image.metadata.get(key)})
    group.attrs.update(attrs)


def _level_transforms(image: Image, k: int) -> list:
    """NGFF scale and translation of pyramid level ``k``: pixels ``2**k`` larger, centres moved accordingly."""
    factor = np.ones(image.ndim)
    factor[-2:] = 2.0**k
    scale = np.asarray(image.scale) * factor
    translate = np.asarray(image.translate) + (factor - 1) / 2 * np.asarray(image.scale)
    out = [{"type": "scale", "scale": [float(s) for s in scale]}]
    if np.any(translate != 0):
        out.append({"type": "translation", "translation": [float(t) for t in translate]})
    return out


def _write_tiff(path: str, image: Image, tile: int = 512) -> None:
    import tifffile

    from ..io._tiff import _shaped_kwargs

    data = _backend.to_numpy(_backend.as_dask(image.data))
    shape = tuple(int(s) for s in data.shape)
    kwargs = _shaped_kwargs(image)
    kwargs["metadata"].update({key + "_record": image.metadata[key] for key in _RECORD_KEYS if image.metadata.get(key)})
    tile_shape = (min(tile, _round16(shape[-2])), min(tile, _round16(shape[-1])))
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(_tiles(data, tile_shape), shape=shape, dtype=data.dtype, tile=tile_shape, **kwargs)


def _round16(n: int) -> int:
    return max(16, -(-n // 16) * 16)


def _tiles(data: Any, tile_shape: tuple) -> Any:
    """TIFF tiles of every plane in order, computing one band of rows (a chunk row) at a time."""
    th, tw = tile_shape
    height, width = data.shape[-2:]
    row_chunk = data.chunks[-2][0]
    band = max(th, -(-row_chunk // th) * th)
    for index in np.ndindex(*data.shape[:-2]):
        plane = data[index]
        for y0 in range(0, height, band):
            rows = np.asarray(plane[y0 : y0 + band].compute())
            for ty in range(0, rows.shape[0], th):
                strip = rows[ty : ty + th]
                for tx in range(0, width, tw):
                    block = strip[:, tx : tx + tw]
                    if block.shape != (th, tw):
                        block = np.pad(block, ((0, th - block.shape[0]), (0, tw - block.shape[1])))
                    yield block
