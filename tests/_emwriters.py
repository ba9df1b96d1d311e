"""Writers, for tests only, of EM files that no installed library writes.

No sample files can be downloaded here, so the tests make their own, tiny, in ``tmp_path``:

- :func:`write_dm`: a Gatan DigitalMicrograph ``.dm3`` / ``.dm4`` file built from the
  tag-group layout (big-endian headers, little-endian tag data). ``tests/test_io_em.py``
  checks every file it writes against ncempy's independent DM reader before trusting it.
- :func:`write_velox`: a ThermoFisher Velox ``.emd`` (HDF5) with the groups and the JSON
  metadata RosettaSciIO's Velox reader uses (``rsciio/emd/_emd_velox.py``).
- :func:`write_zspy`: a HyperSpy ``.zspy`` written by RosettaSciIO's own zspy writer class;
  its ``file_writer`` cannot create a store under zarr 3 (``zarr.storage.NestedDirectoryStore``
  is gone), so the store is opened here, as zarr 2's HyperSpy made it: zarr format 2,
  ``/``-separated chunk keys, consolidated metadata; optionally zipped.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------- DigitalMicrograph

# Tag-data encodings (the "encoded type" of a DM tag).
SHORT, LONG, USHORT, ULONG, FLOAT, DOUBLE, BOOLEAN, CHAR, OCTET, LONGLONG, ULONGLONG = range(2, 13)
STRUCT, ARRAY = 15, 20
_TAG_GROUP, _TAG_DATA = 20, 21
_SCALAR_FORMAT = {
    SHORT: "h", LONG: "i", USHORT: "H", ULONG: "I", FLOAT: "f", DOUBLE: "d",
    BOOLEAN: "?", CHAR: "b", OCTET: "B", LONGLONG: "q", ULONGLONG: "Q",
}
_NUMPY_ENCODING = {
    np.dtype(np.int16): SHORT, np.dtype(np.int32): LONG, np.dtype(np.uint16): USHORT,
    np.dtype(np.uint32): ULONG, np.dtype(np.float32): FLOAT, np.dtype(np.float64): DOUBLE,
    np.dtype(np.bool_): BOOLEAN, np.dtype(np.int8): CHAR, np.dtype(np.uint8): OCTET,
    np.dtype(np.int64): LONGLONG, np.dtype(np.uint64): ULONGLONG,
}
#: numpy dtype -> ImageData.DataType (DigitalMicrograph's image data type codes).
DM_DATA_TYPE = {
    np.dtype(np.int16): 1, np.dtype(np.float32): 2, np.dtype(np.uint8): 6,
    np.dtype(np.int32): 7, np.dtype(np.int8): 9, np.dtype(np.uint16): 10,
    np.dtype(np.uint32): 11, np.dtype(np.float64): 12,
}
_RGBA_DATA_TYPE = 23  # thumbnails: one packed 4-byte RGBA word per pixel


class Typed:
    """A tag value with an explicit DM encoding (``Typed(3, ULONG)``); plain Python
    values are encoded as DM writes them: int -> LONG, float -> DOUBLE, bool -> BOOLEAN,
    str -> array of USHORT (UTF-16 code units), tuple -> STRUCT of its fields' types."""

    def __init__(self, value, encoding: int):
        self.value, self.encoding = value, encoding


@dataclass
class DMImage:
    """One image of a DM file. ``data`` is C-ordered, axes ``(..., y, x)``.

    ``scale``, ``origin`` and ``units`` are per numpy axis, as DM calibrates: the physical
    coordinate of pixel ``i`` is ``(i - origin) * scale``. ``tags`` become ImageTags.
    ``claimed_shape`` makes a broken file: the shape its Dimensions tags claim (default: the data's).
    """

    data: np.ndarray
    scale: tuple | None = None
    origin: tuple | None = None
    units: tuple | None = None
    name: str = ""
    tags: dict = field(default_factory=dict)
    claimed_shape: tuple | None = None


