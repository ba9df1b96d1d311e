"""Measurements in physical units: region properties, peaks, template matching.

Tables are plain ``dict``s of 1-D NumPy columns (:class:`Table`, which also
records the unit of each column and converts to pandas on request); points are
``(N, ndim)`` arrays of pixel coordinates, batch axes first, ready for a napari
Points layer with the image's scale.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np

from . import _backend
from ._backend import get_namespace, skimage_module
from ._validation import check_array, float_dtype
from .frames import Mode, frame_ndim_for, frame_spacing, iter_frame_indices
from .registry import ImageRef, Range, operation

__all__ = [
    "Table",
    "regionprops_table",
    "PROPERTIES",
    "find_peaks",
    "match_template",
    "template_peaks",
    "points_to_markers",
]

#: Property name -> kind of unit (``"length"``, ``"area"`` = pixel area or voxel volume,
#: ``"pixel"`` = array index, ``"rad"``, ``"intensity"``, ``""`` = dimensionless).
PROPERTIES = {
    "label": "",
    "area": "area",
    "perimeter": "length",
    "equivalent_diameter_area": "length",
    "centroid": "length",
    "bbox": "pixel",
    "eccentricity": "",
    "orientation": "rad",
    "axis_major_length": "length",
    "axis_minor_length": "length",
    "solidity": "",
    "extent": "",
    "intensity_mean": "intensity",
    "intensity_min": "intensity",
    "intensity_max": "intensity",
}
_DEFAULT_2D = ("label", "area", "perimeter", "equivalent_diameter_area", "centroid", "bbox", "eccentricity", "orientation")
_DEFAULT_3D = ("label", "area", "equivalent_diameter_area", "centroid", "bbox")
_INTENSITY = ("intensity_mean", "intensity_min", "intensity_max")
_ONLY_2D = ("perimeter", "eccentricity", "orientation")


class Table(dict):
    """A measurement table: ``{column: 1-D numpy array}`` plus ``units`` (column -> unit string).

    Examples
    --------
    >>> t = Table({"area": np.array([4.0, 9.0])}, units={"area": "um^2"})
    >>> t.header()
    ['area [um^2]']
    """

    def __init__(self, columns: dict | None = None, units: dict | None = None):
        super().__init__(columns or {})
        self.units = dict(units or {})

    def header(self) -> list[str]:
        """Column names with their units, ``"area [um^2]"``, for display and CSV."""
        return [f"{name} [{self.units[name]}]" if self.units.get(name) else name for name in self]

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the table as CSV with units in the header row."""
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.header())
            writer.writerows(zip(*(np.asarray(col).tolist() for col in self.values())))

    def to_pandas(self):
        """A ``pandas.DataFrame`` (pandas is optional); units go to ``df.attrs["units"]``."""
        import pandas as pd

        frame = pd.DataFrame(dict(self))
        frame.attrs["units"] = dict(self.units)
        return frame


def _unit_of(column: str, unit: str, frame_ndim: int) -> str:
    base = column.split("-")[0]
    kind = PROPERTIES.get(base, "")
    if kind == "length":
        return unit
    if kind == "area":
        return f"{unit}^{frame_ndim}"
    if kind == "pixel":
        return "pixel"
    if kind == "rad":
        return "rad"
    return ""


def _check_properties(properties: Any, frame_ndim: int, has_intensity: bool) -> tuple[str, ...]:
    if properties is None:
        chosen = _DEFAULT_2D if frame_ndim == 2 else _DEFAULT_3D
        return chosen + (_INTENSITY if has_intensity else ())
    if isinstance(properties, str) or not isinstance(properties, Sequence):
        raise TypeError(f"properties must be a sequence of property names, got {properties!r}")
    unknown = [p for p in properties if p not in PROPERTIES]
    if unknown:
        raise ValueError(f"properties has unknown names {unknown}; choose from {sorted(PROPERTIES)}")
    if frame_ndim == 3 and any(p in _ONLY_2D for p in properties):
        raise ValueError(f"properties {[p for p in properties if p in _ONLY_2D]} are only defined for 2-D frames")
    if not has_intensity and any(p in _INTENSITY for p in properties):
        raise ValueError("properties asks for intensity measurements; pass an intensity image")
    return ("label",) + tuple(p for p in properties if p != "label")


