"""Electron-microscopy formats through RosettaSciIO, read lazily with whole detector frames per chunk.

Supported: DigitalMicrograph ``.dm3``/``.dm4``, Quantum Detectors Merlin
``.mib``, NanoMegas blockfile ``.blo``, Velox and NCEM/Berkeley ``.emd``,
``.mrc``, HyperSpy ``.hspy`` and ``.zspy``. Every signal a file holds (a Velox
file often holds images, spectra and a 4D-STEM scan) becomes one
:class:`~napari_stacklab.io.Image` with its scale, units, axis names and
offsets (``translate``) taken from the file's axes. Navigation (scan) axes come
first, signal (detector) axes last; which is which is recorded in
``Image.metadata["navigation_axes"]`` / ``["signal_axes"]``.

Lazy data is a dask array whose chunks hold whole signal frames (a
diffraction pattern is never split) and group scan positions up to
:data:`CHUNK_BYTES`, so a virtual detector streams through the file chunk by
chunk. Files are only ever opened for reading (``.zspy`` included, which
RosettaSciIO would open read-write for a lazy read).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._guard import clean_frame, nbytes
from ._image import Image
from ._units import normalize_unit

__all__ = ["read_em", "EM_FORMATS", "CHUNK_BYTES"]

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

#: Largest dask chunk (bytes) the reader makes by grouping whole frames along the scan axes.
CHUNK_BYTES = 128 * 2**20

_DIFFRACTION = ("electron_diffraction", "diffraction")

#: Extra reader arguments per plugin. RosettaSciIO opens a lazy ``.zspy`` read-write
#: (``mode="r+"``), which zarr 3 refuses for a zipped ``.zspy``; we never write to a file we read.
_READ_OPTIONS = {"zspy": {"mode": "r"}}

#: DigitalMicrograph image data types stored packed (complex FFTs): their data tag is not ``shape x itemsize``.
_DM_PACKED_TYPES = (5, 27, 28)


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
        or a DigitalMicrograph image whose dimensions do not match its data; for
        ``.zspy`` the message also gives the zarr version.

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
    reader = importlib.import_module(f"rsciio.{plugin}").file_reader
    try:
        with _quiet_zip_mode_warning():
            signals = reader(str(path), lazy=lazy, **_READ_OPTIONS.get(plugin, {}))
    except Exception as exc:  # every plugin has its own errors: OSError, KeyError, struct.error ...
        raise ValueError(
            f"{path}: not a readable {plugin} file{_versions(plugin)} ({type(exc).__name__}: {exc})"
        ) from exc
    if plugin == "quantumdetector":
        _check_mib_complete(path, signals)
    if plugin == "digitalmicrograph":
        _check_dm_sizes(path, signals)
    images = [_to_image(path, plugin, signal, index, len(signals), lazy) for index, signal in enumerate(signals)]
    if not images:
        raise ValueError(f"{path}: the file holds no data")
    return images


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


def _to_image(path: Path, plugin: str, signal: dict, index: int, count: int, lazy: bool) -> Image:
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
    if order != list(range(data.ndim)):
        data = data.transpose(order)
        axes = [axes[i] for i in order]
    n_nav = sum(navigate)
    if plugin == "digitalmicrograph" and n_nav > 1:
        # DM files name no axes; RosettaSciIO labels them x, y, z from the last, which on a
        # 4-D scan would call the scan axes (None, z): let them be scan_y, scan_x instead
        axes = [dict(a, name=None) if i < n_nav else a for i, a in enumerate(axes)]
    if lazy:
        data = _frame_chunks(data, n_nav)
    else:
        data = np.asarray(data)

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


def _frame_chunks(data: Any, n_nav: int) -> Any:
    """Whole signal frames per chunk, scan positions grouped up to CHUNK_BYTES."""
    from .._backend import as_dask

    from ..lift import frame_chunks

    data = as_dask(data)
    return data.rechunk(frame_chunks(data.ndim, data.ndim - n_nav), block_size_limit=CHUNK_BYTES)


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
