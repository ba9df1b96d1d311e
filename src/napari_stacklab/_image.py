"""The container readers return and recipes pass along: data plus its physical frame."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .channels import Channels, find_channels

#: Key under which images and layers record how they were made (``metadata[PROVENANCE_KEY]``, written
#: into output files' metadata too). Defined here, on the ground floor, so writers need not import recipe.
PROVENANCE_KEY = "stacklab"


@dataclass
class Image:
    """An array with the spatial metadata napari and measurements need.

    Attributes
    ----------
    data : array
        NumPy, dask (lazy) or CuPy array, shape ``(..., M, N)``.
    scale : tuple of float
        Pixel size along each axis, in ``units`` (1.0 where unknown).
    units : tuple of str
        Unit of each axis (``"pixel"`` where unknown).
    axis_labels : tuple of str
        Name of each axis (``"t"``, ``"z"``, ``"c"``, ``"y"``, ``"x"``, ``"ky"`` ...).
    translate : tuple of float
        Position of the first pixel along each axis, in ``units``.
    metadata : dict
        Everything else the file said, plus ``"source"`` (the path read) and,
        after operations, ``"stacklab"`` (the recorded recipe steps). An
        optional ``"channel_names"`` names the channels of the channel axis.
    name : str
        A display name (the file stem by default).
    """

    data: Any
    scale: tuple = None
    units: tuple = None
    axis_labels: tuple = None
    translate: tuple = None
    metadata: dict = field(default_factory=dict)
    name: str = "image"

    def __post_init__(self) -> None:
        ndim = self.data.ndim
        self.scale = _per_axis("scale", self.scale, ndim, 1.0, float)
        self.translate = _per_axis("translate", self.translate, ndim, 0.0, float)
        self.units = _per_axis("units", self.units, ndim, "pixel", str)
        default_labels = tuple(f"axis{i}" for i in range(ndim - 2)) + ("y", "x") if ndim >= 2 else ("x",)
        self.axis_labels = _per_axis("axis_labels", self.axis_labels, ndim, None, str, default_labels)

    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def channels(self) -> Channels | None:
        """The colour or channel axis the axis labels name (``"s"``, ``"rgb"``: colour; ``"c"``: channels)."""
        return find_channels(self.axis_labels, self.shape, self.metadata.get("channel_names"))

    @property
    def channel_axis(self) -> int | None:
        """Index of the channel axis (see :attr:`channels`), or ``None``."""
        found = self.channels
        return None if found is None else found.axis % self.ndim

    @property
    def rgb(self) -> bool:
        """True when the channel axis holds colour (RGB or RGBA)."""
        found = self.channels
        return found is not None and found.rgb

    def with_data(self, data: Any, **changes: Any) -> "Image":
        """A new Image with ``data`` (same number of axes) and the same physical frame."""
        return replace(self, data=data, metadata=dict(self.metadata), **changes)

    def layer_kwargs(self) -> dict:
        """Keyword arguments for a napari layer showing this image."""
        return {
            "scale": self.scale,
            "translate": self.translate,
            "units": self.units,
            "axis_labels": self.axis_labels,
            "metadata": dict(self.metadata),
            "name": self.name,
        }


def _per_axis(name, value, ndim, fill, kind, default=None):
    if value is None:
        return tuple(default) if default is not None else (fill,) * ndim
    value = tuple(kind(v) for v in value)
    if len(value) != ndim:
        raise ValueError(f"{name} must have one entry per axis ({ndim}), got {value}")
    return value
