"""Point-based registration of a moving image onto a fixed image, live and non-destructive.

The tool adds two paired, colour-coded Points layers, ``"<fixed> points"``
(magenta) and ``"<moving> points"`` (green), numbered by pair. After each
click the other layer becomes active, so clicking alternates fixed, moving,
fixed, moving... As soon as the chosen model has enough pairs it is fitted
and shown by setting the moving layer's ``affine`` (the data are not
touched); the table lists every pair's residual in pixels and in the moving
layer's physical units, with RANSAC outlier flags. "Refine with ECC" polishes
the point fit on the displayed planes, "Apply" adds a resampled (lazy) layer.

Only the spatial axes count: the last two axes (three when the viewer shows
3-D) of each layer; time and channel axes of a stack are never fitted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton, SpinBox, Table
from napari.layers import Image

from .. import _backend
from ..register import ECC_MODELS, MODELS, ECCError, Transform, ecc, from_points, min_pairs, warp

__all__ = ["PointRegistrationWidget", "spatial_affine", "displayed_plane"]

FIXED_COLOR, MOVING_COLOR, OUTLIER_COLOR = "magenta", "lime", "red"


def spatial_affine(layer: Any, spatial: np.ndarray) -> np.ndarray:
    """A full ``(ndim + 1)`` affine for ``layer`` acting as ``spatial`` on its trailing axes."""
    d = spatial.shape[0] - 1
    full = np.eye(layer.ndim + 1)
    axes = list(range(layer.ndim - d, layer.ndim)) + [layer.ndim]
    full[np.ix_(axes, axes)] = spatial
    return full


def displayed_plane(viewer: Any, layer: Any, ndim: int = 2) -> Any:
    """The trailing ``ndim``-D frame of ``layer`` at the viewer's current position (lazy stays lazy)."""
    data = layer.data[0] if layer.multiscale else layer.data
    if layer.ndim == ndim:
        return data
    position = layer.world_to_data(viewer.dims.point)
    index = tuple(int(np.clip(round(p), 0, s - 1)) for p, s in zip(position[: layer.ndim - ndim], data.shape))
    return data[index]


