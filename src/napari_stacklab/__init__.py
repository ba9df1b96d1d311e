"""napari-stacklab: lazy, GPU-capable image operations for multidimensional microscopy.

The headless API. Importing this package loads neither napari, Qt, magicgui,
dask nor CuPy; the operation families load on first use::

    import napari_stacklab as sl
    img = sl.io.imread("stack.tif")
    smooth = sl.filters.gaussian(img.data, sigma=2)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "filters",
    "segment",
    "measure",
    "denoise",
    "phase",
    "register",
    "stem",
    "preprocess",
    "morphology",
    "equalize",
    "matting",
    "stitch",
    "batch",
    "io",
    "lift",
    "frames",
    "statistics",
    "channels",
    "costs",
    "engine",
    "registry",
    "catalog",
    "recipe",
    "datasets",
)

__all__ = ["__version__", "Recipe", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "Recipe":
        from .recipe import Recipe

        return Recipe
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
