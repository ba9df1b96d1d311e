"""Equalize brightness, contrast and sharpness across several image layers.

The first step of the *compare a set of images* workflow: choose the image
layers, a reference (one of them, or the median of the set), the method, and
whether sharpness should be matched too; every input gets a new layer
``"<input> equalized"`` (re-running replaces it), all shown with one display
range. The computation runs in a worker with a progress bar and Cancel.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, PushButton, Select

from .. import _backend
from ..equalize import EQUALIZE_METHODS, equalize_set
from . import _layers
from ._tool import LayerFilter, Tool, action

__all__ = ["EqualizeSetWidget", "MEDIAN"]

MEDIAN = "median of the set"


def equalize_task(images: list, **params: Any) -> list:
    """Worker task: equalize, then compute every result (they are shown at once)."""
    return [_backend.materialize(out) for out in equalize_set(images, **params)]


def _gray(layer: Any) -> bool:
    return not layer.rgb


class EqualizeSetWidget(Tool):
    """Choose image layers and a reference; add one equalized layer per input."""

    title = "Equalize a set"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.images = Select(label="images", choices=LayerFilter(self.viewer, accept=_gray).choices)
        self.images.native.setMaximumHeight(140)
        self.reference = ComboBox(label="reference", choices=self._reference_choices)
        self.method = ComboBox(label="method", choices=list(EQUALIZE_METHODS), value="meanstd")
        self.sharpness = CheckBox(text="match sharpness", value=False)
        self.run_button = PushButton(text="Equalize")
        self.add(self.images, self.reference, self.method, self.sharpness, self.run_button)
        self.busy_widgets = [self.run_button]
        self.images.changed.connect(lambda *_: self.reference.reset_choices())
        self.run_button.changed.connect(lambda *_: self.run())
        self.reset_choices()

    def _reference_choices(self, *_: Any) -> list[tuple[str, Any]]:
        chosen = list(self.images.value) if hasattr(self, "images") else []
        return [(MEDIAN, "median")] + [(layer.name, layer.name) for layer in chosen]

    @action
    def run(self) -> Any:
        """Equalize the chosen layers in a worker; returns the worker (None if refused)."""
        layers = list(self.images.value)
        if not layers:
            raise ValueError("choose at least one image layer to equalize")
        names = [layer.name for layer in layers]
        reference = self.reference.value
        if reference is None:
            raise ValueError("choose a reference (one of the chosen images, or the median of the set)")
        if reference != "median":
            if reference not in names:
                raise ValueError(f"the reference {reference!r} must be one of the chosen images {names}")
            reference = names.index(reference)
        params = {"reference": reference, "method": self.method.value, "sharpness": bool(self.sharpness.value)}
        return self.launch(
            equalize_task, [_layers.source_data(layer) for layer in layers], **params,
            on_result=lambda results: self._show(layers, params, results),
            description=f"Equalizing {len(layers)} image(s)", inputs=layers,
        )

    def _show(self, layers: list, params: dict, results: list) -> list:
        names = [layer.name for layer in layers]
        reference = params["reference"]
        record = {**params, "reference": reference if reference == "median" else names[reference]}
        outputs = []
        for index, (layer, data) in enumerate(zip(layers, results)):
            step = {"op": "equalize_set", "params": {**record, "images": names, "index": index}}
            outputs.append(self.publish(data, source=layer, name=f"{layer.name} equalized", steps=[step],
                                        colormap=layer.colormap.name))
        # one display range for the whole set, so equal levels look equal
        low = min(float(out.contrast_limits[0]) for out in outputs)
        high = max(float(out.contrast_limits[1]) for out in outputs)
        for out in outputs:
            out.contrast_limits = (low, high)
        self.say(f"Equalized {len(outputs)} image(s) to {record['reference']}.")
        self.outputs = outputs
        return outputs