class PointRegistrationWidget(Container):
    """Register two image layers from clicked point pairs (with undo, residuals and ECC refinement)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.fixed = ComboBox(label="fixed", choices=self._image_names)
        self.moving = ComboBox(label="moving", choices=self._image_names)
        self.model = ComboBox(label="model", choices=list(MODELS), value="affine")
        self.order = SpinBox(label="polynomial order", value=2, min=2, max=3)
        self.robust = CheckBox(text="RANSAC (flag outliers)", value=False)
        self.threshold = FloatSpinBox(label="RANSAC threshold (px)", value=3.0, min=0.1, max=100.0, step=0.5)
        self.start_button = PushButton(text="Start: add point layers")
        self.undo_button = PushButton(text="Undo last point")
        self.pair = SpinBox(label="pair", value=1, min=1, max=10_000)
        self.delete_button = PushButton(text="Delete pair")
        self.refine_button = PushButton(text="Refine with ECC")
        self.apply_button = PushButton(text="Apply (resampled layer)")
        self.status = Label(value="Choose the fixed and moving layers, then Start.")
        self.table = Table(value=_table_value([], self._columns()))
        self.extend([
            self.fixed, self.moving, self.model, self.order, self.robust, self.threshold, self.start_button,
            self.undo_button, self.pair, self.delete_button, self.refine_button, self.apply_button,
            self.status, self.table,
        ])
        if len(self.moving.choices) > 1:
            self.moving.value = self.moving.choices[1]
        self.transform: Transform | None = None
        self.rows: list[list] = []
        self.points: dict[str, Any] = {}
        self._history: list[str] = []
        self._counts: dict[str, int] = {}
        self.start_button.changed.connect(lambda *_: self.start())
        self.undo_button.changed.connect(lambda *_: self.undo())
        self.delete_button.changed.connect(lambda *_: self.delete_pair(self.pair.value))
        self.refine_button.changed.connect(lambda *_: self.refine())
        self.apply_button.changed.connect(lambda *_: self.apply())
        for widget in (self.model, self.order, self.robust, self.threshold):
            widget.changed.connect(lambda *_: self.fit())
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).connect(self._reset_choices)

    # -- layers ------------------------------------------------------------
    def _image_names(self, *_: Any) -> list[str]:
        return [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]

    def _reset_choices(self, *_: Any) -> None:
        self.fixed.reset_choices()
        self.moving.reset_choices()

    @property
    def fixed_layer(self) -> Any:
        return self.viewer.layers[self.fixed.value]

    @property
    def moving_layer(self) -> Any:
        return self.viewer.layers[self.moving.value]

    @property
    def ndim(self) -> int:
        """Spatial dimensions fitted: 3 for volumes shown in 3-D, else 2."""
        return 3 if self.viewer.dims.ndisplay == 3 and min(self.fixed_layer.ndim, self.moving_layer.ndim) >= 3 else 2

    def start(self) -> None:
        """Create (or reuse) the two paired Points layers and make the fixed one active in add mode."""
        if self.fixed.value is None or self.moving.value is None or self.fixed.value == self.moving.value:
            self.status.value = "Choose two different image layers."
            return
        for role, image, color in (("fixed", self.fixed_layer, FIXED_COLOR), ("moving", self.moving_layer, MOVING_COLOR)):
            name = f"{image.name} points"
            if name in self.viewer.layers:
                layer = self.viewer.layers[name]
            else:
                layer = self.viewer.add_points(
                    np.empty((0, image.ndim)),
                    name=name,
                    ndim=image.ndim,
                    scale=image.scale,
                    translate=image.translate,
                    affine=image.affine.affine_matrix,
                    face_color=color,
                    border_color="white",
                    size=8,
                    features={"pair": np.zeros(0, int)},
                    text={"string": "{pair}", "color": color, "size": 12, "anchor": "upper_left"},
                )
            self.points[role] = layer
            self._counts[role] = len(layer.data)
            layer.events.data.connect(lambda event, role=role: self._on_points(role))
        self._renumber()
        self._activate("fixed")
        self.status.value = "Click a point in the fixed image, then the same feature in the moving image."
        self.fit()

    def _activate(self, role: str) -> None:
        layer = self.points[role]
        self.viewer.layers.selection.active = layer
        layer.mode = "add"

    # -- points ------------------------------------------------------------
    def _on_points(self, role: str) -> None:
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

    def undo(self) -> None:
        """Remove the most recently clicked point (fixed or moving)."""
        while self._history:
            role = self._history.pop()
            layer = self.points[role]
            if len(layer.data):
                self._counts[role] = len(layer.data) - 1
                layer.data = layer.data[:-1]
                self._activate(role)
                return
        self.status.value = "Nothing to undo."

    def delete_pair(self, pair: int) -> None:
        """Delete pair number ``pair`` (1-based) from both layers."""
        for role, layer in self.points.items():
            if pair <= len(layer.data):
                self._counts[role] = len(layer.data) - 1
                layer.data = np.delete(np.asarray(layer.data), pair - 1, axis=0)
        self._history = [r for r in self._history if len(self.points[r].data)]
        self._renumber()
        self.fit()

    # -- fitting -----------------------------------------------------------
    def fit(self) -> Transform | None:
        """Fit the chosen model to the complete pairs and show it (moving layer's affine)."""
        if set(self.points) != {"fixed", "moving"}:
            return None
        fixed, moving = self.pairs()
        model, order = self.model.value, self.order.value
        needed = min_pairs(model, self.ndim, order)
        if model == "polynomial" and self.ndim == 3:
            self.status.value = "Polynomial models are 2-D only."
            return None
        if len(fixed) < needed:
            self.transform = None
            self.status.value = f"{len(fixed)} pair(s); {model} needs {needed}."
            self._show_table(fixed, moving)
            return None
        try:
            self.transform = from_points(
                fixed, moving, model=model, robust=self.robust.value and len(fixed) > needed,
                threshold=self.threshold.value, order=order,
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            self.transform = None
            self.status.value = f"Fit failed: {exc}"
            return None
        self._show_transform()
        self._show_table(fixed, moving)
        outliers = int((~self.transform.inliers).sum())
        self.status.value = (
            f"{model}: {len(fixed)} pairs, RMS residual {self.transform.score:.3f} px"
            + (f", {outliers} outlier(s)" if outliers else "")
        )
        return self.transform

    def _show_transform(self) -> None:
        """Overlay the moving layer (and its points) on the fixed one through their affines."""
        fixed, moving = self.fixed_layer, self.moving_layer
        d = self.transform.ndim
        shown = self.transform.affine_approximation(fixed.data.shape[-d:])
        fixed_affine = np.asarray(fixed.affine.affine_matrix)
        fixed_spatial = fixed_affine[np.ix_(list(range(fixed.ndim - d, fixed.ndim + 1)),
                                            list(range(fixed.ndim - d, fixed.ndim + 1)))]
        spatial = fixed_spatial @ shown.to_napari_affine(
            fixed.scale[-d:], moving.scale[-d:], fixed.translate[-d:], moving.translate[-d:]
        )
        # napari applies the affine after the moving layer's own scale/translate; ours already holds them.
        for layer in (moving, self.points["moving"]):
            layer.affine = spatial_affine(layer, spatial)

    def _columns(self) -> list[str]:
        return ["pair", "residual (px)", "residual (units)", "inlier", "fixed", "moving"]

    def _show_table(self, fixed: np.ndarray, moving: np.ndarray) -> None:
        rows = []
        t = self.transform
        scale = np.asarray(self.moving_layer.scale[-self.ndim :]) if self.points else np.ones(self.ndim)
        unit = str(self.moving_layer.units[-1]) if self.points else "pixel"
        for k in range(len(fixed)):
            if t is not None:
                delta = t.apply_points(fixed[k]) - moving[k]
                px, physical, inlier = float(np.linalg.norm(delta)), float(np.linalg.norm(delta * scale)), bool(t.inliers[k])
            else:
                px, physical, inlier = float("nan"), float("nan"), True
            rows.append([k + 1, round(px, 4), f"{physical:.4g} {unit}", inlier, _fmt(fixed[k]), _fmt(moving[k])])
        self.rows = rows
        self.table.value = _table_value(rows, self._columns())
        self.table.native.resizeColumnsToContents()
        for role in ("fixed", "moving"):
            layer = self.points[role]
            colors = np.tile(np.array([1.0, 1, 1, 1]), (len(layer.data), 1))
            if t is not None:
                colors[: len(t.inliers)][~t.inliers] = [1.0, 0, 0, 1]
            if len(layer.data):
                layer.border_color = colors

    # -- refine and apply -----------------------------------------------------
    def refine(self) -> Transform | None:
        """Polish the point fit with ECC on the displayed 2-D planes (points then ECC)."""
        if self.transform is None:
            self.status.value = "Click enough pairs first: ECC starts from the point fit."
            return None
        if self.transform.ndim != 2:
            self.status.value = "ECC refinement is 2-D only."
            return None
        model = self.model.value if self.model.value in ECC_MODELS else "affine"
        fixed = _backend.materialize(displayed_plane(self.viewer, self.fixed_layer))
        moving = _backend.materialize(displayed_plane(self.viewer, self.moving_layer))
        try:
            refined = ecc(fixed, moving, model=model, initial=self.transform, levels=2)
        except ECCError as exc:
            self.status.value = f"ECC refinement failed, keeping the point fit: {exc}"
            return None
        fixed_pts, moving_pts = self.pairs()
        refined.residuals = np.linalg.norm(refined.apply_points(fixed_pts) - moving_pts, axis=1)
        refined.inliers = self.transform.inliers
        self.transform = refined
        self._show_transform()
        self._show_table(*self.pairs())
        self.status.value = f"Refined with ECC ({model}): correlation {refined.score:.4f}"
        return refined

    def apply(self) -> Any:
        """Add ``"<moving> registered"``: the moving layer resampled onto the fixed grid (lazy)."""
        if self.transform is None:
            self.status.value = "Nothing to apply yet."
            return None
        fixed, moving = self.fixed_layer, self.moving_layer
        d = self.transform.ndim
        data = moving.data[0] if moving.multiscale else moving.data
        lazy = _backend.as_dask(data, chunks=(1,) * (data.ndim - d) + tuple(data.shape[-d:]))
        resampled = warp(lazy, self.transform, output_shape=fixed.data.shape[-d:])
        name = f"{moving.name} registered"
        metadata = dict(moving.metadata)
        metadata["stacklab_transform"] = self.transform.to_dict()
        kwargs = {
            "scale": tuple(moving.scale[: moving.ndim - d]) + tuple(fixed.scale[-d:]),
            "translate": tuple(moving.translate[: moving.ndim - d]) + tuple(fixed.translate[-d:]),
            "colormap": moving.colormap.name, "blending": "additive", "metadata": metadata,
            "contrast_limits": moving.contrast_limits,
        }
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        layer = self.viewer.add_image(resampled, name=name, **kwargs)
        self.status.value = f"Added {name!r} (lazy; the transform is in its metadata)."
        return layer


def _table_value(rows: list[list], columns: list[str]) -> dict:
    """magicgui ``Table`` value: one list per column."""
    return {name: [row[i] for row in rows] for i, name in enumerate(columns)}


def _fmt(point: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in point) + ")"
