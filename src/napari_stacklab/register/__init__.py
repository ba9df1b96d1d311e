"""Registration: transforms from points, features, ECC, phase correlation; drift correction; resampling.

Every method returns a :class:`Transform` mapping **fixed-image** pixel
coordinates to **moving-image** pixel coordinates, in ``(row, col)`` (napari's)
axis order; :func:`warp` resamples the moving image onto the fixed grid with
it, and :meth:`Transform.to_napari_affine` overlays the moving layer on the
fixed one in napari without resampling::

    import napari_stacklab as sl
    t = sl.register.from_points(fixed_pts, moving_pts, model="similarity", robust=True)
    t = sl.register.from_features(fixed, moving, model="affine")       # or: matched keypoints
    t = sl.register.ecc(fixed, moving, model="affine", initial=t)      # refine (or start from scratch)
    aligned = sl.register.warp(moving, t, output_shape=fixed.shape)
    spots = sl.register.warp_points(spots_on_moving, t)                # annotations follow
    t.to_json("moving_to_fixed.json")
    shifts = sl.register.drift(stack, upsample=20)                      # (T, 2)
    other = sl.register.apply_drift(other_channel, shifts=shifts)      # lazy for dask

Registry operations (napari menu, recipes): ``drift_correct``,
``align_stack``, ``similarity_map``, ``apply_transform`` (a transform
written as its dictionary, :meth:`Transform.to_dict`) and ``apply_drift``
(per-frame shifts). Functions that take or return a Transform (``ecc``,
``from_points``, ``from_features``, ``warp``, ``warp_points``) are not
registry operations (a Transform object is no recipe parameter); the napari
registration tools call them and record ``apply_transform`` or
``apply_drift`` steps.
"""

from ._ecc import ECC_MODELS, STARTS, ECCError, ecc
from ._features import DETECTORS, from_features
from ._phasecorr import WINDOWS, phase_correlation
from ._points import from_points, min_pairs
from ._similarity import similarity_map, similarity_score
from ._stack import (
    REFERENCES,
    STACK_METHODS,
    STACK_MODELS,
    align_stack,
    apply_drift,
    drift,
    drift_correct,
    stack_transforms,
)
from ._transform import MODELS, Transform
from ._warp import MODES, apply_transform, warp, warp_points

__all__ = [
    "Transform",
    "MODELS",
    "ECC_MODELS",
    "ECCError",
    "REFERENCES",
    "STACK_MODELS",
    "STACK_METHODS",
    "STARTS",
    "DETECTORS",
    "WINDOWS",
    "MODES",
    "from_points",
    "from_features",
    "min_pairs",
    "ecc",
    "phase_correlation",
    "drift",
    "apply_drift",
    "stack_transforms",
    "warp",
    "warp_points",
    "similarity_map",
    "similarity_score",
    "drift_correct",
    "align_stack",
    "apply_transform",
]
