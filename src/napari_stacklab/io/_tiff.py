"""TIFF, ImageJ hyperstack and OME-TIFF: reading (eager or lazy) and writing with pixel sizes."""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

import numpy as np
from typing_extensions import Self

from ._guard import FileSignature, check_eager_size, clean_frame, reading_error, warn_metadata
from .._image import Image
from ._lazy import PagedArray, RawArray, to_dask
from ._units import LENGTH_IN_UM, OME_SYMBOL, OME_TIME, file_stem, normalize_unit

# tifffile axis codes -> axis labels; anything else becomes "axis<i>"
_AXIS_LABELS = {"T": "t", "Z": "z", "C": "c", "Y": "y", "X": "x", "S": "s"}
_IMAGEJ_ORDER = "tzcyx"
_OME_DTYPES = tuple(np.dtype(t) for t in ("int8", "int16", "int32", "uint8", "uint16", "uint32", "float32", "float64"))
_OME_LABELS = {"t": "T", "z": "Z", "c": "C", "y": "Y", "x": "X"}
# resolution unit code -> micrometres per unit (1 = NONE: no physical meaning)
_RESOLUTION_UNIT_UM = {3: 1e4, 4: 1e3, 5: 1.0}
# an inch resolution is a print or screen setting (150 dpi, 300 dpi), not a pixel size: the image
# is uncalibrated, as RosettaSciIO reads it; at a screen default (72, 96 dpi) that goes without saying
_INCH = 2
_SCREEN_DPI = (72.0, 96.0)


def read_tiff(path: str | os.PathLike, lazy: bool) -> list[Image]:
    """Read every image series of a TIFF file (plain, multi-page, ImageJ, OME, tifffile-shaped)."""
    import tifffile

    path = str(path)
    with _TifffileComplaints() as complaints:
        try:
            tif = tifffile.TiffFile(path)
        except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct.error ...
            raise ValueError(f"{path}: not a readable TIFF file ({exc})") from exc
        try:
            series_list = _nonempty_series(tif)
        except Exception as exc:  # a malformed ImageJ/OME/shaped header can break series parsing
            tif.close()
            tif, series_list = _plain_pages(path, exc)
    if complaints.fatal:
        tif.close()
        raise ValueError(f"{path}: truncated or corrupted TIFF file ({complaints.fatal[0]})")
    with tif:
        if not series_list:
            raise ValueError(f"{path}: the TIFF file contains no image data")
        images = []
        for index, series in enumerate(series_list):
            frame = _physical_frame_or_pixels(path, tif, series, index)
            try:
                data = _series_data(path, tif, series, index, lazy)
            except Exception as exc:  # tifffile's own IndexError, KeyError ... on inconsistent tags
                if isinstance(exc, (ValueError, OSError)) and path in str(exc):
                    raise
                raise ValueError(f"{path}: corrupted TIFF file ({type(exc).__name__}: {exc})") from exc
            name = file_stem(path) + (f" [{index}]" if len(series_list) > 1 else "")
            metadata = {"source": path, "format": frame.pop("format"), "axes": series.axes, "series": index}
            metadata.update(frame.pop("extra"))
            images.append(Image(data, name=name, metadata=metadata, **frame))
        return images


def _nonempty_series(tif: Any) -> list:
    return [s for s in tif.series if s.shape and math.prod(s.shape) > 0]


def _plain_pages(path: str, error: Exception) -> tuple[Any, list]:
    """Open ``path`` again ignoring its ImageJ/OME/shaped header (which ``error`` came from)."""
    import tifffile

    tif = None
    try:
        tif = tifffile.TiffFile(path, is_imagej=False, is_ome=False, is_shaped=False)
        series_list = _nonempty_series(tif)
    except Exception as exc:
        if tif is not None:
            tif.close()
        raise ValueError(f"{path}: not a readable TIFF file ({type(error).__name__}: {error})") from exc
    warn_metadata(path, f"ignoring its malformed ImageJ/OME header ({type(error).__name__}: {error})")
    return tif, series_list


def _physical_frame_or_pixels(path: str, tif: Any, series: Any, index: int) -> dict:
    """The series' physical frame; a malformed header is dropped with a warning, the image still loads."""
    try:
        frame = _physical_frame(tif, series, index, path)
    except Exception as exc:  # metadata written by any program: anything can be wrong in it
        warn_metadata(path, f"ignoring unreadable pixel-size metadata ({type(exc).__name__}: {exc})")
        axes = series.axes
        frame = {
            "scale": (1.0,) * len(axes),
            "units": ("pixel",) * len(axes),
            "axis_labels": _labels_from_axes(axes),
            "translate": (0.0,) * len(axes),
            "format": "tiff",
            "extra": {},
        }
    return clean_frame(path, frame)


