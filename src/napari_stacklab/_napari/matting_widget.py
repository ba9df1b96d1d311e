"""Background removal: mask -> trimap -> alpha matte -> subject, and saving the results.

The mask comes from intensity thresholds or from a Labels layer (drawn or
segmented); alpha matting (PyMatting) softens its edges; the subject is put
on a transparent, white or black background. The thresholds are fractions of
the image's value range (0 = its minimum, 1 = its maximum), so they work the
same on 8-bit, 16-bit and float images. The computation runs in a worker;
outputs are the layers ``"<input> mask"``, ``"<input> alpha"`` and
``"<input> subject"``, each recording the registry operation
``remove_background`` with the thresholds in the image's units (a Labels
mask is recorded by its layer name), so its recipe replays with
``stacklab run`` (``--image NAME=FILE`` for the mask). *Save* writes the
original, the background-removed image and the subject (cropped to the mask)
to a folder it asks for, asking again before replacing existing files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, PushButton, SpinBox

from .. import _backend, catalog
from ..matting import BACKGROUNDS, extract_subject, remove_background
from . import _layers
from ._tool import OUTPUT, Tool, action

__all__ = ["BackgroundRemovalWidget", "save_results", "value_range"]

THRESHOLD, LABELS = "intensity thresholds", "labels layer"


def _writable(image: np.ndarray, fmt: str) -> str:
    """PNG holds 8/16-bit integers only; anything else is written as TIFF."""
    if fmt == "png" and image.dtype in (np.uint8, np.uint16):
        return "png"
    return "tif"


def _write(path: Path, image: np.ndarray) -> None:
    if path.suffix == ".png":
        import imageio.v3 as iio

        iio.imwrite(path, image)
    else:
        import tifffile

        tifffile.imwrite(path, image, photometric="rgb" if image.ndim == 3 and image.shape[-1] in (3, 4) else None)


def planned_files(folder: Path, name: str, images: dict, fmt: str) -> dict:
    """``{path: image}`` for ``images`` (keys are file-name suffixes) in ``folder``."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return {folder / f"{stem}_{key}.{_writable(image, fmt)}": image for key, image in images.items()}


def save_results(folder: Path, name: str, images: dict, fmt: str = "png", overwrite: bool = False) -> list[Path]:
    """Write every image; refuse (``FileExistsError``) to replace a file unless ``overwrite``."""
    folder = Path(folder)
    files = planned_files(folder, name, images, fmt)
    existing = [p for p in files if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"these files exist: {[str(p) for p in existing]}")
    folder.mkdir(parents=True, exist_ok=True)
    for path, image in files.items():
        _write(path, image)
    return list(files)


def value_range(image: np.ndarray) -> tuple[float, float]:
    """The finite minimum and maximum of ``image`` (colour channels pooled, alpha left out)."""
    values = image[..., :3] if image.ndim == 3 else image
    finite = values[np.isfinite(values)] if values.dtype.kind in "fc" else values
    if finite.size == 0:
        raise ValueError("the image has no finite value")
    return float(finite.min()), float(finite.max())


def remove_background_task(image: Any, *, fractions: tuple | None, mask: Any = None, rgb: bool = False,
                           **params: Any) -> tuple:
    """Worker task: compute the image, turn threshold ``fractions`` of its range into values, remove.

    Returns ``(result, image, params)``: what :func:`remove_background` gave,
    the computed image and the parameters it was called with (thresholds in
    the image's units, as a recipe records them).
    """
    image = np.asarray(_backend.materialize(image))
    if fractions is not None:
        low, high = value_range(image)
        params["foreground"], params["background"] = (low + float(f) * (high - low) for f in fractions)
    if mask is not None:
        mask = np.asarray(_backend.materialize(mask))
    return remove_background(image, mask=mask, rgb=rgb, **params), image, params


