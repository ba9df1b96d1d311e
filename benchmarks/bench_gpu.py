"""GPU (CuPy) against the CPU path of the same operations, on the same machine, in one run.

Baseline: the NumPy/SciPy path of each napari-stacklab operation. For each case it prints
  - the CPU time,
  - the GPU kernel time (data already on the device, synchronised),
  - the GPU end-to-end time (host -> device, compute, device -> host),
and the speed-ups CPU / GPU for both, plus the largest difference between the two results.

    python benchmarks/bench_gpu.py [--quick]

Needs CuPy and an NVIDIA GPU; without them it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import napari_stacklab as sl
from napari_stacklab import _backend


def _timed(func, repeat: int) -> tuple[float, object]:
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def _cases(size: str, rng: np.random.Generator) -> list:
    n = {"tiny": 128, "quick": 1024, "full": 2048}[size]
    frames = {"tiny": 2, "quick": 8, "full": 64}[size]
    scan = {"tiny": (4, 4, 32, 32), "quick": (32, 32, 128, 128), "full": (128, 128, 128, 128)}[size]
    stack = rng.poisson(200, (frames, n, n)).astype(np.uint16)
    y, x = np.mgrid[:n, :n] / n
    phase = (40 * (x - 0.5) ** 2 + 30 * (y - 0.4) ** 2).astype(np.float32)
    wrapped = np.angle(np.exp(1j * phase)).astype(np.float32)
    from skimage import data, transform

    fixed = transform.resize(data.camera().astype(np.float32), (n, n), preserve_range=True).astype(np.float32)
    matrix = np.array([[1.01, 0.02, 3.2], [-0.015, 0.99, -2.1], [0, 0, 1]])
    moving = sl.register.warp(fixed, sl.register.Transform(matrix=matrix, model="affine"), output_shape=fixed.shape)
    drift_stack = np.stack([np.roll(fixed, (i, 2 * i), axis=(0, 1)) for i in range({"full": 100}.get(size, 16))])
    scan = rng.poisson(3, scan).astype(np.uint16)
    inner, outer = scan.shape[-1] // 8, scan.shape[-1] * 3 // 8
    return [
        ("gaussian sigma=2 over a stack", stack, lambda a: sl.filters.gaussian(a, sigma=2)),
        ("FFT band-pass", stack[: max(1, frames // 4)], lambda a: sl.filters.bandpass(a, low_cutoff=4, high_cutoff=64)),
        (f"ECC affine {n}x{n}", (fixed, moving), lambda ab: sl.register.ecc(ab[0], ab[1], model="affine").matrix),
        ("phase-correlation drift", drift_stack, lambda a: sl.register.drift(a, refine=False)),
        (f"fast unwrap {n}x{n}", wrapped, lambda a: sl.phase.unwrap(a, method="fast")),
        ("annular virtual detector", scan, lambda a: sl.stem.annular_dark_field(a, inner=inner, outer=outer)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    parser.add_argument("--tiny", action="store_true", help="toy inputs: checks that every case runs, measures nothing")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if not _backend.gpu_available():
        print("bench_gpu: CuPy or a CUDA device is not available here; nothing to measure.")
        return 0
    import cupy

    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"device: {device}; baseline: the CPU (NumPy/SciPy) path of the same operation")
    print(f"{'case':34s} {'cpu s':>8s} {'gpu s':>8s} {'e2e s':>8s} {'kernel x':>9s} {'e2e x':>7s} {'max diff':>9s}")

    def to_gpu(value):
        return tuple(cupy.asarray(v) for v in value) if isinstance(value, tuple) else cupy.asarray(value)

    def synced(func, value):
        def run():
            out = func(value)
            cupy.cuda.Device().synchronize()
            return out

        return run

    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    for name, value, func in _cases(size, np.random.default_rng(0)):
        cpu_time, cpu_out = _timed(lambda: func(value), args.repeat)
        on_device = to_gpu(value)
        func(on_device)  # warm-up: kernel compilation and FFT plans
        gpu_time, gpu_out = _timed(synced(func, on_device), args.repeat)
        e2e_time, _ = _timed(lambda: _backend.to_numpy(func(to_gpu(value))), args.repeat)
        difference = float(np.max(np.abs(np.asarray(_backend.to_numpy(gpu_out), dtype=np.float64)
                                         - np.asarray(cpu_out, dtype=np.float64))))
        print(f"{name:34s} {cpu_time:8.3f} {gpu_time:8.3f} {e2e_time:8.3f} "
              f"{cpu_time / gpu_time:9.1f} {cpu_time / e2e_time:7.1f} {difference:9.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