class _TifffileComplaints(logging.Handler):
    """Collect what tifffile logs while parsing: it skips unreadable pages instead of raising."""

    FATAL = ("invalid page offset", "failed to reshape", "corrupted", "truncated")

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.fatal: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(word in message for word in self.FATAL):
            self.fatal.append(message)

    def __enter__(self) -> Self:
        logging.getLogger("tifffile").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("tifffile").removeHandler(self)


def _series_data(path: str, tif: Any, series: Any, index: int, lazy: bool) -> Any:
    file_size = os.path.getsize(path)
    page_shape = _page_shape(series)
    _check_not_truncated(path, series, file_size)
    dtype = np.dtype(series.dtype)
    if not lazy:
        check_eager_size(path, series.shape, dtype)
        try:
            data = series.asarray()
        except Exception as exc:
            raise ValueError(f"{path}: cannot decode image series {index} ({exc})") from exc
        if tuple(data.shape) != tuple(series.shape):
            raise ValueError(
                f"{path}: corrupted TIFF file: image series {index} decodes to shape {data.shape}, "
                f"its tags announce {tuple(series.shape)}"
            )
        return data
    signature = FileSignature(path)
    if series.dataoffset is not None and not series.is_multifile:
        dtype = dtype.newbyteorder(tif.byteorder)
        frame_ndim = len(page_shape) if page_shape else min(2, series.ndim)
        return to_dask(RawArray(path, series.dataoffset, series.shape, dtype), frame_ndim=frame_ndim)
    if page_shape is None:
        # pages do not tile the series (tiled volumes, odd layouts): one delayed read of the series
        import dask
        import dask.array as da

        check_eager_size(path, series.shape, dtype, what="decoding its compressed pages")
        read = dask.delayed(_read_series, pure=True)(path, index, signature)
        meta = np.empty((0,) * series.ndim, dtype)
        return da.from_delayed(read, shape=series.shape, dtype=dtype, meta=meta)
    check_eager_size(path, page_shape, dtype, what="decoding one compressed page")
    paged = PagedArray(
        functools.partial(_open_tiff, path),
        functools.partial(_read_tiff_pages, series=index, frame_shape=page_shape, signature=signature),
        series.shape,
        dtype,
        frame_ndim=len(page_shape),
    )
    return to_dask(paged, frame_ndim=len(page_shape))


def _page_shape(series: Any) -> tuple | None:
    """The trailing axes of ``series`` that one page holds (None when pages do not tile it)."""
    page_size = series.keyframe.size
    shape = tuple(series.shape)
    for n in range(1, len(shape) + 1):
        if math.prod(shape[-n:]) == page_size:
            return shape[-n:]
        if math.prod(shape[-n:]) > page_size:
            break
    return None


def _check_not_truncated(path: str, series: Any, file_size: int) -> None:
    if getattr(series, "is_truncated", False):
        return  # ImageJ files over 4 GiB: tifffile knows where the data really are
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
    else:
        pages = series.pages
        last = pages[len(pages) - 1] if len(pages) else None
        offsets = getattr(last, "dataoffsets", ()) if last is not None else ()
        counts = getattr(last, "databytecounts", ()) if last is not None else ()
        end = max((o + c for o, c in zip(offsets, counts)), default=0)
    if end > file_size:
        raise ValueError(
            f"{path}: truncated file: image data end at byte {end} but the file has only {file_size} bytes"
        )


def _open_tiff(path: str) -> Any:
    import tifffile

    try:
        return tifffile.TiffFile(path)
    except OSError:
        raise
    except Exception as exc:
        raise reading_error(path, exc, "cannot open the TIFF file again") from exc


def _read_tiff_pages(tif: Any, indices: list, *, series: int, frame_shape: tuple, signature: FileSignature) -> np.ndarray:
    signature.check()
    try:
        data = tif.asarray(series=series, key=indices)
        return np.asarray(data).reshape((len(indices),) + tuple(frame_shape))
    except Exception as exc:  # corrupt compressed strips: zlib/LZW/JPEG/tifffile errors
        raise reading_error(signature.path, exc, f"cannot decode pages {indices[0]}..{indices[-1]}") from exc