class BackgroundRemovalWidget(Tool):
    """Remove the background of an image with a threshold or Labels mask and alpha matting."""

    title = "Remove background"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.image = self.chooser("image", accept=lambda layer: layer.ndim == 2)
        self.mask_source = ComboBox(label="mask from", choices=[THRESHOLD, LABELS], value=THRESHOLD)
        self.labels = self.chooser("labels layer", kinds=("labels",), nullable=True,
                                   accept=lambda layer: layer.ndim == 2)
        self.foreground = FloatSpinBox(label="foreground (fraction of range)", min=0, max=1, value=0.5, step=0.05)
        self.background = FloatSpinBox(label="background (fraction of range)", min=0, max=1, value=0.25, step=0.05)
        self.erode_size = SpinBox(label="erode size (px)", min=0, max=200, value=10)
        self.mask_only = CheckBox(text="mask only (no matting)", value=False)
        self.fill_holes = CheckBox(text="post-process: fill holes", value=True)
        self.min_size = SpinBox(label="post-process: min object (px)", min=0, max=10**7, value=64)
        self.new_background = ComboBox(label="background", choices=list(BACKGROUNDS), value="transparent")
        self.estimate_foreground = CheckBox(text="estimate edge colours", value=True)
        self.run_button = PushButton(text="Remove background")
        self.folder = FileEdit(label="save to folder", mode="d", value="")
        self.format = ComboBox(label="format", choices=["png", "tif"], value="png")
        self.save_button = PushButton(text="Save original, removed, subject...")
        self.add(self.image, self.mask_source, self.labels, self.foreground, self.background, self.erode_size,
                 self.mask_only, self.fill_holes, self.min_size, self.new_background, self.estimate_foreground,
                 self.run_button, self.folder, self.format, self.save_button)
        self.busy_widgets = [self.run_button, self.save_button]
        self.image.prefer(self.viewer.layers.selection.active)
        self.result: dict | None = None
        self.mask_source.changed.connect(lambda *_: self._show_mask_source())
        self.run_button.changed.connect(lambda *_: self.run())
        self.save_button.changed.connect(lambda *_: self.save())
        self._show_mask_source()

    def _show_mask_source(self) -> None:
        thresholds = self.mask_source.value == THRESHOLD
        self.labels.visible = not thresholds
        self.foreground.visible = self.background.visible = thresholds

    def params(self) -> tuple[dict, dict]:
        """``(params, refs)``: the :func:`remove_background` options and the layers they refer to."""
        params = {
            "erode_size": int(self.erode_size.value), "fill_holes": bool(self.fill_holes.value),
            "min_size": int(self.min_size.value), "mask_only": bool(self.mask_only.value),
            "new_background": self.new_background.value,
            "estimate_foreground": bool(self.estimate_foreground.value and not self.mask_only.value),
        }
        if self.mask_source.value == LABELS:
            if self.labels.value is None:
                raise ValueError("choose a Labels layer for the mask (or use intensity thresholds)")
            return params, {"mask": self.labels.value}
        return params, {}

    @action
    def run(self) -> Any:
        """Compute mask, alpha and subject in a worker; returns the worker."""
        layer = self.image.value
        if layer is None:
            raise ValueError("choose a 2-D image (gray or colour)")
        params, refs = self.params()
        fractions = None if refs else (self.foreground.value, self.background.value)
        arrays = {name: _layers.source_data(ref) for name, ref in refs.items()}
        return self.launch(
            remove_background_task, _layers.source_data(layer), fractions=fractions, rgb=bool(layer.rgb), **params,
            **arrays,
            on_result=lambda found: self._show(layer, refs, *found),
            description=f"Removing the background of {layer.name!r}", inputs=[layer, *refs.values()],
        )

    def _show(self, layer: Any, refs: dict, result: dict, image: np.ndarray, params: dict) -> dict:
        op = catalog.get("remove_background")
        step = op.step({**params, **refs}, refs={name: ref.name for name, ref in refs.items()})
        outputs = (("mask", result["mask"].astype(np.uint8), "labels"), ("alpha", result["alpha"], "image"),
                   ("subject", result["subject"], "image"))
        for key, data, kind in outputs:
            extra = {"rgb": True} if key == "subject" and data.ndim == 3 else {}
            self.publish(data, source=layer, name=f"{layer.name} {key}", kind=kind, steps=[step],
                         note={OUTPUT: key}, **extra)
        self.result = {**result, "image": image, "name": layer.name}
        count = int(result["mask"].sum())
        if count == 0:
            low, high = value_range(image)
            self.fail(f"the mask is empty: no pixel of {layer.name!r} reaches the foreground threshold "
                      f"{params.get('foreground', float('nan')):.4g} (its values span {low:.4g} to {high:.4g}); "
                      "lower the foreground fraction or draw a Labels mask")
        else:
            self.say(f"Foreground: {count} px of {result['mask'].size}.")
        return result

    def files(self) -> dict:
        """The images *Save* writes: original, background removed, subject cropped to the mask."""
        if self.result is None:
            raise ValueError("run the background removal first")
        image, alpha, mask = self.result["image"], self.result["alpha"], self.result["mask"]
        rows, cols = np.nonzero(mask)
        crop = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)) if rows.size else (slice(None),) * 2
        subject = extract_subject(image[crop], alpha[crop], background="transparent")
        return {"original": image, "background_removed": self.result["subject"], "subject": subject}

    def ask_folder(self) -> Path | None:
        """Ask for the folder to save into (a Qt dialog); ``None`` when the user cancels."""
        from qtpy.QtWidgets import QFileDialog

        chosen = QFileDialog.getExistingDirectory(self.native, "Save the background removal into")
        return Path(chosen) if chosen else None

    def confirm_overwrite(self, paths: list[Path]) -> bool:
        """Ask before replacing files (a Qt question box)."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self.native, "Replace files?", "These files exist and would be replaced:\n" + "\n".join(map(str, paths))
        )
        return answer == QMessageBox.StandardButton.Yes

    @action
    def save(self) -> list[Path]:
        """Write the three images to the chosen folder (asked for if none); return the paths written."""
        images = self.files()
        text = str(self.folder.value or "").strip()
        folder = Path(text) if text and text != "." else self.ask_folder()
        if folder is None:
            self.say("Not saved: no folder chosen.")
            return []
        self.folder.value = folder
        planned = planned_files(folder, self.result["name"], images, self.format.value)
        existing = [p for p in planned if p.exists()]
        if existing and not self.confirm_overwrite(existing):
            self.say("Not saved: the files exist.")
            return []
        written = save_results(folder, self.result["name"], images, self.format.value, overwrite=True)
        self.say(f"Saved {len(written)} files to {folder}.")
        return written
