"""Annular virtual detector over a >= 2 GiB 4D-STEM file: napari-stacklab vs a named baseline.

    python benchmarks/bench_stem.py [--scan 256] [--detector 128] [--repeat 2]

Writes ``benchmarks/_data/stem4d_<scan>_<detector>.npy`` once (uint16, a
bright disk plus Poisson-like noise; 2 GiB for the defaults), then times, on
the same file in the same run:

- ``stacklab``: ``io.imread(path, lazy=True)`` (a read-only memory map, dask
  chunks of whole frames) then ``stem.annular_dark_field(...)`` computed with
  dask's threaded scheduler;
- ``libertem``: LiberTEM's ring analysis on the same ``.npy`` (when
  ``import libertem`` works);
- ``numpy loop``: a plain NumPy memory-map loop over blocks of scan rows, one
  ``block @ mask`` per block (always run; the baseline when LiberTEM is missing).

It prints the throughput (GB/s of detector data) of each and the ratios
against the baselines. Results are checked against each other first. The first
pass of the first method also pulls the file into the page cache; every method
is run ``--repeat`` times and its best time is reported, so all are timed warm.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "_data"
INNER, OUTER = 20.0, 50.0


def make_file(scan: int, detector: int) -> Path:
    path = DATA / f"stem4d_{scan}_{detector}.npy"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.uint16,
                                   shape=(scan, scan, detector, detector))
    yy, xx = np.mgrid[:detector, :detector]
    disk = (np.hypot(yy - detector / 2, xx - detector / 2) < detector / 6).astype(np.uint16) * 200
    noise = rng.integers(0, 8, (16, detector, detector), dtype=np.uint16)
    for row in range(scan):
        mm[row] = disk + noise[row % 16] + np.uint16(row % 7)
    mm.flush()
    del mm
    os.replace(path.with_suffix(".tmp.npy"), path)
    return path


def best_of(repeat: int, func):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def run_stacklab(path: Path):
    import dask

    import napari_stacklab as sl

    image = sl.io.imread(path, lazy=True)
    lazy = sl.stem.annular_dark_field(image.data, inner=INNER, outer=OUTER)
    with dask.config.set(scheduler="threads"):
        return np.asarray(lazy.compute())


def run_numpy_loop(path: Path, rows_per_block: int = 8):
    mm = np.load(path, mmap_mode="r")
    scan_y, scan_x, ky, kx = mm.shape
    yy, xx = np.mgrid[:ky, :kx]
    r = np.hypot(yy - (ky - 1) / 2, xx - (kx - 1) / 2)
    mask = ((r >= INNER) & (r <= OUTER)).astype(np.float32).ravel()
    out = np.empty((scan_y, scan_x), np.float32)
    for start in range(0, scan_y, rows_per_block):
        block = np.asarray(mm[start : start + rows_per_block], dtype=np.float32)
        out[start : start + rows_per_block] = (block.reshape(-1, ky * kx) @ mask).reshape(-1, scan_x)
    return out


def run_libertem(path: Path):
    from libertem.api import Context

    mm = np.load(path, mmap_mode="r")
    ky, kx = mm.shape[2:]
    ctx = Context.make_with("threads", cpus=os.cpu_count())
    try:
        dataset = ctx.load("npy", path=str(path))
        analysis = ctx.create_ring_analysis(dataset=dataset, cx=(kx - 1) / 2, cy=(ky - 1) / 2, ri=INNER, ro=OUTER)
        result = ctx.run(analysis)
        return np.asarray(result.intensity.raw_data, dtype=np.float32)
    finally:
        ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=int, default=256)
    parser.add_argument("--detector", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    path = make_file(args.scan, args.detector)
    gigabytes = path.stat().st_size / 1e9
    print(f"file: {path.name}, {gigabytes:.2f} GB, annulus {INNER:g}..{OUTER:g} px, {os.cpu_count()} CPU cores")

    methods = {"stacklab": run_stacklab, "numpy loop": run_numpy_loop}
    try:
        import libertem  # noqa: F401

        methods["libertem"] = run_libertem
    except ImportError as exc:
        print(f"LiberTEM not available ({exc}); the baseline is the plain NumPy memory-map loop")

    times, results = {}, {}
    for name, func in methods.items():
        times[name], results[name] = best_of(args.repeat, lambda func=func: func(path))
        print(f"{name:>12}: {times[name]:7.2f} s  {gigabytes / times[name]:6.2f} GB/s")
    for name, result in results.items():
        np.testing.assert_allclose(result, results["stacklab"], rtol=1e-4, err_msg=f"{name} disagrees")
    for baseline in ("libertem", "numpy loop"):
        if baseline in times:
            print(f"ratio stacklab / {baseline} throughput: {times[baseline] / times['stacklab']:.2f}x")


if __name__ == "__main__":
    main()
