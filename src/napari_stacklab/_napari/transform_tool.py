"""Transforms that travel: save, load and apply a registration to other layers.

A transform comes from a layer that records one (the point tool's
``"<moving> registered"``, align-a-set's ``"<layer> aligned"``, a drift
correction's shifts) or from a JSON file. The tool saves it as JSON, and
applies it to another layer:

- an Image or Labels layer (another channel, a segmentation) is resampled
  lazily with the registry operations ``apply_transform`` / ``apply_drift``
  (Labels with nearest neighbours, so they stay integer labels), onto the
  fixed image's grid, and records the step, so the result replays as a recipe;
- a Points or Shapes layer drawn on the moving image gets its coordinates
  moved to where the resampling puts that image
  (:func:`napari_stacklab.register.warp_points`), in world units: each
  layer's pixel size and origin are respected.

Both menu entries, *Apply transform* and *Apply drift*, open this tool.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, PushButton, SpinBox
from napari.layers import Labels, Points, Shapes

from .. import _backend, catalog
from ..register import Transform, warp_points
from . import _layers
from ._channels import layer_channels
from ._tool import Tool, action, record_of

__all__ = ["TransformTool", "Recorded", "recorded_in", "read_transform_file", "write_transform_file",
           "moved_coordinates", "narrow", "SHIFTS_FORMAT"]

#: Key and version of a saved file of per-frame shifts: ``{"stacklab_shifts": 1, "shifts": [[row, col], ...]}``.
SHIFTS_FORMAT = "stacklab_shifts"
#: Shapes whose vertices are corners of a rectangle (napari keeps them only while they stay one).
_BOXED = ("rectangle", "ellipse")
#: Vertices of the polygon an ellipse becomes when a transform does not keep it an ellipse napari can draw.
_ELLIPSE_VERTICES = 64


@dataclasses.dataclass(eq=False)  # a choice of a drop-down: compared by identity
class Recorded:
    """A transform or per-frame shifts, with what is known of the images it relates.

    ``transform`` (fixed -> moving pixels) or ``shifts`` (``(T, 2)`` pixels,
    frame ``t`` of the stack moved by ``shifts[t]``); ``output_shape`` is
    the fixed image's frame shape, ``fixed`` and ``moving`` name the layers
    (when known), ``origin`` says where it came from.
    """

    transform: Transform | None = None
    shifts: np.ndarray | None = None
    output_shape: tuple | None = None
    fixed: str | None = None
    moving: str | None = None
    origin: str = ""

    @property
    def transforms(self) -> list[Transform]:
        """One transform, or one per frame."""
        if self.transform is not None:
            return [self.transform]
        return [Transform.from_shift(s) for s in self.shifts]

    @property
    def ndim(self) -> int:
        return self.transform.ndim if self.transform is not None else 2

    def describe(self) -> str:
        if self.transform is not None:
            what = f"{self.transform.model}, {self.transform.ndim}-D"
        else:
            what = f"per-frame shifts, {len(self.shifts)} frames, up to {float(np.abs(self.shifts).max()):.2f} px"
        return f"{what} ({self.origin})"


def recorded_in(layer: Any) -> Recorded | None:
    """The last transform or drift a layer's recorded steps applied (``None`` when there is none)."""
    for step in reversed(record_of(layer).get("steps") or []):
        params, result = step.get("params") or {}, step.get("result") or {}
        origin = f"layer {layer.name!r}"
        if step.get("op") == "apply_transform":
            shape = params.get("output_shape")
            return Recorded(transform=Transform.from_dict(params["transform"]),
                            output_shape=None if shape is None else tuple(int(s) for s in shape),
                            fixed=result.get("fixed"), moving=result.get("moving"), origin=origin)
        shifts = params.get("shifts") if step.get("op") == "apply_drift" else result.get("shifts")
        if step.get("op") in ("apply_drift", "drift_correct") and shifts is not None:
            stack = result.get("estimated_on", record_of(layer).get("source"))
            return Recorded(shifts=np.asarray(shifts, dtype=np.float64), fixed=stack, moving=stack, origin=origin)
    return None


