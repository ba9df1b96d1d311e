"""Readers and writers. Knows nothing of napari.

``imread(path)`` returns an :class:`Image` (lazy dask data for anything large);
``imwrite(path, image)`` writes TIFF keeping dtype, shape and pixel size.
"""

from ._image import Image

__all__ = ["Image"]
