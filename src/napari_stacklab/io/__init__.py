"""Readers and writers. Knows nothing of napari.

``imread(path)`` returns an :class:`Image` (lazy dask data for anything large);
``imwrite(path, image)`` writes TIFF keeping dtype, shape, axis order and pixel size.

Formats are looked up by file suffix in :data:`READERS` (``".tif"`` ->
``"napari_stacklab.io._tiff:read_tiff"``); each reader is a function
``reader(path, lazy: bool) -> list[Image]`` imported only when a file of its
kind is opened. A folder of TIFF files, a glob pattern (``"data/t*.tif"``) or
a list of paths reads as one stack.

Lazy data come in dask chunks of whole frames: batch chunks (up to
:data:`CHUNK_BYTES`, many frames, for computing whole stacks) unless the
caller asks for another budget (``chunk_bytes=``; the napari reader asks for
:data:`VIEW_CHUNK_BYTES`, one plane per chunk for large planes).

Examples
--------
>>> import numpy as np, tempfile, os
>>> import napari_stacklab as sl
>>> path = os.path.join(tempfile.mkdtemp(), "cells.tif")
>>> img = sl.io.Image(np.zeros((4, 32, 32), np.uint16), scale=(2.0, 0.5, 0.5),
...                   units=("s", "um", "um"), axis_labels=("t", "y", "x"))
>>> sl.io.imwrite(path, img)
>>> back = sl.io.imread(path)
>>> back.shape, back.dtype.name, back.scale, back.units, back.axis_labels
((4, 32, 32), 'uint16', (2.0, 0.5, 0.5), ('s', 'um', 'um'), ('t', 'y', 'x'))
"""

from __future__ import annotations

import glob
import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._guard import (
    EagerSizeError,
    ExternalDataError,
    MetadataWarning,
    check_regular,
    image_problem,
    warn_metadata,
)
from .._image import PROVENANCE_KEY, Image
from ._lazy import CHUNK_BYTES, VIEW_CHUNK_BYTES, chunk_budget
from ._units import normalize_unit

__all__ = [
    "CHUNK_BYTES",
    "EagerSizeError",
    "ExternalDataError",
    "FOLDER_SUFFIXES",
    "LAZY_THRESHOLD_BYTES",
    "MAGIC",
    "MAX_EAGER_BYTES",
    "MetadataWarning",
    "PROVENANCE_KEY",
    "READERS",
    "READER_PATTERNS",
    "VIEW_CHUNK_BYTES",
    "WRITERS",
    "Image",
    "can_read",
    "check_readable",
    "imread",
    "imread_all",
    "imwrite",
]

#: Files (or folders) larger than this on disk are read lazily when ``lazy=None``.
LAZY_THRESHOLD_BYTES = 256 * 2**20


