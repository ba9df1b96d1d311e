"""Write ``tests/data/cupy_api.json``: the public API surface of real CuPy and cuCIM.

The host-simulated device of ``tests/_simcupy.py`` offers exactly these names (and, where
Python can see it, exactly these keyword arguments), so an operation that calls something
CuPy or cuCIM lacks fails in the simulation as it would on a GPU. Run it in an environment
with CuPy and cuCIM installed; neither needs a GPU to be imported:

    pip install cupy-cuda12x cucim-cu12 && python tests/_snapshot_cupy_api.py
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

MODULES = ["cupy", "cupy.fft", "cupy.linalg", "cupy.random", "cupyx.scipy.ndimage", "cupyx.scipy.fft",
           "cupyx.scipy.signal", "cupyx.scipy.special"]
SKIMAGE = ["color", "exposure", "feature", "filters", "measure", "metrics", "morphology", "registration",
           "restoration", "segmentation", "transform", "util"]


def _params(obj):
    """Parameter names of a callable, or None when Python cannot see them (or it takes **kwargs)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [p.name for p in sig.parameters.values()]


def _surface(name):
    module = importlib.import_module(name)
    return {attr: _params(getattr(module, attr)) if callable(getattr(module, attr)) else None
            for attr in dir(module) if not attr.startswith("_")}


def main():
    import cucim
    import cupy

    api = {"versions": {"cupy": cupy.__version__, "cucim": cucim.__version__}, "modules": {}}
    for name in MODULES + [f"cucim.skimage.{m}" for m in SKIMAGE]:
        api["modules"][name] = _surface(name)
    api["ndarray_methods"] = sorted(a for a in dir(cupy.ndarray) if not a.startswith("_"))
    api["ufunc_methods"] = sorted(a for a in dir(cupy.add) if not a.startswith("_"))
    out = Path(__file__).parent / "data" / "cupy_api.json"
    out.write_text(json.dumps(api, indent=0, sort_keys=True) + "\n")
    print(f"wrote {out} ({sum(map(len, api['modules'].values()))} names)")


if __name__ == "__main__":
    main()
