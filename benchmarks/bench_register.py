"""Registration benchmark: ECC against OpenCV, drift correction against pystackreg, feature-based alignment.

1. ECC, affine, at 512 x 512 (``cell``) and 2048 x 2048 (a textured image):
   ``napari_stacklab.register.ecc`` against ``cv2.findTransformECC`` (its
   usual call: float32, single scale, identity start, 5-pixel Gaussian,
   100 iterations, eps 1e-6) on the same pair with a known transform. Printed:
   time ratio (ours / OpenCV, best of several runs each) and the mean corner
   error of each.
2. Pair suite: 30 pairs made by ``tests/_register_pairs.py`` (seeded; rotation
   up to 8 degrees, scale up to 8 %, shear, shift up to 6 % of the side,
   brightness and contrast change, noise; 13 bundled images including the
   periodic brick, grass and gravel). Printed: the fraction of pairs each
   method brings within 0.1 px mean corner error, and the total time ratio.
3. Drift, 100 frames of 1024 x 1024 (known sub-pixel drift, noise added):
   ``napari_stacklab.register.drift`` against ``pystackreg.StackReg(TRANSLATION)
   .register_stack(reference="first")``. Printed: time ratio and the largest
   and mean error of each (pixels).
4. Feature-based alignment (``from_features``, ORB and SIFT; scikit-image's
   detectors, and OpenCV's when installed) on bundled images with a known
   affine transform or homography: corner error of the keypoint fit, then
   after ECC refinement from it, and the time of each step.

Ours runs twice: as a default install runs it (SciPy and scikit-image only)
and with OpenCV's warp, Gaussian filter and keypoint detectors, which it uses
when OpenCV is installed (``_backend.OPENCV_ACCELERATION``). Ratios are
measured in the same run (the machine may be shared; absolute times mean
little). ``--quick`` is a smoke run: ECC at 512 and 1024, 10 pairs, 20 drift
frames, two feature cases.

    python benchmarks/bench_register.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage import data

from napari_stacklab import _backend
from napari_stacklab.register import ECCError, Transform, drift, ecc, from_features, warp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _register_pairs import about_centre, pair_suite, source_image  # noqa: E402

SWAP = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]])  # (row, col) <-> OpenCV's (x, y)
PATHS = {"SciPy/scikit-image": False, "with OpenCV kernels": True}  # label -> _backend.OPENCV_ACCELERATION


def _path(accelerate: bool) -> None:
    _backend.OPENCV_ACCELERATION = accelerate


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


def _corner_error(estimate: Transform, truth: Transform, shape: tuple) -> float:
    rows, cols = shape
    corners = np.array([[0, 0], [0, cols - 1], [rows - 1, 0], [rows - 1, cols - 1]], dtype=np.float64)
    return float(np.linalg.norm(estimate.apply_points(corners) - truth.apply_points(corners), axis=1).mean())


def _opencv_ecc(fixed: np.ndarray, moving: np.ndarray) -> Transform:
    import cv2

    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    _, w = cv2.findTransformECC(fixed, moving, np.eye(2, 3, dtype=np.float32), cv2.MOTION_AFFINE, criteria, None, 5)
    return Transform("affine", SWAP @ np.vstack([w, [0, 0, 1]]).astype(np.float64) @ SWAP)


def _known_pair(source: np.ndarray, size: int, matrix: np.ndarray) -> tuple:
    """``fixed`` = the centre of ``source``; ``moving`` resampled from the source through ``matrix``."""
    origin = (np.array(source.shape) - size) // 2
    fixed = source[origin[0] : origin[0] + size, origin[1] : origin[1] + size].astype(np.float32)
    truth = Transform("projective" if matrix[2, :2].any() else "affine", matrix)
    moving = warp(source, Transform.from_shift(origin) @ truth.inverse(), output_shape=(size, size), order=3,
                  mode="reflect").astype(np.float32)
    return fixed, moving, truth


def bench_ecc(size: int, source: np.ndarray, name: str, repeat: int) -> None:
    angle, scale = np.deg2rad(1.0), 1.015
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear[0, 1] += 0.01
    fixed, moving, truth = _known_pair(source, size, about_centre(linear, np.array([4.3, -6.2]), (size, size)))
    _opencv_ecc(fixed, moving)  # warm-up: imports and first-call costs, for every method
    cv_time, cv = _timed(lambda: _opencv_ecc(fixed, moving), repeat)
    print(f"ECC affine {size}x{size} ({name}): OpenCV findTransformECC {cv_time:.3f} s, "
          f"mean corner error {_corner_error(cv, truth, fixed.shape):.4f} px")
    for label, accelerate in PATHS.items():
        _path(accelerate)
        ecc(fixed, moving)
        ours_time, ours = _timed(lambda: ecc(fixed, moving, model="affine"), repeat)
        print(f"  ours ({label}): {ours_time:.3f} s, time ratio ours/OpenCV = {ours_time / cv_time:.2f}; "
              f"mean corner error {_corner_error(ours, truth, fixed.shape):.4f} px ({ours.metadata['iterations']} "
              f"iterations over {ours.metadata['levels']} levels, start {ours.metadata['start']})")


def bench_suite(n_pairs: int) -> None:
    import cv2

    pairs = pair_suite(n_pairs)
    cv_ok, cv_total = 0, 0.0
    for pair in pairs:
        start = time.perf_counter()
        try:
            cv_error = pair.corner_error(_opencv_ecc(pair.fixed, pair.moving))
        except cv2.error:
            cv_error = np.inf
        cv_total += time.perf_counter() - start
        cv_ok += cv_error < 0.1
    size = pairs[0].fixed.shape[0]
    print(f"Pair suite, {n_pairs} pairs of {size}x{size} (rotation <= 8 deg, scale <= 8 %, shear, shift <= 6 %, "
          f"gain/offset, noise; {len({p.image for p in pairs})} images including brick, grass, gravel):")
    print(f"  OpenCV (identity start): converged (< 0.1 px) {cv_ok}/{n_pairs}, total {cv_total:.2f} s")
    for label, accelerate in PATHS.items():
        _path(accelerate)
        ecc(pairs[0].fixed, pairs[0].moving)  # warm-up
        ours_ok, ours_total, starts, errors, failures = 0, 0.0, {}, [], []
        for k, pair in enumerate(pairs):
            start = time.perf_counter()
            try:
                found = ecc(pair.fixed, pair.moving, model="affine")
                error = pair.corner_error(found)
                starts[found.metadata["start"]] = starts.get(found.metadata["start"], 0) + 1
            except ECCError:
                error = np.inf
            ours_total += time.perf_counter() - start
            ours_ok += error < 0.1
            errors.append(error)
            if error >= 0.1:
                failures.append(f"pair {k} ({pair.image}): {error:.3f} px")
        print(f"  ours ({label}): converged {ours_ok}/{n_pairs} (median error {np.median(errors):.4f} px), "
              f"total {ours_total:.2f} s, time ratio ours/OpenCV = {ours_total / cv_total:.2f}; winning start "
              f"{starts}" + (f"; not converged: {', '.join(failures)}" if failures else ""))


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

    sr = StackReg(StackReg.TRANSLATION)
    sr_time, matrices = _timed(lambda: sr.register_stack(stack, reference="first"))
    their_err = np.abs(matrices[:, [1, 0], 2] - truth)  # (x, y) -> (row, col); a reference -> frame displacement
    print(f"Drift {frames} frames of {size}x{size}: pystackreg {sr_time:.2f} s, error (px) max "
          f"{their_err.max():.4f} mean {their_err.mean():.4f}")
    for label, accelerate in PATHS.items():
        _path(accelerate)
        drift(stack[:2])  # warm-up
        ours_time, ours = _timed(lambda: drift(stack, reference="first", upsample=20))
        ours_err = np.abs(ours - truth)
        print(f"  ours ({label}): {ours_time:.2f} s, time ratio ours/pystackreg = {ours_time / sr_time:.2f}; "
              f"error (px) max {ours_err.max():.4f} mean {ours_err.mean():.4f}")


def _feature_cases(quick: bool) -> list:
    size = 384
    angle = np.deg2rad(12.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = about_centre(1.06 * rotation @ np.array([[1.0, 0.04], [0.0, 1.0]]), np.array([18.0, -25.0]),
                          (size, size))
    homography = about_centre(0.97 * rotation.T, np.array([-14.0, 9.0]), (size, size))
    homography[2, :2] = [2.5e-4, -1.5e-4]
    cases = [("camera", "affine", affine), ("brick", "projective", homography), ("astronaut", "affine", affine),
             ("coins", "projective", homography), ("gravel", "affine", affine), ("chelsea", "projective", homography)]
    return cases[:2] if quick else cases


def bench_features(quick: bool) -> None:
    print("Feature-based alignment (from_features, then ECC from its fit), 384x384, known transform:")
    for label, accelerate in PATHS.items():
        _path(accelerate)
        for detector in ("orb",) if quick else ("orb", "sift"):
            for image, model, matrix in _feature_cases(quick):
                fixed, moving, truth = _known_pair(source_image(image, 512), 384, matrix)
                feature_time, found = _timed(lambda: from_features(fixed, moving, model=model, detector=detector))
                ecc_time, refined = _timed(lambda: ecc(fixed, moving, model=model, initial=found, start=()))
                print(f"  {detector:4s} ({label}) {image:9s} {model:10s}: {found.metadata['inliers']:4d} of "
                      f"{found.metadata['matches']:4d} matches kept, error "
                      f"{_corner_error(found, truth, fixed.shape):.3f} px in {feature_time:.2f} s; after ECC "
                      f"{_corner_error(refined, truth, fixed.shape):.4f} px (+{ecc_time:.2f} s)")


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: smaller sizes, fewer cases")
    args = parser.parse_args(argv)
    print(f"napari-stacklab registration benchmark; {os_cpus()} CPUs; OpenCV {_opencv_version()}")
    cell = source_image("cell", 640)
    bench_ecc(512, cell, "cell", repeat=5)
    big = 1024 if args.quick else 2048
    bench_ecc(big, _texture(big + 128), "camera texture", repeat=2 if args.quick else 3)
    bench_suite(10 if args.quick else 30)
    bench_drift(20 if args.quick else 100, 1024)
    bench_features(args.quick)
    _path(True)
    return 0


def os_cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _opencv_version() -> str:
    import cv2

    return cv2.__version__


if __name__ == "__main__":
    sys.exit(main())
