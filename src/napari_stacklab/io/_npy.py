"""NumPy ``.npy`` files: read without unpickling; lazy reads copy planes with positional reads, never a memory map."""

from __future__ import annotations

import os

import numpy as np

from ._guard import check_eager_size, check_image, nbytes
from .._image import Image
from ._lazy import RawArray, to_dask
from ._units import file_stem


def read_npy(path: str, lazy: bool) -> list[Image]:
    """Read a ``.npy`` array of numbers with at least 2 axes (object, text, record and 1-D arrays are refused)."""
    path = str(path)
    shape, fortran, dtype, offset = _header(path)
    raw = RawArray(path, offset, shape, dtype, order="F" if fortran else "C")
    if lazy:
        data = to_dask(raw)
    else:
        check_eager_size(path, shape, dtype)
        data = raw[...]
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
    if dtype.hasobject:
        raise ValueError(
            f"{path}: holds a pickled object array (dtype {dtype}); refusing to unpickle it, "
            "save plain numeric arrays instead"
        )
    if any(int(s) < 0 for s in shape):
        raise ValueError(f"{path}: not a valid .npy file (negative length in shape {shape})")
    check_image(path, shape, dtype)  # before any size arithmetic: a |V0 array of 10**24 items has 0 bytes
    size = os.path.getsize(path)
    if offset + nbytes(shape, dtype) > size:
        raise ValueError(
            f"{path}: truncated file: the header promises shape {shape} {dtype} "
            f"({nbytes(shape, dtype)} bytes of data), the file has {size} bytes"
        )
    return shape, fortran, dtype, offset
