"""Point-based registration of a moving image onto a fixed image, live and non-destructive.

The tool adds two paired, colour-coded Points layers, ``"<fixed> points"``
(magenta) and ``"<moving> points"`` (green), numbered by pair, in the
physical frame (pixel size, units, axis names) of their images. After each
click the other layer becomes active, so clicking alternates fixed, moving,
fixed, moving... As soon as the chosen model has enough pairs it is fitted
and shown by setting the moving layer's ``affine`` (the data are not
touched); the table lists every pair's residual in pixels and in the moving
layer's physical units, with RANSAC outlier flags. "Auto-match" finds the
pairs itself (matched ORB or SIFT keypoints, RANSAC) on the displayed
planes, in a worker, and puts the inlier matches into the two layers as
numbered pairs to review, delete and refit. "Refine with ECC" polishes the
point fit on the displayed planes (in a worker), "Apply" adds a resampled
(lazy) layer that records the transform as a recipe step, "Save transform"
writes it as JSON.

Only the spatial axes count: the last two axes (three when the viewer shows
3-D) of each layer; time and channel axes of a stack are never fitted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, PushButton, SpinBox, Table
from napari.layers import Points

from .. import _backend
from ..register import DETECTORS, ECC_MODELS, MODELS, Transform, ecc, from_features, from_points, min_pairs, warp
from . import _layers
from ._tool import Tool, action
from .align_widget import transform_step
from .table import fit_table
from .transform_tool import Recorded, narrow, write_transform_file

__all__ = ["PointRegistrationWidget", "spatial_affine"]

FIXED_COLOR, MOVING_COLOR, OUTLIER_COLOR = "magenta", "lime", "red"
COLUMNS = ["pair", "residual (px)", "residual (units)", "inlier", "fixed", "moving"]


def spatial_affine(layer: Any, spatial: np.ndarray) -> np.ndarray:
    """A full ``(ndim + 1)`` affine for ``layer`` acting as ``spatial`` on its trailing axes."""
    d = spatial.shape[0] - 1
    full = np.eye(layer.ndim + 1)
    axes = list(range(layer.ndim - d, layer.ndim)) + [layer.ndim]
    full[np.ix_(axes, axes)] = spatial
    return full


def refine_with_ecc(fixed: Any, moving: Any, model: str, initial: Transform) -> Transform:
    """Worker task: ECC from the point fit on the two displayed frames."""
    return ecc(np.asarray(_backend.materialize(fixed)), np.asarray(_backend.materialize(moving)), model=model,
               initial=initial, levels=2)


def match_features(fixed: Any, moving: Any, model: str, detector: str, max_pairs: int) -> tuple:
    """Worker task: matched keypoints of the two displayed frames, RANSAC, and at most ``max_pairs`` inlier pairs.

    Returns ``(fixed points, moving points, transform)``. The pairs kept are
    spread over the image (farthest-point order from the inliers' centre),
    so the few a user reviews still constrain the whole field.
    """
    try:
        found = from_features(np.asarray(_backend.materialize(fixed)), np.asarray(_backend.materialize(moving)),
                              model=model, detector=detector)
    except ValueError as exc:  # too few matches: said in the tool's words
        found = str(exc).removeprefix("from_features: ").split("; try ")[0]
        raise ValueError(f"Auto-match: {found}. Try the other detector, or click point pairs.") from None
    fixed_pts, moving_pts = found.fixed_points[found.inliers], found.moving_points[found.inliers]
    keep = spread(fixed_pts, max_pairs)
    return fixed_pts[keep], moving_pts[keep], found


def spread(points: np.ndarray, count: int) -> np.ndarray:
    """Indices of at most ``count`` of ``points`` far apart from each other (greedy farthest-point order)."""
    if len(points) <= count:
        return np.arange(len(points))
    chosen = [int(np.argmin(np.linalg.norm(points - points.mean(axis=0), axis=1)))]
    distance = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < count:
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return np.array(chosen)


class PointRegistrationWidget(Tool):
    """Register two image layers from clicked point pairs (with undo, residuals and ECC refinement)."""

    title = "Point registration"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.fixed = self.chooser("fixed")
        self.moving = self.chooser("moving")
        self.model = ComboBox(label="model", choices=list(MODELS), value="affine")
        self.order = SpinBox(label="polynomial order", value=2, min=2, max=3)
        self.robust = CheckBox(text="RANSAC (flag outliers)", value=False)
        self.threshold = FloatSpinBox(label="inlier within (px)", value=3.0, min=0.1, max=100.0, step=0.5)
        self.threshold.tooltip = "RANSAC threshold: a pair farther than this from the fit is an outlier"
        self.start_button = PushButton(text="Start: add point layers")
        self.detector = ComboBox(label="detector", choices=list(DETECTORS), value="orb")
        self.detector.tooltip = "ORB: fast; SIFT: slower, more distinctive and more accurate"
        self.max_pairs = SpinBox(label="pairs at most", value=40, min=3, max=1000)
        self.max_pairs.tooltip = "Auto-match keeps this many inlier pairs, spread over the image, for review"
        self.match_button = PushButton(text="Auto-match (keypoints)")
        self.match_button.tooltip = ("find point pairs automatically on the shown planes: matched keypoints "
                                     "and RANSAC; replaces the current pairs")
        self.undo_button = PushButton(text="Undo last point")
        self.pair = SpinBox(label="pair to delete", value=1, min=1, max=10_000)
        self.delete_button = PushButton(text="Delete pair")
        self.refine_button = PushButton(text="Refine with ECC")
        self.apply_button = PushButton(text="Apply (resampled layer)")
        self.save_button = PushButton(text="Save transform (JSON)...")
        self.table = Table(value={c: [] for c in COLUMNS})
        fit_table(self.table.native)
        self.add(self.fixed, self.moving, self.model, self.order, self.robust, self.threshold, self.start_button,
                 self.detector, self.max_pairs, self.match_button, self.undo_button, self.pair, self.delete_button,
                 self.refine_button, self.apply_button, self.save_button, self.table)
        narrow(self.fixed, self.moving)
        self.busy_widgets = [self.refine_button, self.match_button]
        self.distinct(self.fixed, self.moving)
        self.say("Choose the fixed and moving layers, then Start.")
        self.transform: Transform | None = None
        self.rows: list[list] = []
        self.points: dict[str, Any] = {}
        self.points_images: dict[str, Any] = {}
        self._handlers: dict = {}
        self._history: list[str] = []
        self._counts: dict[str, int] = {}
        self.start_button.changed.connect(lambda *_: self.start())
        self.undo_button.changed.connect(lambda *_: self.undo())
        self.delete_button.changed.connect(lambda *_: self.delete_pair(self.pair.value))
        self.refine_button.changed.connect(lambda *_: self.refine())
        self.match_button.changed.connect(lambda *_: self.auto_match())
        self.apply_button.changed.connect(lambda *_: self.apply())
        self.save_button.changed.connect(lambda *_: self.save_transform())
        for widget in (self.model, self.order, self.robust, self.threshold):
            widget.changed.connect(lambda *_: self.fit())
        self.listen(self.viewer.layers.events.removed, self._on_removed)

    # -- layers ------------------------------------------------------------
    @property
    def fixed_layer(self) -> Any:
        return self.points_images["fixed"]

    @property
    def moving_layer(self) -> Any:
        return self.points_images["moving"]

    @property
    def ndim(self) -> int:
        """Spatial dimensions fitted: 3 for volumes shown in 3-D, else 2."""
        images = self.points_images or {"fixed": self.fixed.value, "moving": self.moving.value}
        volumes = all(layer is not None and layer.ndim >= 3 for layer in images.values())
        return 3 if self.viewer.dims.ndisplay == 3 and volumes else 2

    @action
    def start(self) -> None:
        """Create (or reuse) the two paired Points layers and make the fixed one active in add mode."""
        fixed, moving = self.fixed.value, self.moving.value
        if fixed is None or moving is None or fixed is moving:
            raise ValueError("choose two different image layers (fixed and moving)")
        for layer in self.points.values():
            self.unlisten(layer.events.data, self._handlers[layer])
        self.points_images = {"fixed": fixed, "moving": moving}
        self.points, self._handlers, self._history = {}, {}, []
        for role, image, color in (("fixed", fixed, FIXED_COLOR), ("moving", moving, MOVING_COLOR)):
            name = f"{image.name} points"
            existing = self.viewer.layers[name] if name in self.viewer.layers else None
            if isinstance(existing, Points) and existing.ndim == image.ndim:
                layer = existing
            else:
                layer = self.publish(
                    np.empty((0, image.ndim)), source=image, name=name, kind="points", role="point pairs",
                    face_color=color, border_color="white", size=8, features={"pair": np.zeros(0, int)},
                    text={"string": "{pair}", "color": color, "size": 12, "anchor": "upper_left"},
                )
            self.points[role] = layer
            self._counts[role] = len(layer.data)
            self._handlers[layer] = lambda event=None, role=role: self._on_points(role)
            self.listen(layer.events.data, self._handlers[layer])
        self._renumber()
        self._activate("fixed")
        self.say("Click a point in the fixed image, then the same feature in the moving image.")
        self.fit()

    def _on_removed(self, event: Any) -> None:
        if any(event.value is layer for layer in (*self.points.values(), *self.points_images.values())):
            for layer in self.points.values():
                self.unlisten(layer.events.data, self._handlers[layer])
            self.points, self.points_images, self.transform = {}, {}, None
            self.say(f"{event.value.name!r} was removed; press Start to pick points again")

    def _activate(self, role: str) -> None:
        layer = self.points[role]
        self.viewer.layers.selection.active = layer
        layer.mode = "add"

    # -- points ------------------------------------------------------------
    def _on_points(self, role: str) -> None:
        if role not in self.points:
            return
        n = len(self.points[role].data)
        before = self._counts.get(role, 0)
        self._counts[role] = n
        if n > before:
            self._history.append(role)
            self._activate("moving" if role == "fixed" else "fixed")
        self._renumber()
        self.fit()

    def _renumber(self) -> None:
        for layer in self.points.values():
            n = len(layer.data)
            if len(layer.features) != n or (n and list(layer.features["pair"]) != list(range(1, n + 1))):
                layer.features = {"pair": np.arange(1, n + 1)}

    def _spatial(self, role: str) -> np.ndarray:
        data = np.asarray(self.points[role].data, dtype=np.float64)
        return data[:, data.shape[1] - self.ndim :]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Complete point pairs ``(fixed, moving)`` in pixel coordinates of the spatial axes."""
        fixed, moving = self._spatial("fixed"), self._spatial("moving")
        n = min(len(fixed), len(moving))
        return fixed[:n], moving[:n]

    @action
    def undo(self) -> None:
        """Remove the most recently clicked point (fixed or moving)."""
        if not self.points:
            raise ValueError("press Start first: there are no point layers yet")
        while self._history:
            role = self._history.pop()
            layer = self.points[role]
            if len(layer.data):
                self._counts[role] = len(layer.data) - 1
                layer.data = layer.data[:-1]
                self._activate(role)
                return
        self.say("Nothing to undo.")

    @action
    def delete_pair(self, pair: int) -> None:
        """Delete pair number ``pair`` (1-based) from both layers."""
        if not self.points:
            raise ValueError("press Start first: there are no point layers yet")
        for role, layer in self.points.items():
            if pair <= len(layer.data):
                self._counts[role] = len(layer.data) - 1
                layer.data = np.delete(np.asarray(layer.data), pair - 1, axis=0)
        self._history = [r for r in self._history if len(self.points[r].data)]
        self._renumber()
        self.fit()

    @action
    def auto_match(self) -> Any:
        """Find point pairs on the shown planes from matched keypoints (in a worker); returns the worker.

        The inlier matches replace the current pairs, numbered, so they can be
        reviewed (residuals, RANSAC flags), deleted and refitted, then refined
        with ECC.
        """
        chosen = {"fixed": self.fixed.value, "moving": self.moving.value}
        if not self.points or any(self.points_images.get(role) is not layer for role, layer in chosen.items()):
            self.start()  # no point layers yet, or for other images than those chosen now
            if not self.points:
                return None
        if self.ndim != 2:
            raise ValueError("Auto-match works on 2-D planes; show the viewer in 2-D")
        # keypoints find a matrix model; a polynomial is then fitted to the pairs they give
        model = self.model.value if self.model.value != "polynomial" else "affine"
        fixed, moving = self.fixed_layer, self.moving_layer
        return self.launch(
            match_features, self.shown_frame(fixed), self.shown_frame(moving), model, self.detector.value,
            int(self.max_pairs.value), on_result=self._matched,
            description=f"Auto-matching {self.detector.value.upper()} keypoints", inputs=[fixed, moving],
        )

    def _matched(self, found: tuple) -> None:
        fixed_pts, moving_pts, transform = found
        if set(self.points) != {"fixed", "moving"}:
            return
        for role, pts, image in (("fixed", fixed_pts, self.fixed_layer), ("moving", moving_pts, self.moving_layer)):
            layer = self.points[role]
            leading = np.asarray(_layers.shown_index(self.viewer, image, 2), dtype=np.float64)
            data = np.c_[np.tile(leading, (len(pts), 1)), pts] if len(leading) else pts
            self._counts[role] = len(data)  # set before the data: the click handler sees no new point
            layer.data = data
        self._history = []
        self._renumber()
        self.fit()
        meta = transform.metadata
        self.say(f"Auto-match: {len(fixed_pts)} pairs shown of {meta['inliers']} inliers ({meta['matches']} "
                 f"matches of {meta['keypoints'][0]} and {meta['keypoints'][1]} {meta['detector'].upper()} "
                 f"keypoints); " + self.status.value)

    # -- fitting -----------------------------------------------------------
    @action
    def fit(self) -> Transform | None:
        """Fit the chosen model to the complete pairs and show it (moving layer's affine)."""
        if set(self.points) != {"fixed", "moving"}:
            return None
        fixed, moving = self.pairs()
        model, order = self.model.value, self.order.value
        needed = min_pairs(model, self.ndim, order)
        if model == "polynomial" and self.ndim == 3:
            self.say("Polynomial models are 2-D only.")
            return None
        if len(fixed) < needed:
            self.transform = None
            self.say(f"{len(fixed)} pair(s); {model} needs {needed}.")
            self._show_table(fixed, moving)
            return None
        try:
            self.transform = from_points(
                fixed, moving, model=model, robust=self.robust.value and len(fixed) > needed,
                threshold=self.threshold.value, order=order,
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            self.transform = None
            self.say(f"Fit failed: {exc}")
            return None
        self._show_transform()
        self._show_table(fixed, moving)
        outliers = int((~self.transform.inliers).sum())
        self.say(
            f"{model}: {len(fixed)} pairs, RMS residual {self.transform.score:.3f} px"
            + (f", {outliers} outlier(s)" if outliers else "")
        )
        return self.transform

    def _show_transform(self) -> None:
        """Overlay the moving layer (and its points) on the fixed one through their affines."""
        fixed, moving = self.fixed_layer, self.moving_layer
        d = self.transform.ndim
        shown = self.transform.affine_approximation(_layers.source_data(fixed).shape[-d:])
        fixed_affine = np.asarray(fixed.affine.affine_matrix)
        fixed_spatial = fixed_affine[np.ix_(list(range(fixed.ndim - d, fixed.ndim + 1)),
                                            list(range(fixed.ndim - d, fixed.ndim + 1)))]
        spatial = fixed_spatial @ shown.to_napari_affine(
            fixed.scale[-d:], moving.scale[-d:], fixed.translate[-d:], moving.translate[-d:]
        )
        # napari applies the affine after the moving layer's own scale/translate; ours already holds them.
        for layer in (moving, self.points["moving"]):
            layer.affine = spatial_affine(layer, spatial)

    def _show_table(self, fixed: np.ndarray, moving: np.ndarray) -> None:
        rows = []
        t = self.transform
        scale = np.asarray(self.moving_layer.scale[-self.ndim :])
        unit = str(self.moving_layer.units[-1])
        for k in range(len(fixed)):
            if t is not None:
                delta = t.apply_points(fixed[k]) - moving[k]
                px, physical, inlier = float(np.linalg.norm(delta)), float(np.linalg.norm(delta * scale)), bool(t.inliers[k])
            else:
                px, physical, inlier = float("nan"), float("nan"), True
            rows.append([k + 1, round(px, 4), f"{physical:.4g} {unit}", inlier, _fmt(fixed[k]), _fmt(moving[k])])
        self.rows = rows
        self.table.value = {c: [row[i] for row in rows] for i, c in enumerate(COLUMNS)}
        fit_table(self.table.native)
        for role in ("fixed", "moving"):
            layer = self.points[role]
            colors = np.tile(np.array([1.0, 1, 1, 1]), (len(layer.data), 1))
            if t is not None:
                colors[: len(t.inliers)][~t.inliers] = [1.0, 0, 0, 1]
            if len(layer.data):
                layer.border_color = colors

    # -- refine and apply -----------------------------------------------------
    @action
    def refine(self) -> Any:
        """Polish the point fit with ECC on the displayed 2-D planes, in a worker; returns the worker."""
        if self.transform is None:
            raise ValueError("click enough pairs first: ECC starts from the point fit")
        if self.transform.ndim != 2:
            raise ValueError("ECC refinement is 2-D only")
        model = self.model.value if self.model.value in ECC_MODELS else "affine"
        fixed, moving = self.fixed_layer, self.moving_layer
        start = self.transform
        return self.launch(
            refine_with_ecc, self.shown_frame(fixed), self.shown_frame(moving), model, start,
            on_result=lambda refined: self._refined(refined, start, model),
            description=f"Refining with ECC ({model})", inputs=[fixed, moving],
        )

    def _refined(self, refined: Transform, start: Transform, model: str) -> None:
        if self.transform is not start or not self.points:  # the points changed meanwhile: the result is stale
            self.say("The points changed during the refinement; press Refine again.")
            return
        fixed_pts, moving_pts = self.pairs()
        refined.residuals = np.linalg.norm(refined.apply_points(fixed_pts) - moving_pts, axis=1)
        refined.inliers = start.inliers
        self.transform = refined
        self._show_transform()
        self._show_table(fixed_pts, moving_pts)
        self.say(f"Refined with ECC ({model}): correlation {refined.score:.4f}")

    @action
    def apply(self) -> Any:
        """Add ``"<moving> registered"``: the moving layer resampled onto the fixed grid (lazy)."""
        if self.transform is None:
            raise ValueError("nothing to apply yet: click enough point pairs first")
        fixed, moving = self.fixed_layer, self.moving_layer
        d = self.transform.ndim
        data = _layers.source_data(moving)
        lazy = _backend.as_dask(data, chunks=(1,) * (data.ndim - d) + tuple(data.shape[-d:]))
        output_shape = _layers.source_data(fixed).shape[-d:]
        resampled = warp(lazy, self.transform, output_shape=output_shape)
        step = transform_step(self.transform, output_shape, method="points" if "iterations" not in
                              self.transform.metadata else "points + ECC", pairs=len(self.pairs()[0]),
                              fixed=fixed.name, moving=moving.name)
        layer = self.publish(resampled, source=moving, name=f"{moving.name} registered", steps=[step],
                             frame=_layers.regridded_kwargs(moving, fixed, d), colormap=moving.colormap.name,
                             blending="additive", contrast_limits=tuple(moving.contrast_limits))
        self.say(f"Added {layer.name!r} (lazy; its recipe step holds the transform).")
        return layer


    @action
    def save_transform(self, path: str | None = None) -> Any:
        """Write the current transform as JSON (with the fixed grid's shape and the layer names); returns the path."""
        if self.transform is None:
            raise ValueError("nothing to save yet: click or auto-match enough point pairs first")
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(self.native, "Save transform", "transform.json", "JSON (*.json)")
            if not path:
                return None
        d = self.transform.ndim
        recorded = Recorded(transform=self.transform, output_shape=_layers.source_data(self.fixed_layer).shape[-d:],
                            fixed=self.fixed_layer.name, moving=self.moving_layer.name, origin="point tool")
        written = write_transform_file(recorded, path)
        self.say(f"Saved the transform to {written}.")
        return written


def _fmt(point: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in point) + ")"