def _channel_axis_of(labels_shape: tuple, intensity_shape: tuple) -> int | None:
    """The channel axis of a multichannel intensity image: the one axis ``labels`` lacks (the last that fits)."""
    if intensity_shape == labels_shape:
        return None
    if len(intensity_shape) == len(labels_shape) + 1:
        for axis in reversed(range(len(intensity_shape))):
            if intensity_shape[:axis] + intensity_shape[axis + 1:] == labels_shape:
                return axis
    raise ValueError(
        f"intensity must have the shape of image {labels_shape}, or that shape with one axis of channels, "
        f"got {intensity_shape}"
    )


def _named_channels(table: dict, names: Sequence[str]) -> dict:
    """``intensity_mean-0`` -> ``intensity_mean-<name of channel 0>`` (scikit-image numbers the channels)."""
    renamed = {}
    for column, values in table.items():
        base, _, index = column.partition("-")
        renamed[f"{base}-{names[int(index)]}" if base in _INTENSITY and index.isdigit() else column] = values
    return renamed


def _frame_table(labels: Any, intensity: Any, properties: tuple, spacing: tuple | None) -> dict:
    labels = _backend.to_numpy(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.int32)
    intensity = None if intensity is None else _backend.to_numpy(intensity)
    measure = skimage_module(labels, "measure")
    return measure.regionprops_table(
        labels, intensity_image=intensity, properties=properties, spacing=spacing or 1
    )


