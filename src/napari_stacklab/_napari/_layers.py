"""Operation results -> napari layers: physical frame, names, provenance, replace-in-place.

An output layer inherits the physical frame of the layer it was computed
from (``scale, translate, rotate, shear, affine, units, axis_labels``), is
named ``"<input> <op>"`` and records its recipe step in
``metadata["stacklab"]``. Re-running an operation replaces that layer's data
instead of piling up copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend
from ..recipe import provenance

#: Output kinds shown as one layer each (``"images"`` is several of them).
ARRAY_OUTPUTS = ("image", "labels", "mask")
LAYER_TYPES = {"image": "image", "labels": "labels", "mask": "labels", "points": "points"}


def source_data(layer: Any) -> Any:
    """The full-resolution array of a layer (level 0 of a multiscale pyramid); lazy stays lazy."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def shown_index(viewer: Any, layer: Any, frame_ndim: int = 2) -> tuple:
    """Index, over the layer's leading (batch) axes, of the frame the viewer shows.

    The last ``frame_ndim`` spatial axes of ``layer`` make a frame (an RGB
    layer's colour axis is not counted: napari's ``layer.ndim`` leaves it out);
    every axis before them is indexed at the viewer's current position, rounded
    and clipped to the data.
    """
    n_batch = layer.ndim - frame_ndim
    if n_batch <= 0:
        return ()
    point = np.asarray(layer.world_to_data(viewer.dims.point), dtype=float)
    shape = source_data(layer).shape
    return tuple(int(np.clip(np.round(c), 0, s - 1)) for c, s in zip(point[:n_batch], shape[:n_batch]))


def shown_frame(viewer: Any, layer: Any, frame_ndim: int = 2) -> Any:
    """The trailing ``frame_ndim``-D frame of ``layer`` that the viewer shows (lazy stays lazy)."""
    return source_data(layer)[shown_index(viewer, layer, frame_ndim)]


def _trailing(values: tuple, ndim: int, fill: Any) -> tuple:
    """The last ``ndim`` entries of ``values``, padded in front with ``fill``."""
    values = tuple(values)
    if len(values) >= ndim:
        return values[len(values) - ndim :]
    return (fill,) * (ndim - len(values)) + values


def _trailing_matrix(matrix: np.ndarray, ndim: int, homogeneous: bool) -> np.ndarray:
    """Trailing ``ndim`` axes of a (homogeneous) matrix; identity for new leading axes."""
    matrix = np.asarray(matrix, dtype=float)
    src = matrix.shape[0] - (1 if homogeneous else 0)
    out = np.eye(ndim + (1 if homogeneous else 0))
    keep = min(src, ndim)
    rows = list(range(src - keep, src)) + ([src] if homogeneous else [])
    dst = list(range(ndim - keep, ndim)) + ([ndim] if homogeneous else [])
    out[np.ix_(dst, dst)] = matrix[np.ix_(rows, rows)]
    return out


def spatial_kwargs(layer: Any, ndim: int) -> dict:
    """The physical frame of ``layer`` for a result with ``ndim`` axes (matching trailing axes)."""
    from napari.utils.transforms.transform_utils import expand_upper_triangular

    source_ndim = layer.ndim
    labels = tuple(layer.axis_labels)
    default_labels = tuple(f"axis{i}" for i in range(ndim))
    axis_labels = _trailing(labels, ndim, None)
    axis_labels = tuple(a if a is not None else d for a, d in zip(axis_labels, default_labels))
    if len(set(axis_labels)) != len(axis_labels):
        axis_labels = default_labels[: ndim - min(ndim, source_ndim)] + labels[-min(ndim, source_ndim) :]
    shear = expand_upper_triangular(np.asarray(layer.shear)) if source_ndim > 1 else np.eye(1)
    return {
        "scale": _trailing(tuple(float(s) for s in layer.scale), ndim, 1.0),
        "translate": _trailing(tuple(float(t) for t in layer.translate), ndim, 0.0),
        "rotate": _trailing_matrix(layer.rotate, ndim, homogeneous=False),
        "shear": _trailing_matrix(shear, ndim, homogeneous=False),
        "affine": _trailing_matrix(layer.affine.affine_matrix, ndim, homogeneous=True),
        "units": _trailing(tuple(str(u) for u in layer.units), ndim, "pixel"),
        "axis_labels": axis_labels,
    }


