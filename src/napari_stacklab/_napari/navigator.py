"""4D-STEM navigator: a scan image, the diffraction pattern under a movable marker, drawn detectors.

For a 4-D image layer ``(Sy, Sx, Ky, Kx)`` the navigator lays out three
labelled panels side by side in the canvas, fitted to it:

- ``"<data> scan"`` (left): the virtual-detector image of the scan, and on it
  ``"<data> position"``, a one-point Points layer: move the point and
- ``"<data> pattern"`` (right) shows the diffraction pattern at that scan position;
- ``"<data> mean pattern"`` (middle): the mean pattern, the background on which the
  detector is drawn, either as shapes in ``"<data> detector"`` (one circle: a
  bright-field disk; two circles: an annulus; rectangles, polygons or a mix:
  their union) or painted in the Labels layer ``"<data> detector mask"``.

Whenever the detector changes, the scan image is recomputed from the lazy
data in a worker thread (the window never freezes) and cached by detector
geometry, so going back to a detector already used costs nothing.

napari shows every layer in one world whose axes line up from the last one.
The 4-D layer's two scan axes (nm) and two detector axes (mrad) cannot share
that world with 2-D scan images (nm in the last two axes) without napari
dropping units ("Inconsistent units across layers"), and its scan axes would
add two sliders that move nothing on the panels. So while the navigator runs
it holds the 4-D layer: the layer leaves the layer list (untouched, still
lazy) and comes back at its place when the navigator is closed. The panels
are drawn in the scan's units; the detector-space panels are scaled to the
scan's height (their labels give the true detector pixel size). *Add virtual
image* and *Add centre of mass* compute the maps of the drawn detector on the
whole scan in a worker (progress, Cancel) and add them as the registry
operations' layers, recording their steps (exportable as a recipe).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, PushButton
from qtpy.QtCore import QTimer

from .. import _backend, catalog, stem
from . import _layers
from ._tool import Tool, action, publish, publish_operation

__all__ = ["StemNavigator"]

#: How many scan images the cache keeps.
CACHE_SIZE = 32
#: Gap between the panels, as a fraction of the scan width.
GAP = 0.12
PANELS = ("scan", "mean", "pattern", "mask", "detector", "position", "titles")


def _is_4d(layer: Any) -> bool:
    return layer.ndim == 4 and not layer.rgb


def _frame(scale: tuple, translate: tuple, units: tuple, labels: tuple) -> dict:
    return {"scale": tuple(scale), "translate": tuple(translate), "units": tuple(units),
            "axis_labels": tuple(labels), "rotate": np.eye(2), "shear": np.eye(2), "affine": np.eye(3)}


class StemNavigator(Tool):
    """Navigate a 4D-STEM scan: marker -> pattern, drawn detector -> virtual image, maps as layers."""

    title = "4D-STEM navigator"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.source = self.chooser("4D data", accept=_is_4d)
        self.mode = ComboBox(label="detector", choices=["shapes", "labels"], value="shapes")
        self.start_button = PushButton(text="Open navigator")
        self.image_button = PushButton(text="Add virtual image")
        self.com_button = PushButton(text="Add centre of mass")
        self.close_button = PushButton(text="Close navigator")
        self.update_button = PushButton(text="Update scan image")
        self.add(self.source, self.mode, self.start_button, self.update_button, self.image_button, self.com_button,
                 self.close_button)
        self.image_button.tooltip = "the drawn detector's image over the whole scan, as a layer with its recipe step"
        self.com_button.tooltip = "centre-of-mass maps around the centre of the drawn circle(s): the beam centre"
        self.close_button.tooltip = "remove the panels and put the 4-D layer back in the layer list"
        self.busy_widgets = [self.image_button, self.com_button]
        self.source.prefer(self.viewer.layers.selection.active)
        self.start_button.changed.connect(lambda *_: self.start())
        self.update_button.changed.connect(lambda *_: self.update_scan_image())
        self.image_button.changed.connect(lambda *_: self.add_virtual_image())
        self.com_button.changed.connect(lambda *_: self.add_center_of_mass())
        self.close_button.changed.connect(lambda *_: self.stop())
        self.mode.changed.connect(lambda *_: self.update_scan_image())
        self.listen(self.viewer.layers.events.removed, self._layer_removed)
        self._session = 0  # bumped whenever pending results must be discarded
        self._held: tuple | None = None  # (4-D layer, its index in the layer list)
        self._cache: OrderedDict = OrderedDict()
        self._workers: list = []
        self.layers: dict[str, Any] = {}
        self.data = None

    # --- holding the 4-D layer -----------------------------------------------------------------
    @property
    def held(self) -> Any:
        """The 4-D layer the navigator holds while it runs (``None`` when closed)."""
        return self._held[0] if self._held else None

    def _hold(self, layer: Any) -> None:
        index = self.viewer.layers.index(layer)
        self._held = (layer, index)
        self.viewer.layers.remove(layer)

    def _give_back(self) -> None:
        if self._held is None:
            return
        layer, index = self._held
        self._held = None
        if layer not in self.viewer.layers:
            self.viewer.layers.insert(min(index, len(self.viewer.layers)), layer)

    def _layer_removed(self, event: Any) -> None:
        if self.layers and any(event.value is layer for layer in self.layers.values()):
            self._end(f"the navigator's layer {event.value.name!r} was removed; the navigator stopped")

    @action
    def stop(self) -> None:
        """Close the navigator: its panels go, the 4-D layer comes back to its place."""
        if not self.layers:
            raise ValueError("the navigator is not open")
        self._end("navigator closed")

    def on_close(self) -> None:
        self._end("navigator closed", give_back=not self.closed)

    def _end(self, message: str, give_back: bool = True) -> None:
        """Stop navigating: pending images are discarded, the panels removed, the 4-D layer put back."""
        self._session += 1
        for worker in list(self._workers):
            worker.quit()
        self.cancel()
        panels, self.layers = self.layers, {}
        for key, handler in self._handlers().items():
            if key[0] in panels:
                self.unlisten(getattr(panels[key[0]].events, key[1]), handler)
        if give_back:
            for layer in panels.values():
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)
            self._give_back()
        self.data = None
        self.say(message)

    def _handlers(self) -> dict:
        return {("position", "data"): self._on_marker, ("detector", "data"): self._on_detector,
                ("mask", "paint"): self._on_detector, ("mask", "data"): self._on_detector}

    # --- building the view ---------------------------------------------------------------------
    @action
    def start(self, layer: Any = None) -> None:
        """Open the navigator on ``layer`` (default: the chosen 4-D layer)."""
        layer = layer if layer is not None else self.source.value
        if layer is None:
            raise ValueError("open a 4-D layer (scan y, scan x, detector y, detector x) first")
        if self.layers:
            self._end("")
        self.data = _layers.source_data(layer)
        self._cache.clear()
        self._hold(layer)
        try:
            self._build(layer)
        except Exception:
            self._end("")  # nothing half-built stays; the 4-D layer goes back
            raise

    def _build(self, layer: Any) -> None:
        name = layer.name
        sy, sx, ky, kx = self.data.shape
        scan = _layers.spatial_kwargs(layer, 4)
        units, labels = scan["units"][:2], scan["axis_labels"][:2]
        scan_scale = tuple(float(s) for s in scan["scale"][:2])
        height, width = sy * scan_scale[0], sx * scan_scale[1]
        pixel = height / ky  # the patterns are drawn as tall as the scan
        scan_frame = _frame(scan_scale, (0.0, 0.0), units, labels)
        mean_frame = _frame((pixel, pixel), (0.0, width * (1 + GAP)), units, labels)
        pattern_left = width * (1 + GAP) + kx * pixel * (1 + GAP)
        pattern_frame = _frame((pixel, pixel), (0.0, pattern_left), units, labels)
        center = ((ky - 1) / 2, (kx - 1) / 2)
        radius = min(ky, kx) / 8
        blank = np.zeros((ky, kx), np.float32)
        self._k_unit = f"{float(layer.scale[-1]):g} {_unit(layer.units[-1])}/px"
        above, below = -0.06 * height, 1.06 * height  # the middle title goes below: long titles never touch
        titles = np.array([[above, width / 2], [below, width * (1 + GAP) + kx * pixel / 2],
                           [above, pattern_left + kx * pixel / 2]])
        panel = {"source": layer, "role": "panel"}
        self.layers = {
            "scan": publish(self.viewer, np.zeros((sy, sx), np.float32), name=f"{name} scan", frame=scan_frame,
                            colormap="gray", **panel),
            "mean": publish(self.viewer, blank, name=f"{name} mean pattern", frame=mean_frame, colormap="magma",
                            **panel),
            "pattern": publish(self.viewer, blank, name=f"{name} pattern", frame=pattern_frame, colormap="magma",
                               **panel),
            "mask": publish(self.viewer, np.zeros((ky, kx), np.int32), name=f"{name} detector mask", kind="labels",
                            frame=mean_frame, **panel),
            "detector": publish(self.viewer, [_circle(center, radius)], name=f"{name} detector", kind="shapes",
                                frame=mean_frame, shape_type="ellipse", edge_color="cyan", face_color="transparent",
                                edge_width=0.5, **panel),
            "position": publish(self.viewer, np.array([[(sy - 1) / 2, (sx - 1) / 2]]), name=f"{name} position",
                                kind="points", frame=scan_frame, face_color="red", size=2, **panel),
            "titles": publish(self.viewer, titles, name=f"{name} panel titles", kind="points", frame=_frame(
                (1.0, 1.0), (0.0, 0.0), units, labels), size=0.0, features={"title": [
                    "scan image", "mean pattern", "pattern"]},
                text={"string": "{title}", "color": "white", "size": 10, "anchor": "center"}, **panel),
        }
        self.layers["titles"].editable = False
        self._compute(stem.mean_pattern(self.data), self._show_mean)
        for (key, event), handler in self._handlers().items():
            self.listen(getattr(self.layers[key].events, event), handler)
        self.viewer.layers.selection.active = self.layers["detector"]
        self.viewer.reset_view()
        QTimer.singleShot(0, self._fit)  # again once a dock opened with the navigator has taken its room
        self.show_position()
        self.update_scan_image()

    def _fit(self) -> None:
        if self.layers and not self.closed:
            self.viewer.reset_view()

    # --- the marker ----------------------------------------------------------------------------
    def position(self) -> tuple[int, int]:
        """Scan position ``(iy, ix)`` of the marker (its last point), clipped to the scan."""
        points = self.layers["position"].data
        sy, sx = self.data.shape[:2]
        if len(points) == 0:
            return (sy // 2, sx // 2)
        iy, ix = np.round(points[-1][-2:]).astype(int)
        return int(np.clip(iy, 0, sy - 1)), int(np.clip(ix, 0, sx - 1))

    def show_position(self) -> None:
        """Show the diffraction pattern under the marker (right of the mean pattern)."""
        iy, ix = self.position()
        pattern = self.layers["pattern"]
        pattern.data = frame = _backend.materialize(self.data[iy, ix])
        pattern.contrast_limits = _limits(frame)
        titles = self.layers["titles"]
        titles.features = {"title": ["scan image", f"mean pattern ({self._k_unit})", f"pattern at ({iy}, {ix})"]}
        titles.refresh()
        self.say(f"pattern at scan position ({iy}, {ix})")

    def _on_marker(self, event: Any = None) -> None:
        if _in_progress(event) or not self.layers or len(self.layers["position"].data) == 0:
            return
        self.show_position()

    # --- the detector --------------------------------------------------------------------------
    def detector(self) -> dict:
        """The drawn detector as :func:`napari_stacklab.stem.virtual_detector` parameters."""
        if not self.layers:
            raise ValueError("open the navigator first")
        ky, kx = self.data.shape[2:]
        if self.mode.value == "labels":
            mask = np.asarray(self.layers["mask"].data) > 0
            if not mask.any():
                raise ValueError("paint the detector in the detector mask layer first")
            return {"mask": mask}
        params = self._drawn_detector(ky, kx)
        covered = params["mask"] if "mask" in params else stem.detector_mask((ky, kx), **params)
        if params.get("outer", 1.0) <= 0 or not np.any(covered):
            raise ValueError("the detector covers no pixel of the pattern (zero area, or drawn outside it): "
                             "draw it on the mean pattern")
        return params

    def _drawn_detector(self, ky: int, kx: int) -> dict:
        shapes = self.layers["detector"]
        if len(shapes.data) == 0:
            raise ValueError("draw a detector (a circle, two circles, or any shapes) on the mean pattern")
        if len(shapes.data) <= 2 and all(t == "ellipse" for t in shapes.shape_type):
            circles = sorted((_circle_of(v) for v in shapes.data), key=lambda c: c[1])
            center, outer = circles[-1]
            inner = circles[0][1] if len(circles) == 2 else 0.0
            return {"inner": round(inner, 2), "outer": round(outer, 2),
                    "center": (round(center[0], 2), round(center[1], 2))}
        # napari rasterises a shape drawn with zero area (a click) to one pixel: it is no detector
        drawn = [np.ptp(np.asarray(v)[:, -2:], axis=0).min() > 0 for v in shapes.data]
        masks = shapes.to_masks(mask_shape=(ky, kx))[np.asarray(drawn, bool)]
        return {"mask": np.any(masks, axis=0) if len(masks) else np.zeros((ky, kx), bool)}

    def _key(self, params: dict) -> tuple:
        if "mask" in params:
            return ("mask", hashlib.sha1(np.packbits(params["mask"]).tobytes()).hexdigest())
        return ("circles", params["inner"], params["outer"], params["center"])

    def _on_detector(self, event: Any = None) -> None:
        if _in_progress(event):
            return
        self.update_scan_image()

    def update_scan_image(self) -> Any:
        """Recompute the scan image for the drawn detector (cached; in a worker thread)."""
        if self.data is None:
            return None
        try:
            params = self.detector()
        except ValueError as exc:
            self.say(str(exc))
            return None
        key = self._key(params)
        if key in self._cache:
            self._cache.move_to_end(key)
            self._show_scan(key, self._cache[key])
            return None
        self.say("computing the scan image...")
        return self._compute(
            stem.virtual_detector(self.data, **params), lambda image, key=key: self._store(key, image)
        )

    def _compute(self, lazy: Any, done: Any) -> Any:
        """Compute a small lazy result in a worker thread; ``done(result)`` runs in the GUI thread."""
        from napari.qt.threading import thread_worker

        worker = thread_worker(_backend.materialize, start_thread=False)(lazy)
        session = self._session
        worker.returned.connect(lambda result: self._session == session and done(result))
        worker.errored.connect(lambda exc: self._session == session and self.say(f"failed: {exc}"))
        self._workers.append(worker)
        worker.finished.connect(lambda: self._workers.remove(worker))
        worker.start()
        return worker

    @property
    def busy(self) -> bool:
        """True while a pattern, scan image or map is being computed."""
        return bool(self._workers) or self.running

    def _show_mean(self, mean: np.ndarray) -> None:
        self.layers["mean"].data = mean
        self.layers["mean"].contrast_limits = _limits(mean)

    def _store(self, key: tuple, image: np.ndarray) -> None:
        self._cache[key] = image
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        self._show_scan(key, image)

    def _show_scan(self, key: tuple, image: np.ndarray) -> None:
        scan = self.layers["scan"]
        scan.data = image
        scan.contrast_limits = _limits(image)
        scan.metadata["stacklab"]["detector"] = key
        self.say(f"scan image: {_describe(key)}")

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    # --- maps as layers ----------------------------------------------------------------------------
    def detector_operation(self) -> tuple[Any, dict, dict]:
        """``(operation, params, refs)`` computing the drawn detector's image on the whole scan."""
        params = self.detector()
        if "mask" not in params:
            if params["inner"] == 0:
                return catalog.get("virtual_bright_field"), {"radius": params["outer"],
                                                               "center": params["center"]}, {}
            return catalog.get("annular_dark_field"), params, {}
        mask_layer = self.layers["mask"]
        if self.mode.value == "shapes":  # the drawn union becomes the mask layer the step refers to
            mask_layer.data = params["mask"].astype(np.int32)
        return catalog.get("virtual_detector"), {"mask": params["mask"]}, {"mask": mask_layer.name}

    @action
    def add_virtual_image(self) -> Any:
        """Compute the drawn detector's image on the whole scan (worker) and add it as a layer."""
        op, params, refs = self.detector_operation()
        return self._run_operation(op, params, refs)

    @action
    def add_center_of_mass(self) -> Any:
        """Centre-of-mass maps around the detector's centre (the beam centre), added as layers."""
        params = self.detector()
        if "mask" in params:
            raise ValueError("draw one or two circles on the beam: their centre is the beam centre")
        return self._run_operation(catalog.get("center_of_mass"), {"center": params["center"]}, {})

    def _run_operation(self, op: Any, params: dict, refs: dict) -> Any:
        from .widgets import compute_all

        source, data = self.held, self.data
        bound = op.bind(params)
        return self.launch(
            compute_all, op, data, bound,
            on_result=lambda result: self._show_operation(op, source, data, bound, refs, result),
            description=f"{op.title} of {source.name!r}",
        )

    def _show_operation(self, op: Any, source: Any, data: Any, params: dict, refs: dict, result: Any) -> None:
        layers = publish_operation(self.viewer, op, result, source=source, params=params, refs=refs,
                                   in_shape=tuple(data.shape))
        for key in ("position", "titles"):  # the maps lie on the scan panel: keep the marker and titles on top
            if self.layers and self.layers[key] in self.viewer.layers:
                self.viewer.layers.move(self.viewer.layers.index(self.layers[key]), len(self.viewer.layers))
        centre = params.get("center")
        self.say(f"added {', '.join(repr(layer.name) for layer in layers)}"
                 + (f" (centre {centre[0]:g}, {centre[1]:g} px)" if centre is not None else ""))


