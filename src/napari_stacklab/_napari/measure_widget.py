"""Measure labeled objects in physical units: a table dock, features on the Labels layer.

The pixel size and unit come from the Labels layer's ``scale`` and ``units``,
so areas, centroids and diameters are in micrometres (or whatever the file
said), never silently in pixels. The work runs in a worker thread; the table
is shown in a dock with a histogram / scatter plot and "Save CSV...", and the
tool keeps the measurement as a ``regionprops_table`` recipe step (``step``).
An intensity layer with channels (an RGB layer, a ``c`` axis) gives one
column per channel for each intensity property, named after the channel
(``intensity_mean-red``, or the names the file gave).
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox, PushButton

from .. import measure
from . import _channels, _layers
from ._tool import Tool, action
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


def _measure(labels: Any, intensity: Any, spacing: tuple, unit: str, mode: str,
             channel_names: tuple | None = None) -> measure.Table:
    return measure.regionprops_table(labels, intensity=intensity, spacing=spacing, unit=unit, mode=mode,
                                     channel_names=channel_names)


def channel_names(layer: Any, labels_shape: tuple) -> tuple[str, ...] | None:
    """The names of an intensity layer's channels (``None`` when it has the labels' shape: one channel).

    An RGB layer's are ``red, green, blue(, alpha)``; a layer with a ``c``
    axis has the names its file gave (``metadata["channel_names"]``) or
    ``c0, c1, ...``. An intensity image of another shape is refused by name.
    """
    shape = tuple(_layers.source_data(layer).shape)
    if shape == tuple(labels_shape):
        return None
    found = _channels.layer_channels(layer)
    axis = None if found is None else found.checked(shape).axis % len(shape)
    if axis is None or shape[:axis] + shape[axis + 1:] != tuple(labels_shape):
        raise ValueError(f"the intensity image {layer.name!r} must have the labels' shape {tuple(labels_shape)}, "
                         f"or that shape with one axis of channels (an RGB layer, a 'c' axis); it has {shape}")
    return found.names_for(shape[axis])


class MeasureWidget(Tool):
    """Choose a Labels layer (and optionally an intensity image), measure, show the table.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers are measured.
    """

    title = "Measure labels"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.labels_layer = self.chooser("labels", kinds=("labels",))
        self.intensity_layer = self.chooser("intensity", nullable=True)
        self.mode = ComboBox(label="objects in", choices=[("planes (2-D)", "2d"), ("volumes (3-D)", "3d")],
                             value="2d")
        self.measure_button = PushButton(text="Measure")
        self.add(self.labels_layer, self.intensity_layer, self.mode, self.measure_button)
        self.busy_widgets = [self.measure_button]
        self.labels_layer.prefer(self.viewer.layers.selection.active)
        self.table_widget: TableWidget | None = None
        self.table: measure.Table | None = None
        self.step: dict | None = None
        self.measure_button.changed.connect(lambda *_: self.run())

    def _inputs(self) -> dict:
        """What a measurement needs, read from the widgets and layers (in the GUI thread only)."""
        layer = self.labels_layer.value
        if layer is None:
            raise ValueError("add or choose a Labels layer to measure")
        intensity = self.intensity_layer.value
        labels_shape = tuple(_layers.source_data(layer).shape)
        return {
            "labels": _layers.source_data(layer),
            "intensity": None if intensity is None else _layers.source_data(intensity),
            "spacing": tuple(float(s) for s in layer.scale),
            "unit": layer_unit(layer),
            "mode": self.mode.value,
            "channel_names": None if intensity is None else channel_names(intensity, labels_shape),
        }

    def compute_table(self) -> measure.Table:
        """The measurement of the chosen layers (runs in the calling thread)."""
        return _measure(**self._inputs())

    @action
    def run(self, *_: Any) -> Any:
        """Measure in a worker thread; show the table when it is done. Returns the worker."""
        layer = self.labels_layer.value
        inputs = self._inputs()  # the worker must not read Qt widgets or napari layers
        intensity = self.intensity_layer.value
        params = {"intensity": None if intensity is None else {"layer": intensity.name},
                  "spacing": list(inputs["spacing"]), "unit": inputs["unit"], "mode": inputs["mode"]}
        if inputs["channel_names"] is not None:
            params["channel_names"] = list(inputs["channel_names"])
        step = {"op": "regionprops_table", "params": params}
        return self.launch(_measure, **inputs, on_result=lambda table: self.show_table(layer, table, step),
                          description=f"Measuring {layer.name!r}", inputs=[layer] + ([intensity] if intensity else []))

    def show_table(self, layer: Any, table: measure.Table, step: dict | None = None) -> None:
        """Attach the table to ``layer`` as features (single frames) and show it in the dock."""
        self.table, self.step = table, step
        frame = as_frame(table)
        if "frame" not in frame and len(frame):
            layer.features = frame.assign(index=frame["label"])
        shown = frame.set_axis(table.header(), axis=1)
        self.say(f"{len(frame)} objects measured in {layer_unit(layer)}")
        title = f"{layer.name} measurements"
        if self.table_widget is not None and self.table_widget.alive:
            self.table_widget.title = title
            self.table_widget.set_table(shown)
            return
        self.table_widget = TableWidget(shown, title=title)
        self.viewer.window.add_dock_widget(self.table_widget, name=title, area="right", tabify=True)
        area = next((c for c in shown.columns if str(c).startswith("area")), None)
        if area is not None:
            self.table_widget.x_column.setCurrentText(area)
