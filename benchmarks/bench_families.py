"""One operation per family over a stack: lazy on all cores (and on one) vs a single-threaded eager loop.

    python benchmarks/bench_families.py              # about 2-4 s of eager work per operation
    python benchmarks/bench_families.py --quick      # small stacks, one run each: a smoke test
    python benchmarks/bench_families.py --repeat 5 --only gaussian,tv

Baseline: the same napari-stacklab operation called on each frame of the stack held in memory,
one frame after another in a Python loop (one thread: what a script without dask does).
Candidate: the operation on the stack as dask reads it from a ``.npy`` file
(``sl.io.imread(path)``, its default chunks of whole frames), computed into memory with dask's
threaded scheduler on every core, and on one thread (the lift's overhead without parallelism).

Each case prints the medians of ``--repeat`` runs (interleaved, so that all three meet the same
machine load) and the time ratios lazy / eager: **<= 0.65 on 2 cores** is the goal. On one
thread it also prints the ratio of CPU times (user + system): the lift's overhead, which other
processes on a shared machine do not stretch the way they stretch wall times. Results are
checked against the eager loop first (equal to float32 rounding). The files are written under
the system's temporary folder and deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _camera_like(frames: int, size: int, seed: int = 0) -> np.ndarray:
    """A uint16 stack of textured frames (camera, upsampled, moving slowly, plus Poisson-like noise)."""
    from scipy import ndimage as ndi
    from skimage import data

    rng = np.random.default_rng(seed)
    base = ndi.zoom(data.camera().astype(np.float32), size / 512, order=1)
    stack = np.empty((frames, size, size), np.uint16)
    for i in range(frames):
        frame = np.roll(base, (i, 2 * i), axis=(0, 1)) * 8 + rng.normal(0, 40, base.shape).astype(np.float32)
        stack[i] = np.clip(frame, 0, 65535)
    return stack


def _wrapped_phase(frames: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    stack = np.empty((frames, size, size), np.float32)
    for i in range(frames):
        true = 40 * xx + 25 * yy + 12 * np.exp(-((yy - 0.5) ** 2 + (xx - 0.3 - 0.01 * i) ** 2) / 0.02)
        stack[i] = np.angle(np.exp(1j * true))
    return stack


#: family -> (operation, parameters, data maker, (frames, size) full, (frames, size) quick)
CASES = {
    "filters": ("gaussian", {"sigma": 2.0}, _camera_like, (48, 1024), (8, 256)),
    "morphology": ("opening", {"footprint": "disk", "radius": 3}, _camera_like, (32, 1024), (8, 256)),
    "denoise": ("tv", {"weight": 0.1, "max_num_iter": 30, "data_range": 4096.0}, _camera_like, (24, 512), (6, 128)),
    "segment": ("threshold_local", {"block_size": 35}, _camera_like, (32, 1024), (8, 256)),
    "preprocess": ("subtract_background", {"method": "tophat", "radius": 8}, _camera_like, (24, 1024), (6, 256)),
    "phase": ("unwrap", {"method": "fast"}, _wrapped_phase, (32, 512), (8, 128)),
}


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process so far: unlike wall time, not stretched by other processes."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_case(family: str, args, folder: Path) -> dict:
    import dask

    import napari_stacklab as sl
    from napari_stacklab import catalog

    name, params, make, full, quick = CASES[family]
    frames, size = quick if args.quick else full
    stack = make(frames, size)
    path = folder / f"{family}.npy"
    np.save(path, stack)
    op = catalog.get(name)
    public = getattr(getattr(sl, op.kernel.__module__.split(".")[1]), name)

    def eager():
        return np.stack([np.asarray(public(frame, **params)) for frame in stack])

    def lazy(workers: int):
        data = sl.io.imread(path, lazy=True).data
        return np.asarray(public(data, **params).compute(scheduler="threads", num_workers=workers))

    expected = eager()
    found = lazy(args.workers)
    tolerance = 1e-4 * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(found.astype(np.float64), expected.astype(np.float64), atol=tolerance,
                               err_msg=f"{family}: lazy and eager results differ")
    times: dict = {"eager": [], "lazy all": [], "lazy 1": [], "eager cpu": [], "lazy 1 cpu": []}
    for _ in range(args.repeat):
        for key, func in (("eager", eager), ("lazy all", lambda: lazy(args.workers)), ("lazy 1", lambda: lazy(1))):
            cpu, start = _cpu_seconds(), time.perf_counter()
            func()
            times[key].append(time.perf_counter() - start)
            times.setdefault(f"{key} cpu", []).append(_cpu_seconds() - cpu)
    with dask.config.set(scheduler="threads"):
        chunks = sl.io.imread(path, lazy=True).data.chunks[0]
    path.unlink()
    median = {key: statistics.median(values) for key, values in times.items()}
    return {"op": f"{name}({', '.join(f'{k}={v!r}' for k, v in params.items())})", "shape": stack.shape,
            "dtype": stack.dtype, "chunks": len(chunks), **median}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--only", help="comma-separated families")
    parser.add_argument("--quick", action="store_true", help="small stacks, one run each")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    families = args.only.split(",") if args.only else list(CASES)
    folder = Path(tempfile.mkdtemp(prefix="stacklab_bench_families_"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPU cores (load average {load:.1f}); lazy on {args.workers} threads and on 1; eager: a "
          f"loop over the frames in memory, one thread; medians of {args.repeat} run(s)")
    print(f"{'family':11s} {'operation':52s} {'stack':>18s} {'eager s':>8s} {'lazy s':>7s} {'ratio':>6s} "
          f"{'1-thr s':>8s} {'ratio':>6s}")
    ratios, single, cpu = {}, {}, {}
    try:
        for family in families:
            r = run_case(family, args, folder)
            ratios[family], single[family] = r["lazy all"] / r["eager"], r["lazy 1"] / r["eager"]
            cpu[family] = r["lazy 1 cpu"] / r["eager cpu"]
            shape = "x".join(map(str, r["shape"])) + f" {r['dtype']}"
            print(f"{family:11s} {r['op'][:52]:52s} {shape:>18s} {r['eager']:8.2f} {r['lazy all']:7.2f} "
                  f"{ratios[family]:6.2f} {r['lazy 1']:8.2f} {r['lazy 1'] / r['eager']:6.2f}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for family in ratios:
        print(f"{family}: time ratio lazy/eager {ratios[family]:.2f} on {args.workers} threads (goal <= 0.65 on 2 "
              f"cores), {single[family]:.2f} on 1 thread; the lift's overhead in CPU time (not stretched by other "
              f"processes): {cpu[family]:.2f}")
    worst = max(ratios, key=ratios.get)
    print(f"worst time ratio lazy (all {args.workers} threads) / eager loop: {ratios[worst]:.2f} ({worst}); "
          f"goal <= 0.65 on 2 cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
