"""A layer's channel axis: found from napari's ``rgb`` flag or a ``c``/``channel`` axis label.

The operations do the rest (:mod:`napari_stacklab.channels`): the widget binds
its parameters with the layer's channels, previews every channel of the shown
plane, and a colour result is shown as an RGB layer again (``_layers``).
"""

from __future__ import annotations

from typing import Any

from .. import _backend
from ..channels import Channels, find_channels

__all__ = ["layer_channels", "with_channel_axis", "shown_as"]


def layer_channels(layer: Any) -> Channels | None:
    """The colour axis of an RGB(A) layer (last), or the axis a ``c``/``channel`` axis label names.

    An RGB layer's ``axis_labels`` leave out the colour axis (napari counts
    it out of ``layer.ndim``); other layers label every data axis.
    """
    if getattr(layer, "rgb", False):
        return Channels(-1, rgb=True)
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return find_channels(tuple(layer.axis_labels), tuple(data.shape), layer.metadata.get("channel_names"))


def with_channel_axis(index: tuple, channels: Channels | None, layer: Any) -> tuple:
    """``index`` of the shown plane over a layer's leading axes, with the channel axis kept whole.

    ``index`` counts the layer's leading axes (``layer.ndim`` minus the frame)
    as if every one were a batch axis. An RGB layer's colour axis is not one
    of them. A channel axis among them is kept whole (a preview computes
    every channel of the plane, as the run will); a channel axis among the
    trailing axes is not a frame axis, so the frame reaches one axis further
    forward and the last index goes.
    """
    if channels is None or not index or getattr(layer, "rgb", False):
        return index
    axis = channels.axis % layer.ndim
    if axis >= len(index):
        return index[:-1]
    return index[:axis] + (slice(None),) + index[axis + 1:]


def shown_as(data: Any, kwargs: dict, layer_type: str) -> tuple[Any, dict]:
    """A result napari can show: only image layers are RGB; masks and labels get the channels as a leading axis."""
    if layer_type == "image" or not kwargs.get("rgb"):
        return data, kwargs
    kwargs = dict(kwargs)
    kwargs.pop("rgb")
    data = _backend.array_module(data).moveaxis(data, -1, 0)
    for key, lead in (("scale", 1.0), ("translate", 0.0), ("units", "pixel"), ("axis_labels", "channel")):
        kwargs[key] = (lead, *kwargs[key])
    for key in ("rotate", "shear", "affine"):
        kwargs.pop(key, None)
    return data, kwargs
