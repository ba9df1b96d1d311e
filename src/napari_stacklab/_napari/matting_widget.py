"""Background removal: mask -> trimap -> alpha matte -> subject, and saving the results.

The mask comes from intensity thresholds or from a Labels layer (drawn or
segmented); alpha matting (PyMatting) softens its edges; the subject is put
on a transparent, white or black background. Outputs are the layers
``"<input> mask"``, ``"<input> alpha"`` and ``"<input> subject"``. *Save*
writes the original, the background-removed image and the subject (cropped
to the mask) to a folder, asking before replacing existing files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton, SpinBox

from .. import _backend
from ..matting import BACKGROUNDS, extract_subject, remove_background
from ._layers import add_or_replace, spatial_kwargs

__all__ = ["BackgroundRemovalWidget", "save_results"]

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


class BackgroundRemovalWidget(Container):
    """Remove the background of an image with a threshold or Labels mask and alpha matting."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.mask_source = ComboBox(label="mask from", choices=[THRESHOLD, LABELS], value=THRESHOLD)
        self.labels = ComboBox(label="labels layer", choices=self._labels_choices, nullable=True)
        self.foreground = FloatSpinBox(label="foreground threshold", min=-1e12, max=1e12, value=128, step=1)
        self.background = FloatSpinBox(label="background threshold", min=-1e12, max=1e12, value=64, step=1)
        self.erode_size = SpinBox(label="erode size (px)", min=0, max=200, value=10)
        self.mask_only = CheckBox(label="mask only (no matting)", value=False)
        self.fill_holes = CheckBox(label="post-process: fill holes", value=True)
        self.min_size = SpinBox(label="post-process: min object (px)", min=0, max=10**7, value=64)
        self.new_background = ComboBox(label="background", choices=list(BACKGROUNDS), value="transparent")
        self.estimate_foreground = CheckBox(label="estimate edge colours", value=True)
        self.run_button = PushButton(text="Remove background")
        self.folder = FileEdit(label="save to folder", mode="d")
        self.format = ComboBox(label="format", choices=["png", "tif"], value="png")
        self.save_button = PushButton(text="Save original, removed, subject")
        self.status = Label(value="")
        self.extend([
            self.image, self.mask_source, self.labels, self.foreground, self.background, self.erode_size,
            self.mask_only, self.fill_holes, self.min_size, self.new_background, self.estimate_foreground,
            self.run_button, self.folder, self.format, self.save_button, self.status,
        ])
        self.result: dict | None = None
        self.run_button.changed.connect(lambda *_: self.run())
        self.save_button.changed.connect(lambda *_: self.save())
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).connect(self._layers_changed)
        self.native.destroyed.connect(self._disconnect)
        self.reset_choices()

    def _image_choices(self, *_: Any) -> list[tuple[str, Any]]:
        from napari.layers import Image

        suffixes = (" alpha", " subject")
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Image) and not layer.name.endswith(suffixes)
        ]

    def _labels_choices(self, *_: Any) -> list[tuple[str, Any]]:
        from napari.layers import Labels

        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Labels)]

    def _layers_changed(self, *_: Any) -> None:
        self.reset_choices()

    def _disconnect(self, *_: Any) -> None:
        for event in ("inserted", "removed"):
            getattr(self.viewer.layers.events, event).disconnect(self._layers_changed)

    def run(self) -> dict:
        """Compute mask, alpha and subject for the chosen image; add/replace the three layers."""
        layer = self.image.value
        if layer is None:
            raise ValueError("choose an image layer")
        if layer.ndim != 2:
            raise ValueError(f"background removal works on one 2-D image; {layer.name!r} has {layer.ndim} dimensions")
        image = np.asarray(_backend.materialize(layer.data))
        if self.mask_source.value == LABELS:
            if self.labels.value is None:
                raise ValueError("choose a Labels layer for the mask")
            options = {"mask": np.asarray(_backend.materialize(self.labels.value.data))}
        else:
            options = {"foreground": self.foreground.value, "background": self.background.value}
        result = remove_background(
            image,
            erode_size=self.erode_size.value,
            fill_holes=self.fill_holes.value,
            min_size=self.min_size.value,
            mask_only=self.mask_only.value,
            new_background=self.new_background.value,
            estimate_foreground=self.estimate_foreground.value and not self.mask_only.value,
            **options,
        )
        record = {
            "mask_from": self.mask_source.value,
            **({"labels": self.labels.value.name} if LABELS == self.mask_source.value else options),
            "erode_size": self.erode_size.value,
            "mask_only": self.mask_only.value,
            "fill_holes": self.fill_holes.value,
            "min_size": self.min_size.value,
            "background": self.new_background.value,
        }
        metadata = {**layer.metadata, "remove_background": record}
        frame = spatial_kwargs(layer, 2)
        add_or_replace(self.viewer, result["mask"].astype(np.uint8), {**frame, "name": f"{layer.name} mask", "metadata": metadata}, "labels")
        add_or_replace(self.viewer, result["alpha"], {**frame, "name": f"{layer.name} alpha", "metadata": metadata}, "image")
        subject = result["subject"]
        subject_kwargs = {**frame, "name": f"{layer.name} subject", "metadata": metadata}
        if subject.ndim == 3:
            subject_kwargs["rgb"] = True
        add_or_replace(self.viewer, subject, subject_kwargs, "image")
        self.result = {**result, "image": image, "name": layer.name}
        self.status.value = f"foreground: {int(result['mask'].sum())} px"
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

    def confirm_overwrite(self, paths: list[Path]) -> bool:
        """Ask before replacing files (a Qt question box)."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self.native, "Replace files?", "These files exist and would be replaced:\n" + "\n".join(map(str, paths))
        )
        return answer == QMessageBox.Yes

    def save(self) -> list[Path]:
        """Write the three images to the chosen folder; return the paths written (none if declined)."""
        folder = Path(self.folder.value)
        images = self.files()
        planned = planned_files(folder, self.result["name"], images, self.format.value)
        existing = [p for p in planned if p.exists()]
        if existing and not self.confirm_overwrite(existing):
            self.status.value = "not saved: files exist"
            return []
        written = save_results(folder, self.result["name"], images, self.format.value, overwrite=True)
        self.status.value = f"saved {len(written)} files to {folder}"
        return written
