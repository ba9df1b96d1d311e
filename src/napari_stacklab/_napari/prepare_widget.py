"""Prepare one image: a chain of registry filters, previewed live, applied at full resolution in a worker.

Bilateral smoothing, colour saturation (RGB), CLAHE, unsharp masking, gamma
and gain, each switched off at its neutral value, are applied in that order.
Moving a slider previews the chain on a downsampled copy of the frame the
viewer shows (``"<input> prepared (preview)"``, at most about
:data:`PREVIEW_PIXELS` pixels, computed in the background after the slider
rests for :data:`PREVIEW_DELAY_MS`), so dragging never blocks the window.
*Apply* runs the chain on the whole image in a worker (one progress step per
filter, Cancel between filters) and adds ``"<input> prepared"``, which records
the chain as recipe steps in ``metadata["stacklab"]``. Every step is told
whether the image is colour (``rgb=layer.rgb``) and follows its operation's
colour policy (:mod:`napari_stacklab.channels`): on a colour image the
bilateral weights use colour distances, CLAHE works on lightness and gamma
and gain on the brightest channel, so hue is kept and uint8 RGB stays uint8
RGB; the steps replay as they are, with :meth:`Recipe.run` or ``stacklab run``
on the colour image. A button shows the original and the result side by side
(napari's grid mode) and back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import FloatSlider, Label, PushButton, SpinBox
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy

from .. import _backend, catalog
from . import _layers
from ._tool import Latest, Tool, action

__all__ = ["PrepareImageWidget", "prepare_steps", "run_steps", "PREVIEW_PIXELS", "PREVIEW_DELAY_MS"]

#: The preview is computed on a copy of about this many pixels (every k-th row and column).
PREVIEW_PIXELS = 512 * 512
#: Milliseconds a slider must rest before the preview is computed.
PREVIEW_DELAY_MS = 120
#: Parameters measured in pixels: divided by the preview's stride so the preview looks like the result.
_PIXEL_PARAMS = {"bilateral": ("sigma_spatial",), "unsharp_mask": ("radius",), "clahe": ("kernel_size",)}


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


def _apply_step(data: Any, step: dict, rgb: bool) -> Any:
    return catalog.get(step["op"])(data, rgb=rgb, **step["params"])


def run_steps(data: Any, steps: list[dict], rgb: bool) -> Any:
    """Apply ``steps`` in order, each told whether ``data`` is colour (channels last); computed."""
    for step in steps:
        data = _apply_step(data, step, rgb)
    return _backend.materialize(data)


def run_steps_with_progress(data: Any, steps: list[dict], rgb: bool):
    """Worker task: :func:`run_steps`, one progress step (and cancel point) per filter."""
    yield ("total", max(len(steps), 1))
    for step in steps:
        data = _backend.materialize(_apply_step(data, step, rgb))
        yield ("step", 1)
    return _backend.materialize(data)


def colour_limits(result: Any) -> tuple[float, float]:
    """Contrast limits of a colour result: the dtype's range for integers (uint8: 0-255), else 0 to its maximum."""
    dtype = np.dtype(result.dtype)
    if dtype.kind in "iu":
        return float(max(np.iinfo(dtype).min, 0)), float(np.iinfo(dtype).max)
    return 0.0, float(np.max(result)) or 1.0


def _preview_steps(steps: list[dict], stride: int) -> list[dict]:
    """``steps`` for a copy subsampled by ``stride``: pixel-sized parameters shrink with it."""
    if stride == 1:
        return steps
    scaled = []
    for step in steps:
        params = dict(step["params"])
        for name in _PIXEL_PARAMS.get(step["op"], ()):
            value = params[name] / stride
            params[name] = max(2, int(round(value))) if isinstance(params[name], int) else max(value, 0.1)
        scaled.append({"op": step["op"], "params": params})
    return scaled