def write_dm(path, images, *, version: int = 4, thumbnail: bool = True) -> None:
    """Write ``images`` (a :class:`DMImage` or a list of them) as a DM ``version`` 3 or 4 file.

    With ``thumbnail`` the ImageList starts with a small RGBA thumbnail, listed under the
    root ``Thumbnails`` group, as DigitalMicrograph saves it; readers skip it.
    """
    if version not in (3, 4):
        raise ValueError(f"version must be 3 or 4, got {version}")
    images = [images] if isinstance(images, DMImage) else list(images)
    entries = [_image_group(im) for im in images]
    root = {
        "ApplicationBounds": (0, 0, 1024, 768),
        "ImageList": entries,
        "InImageMode": True,
    }
    if thumbnail:
        entries.insert(0, _thumbnail_group())
        root["Thumbnails"] = [{"ImageIndex": 0}]
    body = _DMEncoder(version).group(root)
    width = 4 if version == 3 else 8
    header_size = 4 + width + 4
    # version, the root group's length (file length - 16 in DM3, - 24 in DM4), byte order 1: little-endian data
    root_length = header_size + len(body) + 8 - (16 if version == 3 else 24)
    header = struct.pack(">I", version) + _big(width, root_length) + struct.pack(">I", 1)
    with open(path, "wb") as f:
        f.write(header + body + b"\0" * 8)  # a DM file ends with 8 null bytes


def _image_group(image: DMImage) -> dict:
    data = np.ascontiguousarray(image.data)
    if data.dtype not in DM_DATA_TYPE:
        raise ValueError(f"DM has no data type for {data.dtype}")
    ndim = data.ndim
    scale = image.scale or (1.0,) * ndim
    origin = image.origin or (0.0,) * ndim
    units = image.units or ("",) * ndim
    # DM lists dimensions fastest first (x, y, z, ...): the reverse of numpy's axes
    dimension = [
        {"Origin": Typed(float(o), FLOAT), "Scale": Typed(float(s), FLOAT), "Units": u}
        for o, s, u in zip(origin[::-1], scale[::-1], units[::-1])
    ]
    flat = data.reshape(-1).astype(data.dtype.newbyteorder("<"))
    return {
        "ImageData": {
            "Calibrations": {
                "Brightness": {"Origin": Typed(0.0, FLOAT), "Scale": Typed(1.0, FLOAT), "Units": "Counts"},
                "Dimension": dimension,
                "DisplayCalibratedUnits": True,
            },
            "Data": flat,
            "DataType": DM_DATA_TYPE[data.dtype],
            "Dimensions": [Typed(n, ULONG) for n in (image.claimed_shape or data.shape)[::-1]],
            "PixelDepth": Typed(data.dtype.itemsize, ULONG),
        },
        "ImageTags": image.tags,
        "Name": image.name,
        "UniqueID": [1, 2, 3, 4],
    }


def _thumbnail_group() -> dict:
    side = 4
    return {
        "ImageData": {
            "Calibrations": {
                "Brightness": {"Origin": Typed(0.0, FLOAT), "Scale": Typed(1.0, FLOAT), "Units": ""},
                "Dimension": [{"Origin": Typed(0.0, FLOAT), "Scale": Typed(1.0, FLOAT), "Units": ""}] * 2,
                "DisplayCalibratedUnits": True,
            },
            "Data": np.full(side * side, 0xFF808080, dtype="<u4"),
            "DataType": _RGBA_DATA_TYPE,
            "Dimensions": [Typed(side, ULONG), Typed(side, ULONG)],
            "PixelDepth": Typed(4, ULONG),
        },
        "ImageTags": {},
        "Name": "",
        "UniqueID": [5, 6, 7, 8],
    }


def _big(width: int, value: int) -> bytes:
    return struct.pack(">I" if width == 4 else ">Q", value)