def _read_series(path: str, index: int, signature: FileSignature) -> np.ndarray:
    import tifffile

    signature.check()
    try:
        return tifffile.imread(path, series=index)
    except Exception as exc:
        raise reading_error(path, exc, f"cannot decode image series {index}") from exc


# ---------------------------------------------------------------- metadata


def _physical_frame(tif: Any, series: Any, index: int, path: str) -> dict:
    axes = series.axes
    labels = _labels_from_axes(axes)
    scale = [1.0] * len(axes)
    units = ["pixel"] * len(axes)
    translate = [0.0] * len(axes)
    extra: dict = {}
    fmt = "tiff"
    shaped = tif.shaped_metadata[index] if tif.is_shaped and index < len(tif.shaped_metadata or ()) else None
    if shaped and isinstance(shaped.get("stacklab"), dict):
        stored = shaped["stacklab"]
        if all(len(stored.get(k, ())) == len(axes) for k in ("scale", "units", "axis_labels")):
            return {
                "scale": tuple(stored["scale"]),
                "units": tuple(normalize_unit(u) for u in stored["units"]),
                "axis_labels": tuple(stored["axis_labels"]),
                "translate": tuple(stored.get("translate", translate)),
                "format": fmt,
                "extra": {},
            }
    if tif.is_imagej:
        fmt = "imagej"
        ij = tif.imagej_metadata or {}
        extra["imagej"] = {k: v for k, v in ij.items() if isinstance(v, (str, int, float, bool))}
        _apply_resolution(
            path, tif.pages[0], axes, scale, units, ij_unit=ij.get("unit"), ij_yunit=ij.get("yunit")
        )
        for code, key, unit in (("Z", "spacing", ij.get("zunit", ij.get("unit", "pixel"))), ("T", "finterval", ij.get("tunit", "s"))):
            if code in axes and ij.get(key):
                try:
                    size = float(ij[key])
                except (TypeError, ValueError):
                    warn_metadata(path, f"ignoring the ImageJ {key}={ij[key]!r} (not a number)")
                    continue
                scale[axes.index(code)] = size
                units[axes.index(code)] = normalize_unit(unit)
    elif tif.is_ome:
        fmt = "ome"
        _apply_ome(path, tif.ome_metadata, index, axes, scale, units)
        extra["ome_xml"] = tif.ome_metadata
    else:
        _apply_resolution(path, tif.pages[0], axes, scale, units)
    return {
        "scale": tuple(scale),
        "units": tuple(units),
        "axis_labels": labels,
        "translate": tuple(translate),
        "format": fmt,
        "extra": extra,
    }


def _labels_from_axes(axes: str) -> tuple:
    labels = []
    for i, code in enumerate(axes):
        label = _AXIS_LABELS.get(code, f"axis{i}")
        labels.append(label if label not in labels else f"{label}{i}")
    return tuple(labels)


def _apply_resolution(
    path: str, page: Any, axes: str, scale: list, units: list, ij_unit=None, ij_yunit=None
) -> None:
    """Pixel size from the X/YResolution tags (pixels per unit) of a plain or ImageJ TIFF."""
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return  # tifffile would report its default, 1 pixel per inch: the size is simply unknown
    try:
        res_x, res_y = (_rational(tags[key].value) for key in ("XResolution", "YResolution"))
        res_unit = int(page.resolutionunit)
    except Exception as exc:  # malformed tags: pixel size unknown
        warn_metadata(path, f"ignoring malformed resolution tags ({type(exc).__name__}: {exc})")
        return
    if not (0 < res_x < math.inf and 0 < res_y < math.inf):
        warn_metadata(path, f"ignoring the resolution tags ({res_x}, {res_y} pixels per unit): not positive numbers")
        return
    if ij_unit is not None:
        unit_x = normalize_unit(ij_unit)
        unit_y = normalize_unit(ij_yunit) if ij_yunit else unit_x
        if unit_x == "pixel" and (res_x, res_y) == (1.0, 1.0):
            return
        pairs = (("X", 1 / res_x, unit_x), ("Y", 1 / res_y, unit_y))
    else:
        if res_unit == _INCH:
            if not (res_x == res_y and res_x in _SCREEN_DPI):
                warn_metadata(
                    path,
                    f"ignoring the resolution {res_x:g} x {res_y:g} dots per inch: a print resolution, not a "
                    "pixel size (microscopes calibrate in cm, mm or um, or in ImageJ/OME metadata); "
                    "the image is uncalibrated",
                )
            return
        per_unit = _RESOLUTION_UNIT_UM.get(res_unit)
        if per_unit is None:
            return
        pairs = (("X", per_unit / res_x, "um"), ("Y", per_unit / res_y, "um"))
    for code, size, unit in pairs:
        if code in axes:
            # TIFF stores pixels per unit as a 32-bit rational: 1 / (1 / 0.65) comes back as
            # 0.6499999999999999; ten significant digits is all the tag can hold anyway
            scale[axes.index(code)] = float(f"{size:.10g}")
            units[axes.index(code)] = unit