class PrepareImageWidget(Tool):
    """Sliders for a filter chain, a live downsampled preview, Apply at full resolution, side by side."""

    title = "Prepare image"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.image = self.chooser("image")
        self.bilateral = FloatSlider(label="bilateral sigma (px, 0 = off)", min=0, max=10, step=0.5, value=0)
        self.saturation = FloatSlider(label="saturation (RGB)", min=0, max=3, step=0.1, value=1)
        self.clahe_clip = FloatSlider(label="CLAHE clip (0 = off)", min=0, max=0.1, step=0.005, value=0)
        self.clahe_tiles = SpinBox(label="CLAHE tile grid", min=1, max=64, value=8)
        self.sharpen_sigma = FloatSlider(label="sharpen sigma (px)", min=0.1, max=10, step=0.1, value=1)
        self.sharpen_amount = FloatSlider(label="sharpen amount", min=0, max=5, step=0.1, value=0)
        self.gamma = FloatSlider(label="gamma", min=0.1, max=5, step=0.05, value=1)
        self.gain = FloatSlider(label="gain", min=0, max=5, step=0.05, value=1)
        self.chain = Label(value="no step (all neutral)")
        self.chain.native.setWordWrap(True)
        # a long chain wraps within the dock's width instead of widening the tool past it
        self.chain.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.apply_button = PushButton(text="Apply (full resolution)")
        self.compare_button = PushButton(text="Side by side with original")
        self.controls = [
            self.bilateral, self.saturation, self.clahe_clip, self.clahe_tiles,
            self.sharpen_sigma, self.sharpen_amount, self.gamma, self.gain,
        ]
        self.add(self.image, *self.controls, self.chain, self.apply_button, self.compare_button)
        self.busy_widgets = [self.apply_button]
        self.image.prefer(self.viewer.layers.selection.active)
        self._previews = Latest(self)
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self.update_preview)
        for widget in [self.image, *self.controls]:
            widget.changed.connect(lambda *_: self._timer.start())
        self.apply_button.changed.connect(lambda *_: self.apply())
        self.compare_button.changed.connect(lambda *_: self.toggle_compare())

    @property
    def previewing(self) -> bool:
        """True while a preview waits for the sliders to rest or is being computed."""
        return self._timer.isActive() or self._previews.busy

    def steps(self) -> list[dict]:
        """The recipe steps of the current settings for the chosen image."""
        layer = self.image.value
        rgb = bool(layer is not None and layer.rgb)
        shape = tuple(_layers.source_data(layer).shape[-3:-1] if rgb else _layers.source_data(layer).shape[-2:]) \
            if layer is not None else (256, 256)
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

    @action
    def update_preview(self) -> None:
        """Preview the chain on a downsampled copy of the shown frame (in the background)."""
        self._timer.stop()
        layer = self.image.value
        if layer is None:
            return
        frame = self.shown_frame(layer)
        spatial = frame.shape[:2] if layer.rgb else frame.shape
        stride = max(1, int(np.ceil(np.sqrt(spatial[0] * spatial[1] / PREVIEW_PIXELS))))
        copy = frame[::stride, ::stride]
        steps = self.steps()
        self.chain.value = " -> ".join(s["op"] for s in steps) or "no step (all neutral)"
        self._previews.request(run_steps, copy, _preview_steps(steps, stride), layer.rgb,
                               on_result=lambda result: self._show_preview(layer, stride, result))

    def _show_preview(self, layer: Any, stride: int, result: np.ndarray) -> None:
        if layer not in self.viewer.layers:
            return
        frame = _layers.spatial_kwargs(layer, 2)
        frame["scale"] = tuple(s * stride for s in frame["scale"])
        rgb = {"rgb": True, "contrast_limits": colour_limits(result)} if layer.rgb else {}
        self.publish(result, source=layer, name=f"{layer.name} prepared (preview)", role="preview", frame=frame,
                     **rgb)

    @action
    def apply(self) -> Any:
        """Run the chain on the whole image in a worker; returns the worker."""
        layer = self.image.value
        if layer is None:
            raise ValueError("choose an image to prepare")
        steps = self.steps()
        return self.launch(
            run_steps_with_progress, _layers.source_data(layer), steps, layer.rgb,
            on_result=lambda result: self._show(layer, steps, result),
            description=f"Preparing {layer.name!r} ({len(steps)} step(s))", inputs=[layer],
        )

    def _show(self, layer: Any, steps: list[dict], result: np.ndarray) -> Any:
        extra = {"rgb": True, "contrast_limits": colour_limits(result)} if layer.rgb else {}
        out = self.publish(result, source=layer, name=f"{layer.name} prepared", steps=steps, **extra)
        preview = f"{layer.name} prepared (preview)"
        if preview in self.viewer.layers:
            self.viewer.layers.remove(preview)
        self.say(f"{out.name}: " + (" -> ".join(s["op"] for s in steps) or "no step (all neutral)"))
        return out

    @action
    def toggle_compare(self) -> bool:
        """Switch napari's grid (original and result side by side) on or off; return the new state."""
        grid = self.viewer.canvas.grid
        grid.enabled = not grid.enabled
        if grid.enabled:
            grid.stride = 1
        self.compare_button.text = "Overlay (toggle result)" if grid.enabled else "Side by side with original"
        return grid.enabled

    def on_close(self) -> None:
        self._timer.stop()
        self._previews.drop()
