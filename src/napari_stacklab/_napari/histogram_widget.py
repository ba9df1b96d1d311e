"""A histogram dock for the selected image layer, with its contrast limits marked.

Counts are drawn on a logarithmic axis so that rare bright or dark values
(hot pixels, saturated areas, a diffraction pattern's tails) stay visible;
two vertical lines show the layer's current contrast limits. The plot
follows the layer selection, the contrast limits and the displayed plane.
The counting runs in the background (a large or lazy layer never blocks the
window); only the latest request is computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import SpinBox

from .. import _backend
from . import _layers
from ._tool import Latest, Tool
from .plot import DarkCanvas

__all__ = ["HistogramWidget", "histogram"]

#: Layers up to this many pixels are histogrammed whole; larger ones by their displayed plane.
WHOLE_LIMIT = 4_000_000


def histogram(data: Any, rgb: bool, bins: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Worker task: ``(counts, edges, n_values)`` of the finite values of ``data`` (alpha left out)."""
    values = np.asarray(_backend.materialize(data))
    if rgb:
        values = values[..., :3]
    values = values[np.isfinite(values)] if values.dtype.kind in "fc" else values.ravel()
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return counts, edges, int(values.size)


class HistogramWidget(Tool):
    """Log-count histogram of the active image layer with its contrast limits."""

    title = "Histogram"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.bins = SpinBox(label="bins", min=8, max=4096, value=256)
        self.canvas = DarkCanvas()
        self.figure, self.axes = self.canvas.figure, self.canvas.axes
        self.add(self.bins)
        self.add_plot(self.canvas)
        self.layer = None
        self.counts = self.edges = None
        self.limit_lines: list = []
        self._latest = Latest(self)
        self.bins.changed.connect(lambda *_: self.refresh())
        self.listen(self.viewer.layers.selection.events.active, self._active_changed)
        self.listen(self.viewer.dims.events.current_step, self._plane_changed)
        self._active_changed()

    @property
    def busy(self) -> bool:
        return self._latest.busy

    def _watch(self, layer: Any) -> None:
        if self.layer is not None:
            self.unlisten(self.layer.events.contrast_limits, self._limits_changed)
            self.unlisten(self.layer.events.data, self.refresh)
        self.layer = layer
        if layer is not None:
            self.listen(layer.events.contrast_limits, self._limits_changed)
            self.listen(layer.events.data, self.refresh)

    def _active_changed(self, *_: Any) -> None:
        from napari.layers import Image

        active = self.viewer.layers.selection.active
        self._watch(active if isinstance(active, Image) else None)
        self.refresh()

    def _plane_changed(self, *_: Any) -> None:
        if self.layer is not None and _layers.source_data(self.layer).size > WHOLE_LIMIT:
            self.refresh()

    def _limits_changed(self, *_: Any) -> None:
        self._draw_limits()
        self.canvas.draw_idle()

    def refresh(self, *_: Any) -> None:
        """Recount the watched layer (in the background) and redraw."""
        if self.closed:
            return
        layer = self.layer
        if layer is None:
            self.counts = self.edges = None
            self.axes.clear()
            self.limit_lines = []
            self.canvas._style("", "")
            self.say("select an image layer")
            self.canvas.draw_idle()
            return
        data = _layers.source_data(layer)
        spatial = 3 if layer.rgb else 2
        if data.ndim > spatial and data.size > WHOLE_LIMIT:
            data = self.shown_frame(layer)
        self._latest.request(histogram, data, layer.rgb, int(self.bins.value),
                             on_result=lambda found: self._draw(layer, *found))

    def _draw(self, layer: Any, counts: np.ndarray, edges: np.ndarray, size: int) -> None:
        if layer is not self.layer:
            return
        self.counts, self.edges = counts, edges
        self.axes.clear()
        self.limit_lines = []
        self.axes.stairs(np.maximum(counts, 0.5), edges, fill=True, color="#5ab4ff", baseline=0.5)
        self.axes.set_yscale("log")
        self.canvas._style(f"{layer.name} value", "count (log)")
        self._draw_limits()
        self.say(f"{size} values, range {edges[0]:.4g} to {edges[-1]:.4g}")
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
