"""Generators of bad (and reference good) files for the reader reliability tests.

Every generator returns the file's bytes; tests write them into ``tmp_path``
under whatever name the case needs. TIFFs are assembled by hand (classic,
little-endian) so that each defect is exactly the one named: a header
claiming 100000 x 100000 pixels, an IFD chain that loops, a strip offset past
the end of the file, ... Nothing here allocates what a bad header claims.
"""

from __future__ import annotations

import contextlib
import io
import signal
import struct
import zlib

import numpy as np

# TIFF field types
SHORT, LONG, RATIONAL, ASCII, SRATIONAL, DOUBLE = 3, 4, 5, 2, 10, 12
_TYPE_SIZE = {1: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, SRATIONAL: 8, DOUBLE: 8}
_TYPE_CODE = {SHORT: "H", LONG: "I"}


def _pack_value(kind: int, values) -> bytes:
    if kind == ASCII:
        text = values.encode("latin-1") if isinstance(values, str) else bytes(values)
        return text + b"\x00"
    if kind in (RATIONAL, SRATIONAL):
        code = "I" if kind == RATIONAL else "i"
        return b"".join(struct.pack("<" + code * 2, n, d) for n, d in values)
    if kind == DOUBLE:
        return b"".join(struct.pack("<d", v) for v in values)
    return b"".join(struct.pack("<" + _TYPE_CODE[kind], v) for v in values)