def _default_eager_cap() -> int:
    """``$STACKLAB_MAX_EAGER_BYTES`` if set, else half the physical memory (4 GiB where unknown)."""
    try:
        return int(float(os.environ["STACKLAB_MAX_EAGER_BYTES"]))
    except (KeyError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return 4 * 2**30


#: Largest in-memory array (bytes) a reader allocates: an eager read (``lazy=False``) or
#: one decoded plane of a lazy compressed file claiming more raises :class:`EagerSizeError`
#: naming the file (with ``lazy=None`` such a file is opened lazily instead). Set it at run
#: time (``napari_stacklab.io.MAX_EAGER_BYTES = 2**30``), or before start-up with the
#: ``STACKLAB_MAX_EAGER_BYTES`` environment variable; ``None`` removes the cap.
MAX_EAGER_BYTES: int | None = _default_eager_cap()

#: Lower-case suffix -> ``"module:function"`` with ``function(path, lazy: bool) -> list[Image]``.
READERS: dict[str, str] = {
    ".tif": "napari_stacklab.io._tiff:read_tiff",
    ".tiff": "napari_stacklab.io._tiff:read_tiff",
    ".ome.tif": "napari_stacklab.io._tiff:read_tiff",
    ".ome.tiff": "napari_stacklab.io._tiff:read_tiff",
    ".npy": "napari_stacklab.io._npy:read_npy",
    ".zarr": "napari_stacklab.io._zarr:read_zarr",
    # electron microscopy, through RosettaSciIO
    **dict.fromkeys(
        (".dm3", ".dm4", ".mib", ".blo", ".emd", ".mrc", ".hspy", ".zspy"), "napari_stacklab.io._em:read_em"
    ),
}

#: Shell patterns of the files :data:`READERS` knows, one per final suffix (``*.tif`` covers ``.ome.tif``):
#: what the napari manifest declares.
READER_PATTERNS: tuple[str, ...] = tuple(dict.fromkeys("*." + suffix.rsplit(".", 1)[-1] for suffix in READERS))

#: Lower-case suffix -> accepted leading bytes, for a cheap sniff before reading (suffixes
#: missing here are accepted by name alone).
MAGIC: dict[str, tuple[bytes, ...]] = {
    ".tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".ome.tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".ome.tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".npy": (b"\x93NUMPY",),
}

#: Suffixes that name folders rather than files (zarr-based stores); a folder with one of
#: these suffixes goes to READERS[suffix], any other folder is read as a stack of TIFFs.
FOLDER_SUFFIXES = {".zarr", ".zspy"}

_FOLDER_READER = "napari_stacklab.io._stack:read_folder"
_GLOB_READER = "napari_stacklab.io._stack:read_glob"
#: Lower-case suffix -> ``"module:function"`` with ``function(path, image: Image) -> None``.
WRITERS: dict[str, str] = {
    ".tif": "napari_stacklab.io._tiff:write_tiff",
    ".tiff": "napari_stacklab.io._tiff:write_tiff",
    ".zarr": "napari_stacklab.io._zarr:write_zarr",
}


def imread(
    path: str | os.PathLike | Sequence, *, lazy: bool | None = None, chunk_bytes: int | None = None
) -> Image:
    """Read the first (or only) image of a file, folder, glob pattern or list of TIFFs.

    Parameters
    ----------
    path : str, path-like or sequence of them
        A file (``.tif``, ``.tiff``, ``.ome.tif``, ``.npy``, ``.zarr`` and the
        suffixes in :data:`READERS`), a folder of same-shape TIFFs, a glob
        pattern, or a list of TIFF files (stacked along a new first axis).
    lazy : bool, optional
        ``True``: dask data, whole planes per chunk, read-only memory maps
        where the file allows; ``False``: NumPy in memory; ``None`` (default):
        lazy when the data on disk exceed :data:`LAZY_THRESHOLD_BYTES`.
    chunk_bytes : int, optional
        Largest dask chunk of lazy data, in bytes: whole frames are grouped up
        to it (a frame larger than it is one chunk). Default
        :data:`CHUNK_BYTES` (batch chunks, for computing whole stacks);
        :data:`VIEW_CHUNK_BYTES` is what the napari reader uses, so showing a
        plane reads that plane only.

    Returns
    -------
    Image
        ``data`` of shape ``(..., M, N)`` and the file's dtype (never
        rescaled), ``scale``/``units``/``axis_labels`` from the file's metadata
        (1 and ``"pixel"`` where unknown), ``metadata["source"]`` = the path.
        A file holding several signals (EM files) skips those that are not
        images (spectra, tables) with a :class:`MetadataWarning`.

    Raises
    ------
    FileNotFoundError
        The path does not exist (or a pattern matches nothing).
    ValueError
        The format is unknown, the path is a FIFO or device (never opened: reading one
        could wait forever), or the file is not what its name says, is truncated, has
        an axis of length 0, holds no image (1-D data; text, dates, records or other
        values that are not numbers), refers to data outside itself (HDF5 external
        storage, links or virtual datasets), or (stacks) one file differs in shape or
        dtype; the message names the file.
    EagerSizeError
        (a ``ValueError``) ``lazy=False`` and the data need more memory than
        :data:`MAX_EAGER_BYTES`.

    Warns
    -----
    MetadataWarning
        A pixel size, offset or ImageJ/OME header was unusable (NaN, infinite,
        negative, malformed) and was dropped; the image still loads.
    """
    return imread_all(path, lazy=lazy, chunk_bytes=chunk_bytes)[0]


def imread_all(
    path: str | os.PathLike | Sequence, *, lazy: bool | None = None, chunk_bytes: int | None = None
) -> list[Image]:
    """Read every image (TIFF series, EM signals, ...) of ``path``; see :func:`imread`."""
    if lazy is not None and not isinstance(lazy, bool):
        raise TypeError(f"lazy must be True, False or None, got {lazy!r}")
    if chunk_bytes is not None and (
        isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1
    ):
        raise ValueError(f"chunk_bytes must be a positive integer or None, got {chunk_bytes!r}")
    with chunk_budget(chunk_bytes):
        return _read_all(path, lazy)


def _read_all(path: Any, lazy: bool | None) -> list[Image]:
    if isinstance(path, (list, tuple)):
        from ._stack import stack_files

        files = [str(p) for p in path]
        if not files:
            raise ValueError("path is an empty list")
        for file in files:
            _require_exists(file)
        resolved = _resolve_lazy(lazy, files)
        name = Path(files[0]).parent.name or "stack"
        try:
            return [stack_files(files, lazy=resolved, source=files[0], name=name)]
        except EagerSizeError:
            if lazy is not None or resolved:
                raise
            return [stack_files(files, lazy=True, source=files[0], name=name)]
    path = os.fspath(path)
    reader, paths = _reader_for(path)
    resolved = _resolve_lazy(lazy, paths)
    try:
        images = reader(path, resolved)
    except EagerSizeError:
        if lazy is not None or resolved:
            raise
        images = reader(path, True)  # small on disk, huge in memory (compressed): open it lazily
    return _only_images(path, images)


def _only_images(path: str, images: list[Image]) -> list[Image]:
    """``images`` without those that are not images; an error naming ``path`` when none is left."""
    problems = [image_problem(image.shape, image.dtype) for image in images]
    kept = [image for image, problem in zip(images, problems) if problem is None]
    if not kept:
        raise ValueError(f"{path}: {problems[0]}" if problems else f"{path}: no image found")
    for image, problem in zip(images, problems):
        if problem is not None:
            warn_metadata(path, f"skipping {image.name!r}: it {problem}")
    for image in kept:
        if 0 in image.shape:
            raise ValueError(f"{path}: holds no pixels (an axis of length 0: shape {image.shape})")
    return kept


def _reader_for(path: str) -> tuple[Callable, list[str]]:
    """The reader function for ``path`` and the files whose size decides laziness."""
    if not os.path.exists(path):
        if glob.has_magic(path):
            return _load(_GLOB_READER), glob.glob(path)
        raise FileNotFoundError(f"{path}: no such file or folder")
    check_regular(path)
    entry = _table_entry(path)
    if os.path.isdir(path):
        from ._stack import tiffs_in_folder
        from ._zarr import is_zarr

        if entry is not None and _suffix(path, READERS) in FOLDER_SUFFIXES:
            return _load(entry), [path]
        if is_zarr(path):
            return _load(READERS[".zarr"]), [path]
        return _load(_FOLDER_READER), tiffs_in_folder(path)
    if entry is None:
        known = ", ".join(sorted(READERS))
        raise ValueError(f"{path}: unknown file format (readable suffixes: {known}; or a folder of TIFFs)")
    return _load(entry), [path]


def _table_entry(path: str) -> str | None:
    suffix = _suffix(path, READERS)
    return READERS.get(suffix) if suffix else None


def _suffix(path: str, table: dict) -> str | None:
    """The longest suffix of ``path`` (``.ome.tif`` before ``.tif``) that ``table`` knows."""
    name = Path(path).name.lower()
    matches = [suffix for suffix in table if name.endswith(suffix)]
    return max(matches, key=len) if matches else None


def _load(target: str) -> Callable:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def _resolve_lazy(lazy: bool | None, paths: Sequence[str]) -> bool:
    if lazy is not None:
        return lazy
    return _disk_size(paths) > LAZY_THRESHOLD_BYTES


def _disk_size(paths: Sequence[str]) -> int:
    total = 0
    for path in paths:
        if os.path.isdir(path):
            for root, _, files in os.walk(path):
                total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        elif os.path.exists(path):
            total += os.path.getsize(path)
    return total


def _require_exists(path: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    check_regular(path)


def can_read(path: Any) -> bool:
    """True when :func:`imread` is expected to read ``path``; see :func:`check_readable`. Never raises."""
    try:
        check_readable(path)
    except Exception:  # a sniffer must never raise
        return False
    return True


def check_readable(path: Any) -> None:
    """Raise an error saying why :func:`imread` would refuse ``path``, judging without decoding pixels.

    Looks at names, the kind of file (FIFOs and devices are never opened), the first
    bytes, and for HDF5 formats the file's structure (data stored in other files,
    compressed chunks larger than :data:`MAX_EAGER_BYTES`).

    Raises
    ------
    FileNotFoundError
        A path that does not exist.
    ExternalDataError
        An HDF5 file whose data live in other files.
    EagerSizeError
        An HDF5 file with a compressed chunk too large to decode.
    ValueError
        Anything else: unknown suffix, empty file, first bytes that do not match
        the suffix, a folder without TIFF files, a special file.
    """
    if isinstance(path, (list, tuple)):
        if not path:
            raise ValueError("an empty list of paths")
        for item in path:
            _check_file(os.fspath(item), tiff_only=True)
        return
    path = os.fspath(path)
    if os.path.isdir(path):
        from ._stack import tiffs_in_folder
        from ._zarr import is_zarr

        if not (is_zarr(path) or tiffs_in_folder(path)):
            raise ValueError(f"{path}: a folder with neither a zarr store nor .tif/.tiff files")
        return
    _check_file(path, tiff_only=False)


def _check_file(path: str, tiff_only: bool) -> None:
    check_regular(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: a folder, where a list of files is expected")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: an empty file")
    suffix = _suffix(path, READERS)
    if suffix is None or (tiff_only and READERS[suffix] != READERS[".tif"]):
        raise ValueError(f"{path}: not a file type napari-stacklab reads")
    magic = MAGIC.get(suffix)
    if magic:
        with open(path, "rb") as fh:
            head = fh.read(max(len(m) for m in magic))
        if not any(head.startswith(m) for m in magic):
            raise ValueError(f"{path}: its first bytes are not those of a {suffix} file")
    if READERS[suffix] == READERS[".emd"]:
        from ._em import EM_FORMATS, HDF5_PLUGINS, check_hdf5

        if EM_FORMATS.get(suffix) in HDF5_PLUGINS:
            check_hdf5(path)


def imwrite(
    path: str | os.PathLike,
    image_or_array: Any,
    *,
    scale: Sequence[float] | None = None,
    units: Sequence[str] | None = None,
    axis_labels: Sequence[str] | None = None,
    overwrite: bool = False,
) -> None:
    """Write an :class:`Image` or array to TIFF or zarr, keeping dtype, shape, axis order and pixel size.

    TIFF: an ImageJ hyperstack when the data fit it (uint8, uint16 or float32; axes an
    ordered subset of TZCYX ending in YX), else OME-TIFF (axes from T, Z, C,
    Y, X; a ``.ome.tif`` name prefers it), else a plain TIFF with resolution
    tags and scale/units/axis labels in its description; every form reads
    back with :func:`imread`. ``.zarr``: an OME-NGFF (0.4) group whose
    level ``"0"`` holds the data in whole-plane chunks, written in parallel.
    Dask data are computed and written a chunk of planes at a time, never
    whole.

    Parameters
    ----------
    path : str or path-like
        ``.tif``/``.tiff`` file or ``.zarr`` folder to create (suffixes in :data:`WRITERS`).
    image_or_array : Image or array, shape ``(..., M, N)``
        NumPy, dask or CuPy data (CuPy is copied to the host).
    scale, units, axis_labels : sequence, optional
        Override (or, for a bare array, give) the physical frame, one entry
        per axis.
    overwrite : bool
        Replace an existing file. Even then, the file an Image was read from
        (``metadata["source"]``) is never overwritten: its data may still be
        memory-mapped from it.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False, or ``path`` is the image's source.
    ValueError
        Unsupported suffix, or per-axis values of the wrong length.
    """
    path = os.fspath(path)
    suffix = _suffix(path, WRITERS)
    if suffix is None:
        raise ValueError(f"path must end in one of {sorted(WRITERS)}, got {path!r}")
    if isinstance(image_or_array, Image):
        image = image_or_array
    else:
        from .._validation import check_array

        check_array(image_or_array, "image_or_array")
        image = Image(image_or_array)
    changes = {}
    if scale is not None:
        changes["scale"] = tuple(scale)
    if units is not None:
        changes["units"] = tuple(units)
    if axis_labels is not None:
        changes["axis_labels"] = tuple(axis_labels)
    image = Image(
        image.data,
        scale=changes.get("scale", image.scale),
        units=tuple(normalize_unit(u) for u in changes.get("units", image.units)),
        axis_labels=changes.get("axis_labels", image.axis_labels),
        translate=image.translate,
        metadata=image.metadata,
        name=image.name,
    )
    if image.ndim < 2:
        raise ValueError(f"image must have at least 2 dimensions, got shape {image.shape}")
    _refuse_source_overwrite(path, image.metadata)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    _load(WRITERS[suffix])(path, image)


def _refuse_source_overwrite(path: str, metadata: dict) -> None:
    sources = [metadata.get("source")] + list(metadata.get("files") or [])
    target = os.path.realpath(path)
    for source in sources:
        if isinstance(source, (str, os.PathLike)) and os.path.realpath(os.fspath(source)) == target:
            raise FileExistsError(
                f"refusing to overwrite {path}: it is the file this image was read from "
                "(its data may still be read from it); choose another file name"
            )
