"""Line profile: the interpolated intensity along a line drawn in a Shapes layer.

Draw a line (or a path: its first segment is used) in a Shapes layer, pick the
image and a line width; the profile is plotted against the distance along the
line in the image's physical units (its scale), and can be exported as CSV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton, SpinBox
from .plot import DarkCanvas

from ..preprocess import line_profile

__all__ = ["LineProfileWidget", "physical_profile"]


def physical_profile(image: Any, src: np.ndarray, dst: np.ndarray, scale: tuple, linewidth: int = 1) -> tuple:
    """``(distance, values)``: the profile from ``src`` to ``dst`` (pixels) with distances in physical units."""
    values = np.asarray(line_profile(image, tuple(src), tuple(dst), linewidth=linewidth))
    length = float(np.linalg.norm((np.asarray(dst) - np.asarray(src)) * np.asarray(scale[-2:], dtype=float)))
    return np.linspace(0.0, length, values.size), values


class LineProfileWidget(Container):
    """Plot the profile along the first line of a Shapes layer; export it as CSV."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.image = ComboBox(label="image", choices=self._choices("Image"))
        self.shapes = ComboBox(label="line (shapes)", choices=self._choices("Shapes"))
        self.linewidth = SpinBox(label="line width (px)", min=1, max=500, value=1)
        self.plot_button = PushButton(text="Plot profile")
        self.path = FileEdit(label="CSV file", mode="w", filter="*.csv")
        self.export_button = PushButton(text="Export CSV")
        self.status = Label(value="")
        self.canvas = DarkCanvas()
        self.figure, self.axes = self.canvas.figure, self.canvas.axes
        self.extend([self.image, self.shapes, self.linewidth, self.plot_button, self.path, self.export_button, self.status])
        self.native.layout().addWidget(self.canvas)
        self.distance = self.values = None
        self.plot_button.changed.connect(lambda *_: self.plot())
        self.export_button.changed.connect(lambda *_: self.export())
        self.linewidth.changed.connect(lambda *_: self._replot())
        self._watched = None
        self.shapes.changed.connect(self._watch)
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).connect(self._layers_changed)
        self._connected = True
        self.native.destroyed.connect(self._disconnect)
        self.canvas.destroyed.connect(self._disconnect)
        self.reset_choices()
        self._watch()

    def _choices(self, kind: str):
        def choices(*_: Any) -> list[tuple[str, Any]]:
            import napari.layers

            cls = getattr(napari.layers, kind)
            return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, cls)]

        return choices

    def _layers_changed(self, *_: Any) -> None:
        self.reset_choices()

    def _watch(self, *_: Any) -> None:
        if self._watched is not None:
            self._watched.events.data.disconnect(self._replot)
        self._watched = self.shapes.value
        if self._watched is not None:
            self._watched.events.data.connect(self._replot)

    def _disconnect(self, *_: Any) -> None:
        if not self._connected:
            return
        self._connected = False
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).disconnect(self._layers_changed)
        if self._watched is not None:
            self._watched.events.data.disconnect(self._replot)

    def _replot(self, *_: Any) -> None:
        if self._connected and self.image.value is not None and self.shapes.value is not None and len(self.shapes.value.data):
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

    def _plane(self) -> Any:
        image = self.image.value
        data = image.data[0] if image.multiscale else image.data
        if data.ndim == 2:
            return data
        position = image.world_to_data(self.viewer.dims.point)
        index = tuple(int(np.clip(round(p), 0, s - 1)) for p, s in zip(position[:-2], data.shape[:-2]))
        return data[index]

    def plot(self) -> tuple[np.ndarray, np.ndarray]:
        """Compute and draw the profile; return ``(distance, values)``."""
        image = self.image.value
        if image is None or self.shapes.value is None:
            raise ValueError("choose an image layer and a Shapes layer with a line")
        if image.rgb:
            raise ValueError("line profiles need a gray image (split the colour channels first)")
        src, dst = self._line()
        self.distance, self.values = physical_profile(self._plane(), src, dst, image.scale, self.linewidth.value)
        unit = str(image.units[-1]) if image.units is not None else "pixel"
        self.unit = unit
        self.axes.clear()
        self.axes.plot(self.distance, self.values, color="#5ab4ff")
        self.canvas._style(f"distance ({unit})", image.name)
        self.canvas.draw_idle()
        self.status.value = f"{self.values.size} samples over {self.distance[-1]:.4g} {unit}"
        return self.distance, self.values

    def export(self) -> Path:
        """Write ``distance,value`` rows to the chosen CSV file (refuses to replace an existing one)."""
        if self.values is None:
            self.plot()
        path = Path(self.path.value)
        if path.suffix.lower() != ".csv":
            path = path.with_suffix(".csv")
        if path.exists():
            raise FileExistsError(f"{path} exists; choose another file name")
        header = f"distance_{self.unit},{self.image.value.name}"
        np.savetxt(path, np.column_stack([self.distance, self.values]), delimiter=",", header=header, comments="")
        self.status.value = f"saved {path}"
        return path
