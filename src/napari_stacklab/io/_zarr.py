"""Zarr v2/v3 arrays and groups (OME-NGFF multiscales: level 0), opened read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._image import Image
from ._units import normalize_unit

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
    if array.ndim == 0:
        raise ValueError(f"{path}: holds a scalar, not an image")
    frame_ndim = min(2, array.ndim)
    chunks = tuple(array.chunks[: array.ndim - frame_ndim]) + tuple(array.shape[array.ndim - frame_ndim :])
    data = da.from_zarr(array, chunks=chunks) if lazy else array[...]
    frame = _ngff_frame(attrs, array.ndim)
    metadata = {"source": path, "format": "zarr", "component": component, "attrs": {**attrs, **dict(array.attrs)}}
    name = Path(path).name.split(".")[0]
    return [Image(data, name=name, metadata=metadata, **frame)]


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