def _rational(value: Any) -> float:
    """A TIFF RATIONAL tag value ``(numerator, denominator)`` as a float (NaN or inf for a zero denominator)."""
    if isinstance(value, tuple):
        numerator, denominator = value[0], value[1]
        if denominator == 0:
            return math.nan if numerator == 0 else math.copysign(math.inf, numerator)
        return numerator / denominator
    return float(value)


def _apply_ome(path: str, xml: str, index: int, axes: str, scale: list, units: list) -> None:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        warn_metadata(path, f"ignoring malformed OME-XML metadata ({exc})")
        return
    images = [el for el in root if el.tag.endswith("}Image") or el.tag == "Image"]
    if index >= len(images):
        return
    pixels = next((el for el in images[index] if el.tag.endswith("Pixels")), None)
    if pixels is None:
        return
    for code, size_key, unit_key, default in (
        ("X", "PhysicalSizeX", "PhysicalSizeXUnit", "µm"),
        ("Y", "PhysicalSizeY", "PhysicalSizeYUnit", "µm"),
        ("Z", "PhysicalSizeZ", "PhysicalSizeZUnit", "µm"),
        ("T", "TimeIncrement", "TimeIncrementUnit", "s"),
    ):
        if code in axes and pixels.get(size_key):
            try:
                scale[axes.index(code)] = float(pixels.get(size_key))
            except ValueError:
                warn_metadata(path, f"ignoring the OME {size_key}={pixels.get(size_key)!r} (not a number)")
                continue
            units[axes.index(code)] = normalize_unit(pixels.get(unit_key, default))


# ---------------------------------------------------------------- writing


def write_tiff(path: str, image: Image) -> None:
    """Write ``image`` as ImageJ, OME or tifffile-shaped TIFF, whichever keeps all its metadata.

    ImageJ for uint8/uint16/float32 data whose axes are an ordered subset of
    TZCYX ending in YX with one length unit for X and Y; otherwise OME-TIFF
    when the axes are T/Z/C/Y/X with OME units; otherwise a plain TIFF with
    resolution tags and the full frame in its JSON description. A ``.ome.tif``
    name prefers OME over ImageJ.
    """
    import tifffile

    from .. import _backend

    data = image.data
    shape = tuple(int(s) for s in data.shape)
    dtype = np.dtype(data.dtype)
    kwargs = None
    if not str(path).lower().endswith((".ome.tif", ".ome.tiff")):
        kwargs = _imagej_kwargs(image)
    if kwargs is None:
        kwargs = _ome_kwargs(image)
    if kwargs is None:
        kwargs = _shaped_kwargs(image)
    frame_ndim = 2
    if _is_rgb(image):  # channel-last colour: whole (y, x, samples) pages that every viewer reads
        kwargs["photometric"] = "rgb"
        frame_ndim = 3
    frames = (
        _planes(data, _backend, frame_ndim)
        if _backend.is_dask(data)
        else np.ascontiguousarray(_backend.to_numpy(data))
    )
    bigtiff = shape and math.prod(shape) * dtype.itemsize > 2**32 - 2**25 and not kwargs.get("imagej")
    tifffile.imwrite(
        path,
        frames,
        shape=shape if _backend.is_dask(data) else None,
        dtype=dtype if _backend.is_dask(data) else None,
        bigtiff=bool(bigtiff),
        **kwargs,
    )


def _planes(data: Any, backend: Any, frame_ndim: int = 2) -> Iterator[np.ndarray]:
    """Yield the pages (2-D planes, or RGB frames) of a dask array in C order, one chunk of them at a time."""
    frame = tuple(data.shape[-frame_ndim:])
    flat = data.reshape((-1,) + frame) if data.ndim > frame_ndim else data[None]
    flat = flat.rechunk({axis: -1 for axis in range(1, frame_ndim + 1)})
    for block in flat.blocks:
        planes = backend.materialize(block)
        yield from planes