class _DMEncoder:
    """Tag groups and tags: structure fields big-endian (4 bytes in DM3, 8 in DM4), values little-endian."""

    def __init__(self, version: int):
        self.version = version
        self.width = 4 if version == 3 else 8

    def group(self, tags: dict | list) -> bytes:
        """A tag group: sorted flag, open flag, tag count, then the tags (named ones sorted, as DM does)."""
        items = [("", value) for value in tags] if isinstance(tags, list) else sorted(tags.items())
        out = [struct.pack(">BB", 1, 0), _big(self.width, len(items))]
        for name, value in items:
            label = name.encode("latin-1")
            if isinstance(value, (dict, list)):
                kind, body = _TAG_GROUP, self.group(value)
            else:
                kind, body = _TAG_DATA, self.data(value)
            out.append(struct.pack(">BH", kind, len(label)) + label)
            if self.version == 4:  # DM4 gives every tag's byte length before its content
                out.append(_big(8, len(body)))
            out.append(body)
        return b"".join(out)

    def data(self, value) -> bytes:
        """A data tag: ``%%%%``, the length of the type definition, the definition, the value."""
        info, payload = self._encode(value)
        return b"%%%%" + _big(self.width, len(info)) + b"".join(_big(self.width, i) for i in info) + payload

    def _encode(self, value) -> tuple[list[int], bytes]:
        if isinstance(value, Typed):
            return [value.encoding], _scalar(value.encoding, value.value)
        if isinstance(value, (bool, np.bool_)):
            return [BOOLEAN], _scalar(BOOLEAN, bool(value))
        if isinstance(value, (int, np.integer)):
            return [LONG], _scalar(LONG, int(value))
        if isinstance(value, (float, np.floating)):
            return [DOUBLE], _scalar(DOUBLE, float(value))
        if isinstance(value, str):  # DM strings: arrays of UTF-16 code units
            units = np.frombuffer(value.encode("utf-16-le"), dtype="<u2")
            return [ARRAY, USHORT, units.size], units.tobytes()
        if isinstance(value, tuple):  # a struct: unnamed fields
            fields = [self._encode(v) for v in value]
            info = [STRUCT, 0, len(fields)]
            for field_info, _ in fields:
                info += [0, field_info[0]]
            return info, b"".join(payload for _, payload in fields)
        if isinstance(value, np.ndarray) and value.ndim == 1:
            encoding = _NUMPY_ENCODING[value.dtype.newbyteorder("=")]
            return [ARRAY, encoding, value.size], value.astype(value.dtype.newbyteorder("<")).tobytes()
        raise TypeError(f"no DM encoding for {type(value).__name__}")


def _scalar(encoding: int, value) -> bytes:
    return struct.pack("<" + _SCALAR_FORMAT[encoding], value)


# ---------------------------------------------------------------- Velox EMD


@dataclass
class VeloxImage:
    """One Velox image (or image stack): ``data`` of shape ``(y, x)`` or ``(frames, y, x)``.

    ``pixel_size`` and ``offset`` are ``(height/y, width/x)`` in ``unit`` (Velox writes metres);
    ``frame_time`` (seconds) is the scan's frame time, used for stacks.
    """

    data: np.ndarray
    detector: str
    pixel_size: tuple = (1e-9, 1e-9)
    offset: tuple = (0.0, 0.0)
    unit: str = "m"
    frame_time: float = 1.0


