"""NumPy ``.npy`` files: np.load without pickles; lazy reads are read-only memory maps."""

from __future__ import annotations

import os

import numpy as np

from ._guard import check_eager_size, nbytes
from ._image import Image
from ._lazy import MemmapArray, to_dask
from ._units import file_stem

NPY_MAGIC = (b"\x93NUMPY",)


def read_npy(path: str, lazy: bool) -> list[Image]:
    """Read a ``.npy`` array (never unpickles; object arrays are refused)."""
    path = str(path)
    shape, fortran, dtype, offset = _header(path)
    if dtype.hasobject:
        raise ValueError(
            f"{path}: holds a pickled object array (dtype {dtype}); refusing to unpickle it, "
            "save plain numeric arrays instead"
        )
    if lazy and len(shape) > 0:
        data = to_dask(MemmapArray(path, offset, shape, dtype, order="F" if fortran else "C"))
    else:
        check_eager_size(path, shape, dtype)
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path}: cannot read .npy file ({exc})") from exc
    if data.ndim == 0:
        raise ValueError(f"{path}: holds a scalar, not an image")
    return [Image(data, name=file_stem(path), metadata={"source": path, "format": "npy"})]


def _header(path: str) -> tuple:
    fmt = np.lib.format
    try:
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(fh)
            offset = fh.tell()
    except FileNotFoundError:
        raise
    except Exception as exc:  # numpy's header parser raises ValueError, EOFError, SyntaxError, TokenError ...
        raise ValueError(f"{path}: not a valid .npy file ({type(exc).__name__}: {exc})") from exc
    if any(int(s) < 0 for s in shape):
        raise ValueError(f"{path}: not a valid .npy file (negative length in shape {shape})")
    size = os.path.getsize(path)
    if not dtype.hasobject and offset + nbytes(shape, dtype) > size:
        raise ValueError(
            f"{path}: truncated file: the header promises shape {shape} {dtype} "
            f"({nbytes(shape, dtype)} bytes of data), the file has {size} bytes"
        )
    return shape, fortran, dtype, offset
