"""4D-STEM navigator: a scan image, the diffraction pattern under a movable marker, drawn detectors.

For a 4-D image layer ``(Sy, Sx, Ky, Kx)`` the navigator adds, side by side
in the canvas:

- ``"<data> scan"``: the virtual-detector image of the scan, and on it
  ``"<data> position"``, a one-point Points layer: move the point and
- ``"<data> pattern"`` (right) shows the diffraction pattern at that scan position;
- ``"<data> mean pattern"`` (middle): the mean pattern, the background on which the
  detector is drawn, either as shapes in ``"<data> detector"`` (one circle: a
  bright-field disk; two circles: an annulus; rectangles, polygons or a mix:
  their union) or painted in the Labels layer ``"<data> detector mask"``.

Whenever the detector changes, the scan image is recomputed from the lazy
data in a worker thread (the GUI never freezes) and cached by detector
geometry, so going back to a detector already used costs nothing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton
from napari.layers import Image

from .. import _backend, stem
from .widgets import _DetachWatcher

__all__ = ["StemNavigator"]

#: How many scan images the cache keeps.
CACHE_SIZE = 32
#: Gap between the scan image and the detector-space layers, as a fraction of the scan width.
GAP = 0.08


class StemNavigator(Container):
    """Navigate a 4D-STEM scan: marker -> pattern, drawn detector -> virtual image."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.source = ComboBox(label="4D data", choices=self._choices)
        self.mode = ComboBox(label="detector", choices=["shapes", "labels"], value="shapes")
        self.start_button = PushButton(text="Open navigator")
        self.update_button = PushButton(text="Update scan image")
        self.status = Label(value="")
        self.extend([self.source, self.mode, self.start_button, self.update_button, self.status])
        self.start_button.changed.connect(lambda *_: self.start())
        self.update_button.changed.connect(lambda *_: self.update_scan_image())
        self.mode.changed.connect(lambda *_: self.update_scan_image())
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).connect(self._layers_changed)
        self.native.destroyed.connect(self._disconnect)
        self._detach_watcher = _DetachWatcher(self.native, self._on_dock_closed)
        self._closed = False  # the Qt widget is gone: nothing may touch it any more
        self._session = 0  # bumped whenever pending results must be discarded
        self._source = None
        self._cache: OrderedDict = OrderedDict()
        self._workers: list = []
        self.layers: dict[str, Any] = {}
        self.data = None
        self.reset_choices()

    # --- layer choice ------------------------------------------------------------------------
    def _choices(self, *_: Any) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image) and layer.ndim == 4]

    def _layers_changed(self, event: Any = None) -> None:
        if getattr(event, "type", None) == "removed" and self._source is not None and event.value is self._source:
            self._end(f"{event.value.name!r} was removed; the navigator stopped")
        if not self._closed:
            self.reset_choices()

    def _disconnect(self, *_: Any) -> None:
        """The Qt widget was destroyed (e.g. the viewer closed): drop pending results, let go of the viewer."""
        self._closed = True
        self._end("")
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).disconnect(self._layers_changed)

    def _on_dock_closed(self) -> None:
        """The dock was closed: the navigator stops following its layers (they stay as they are)."""
        self._end("navigator closed")

    def _end(self, message: str) -> None:
        """Stop navigating: pending scan images are discarded and the layers no longer drive computations."""
        self._session += 1
        for worker in list(self._workers):
            worker.quit()
        if self.layers:
            self.layers["position"].events.data.disconnect(self._on_marker)
            self.layers["detector"].events.data.disconnect(self._on_detector)
            self.layers["mask"].events.paint.disconnect(self._on_detector)
            self.layers["mask"].events.data.disconnect(self._on_detector)
        self.layers = {}
        self.data = None
        self._source = None
        self._say(message)

    def _say(self, text: str) -> None:
        if not self._closed:
            self.status.value = text

    # --- building the view ---------------------------------------------------------------------
    def start(self, layer: Any = None) -> None:
        """Open the navigator on ``layer`` (default: the chosen 4-D layer)."""
        layer = layer if layer is not None else self.source.value
        if layer is None:
            self.status.value = "open a 4-D layer (scan y, scan x, detector y, detector x) first"
            return
        if self.layers:
            self._end("")
        self.data = layer.data
        self._source = layer
        self._cache.clear()
        name = layer.name
        sy, sx, ky, kx = self.data.shape
        scan_scale = tuple(float(s) for s in layer.scale[:2])
        scan_width = sx * scan_scale[1]
        detector_pixel = sy * scan_scale[0] / ky  # the pattern is drawn as tall as the scan
        detector_frame = {
            "scale": (detector_pixel, detector_pixel),
            "translate": (0.0, scan_width * (1 + GAP)),
        }
        pattern_frame = {
            "scale": (detector_pixel, detector_pixel),
            "translate": (0.0, scan_width * (1 + 2 * GAP) + kx * detector_pixel),
        }
        center = ((ky - 1) / 2, (kx - 1) / 2)
        radius = min(ky, kx) / 8
        layer.visible = False
        blank = np.zeros((ky, kx), np.float32)
        self.layers = {
            "scan": self._new_image(f"{name} scan", np.zeros((sy, sx), np.float32), scale=scan_scale, colormap="gray"),
            "mean": self._new_image(f"{name} mean pattern", blank, **detector_frame, colormap="magma"),
            "pattern": self._new_image(f"{name} pattern", blank, **pattern_frame, colormap="magma"),
            "mask": self._new_labels(f"{name} detector mask", np.zeros((ky, kx), np.int32), **detector_frame),
            "detector": self._new_shapes(f"{name} detector", [_circle(center, radius)], **detector_frame),
            "position": self._new_points(f"{name} position", [((sy - 1) / 2, (sx - 1) / 2)], scale=scan_scale),
        }
        self._compute(stem.mean_pattern(self.data), self._show_mean)
        self.layers["position"].events.data.connect(self._on_marker)
        self.layers["detector"].events.data.connect(self._on_detector)
        self.layers["mask"].events.paint.connect(self._on_detector)
        self.layers["mask"].events.data.connect(self._on_detector)
        self.viewer.layers.selection.active = self.layers["detector"]
        self.viewer.reset_view()
        self.show_position()
        self.update_scan_image()

    def _add(self, kind: str, name: str, data: Any, **kwargs: Any) -> Any:
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        return getattr(self.viewer, f"add_{kind}")(data, name=name, **kwargs)

    def _new_image(self, name: str, data: Any, **kwargs: Any) -> Any:
        return self._add("image", name, data, **kwargs)

    def _new_labels(self, name: str, data: Any, **kwargs: Any) -> Any:
        return self._add("labels", name, data, **kwargs)

    def _new_shapes(self, name: str, data: list, **kwargs: Any) -> Any:
        return self._add("shapes", name, data, shape_type="ellipse", edge_color="cyan", face_color="transparent",
                         edge_width=0.5, **kwargs)

    def _new_points(self, name: str, data: list, **kwargs: Any) -> Any:
        return self._add("points", name, np.asarray(data, float), face_color="red", size=2, **kwargs)

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
        self.status.value = f"pattern at scan position ({iy}, {ix})"

    def _on_marker(self, event: Any = None) -> None:
        if _in_progress(event) or len(self.layers["position"].data) == 0:
            return
        self.show_position()

    # --- the detector --------------------------------------------------------------------------
    def detector(self) -> dict:
        """The drawn detector as :func:`napari_stacklab.stem.virtual_detector` parameters."""
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
            self._say(str(exc))
            return None
        key = self._key(params)
        if key in self._cache:
            self._cache.move_to_end(key)
            self._show_scan(key, self._cache[key])
            return None
        self._say("computing the scan image...")
        return self._compute(
            stem.virtual_detector(self.data, **params), lambda image, key=key: self._store(key, image)
        )

    def _compute(self, lazy: Any, done: Any) -> Any:
        """Compute a small lazy result in a worker thread; ``done(result)`` runs in the GUI thread."""
        from napari.qt.threading import thread_worker

        worker = thread_worker(_backend.materialize, start_thread=False)(lazy)
        session = self._session
        worker.returned.connect(lambda result: self._session == session and done(result))
        worker.errored.connect(lambda exc: self._session == session and self._say(f"failed: {exc}"))
        self._workers.append(worker)
        worker.finished.connect(lambda: self._workers.remove(worker))
        worker.start()
        return worker

    @property
    def busy(self) -> bool:
        """True while a pattern or scan image is being computed."""
        return bool(self._workers)

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
        scan.metadata["detector"] = key
        self._say(f"scan image: {_describe(key)}")

    @property
    def cache_size(self) -> int:
        return len(self._cache)


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
