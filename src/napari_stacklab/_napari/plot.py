"""A small matplotlib canvas (Qt backend) for one table column or two.

The table dock shows a histogram of a chosen column, or a scatter plot of one
column against another, so a measurement can be looked at without leaving
napari.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

__all__ = ["ColumnPlot"]


class ColumnPlot(FigureCanvasQTAgg):
    """Histogram of one column, or scatter of two, drawn with napari's dark colours."""

    def __init__(self, parent: Any = None) -> None:
        self.figure = Figure(figsize=(4, 3), tight_layout=True, facecolor="#262930")
        super().__init__(self.figure)
        self.setParent(parent)
        self.axes = self.figure.add_subplot()

    def _style(self, xlabel: str, ylabel: str) -> None:
        self.axes.set_facecolor("#262930")
        self.axes.set_xlabel(xlabel, color="white")
        self.axes.set_ylabel(ylabel, color="white")
        self.axes.tick_params(colors="white")
        for spine in self.axes.spines.values():
            spine.set_color("white")

    def histogram(self, values: Any, label: str, bins: int = 30) -> None:
        """Histogram of the finite ``values``."""
        values = np.asarray(values, dtype=float)
        self.axes.clear()
        self.axes.hist(values[np.isfinite(values)], bins=bins, color="#5ab4ff")
        self._style(label, "count")
        self.draw_idle()

    def scatter(self, x: Any, y: Any, xlabel: str, ylabel: str) -> None:
        """Scatter plot of ``y`` against ``x``."""
        self.axes.clear()
        self.axes.scatter(np.asarray(x, dtype=float), np.asarray(y, dtype=float), s=8, color="#5ab4ff")
        self._style(xlabel, ylabel)
        self.draw_idle()
