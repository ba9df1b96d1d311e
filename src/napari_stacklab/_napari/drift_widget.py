"""Drift correction of a time-lapse, with a drift-over-time plot and reuse on other channels.

"Estimate and correct" measures the per-frame drift of the chosen stack in a
worker thread (the GUI stays responsive), plots the row and column drift over
time, and adds ``"<stack> drift corrected"`` (lazy). "Apply to layer" corrects
another layer of the same acquisition (a second channel, shape ``(T, ...)``)
with the same shifts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, SpinBox
from .plot import DarkCanvas
from napari.layers import Image
from napari.qt.threading import thread_worker

from .. import _backend
from ..register import REFERENCES, apply_drift, drift

__all__ = ["DriftWidget", "DriftPlot"]


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


class DriftWidget(Container):
    """Estimate drift on one stack, show it over time, correct it and other layers lazily."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.source = ComboBox(label="stack", choices=self._stack_names)
        self.reference = ComboBox(label="reference", choices=list(REFERENCES), value="first")
        self.upsample = SpinBox(label="upsample", value=20, min=1, max=1000)
        self.refine = CheckBox(text="refine with ECC", value=True)
        self.device = ComboBox(label="device", choices=list(_backend.DEVICES), value="auto")
        self.estimate_button = PushButton(text="Estimate and correct")
        self.other = ComboBox(label="other layer", choices=self._stack_names)
        self.apply_button = PushButton(text="Apply same shifts to layer")
        self.status = Label(value="")
        self.plot = DriftPlot()
        self.extend([self.source, self.reference, self.upsample, self.refine, self.device, self.estimate_button,
                     self.other, self.apply_button, self.status])
        self.native.layout().addWidget(self.plot)
        self.shifts: np.ndarray | None = None
        self.worker = None
        self.estimate_button.changed.connect(lambda *_: self.estimate())
        self.apply_button.changed.connect(lambda *_: self.apply_to(self.other.value))
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).connect(self._reset_choices)

    def _stack_names(self, *_: Any) -> list[str]:
        return [layer.name for layer in self.viewer.layers if isinstance(layer, Image) and layer.ndim >= 3]

    def _reset_choices(self, *_: Any) -> None:
        self.source.reset_choices()
        self.other.reset_choices()

    def _stack(self, layer: Any) -> Any:
        """``(T, M, N)``: the layer itself, or for ``(T, ..., M, N)`` the displayed channel/plane."""
        data = layer.data[0] if layer.multiscale else layer.data
        if data.ndim == 3:
            return data
        position = layer.world_to_data(self.viewer.dims.point)
        middle = tuple(int(np.clip(round(p), 0, s - 1)) for p, s in zip(position[1:-2], data.shape[1:-2]))
        return data[(slice(None),) + middle]

    def estimate(self) -> Any:
        """Start the drift estimate in a worker thread; returns the worker."""
        if self.source.value is None:
            self.status.value = "Choose a stack (T, Y, X)."
            return None
        layer = self.viewer.layers[self.source.value]
        stack = self._stack(layer)
        params = {"reference": self.reference.value, "upsample": self.upsample.value, "refine": self.refine.value,
                  "device": self.device.value}
        self.status.value = f"Estimating drift over {stack.shape[0]} frames..."
        self.estimate_button.enabled = False
        self.worker = thread_worker(drift, start_thread=False, ignore_errors=True)(stack, **params)
        self.worker.returned.connect(lambda shifts: self._estimated(layer, shifts))
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(lambda: setattr(self.estimate_button, "enabled", True))
        self.worker.start()
        return self.worker

    def _failed(self, exc: Exception) -> None:
        self.status.value = f"Drift estimate failed: {exc}"

    def _estimated(self, layer: Any, shifts: np.ndarray) -> None:
        if layer not in self.viewer.layers:  # removed meanwhile: the chooser may name another stack now
            self.status.value = f"{layer.name!r} was removed during the estimate; nothing added."
            return
        self.shifts = shifts
        self.plot.show_shifts(shifts, tuple(layer.scale[-2:]), str(layer.units[-1]))
        largest = float(np.abs(shifts).max()) if len(shifts) else 0.0
        self.status.value = f"Max drift {largest:.2f} px over {len(shifts)} frames."
        self.apply_to(layer.name)

    def apply_to(self, name: str | None) -> Any:
        """Add ``"<name> drift corrected"``: ``name`` corrected with the measured shifts (lazy)."""
        if self.shifts is None or name is None:
            self.status.value = "Estimate the drift first."
            return None
        layer = self.viewer.layers[name]
        data = layer.data[0] if layer.multiscale else layer.data
        if data.shape[0] != len(self.shifts):
            self.status.value = f"{name!r} has {data.shape[0]} frames, the drift {len(self.shifts)}."
            return None
        lazy = _backend.as_dask(data, chunks=(1,) * (data.ndim - 2) + tuple(data.shape[-2:]))
        corrected = apply_drift(lazy, self.shifts)
        out_name = f"{name} drift corrected"
        if out_name in self.viewer.layers:
            self.viewer.layers.remove(out_name)
        metadata = dict(layer.metadata)
        metadata["stacklab_drift"] = self.shifts.tolist()
        return self.viewer.add_image(
            corrected, name=out_name, scale=layer.scale, translate=layer.translate, units=layer.units,
            axis_labels=layer.axis_labels, colormap=layer.colormap.name, contrast_limits=layer.contrast_limits,
            metadata=metadata,
        )
