"""Equalize brightness, contrast and sharpness across several image layers.

The first step of the *compare a set of images* workflow: choose the image
layers (all grey, or all colour: then their CIELAB lightness is equalized,
hue and chroma kept), a reference (one of them, or the median of the set),
the method, and whether sharpness should be matched too; every input gets a
new layer ``"<input> equalized"`` (re-running replaces it), grey ones shown
with one display range. The computation runs in a worker with a progress bar
(a step per image) and Cancel.

Each result records one registry step, ``equalize_levels`` with the levels
its image was brought to (numbers, or the reference layer's name for
histogram matching to one of the images), so it replays alone with
``stacklab run`` and brings other images to the same levels.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, PushButton, Select

from .. import _backend, catalog
from ..equalize import EQUALIZE_METHODS, equalize_levels, equalize_targets
from . import _layers
from ._tool import LayerFilter, Tool, action

__all__ = ["EqualizeSetWidget", "MEDIAN", "equalize_task"]

MEDIAN = "median of the set"


def equalize_task(images: list, *, rgb: bool, **settings: Any):
    """Worker task: the set's targets, then each image brought to them (a progress step each)."""
    yield ("total", len(images) + 1)
    targets = equalize_targets(images, rgb=rgb, **settings)
    yield ("step", 1)
    results = []
    for image, levels in zip(images, targets):
        results.append(_backend.materialize(equalize_levels(image, rgb=rgb, **levels)))
        yield ("step", 1)
    return targets, results


class EqualizeSetWidget(Tool):
    """Choose image layers and a reference; add one equalized layer per input."""

    title = "Equalize a set"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.images = Select(label="images", choices=LayerFilter(self.viewer).choices)
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
        colour = {bool(layer.rgb) for layer in layers}
        if len(colour) > 1:
            raise ValueError("choose images of one kind: all grey or all colour (RGB)")
        params = {"reference": reference, "method": self.method.value, "sharpness": bool(self.sharpness.value)}
        return self.launch(
            equalize_task, [_layers.source_data(layer) for layer in layers], rgb=colour.pop(), **params,
            on_result=lambda found: self._show(layers, params, *found),
            description=f"Equalizing {len(layers)} image(s)", inputs=layers,
        )

    def _show(self, layers: list, params: dict, targets: list, results: list) -> list:
        op = catalog.get("equalize_levels")
        reference = params["reference"]
        refs = {} if reference == "median" else {"reference": layers[reference].name}
        outputs = []
        for layer, levels, data in zip(layers, targets, results):
            display = {"rgb": True} if layer.rgb else {"colormap": layer.colormap.name}
            outputs.append(self.publish(data, source=layer, name=f"{layer.name} equalized",
                                        steps=[op.step(levels, refs)], **display))
        grey = [out for out in outputs if not out.rgb]
        if grey:  # one display range for the whole set, so equal levels look equal
            low = min(float(out.contrast_limits[0]) for out in grey)
            high = max(float(out.contrast_limits[1]) for out in grey)
            for out in grey:
                out.contrast_limits = (low, high)
        self.say(f"Equalized {len(outputs)} image(s) to {'the median' if not refs else refs['reference']}.")
        self.outputs = outputs
        return outputs