def write_velox(path, images, *, version: str = "11") -> list[str]:
    """Write ``images`` (:class:`VeloxImage`) into a Velox ``.emd``; return their group names.

    Layout: ``/Version`` (JSON, format ``Velox``); per image ``/Data/Image/<uuid>/Data``
    stored ``(y, x, frame)`` with one chunk per frame and ``/Data/Image/<uuid>/Metadata``, one
    zero-padded UTF-8 JSON column of bytes per frame; ``/Operations/StemInputOperation/<uuid>``
    names each image's detector, which RosettaSciIO uses as the signal's title.
    """
    import h5py

    images = [images] if isinstance(images, VeloxImage) else list(images)
    keys = [f"{index + 1:032x}" for index in range(len(images))]  # Velox names groups by UUID
    with h5py.File(path, "w") as f:
        f.create_dataset("Version", data=np.array([json.dumps({"format": "Velox", "version": version}).encode()]))
        for index, (key, image) in enumerate(zip(keys, images)):
            stack = image.data if image.data.ndim == 3 else image.data[np.newaxis]
            frames, height, width = stack.shape
            group = f.create_group(f"Data/Image/{key}")
            group.create_dataset("Data", data=np.moveaxis(stack, 0, -1), chunks=(height, width, 1))
            metadata = json.dumps(_velox_metadata(image, index, width, height)).encode()
            column = np.frombuffer(metadata.ljust(len(metadata) + 16, b"\0"), dtype=np.uint8)
            group.create_dataset("Metadata", data=np.repeat(column[:, np.newaxis], frames, axis=1))
            operation = {"dataPath": f"/Data/Image/{key}", "detector": image.detector}
            f.create_dataset(f"Operations/StemInputOperation/{key}", data=np.array([json.dumps(operation).encode()]))
    return keys


def _velox_metadata(image: VeloxImage, index: int, width: int, height: int) -> dict:
    """The parts of a Velox image's metadata JSON RosettaSciIO reads (Velox writes numbers as strings)."""
    return {
        "Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1700000000"}},
        "BinaryResult": {
            "AcquisitionUnit": "",
            "Detector": image.detector,
            "DetectorIndex": str(index),
            "ImageSize": {"width": str(width), "height": str(height)},
            "Offset": {"x": repr(float(image.offset[1])), "y": repr(float(image.offset[0]))},
            "PixelSize": {"width": repr(float(image.pixel_size[1])), "height": repr(float(image.pixel_size[0]))},
            "PixelUnitX": image.unit,
            "PixelUnitY": image.unit,
        },
        "Detectors": {f"Detector-{index}": {"DetectorName": image.detector, "DetectorType": "ScanningDetector"}},
        "Optics": {"AccelerationVoltage": "300000"},
        "Scan": {"FrameTime": repr(float(image.frame_time))},
    }


# ---------------------------------------------------------------- HyperSpy zspy


def write_zspy(path, signal: dict, *, chunks=None, zip_store: bool = False) -> None:
    """Write a RosettaSciIO signal dictionary as a ``.zspy`` folder (or zip file).

    Under zarr 2, this is ``rsciio.zspy.file_writer``. Under zarr 3 its store class is
    gone, so the same :class:`rsciio.zspy._api.ZspyWriter` writes into a zarr-format-2 group
    with ``/``-separated chunk keys, consolidated as HyperSpy's file_writer does; a zip
    ``.zspy`` is that folder zipped (the layout of zarr 2's ZipStore).
    """
    import numcodecs
    import zarr

    if int(zarr.__version__.split(".")[0]) < 3:
        from rsciio.zspy import file_writer

        file_writer(str(path), signal, chunks=chunks, store_type="zip" if zip_store else "local",
                    show_progressbar=False)
        return
    from rsciio._hierarchical import version as format_version
    from rsciio.zspy._api import ZspyWriter

    if zip_store:
        with tempfile.TemporaryDirectory() as scratch:
            folder = os.path.join(scratch, "store.zspy")
            write_zspy(folder, signal, chunks=chunks)
            with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
                for directory, _, files in os.walk(folder):
                    for name in files:
                        full = os.path.join(directory, name)
                        archive.write(full, os.path.relpath(full, folder))
        return
    folder = str(path)
    root = zarr.open_group(folder, mode="w", zarr_format=2)
    root.attrs["file_format"] = "ZSpy"
    root.attrs["file_format_version"] = format_version
    title = signal["metadata"]["General"]["title"] or "__unnamed__"
    group = root.require_group("Experiments").require_group(title)
    ZspyWriter(
        root, signal, group, chunks=chunks, show_progressbar=False,
        compressor=numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE),
        chunk_key_encoding={"name": "v2", "separator": "/"},
    ).write()
    zarr.consolidate_metadata(folder)
