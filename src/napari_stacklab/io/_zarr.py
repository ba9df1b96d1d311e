"""Zarr v2/v3 arrays and groups (OME-NGFF multiscales: level 0), opened read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._guard import check_eager_size, check_image, clean_frame, reading_error, warn_metadata
from .._image import PROVENANCE_KEY, Image
from ._units import file_stem, normalize_unit

ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")


def is_zarr(path: str) -> bool:
    """True for a directory holding a zarr v2 or v3 array or group (never raises)."""
    try:
        return Path(path).is_dir() and any((Path(path) / marker).is_file() for marker in ZARR_MARKERS)
    except OSError:
        return False


def read_zarr(path: str, lazy: bool) -> list[Image]:
    """Read a zarr array, or the first array (multiscale level 0) of a zarr group."""
    import dask.array as da
    import zarr

    path = str(path)
    try:
        node = zarr.open(path, mode="r")
    except Exception as exc:  # zarr raises several types for missing/corrupt metadata
        raise ValueError(f"{path}: not a readable zarr store ({exc})") from exc
    attrs: dict = {}
    component = ""
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        component = _first_array(node, attrs)
        if component is None:
            raise ValueError(f"{path}: the zarr group holds no array")
        array = node[component]
    else:
        array = node
    check_image(path, array.shape, array.dtype)
    frame_ndim = min(2, array.ndim)
    chunks = tuple(array.chunks[: array.ndim - frame_ndim]) + tuple(array.shape[array.ndim - frame_ndim :])
    if lazy:
        check_eager_size(path, chunks, array.dtype, what="reading one chunk of whole planes")
        meta = np.empty((0,) * array.ndim, array.dtype)
        data = da.from_array(_Named(path, array), chunks=chunks, meta=meta, asarray=True, lock=False, fancy=False)
    else:
        check_eager_size(path, array.shape, array.dtype)
        try:
            data = array[...]
        except Exception as exc:  # codec errors from a corrupt chunk
            raise ValueError(f"{path}: cannot read the zarr array ({type(exc).__name__}: {exc})") from exc
    try:
        frame = clean_frame(path, _ngff_frame(attrs, array.ndim))
    except Exception as exc:  # malformed multiscales metadata: keep the data, drop the frame
        warn_metadata(path, f"ignoring malformed OME-NGFF metadata ({type(exc).__name__}: {exc})")
        frame = {}
    metadata = {"source": path, "format": "zarr", "component": component, "attrs": {**attrs, **dict(array.attrs)}}
    name = file_stem(path)
    return [Image(data, name=name, metadata=metadata, **frame)]


class _Named:
    """A zarr array whose read errors (a missing or corrupt chunk, a store gone) name the store."""

    def __init__(self, path: str, array: Any):
        self.path = path
        self.array = array
        self.shape = tuple(array.shape)
        self.dtype = array.dtype
        self.ndim = array.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return self.array[key]
        except Exception as exc:  # zarr and codec errors of every kind
            raise reading_error(self.path, exc, "cannot read the zarr array") from exc


def _first_array(group: Any, attrs: dict) -> str | None:
    multiscales = _multiscales(attrs)
    if multiscales:
        datasets = multiscales[0].get("datasets") or []
        if datasets and datasets[0].get("path") in group:
            return datasets[0]["path"]
    names = sorted(name for name, _ in group.arrays())
    if names:
        return names[0]
    for name, child in sorted(group.groups()):
        inner = _first_array(child, dict(child.attrs))
        if inner is not None:
            return f"{name}/{inner}"
    return None


def _multiscales(attrs: dict) -> list:
    return attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales") or []


def _ngff_frame(attrs: dict, ndim: int) -> dict:
    """scale/translate/units/axis_labels from OME-NGFF multiscales metadata (empty when absent)."""
    multiscales = _multiscales(attrs)
    if not multiscales:
        return {}
    frame: dict = {}
    axes = multiscales[0].get("axes") or []
    if len(axes) == ndim:
        names = [a.get("name", f"axis{i}") if isinstance(a, dict) else str(a) for i, a in enumerate(axes)]
        frame["axis_labels"] = tuple(names)
        frame["units"] = tuple(normalize_unit(a.get("unit")) if isinstance(a, dict) else "pixel" for a in axes)
    datasets = multiscales[0].get("datasets") or []
    for transform in (datasets[0].get("coordinateTransformations") or []) if datasets else []:
        kind = transform.get("type")
        values = transform.get(kind)
        if kind in ("scale", "translation") and isinstance(values, list) and len(values) == ndim:
            frame["scale" if kind == "scale" else "translate"] = tuple(float(v) for v in values)
    return frame


# UDUNITS-2 names OME-NGFF expects for the canonical short units
_NGFF_UNITS = {
    "pm": "picometer", "angstrom": "angstrom", "nm": "nanometer", "um": "micrometer", "mm": "millimeter",
    "cm": "centimeter", "m": "meter", "s": "second", "ms": "millisecond", "us": "microsecond",
    "min": "minute", "h": "hour",
}
_NGFF_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def ngff_attrs(image: Image) -> dict:
    """The OME-NGFF 0.4 ``multiscales`` block (axes, units, scale, translation) describing ``image``."""
    axes = []
    for label, unit in zip(image.axis_labels, image.units):
        axis = {"name": label, "type": _NGFF_TYPES.get(label, "space" if unit in _NGFF_UNITS else "custom")}
        if unit != "pixel":
            axis["unit"] = _NGFF_UNITS.get(unit, unit)
        axes.append(axis)
    transforms = [{"type": "scale", "scale": [float(s) for s in image.scale]}]
    if any(v != 0.0 for v in image.translate):
        transforms.append({"type": "translation", "translation": [float(t) for t in image.translate]})
    return {
        "multiscales": [
            {
                "version": "0.4",
                "name": image.name,
                "axes": axes,
                "datasets": [{"path": "0", "coordinateTransformations": transforms}],
            }
        ]
    }


def write_zarr(path: str, image: Image, *, compute: bool = True) -> Any:
    """Write ``image`` as an OME-NGFF (0.4, zarr v2) group with one resolution level ``"0"``.

    Chunks hold whole planes (several up to 64 MiB); dask data are stored
    chunk by chunk, in parallel, without loading the whole array. The recorded
    stacklab steps go to the group's ``stacklab`` attribute. With
    ``compute=False`` the group is created and the lazy store is returned
    (a dask ``Delayed``), so several outputs can be computed in one graph.
    """
    import dask.array as da
    import zarr

    from .. import _backend
    from ._lazy import plane_chunks

    data = image.data
    chunks = plane_chunks(data.shape, np.dtype(data.dtype).itemsize)
    lazy = _backend.to_numpy(data).rechunk(chunks) if _backend.is_dask(data) else da.from_array(
        _backend.to_numpy(data), chunks=chunks
    )
    group = zarr.open_group(path, mode="w", zarr_format=2)
    array = group.create_array("0", shape=data.shape, dtype=data.dtype, chunks=chunks)
    group.attrs.update(ngff_attrs(image))
    if image.metadata.get(PROVENANCE_KEY):
        group.attrs[PROVENANCE_KEY] = image.metadata[PROVENANCE_KEY]
    return da.store(lazy, array, lock=False, compute=compute)
