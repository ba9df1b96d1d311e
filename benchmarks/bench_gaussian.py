"""Gaussian (sigma=2) over a (frames, 2048, 2048) uint16 stack: lazy stacklab vs a scikit-image loop.

Baseline: a single-threaded Python loop of ``skimage.filters.gaussian(frame,
sigma=2, preserve_range=True)`` over the frames. Candidate:
``napari_stacklab.filters.gaussian`` on a lazy dask stack (one frame per
chunk), computed with dask's threaded scheduler on all cores. Both read the
stack from a raw file on disk (written under the system's temporary folder and
deleted at the end; never memory-mapped, so that file pages do not count as
resident memory) and consume every output frame (its sum), so neither holds
the whole result.

Each side runs in its own subprocess; the script prints wall time, the time
ratio (baseline / stacklab) and each side's peak RSS as a fraction of the
stack size.

    python benchmarks/bench_gaussian.py [--frames 64] [--size 2048] [--workers N] [--quick]

The goal (issue 18): the time ratio stacklab / loop stays at or below 0.65 on 2 cores (0.57 on a
quiet 2-core machine when it was set).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(tempfile.gettempdir()) / "stacklab_bench_gaussian"
SIGMA = 2.0


def stack_path(frames: int, size: int) -> Path:
    return DATA / f"stack_{frames}x{size}x{size}_uint16.raw"


def make_stack(frames: int, size: int) -> Path:
    path = stack_path(frames, size)
    if path.exists() and path.stat().st_size == frames * size * size * 2:
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(path, "wb") as handle:
        for _ in range(frames):
            handle.write(rng.integers(0, 4096, (size, size), dtype=np.uint16).tobytes())
    return path


def read_frame(path: str, index: int, size: int) -> np.ndarray:
    offset = index * size * size * 2
    return np.fromfile(path, dtype=np.uint16, count=size * size, offset=offset).reshape(size, size)


def run_baseline(path: str, frames: int, size: int) -> float:
    from skimage.filters import gaussian

    _imported()
    total = 0.0
    for index in range(frames):
        total += float(gaussian(read_frame(path, index, size), sigma=SIGMA, preserve_range=True).sum())
    return total


def run_stacklab(path: str, frames: int, size: int, workers: int) -> float:
    import dask
    import dask.array as da

    from napari_stacklab.filters import gaussian

    _imported()
    blocks = [
        da.from_delayed(dask.delayed(read_frame)(path, index, size), (size, size), np.uint16)[None]
        for index in range(frames)
    ]
    stack = da.concatenate(blocks, axis=0)
    sums = gaussian(stack, sigma=SIGMA).sum(axis=(1, 2), dtype=np.float64)
    with dask.config.set(scheduler="threads", num_workers=workers):
        return float(sums.sum().compute())


_AFTER_IMPORTS = {}


def _imported() -> None:
    """Record the resident memory once the libraries are loaded (the fixed cost, not the work)."""
    _AFTER_IMPORTS["bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(which: str, frames: int, size: int, workers: int) -> None:
    path = str(stack_path(frames, size))
    start = time.perf_counter()
    total = run_baseline(path, frames, size) if which == "baseline" else run_stacklab(path, frames, size, workers)
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak_kib * 1024
    print(json.dumps({"seconds": elapsed, "peak_bytes": peak, "work_bytes": peak - _AFTER_IMPORTS["bytes"], "checksum": total}))


def measure(which: str, frames: int, size: int, workers: int) -> dict:
    command = [sys.executable, __file__, "--child", which, "--frames", str(frames), "--size", str(size)]
    command += ["--workers", str(workers)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--quick", action="store_true", help="16 frames of 1024 x 1024: a smoke test")
    parser.add_argument("--child", choices=["baseline", "stacklab"])
    args = parser.parse_args()
    if args.quick:
        args.frames, args.size = 16, 1024
    if args.child:
        child(args.child, args.frames, args.size, args.workers)
        return
    try:
        make_stack(args.frames, args.size)
        stack_bytes = args.frames * args.size * args.size * 2
        print(f"stack: {args.frames} x {args.size} x {args.size} uint16 = {stack_bytes / 2**20:.0f} MiB; "
              f"gaussian sigma={SIGMA}; dask threads: {args.workers}")
        base = measure("baseline", args.frames, args.size, args.workers)
        lab = measure("stacklab", args.frames, args.size, args.workers)
    finally:
        shutil.rmtree(DATA, ignore_errors=True)
    rel = abs(base["checksum"] - lab["checksum"]) / abs(base["checksum"])
    for name, result in (("baseline skimage loop (1 thread)", base), ("stacklab lazy (dask threads)", lab)):
        print(f"{name:34s} {result['seconds']:8.2f} s   peak RSS {result['peak_bytes'] / stack_bytes:5.2f} x stack"
              f" ({result['work_bytes'] / stack_bytes:5.2f} x stack above the imported libraries)")
    print(f"time ratio stacklab / baseline: {lab['seconds'] / base['seconds']:.2f} (goal <= 0.65 on 2 cores)   "
          f"(checksums agree to {rel:.1e})")


if __name__ == "__main__":
    main()
