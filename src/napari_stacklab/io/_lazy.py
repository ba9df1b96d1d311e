"""Lazy, picklable array views of files on disk, and how they are chunked for dask.

A dask graph built from these objects holds only a path and a few numbers, so
it pickles cheaply to dask.distributed workers; each worker opens the file on
first access. Chunks always hold whole frames, so no image plane or
diffraction pattern is ever split:

- **batch chunks** (the default, up to :data:`CHUNK_BYTES`) group many frames,
  for throughput when a whole stack is computed or written;
- **view chunks** (up to :data:`VIEW_CHUNK_BYTES`, what the napari reader asks
  for) hold one large plane, or a few small ones, so that showing a plane reads
  that plane and not its chunk-mates.

:func:`chunk_budget` chooses between them (or any other size) for the readers
called inside it.

Raw (uncompressed) data are never memory-mapped: :class:`RawArray` copies
them into memory with positional reads (``preadv``). A memory map of a file
that another process shortens crashes the reading process (SIGBUS) as soon as
a page past the new end is touched, and no check before the copy can close
that window; a read returns fewer bytes instead, which becomes an error
naming the file.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..frames import grouped_frame_chunks, register_frame_source
from ._guard import FileSignature, nbytes

#: Largest batch chunk (bytes): whole frames grouped for computing or writing a whole stack.
CHUNK_BYTES = 64 * 2**20
#: Largest view chunk (bytes), what the napari reader uses: one plane of 1 MiB or more, or a few
#: smaller planes (a 128 x 128 uint16 diffraction pattern is 32 KiB: 32 of them per chunk).
VIEW_CHUNK_BYTES = 2**20

_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("stacklab_chunk_bytes", default=None)


def chunk_bytes() -> int:
    """The chunk budget readers use now: the innermost :func:`chunk_budget`, else :data:`CHUNK_BYTES`."""
    return _BUDGET.get() or CHUNK_BYTES


@contextlib.contextmanager
def chunk_budget(size: int | None) -> Iterator[None]:
    """Readers called inside build dask chunks of whole frames up to ``size`` bytes (``None``: the default)."""
    token = _BUDGET.set(size)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def plane_chunks(shape: Sequence[int], itemsize: int, frame_ndim: int = 2, budget: int | None = None) -> tuple:
    """Chunk sizes for ``shape``: whole frames, grouped from the innermost batch axis out up to the budget."""
    return grouped_frame_chunks(shape, itemsize, frame_ndim, budget or chunk_bytes())


def to_dask(array_like: Any, frame_ndim: int = 2) -> Any:
    """Wrap an array-like (raw file view, paged reader, zarr array) as dask with whole-frame chunks."""
    import dask.array as da

    chunks = plane_chunks(array_like.shape, np.dtype(array_like.dtype).itemsize, frame_ndim)
    meta = np.empty((0,) * len(array_like.shape), dtype=array_like.dtype)
    array = da.from_array(array_like, chunks=chunks, meta=meta, asarray=True, lock=False, fancy=False)
    if isinstance(array_like, RawArray):  # reductions of every frame may read it in cache-sized groups
        register_frame_source(array.name, array_like)
    return array


# ---------------------------------------------------------------- raw data, read with positional reads

#: Gaps between wanted bytes up to this size are read into a scratch buffer (one system call
#: for many frames with headers between them, as in Merlin .mib files); longer ones start a new read.
_MAX_GAP = 64 * 2**10
#: Buffers per ``preadv`` call (Linux allows 1024).
_MAX_BUFFERS = 512
#: Blocks shorter than this are not read one by one: the span holding them is read and then sliced.
_MIN_BLOCK = 4096


class _Lease:
    """Owner of one pooled buffer while arrays use it (numpy keeps it as their ``base``)."""

    __slots__ = ("__array_interface__", "__weakref__")


class BufferPool:
    """Reuses the large buffers that reads fill, instead of asking the OS for fresh pages each time.

    A new buffer of tens of MB costs a page fault per 4 KiB page on first write, which
    halves the speed of copying from the page cache. Buffers come back to the pool when
    the last array using them (views included) is garbage collected; at most
    ``keep_bytes``, and ``keep_each`` buffers of one size, wait there; the rest is freed.
    """

    #: Smaller buffers come from ``np.empty``: the C allocator already recycles them.
    MIN_BYTES = 4 * 2**20

    def __init__(self, keep_bytes: int, keep_each: int = 4):
        self.keep_bytes = keep_bytes
        self.keep_each = keep_each
        self._free: dict[int, list[np.ndarray]] = {}
        self._kept = 0
        self._lock = threading.Lock()

    def empty(self, shape: Sequence[int], dtype: Any) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = nbytes(shape, dtype)
        if size < self.MIN_BYTES:
            return np.empty(shape, dtype)
        with self._lock:
            free = self._free.get(size)
            memory = free.pop() if free else None
            if memory is not None:
                self._kept -= size
        if memory is None:
            memory = np.empty(size, np.uint8)
        lease = _Lease()
        lease.__array_interface__ = {
            "data": (memory.ctypes.data, False), "shape": tuple(int(s) for s in shape), "typestr": dtype.str,
            "version": 3,
        }
        weakref.finalize(lease, self._give_back, memory)
        return np.asarray(lease)

    def _give_back(self, memory: np.ndarray) -> None:
        with self._lock:
            free = self._free.setdefault(memory.size, [])
            if self._kept + memory.size <= self.keep_bytes and len(free) < self.keep_each:
                free.append(memory)
                self._kept += memory.size

    def clear(self) -> None:
        """Free every waiting buffer."""
        with self._lock:
            self._free.clear()
            self._kept = 0


#: The pool :class:`RawArray` reads into: two batch chunks' worth at most waits there.
POOL = BufferPool(keep_bytes=2 * CHUNK_BYTES)


class RawArray:
    """A read-only array of raw bytes inside a file: element ``[i, j, ...]`` lies at ``offset + i*s0 + j*s1 ...``.

    Parameters
    ----------
    path : str
        The file.
    offset : int
        Byte position of element ``[0, 0, ...]``.
    shape : sequence of int
    dtype : dtype
        Any fixed-size numeric dtype, either byte order.
    strides : sequence of int, optional
        Bytes between neighbours along each axis (negative for flipped axes, larger than
        the frame for frames with headers between them); default: contiguous in ``order``.
    order : {"C", "F"}
        Layout when ``strides`` is not given.

    Indexing with integers and slices reads exactly the bytes it needs (frame headers
    skipped, never the whole file) into a new NumPy array. Reads are positional
    (``os.preadv``) on one read-only descriptor per process, so threads read in parallel.
    Before and after every read the file's size and modification time are compared
    with those it had when the array was made: a file deleted, shortened or rewritten
    since gives a ``ValueError``/``FileNotFoundError`` naming it, never a crash and
    never other data. Pickles as (path, layout), never as data or descriptor.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        offset: int,
        shape: Sequence[int],
        dtype: Any,
        *,
        strides: Sequence[int] | None = None,
        order: str = "C",
    ):
        self.path = os.fspath(path)
        self.offset = int(offset)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        if self.dtype.hasobject or self.dtype.itemsize == 0 or self.dtype.fields is not None:
            raise ValueError(f"{self.path}: cannot read raw data of dtype {self.dtype}")
        if any(s < 0 for s in self.shape):
            raise ValueError(f"{self.path}: negative length in shape {self.shape}")
        if strides is None:
            strides = contiguous_strides(self.shape, self.dtype.itemsize, order)
        self.strides = tuple(int(s) for s in strides)
        if len(self.strides) != self.ndim:
            raise ValueError(f"strides must have one entry per axis, got {self.strides} for shape {self.shape}")
        self.signature = FileSignature(self.path)
        low, high = _extent(self.offset, self.shape, self.strides, self.dtype.itemsize)
        if low < 0:
            raise ValueError(f"{self.path}: the data would start {-low} bytes before the start of the file")
        self.signature.check(high)
        self.bytes_read = 0
        self._fd: int | None = None
        self._lock = threading.Lock()

    # -- array protocol ------------------------------------------------------------------
    def __getitem__(self, key: Any) -> np.ndarray:
        offset, shape, strides, drop = _index(key, self.offset, self.shape, self.strides)
        out = self._read(offset, shape, strides)
        return out[tuple(0 if axis in drop else slice(None) for axis in range(len(shape)))] if drop else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return nbytes(self.shape, self.dtype)

    def __repr__(self) -> str:
        return f"RawArray({self.path!r}, offset={self.offset}, shape={self.shape}, dtype={self.dtype})"

    def __dask_tokenize__(self) -> tuple:
        signature = (self.signature.size, self.signature.mtime_ns)
        return (type(self).__name__, self.path, self.offset, self.shape, self.dtype.str, self.strides, signature)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_fd", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._fd = None
        self._lock = threading.Lock()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- frame source (napari_stacklab.frames.FrameSource) --------------------------------
    def read_groups(self, key: Any, buffer: np.ndarray) -> Iterator[np.ndarray]:
        """Read the frames of ``self[key]`` a few at a time into ``buffer``; yield each group.

        ``buffer`` has shape ``(group, *frame)`` (a frame: its last
        ``buffer.ndim - 1`` axes, which ``key`` keeps whole) and any numeric
        dtype: values are cast as ``astype`` would. Groups follow the C order of
        the selected batch axes; each is a view of ``buffer`` that the next
        read overwrites, so it must be used before asking for the next one.
        The file's size and time are checked once before and once after.
        """
        offset, shape, strides, drop = _index(key, self.offset, self.shape, self.strides)
        shape = [n for axis, n in enumerate(shape) if axis not in drop]
        strides = [s for axis, s in enumerate(strides) if axis not in drop]
        frame_ndim = buffer.ndim - 1
        frame_shape, frame_strides = tuple(shape[len(shape) - frame_ndim:]), strides[len(shape) - frame_ndim:]
        if len(shape) < frame_ndim or frame_shape != tuple(buffer.shape[1:]):
            raise ValueError(f"buffer must hold frames of shape {frame_shape}, got {tuple(buffer.shape[1:])}")
        batch_shape, batch_strides = shape[: len(shape) - frame_ndim], strides[: len(shape) - frame_ndim]
        frame_bytes = math.prod(frame_shape) * self.dtype.itemsize
        first = offset + sum(min(0, (n - 1) * s) for n, s in zip(frame_shape, frame_strides))
        starts = np.full(1, first, dtype=np.int64)
        for n, s in zip(batch_shape, batch_strides):
            starts = (starts[:, None] + np.arange(n, dtype=np.int64) * s).ravel()
        if starts.size == 0 or frame_bytes == 0:
            return
        packed = _packed(frame_shape, [abs(s) for s in frame_strides], self.dtype.itemsize)
        if not packed or (starts.size > 1 and np.any(np.diff(starts) < frame_bytes)):
            yield from _groups_of(self[key], buffer)  # an unusual layout: read whole, then cast group by group
            return
        self.signature.check(int(starts[-1]) + frame_bytes)
        low, high = int(starts[0]), int(starts[-1]) + frame_bytes
        self.prefetch(low, min(self.signature.size, 2 * high - low))  # and as much after: most often the next task's
        step = int(starts[1] - starts[0]) if starts.size > 1 else frame_bytes
        regular = starts.size < 3 or bool(np.all(np.diff(starts) == step))
        # frames with short headers between them (Merlin .mib): one read per group, headers included
        spanned = regular and frame_bytes < step <= frame_bytes + _MAX_GAP
        direct = (not spanned and buffer.dtype == self.dtype and self.dtype.isnative
                  and _packed(frame_shape, frame_strides, self.dtype.itemsize, c_order=True))
        pitch = step if spanned else frame_bytes  # bytes from one frame to the next in ``raw``
        raw = None if direct else np.empty((buffer.shape[0] - 1) * pitch + frame_bytes, np.uint8)
        positions = starts.tolist()  # Python integers: the loop below runs once per group, in the interpreter
        for begin in range(0, len(positions), buffer.shape[0]):
            group_starts = positions[begin : begin + buffer.shape[0]]
            count = len(group_starts)
            group = buffer[:count]
            target = group.reshape(-1).view(np.uint8) if direct else raw[: (count - 1) * pitch + frame_bytes]
            try:
                if spanned or group_starts[-1] - group_starts[0] == (count - 1) * frame_bytes:
                    self._readv_buffers(group_starts[0], [target])  # one read for the whole group
                else:
                    self._read_blocks(target, starts[begin : begin + count], frame_bytes)
            except OSError as exc:
                self.signature.check()
                raise OSError(exc.errno, f"{self.path}: cannot read ({exc.strerror or exc})") from exc
            if not direct:  # headers, another byte order, flipped rows, another dtype: cast while in the cache
                frames = np.ndarray((count, *frame_shape), self.dtype, buffer=raw,
                                    offset=offset - first, strides=(pitch, *frame_strides))
                np.copyto(group, frames, casting="unsafe")
            yield group
        self.signature.check()

    def prefetch(self, start: int, stop: int) -> None:
        """Have file bytes ``[start, stop)`` read into the page cache, in parallel pieces, unless they are there.

        Returns at once. Storage serves several requests at a time much faster
        than one after another (a cold virtual disk here: 0.3 GB/s for two
        sequential readers, 1.7 GB/s for a few parallel ones), so a reduction's
        task asks for its bytes, and the next task's, up front. Whether they
        are cached already is probed at both ends with non-blocking one-byte
        reads.
        """
        if not hasattr(os, "posix_fadvise") or stop <= start:
            return
        fd = self._descriptor()
        if _cached(fd, start) and _cached(fd, stop - 1):
            return
        pool = _read_ahead_pool()
        for piece in range(start, stop, READ_AHEAD_PIECE):
            pool.submit(_will_need, fd, piece, min(READ_AHEAD_PIECE, stop - piece))

    # -- reading -------------------------------------------------------------------------
    def _descriptor(self) -> int:
        if self._fd is None:
            with self._lock:
                if self._fd is None:
                    fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))
                    if hasattr(os, "posix_fadvise"):  # chunks are read front to back: let the kernel read ahead
                        with contextlib.suppress(OSError):
                            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
                    self._fd = fd
        return self._fd

    def _read(self, offset: int, shape: tuple, strides: tuple) -> np.ndarray:
        if 0 in shape:
            return np.empty(shape, self.dtype)
        low, high = _extent(offset, shape, strides, self.dtype.itemsize)
        self.signature.check(high)
        # read in file order: flipped axes read forwards, axes sorted by stride (C or F alike)
        strides = list(strides)
        flipped = [axis for axis, (n, s) in enumerate(zip(shape, strides)) if s < 0 and n > 1]
        for axis in flipped:
            offset += (shape[axis] - 1) * strides[axis]
            strides[axis] = -strides[axis]
        order = sorted(range(len(shape)), key=lambda a: (shape[a] > 1, -strides[a]))
        out = POOL.empty([shape[a] for a in order], self.dtype)
        try:
            self._fill(out, offset, [strides[a] for a in order])
        except OSError as exc:
            self.signature.check()  # a deleted or changed file says so
            raise OSError(exc.errno, f"{self.path}: cannot read ({exc.strerror or exc})") from exc
        self.signature.check()  # changed while being read: the bytes may mix two versions
        result = out.transpose(np.argsort(order))
        return np.flip(result, axis=flipped) if flipped else result

    def _fill(self, out: np.ndarray, offset: int, strides: list) -> None:
        """Fill C-contiguous ``out`` with the elements at ``offset + index . strides`` (strides >= 0, sorted)."""
        itemsize = out.dtype.itemsize
        shape = out.shape
        inner, block = len(shape), itemsize
        while inner > 0 and (shape[inner - 1] == 1 or strides[inner - 1] == block):
            block *= shape[inner - 1]
            inner -= 1
        flat = out.reshape(-1).view(np.uint8)
        if inner == 0:
            self._readv([(offset, flat)])
            return
        starts = np.full(1, offset, dtype=np.int64)
        for n, s in zip(shape[:inner], strides[:inner]):
            starts = (starts[:, None] + np.arange(n, dtype=np.int64) * s).ravel()
        ordered = starts.size == 1 or bool(np.all(np.diff(starts) >= block))
        if block >= _MIN_BLOCK and ordered:
            self._read_blocks(flat, starts, block)
            return
        span = int(starts[-1] - starts[0]) + block if ordered else None
        if span is not None and span <= 4 * flat.size + 2**20:
            scratch = POOL.empty((span,), np.uint8)
            self._readv([(int(starts[0]), scratch)])
            view = np.ndarray(shape, out.dtype, buffer=scratch, strides=strides)
            np.copyto(out, view)
            return
        for i in range(shape[0]):  # sparse: one frame (row, ...) at a time
            self._fill(out[i], offset + i * strides[0], strides[1:])

    def _read_blocks(self, flat: np.ndarray, starts: np.ndarray, block: int) -> None:
        """Read blocks of ``block`` bytes at increasing file positions ``starts`` into consecutive parts of ``flat``.

        Blocks that follow each other in the file become one buffer; short gaps between
        them (frame headers) are read into a scratch buffer within the same call.
        """
        scratch = None
        runs: list[tuple[int, list]] = []
        buffers: list = []
        run_start = end = first = 0
        for i, start in enumerate(starts.tolist()):
            if not buffers or start - end > _MAX_GAP or len(buffers) >= _MAX_BUFFERS:
                if buffers:
                    runs.append((run_start, buffers))
                buffers, run_start, first = [flat[i * block : (i + 1) * block]], start, i
            elif start == end:  # next in the file and next in ``flat``: grow the last buffer
                buffers[-1] = flat[first * block : (i + 1) * block]
            else:
                if scratch is None:
                    scratch = bytearray(_MAX_GAP)
                buffers += [memoryview(scratch)[: start - end], flat[i * block : (i + 1) * block]]
                first = i
            end = start + block
        runs.append((run_start, buffers))
        for position, run in runs:
            self._readv_buffers(position, run)

    def _readv(self, segments: list[tuple[int, np.ndarray]]) -> None:
        for position, buffer in segments:
            self._readv_buffers(position, [buffer])

    def _readv_buffers(self, position: int, buffers: list) -> None:
        """Fill every buffer, in order, from the file bytes starting at ``position``."""
        views = [memoryview(b).cast("B") for b in buffers]
        fd = self._descriptor()
        while views:
            wanted = sum(v.nbytes for v in views)
            got = _preadv(fd, views, position, self._lock)
            self.bytes_read += got
            if got <= 0:
                self.signature.check()
                raise ValueError(
                    f"{self.path}: the file ended at byte {position} while reading it "
                    f"({wanted} more bytes expected): it was shortened after it was opened; open it again"
                )
            position += got
            while views and got >= views[0].nbytes:
                got -= views[0].nbytes
                views.pop(0)
            if views and got:
                views[0] = views[0][got:]