@operation(menu="measure", output="table", lift=False)
def regionprops_table(
    image,
    *,
    intensity: ImageRef | None = None,
    # a pixel size in physical units: up to 1e30 keeps areas and moments (spacing**4) inside float64
    spacing: Annotated[float | tuple[float, ...], Range(0, 1e30, low_inclusive=False)] | None = None,
    unit: str = "pixel",
    properties: Sequence[str] | None = None,
    mode: Mode = "2d",
    channel_names: Sequence[str] | None = None,
):
    """Measure every labeled object, in physical units, frame by frame.

    Parameters
    ----------
    image : array of int, shape ``(..., M, N)``
        Labels (0 = background; a bool mask counts as one object).
    intensity : array, optional
        Image of the same shape for ``intensity_mean/min/max``, or with one
        more axis of channels (an RGB image ``(..., M, N, 3)``, a fluorescence
        stack ``(C, ..., M, N)``): then each intensity property has one column
        per channel, ``intensity_mean-<channel name>``.
    spacing : float or tuple of float, optional
        Pixel size along the frame axes, or along every axis (e.g. a layer's
        ``scale``; the last 2 or 3 values are used). Areas are
        ``pixel count * prod(spacing)`` and volumes likewise; centroids,
        diameters and axis lengths are scaled per axis (anisotropic pixels are
        handled by scikit-image's second moments). ``perimeter`` needs square
        pixels: anisotropic spacing raises. ``bbox`` stays in pixel indices.
    unit : str
        Name of the spacing's unit (``"um"``, ``"nm"``), recorded in ``units``.
    properties : sequence of str, optional
        Names from :data:`PROPERTIES`; default: label, area, perimeter,
        equivalent_diameter_area, centroid, bbox, eccentricity, orientation
        (2-D; label, area, equivalent_diameter_area, centroid, bbox for 3-D),
        plus the intensity statistics when ``intensity`` is given.
    mode : {"2d", "3d"}
        Measure objects in planes ``(M, N)`` or volumes ``(P, M, N)``.
    channel_names : sequence of str, optional
        Names of the intensity's channels (``"DAPI", "GFP"``); default
        ``c0, c1, ...``.

    Returns
    -------
    Table
        ``dict`` of 1-D numpy columns named as ``skimage.measure.regionprops_table``
        (``centroid-0``, ``bbox-3`` ...), with ``units`` per column. A stack
        gives one row per object per frame and a ``frame`` column (C-order
        frame index; for several batch axes also ``frame-0``, ``frame-1`` ...).
        Dask input is read one frame at a time, never whole.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((10, 10), np.int32); labels[1:3, 1:4] = 1; labels[5:9, 5:9] = 2
    >>> table = regionprops_table(labels, spacing=0.5, unit="um", properties=["area"])
    >>> table["area"].tolist(), table.units["area"]
    ([1.5, 4.0], 'um^2')
    >>> rgb = np.zeros((10, 10, 3)); rgb[..., 0] = 200; rgb[..., 2] = 50
    >>> table = regionprops_table(labels, intensity=rgb, properties=["intensity_mean"],
    ...                           channel_names=["red", "green", "blue"])
    >>> list(table), table["intensity_mean-blue"].tolist()
    (['label', 'intensity_mean-red', 'intensity_mean-green', 'intensity_mean-blue'], [50.0, 50.0])
    """
    frame_ndim = frame_ndim_for(image, mode)
    if np.dtype(image.dtype).kind == "f":
        raise TypeError(f"image must hold integer labels (or a bool mask), got dtype {np.dtype(image.dtype)}")
    names = None
    if intensity is not None:
        check_array(intensity, "intensity")
        channel = _channel_axis_of(tuple(image.shape), tuple(intensity.shape))
        if channel is not None:  # scikit-image takes the channels last
            intensity = _backend.array_module(intensity).moveaxis(intensity, channel, -1)
            names = _channel_names(channel_names, intensity.shape[-1])
    chosen = _check_properties(properties, frame_ndim, intensity is not None)
    pixel = frame_spacing(spacing, frame_ndim)
    if pixel is not None and "perimeter" in chosen and len(set(pixel)) > 1:
        raise ValueError(f"spacing {pixel} is anisotropic; perimeter needs square pixels (drop 'perimeter')")

    batch_shape = tuple(image.shape[: image.ndim - frame_ndim])
    columns: dict[str, list] = {}
    for index in iter_frame_indices(batch_shape):
        frame_intensity = None if intensity is None else _backend.materialize(intensity[index])
        table = _frame_table(_backend.materialize(image[index]), frame_intensity, chosen, pixel)
        n_rows = len(table["label"])
        if batch_shape:
            flat = int(np.ravel_multi_index(index, batch_shape))
            columns.setdefault("frame", []).append(np.full(n_rows, flat, np.int64))
            if len(batch_shape) > 1:
                for axis, i in enumerate(index):
                    columns.setdefault(f"frame-{axis}", []).append(np.full(n_rows, i, np.int64))
        for name, values in (table if names is None else _named_channels(table, names)).items():
            columns.setdefault(name, []).append(np.asarray(values))
    result = {name: np.concatenate(parts) for name, parts in columns.items()}
    return Table(result, units={name: _unit_of(name, unit, frame_ndim) for name in result})


def _channel_names(names: Sequence[str] | None, count: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"c{i}" for i in range(count))
    if isinstance(names, str) or len(names) != count or len(set(map(str, names))) != count:
        raise ValueError(f"channel_names must give {count} different names (one per channel), got {names!r}")
    return tuple(str(name) for name in names)


# --------------------------------------------------------------------------- peaks
def _refine(frame: Any, coords: Any, window: int) -> Any:
    """Centre of mass of ``frame - local minimum`` in a ``2 * window + 1`` box around each peak.

    Boxes are clipped to the frame. The sums over each box (of the values, of
    the values times each coordinate, of the coordinates, of the pixels) are
    read at the peaks from whole-frame box filters, so the time does not grow
    with the number of peaks times the box size.
    """
    xp, ndi = get_namespace(frame)
    size = 2 * window + 1
    values = frame.astype(np.float64)
    at = tuple(coords[:, axis] for axis in range(frame.ndim))

    def box_sum(array: Any) -> Any:
        return ndi.uniform_filter(array, size, mode="constant")[at] * size**frame.ndim

    base = ndi.minimum_filter(values, size, mode="nearest")[at]  # the minimum over each clipped box
    total = box_sum(values) - base * box_sum(xp.ones_like(values))
    grids = xp.meshgrid(*[xp.arange(n, dtype=np.float64) for n in frame.shape], indexing="ij")
    moments = xp.stack([box_sum(values * grid) - base * box_sum(grid) for grid in grids], axis=-1)
    found = total > 1e-12 * xp.maximum(xp.abs(base), 1.0)  # a flat box keeps the integer position
    centre = moments / xp.where(found, total, 1.0)[:, None]
    return xp.where(found[:, None], centre, coords.astype(np.float64))


