"""Drift correction of a time-lapse: the ``drift_correct`` operation with a drift plot and reuse on other channels.

The controls are the ``drift_correct`` operation's own (generated from its
declaration). *Run* measures the per-frame drift of the chosen stack in a
worker (the window stays responsive; Cancel discards the estimate), plots the
row and column drift over time in the stack's units, and adds
``"<stack> drift_correct"`` (lazy) recording the ``drift_correct`` step, as
the generated operation widget would. *Apply the same shifts* corrects another
layer of the same acquisition (a second channel) with the measured shifts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, PushButton

from .. import _backend, catalog
from ..register import apply_drift, drift
from . import _layers
from ._tool import Tool, action
from .plot import DarkCanvas

__all__ = ["DriftWidget", "DriftPlot", "drift_step"]

OPERATION = "drift_correct"


class DriftPlot(DarkCanvas):
    """Row and column drift (in the layer's units) against the frame index."""

    def show_shifts(self, shifts: np.ndarray, scale: tuple, unit: str) -> None:
        ax = self.axes
        ax.clear()
        frames = np.arange(len(shifts))
        ax.plot(frames, shifts[:, 0] * scale[0], "-o", ms=3, color="#ff7f50", label="row (y)")
        ax.plot(frames, shifts[:, 1] * scale[1], "-o", ms=3, color="#5ab4ff", label="column (x)")
        self._style("frame", f"drift ({unit})")
        ax.legend(facecolor="#262930", labelcolor="white", fontsize=8)
        self.draw_idle()


def drift_step(shifts: np.ndarray, order: int, estimated_on: str) -> dict:
    """The recipe step that applies measured per-frame shifts (``apply_drift``; see the issue-16 report)."""
    return {"op": "apply_drift", "params": {"shifts": np.asarray(shifts, float).tolist(), "order": int(order)},
            "result": {"estimated_on": estimated_on}}


def _time_frame(layer: Any) -> dict | None:
    """The frame of the corrected ``(T, M, N)`` result: the layer's own, or its time and plane axes."""
    return None if layer.ndim == 3 else _layers.axes_kwargs(layer, (0, layer.ndim - 2, layer.ndim - 1))


def _is_stack(layer: Any) -> bool:
    return layer.ndim >= 3 and not layer.rgb


class DriftWidget(Tool):
    """``drift_correct`` on one stack, its drift over time, and the same shifts for other layers."""

    title = "Drift correction"

    def __init__(self, napari_viewer: Any) -> None:
        from .widgets import _param_field

        super().__init__(napari_viewer)
        self.operation = catalog.get(OPERATION)
        self.source = self.chooser("stack", accept=_is_stack)
        self.fields = {p.name: _param_field(p, lambda *_: []) for p in self.operation.params}
        self.device = ComboBox(label="device", choices=list(_backend.DEVICES), value="auto")
        self.run_button = PushButton(text="Run: estimate and correct")
        self.other = self.chooser("other layer", accept=_is_stack, nullable=True)
        self.apply_button = PushButton(text="Apply the same shifts to the other layer")
        self.plot = DriftPlot()
        self.add(self.source, *(field.widget for field in self.fields.values()), self.device, self.run_button,
                 self.other, self.apply_button)
        self.add_plot(self.plot)
        self.busy_widgets = [self.run_button]
        self.distinct(self.source, self.other)
        self.source.prefer(self.viewer.layers.selection.active)
        self.shifts: np.ndarray | None = None
        self._measured_on: Any = None
        self.run_button.changed.connect(lambda *_: self.run())
        self.apply_button.changed.connect(lambda *_: self.apply_to(self.other.value))

    def set_params(self, **values: Any) -> None:
        """Set operation parameters by name."""
        for name, value in values.items():
            self.fields[name].set(value)

    def params(self) -> dict:
        """The ``drift_correct`` parameters of the controls, validated by the operation."""
        return self.operation.bind({name: field.get() for name, field in self.fields.items()})

    def _stack(self, layer: Any) -> Any:
        """``(T, M, N)``: the layer, or for ``(T, ..., M, N)`` the channel/plane the viewer shows."""
        data = _layers.source_data(layer)
        if data.ndim == 3:
            return data
        index = _layers.shown_index(self.viewer, layer, 2)
        return data[(slice(None),) + index[1:]]

    @action
    def run(self) -> Any:
        """Estimate the drift of the chosen stack in a worker, then correct it; returns the worker."""
        layer = self.source.value
        if layer is None:
            raise ValueError("choose a stack (T, Y, X) to correct")
        params = self.params()
        stack = self._stack(layer)
        estimate = {k: v for k, v in params.items() if k != "order"}
        return self.launch(
            drift, stack, device=self.device.value, **estimate,
            on_result=lambda shifts: self._estimated(layer, stack, params, shifts),
            description=f"Estimating the drift of {layer.name!r} over {stack.shape[0]} frames", inputs=[layer],
        )

    def _estimated(self, layer: Any, stack: Any, params: dict, shifts: np.ndarray) -> None:
        self.shifts = np.asarray(shifts, dtype=float)
        self._measured_on = layer
        self.plot.show_shifts(self.shifts, tuple(layer.scale[-2:]), str(layer.units[-1]))
        lazy = _backend.as_dask(stack, chunks=(1,) + tuple(stack.shape[-2:]))
        step = self.operation.step(params)
        step["result"] = {"shifts": self.shifts.tolist()}
        self.publish(apply_drift(lazy, shifts=self.shifts, order=params["order"]), source=layer,
                     name=f"{layer.name} {OPERATION}", steps=[step], frame=_time_frame(layer),
                     colormap=layer.colormap.name, contrast_limits=tuple(layer.contrast_limits))
        largest = float(np.abs(self.shifts).max()) if len(self.shifts) else 0.0
        self.say(f"Max drift {largest:.2f} px over {len(self.shifts)} frames.")

    @action
    def apply_to(self, layer: Any) -> Any:
        """Add ``"<layer> apply_drift"``: ``layer`` corrected with the measured shifts (lazy)."""
        if isinstance(layer, str):
            layer = self.viewer.layers[layer]
        if self.shifts is None:
            raise ValueError("estimate the drift first (Run)")
        if layer is None:
            raise ValueError("choose the other layer to correct")
        data = self._stack(layer)
        if data.shape[0] != len(self.shifts):
            raise ValueError(f"{layer.name!r} has {data.shape[0]} frames, the drift {len(self.shifts)}")
        lazy = _backend.as_dask(data, chunks=(1,) + tuple(data.shape[-2:]))
        order = int(self.fields["order"].get())
        step = drift_step(self.shifts, order, self._measured_on.name)
        return self.publish(apply_drift(lazy, shifts=self.shifts, order=order), source=layer,
                            name=f"{layer.name} apply_drift", steps=[step],
                            frame=_time_frame(layer),
                            colormap=layer.colormap.name, contrast_limits=tuple(layer.contrast_limits))
