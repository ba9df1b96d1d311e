"""The computation behind :mod:`napari_stacklab.stitch`: tiles, pairwise registration, global placement, fusion.

It is built from :mod:`napari_stacklab.register` and the ground floor and knows no files;
reading tiles and writing mosaics are the ``stitch`` package's (on the io floor).
"""

from ._operation import stitch_grid

__all__ = ["stitch_grid"]