def _preadv(fd: int, views: list, position: int, lock: threading.Lock) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, views, position)
    with lock:  # no positional reads (Windows): seek and read under the array's lock
        os.lseek(fd, position, os.SEEK_SET)
        total = 0
        for view in views:
            got = os.readv(fd, [view]) if hasattr(os, "readv") else _read_into(fd, view)
            total += got
            if got < view.nbytes:
                break
        return total


def _read_into(fd: int, view: memoryview) -> int:
    data = os.read(fd, view.nbytes)
    view[: len(data)] = data
    return len(data)


#: Bytes of one read-ahead request, and threads issuing them (see :meth:`RawArray.prefetch`).
READ_AHEAD_PIECE = 2**20
READ_AHEAD_THREADS = 8
_READ_AHEAD: dict = {}
_READ_AHEAD_LOCK = threading.Lock()


def _read_ahead_pool() -> ThreadPoolExecutor:
    """This process's read-ahead threads (made on first use; a forked child makes its own)."""
    with _READ_AHEAD_LOCK:
        pool = _READ_AHEAD.get(os.getpid())
        if pool is None:
            pool = _READ_AHEAD[os.getpid()] = ThreadPoolExecutor(READ_AHEAD_THREADS, "stacklab-read-ahead")
        return pool


def _will_need(fd: int, start: int, length: int) -> None:
    with contextlib.suppress(OSError):  # a hint: a descriptor closed meanwhile costs nothing
        os.posix_fadvise(fd, start, length, os.POSIX_FADV_WILLNEED)


