"""A folder, a glob pattern or a list of same-shape TIFF files read as one stack."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._guard import FileSignature, check_eager_size, reading_error
from .._image import Image
from ._lazy import PagedArray, to_dask
from ._tiff import read_tiff

TIFF_SUFFIXES = (".tif", ".tiff")


def natural_key(path: str) -> list:
    """Sort key putting ``img2.tif`` before ``img10.tif``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def tiffs_in_folder(folder: str) -> list[str]:
    """TIFF files directly inside ``folder`` (hidden files skipped), in natural order."""
    names = [
        entry.path
        for entry in os.scandir(folder)
        if entry.is_file() and not entry.name.startswith(".") and entry.name.lower().endswith(TIFF_SUFFIXES)
    ]
    return sorted(names, key=natural_key)


def read_folder(path: str, lazy: bool) -> list[Image]:
    """Read every TIFF file in a folder as one stack (a new leading axis ``"file"``)."""
    files = tiffs_in_folder(path)
    if not files:
        raise ValueError(f"{path}: the folder contains no .tif/.tiff files")
    return [stack_files(files, lazy=lazy, source=str(path), name=Path(path).name)]


def read_glob(pattern: str, lazy: bool) -> list[Image]:
    """Read the files matching a glob pattern (e.g. ``"data/t*.tif"``) as one stack."""
    files = sorted((f for f in glob.glob(pattern) if os.path.isfile(f)), key=natural_key)
    if not files:
        raise FileNotFoundError(f"no files match the pattern {pattern!r}")
    return [stack_files(files, lazy=lazy, source=str(pattern), name=Path(files[0]).parent.name or "stack")]


def stack_files(files: Sequence[str], *, lazy: bool, source: str, name: str) -> Image:
    """Stack same-shape, same-dtype single-image TIFF files along a new first axis."""
    import tifffile

    files = [str(f) for f in files]
    first = read_tiff(files[0], lazy=True)[0]
    shape, dtype = first.shape, first.dtype
    for file in files[1:]:
        try:
            with tifffile.TiffFile(file) as tif:
                series = tif.series[0]
                other_shape, other_dtype = tuple(series.shape), np.dtype(series.dtype)
        except Exception as exc:
            raise ValueError(f"{file}: not a readable TIFF file ({exc})") from exc
        if other_shape != shape or other_dtype != dtype:
            raise ValueError(
                f"{file}: shape {other_shape} and dtype {other_dtype} differ from the first file "
                f"{files[0]} ({shape}, {dtype}); a stack needs files of one shape and dtype"
            )
    if lazy:
        check_eager_size(files[0], shape, dtype, what="decoding one file of the stack")
        opener = _FileList(files, shape, dtype)
        paged = PagedArray(opener, _read_files, (len(files),) + shape, dtype, frame_ndim=len(shape))
        data = to_dask(paged, frame_ndim=len(shape))
    else:
        check_eager_size(source, (len(files),) + shape, dtype)
        data = np.stack([_read_one(file, shape, dtype) for file in files])
    return Image(
        data,
        scale=(1.0,) + first.scale,
        units=("pixel",) + first.units,
        axis_labels=("file",) + first.axis_labels,
        translate=(0.0,) + first.translate,
        metadata={"source": source, "format": "tiff-stack", "files": files},
        name=name,
    )


class _FileList:
    """Picklable opener for :class:`PagedArray`: the 'handle' is itself (files, their shape, dtype, signatures)."""

    def __init__(self, files: list[str], shape: tuple, dtype: np.dtype):
        self.files = files
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.signatures = [FileSignature(file) for file in files]

    def __call__(self) -> "_FileList":
        return self


def _read_files(handle: _FileList, indices: list) -> np.ndarray:
    planes = []
    for i in indices:
        handle.signatures[i].check()
        planes.append(_read_one(handle.files[i], handle.shape, handle.dtype))
    return np.stack(planes)


def _read_one(file: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """One file of a stack, checked against the stack's shape and dtype."""
    import tifffile

    try:
        data = tifffile.imread(file)
    except OSError:
        raise
    except Exception as exc:
        raise reading_error(file, exc, "cannot read this file of the stack") from exc
    if data.shape != tuple(shape) or data.dtype != dtype:
        raise ValueError(
            f"{file}: shape {data.shape} and dtype {data.dtype} differ from the stack's ({tuple(shape)}, {dtype})"
        )
    return data
