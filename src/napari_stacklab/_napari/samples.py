"""napari sample data (File > Open Sample > napari-stacklab): the generated datasets."""

from __future__ import annotations

from .. import datasets
from .reader import image_layer_data


def timelapse() -> list[tuple]:
    """Drifting fluorescence time-lapse (24 x 256 x 256 uint16, known drift)."""
    return [image_layer_data(datasets.timelapse())]


def stem4d() -> list[tuple]:
    """4D-STEM scan (32 x 32 scan x 64 x 64 detector, uint16 counts)."""
    return [image_layer_data(datasets.stem4d())]


def hologram() -> list[tuple]:
    """Off-axis electron hologram (256 x 256 float32) of a phase object that wraps."""
    return [image_layer_data(datasets.hologram())]
