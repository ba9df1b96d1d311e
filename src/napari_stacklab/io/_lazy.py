"""Lazy, picklable array views of files on disk, and how they are chunked for dask.

A dask graph built from these objects holds only a path and a few numbers, so
it pickles cheaply to dask.distributed workers; each worker opens the file on
first access. Chunks always hold whole planes (several planes per chunk up to
:data:`CHUNK_BYTES`), so no diffraction pattern or image plane is ever split.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._guard import FileSignature, nbytes

#: Largest chunk (bytes) a reader builds by grouping whole planes.
CHUNK_BYTES = 64 * 2**20


def plane_chunks(shape: Sequence[int], itemsize: int, frame_ndim: int = 2) -> tuple:
    """Chunk sizes for ``shape``: whole frames, grouped along the last batch axis up to CHUNK_BYTES."""
    shape = tuple(int(s) for s in shape)
    frame_ndim = min(frame_ndim, len(shape))
    n_batch = len(shape) - frame_ndim
    frame_bytes = max(1, math.prod(shape[n_batch:]) * itemsize)
    chunks = [1] * n_batch + list(shape[n_batch:])
    budget = max(1, CHUNK_BYTES // frame_bytes)
    # grow from the innermost batch axis outwards, keeping chunks contiguous in C order
    for axis in range(n_batch - 1, -1, -1):
        take = min(shape[axis], budget)
        chunks[axis] = max(1, take)
        if take < shape[axis]:
            break
        budget //= max(1, shape[axis])
    return tuple(chunks)


def to_dask(array_like: Any, frame_ndim: int = 2) -> Any:
    """Wrap an array-like (memmap view, paged reader, zarr array) as dask with whole-plane chunks."""
    import dask.array as da

    chunks = plane_chunks(array_like.shape, np.dtype(array_like.dtype).itemsize, frame_ndim)
    meta = np.empty((0,) * len(array_like.shape), dtype=array_like.dtype)
    return da.from_array(array_like, chunks=chunks, meta=meta, asarray=True, lock=False, fancy=False)


class MemmapArray:
    """A read-only ``numpy.memmap`` of contiguous raw data inside a file, opened on first access.

    Pickles as (path, offset, shape, dtype, order), never as the data. Every
    read first checks that the file still has the size and modification time it
    had when the array was made: reading a memory map of a file shortened since
    would crash the process (SIGBUS), and one rewritten since would give other data.
    """

    def __init__(self, path: str, offset: int, shape: Sequence[int], dtype: Any, order: str = "C"):
        self.path = str(path)
        self.offset = int(offset)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.order = order
        self.ndim = len(self.shape)
        self.signature = FileSignature(self.path)
        self.signature.check(self.offset + nbytes(self.shape, self.dtype))
        self._map = None

    def open(self) -> np.memmap:
        self.signature.check()
        if self._map is None:
            self._map = np.memmap(
                self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape, order=self.order
            )
        return self._map

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.open()[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self.open()
        return data if dtype is None else data.astype(dtype)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_map": None}

    def __repr__(self) -> str:
        return f"MemmapArray({self.path!r}, shape={self.shape}, dtype={self.dtype})"


class PagedArray:
    """An array whose leading (batch) axes index pages read on demand by ``read_pages``.

    ``read_pages(handle, indices) -> ndarray (len(indices), *frame_shape)`` reads
    the listed flat page indices from ``handle = opener()``. Each thread opens
    its own handle once (so dask threads decode compressed pages in
    parallel); handles are never pickled.
    """

    def __init__(
        self,
        opener: Callable[[], Any],
        read_pages: Callable[[Any, list], np.ndarray],
        shape: Sequence[int],
        dtype: Any,
        frame_ndim: int,
    ):
        self.opener = opener
        self.read_pages = read_pages
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.frame_ndim = frame_ndim
        self._local = threading.local()

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis or k is None for k in key):
            raise IndexError("PagedArray supports integer and slice indexing only")
        key = key + (slice(None),) * (self.ndim - len(key))
        n_batch = self.ndim - self.frame_ndim
        batch_shape = self.shape[:n_batch]
        ranges = [np.arange(size)[k] for size, k in zip(batch_shape, key[:n_batch])]
        grids = np.meshgrid(*[np.atleast_1d(r) for r in ranges], indexing="ij")
        flat = np.ravel_multi_index([g.ravel() for g in grids], batch_shape) if n_batch else np.zeros(1, int)
        handle = getattr(self._local, "handle", None)
        if handle is None:
            handle = self._local.handle = self.opener()
        planes = self.read_pages(handle, [int(i) for i in flat])
        out_batch = tuple(np.atleast_1d(r).size for r in ranges)
        planes = planes.reshape(out_batch + planes.shape[1:])[(Ellipsis,) + key[n_batch:]]
        squeeze = tuple(i for i, k in enumerate(key[:n_batch]) if not isinstance(k, slice))
        return planes.squeeze(axis=squeeze) if squeeze else planes

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "_local"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
