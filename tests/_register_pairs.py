"""Seeded suite of image pairs with a known affine transform, for the ECC tests and ``bench_register.py``.

Every pair is drawn at random (``numpy.random.default_rng(seed)``), none is
picked by hand: an image from scikit-image's bundled data (periodic textures
included), a rotation of up to 8 degrees, a scale change of up to 8 %, a shear,
a shift of up to 6 % of the side, a brightness and contrast change and noise
in both images. The fixed image is the centre of the source; the moving image
is resampled from the same source (cubic spline), so both show real content
wherever they overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage import color, data

from napari_stacklab.register import Transform, warp

#: Bundled images (no download); brick, grass and gravel are periodic textures.
IMAGES = ("brick", "grass", "gravel", "camera", "astronaut", "moon", "coins", "cell", "coffee", "chelsea",
          "rocket", "hubble_deep_field", "immunohistochemistry")


@dataclass
class Pair:
    fixed: np.ndarray
    moving: np.ndarray
    truth: Transform  # fixed -> moving pixel coordinates
    image: str
    params: dict

    def corner_error(self, estimate: Transform) -> float:
        """Mean distance (pixels) between where ``estimate`` and the truth send the fixed image's corners."""
        rows, cols = self.fixed.shape
        corners = np.array([[0, 0], [0, cols - 1], [rows - 1, 0], [rows - 1, cols - 1]], dtype=np.float64)
        return float(np.linalg.norm(estimate.apply_points(corners) - self.truth.apply_points(corners), axis=1).mean())


def source_image(name: str, min_side: int) -> np.ndarray:
    """A bundled image as float32 grey values, enlarged (cubic) when its short side is below ``min_side``."""
    image = getattr(data, name)()
    if image.ndim == 3:
        image = color.rgb2gray(image[..., :3]) * 255
    image = image.astype(np.float32)
    if min(image.shape) < min_side:
        image = ndi.zoom(image, min_side / min(image.shape) + 1e-3, order=3)
    return image


def about_centre(linear: np.ndarray, shift: np.ndarray, shape: tuple) -> np.ndarray:
    """Homogeneous matrix of ``x -> linear @ (x - c) + c + shift`` with ``c`` the centre of ``shape``."""
    centre = (np.asarray(shape, dtype=np.float64) - 1) / 2
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = shift + centre - linear @ centre
    return matrix


def make_pair(rng: np.random.Generator, image: str, size: int = 384) -> Pair:
    """One random pair of ``size``-square images cut from ``image``."""
    angle = np.deg2rad(rng.uniform(-8, 8))
    scale = rng.uniform(0.92, 1.08)
    shear = rng.uniform(-0.06, 0.06)
    shift = rng.uniform(-0.06, 0.06, 2) * size
    gain, offset = rng.uniform(0.5, 2.0), rng.uniform(-40, 40)
    noise = rng.uniform(0.01, 0.08)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = scale * rotation @ np.array([[1.0, shear], [0.0, 1.0]])
    truth = Transform("affine", about_centre(linear, shift, (size, size)))

    source = source_image(image, size + 64)
    origin = (np.array(source.shape) - size) // 2
    fixed = source[origin[0] : origin[0] + size, origin[1] : origin[1] + size]
    to_source = Transform.from_shift(origin) @ truth.inverse()
    moving = warp(source, to_source, output_shape=(size, size), order=3, mode="reflect")
    spread = float(fixed.std())
    fixed = fixed + rng.normal(0, noise * spread, fixed.shape)
    moving = gain * moving + offset + rng.normal(0, gain * noise * spread, moving.shape)
    params = {"angle_deg": float(np.rad2deg(angle)), "scale": float(scale), "shear": float(shear),
              "shift": shift.tolist(), "gain": float(gain), "offset": float(offset), "noise": float(noise)}
    return Pair(fixed.astype(np.float32), moving.astype(np.float32), truth, image, params)


def pair_suite(n: int = 30, *, seed: int = 17, size: int = 384) -> list[Pair]:
    """``n`` pairs cycling through :data:`IMAGES`, every parameter drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    return [make_pair(rng, IMAGES[k % len(IMAGES)], size) for k in range(n)]
