"""A minimal valid call of every registry operation, built from its declaration.

Shared by the dtype matrix (tests/test_dtype_matrix.py) and the device-path tests
(tests/test_gpu_paths.py): the defaults, the same image for a required
reference, a crop for a template, a small boolean mask for a required mask; the
input is a 2-D image, an RGB image (``adjust_saturation``), a stack of frames
(``frame_ndim=3`` stack operations) or a 3 x 3 scan of 16 x 16 patterns (4D-STEM).
"""

from __future__ import annotations

import numpy as np
from skimage import data

#: small integers (0..85) every dtype holds exactly, so results can be compared across dtypes
BASE = (data.camera()[::8, ::8][:48, :48] // 3).astype(np.float64)


def minimal_image(op, dtype: str, values: np.ndarray = BASE) -> np.ndarray:
    """The input an operation expects, in ``dtype``."""
    image = values > 40 if dtype == "bool" else values.astype(dtype)
    if op.name == "adjust_saturation":
        return np.stack([image, image[::-1], image.T], axis=-1)
    if op.frame_ndim == 3:
        return np.stack([image, np.roll(image, 1, 0), np.roll(image, 2, 1)])
    if op.family == "stem":
        return np.stack([np.stack([image[:16, :16]] * 3)] * 3)
    return image


#: the operations whose defaults alone are not a valid call (the transform: a rotation about the middle)
EXTRA = {
    "virtual_detector": {"outer": 6.0},
    "apply_transform": {"transform": {"model": "euclidean", "matrix": [[0.96, -0.28, 8.0], [0.28, 0.96, -5.0],
                                                                       [0, 0, 1]]}},
    "apply_drift": {"shifts": [[0.0, 0.0], [1.5, -2.0], [-0.5, 3.25]]},
    "equalize_levels": {"target": [[30.0, 12.0]]},
    "remove_background": {"foreground": 40.0, "mask_only": True},
}


def minimal_params(op, image) -> dict:
    """Defaults plus required image parameters: the same image, a crop for a template, a small bool mask."""
    params = dict(EXTRA.get(op.name, {}))
    for p in op.image_params:
        if p.default is not None:
            if p.name == "mask":
                mask = np.zeros(image.shape, bool)
                mask[..., 10:14, 10:14] = True
                params[p.name] = mask
            elif p.name == "template":
                params[p.name] = image[..., 20:29, 20:29]
            else:
                params[p.name] = image
    return params
