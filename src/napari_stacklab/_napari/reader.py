"""napari reader hook: any path :mod:`napari_stacklab.io` can read, as lazy image layers.

Layers get *view chunks* (:data:`napari_stacklab.io.VIEW_CHUNK_BYTES`): a large plane
is one chunk, so moving a slider reads the plane shown and nothing else.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from .. import io

#: Trailing axis labels that mean "colour samples" (tifffile's ``S`` axis).
_RGB_LABELS = ("s",)


def napari_get_reader(path: Any) -> Callable | None:
    """Return a reader function for ``path`` (a path or a list of TIFF paths), or ``None``.

    Sniffs names, magic bytes and (HDF5) the file's structure, decodes no pixels, and
    never raises. A file that refers to data outside itself, or whose compressed chunks
    are too large to decode, is declined with a warning saying so (napari shows it).
    """
    try:
        if isinstance(path, (list, tuple)) and len(path) == 1:
            path = path[0]
        io.check_readable(path)
    except (io.ExternalDataError, io.EagerSizeError) as exc:
        warnings.warn(f"napari-stacklab does not open this file: {exc}", UserWarning, stacklevel=2)
        return None
    except Exception:  # a reader hook must never raise
        return None
    return read_layers


def read_layers(path: Any) -> list[tuple]:
    """Read ``path`` with :func:`napari_stacklab.io.imread_all` into image layer data tuples."""
    if isinstance(path, (list, tuple)) and len(path) == 1:
        path = path[0]
    return [image_layer_data(image) for image in io.imread_all(path, chunk_bytes=io.VIEW_CHUNK_BYTES)]


def image_layer_data(image: io.Image) -> tuple:
    """``(data, kwargs, "image")`` for an Image, with its physical frame and metadata."""
    kwargs = image.layer_kwargs()
    rgb = image.axis_labels[-1] in _RGB_LABELS and image.shape[-1] in (3, 4) and image.ndim >= 3
    if rgb:
        for key in ("scale", "translate", "units", "axis_labels"):
            kwargs[key] = kwargs[key][:-1]
    kwargs.update(rgb=rgb, multiscale=False)
    return (image.data, kwargs, "image")
