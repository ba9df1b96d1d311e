"""Electron-microscopy formats through RosettaSciIO, read lazily with whole detector frames per chunk.

Supported: DigitalMicrograph ``.dm3``/``.dm4``, Quantum Detectors Merlin
``.mib``, NanoMegas blockfile ``.blo``, Velox and NCEM/Berkeley ``.emd``,
``.mrc``, HyperSpy ``.hspy`` and ``.zspy``. Every signal a file holds (a Velox
file often holds images, spectra and a 4D-STEM scan) becomes one
:class:`~napari_stacklab.io.Image` with its scale, units, axis names and
offsets (``translate``) taken from the file's axes. Navigation (scan) axes come
first, signal (detector) axes last; which is which is recorded in
``Image.metadata["navigation_axes"]`` / ``["signal_axes"]``.

RosettaSciIO parses the file and its metadata; the pixels are read by
napari-stacklab:

- raw formats (``.mib``, ``.blo``, ``.mrc``, DigitalMicrograph), which
  RosettaSciIO would memory-map, are read with positional reads
  (:class:`~napari_stacklab.io._lazy.RawArray`): frame headers are skipped
  within one system call, and a file shortened while it is read gives an error
  naming it instead of crashing the process;
- HDF5 files (``.emd``, ``.hspy``) must be self-contained: external storage,
  external links and virtual datasets pointing to other files are refused
  (they would show the bytes of other files as pixels), and so is a
  compressed chunk whose decoded size exceeds ``io.MAX_EAGER_BYTES``.

Lazy data is a dask array whose chunks hold whole signal frames (a diffraction
pattern is never split), grouping scan positions up to the chunk budget
(``io.CHUNK_BYTES`` for batch work, or the ``chunk_bytes`` given to
:func:`~napari_stacklab.io.imread`), so a virtual detector streams through
the file chunk by chunk. Files are only ever opened for reading (``.zspy``
included, which RosettaSciIO would open read-write for a lazy read). An
in-memory read (``lazy=False``) is the lazy one computed, after its decoded size
was checked against ``io.MAX_EAGER_BYTES``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._guard import (
    ExternalDataError,
    check_eager_bytes,
    check_eager_size,
    check_regular,
    clean_frame,
    image_problem,
    nbytes,
    reading_error,
)
from .._image import Image
from ._lazy import RawArray, contiguous_strides, plane_chunks, to_dask
from ._units import normalize_unit

__all__ = ["read_em", "EM_FORMATS", "check_hdf5"]

#: File suffix -> RosettaSciIO plugin module (``rsciio.<name>``).
EM_FORMATS = {
    ".dm3": "digitalmicrograph",
    ".dm4": "digitalmicrograph",
    ".mib": "quantumdetector",
    ".blo": "blockfile",
    ".emd": "emd",
    ".mrc": "mrc",
    ".hspy": "hspy",
    ".zspy": "zspy",
}

#: Plugins whose files are HDF5, checked to be self-contained before RosettaSciIO opens them.
HDF5_PLUGINS = ("emd", "hspy")

_DIFFRACTION = ("electron_diffraction", "diffraction")

#: Extra reader arguments per plugin. RosettaSciIO opens a lazy ``.zspy`` read-write
#: (``mode="r+"``), which zarr 3 refuses for a zipped ``.zspy``; we never write to a file we read.
_READ_OPTIONS = {"zspy": {"mode": "r"}}

#: DigitalMicrograph image data types stored packed (complex FFTs): their data tag is not ``shape x itemsize``.
_DM_PACKED_TYPES = (5, 27, 28)

#: Plugins whose frames RosettaSciIO shows flipped vertically (Merlin's readout order).
_FLIPPED_ROWS = ("quantumdetector",)
#: dask graph layers a raw RosettaSciIO read is made of: the chunk slices, the memory map, and
#: slicing (the Merlin flip, a squeeze). Anything else: the pixels are read as RosettaSciIO reads them.
_RAW_LAYERS = {"array", "slice_memmap", "getitem"}


def read_em(path: str | os.PathLike, lazy: bool = True) -> list[Image]:
    """Read every signal of an EM file.

    Parameters
    ----------
    path : str or path-like
        A file with one of the suffixes in :data:`EM_FORMATS`.
    lazy : bool
        Return dask arrays (nothing read until computed) with whole signal
        frames per chunk; ``False`` reads the data into memory.

    Returns
    -------
    list of Image
        One per signal, navigation axes first. ``metadata`` holds
        ``source``, ``format``, ``navigation_axes``, ``signal_axes``,
        ``signal_type``, ``title`` and the file's own ``original_metadata``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        Naming the file, for an unknown suffix, an unreadable or a truncated file,
        a DigitalMicrograph image whose dimensions do not match its data, an MRC
        header with a negative extended-header length; for ``.zspy`` the message
        also gives the zarr version.
    ExternalDataError
        (a ``ValueError``) An HDF5 file whose data live in other files.
    EagerSizeError
        (a ``ValueError``) ``lazy=False`` and the signals need more than
        ``io.MAX_EAGER_BYTES`` in memory, or one compressed chunk does.

    Warns
    -----
    MetadataWarning
        A non-finite or non-positive pixel size (or a non-finite offset) in the
        file, dropped for 1 pixel (0).
    """
    path = Path(path)
    plugin = EM_FORMATS.get(path.suffix.lower())
    if plugin is None:
        raise ValueError(f"{path}: not an electron-microscopy file ({sorted(EM_FORMATS)})")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    check_regular(path)
    if plugin in HDF5_PLUGINS:
        check_hdf5(path)
    if plugin == "mrc":
        _check_mrc_header(path)
    reader = importlib.import_module(f"rsciio.{plugin}").file_reader
    try:
        with _quiet_zip_mode_warning():
            signals = reader(str(path), lazy=True, **_READ_OPTIONS.get(plugin, {}))
    except Exception as exc:  # every plugin has its own errors: OSError, KeyError, struct.error ...
        raise ValueError(
            f"{path}: not a readable {plugin} file{_versions(plugin)} ({type(exc).__name__}: {exc})"
        ) from exc
    if plugin == "quantumdetector":
        _check_mib_complete(path, signals)
    if plugin == "digitalmicrograph":
        _check_dm_sizes(path, signals)
    images = [_to_image(path, plugin, signal, index, len(signals)) for index, signal in enumerate(signals)]
    if not images:
        raise ValueError(f"{path}: the file holds no data")
    if not lazy:
        wanted = [image_problem(image.shape, image.dtype) is None for image in images]
        total = sum(nbytes(image.shape, image.dtype) for image, want in zip(images, wanted) if want)
        check_eager_bytes(path, total, f"reading its {sum(wanted)} image(s) into memory")
        images = [image.with_data(_compute(path, image.data)) if want else image for image, want in zip(images, wanted)]
    return images


def _compute(path: Path, data: Any) -> np.ndarray:
    try:
        return np.asarray(data.compute())
    except Exception as exc:  # h5py, zarr, codec errors: name the file
        if isinstance(exc, (ValueError, OSError)) and str(path) in str(exc):
            raise
        raise reading_error(path, exc, "cannot read the image data") from exc


# ---------------------------------------------------------------- checks before RosettaSciIO reads


def check_hdf5(path: str | os.PathLike) -> None:
    """Refuse an HDF5 file that is not self-contained, or whose compressed chunks decode past the eager cap.

    Raises :class:`ExternalDataError` for an external link, a dataset with external
    storage, or a virtual dataset mapping another file; :class:`EagerSizeError` for a
    filtered (compressed) chunk larger than ``io.MAX_EAGER_BYTES`` once decoded, since
    reading any pixel of it decodes all of it. A file h5py cannot open is left to the
    format reader, which names the problem.
    """
    import h5py

    problems: list[str] = []
    largest: tuple[int, str, tuple, Any] = (0, "", (), None)
    try:
        handle = h5py.File(path, "r")
    except Exception:  # not HDF5 at all: the reader says so, naming the file
        return
    with handle:

        def visit(name: str, link: Any) -> None:
            nonlocal largest
            if isinstance(link, h5py.ExternalLink):
                problems.append(f"/{name} is an external link to {link.filename!r}:{link.path}")
                return
            if not isinstance(link, h5py.HardLink):
                return
            node = handle.get(name)
            if not isinstance(node, h5py.Dataset):
                return
            if node.external:
                files = sorted({str(entry[0]) for entry in node.external})
                problems.append(f"dataset /{name} stores its data in other files {files}")
            if node.is_virtual:
                sources = sorted({m.file_name for m in node.virtual_sources() if m.file_name != "."})
                if sources:
                    problems.append(f"dataset /{name} is a virtual dataset reading other files {sources}")
            if node.chunks and node.id.get_create_plist().get_nfilters() > 0:
                size = nbytes(node.chunks, node.dtype) if node.dtype.itemsize else 0
                if size > largest[0]:
                    largest = (size, name, node.chunks, node.dtype)

        handle.visititems_links(visit)
    if problems:
        raise ExternalDataError(
            f"{path}: refers to data outside the file, which napari-stacklab does not read "
            f"(it could show the bytes of any other file as pixels): {'; '.join(problems[:3])}"
        )
    if largest[0]:
        size, name, chunks, dtype = largest
        check_eager_size(path, chunks, dtype, what=f"decoding one compressed chunk of /{name}")


def _check_mrc_header(path: Path) -> None:
    """Refuse an MRC header whose extended-header length is negative or runs past the end of the file."""
    with open(path, "rb") as fh:
        header = fh.read(1024)
    if len(header) < 1024:
        raise ValueError(f"{path}: truncated MRC file: {len(header)} bytes, the header alone needs 1024")
    order = ">" if header[212:214] == b"\x11\x11" else "<"
    extended = int(np.frombuffer(header, np.dtype(order + "i4"), count=1, offset=92)[0])
    if extended < 0:
        raise ValueError(
            f"{path}: broken MRC header: the extended-header length (NSYMBT, bytes 93-96) is {extended}; "
            "the data would be read from inside the header"
        )
    size = path.stat().st_size
    if 1024 + extended > size:
        raise ValueError(
            f"{path}: truncated MRC file: the extended header ends at byte {1024 + extended}, "
            f"the file has {size} bytes"
        )


def _check_mib_complete(path: Path, signals: list[dict]) -> None:
    """A truncated ``.mib`` reads as fewer scan lines: refuse it when the ``.hdr`` says how many frames to expect."""
    hdr = (signals[0].get("original_metadata") or {}).get("hdr_file") or {}
    expected = hdr.get("Frames in Acquisition (Number)")
    if expected is None:
        return
    props = signals[0]["original_metadata"]["mib_properties"]
    frame_bytes = props["head_size"] + int(np.prod(props["merlin_size"])) * np.dtype(props["dtype"]).itemsize
    found = path.stat().st_size // frame_bytes
    if found < int(expected) or path.stat().st_size % frame_bytes:
        raise ValueError(
            f"{path}: truncated Merlin file: {path.stat().st_size} bytes hold {found} whole frames, "
            f"the .hdr announces {int(expected)}"
        )


def _versions(plugin: str) -> str:
    """For zspy errors: the zarr version, the usual suspect (RosettaSciIO's zspy code predates zarr 3)."""
    if plugin != "zspy":
        return ""
    import zarr

    return f" with zarr {zarr.__version__}"


@contextlib.contextmanager
def _quiet_zip_mode_warning():
    """Drop RosettaSciIO's log line that ``mode`` is unsupported for a zipped zspy: it is what makes it readable."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Specifying `mode`")

    logger = logging.getLogger("rsciio.zspy._api")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _check_dm_sizes(path: Path, signals: list[dict]) -> None:
    """Refuse a DM image whose Dimensions tags do not match its data tag's length.

    RosettaSciIO reads lazily from the data's offset with the shape the tags claim, so such a
    file would fail later (past the end of the file) or silently show other bytes of the file.
    """
    for signal in signals:
        image = ((signal.get("original_metadata") or {}).get("ImageList") or {}).get("TagGroup0") or {}
        image_data = image.get("ImageData") or {}
        data_tag = image_data.get("Data")
        if not isinstance(data_tag, dict) or image_data.get("DataType") in _DM_PACKED_TYPES:
            continue  # data read in full (not skipped) or packed: nothing to compare
        data = signal["data"]
        claimed, stored = nbytes(data.shape, data.dtype), data_tag.get("size_bytes")
        if stored is not None and claimed != stored:
            raise ValueError(
                f"{path}: broken DigitalMicrograph file: the image dimensions {tuple(data.shape)} "
                f"({data.dtype}) need {claimed} bytes, its data tag holds {stored}"
            )


# ---------------------------------------------------------------- pixels


def raw_source(path: Path, plugin: str, data: Any) -> RawArray | None:
    """The raw bytes behind a RosettaSciIO memory-map read, as a :class:`RawArray` of the same shape and values.

    RosettaSciIO builds such reads with ``rsciio.utils.file.memmap_distributed``: one
    ``slice_memmap`` layer whose keyword arguments give the file, offset, (record)
    dtype and shape. ``None`` when the read is built otherwise (HDF5, zarr, or an
    unexpected layout), in which case RosettaSciIO's own data are used.
    """
    graph = data.__dask_graph__()
    kinds = {str(name).rsplit("-", 1)[0] for name in getattr(graph, "layers", {})}
    if "slice_memmap" not in kinds or not kinds <= _RAW_LAYERS:
        return None
    layer = next(layer for name, layer in graph.layers.items() if str(name).startswith("slice_memmap"))
    task = next(iter(dict(layer).values()), None)
    kwargs = getattr(task, "kwargs", None)
    if not isinstance(kwargs, dict) or kwargs.get("positions") or "dtypes" not in kwargs:
        return None
    if os.path.realpath(str(kwargs.get("file"))) != os.path.realpath(path):
        return None
    record = np.dtype(kwargs["dtypes"])
    records = tuple(int(s) for s in np.atleast_1d(kwargs["shape"]))
    order = kwargs.get("order") or "C"
    offset = int(kwargs.get("offset") or 0)
    field = record if kwargs.get("key") is None else record.fields[kwargs["key"]][0]
    if kwargs.get("key") is not None:
        offset += record.fields[kwargs["key"]][1]
    base, sub_shape = field.base, tuple(field.shape)
    shape = records + sub_shape  # laid out as numpy.memmap lays out records and their sub-arrays
    strides = list(contiguous_strides(records, record.itemsize, order) + contiguous_strides(sub_shape, base.itemsize))
    if plugin in _FLIPPED_ROWS and len(shape) >= 2:
        offset += (shape[-2] - 1) * strides[-2]
        strides[-2] = -strides[-2]
    if tuple(shape) != tuple(data.shape):  # rsciio squeezes length-1 axes
        keep = [axis for axis, n in enumerate(shape) if n != 1]
        shape, strides = [shape[a] for a in keep], [strides[a] for a in keep]
    if tuple(shape) != tuple(data.shape) or base != np.dtype(data.dtype):
        return None
    return RawArray(path, offset, shape, base, strides=strides)


def _pixels(path: Path, plugin: str, data: Any, order: list[int], n_signal: int) -> Any:
    """Lazy data with navigation axes first (``order``) in chunks of whole signal frames."""
    from .._backend import as_dask

    raw = raw_source(path, plugin, data)
    if raw is not None:
        permuted = RawArray(path, raw.offset, [raw.shape[a] for a in order], raw.dtype,
                            strides=[raw.strides[a] for a in order])
        return to_dask(permuted, frame_ndim=n_signal)
    data = as_dask(data)
    check_eager_size(path, [max(c) for c in data.chunks], data.dtype, what="decoding one stored chunk")
    if order != list(range(data.ndim)):
        data = data.transpose(order)
    return data.rechunk(plane_chunks(data.shape, np.dtype(data.dtype).itemsize, n_signal))


def _to_image(path: Path, plugin: str, signal: dict, index: int, count: int) -> Image:
    data = signal["data"]
    axes = list(signal.get("axes") or [])
    if len(axes) != data.ndim:
        axes = [{"size": s} for s in data.shape]
    metadata = signal.get("metadata") or {}
    signal_type = str((metadata.get("Signal") or {}).get("signal_type") or "")
    navigate = [bool(a.get("navigate", False)) for a in axes]
    if not any(navigate) or all(navigate):  # the file did not say: a frame is the last (up to) two axes
        n_signal = min(2, data.ndim)
        navigate = [True] * (data.ndim - n_signal) + [False] * n_signal
    order = [i for i, nav in enumerate(navigate) if nav] + [i for i, nav in enumerate(navigate) if not nav]
    axes = [axes[i] for i in order]
    n_nav = sum(navigate)
    if plugin == "digitalmicrograph" and n_nav > 1:
        # DM files name no axes; RosettaSciIO labels them x, y, z from the last, which on a
        # 4-D scan would call the scan axes (None, z): let them be scan_y, scan_x instead
        axes = [dict(a, name=None) if i < n_nav else a for i, a in enumerate(axes)]
    if image_problem(data.shape, data.dtype) is None:
        data = _pixels(path, plugin, data, order, data.ndim - n_nav)
    elif order != list(range(data.ndim)):
        data = data.transpose(order)  # not an image: imread skips it, naming it

    title = str((metadata.get("General") or {}).get("title") or "")
    name = path.stem if count == 1 else f"{path.stem} {title or index}"
    frame = clean_frame(
        path,
        {
            "scale": tuple(1.0 if a.get("scale") is None else a["scale"] for a in axes),
            "translate": tuple(0.0 if a.get("offset") is None else a["offset"] for a in axes),
            "units": tuple(_unit(a.get("units")) for a in axes),
            "axis_labels": _axis_labels(axes, n_nav, signal_type),
        },
    )
    return Image(
        data=data,
        scale=tuple(float(s) for s in frame["scale"]),
        translate=tuple(float(t) or 0.0 for t in frame["translate"]),  # DM's -origin * scale can be -0.0
        units=frame["units"],
        axis_labels=frame["axis_labels"],
        name=name,
        metadata={
            "source": str(path),
            "format": plugin,
            "signal_index": index,
            "title": title,
            "signal_type": signal_type,
            "navigation_axes": tuple(range(n_nav)),
            "signal_axes": tuple(range(n_nav, data.ndim)),
            "original_metadata": signal.get("original_metadata") or {},
        },
    )


def _unit(unit: Any) -> str:
    """Canonical unit; RosettaSciIO writes pint's spelling (``"1 / nm"``)."""
    return normalize_unit(None if unit is None else str(unit).replace(" / ", "/"))


def _axis_labels(axes: list[dict], n_nav: int, signal_type: str) -> tuple[str, ...]:
    n_signal = len(axes) - n_nav
    signal_names = ("ky", "kx") if signal_type in _DIFFRACTION else ("y", "x")
    defaults = [
        *(("scan_y", "scan_x")[2 - n_nav :] if n_nav <= 2 else tuple(f"scan{i}" for i in range(n_nav))),
        *(signal_names[2 - n_signal :] if n_signal <= 2 else tuple(f"signal{i}" for i in range(n_signal))),
    ]
    labels: list[str] = []
    for axis, default in zip(axes, defaults):
        label = str(axis.get("name") or "").strip()
        if not label or label == "<undefined>" or label in labels:
            label = default if default not in labels else f"{default}{len(labels)}"
        labels.append(label)
    return tuple(labels)