def _frame_peaks(frame: Any, min_distance: int, threshold_abs: float | None, threshold_rel: float | None,
                 exclude_border: bool, subpixel: bool, window: int) -> np.ndarray:
    if frame.dtype == bool:  # a mask counts as 0/1 (scikit-image cannot negate booleans)
        frame = frame.astype(np.uint8)
    coords = skimage_module(frame, "feature").peak_local_max(
        frame,
        min_distance=min_distance,
        threshold_abs=threshold_abs,
        threshold_rel=threshold_rel,
        exclude_border=exclude_border,
    )
    if subpixel and len(coords):
        coords = _refine(frame, coords, window)
    return _backend.to_numpy(coords).astype(np.float64)


def _stack_points(image: Any, frame_ndim: int, per_frame) -> np.ndarray:
    """Run ``per_frame(frame) -> (K, frame_ndim)`` on each frame; prefix the batch index."""
    batch_shape = tuple(image.shape[: image.ndim - frame_ndim])
    found = []
    for index in iter_frame_indices(batch_shape):
        points = per_frame(_backend.compute_here(image[index]))
        prefix = np.broadcast_to(np.asarray(index, np.float64), (len(points), len(index)))
        found.append(np.hstack([prefix, points]))
    return np.concatenate(found) if found else np.empty((0, image.ndim))


@operation(menu="measure", output="points", lift=False, channels="luminance")
def find_peaks(
    image,
    *,
    min_distance: Annotated[int, Range(1, 1000)] = 3,
    threshold_abs: float | None = None,
    threshold_rel: Annotated[float, Range(0, 1)] | None = None,
    exclude_border: bool = True,
    subpixel: bool = True,
    window: Annotated[int, Range(1, 50)] = 3,
):
    """Local maxima of every frame, refined to sub-pixel precision by centre of mass.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack (peaks are found in each 2-D frame); a boolean
        image is read as 0/1.
    min_distance : int
        Minimum distance in pixels between peaks (and, with
        ``exclude_border``, from the frame edge).
    threshold_abs, threshold_rel : float, optional
        Minimum peak value, absolute or relative to the frame's maximum.
    exclude_border : bool
        Ignore peaks within ``min_distance`` of the frame edge.
    subpixel : bool
        Refine each peak to the centre of mass of ``frame - local minimum``
        in a ``(2 * window + 1)`` box.
    window : int
        Half-size in pixels of the refinement box. Make it about three times
        the spot's Gaussian sigma: a smaller box pulls positions towards the
        pixel centre (for sigma 1 px and ``window=3`` the error is below 0.01 px).

    Returns
    -------
    array of float64, shape ``(K, ndim)``
        Pixel coordinates, batch indices first, strongest peak first within
        each frame (dask input is read one frame at a time).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:21, :21]
    >>> spot = np.exp(-((yy - 10.3) ** 2 + (xx - 9.6) ** 2) / 2)
    >>> find_peaks(spot, min_distance=3).round(1).tolist()
    [[10.3, 9.6]]
    """
    return _stack_points(
        image, 2, lambda frame: _frame_peaks(frame, min_distance, threshold_abs, threshold_rel, exclude_border, subpixel, window)
    )


def _prepare_template(image: Any, *, template: Any, pad_input: bool) -> dict:
    if template.ndim != 2:
        raise ValueError(f"template must be 2-D, got shape {tuple(template.shape)}")
    if any(t > s for t, s in zip(template.shape, image.shape[-2:])):
        raise ValueError(f"template {tuple(template.shape)} is larger than a frame {tuple(image.shape[-2:])}")
    return {"template": template, "pad_input": pad_input}


def _template_frame_shape(in_shape: tuple, *, template: Any, pad_input: bool) -> tuple:
    if pad_input:
        return in_shape
    return tuple(s - t + 1 for s, t in zip(in_shape, template.shape))


