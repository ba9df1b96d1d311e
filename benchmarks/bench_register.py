"""Registration benchmark: ECC against OpenCV, drift correction against pystackreg.

1. ECC, affine, 2048 x 2048: ``napari_stacklab.register.ecc`` (float64, Gaussian
   pyramid) against ``cv2.findTransformECC`` (float32, single scale, same
   iteration limit and epsilon) on the same pair with a known transform.
   Printed: time ratio (ours / OpenCV) and the mean corner error of each.
2. Drift, 100 frames of 1024 x 1024 (known sub-pixel drift, noise added):
   ``napari_stacklab.register.drift`` (phase correlation + ECC refinement,
   reference = first frame) against ``pystackreg.StackReg(TRANSLATION)
   .register_stack(reference="first")``. Printed: time ratio and the largest
   and mean error of each (pixels).

Ratios are measured in the same run (the machine is shared; absolute times mean
little). ``--quick`` uses 1024 x 1024 for ECC and 20 frames for drift.

    python benchmarks/bench_register.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage as ndi
from skimage import data

from napari_stacklab.register import Transform, drift, ecc, warp


def _texture(size: int, seed: int = 0) -> np.ndarray:
    """A ``size``-square textured float32 image: camera upsampled plus fine structure."""
    cam = data.camera().astype(np.float32)
    big = ndi.zoom(cam, size / cam.shape[0] * 1.25, order=3)
    rng = np.random.default_rng(seed)
    fine = ndi.gaussian_filter(rng.normal(0, 30, big.shape).astype(np.float32), 2)
    return big + fine


def _timed(func, repeat: int = 1):
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_ecc(size: int) -> None:
    import cv2

    source = _texture(size)
    margin = 64  # both images come from the inside of the source: no made-up border content
    fixed = source[margin : margin + size, margin : margin + size].copy()
    centre = size / 2
    angle, scale = np.deg2rad(1.0), 1.015
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear[0, 1] += 0.01
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = np.array([4.3, -6.2]) + centre - linear @ [centre, centre]
    truth = Transform("affine", matrix)
    to_source = Transform.from_shift([margin, margin]) @ truth.inverse()
    moving = warp(source, to_source, output_shape=(size, size), order=3).astype(np.float32)
    corners = np.array([[0, 0], [0, size - 1], [size - 1, 0], [size - 1, size - 1.0]])

    def error(t):
        return float(np.linalg.norm(t.apply_points(corners) - truth.apply_points(corners), axis=1).mean())

    ours_time, ours = _timed(lambda: ecc(fixed, moving, model="affine", max_iter=100, eps=1e-6))
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]])
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)

    def opencv():
        _, w = cv2.findTransformECC(fixed, moving, np.eye(2, 3, dtype=np.float32), cv2.MOTION_AFFINE, criteria, None, 5)
        return Transform("affine", swap @ np.vstack([w, [0, 0, 1]]).astype(np.float64) @ swap)

    cv_time, cv = _timed(opencv)
    print(f"ECC affine {size}x{size}: ours {ours_time:.2f} s, OpenCV {cv_time:.2f} s, "
          f"time ratio ours/OpenCV = {ours_time / cv_time:.2f}")
    print(f"  mean corner error: ours {error(ours):.4f} px ({ours.metadata['iterations']} iterations over "
          f"{ours.metadata['levels']} levels), OpenCV {error(cv):.4f} px")


def bench_drift(frames: int, size: int) -> None:
    from pystackreg import StackReg

    rng = np.random.default_rng(1)
    source = _texture(size + 64, seed=1)
    truth = np.cumsum(rng.normal(0, 0.8, (frames, 2)), axis=0)
    truth -= truth[0]
    truth = np.clip(truth, -28, 28)
    origin = np.array([32.0, 32.0])
    stack = np.stack([
        warp(source, Transform.from_shift(origin - d), output_shape=(size, size), order=1) for d in truth
    ])
    stack += rng.normal(0, 3, stack.shape).astype(np.float32)

    ours_time, ours = _timed(lambda: drift(stack, reference="first", upsample=20))
    sr = StackReg(StackReg.TRANSLATION)
    sr_time, matrices = _timed(lambda: sr.register_stack(stack, reference="first"))
    theirs = matrices[:, [1, 0], 2]  # (x, y) -> (row, col); also a reference -> frame displacement
    ours_err, their_err = np.abs(ours - truth), np.abs(theirs - truth)
    print(f"Drift {frames} frames of {size}x{size}: ours {ours_time:.2f} s, pystackreg {sr_time:.2f} s, "
          f"time ratio ours/pystackreg = {ours_time / sr_time:.2f}")
    print(f"  error (px): ours max {ours_err.max():.4f} mean {ours_err.mean():.4f}; "
          f"pystackreg max {their_err.max():.4f} mean {their_err.mean():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    bench_ecc(1024 if args.quick else 2048)
    bench_drift(20 if args.quick else 100, 1024)


if __name__ == "__main__":
    main()
