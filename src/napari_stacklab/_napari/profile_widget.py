"""Line profile: the interpolated intensity along a line drawn in a Shapes layer.

Draw a line (or a path: its first segment is used) in a Shapes layer, pick the
image and a line width; the profile is plotted against the distance along the
line in the image's physical units (its scale), and can be exported as CSV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import FileEdit, PushButton, SpinBox

from ..preprocess import line_profile
from ._tool import Tool, action
from .plot import DarkCanvas

__all__ = ["LineProfileWidget", "physical_profile"]


def physical_profile(image: Any, src: np.ndarray, dst: np.ndarray, scale: tuple, linewidth: int = 1) -> tuple:
    """``(distance, values)``: the profile from ``src`` to ``dst`` (pixels) with distances in physical units."""
    values = np.asarray(line_profile(image, tuple(src), tuple(dst), linewidth=linewidth))
    length = float(np.linalg.norm((np.asarray(dst) - np.asarray(src)) * np.asarray(scale[-2:], dtype=float)))
    return np.linspace(0.0, length, values.size), values


def _gray(layer: Any) -> bool:
    return not layer.rgb


class LineProfileWidget(Tool):
    """Plot the profile along the first line of a Shapes layer; export it as CSV."""

    title = "Line profile"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.image = self.chooser("image", accept=_gray)
        self.shapes = self.chooser("line (shapes)", kinds=("shapes",))
        self.linewidth = SpinBox(label="line width (px)", min=1, max=500, value=1)
        self.plot_button = PushButton(text="Plot profile")
        self.path = FileEdit(label="CSV file", mode="w", filter="*.csv")
        self.export_button = PushButton(text="Export CSV")
        self.canvas = DarkCanvas()
        self.figure, self.axes = self.canvas.figure, self.canvas.axes
        self.add(self.image, self.shapes, self.linewidth, self.plot_button, self.path, self.export_button)
        self.add_plot(self.canvas)
        self.image.prefer(self.viewer.layers.selection.active)
        self.distance = self.values = None
        self.unit = "pixel"
        self.plot_button.changed.connect(lambda *_: self.plot())
        self.export_button.changed.connect(lambda *_: self.export())
        self.linewidth.changed.connect(lambda *_: self._replot())
        self._watched = None
        self.shapes.changed.connect(self._watch)
        self._watch()

    def _watch(self, *_: Any) -> None:
        if self._watched is not None:
            self.unlisten(self._watched.events.data, self._replot)
        self._watched = self.shapes.value
        if self._watched is not None and not self.closed:
            self.listen(self._watched.events.data, self._replot)

    def _replot(self, *_: Any) -> None:
        if not self.closed and self.image.value is not None and self.shapes.value is not None \
                and len(self.shapes.value.data):
            self.plot()

    def _line(self) -> tuple[np.ndarray, np.ndarray]:
        """The first line's ends in the image's data coordinates (last two axes)."""
        shapes, image = self.shapes.value, self.image.value
        lines = [d for d, t in zip(shapes.data, shapes.shape_type) if t in ("line", "path")]
        if not lines:
            raise ValueError(f"draw a line in the Shapes layer {shapes.name!r}")
        ends = []
        for vertex in (lines[0][0], lines[0][1]):
            world = shapes.data_to_world(vertex)
            ends.append(np.asarray(image.world_to_data(world), dtype=float)[-2:])
        return ends[0], ends[1]

    @action
    def plot(self) -> tuple[np.ndarray, np.ndarray]:
        """Compute and draw the profile; return ``(distance, values)``."""
        image = self.image.value
        if image is None or self.shapes.value is None:
            raise ValueError("choose a gray image layer and a Shapes layer with a line")
        src, dst = self._line()
        self.distance, self.values = physical_profile(self.shown_frame(image), src, dst, image.scale,
                                                      self.linewidth.value)
        self.unit = str(image.units[-1]) if image.units is not None else "pixel"
        self.axes.clear()
        self.axes.plot(self.distance, self.values, color="#5ab4ff")
        self.canvas._style(f"distance ({self.unit})", image.name)
        self.canvas.draw_idle()
        self.say(f"{self.values.size} samples over {self.distance[-1]:.4g} {self.unit}")
        return self.distance, self.values

    @action
    def export(self) -> Path:
        """Write ``distance,value`` rows to the chosen CSV file (refuses to replace an existing one)."""
        if self.values is None and self.plot() is None:
            return None
        path = Path(self.path.value)
        if not str(self.path.value).strip() or path.is_dir():
            raise ValueError("choose a CSV file to write")
        if path.suffix.lower() != ".csv":
            path = path.with_suffix(".csv")
        if path.exists():
            raise FileExistsError(f"{path} exists; choose another file name")
        header = f"distance_{self.unit},{self.image.value.name}"
        np.savetxt(path, np.column_stack([self.distance, self.values]), delimiter=",", header=header, comments="")
        self.say(f"saved {path}")
        return path