def write_transform_file(recorded: Recorded, path: str | Path) -> Path:
    """Save a transform (:meth:`Transform.to_json`, with the fixed grid and layer names in its metadata) or shifts."""
    path = Path(path)
    if recorded.transform is None:
        text = json.dumps({SHIFTS_FORMAT: 1, "shifts": np.asarray(recorded.shifts).tolist(), "units": "pixel",
                           "stack": recorded.moving}, indent=1)
        path.write_text(text, encoding="utf-8")
        return path
    known = {"output_shape": list(recorded.output_shape) if recorded.output_shape else None,
             "fixed_layer": recorded.fixed, "moving_layer": recorded.moving}
    metadata = {**recorded.transform.metadata, **{k: v for k, v in known.items() if v is not None}}
    dataclasses.replace(recorded.transform, metadata=metadata).to_json(path)
    return path


def read_transform_file(path: str | Path) -> Recorded:
    """A transform or shifts saved by :func:`write_transform_file` (or :meth:`Transform.to_json`)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name} is not a JSON file: {exc}") from None
    origin = f"file {path.name!r}"
    if isinstance(content, dict) and SHIFTS_FORMAT in content:
        shifts = np.asarray(content.get("shifts"), dtype=np.float64)
        if shifts.ndim != 2 or shifts.shape[1] != 2 or not len(shifts) or not np.isfinite(shifts).all():
            raise ValueError(f"{path.name}: 'shifts' must be a (T, 2) list of finite numbers")
        return Recorded(shifts=shifts, fixed=content.get("stack"), moving=content.get("stack"), origin=origin)
    try:
        transform = Transform.from_dict(content)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path.name} holds no transform: {exc}") from None
    shape = transform.metadata.get("output_shape")
    return Recorded(transform=transform, output_shape=tuple(int(s) for s in shape) if shape else None,
                    fixed=transform.metadata.get("fixed_layer"), moving=transform.metadata.get("moving_layer"),
                    origin=origin)


def narrow(*combos: Any) -> None:
    """Drop-downs that fit a narrow dock: a long layer name is cut short instead of widening the tool."""
    from qtpy.QtWidgets import QComboBox

    for combo in combos:
        combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.native.setMinimumContentsLength(8)


def _frame(layer: Any, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, translate)`` of ``layer`` over ``ndim`` trailing axes (pixel units where it has none)."""
    kwargs = _layers.spatial_kwargs(layer, ndim)
    return np.asarray(kwargs["scale"], dtype=np.float64), np.asarray(kwargs["translate"], dtype=np.float64)


def moved_coordinates(coords: np.ndarray, transforms: list[Transform], *, layer: tuple, moving: tuple,
                      fixed: tuple, frame_column: int | None = None) -> np.ndarray:
    """Coordinates of a Points/Shapes layer moved as :func:`warp` moves the moving image.

    ``coords`` ``(K, n)`` are data coordinates of a layer whose data-to-world
    map is ``layer = (scale, translate)`` (``n`` entries each). ``moving``
    and ``fixed`` are the ``(scale, translate)`` of the moving image and of
    the grid the image is resampled onto, over the same ``n`` trailing axes:
    the world point is taken to the moving image's pixels, moved with
    :func:`warp_points`, and put back into world and then into the layer's
    data coordinates (the result keeps the layer's own frame). With one
    transform per frame, ``frame_column`` is the column holding the frame
    (time) index of the moving image.
    """
    scale, translate = layer
    world = coords * scale + translate
    pixels = (world - moving[1]) / moving[0]
    d = transforms[0].ndim
    if len(transforms) > 1:
        if frame_column is None or frame_column < 0:
            raise ValueError("per-frame shifts need coordinates with a frame (time) column: the layer has "
                             f"{coords.shape[1]} axes, the stack's frames start at its first axis")
        pixels[:, frame_column:] = warp_points(pixels[:, frame_column:], transforms)
    else:
        pixels = warp_points(pixels, transforms)
    out_scale = np.r_[moving[0][:-d], fixed[0][-d:]]
    out_translate = np.r_[moving[1][:-d], fixed[1][-d:]]
    return (pixels * out_scale + out_translate - translate) / scale


