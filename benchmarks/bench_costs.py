"""Issue 19's algorithms against their library baselines, and the cost estimates against the clock.

Part 1, speed: each new algorithm against the library call it replaces, on the same 512 x 512
frame, with the results checked equal (or, for multi-Otsu, equally good):

- median, size 31 / 63, uint8: ``scipy.ndimage.median_filter`` vs the sliding histogram;
- erosion by a disk of radius 15 / 40: ``skimage.morphology.erosion`` vs chords;
- multi-Otsu, 4 / 5 classes of 256 levels: ``skimage.filters.threshold_multiotsu`` vs dynamic
  programming;
- peak refinement, window 20: gathering every box (the previous code) vs box filters.

Printed: each side's time and the ratio baseline / stacklab.

Part 2, estimates: for a set of calls on a 512 x 512 frame, the engine's estimate
(``Operation.cost_for``) against the measured time, ``estimate / measured``. Above 1 the
estimate is cautious; the caps refuse on the estimate, so a ratio far below 1 would let a
call run past ``costs.MAX_SECONDS``.

    python benchmarks/bench_costs.py [--quick]

``--quick`` uses 128 x 128 frames and the smaller cases (a smoke run, seconds).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.ndimage as ndi
from skimage import data, filters, morphology


def _timed(func, repeat: int = 1):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = func()
        best = min(best, time.perf_counter() - start)
    return best, value


def _gathered_refinement(frame: np.ndarray, coords: np.ndarray, window: int) -> np.ndarray:
    """The refinement before issue 19: every box gathered by fancy indexing (the baseline)."""
    offsets = np.stack(np.meshgrid(*[np.arange(-window, window + 1)] * 2, indexing="ij"), -1).reshape(-1, 2)
    index = coords[:, None, :] + offsets[None]
    valid = np.all((index >= 0) & (index < frame.shape), axis=-1)
    clipped = np.clip(index, 0, np.array(frame.shape) - 1)
    values = frame[clipped[..., 0], clipped[..., 1]].astype(np.float64)
    base = np.min(np.where(valid, values, np.inf), axis=1, keepdims=True)
    weights = np.where(valid, values - base, 0.0)
    total = weights.sum(axis=1)
    return (weights[..., None] * index).sum(axis=1) / np.where(total > 0, total, 1.0)[:, None]


def speed(frame: np.ndarray, quick: bool) -> None:
    import napari_stacklab as sl
    from napari_stacklab import catalog
    from napari_stacklab.measure import _refine

    print(f"{'case':42s} {'baseline s':>10s} {'stacklab s':>10s} {'ratio':>7s}  check")
    rows = []
    for size in (31,) if quick else (31, 63):
        rows.append((f"median size {size} (scipy)", lambda s=size: ndi.median_filter(frame, size=s),
                     lambda s=size: sl.filters.median(frame, size=s), "equal"))
    for radius in (15,) if quick else (15, 40):
        disk = morphology.disk(radius)
        rows.append((f"erosion disk {radius} (skimage)", lambda d=disk: morphology.erosion(frame, d),
                     lambda r=radius: sl.morphology.erosion(frame, radius=r), "equal"))
    op = catalog.get("threshold_multiotsu")
    for classes in (4,) if quick else (4, 5):
        rows.append((f"multi-Otsu {classes} classes (skimage)",
                     lambda c=classes: filters.threshold_multiotsu(frame, classes=c),
                     lambda c=classes: np.array(op.resolve(frame, {"classes": c})["thresholds"]), "within 1"))
    coords = sl.measure.find_peaks(frame, min_distance=2, subpixel=False).astype(int)
    rows.append((f"refine {len(coords)} peaks, window 20 (gather)", lambda: _gathered_refinement(frame, coords, 20),
                 lambda: _refine(frame, coords, 20), "1e-6 px"))
    for name, baseline, candidate, check in rows:
        base_time, expected = _timed(baseline)
        our_time, found = _timed(candidate, repeat=2)
        if check == "equal":
            ok = np.array_equal(expected, found)
        elif check == "within 1":
            ok = np.allclose(expected, found, atol=1)
        else:
            ok = np.allclose(expected, found, atol=1e-6)
        print(f"{name:42s} {base_time:10.3f} {our_time:10.3f} {base_time / our_time:7.1f}  {'ok' if ok else 'DIFFERS'}")


CALLS = [
    ("gaussian", {"sigma": 50}),
    ("median", {"size": 15}),
    ("median", {"size": 127}),
    ("erosion", {"radius": 50}),
    ("opening", {"radius": 20}),
    ("bilateral", {"sigma_spatial": 3}),
    ("clahe", {"kernel_size": 16}),
    ("nl_means", {}),
    ("nl_means", {"fast_mode": False, "patch_distance": 4, "patch_size": 5}),
    ("tv", {"max_num_iter": 100}),
    ("richardson_lucy", {"num_iter": 10}),
    ("subtract_background", {"radius": 15}),
    ("subtract_background", {"method": "tophat", "radius": 100}),
    ("threshold_local", {"method": "median", "block_size": 101}),
    ("threshold_multiotsu", {"classes": 6}),
    ("rotate", {"angle": 30, "resize": True, "order": 3}),
    ("warp_polar", {"angles": 720}),
]


def estimates(frame: np.ndarray, quick: bool) -> None:
    from napari_stacklab import catalog, engine

    print(f"\n{'call':58s} {'estimate s':>10s} {'measured s':>10s} {'est/meas':>8s}")
    for name, params in CALLS[:6] if quick else CALLS:
        op = catalog.get(name)
        bound = op.bind(params)
        estimate = op.cost_for(frame.shape, engine.computable_dtype(frame.dtype), bound).seconds
        measured, _ = _timed(lambda: op.func(frame, **params))
        label = f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})"
        print(f"{label:58s} {estimate:10.3f} {measured:10.3f} {estimate / measured:8.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128 x 128 frames, the smaller cases")
    args = parser.parse_args(argv)
    frame = data.camera()
    if args.quick:
        frame = frame[:128, :128].copy()
    print(f"frame {frame.shape} {frame.dtype}; one process, one core's worth of numpy (the machine may be busy)")
    speed(frame, args.quick)
    estimates(frame, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
