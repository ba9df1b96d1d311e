"""Align a set of images to a base image and show how well each one matches.

For every chosen layer the widget estimates a transform on the displayed
planes (ECC with the chosen motion model, phase correlation, or the point
pairs of the point-registration tool), adds ``"<layer> aligned"`` (the layer
resampled onto the base grid, lazily) and ``"<layer> similarity"`` (the local
normalised cross-correlation with the base: warm = matches the base, cool =
differs), and lists the global scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, Select, SpinBox, Table
from napari.layers import Image

from .. import _backend
from ..register import (
    ECC_MODELS,
    ECCError,
    Transform,
    ecc,
    from_points,
    phase_correlation,
    similarity_map,
    similarity_score,
    warp,
)
from .points_tool import _table_value, displayed_plane

__all__ = ["AlignSetWidget", "METHODS", "HEATMAP_COLORMAP"]

METHODS = ("ECC", "phase correlation", "points")
#: Warm (red) = similar, cool (blue) = different.
HEATMAP_COLORMAP = "turbo"


class AlignSetWidget(Container):
    """Base layer + layers to align + model + method -> aligned layers, similarity heatmaps, scores."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.base = ComboBox(label="base", choices=self._image_names)
        self.targets = Select(label="align", choices=self._image_names)
        self.model = ComboBox(label="model", choices=list(ECC_MODELS), value="affine")
        self.method = ComboBox(label="method", choices=list(METHODS), value="ECC")
        self.window = SpinBox(label="heatmap window", value=15, min=3, max=255, step=2)
        self.device = ComboBox(label="device", choices=list(_backend.DEVICES), value="auto")
        self.run_button = PushButton(text="Align")
        self.status = Label(value="")
        self.table = Table(value=_table_value([], self._columns()))
        self.extend([self.base, self.targets, self.model, self.method, self.window, self.device, self.run_button,
                     self.status, self.table])
        self.results: dict[str, dict] = {}
        self.run_button.changed.connect(lambda *_: self.run())
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).connect(self._reset_choices)

    def _image_names(self, *_: Any) -> list[str]:
        return [
            layer.name for layer in self.viewer.layers
            if isinstance(layer, Image) and not layer.name.endswith((" aligned", " similarity"))
        ]

    def _reset_choices(self, *_: Any) -> None:
        self.base.reset_choices()
        self.targets.reset_choices()

    @staticmethod
    def _columns() -> list[str]:
        return ["layer", "method", "model", "fit score", "similarity"]

    def _estimate(self, base: Any, layer: Any, fixed: Any, moving: Any) -> Transform:
        method, model = self.method.value, self.model.value
        if method == "ECC":
            return ecc(fixed, moving, model=model, device=self.device.value)
        if method == "phase correlation":
            if fixed.shape != moving.shape:
                raise ValueError("phase correlation needs images of the same shape")
            return phase_correlation(fixed, moving, device=self.device.value)
        names = (f"{base.name} points", f"{layer.name} points")
        if not all(name in self.viewer.layers for name in names):
            raise ValueError(f"no point pairs: add {names[0]!r} and {names[1]!r} with the point-registration tool")
        fixed_pts, moving_pts = (np.asarray(self.viewer.layers[n].data)[:, -2:] for n in names)
        n = min(len(fixed_pts), len(moving_pts))
        return from_points(fixed_pts[:n], moving_pts[:n], model=model)

    def run(self) -> dict[str, dict]:
        """Align every chosen layer to the base; returns ``{name: {transform, score, similarity}}``."""
        if self.base.value is None:
            self.status.value = "Choose a base layer."
            return {}
        base = self.viewer.layers[self.base.value]
        fixed = _backend.materialize(displayed_plane(self.viewer, base))
        rows, messages = [], []
        for name in self.targets.value:
            if name == base.name:
                continue
            layer = self.viewer.layers[name]
            moving = _backend.materialize(displayed_plane(self.viewer, layer))
            try:
                transform = self._estimate(base, layer, fixed, moving)
            except (ECCError, ValueError) as exc:
                messages.append(f"{name}: {exc}")
                continue
            self.results[name] = self._show(base, layer, fixed, moving, transform)
            rows.append([name, self.method.value, transform.model, _round(transform.score),
                         round(self.results[name]["similarity"], 4)])
        self.table.value = _table_value(rows, self._columns())
        self.status.value = "; ".join(messages) if messages else f"Aligned {len(rows)} layer(s) to {base.name!r}."
        return self.results

    def _show(self, base: Any, layer: Any, fixed: Any, moving: Any, transform: Transform) -> dict:
        data = layer.data[0] if layer.multiscale else layer.data
        lazy = _backend.as_dask(data, chunks=(1,) * (data.ndim - 2) + tuple(data.shape[-2:]))
        aligned = warp(lazy, transform, output_shape=fixed.shape)
        valid = warp(np.ones(moving.shape, np.float32), transform, output_shape=fixed.shape, order=0) > 0
        heat = similarity_map(aligned, reference=fixed, window=self.window.value) * valid
        score = similarity_score(warp(moving, transform, output_shape=fixed.shape), fixed, mask=valid)
        leading = data.ndim - 2
        frame = {
            "scale": tuple(layer.scale[:leading]) + tuple(base.scale[-2:]),
            "translate": tuple(layer.translate[:leading]) + tuple(base.translate[-2:]),
        }
        metadata = dict(layer.metadata)
        metadata["stacklab_transform"] = transform.to_dict()
        self._replace(f"{layer.name} aligned", aligned, colormap=layer.colormap.name,
                      contrast_limits=layer.contrast_limits, metadata=metadata, **frame)
        self._replace(f"{layer.name} similarity", heat, colormap=HEATMAP_COLORMAP, contrast_limits=(0.0, 1.0),
                      opacity=0.7, metadata={"stacklab_similarity": score}, **frame)
        return {"transform": transform, "score": transform.score, "similarity": score}

    def _replace(self, name: str, data: Any, **kwargs: Any) -> None:
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        self.viewer.add_image(data, name=name, **kwargs)


def _round(value: float | None) -> float | str:
    return "" if value is None else round(float(value), 4)