def axes_kwargs(layer: Any, axes: tuple) -> dict:
    """The physical frame of the chosen ``axes`` of ``layer`` (e.g. time, y, x of a ``(T, C, Y, X)`` stack)."""
    full = spatial_kwargs(layer, layer.ndim)
    kwargs = {key: tuple(full[key][i] for i in axes) for key in ("scale", "translate", "units", "axis_labels")}
    kwargs.update(rotate=np.eye(len(axes)), shear=np.eye(len(axes)), affine=np.eye(len(axes) + 1))
    return kwargs


def regridded_kwargs(layer: Any, grid: Any, ndim: int) -> dict:
    """The physical frame of ``layer`` resampled onto the grid of ``grid``'s last ``ndim`` axes.

    The leading axes (time, z, channel) stay ``layer``'s; the trailing
    spatial axes take ``grid``'s pixel size, origin, units and axis labels (a
    moving image warped onto the fixed image's grid).
    """
    own, target = spatial_kwargs(layer, layer.ndim), spatial_kwargs(grid, ndim)
    kwargs = {}
    for key in ("scale", "translate", "units", "axis_labels"):
        kwargs[key] = tuple(own[key][: layer.ndim - ndim]) + tuple(target[key])
    if len(set(kwargs["axis_labels"])) != len(kwargs["axis_labels"]):
        kwargs["axis_labels"] = own["axis_labels"]
    for key in ("rotate", "shear"):
        kwargs[key] = _trailing_matrix(target[key], layer.ndim, homogeneous=False)
    kwargs["affine"] = _trailing_matrix(target["affine"], layer.ndim, homogeneous=True)
    return kwargs


def recorded_metadata(layer: Any, step: dict) -> dict:
    """``layer``'s metadata with ``step`` appended to its stacklab record."""
    return provenance(layer.metadata, [step], source=layer.name)


def _labels_data(data: Any) -> Any:
    """Masks become uint8 labels (napari shows integer labels; bool is not a label type)."""
    if np.dtype(data.dtype) == np.bool_:
        return data.astype(np.uint8)
    return data


def frame_kwargs(op: Any, source: Any, in_shape: tuple, out_shape: tuple) -> dict:
    """The physical frame of a result of ``out_shape`` computed by ``op`` from ``in_shape``.

    ``in_shape`` covers the trailing axes of ``source`` (the whole layer, or the
    previewed plane). The operation's declaration decides which axes the
    result keeps and whether its pixels were resampled (``op.output_frame``):
    a virtual detector keeps the scan axes, a mean pattern the detector axes,
    binning doubles the pixel size.
    """
    in_shape, out_shape = tuple(in_shape), tuple(out_shape)
    colour = False
    if getattr(source, "rgb", False):
        # an RGB layer's last data axis holds the colour samples, not space: map the frame without it,
        # and show a colour result as RGB again
        in_shape = in_shape[:-1]
        colour = len(out_shape) == len(in_shape) + 1 and out_shape[-1] in (3, 4)
        if colour:
            out_shape = out_shape[:-1]
    source_frame = spatial_kwargs(source, len(in_shape))
    kwargs = op.output_frame(in_shape, out_shape, source_frame)
    if op.keeps == "all" and len(out_shape) == len(in_shape):
        kwargs.update({key: source_frame[key] for key in ("rotate", "shear", "affine")})
    if colour:
        kwargs["rgb"] = True
    return kwargs