def _is_rectangle(corners: np.ndarray) -> bool:
    """Whether 4 vertices (in order around) are the corners of a rectangle."""
    edges = np.roll(corners, -1, axis=0) - corners
    size = max(float(np.abs(edges).max()), 1e-12)
    parallelogram = np.allclose(edges[0], -edges[2], atol=1e-6 * size) and np.allclose(edges[1], -edges[3],
                                                                                         atol=1e-6 * size)
    return parallelogram and abs(float(edges[0] @ edges[1])) <= 1e-6 * size**2


def _ellipse_outline(corners: np.ndarray) -> np.ndarray:
    """Points on the ellipse inscribed in napari's 4 corner vertices (its bounding rectangle)."""
    centre = corners.mean(axis=0)
    half_a, half_b = (corners[1] - corners[0]) / 2, (corners[3] - corners[0]) / 2
    angle = np.linspace(0, 2 * np.pi, _ELLIPSE_VERTICES, endpoint=False)[:, None]
    return centre + np.cos(angle) * half_a + np.sin(angle) * half_b


def moved_shapes(data: list, shape_types: list, move: Any) -> tuple[list, list]:
    """Shapes' vertex arrays moved with ``move`` (a function of ``(K, n)`` coordinates).

    Rectangles and ellipses keep their type while their corners stay a
    rectangle (a shift, a rotation, a uniform scale); otherwise they become
    the polygon they turned into (an ellipse sampled on its outline).
    """
    out, types = [], []
    for vertices, kind in zip(data, shape_types):
        vertices = np.asarray(vertices, dtype=np.float64)
        moved = move(vertices)
        spatial = slice(-2, None)
        if kind in _BOXED and len(vertices) == 4 and not _is_rectangle(moved[:, spatial]):
            if kind == "ellipse":
                outline = np.repeat(vertices[:1], _ELLIPSE_VERTICES, axis=0)
                outline[:, spatial] = _ellipse_outline(vertices[:, spatial])
                moved = move(outline)
            kind = "polygon"
        out.append(moved)
        types.append(kind)
    return out, types


