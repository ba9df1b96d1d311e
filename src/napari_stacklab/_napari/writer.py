"""napari writer hook: image and labels layers to TIFF with dtype, axes and pixel size kept."""

from __future__ import annotations

from typing import Any

from .. import io


def write_tiff(path: str, data: Any, attributes: dict) -> list[str]:
    """Write one layer's ``data`` to ``path`` via :func:`napari_stacklab.io.imwrite`.

    Replaces an existing file (napari's Save dialog has already asked), but
    refuses, with ``FileExistsError``, to overwrite the file the layer was read
    from (``attributes["metadata"]["source"]``): its data may be memory-mapped
    from that very file.
    """
    ndim = data.ndim
    scale = [float(s) for s in attributes.get("scale") or [1.0] * ndim]
    translate = [float(t) for t in attributes.get("translate") or [0.0] * ndim]
    units = [str(u) for u in attributes.get("units") or ["pixel"] * ndim]
    labels = [str(a) for a in attributes.get("axis_labels") or io.Image(data).axis_labels]
    if attributes.get("rgb") and len(scale) == ndim - 1:
        scale, translate, units, labels = scale + [1.0], translate + [0.0], units + ["pixel"], labels + ["s"]
    image = io.Image(
        data,
        scale=scale,
        translate=translate,
        units=units,
        axis_labels=labels,
        metadata=dict(attributes.get("metadata") or {}),
        name=str(attributes.get("name", "image")),
    )
    io.imwrite(path, image, overwrite=True)
    return [path]