def array_layers(op: Any, result: Any, source: Any, name: str, metadata: dict, in_shape: tuple) -> list[tuple]:
    """Layer data tuples ``(data, kwargs, type)`` for an image, labels, mask or images result."""
    output = op.output
    items = result.items() if output == "images" else [(None, result)]
    layers = []
    for key, data in items:
        layer_type = "image" if output == "images" else LAYER_TYPES[output]
        if layer_type == "labels":
            data = _labels_data(data)
        kwargs = frame_kwargs(op, source, in_shape, tuple(data.shape))
        if layer_type == "image":
            kwargs.update(op.display_for(key or ""))
        kwargs["name"] = name if key is None else f"{name} {key}"
        kwargs["metadata"] = dict(metadata)
        layers.append((data, kwargs, layer_type))
    return layers


def points_layer(result: Any, source: Any, name: str, metadata: dict) -> tuple:
    """A Points layer tuple from ``(K, D)`` coordinates, or a table with a ``"coords"`` column."""
    features = None
    if isinstance(result, dict):
        features = {k: _backend.to_numpy(v) for k, v in result.items() if k != "coords"}
        result = result["coords"]
    coords = np.asarray(_backend.to_numpy(result), dtype=float)
    if coords.ndim != 2:
        raise ValueError(f"a points result must have shape (K, D), got {coords.shape}")
    kwargs = spatial_kwargs(source, coords.shape[1])
    kwargs.update(name=name, metadata=dict(metadata), size=3)
    if features:
        kwargs["features"] = features
    return coords, kwargs, "points"


def add_or_replace(viewer: Any, data: Any, kwargs: dict, layer_type: str) -> Any:
    """Add a layer, or replace the data of the same-named layer of the same type and ndim."""
    name = kwargs["name"]
    existing = viewer.layers[name] if name in viewer.layers else None
    if existing is not None:
        same_ndim = existing.ndim == (data.ndim if hasattr(data, "ndim") else len(kwargs["scale"]))
        if isinstance(existing, _layer_class(layer_type)) and same_ndim:
            _update(existing, data, kwargs)
            return existing
        index = viewer.layers.index(existing)
        viewer.layers.remove(existing)
    else:
        index = None
    layer = getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    if index is not None:
        viewer.layers.move(viewer.layers.index(layer), index)
    return layer


def _layer_class(layer_type: str) -> type:
    import napari.layers

    return getattr(napari.layers, layer_type.capitalize())


def _update(layer: Any, data: Any, kwargs: dict) -> None:
    layer.data = data
    ndim = layer.ndim
    unset = {"rotate": np.eye(ndim), "shear": np.eye(ndim), "affine": np.eye(ndim + 1)}  # as a new layer has them
    for key in ("scale", "translate", "rotate", "shear", "affine", "units", "axis_labels", "metadata"):
        value = kwargs[key] if key in kwargs else unset[key]
        if not _same(key, getattr(layer, key), value):  # every change re-lays the viewer out: skip no-ops
            setattr(layer, key, value)
    if "features" in kwargs:
        layer.features = kwargs["features"]
    if isinstance(layer, _layer_class("image")):
        layer.reset_contrast_limits()
    layer.refresh()


def _same(key: str, current: Any, new: Any) -> bool:
    """Whether setting layer property ``key`` to ``new`` would change nothing."""
    if key == "metadata":
        return False
    if key == "affine":
        current = current.affine_matrix
    if key in ("units", "axis_labels"):
        return tuple(map(str, current)) == tuple(map(str, _units(new) if key == "units" else new))
    current, new = np.asarray(current, dtype=float), np.asarray(new, dtype=float)
    return current.shape == new.shape and bool(np.allclose(current, new, rtol=0, atol=0))


def _units(units: Any) -> tuple:
    """Units as napari holds them (pint units of its registry: ``"um"`` -> micrometer)."""
    import pint

    registry = pint.get_application_registry()
    return tuple(registry.Unit(str(unit)) for unit in units)
