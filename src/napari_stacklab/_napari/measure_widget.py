"""Measure labeled objects in physical units: a table dock, features on the Labels layer.

The pixel size and unit come from the Labels layer's ``scale`` and ``units``,
so areas, centroids and diameters are in micrometres (or whatever the file
said), never silently in pixels. The work runs in a worker thread; the table
is shown in a dock with a histogram / scatter plot and "Save CSV...".
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox, Container, Label, PushButton
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker

from .. import measure
from .table import TableWidget, as_frame

__all__ = ["MeasureWidget", "layer_unit"]


def layer_unit(layer: Any) -> str:
    """Short name of the unit of a layer's last axis (``"um"``, ``"nm"``, ``"pixel"``)."""
    units = getattr(layer, "units", None)
    if not units:
        return "pixel"
    unit = units[-1]
    try:
        text = format(unit, "~")
    except (TypeError, ValueError):
        text = str(unit)
    return {"px": "pixel", "µm": "um"}.get(text, text) or "pixel"


def _measure(labels: Any, intensity: Any, spacing: tuple, unit: str, mode: str) -> measure.Table:
    return measure.regionprops_table(labels, intensity=intensity, spacing=spacing, unit=unit, mode=mode)


def _layers_of(viewer: Any, kind: type) -> list:
    return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kind) and not getattr(layer, "rgb", False)]


def _data(layer: Any) -> Any:
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


class MeasureWidget(Container):
    """Choose a Labels layer (and optionally an intensity image), measure, show the table.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers are measured.
    """

    def __init__(self, napari_viewer: Any) -> None:
        labels_layer = ComboBox(label="labels", choices=lambda *_: _layers_of(napari_viewer, Labels))
        intensity_layer = ComboBox(label="intensity", choices=lambda *_: _layers_of(napari_viewer, Image), nullable=True)
        mode = ComboBox(label="objects in", choices=[("planes (2-D)", "2d"), ("volumes (3-D)", "3d")], value="2d")
        measure_button = PushButton(text="Measure")
        info = Label(value="")
        super().__init__(widgets=[labels_layer, intensity_layer, mode, measure_button, info])
        self.viewer = napari_viewer
        self.labels_layer, self.intensity_layer, self.mode = labels_layer, intensity_layer, mode
        self.measure_button, self.info = measure_button, info
        self.table_widget: TableWidget | None = None
        self.table: measure.Table | None = None
        self._worker = None
        self.measure_button.changed.connect(self.run)
        self.viewer.layers.events.inserted.connect(self.reset_choices)
        self.viewer.layers.events.removed.connect(self.reset_choices)

    def compute_table(self) -> measure.Table:
        """The measurement of the chosen layers (runs in the calling thread)."""
        return _measure(**self._inputs())

    def _inputs(self) -> dict:
        """What a measurement needs, read from the widgets and layers (in the GUI thread only)."""
        layer = self.labels_layer.value
        if layer is None:
            raise ValueError("choose a Labels layer to measure")
        intensity = self.intensity_layer.value
        return {
            "labels": _data(layer),
            "intensity": None if intensity is None else _data(intensity),
            "spacing": tuple(float(s) for s in layer.scale),
            "unit": layer_unit(layer),
            "mode": self.mode.value,
        }

    def run(self, *_: Any) -> None:
        """Measure in a worker thread; show the table when it is done."""
        if self._worker is not None:
            return
        layer = self.labels_layer.value
        if layer is None:
            self.info.value = "Add or choose a Labels layer first."
            return
        inputs = self._inputs()  # the worker must not read Qt widgets or napari layers
        self.info.value = f"Measuring {layer.name}..."
        self.measure_button.enabled = False
        worker = thread_worker(_measure, start_thread=False, ignore_errors=True)(**inputs)
        worker.returned.connect(lambda table: self._measured(layer, table))
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self._worker = worker
        worker.start()

    def _failed(self, exc: BaseException) -> None:
        self.info.value = f"Measurement failed: {exc}"

    def _finished(self) -> None:
        self._worker = None
        self.measure_button.enabled = True

    @property
    def running(self) -> bool:
        return self._worker is not None

    def _measured(self, layer: Any, table: measure.Table) -> None:
        if layer not in self.viewer.layers:  # removed while measuring: no table for a vanished layer
            self.info.value = f"{layer.name!r} was removed while it was measured; nothing shown."
            return
        self.show_table(layer, table)

    def show_table(self, layer: Any, table: measure.Table) -> None:
        """Attach the table to ``layer`` as features (single frames) and show it in the dock."""
        self.table = table
        frame = as_frame(table)
        if "frame" not in frame and len(frame):
            layer.features = frame.assign(index=frame["label"])
        shown = frame.set_axis(table.header(), axis=1)
        n_objects = len(frame)
        self.info.value = f"{n_objects} objects measured in {layer_unit(layer)}"
        title = f"{layer.name} measurements"
        if self.table_widget is not None and self.table_widget.alive:
            self.table_widget.title = title
            self.table_widget.set_table(shown)
            return
        self.table_widget = TableWidget(shown, title=title)
        self.viewer.window.add_dock_widget(self.table_widget, name=title, area="right")
        area = next((c for c in shown.columns if str(c).startswith("area")), None)
        if area is not None:
            self.table_widget.x_column.setCurrentText(area)
