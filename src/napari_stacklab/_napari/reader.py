"""napari reader hook: any path :mod:`napari_stacklab.io` can read, as lazy image layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import io

#: Trailing axis labels that mean "colour samples" (tifffile's ``S`` axis).
_RGB_LABELS = ("s",)


def napari_get_reader(path: Any) -> Callable | None:
    """Return a reader function for ``path`` (a path or a list of TIFF paths), or ``None``.

    Sniffs names and magic bytes only (no decoding) and never raises.
    """
    try:
        if isinstance(path, (list, tuple)) and len(path) == 1:
            path = path[0]
        return read_layers if io.can_read(path) else None
    except Exception:  # a reader hook must never raise
        return None


def read_layers(path: Any) -> list[tuple]:
    """Read ``path`` with :func:`napari_stacklab.io.imread_all` into image layer data tuples."""
    if isinstance(path, (list, tuple)) and len(path) == 1:
        path = path[0]
    return [image_layer_data(image) for image in io.imread_all(path)]


def image_layer_data(image: io.Image) -> tuple:
    """``(data, kwargs, "image")`` for an Image, with its physical frame and metadata."""
    kwargs = image.layer_kwargs()
    rgb = image.axis_labels[-1] in _RGB_LABELS and image.shape[-1] in (3, 4) and image.ndim >= 3
    if rgb:
        for key in ("scale", "translate", "units", "axis_labels"):
            kwargs[key] = kwargs[key][:-1]
    kwargs.update(rgb=rgb, multiscale=False)
    return (image.data, kwargs, "image")