def _cached(fd: int, position: int) -> bool:
    """The byte at ``position`` is in the page cache (a read that may not wait for the disk)."""
    nowait = getattr(os, "RWF_NOWAIT", None)
    if nowait is None:
        return False
    try:
        return os.preadv(fd, [bytearray(1)], position, nowait) == 1
    except OSError:  # EAGAIN: on disk only; EOPNOTSUPP: the file system cannot tell
        return False


def _packed(shape: Sequence[int], strides: Sequence[int], itemsize: int, c_order: bool = False) -> bool:
    """The elements fill exactly ``prod(shape) * itemsize`` bytes (in C order only, with ``c_order``)."""
    axes = [(s, n) for n, s in zip(shape, strides) if n > 1]
    if not c_order:
        axes.sort()
    else:
        axes.reverse()
    step = itemsize
    for stride, n in axes:
        if stride != step:
            return False
        step *= n
    return True


def _groups_of(frames: np.ndarray, buffer: np.ndarray) -> Iterator[np.ndarray]:
    """The frames of ``frames`` (any batch shape) copied into ``buffer`` group by group (C order)."""
    flat = frames.reshape((-1, *buffer.shape[1:]))
    for begin in range(0, flat.shape[0], buffer.shape[0]):
        group = buffer[: min(buffer.shape[0], flat.shape[0] - begin)]
        np.copyto(group, flat[begin : begin + group.shape[0]], casting="unsafe")
        yield group


