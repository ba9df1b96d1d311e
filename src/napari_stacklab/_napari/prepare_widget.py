"""Prepare one image: a chain of registry filters with a live result.

Bilateral smoothing, colour saturation (RGB), CLAHE, unsharp masking, gamma
and gain, each switched off at its neutral value, are applied in that order
to the chosen image and shown live as ``"<input> prepared"``. The chain is
recorded as recipe steps in the result's ``metadata["stacklab"]`` (for gray
images; colour images run each 2-D step per channel, recorded under
``"stacklab_prepare"``). A button shows the original and the result side by
side (napari's grid mode) and back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSlider, Label, PushButton, SpinBox

from .. import catalog
from ..recipe import provenance
from ._layers import add_or_replace, spatial_kwargs

__all__ = ["PrepareImageWidget", "prepare_steps"]


def prepare_steps(
    *,
    bilateral: float = 0.0,
    saturation: float = 1.0,
    clahe_clip: float = 0.0,
    clahe_tiles: int = 8,
    sharpen_sigma: float = 1.0,
    sharpen_amount: float = 0.0,
    gamma: float = 1.0,
    gain: float = 1.0,
    frame_shape: tuple = (256, 256),
    rgb: bool = False,
) -> list[dict]:
    """The recipe steps for these settings; neutral settings add no step."""
    steps = []
    if bilateral > 0:
        steps.append({"op": "bilateral", "params": {"sigma_spatial": float(bilateral)}})
    if rgb and saturation != 1.0:
        steps.append({"op": "adjust_saturation", "params": {"factor": float(saturation)}})
    if clahe_clip > 0:
        kernel = max(2, int(min(frame_shape)) // int(clahe_tiles))
        steps.append({"op": "clahe", "params": {"clip_limit": float(clahe_clip), "kernel_size": kernel}})
    if sharpen_amount != 0:
        steps.append({"op": "unsharp_mask", "params": {"radius": float(sharpen_sigma), "amount": float(sharpen_amount)}})
    if gamma != 1.0:
        steps.append({"op": "adjust_gamma", "params": {"gamma": float(gamma)}})
    if gain != 1.0:
        steps.append({"op": "adjust_gain", "params": {"gain": float(gain)}})
    return steps


def run_steps(data: Any, steps: list[dict], rgb: bool) -> Any:
    """Apply ``steps``; for RGB data the 2-D steps run on each colour channel."""
    for step in steps:
        op = catalog.get(step["op"])
        if rgb and op.frame_ndim == 2:
            data = np.moveaxis(op(np.moveaxis(data, -1, 0), **step["params"]), 0, -1)
        else:
            data = op(data, **step["params"])
    return data


class PrepareImageWidget(Container):
    """Sliders for a filter chain, a live ``"<input> prepared"`` layer and a side-by-side toggle."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.image = ComboBox(label="image", choices=self._choices)
        self.bilateral = FloatSlider(label="bilateral sigma (0 = off)", min=0, max=10, step=0.5, value=0)
        self.saturation = FloatSlider(label="saturation (RGB)", min=0, max=3, step=0.1, value=1)
        self.clahe_clip = FloatSlider(label="CLAHE clip (0 = off)", min=0, max=0.1, step=0.005, value=0)
        self.clahe_tiles = SpinBox(label="CLAHE tile grid", min=1, max=64, value=8)
        self.sharpen_sigma = FloatSlider(label="sharpen sigma", min=0.1, max=10, step=0.1, value=1)
        self.sharpen_amount = FloatSlider(label="sharpen amount", min=0, max=5, step=0.1, value=0)
        self.gamma = FloatSlider(label="gamma", min=0.1, max=5, step=0.05, value=1)
        self.gain = FloatSlider(label="gain", min=0, max=5, step=0.05, value=1)
        self.compare_button = PushButton(text="Side by side with original")
        self.status = Label(value="")
        self.controls = [
            self.bilateral, self.saturation, self.clahe_clip, self.clahe_tiles,
            self.sharpen_sigma, self.sharpen_amount, self.gamma, self.gain,
        ]
        self.extend([self.image, *self.controls, self.compare_button, self.status])
        for widget in [self.image, *self.controls]:
            widget.changed.connect(lambda *_: self.update())
        self.compare_button.changed.connect(lambda *_: self.toggle_compare())
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).connect(self._layers_changed)
        self.native.destroyed.connect(self._disconnect)
        self.reset_choices()

    def _choices(self, *_: Any) -> list[tuple[str, Any]]:
        from napari.layers import Image

        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Image) and not layer.name.endswith(" prepared")
        ]

    def _layers_changed(self, *_: Any) -> None:
        self.reset_choices()

    def _disconnect(self, *_: Any) -> None:
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).disconnect(self._layers_changed)

    def steps(self) -> list[dict]:
        layer = self.image.value
        rgb = bool(layer is not None and layer.rgb)
        shape = tuple(layer.data.shape[-3:-1] if rgb else layer.data.shape[-2:]) if layer is not None else (256, 256)
        return prepare_steps(
            bilateral=self.bilateral.value,
            saturation=self.saturation.value,
            clahe_clip=self.clahe_clip.value,
            clahe_tiles=self.clahe_tiles.value,
            sharpen_sigma=self.sharpen_sigma.value,
            sharpen_amount=self.sharpen_amount.value,
            gamma=self.gamma.value,
            gain=self.gain.value,
            frame_shape=shape,
            rgb=rgb,
        )

    def update(self) -> Any:
        """Recompute ``"<input> prepared"`` from the current settings; return the layer."""
        layer = self.image.value
        if layer is None:
            return None
        steps = self.steps()
        data = run_steps(layer.data, steps, layer.rgb)
        if not steps:
            data = data.astype(np.float32) if np.dtype(data.dtype).kind in "iub" else data
        kwargs = spatial_kwargs(layer, layer.ndim)
        if layer.rgb:
            kwargs["metadata"] = {**layer.metadata, "stacklab_prepare": {"steps": steps, "per_channel": True}}
            kwargs["rgb"] = True
        else:
            kwargs["metadata"] = provenance(layer.metadata, steps, source=layer.name)
        kwargs["name"] = f"{layer.name} prepared"
        out = add_or_replace(self.viewer, data, kwargs, "image")
        if layer.rgb:
            out.contrast_limits = (0.0, float(np.max(data)) or 1.0)
        self.status.value = " -> ".join(s["op"] for s in steps) or "no step (all neutral)"
        return out

    def toggle_compare(self) -> bool:
        """Switch napari's grid (original and result side by side) on or off; return the new state."""
        grid = self.viewer.canvas.grid
        grid.enabled = not grid.enabled
        if grid.enabled:
            grid.stride = 1
        self.compare_button.text = "Overlay (toggle result)" if grid.enabled else "Side by side with original"
        return grid.enabled
