"""Phase unwrapping of a 2048 x 2048 wrapped phase: stacklab "fast" and "exact" vs scikit-image.

Baseline: ``skimage.restoration.unwrap_phase`` (reliability-sorting path
following). Candidates: ``napari_stacklab.phase.unwrap(method="exact")``
(the same algorithm behind the registry's validation and lifting) and
``method="fast"`` (least squares by an FFT Poisson solver; runs on CuPy too,
timed on the GPU as well when one is there).

The phase is a smooth synthetic surface of many turns (tilted plane plus
Gaussian bumps, about 130 rad peak to peak) with optional Gaussian noise,
wrapped to ``[-pi, pi)``. Each method is timed best-of-``--repeat``; the
script prints wall times, the time ratio ``baseline / candidate`` and the
error against the true phase (RMS and max, after removing the mean
difference; for "exact" also after removing the best multiple of 2 pi, and
its difference to scikit-image).

    python benchmarks/bench_unwrap.py [--size 2048] [--noise 0.0] [--repeat 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from skimage.restoration import unwrap_phase

from napari_stacklab import _backend, phase


def synthetic_phase(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64) / size
    true = 40 * xx + 25 * yy
    for _ in range(6):
        cy, cx = rng.uniform(0.1, 0.9, 2)
        width = rng.uniform(0.05, 0.2)
        true += rng.uniform(-30, 30) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
    return true


def best_time(func, repeat: int):
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def errors(out: np.ndarray, true: np.ndarray, two_pi_k: bool = False) -> tuple[float, float]:
    diff = out - true
    diff = diff - (2 * np.pi * np.round(np.median(diff) / (2 * np.pi)) if two_pi_k else diff.mean())
    return float(np.sqrt(np.mean(diff**2))), float(np.abs(diff).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument(
        "--noise", type=float, default=0.0, help="Gaussian phase noise (rad) before wrapping"
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="512 x 512, one run: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.size, args.repeat = 512, 1

    true = synthetic_phase(args.size)
    rng = np.random.default_rng(1)
    wrapped = np.angle(
        np.exp(1j * (true + rng.normal(0, args.noise, true.shape) if args.noise else true))
    )
    print(
        f"wrapped phase {args.size}x{args.size} float64, noise {args.noise} rad, "
        f"true range {true.max() - true.min():.0f} rad; best of {args.repeat}"
    )

    t_base, base = best_time(lambda: unwrap_phase(wrapped, rng=0), args.repeat)
    rows = [("skimage unwrap_phase (baseline)", t_base, base, True)]
    t_exact, exact = best_time(lambda: phase.unwrap(wrapped, method="exact"), args.repeat)
    rows.append(('stacklab unwrap method="exact"', t_exact, exact, True))
    t_fast, fast = best_time(lambda: phase.unwrap(wrapped, method="fast"), args.repeat)
    rows.append(('stacklab unwrap method="fast"', t_fast, fast, False))
    t_fast32, fast32 = best_time(
        lambda: phase.unwrap(wrapped.astype(np.float32), method="fast"), args.repeat
    )
    rows.append(('stacklab unwrap method="fast" float32', t_fast32, fast32, False))
    if _backend.gpu_available():
        import cupy as cp

        device = cp.asarray(wrapped)
        phase.unwrap(device, method="fast")  # warm-up (plan caches, kernels)

        def on_gpu():
            out = phase.unwrap(device, method="fast")
            cp.cuda.Stream.null.synchronize()
            return out

        t_gpu, gpu = best_time(on_gpu, args.repeat)
        rows.append(('stacklab unwrap method="fast" on GPU', t_gpu, cp.asnumpy(gpu), False))

    print(f"{'method':42s} {'time s':>8s} {'speed-up':>9s} {'RMS err':>9s} {'max err':>9s}")
    for label, seconds, out, integer_steps in rows:
        rms, worst = errors(out, true, two_pi_k=integer_steps)
        print(f"{label:42s} {seconds:8.3f} {t_base / seconds:8.2f}x {rms:9.2e} {worst:9.2e}")
    same = np.abs(exact - base - 2 * np.pi * np.round(np.median(exact - base) / (2 * np.pi))).max()
    print(f'"exact" vs scikit-image: max difference after removing 2 pi k = {same:.1e} rad')


if __name__ == "__main__":
    main()
