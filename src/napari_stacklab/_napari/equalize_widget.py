"""Equalize brightness, contrast and sharpness across several image layers.

The first step of the *compare a set of images* workflow: choose the image
layers, a reference (one of them, or the median of the set), the method, and
whether sharpness should be matched too; every input gets a new layer
``"<input> equalized"`` (re-running replaces it).
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, Select

from ..equalize import EQUALIZE_METHODS, equalize_set
from ._layers import add_or_replace, spatial_kwargs

__all__ = ["EqualizeSetWidget"]

MEDIAN = "median of the set"


def _gray_images(viewer: Any) -> list:
    from napari.layers import Image

    return [layer for layer in viewer.layers if isinstance(layer, Image) and not layer.rgb]


class EqualizeSetWidget(Container):
    """Choose image layers and a reference; add one equalized layer per input."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.images = Select(label="images", choices=self._image_choices)
        self.reference = ComboBox(label="reference", choices=self._reference_choices)
        self.method = ComboBox(label="method", choices=list(EQUALIZE_METHODS), value="meanstd")
        self.sharpness = CheckBox(label="match sharpness", value=False)
        self.run_button = PushButton(text="Equalize")
        self.status = Label(value="")
        self.extend([self.images, self.reference, self.method, self.sharpness, self.run_button, self.status])
        self.run_button.changed.connect(lambda *_: self.run())
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).connect(self._layers_changed)
        self.native.destroyed.connect(self._disconnect)
        self.reset_choices()

    def _image_choices(self, *_: Any) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in _gray_images(self.viewer)]

    def _reference_choices(self, *_: Any) -> list[tuple[str, Any]]:
        return [(MEDIAN, "median")] + [(layer.name, layer.name) for layer in _gray_images(self.viewer)]

    def _layers_changed(self, *_: Any) -> None:
        self.reset_choices()

    def _disconnect(self, *_: Any) -> None:
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).disconnect(self._layers_changed)

    def run(self) -> list:
        """Equalize the chosen layers; return the output layers."""
        layers = list(self.images.value)
        if not layers:
            raise ValueError("choose at least one image layer to equalize")
        names = [layer.name for layer in layers]
        reference = self.reference.value
        if reference != "median":
            if reference not in names:
                raise ValueError(f"the reference {reference!r} must be one of the chosen images {names}")
            reference = names.index(reference)
        results = equalize_set(
            [layer.data for layer in layers],
            reference=reference,
            method=self.method.value,
            sharpness=self.sharpness.value,
        )
        record = {
            "images": names,
            "reference": self.reference.value if reference == "median" else names[reference],
            "method": self.method.value,
            "sharpness": bool(self.sharpness.value),
        }
        outputs = []
        for layer, data in zip(layers, results):
            kwargs = spatial_kwargs(layer, data.ndim)
            kwargs["name"] = f"{layer.name} equalized"
            kwargs["metadata"] = {**layer.metadata, "equalize_set": record}
            outputs.append(add_or_replace(self.viewer, data, kwargs, "image"))
        # one display range for the whole set, so equal levels look equal
        low = min(float(out.contrast_limits[0]) for out in outputs)
        high = max(float(out.contrast_limits[1]) for out in outputs)
        for out in outputs:
            out.contrast_limits = (low, high)
        self.status.value = f"equalized {len(outputs)} image(s) to {record['reference']}"
        return outputs