def _is_rgb(image: Image) -> bool:
    """Channel-last colour data: ``(..., y, x, c)`` with 3 or 4 samples of 8 or 16 bits."""
    return (
        image.ndim >= 3
        and image.shape[-1] in (3, 4)
        and tuple(image.axis_labels[-3:]) == ("y", "x", "c")
        and np.dtype(image.dtype) in (np.uint8, np.uint16)
    )


def _yx(image: Image) -> tuple[int, int] | None:
    labels = image.axis_labels
    if image.ndim < 2 or labels[-2:] != ("y", "x"):
        return None
    return image.ndim - 2, image.ndim - 1


def _imagej_kwargs(image: Image) -> dict | None:
    labels = image.axis_labels
    if np.dtype(image.dtype) not in (np.uint8, np.uint16, np.float32) or image.ndim > 5:
        return None
    if _yx(image) is None or any(label not in _IMAGEJ_ORDER for label in labels):
        return None
    if list(labels) != sorted(labels, key=_IMAGEJ_ORDER.index):
        return None
    units = dict(zip(labels, image.units))
    scale = dict(zip(labels, image.scale))
    translate = dict(zip(labels, image.translate))
    if any(v != 0.0 for v in translate.values()):
        return None
    if "c" in scale and (scale["c"] != 1.0 or units["c"] != "pixel"):
        return None
    if units["x"] != units["y"] or (units["x"] == "pixel" and (scale["x"], scale["y"]) != (1.0, 1.0)):
        return None
    metadata: dict = {"axes": "".join(labels).upper()}
    if units["x"] != "pixel":
        metadata["unit"] = units["x"]
    if "z" in labels:
        if units["z"] != units["x"] and units["z"] != "pixel":
            metadata["zunit"] = units["z"]
        elif units["z"] == "pixel" and units["x"] != "pixel" and scale["z"] != 1.0:
            return None
        metadata["spacing"] = scale["z"]
    if "t" in labels:
        if units["t"] == "pixel" and scale["t"] != 1.0:
            return None
        if units["t"] != "pixel":
            metadata["finterval"] = scale["t"]
            metadata["tunit"] = units["t"]
    return {"imagej": True, "resolution": (1.0 / scale["x"], 1.0 / scale["y"]), "metadata": metadata}


def _ome_kwargs(image: Image) -> dict | None:
    labels = image.axis_labels
    if _yx(image) is None or any(label not in _OME_LABELS for label in labels) or image.ndim > 5:
        return None
    if np.dtype(image.dtype) not in _OME_DTYPES:
        return None
    if any(v != 0.0 for v in image.translate):
        return None
    metadata: dict = {"axes": "".join(_OME_LABELS[label] for label in labels)}
    for label, size, unit in zip(labels, image.scale, image.units):
        if unit == "pixel":
            if size != 1.0:
                return None
            continue
        if label == "c":
            return None
        if label == "t":
            if unit not in OME_TIME:
                return None
            metadata["TimeIncrement"] = size
            metadata["TimeIncrementUnit"] = OME_SYMBOL[unit]
        elif unit in LENGTH_IN_UM:
            key = f"PhysicalSize{label.upper()}"
            metadata[key] = size
            metadata[key + "Unit"] = OME_SYMBOL[unit]
        else:
            return None
    return {"ome": True, "photometric": "minisblack", "metadata": metadata}


def _shaped_kwargs(image: Image) -> dict:
    kwargs: dict = {
        "photometric": "minisblack",
        "metadata": {
            "stacklab": {
                "scale": list(image.scale),
                "units": list(image.units),
                "axis_labels": list(image.axis_labels),
                "translate": list(image.translate),
            }
        },
    }
    yx = _yx(image)
    if yx is not None and image.units[-1] in LENGTH_IN_UM and image.units[-2] in LENGTH_IN_UM:
        # pixels per centimetre, for viewers that read only the resolution tags
        per_cm = [LENGTH_IN_UM["cm"] / (image.scale[i] * LENGTH_IN_UM[image.units[i]]) for i in (yx[1], yx[0])]
        kwargs["resolution"] = tuple(per_cm)
        kwargs["resolutionunit"] = "CENTIMETER"
    return kwargs