def _unit(unit: Any) -> str:
    try:
        return format(unit, "~")
    except (TypeError, ValueError):
        return str(unit)


def _circle(center: tuple, radius: float) -> np.ndarray:
    """napari ellipse data (its bounding-box corners) for a circle."""
    cy, cx = center
    return np.array([[cy - radius, cx - radius], [cy - radius, cx + radius],
                     [cy + radius, cx + radius], [cy + radius, cx - radius]])


def _circle_of(vertices: np.ndarray) -> tuple[tuple[float, float], float]:
    """Centre and mean radius of an ellipse given by its bounding-box corners."""
    vertices = np.asarray(vertices)[:, -2:]
    center = vertices.mean(axis=0)
    half = (vertices.max(axis=0) - vertices.min(axis=0)) / 2
    return (float(center[0]), float(center[1])), float(half.mean())


def _in_progress(event: Any) -> bool:
    """A drag or an edit still under way (napari reports ``adding``/``changing``/``removing`` first)."""
    return str(getattr(event, "action", "")) in ("adding", "changing", "removing")


def _limits(image: np.ndarray) -> tuple[float, float]:
    low, high = (float(v) for v in np.nanpercentile(image, [0.5, 99.5]))
    return (low, high) if high > low else (low, low + 1.0)


def _describe(key: tuple) -> str:
    if key[0] == "mask":
        return "detector mask"
    _, inner, outer, center = key
    kind = "disk" if inner == 0 else "annulus"
    return f"{kind} r = {inner:g}..{outer:g} px around ({center[0]:g}, {center[1]:g})"
