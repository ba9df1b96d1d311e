"""A histogram dock for the selected image layer, with its contrast limits marked.

Counts are drawn on a logarithmic axis so that rare bright or dark values
(hot pixels, saturated areas, a diffraction pattern's tails) stay visible;
two vertical lines show the layer's current contrast limits. The plot
follows the layer selection, the contrast limits and the displayed plane.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import Container, Label, SpinBox
from .plot import DarkCanvas

from .. import _backend

__all__ = ["HistogramWidget"]

#: Layers up to this many pixels are histogrammed whole; larger ones by their displayed plane.
WHOLE_LIMIT = 4_000_000


def _histogram_data(layer: Any, viewer: Any) -> np.ndarray:
    data = layer.data[0] if layer.multiscale else layer.data
    spatial = 3 if layer.rgb else 2
    if data.ndim > spatial and data.size > WHOLE_LIMIT:
        position = layer.world_to_data(viewer.dims.point)
        index = tuple(int(np.clip(round(p), 0, s - 1)) for p, s in zip(position[: data.ndim - spatial], data.shape))
        data = data[index]
    values = np.asarray(_backend.materialize(data))
    if layer.rgb:
        values = values[..., :3]
    return values[np.isfinite(values)] if values.dtype.kind in "fc" else values.ravel()


class HistogramWidget(Container):
    """Log-count histogram of the active image layer with its contrast limits."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.bins = SpinBox(label="bins", min=8, max=4096, value=256)
        self.info = Label(value="")
        self.canvas = DarkCanvas()
        self.figure, self.axes = self.canvas.figure, self.canvas.axes
        self.extend([self.bins, self.info])
        self.native.layout().addWidget(self.canvas)
        self.layer = None
        self.counts = self.edges = None
        self.limit_lines: list = []
        self.bins.changed.connect(lambda *_: self.refresh())
        self.viewer.layers.selection.events.active.connect(self._active_changed)
        self.viewer.dims.events.current_step.connect(self._plane_changed)
        self._connected = True
        self.native.destroyed.connect(self._disconnect)
        self.canvas.destroyed.connect(self._disconnect)
        self._active_changed()

    def _disconnect(self, *_: Any) -> None:
        if not self._connected:
            return
        self._connected = False
        self.viewer.layers.selection.events.active.disconnect(self._active_changed)
        self.viewer.dims.events.current_step.disconnect(self._plane_changed)
        self._watch(None)

    def _watch(self, layer: Any) -> None:
        if self.layer is not None:
            self.layer.events.contrast_limits.disconnect(self._limits_changed)
            self.layer.events.data.disconnect(self._data_changed)
        self.layer = layer
        if layer is not None:
            layer.events.contrast_limits.connect(self._limits_changed)
            layer.events.data.connect(self._data_changed)

    def _active_changed(self, *_: Any) -> None:
        from napari.layers import Image

        active = self.viewer.layers.selection.active
        self._watch(active if isinstance(active, Image) else None)
        self.refresh()

    def _plane_changed(self, *_: Any) -> None:
        if self.layer is not None and self.layer.data.size > WHOLE_LIMIT:
            self.refresh()

    def _data_changed(self, *_: Any) -> None:
        self.refresh()

    def _limits_changed(self, *_: Any) -> None:
        self._draw_limits()
        self.canvas.draw_idle()

    def refresh(self) -> None:
        """Recompute the histogram of the watched layer and redraw."""
        self.axes.clear()
        self.limit_lines = []
        self.canvas._style("", "")
        if self.layer is None:
            self.counts = self.edges = None
            self.info.value = "select an image layer"
            self.canvas.draw_idle()
            return
        values = _histogram_data(self.layer, self.viewer)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        if high <= low:
            high = low + 1.0
        self.counts, self.edges = np.histogram(values, bins=self.bins.value, range=(low, high))
        self.axes.stairs(np.maximum(self.counts, 0.5), self.edges, fill=True, color="#5ab4ff", baseline=0.5)
        self.axes.set_yscale("log")
        self.canvas._style(f"{self.layer.name} value", "count (log)")
        self._draw_limits()
        self.info.value = f"{values.size} values, range {low:.4g} to {high:.4g}"
        self.canvas.draw_idle()

    def _draw_limits(self) -> None:
        for line in self.limit_lines:
            line.remove()
        if self.layer is None:
            self.limit_lines = []
            return
        self.limit_lines = [
            self.axes.axvline(float(v), color="#ffb000", linestyle="--", linewidth=1.2)
            for v in self.layer.contrast_limits
        ]