@operation(menu="measure", prepare=_prepare_template, frame_shape=_template_frame_shape, channels="luminance")
def match_template(image, *, template: ImageRef, pad_input: bool = True):
    """Normalised cross-correlation of each frame with a template.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    template : array, shape ``(m, n)``
        The pattern to find (``m <= M``, ``n <= N``).
    pad_input : bool
        ``True``: output has the frame's shape and the peak sits at the
        template's centre; ``False``: shape ``(M - m + 1, N - n + 1)``, peak at
        the template's top-left corner.

    Returns
    -------
    array, shape ``(..., M, N)``
        Correlation coefficients in [-1, 1]; float32 (float64 for float64
        input); ``skimage.feature.match_template``. Whole frames per chunk.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0); img = rng.random((30, 30))
    >>> corr = match_template(img, template=img[10:17, 5:12])
    >>> np.unravel_index(int(corr.argmax()), corr.shape)
    (np.int64(13), np.int64(8))
    """
    dtype = float_dtype(image.dtype)
    feature = skimage_module(image, "feature")
    return feature.match_template(image.astype(dtype, copy=False), template.astype(dtype, copy=False), pad_input=pad_input).astype(dtype, copy=False)


@operation(menu="measure", output="points", lift=False, channels="luminance")
def template_peaks(
    image,
    *,
    template: ImageRef,
    threshold: Annotated[float, Range(-1, 1)] = 0.5,
    min_distance: Annotated[int, Range(1, 1000)] = 5,
    subpixel: bool = True,
):
    """Positions where a template matches: correlation peaks above ``threshold``.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack.
    template : array, shape ``(m, n)``
        The pattern to find.
    threshold : float
        Minimum normalised correlation of a match.
    min_distance : int
        Minimum distance in pixels between matches.
    subpixel : bool
        Refine each match by centre of mass of the correlation peak.

    Returns
    -------
    array of float64, shape ``(K, ndim)``
        Positions of the template's centre (``(m // 2, n // 2)`` inside it),
        batch indices first, best match first in each frame.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0); img = rng.random((30, 30))
    >>> template_peaks(img, template=img[10:17, 5:12], threshold=0.9, subpixel=False).tolist()
    [[13.0, 8.0]]
    """
    correlation = match_template(image, template=template, pad_input=True)
    return find_peaks(
        correlation, min_distance=min_distance, threshold_abs=threshold, exclude_border=False, subpixel=subpixel, window=1
    )


def points_to_markers(points: Any, shape: Sequence[int]) -> np.ndarray:
    """Rasterise points (e.g. a napari Points layer's data) into watershed markers.

    Parameters
    ----------
    points : array, shape ``(K, D)``
        Pixel coordinates; ``D`` may be less than ``len(shape)`` (then they
        are the last ``D`` axes and every leading frame gets the same markers).
    shape : tuple of int
        Shape of the labels image to make.

    Returns
    -------
    array of int32, shape ``shape``
        Marker ``k + 1`` at the rounded position of point ``k``; 0 elsewhere.

    Examples
    --------
    >>> points_to_markers([[0.2, 1.7], [2, 0]], (3, 3)).tolist()
    [[0, 0, 1], [0, 0, 0], [2, 0, 0]]
    """
    points = np.asarray(points, dtype=np.float64)
    shape = tuple(int(s) for s in shape)
    if points.ndim != 2 or not 1 <= points.shape[1] <= len(shape):
        raise ValueError(f"points must have shape (K, D) with D <= {len(shape)}, got {points.shape}")
    index = np.rint(points).astype(np.int64)
    tail = shape[len(shape) - points.shape[1]:]
    outside = np.any((index < 0) | (index >= np.asarray(tail)), axis=1)
    if outside.any():
        raise ValueError(f"points {points[outside].tolist()} lie outside an image of shape {shape}")
    markers = np.zeros(tail, np.int32)
    markers[tuple(index.T)] = np.arange(1, len(index) + 1, dtype=np.int32)
    return np.broadcast_to(markers, shape).copy()