def contiguous_strides(shape: Sequence[int], itemsize: int, order: str = "C") -> tuple:
    """Byte strides of a contiguous array of ``shape`` in C or Fortran ``order``."""
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F', got {order!r}")
    axes = range(len(shape) - 1, -1, -1) if order == "C" else range(len(shape))
    strides = [0] * len(shape)
    step = itemsize
    for axis in axes:
        strides[axis] = step
        step *= max(int(shape[axis]), 1)
    return tuple(strides)


def _extent(offset: int, shape: Sequence[int], strides: Sequence[int], itemsize: int) -> tuple[int, int]:
    """First byte and one past the last byte an array layout touches."""
    if 0 in shape:
        return offset, offset
    low = offset + sum(min(0, (n - 1) * s) for n, s in zip(shape, strides))
    high = offset + sum(max(0, (n - 1) * s) for n, s in zip(shape, strides)) + itemsize
    return low, high


def _index(key: Any, offset: int, shape: tuple, strides: tuple) -> tuple[int, tuple, tuple, set]:
    """The layout selected by ``key`` (integers, slices, one Ellipsis) and the axes integers drop."""
    key = key if isinstance(key, tuple) else (key,)
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if Ellipsis in key:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (len(shape) - len(key) + 1) + key[at + 1 :]
    if len(key) > len(shape):
        raise IndexError(f"too many indices for an array of shape {shape}")
    key = key + (slice(None),) * (len(shape) - len(key))
    new_shape, new_strides, drop = [], [], set()
    for axis, (k, n, s) in enumerate(zip(key, shape, strides)):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            length = len(range(start, stop, step))
            offset += start * s if length else 0
            new_shape.append(length)
            new_strides.append(s * step)
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            index = int(k)
            if not -n <= index < n:
                raise IndexError(f"index {index} is out of bounds for axis {axis} with size {n}")
            offset += (index % n) * s
            new_shape.append(1)
            new_strides.append(s)
            drop.add(axis)
        else:
            raise IndexError(f"RawArray supports integer and slice indexing only, got {k!r}")
    return offset, tuple(new_shape), tuple(new_strides), drop


# ---------------------------------------------------------------- pages decoded on demand


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
