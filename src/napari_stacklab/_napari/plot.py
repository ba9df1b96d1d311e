"""Small matplotlib canvases (Qt backend) in napari's dark colours.

:class:`DarkCanvas` is the one canvas every dock plots on (histogram, line
profile, drift over time, table columns). :class:`ColumnPlot` is the table
dock's: a histogram of a chosen column, or a scatter plot of one column
against another, so a measurement can be looked at without leaving napari.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

__all__ = ["DarkCanvas", "ColumnPlot"]

BACKGROUND = "#262930"


class DarkCanvas(FigureCanvasQTAgg):
    """A figure with one axes, styled like napari's dark theme."""

    def __init__(self, parent: Any = None, figsize: tuple = (4, 2.6), min_height: int = 180) -> None:
        self.figure = Figure(figsize=figsize, tight_layout=True, facecolor=BACKGROUND)
        super().__init__(self.figure)
        if parent is not None:
            self.setParent(parent)
        self.setMinimumHeight(min_height)
        self.axes = self.figure.add_subplot()

    def _style(self, xlabel: str, ylabel: str) -> None:
        self.axes.set_facecolor(BACKGROUND)
        self.axes.set_xlabel(xlabel, color="white")
        self.axes.set_ylabel(ylabel, color="white")
        self.axes.tick_params(colors="white")
        for spine in self.axes.spines.values():
            spine.set_color("white")

    def draw(self) -> None:
        # A redraw queued with draw_idle can fire after Qt deleted the widget (its dock closed).
        try:
            super().draw()
        except RuntimeError as exc:
            if "has been deleted" not in str(exc):
                raise


class ColumnPlot(DarkCanvas):
    """Histogram of one column, or scatter of two."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent, figsize=(4, 3), min_height=0)

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