def tiff(
    pixels: bytes | None = None,
    *,
    width: int = 16,
    height: int = 16,
    bits: int = 8,
    compression: int = 1,
    strip_offset: int | None = None,
    strip_bytes: int | None = None,
    extra: dict | None = None,
    entry_count: int | None = None,
    next_ifd: int = 0,
    tag_counts: dict | None = None,
) -> bytes:
    """A one-strip, one-page grey TIFF: header, pixel data at byte 8, then the IFD and its out-of-line values.

    ``extra`` adds or replaces tags (``{tag: (type, values)}``; ``None`` as the value removes
    the tag); ``tag_counts`` overrides the count written for a tag (without adding data);
    ``entry_count`` overrides the number of entries the IFD announces; ``next_ifd`` is the
    offset written after the last entry (0 ends the chain).
    """
    if pixels is None:
        pixels = bytes(range(256)) * (width * height * (bits // 8) // 256 + 1)
        pixels = pixels[: width * height * (bits // 8)]
    tags: dict[int, tuple[int, list]] = {
        256: (LONG, [width]),
        257: (LONG, [height]),
        258: (SHORT, [bits]),
        259: (SHORT, [compression]),
        262: (SHORT, [1]),
        273: (LONG, [8 if strip_offset is None else strip_offset]),
        277: (SHORT, [1]),
        278: (LONG, [height]),
        279: (LONG, [len(pixels) if strip_bytes is None else strip_bytes]),
    }
    for tag, value in (extra or {}).items():
        if value is None:
            tags.pop(tag, None)
        else:
            tags[tag] = value
    ifd_offset = 8 + len(pixels) + (len(pixels) % 2)
    entries = sorted(tags.items())
    ifd_size = 2 + 12 * len(entries) + 4
    blob = b""
    packed_entries = b""
    for tag, (kind, values) in entries:
        payload = _pack_value(kind, values)
        count = len(payload) if kind == ASCII else len(values)
        count = (tag_counts or {}).get(tag, count)
        if len(payload) <= 4:
            field = payload.ljust(4, b"\x00")
        else:
            field = struct.pack("<I", ifd_offset + ifd_size + len(blob))
            blob += payload + (b"\x00" if len(payload) % 2 else b"")
        packed_entries += struct.pack("<HHI", tag, kind, count) + field
    head = b"II*\x00" + struct.pack("<I", ifd_offset)
    n_entries = len(entries) if entry_count is None else entry_count
    ifd = struct.pack("<H", n_entries) + packed_entries + struct.pack("<I", next_ifd)
    return head + pixels + b"\x00" * (len(pixels) % 2) + ifd + blob


def ifd_offset(data: bytes) -> int:
    """Offset of the first IFD of a little-endian classic TIFF."""
    return struct.unpack("<I", data[4:8])[0]


def valid_tiff(shape=(3, 16, 16), dtype=np.uint16, **kwargs) -> bytes:
    """A real TIFF written by tifffile (multi-page for 3-D shapes)."""
    import tifffile

    kwargs.setdefault("photometric", "minisblack")
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.arange(np.prod(shape), dtype=np.int64).reshape(shape).astype(dtype), **kwargs)
    return buffer.getvalue()


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npy_header(shape, descr: str = "<u2", fortran: bool = False, payload: bytes = b"") -> bytes:
    """A version 1.0 ``.npy`` header announcing ``shape`` and ``descr``, followed by ``payload``."""
    header = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}).encode("latin-1")
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def png() -> bytes:
    """A real PNG image (the camera crop)."""
    import cv2
    from skimage import data

    ok, encoded = cv2.imencode(".png", data.camera()[:64, :64])
    assert ok
    return encoded.tobytes()


def random_bytes(size: int = 4096, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).bytes(size)


# ---------------------------------------------------------------- named TIFF defects


def tiff_huge_dims() -> bytes:
    """Header claims 100000 x 100000 uint8 (10 GB); the file holds 256 bytes."""
    return tiff(bytes(256), width=100_000, height=100_000, strip_bytes=100_000 * 100_000 % 2**32)


def tiff_huge_dims_compressed() -> bytes:
    """Header claims 100000 x 100000 deflate-compressed uint8; the strip is a few bytes."""
    strip = zlib.compress(bytes(1024))
    return tiff(strip, width=100_000, height=100_000, compression=8)


def tiff_overflowing_dims() -> bytes:
    """Width and height of 2**32 - 1 pixels of 64 bits: their product overflows 64-bit integers."""
    return tiff(bytes(64), width=2**32 - 1, height=2**32 - 1, bits=64, strip_bytes=64)


def tiff_zero_width() -> bytes:
    return tiff(bytes(16), width=0, height=16, strip_bytes=0)


def tiff_huge_entry_count() -> bytes:
    """The IFD announces 65535 entries; the file ends after a dozen."""
    return tiff(entry_count=65535)


def tiff_huge_tag_count() -> bytes:
    """StripOffsets claims 2**30 values stored past the end of the file."""
    return tiff(tag_counts={273: 2**30, 279: 2**30})


def tiff_circular_ifd(self_loop: bool = True) -> bytes:
    """The IFD chain loops: the first IFD points back at itself (or at a second IFD that points back)."""
    base = tiff()
    first = ifd_offset(base)
    if self_loop:
        return tiff(next_ifd=first)
    # append a copy of the first IFD that points back to the first
    n = struct.unpack("<H", base[first : first + 2])[0]
    ifd_end = first + 2 + 12 * n
    second = len(base)
    copy = base[first:ifd_end] + struct.pack("<I", first)
    looped = base[:ifd_end] + struct.pack("<I", second) + base[ifd_end + 4 :]
    return looped + copy


def tiff_offset_past_eof() -> bytes:
    return tiff(strip_offset=10**9)


def tiff_corrupt_deflate() -> bytes:
    """A deflate-compressed strip whose bytes are garbage (valid header and tags)."""
    return tiff(random_bytes(200, seed=7), compression=8)


def tiff_unknown_compression() -> bytes:
    return tiff(compression=34999)


def tiff_resolution(x: tuple, y: tuple, unit: int = 3, kind: int = RATIONAL) -> bytes:
    """A valid image whose X/YResolution are the given rationals (e.g. (1, 0): infinite)."""
    return tiff(extra={282: (kind, [x]), 283: (kind, [y]), 296: (SHORT, [unit])})


def tiff_description(text: str, **kwargs) -> bytes:
    """A valid TIFF whose ImageDescription is ``text`` (an ImageJ or OME header, well formed or not)."""
    return tiff(extra={270: (ASCII, text)}, **kwargs)


def imagej_description(**fields) -> str:
    fields = {"images": 1, **fields}
    lines = ["ImageJ=1.54f"] + [f"{key}={value}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def ome_description(pixels_attrs: str = "", body: str = "", size=(16, 16)) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" '
        f'SizeX="{size[1]}" SizeY="{size[0]}" SizeC="1" SizeZ="1" SizeT="1" {pixels_attrs}>'
        f'<Channel ID="Channel:0:0" SamplesPerPixel="1"/>{body}'
        '<TiffData IFD="0" PlaneCount="1"/></Pixels></Image></OME>'
    )


def truncations(data: bytes) -> dict[str, bytes]:
    """A valid TIFF cut in its header, in its first tag directory, and in the middle of its last page's data."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        first = tif.pages[0].offset
        last = tif.pages[len(tif.pages) - 1]
        data_start = last.dataoffsets[0]
        data_end = last.dataoffsets[-1] + last.databytecounts[-1]
    return {
        "header": data[:6],
        "ifd": data[: first + 20],
        "data": data[: (data_start + data_end) // 2],
    }


# ---------------------------------------------------------------- fuzzing core (tests/test_fuzz_readers.py, benchmarks/fuzz_readers.py)


def fuzz_seeds() -> dict[str, bytes]:
    """Valid files the fuzzer mutates, one per reader path (name -> bytes; the suffix picks the reader)."""
    stack = dict(shape=(3, 12, 10), dtype=np.uint16)
    return {
        "plain.tif": valid_tiff(**stack),
        "deflate.tif": valid_tiff(**stack, compression="zlib"),
        "lzw.tif": valid_tiff(**stack, compression="lzw"),
        "tiled.tif": valid_tiff(shape=(32, 32), dtype=np.uint8, tile=(16, 16)),
        "imagej.tif": valid_tiff(**stack, photometric=None, imagej=True, resolution=(2.0, 2.0),
                                 metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"}),
        "ome.ome.tif": valid_tiff(**stack, photometric=None, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.1}),
        "hand.tif": tiff_resolution((10, 1), (10, 1)),
        "c.npy": npy(np.arange(120, dtype="<f4").reshape(3, 4, 10)),
        "f.npy": npy(np.asfortranarray(np.arange(60, dtype=">i2").reshape(6, 10))),
    }


def mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    """Apply ``(kind, position, value)`` edits: bit flips, overwritten bytes, insertions, deletions, truncation."""
    out = bytearray(data)
    for kind, position, value in edits:
        if not out:
            break
        i = position % len(out)
        if kind == "flip":
            out[i] ^= 1 << (value % 8)
        elif kind == "byte":
            out[i] = value % 256
        elif kind == "word":  # a 32-bit little-endian value: counts, offsets, sizes
            out[i : i + 4] = struct.pack("<I", value % 2**32)
        elif kind == "insert":
            out[i:i] = bytes([value % 256]) * (1 + value % 16)
        elif kind == "delete":
            del out[i : i + 1 + value % 16]
        elif kind == "truncate":
            del out[i:]
    return bytes(out)


MUTATIONS = ("flip", "byte", "word", "insert", "delete", "truncate")
#: what a reader may raise for a bad file: clear, and naming the file
ALLOWED_ERRORS = (ValueError, OSError)


def check_read(path: str) -> str:
    """Read ``path`` the ways napari and scripts do; return ``"ok"``/``"refused"`` or raise AssertionError.

    The napari hook must never raise; ``imread`` (eager, lazy, and automatic)
    must return an Image whose first plane can be read, or raise ValueError /
    OSError naming the file, never MemoryError, RecursionError, struct.error,
    zlib.error, IndexError, KeyError, TypeError ...
    """
    import napari_stacklab as sl
    from napari_stacklab._napari import reader

    try:
        reader.napari_get_reader(path)
    except BaseException as exc:  # noqa: BLE001 - any escape is the finding
        raise AssertionError(f"napari_get_reader raised {exc!r}") from exc
    outcome = "ok"
    for lazy in (False, True):
        try:
            image = sl.io.imread(path, lazy=lazy)
            np.asarray(image.data[(0,) * (image.ndim - 2)])
            if not all(np.isfinite(s) and s > 0 for s in image.scale):
                raise AssertionError(f"imread(lazy={lazy}) gave an unusable pixel size {image.scale}")
        except ALLOWED_ERRORS as exc:
            if path not in str(exc):
                raise AssertionError(f"imread(lazy={lazy}) error does not name the file: {exc!r}") from exc
            if isinstance(exc, (MemoryError, RecursionError)):  # pragma: no cover - not subclasses, kept explicit
                raise AssertionError(repr(exc)) from exc
            outcome = "refused"
        except AssertionError:
            raise
        except BaseException as exc:  # noqa: BLE001
            raise AssertionError(f"imread(lazy={lazy}) raised {type(exc).__module__}.{type(exc).__name__}: {exc}") from exc
    return outcome


@contextlib.contextmanager
def hang_guard(seconds: int):
    """Fail (instead of blocking the suite) if what runs inside takes longer than ``seconds``."""

    def hung(signum, frame):
        raise TimeoutError(f"a read took more than {seconds} s (a hang)")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