class TransformTool(Tool):
    """Save, load and apply a transform or per-frame shifts to Image, Labels, Points and Shapes layers."""

    title = "Apply transform"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self._loaded: dict[str, Recorded] = {}
        self.source = ComboBox(label="transform", choices=self._source_choices, nullable=True)
        self.source.tooltip = "a layer that records a transform or a drift correction, or a loaded JSON file"
        self.load_button = PushButton(text="Load transform (JSON)...")
        self.save_button = PushButton(text="Save transform (JSON)...")
        self.target = self.chooser("apply to", kinds=("image", "labels", "points", "shapes"))
        self.moving = self.chooser("moving image", nullable=True)
        self.moving.tooltip = ("the image the transform was estimated for (its pixel grid holds the layer's "
                               "pixels or coordinates); none: the layer's own")
        self.grid = self.chooser("onto the grid of", nullable=True)
        self.grid.tooltip = "the fixed image (its pixel size and origin); none: the moving image's grid"
        self.order = SpinBox(label="interpolation order", value=1, min=0, max=5)
        self.order.tooltip = "spline order for images; labels always use 0 (nearest neighbour)"
        self.apply_button = PushButton(text="Apply")
        self.add(self.source, self.load_button, self.save_button, self.target, self.moving,
                 self.grid, self.order, self.apply_button)
        narrow(self.source, self.target, self.moving, self.grid)
        self.source.changed.connect(lambda *_: self._chosen())
        self.load_button.changed.connect(lambda *_: self.load())
        self.save_button.changed.connect(lambda *_: self.save())
        self.apply_button.changed.connect(lambda *_: self.apply())
        self.listen(self.viewer.layers.events.inserted, self._prefer_latest)
        self.reset_choices()
        self._prefer_latest()
        self.target.prefer(self.viewer.layers.selection.active)

    # --- the transform ----------------------------------------------------------------------------
    def _source_choices(self, *_: Any) -> list[tuple[str, Any]]:
        layers = [(f"{layer.name}", layer) for layer in self.viewer.layers
                  if not record_of(layer).get("role") and _recorded_or_none(layer) is not None]
        return layers + [(name, recorded) for name, recorded in self._loaded.items()]

    def _prefer_latest(self, *_: Any) -> None:
        """With no transform chosen yet, choose the newest layer that records one."""
        if self.closed:
            return
        if self.source.value is None:
            layers = [value for _, value in self._source_choices() if not isinstance(value, Recorded)]
            if layers:
                self.source.value = layers[-1]
        self._chosen()

    def recorded(self) -> Recorded:
        """The transform or shifts chosen (``ValueError`` when there is none)."""
        value = self.source.value
        if value is None:
            raise ValueError("no transform: load a JSON file, or make one with the point tool, Align images "
                             "or Drift correction")
        return value if isinstance(value, Recorded) else recorded_in(value)

    def _chosen(self) -> None:
        if self.closed:
            return
        value = self.source.value
        if value is None:
            self.say("No transform yet: load one, or register layers first (point tool, Align images, Drift "
                     "correction).")
            return
        recorded = value if isinstance(value, Recorded) else _recorded_or_none(value)
        if recorded is None:
            return
        self.say(f"Transform: {recorded.describe()}.")
        for chooser, name in ((self.moving, recorded.moving), (self.grid, recorded.fixed)):
            if name in self.viewer.layers and self.viewer.layers[name] in chooser.layers():
                chooser.value = self.viewer.layers[name]

    @action
    def load(self, path: str | Path | None = None) -> Recorded | None:
        """Read a transform or shifts from a JSON file (asks for it without ``path``) and choose it."""
        path = Path(path) if path is not None else self._ask_path(save=False)
        if path is None:
            return None
        recorded = read_transform_file(path)
        name = f"{path.name} (file)"
        self._loaded[name] = recorded
        self.source.reset_choices()
        self.source.value = recorded
        self.say(f"Loaded {recorded.describe()}.")
        return recorded

    @action
    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the chosen transform or shifts to a JSON file (asks for it without ``path``)."""
        recorded = self.recorded()
        path = Path(path) if path is not None else self._ask_path(save=True)
        if path is None:
            return None
        written = write_transform_file(recorded, path.with_suffix(".json") if path.suffix != ".json" else path)
        self.say(f"Saved {written}.")
        return written

    def _ask_path(self, save: bool) -> Path | None:
        from qtpy.QtWidgets import QFileDialog

        if save:
            name, _ = QFileDialog.getSaveFileName(self.native, "Save transform", "transform.json", "JSON (*.json)")
        else:
            name, _ = QFileDialog.getOpenFileName(self.native, "Load transform", "", "JSON (*.json)")
        return Path(name) if name else None

    # --- applying ---------------------------------------------------------------------------------
    @action
    def apply(self) -> Any:
        """Apply the chosen transform to the chosen layer; returns the new layer."""
        recorded = self.recorded()
        target = self.target.value
        if target is None:
            raise ValueError("choose the layer to apply the transform to")
        if isinstance(target, (Points, Shapes)):
            return self._apply_to_coordinates(target, recorded)
        return self._apply_to_image(target, recorded)

    def _apply_to_image(self, target: Any, recorded: Recorded) -> Any:
        labels = isinstance(target, Labels)
        order = 0 if labels else int(self.order.value)
        data = _layers.source_data(target)
        channels = layer_channels(target)
        d = recorded.ndim
        spatial = target.ndim  # napari leaves an RGB layer's colour axis out
        if spatial < d:
            raise ValueError(f"{target.name!r} has {spatial} axes; a {d}-D transform needs at least {d}")
        grid = self.grid.value
        if recorded.transform is not None:
            op = catalog.get("apply_transform")
            # napari's layer.ndim leaves an RGB layer's colour axis out: the spatial shape comes before it
            shape = _layers.source_data(grid).shape[: grid.ndim][-d:] if grid is not None else recorded.output_shape
            params = {"transform": recorded.transform.to_dict(), "order": order,
                      "output_shape": None if shape is None else [int(s) for s in shape]}
        else:
            if spatial < 3:
                raise ValueError(f"per-frame shifts move the frames of a stack (T, ..., Y, X); {target.name!r} has "
                                 f"{spatial} axes")
            op = catalog.get("apply_drift")
            params = {"shifts": recorded.shifts.tolist(), "order": order}
        bound = op.bind(params)
        lazy = _backend.as_dask(data, chunks=_frame_chunks(data.shape, d, channels))
        kwargs = {} if channels is None else {"channel_axis": channels.axis, "rgb": channels.rgb}
        result = op.func(lazy, **bound, **kwargs)
        step = op.step(bound)
        step["result"] = {"from": recorded.origin}
        frame = _layers.regridded_kwargs(target, grid, d) if grid is not None else None
        display = {"rgb": True} if getattr(target, "rgb", False) else {}
        if not labels:
            display.update(colormap=target.colormap.name, contrast_limits=tuple(target.contrast_limits))
        layer = self.publish(result, source=target, name=f"{target.name} {op.name}", steps=[step],
                             kind="labels" if labels else "image", frame=frame, **display)
        self.say(f"Added {layer.name!r} (lazy): {recorded.describe()}.")
        return layer

    def _apply_to_coordinates(self, target: Any, recorded: Recorded) -> Any:
        n = target.ndim
        moving_layer = self.moving.value
        layer_frame = _frame(target, n)
        moving = _frame(moving_layer, n) if moving_layer is not None else layer_frame
        grid = self.grid.value
        fixed = _frame(grid, n) if grid is not None else moving
        frame_column = None
        if recorded.shifts is not None:
            stack_ndim = moving_layer.ndim if moving_layer is not None else n
            frame_column = n - stack_ndim

        def move(coords: np.ndarray) -> np.ndarray:
            return moved_coordinates(coords, recorded.transforms, layer=layer_frame, moving=moving, fixed=fixed,
                                     frame_column=frame_column)

        params = ({"transform": recorded.transform.to_dict()} if recorded.transform is not None
                  else {"shifts": recorded.shifts.tolist()})
        step = {"op": "warp_points", "params": params, "result": {"from": recorded.origin}}
        name = f"{target.name} warp_points"
        frame = _layers.spatial_kwargs(target, n)
        if isinstance(target, Points):
            coords = move(np.asarray(target.data, dtype=np.float64)) if len(target.data) else np.empty((0, n))
            layer = self.publish(coords, source=target, name=name, kind="points", steps=[step], frame=frame,
                                 features=target.features, size=target.size, face_color=target.face_color,
                                 border_color=target.border_color, symbol=target.symbol)
        else:
            shapes, types = moved_shapes(target.data, target.shape_type, move)
            layer = self.publish(shapes, source=target, name=name, kind="shapes", steps=[step], frame=frame,
                                 shape_type=types, edge_color=target.edge_color, face_color=target.face_color,
                                 edge_width=target.edge_width)
        self.say(f"Added {layer.name!r}: {len(target.data)} {'points' if isinstance(target, Points) else 'shapes'} "
                 f"moved ({recorded.describe()}).")
        return layer


def _recorded_or_none(layer: Any) -> Recorded | None:
    try:
        return recorded_in(layer)
    except (KeyError, TypeError, ValueError):  # a damaged record names no usable transform
        return None


def _frame_chunks(shape: tuple, frame_ndim: int, channels: Any) -> tuple:
    """One chunk per frame; an RGB image's frames keep their colour axis (the last) whole."""
    whole = frame_ndim + (1 if channels is not None and channels.rgb else 0)
    return tuple(1 if axis < len(shape) - whole else size for axis, size in enumerate(shape))
