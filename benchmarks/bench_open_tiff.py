"""Open a large TIFF stack and show its middle plane: napari-stacklab vs tifffile.imread.

Baseline: ``tifffile.imread(path)[middle]`` -- what a reader that loads the
whole file does before napari can show one plane. Measured:
``sl.io.imread(path)`` (lazy above ``io.LAZY_THRESHOLD_BYTES``: a read-only
memory map, whole planes per dask chunk) followed by computing the middle
plane, which is what napari does to display it.

Each measurement runs in a fresh subprocess (imports and a dask warm-up done
before the clock starts); the child reports its wall time and its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The file is written once and
cached under ``benchmarks/_data/`` (git-ignored); it is usually in the OS
page cache when measured, for both contenders alike.

    python benchmarks/bench_open_tiff.py              # 2 GiB, 256 x 2048 x 2048 uint16
    python benchmarks/bench_open_tiff.py --size-gib 0.25 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "_data"
PLANE = (2048, 2048)

CHILD = {
    "stacklab": """
import json, resource, sys, time
import numpy as np, dask.array, tifffile
import napari_stacklab as sl
dask.array.zeros(4, chunks=2).sum().compute()  # dask's scheduler warmed up, as in a running napari
path = sys.argv[1]
start = time.perf_counter()
img = sl.io.imread(path)
plane = np.asarray(img.data[img.shape[0] // 2])
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "checksum": int(plane.sum(dtype=np.int64)), "lazy": type(img.data).__module__}))
""",
    "tifffile": """
import json, resource, sys, time
import numpy as np, dask.array, tifffile
import napari_stacklab as sl
dask.array.zeros(4, chunks=2).sum().compute()  # dask's scheduler warmed up, as in a running napari
path = sys.argv[1]
start = time.perf_counter()
data = tifffile.imread(path)
plane = np.asarray(data[data.shape[0] // 2])
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "checksum": int(plane.sum(dtype=np.int64)), "lazy": type(data).__module__}))
""",
}


def ensure_file(size_gib: float) -> Path:
    """Write (once) an uncompressed ImageJ uint16 stack of about ``size_gib`` GiB."""
    import tifffile

    frames = max(2, round(size_gib * 2**30 / (PLANE[0] * PLANE[1] * 2)))
    path = DATA_DIR / f"stack_{frames}x{PLANE[0]}x{PLANE[1]}_uint16.tif"
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    ramp = (np.arange(PLANE[0])[:, None] + np.arange(PLANE[1])[None, :]).astype(np.uint16)
    partial = path.with_suffix(".partial.tif")
    print(f"writing {path.name} ({frames * ramp.nbytes / 2**30:.2f} GiB) once ...", flush=True)
    tifffile.imwrite(
        partial,
        (ramp + np.uint16(i) for i in range(frames)),
        shape=(frames, *PLANE),
        dtype=np.uint16,
        imagej=True,
        resolution=(1 / 0.1, 1 / 0.1),
        metadata={"axes": "ZYX", "spacing": 0.3, "unit": "um"},
    )
    partial.rename(path)
    return path


def run_child(kind: str, path: Path) -> dict:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD[kind], str(path)], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_wall"] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0, help="size of the test stack (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender (median reported)")
    args = parser.parse_args(argv)

    path = ensure_file(args.size_gib)
    results: dict[str, list[dict]] = {"stacklab": [], "tifffile": []}
    for _ in range(args.repeat):
        for kind in results:  # alternate, so both see the same machine load and page cache
            results[kind].append(run_child(kind, path))
    checksums = {r["checksum"] for runs in results.values() for r in runs}
    assert len(checksums) == 1, f"the contenders read different middle planes: {checksums}"

    size = path.stat().st_size / 2**30
    print(f"\nfile: {path.name} ({size:.2f} GiB); median of {args.repeat} runs, each in a fresh process")
    print(f"{'':34s}{'read+middle plane':>18s}{'process wall':>14s}{'peak RSS':>12s}")
    med = {}
    for kind, runs in results.items():
        med[kind] = {key: statistics.median(r[key] for r in runs) for key in ("wall", "process_wall", "rss_kib")}
        label = "stacklab sl.io.imread + plane" if kind == "stacklab" else "baseline tifffile.imread + plane"
        print(
            f"{label:34s}{med[kind]['wall']:>16.3f} s{med[kind]['process_wall']:>12.3f} s"
            f"{med[kind]['rss_kib'] / 1024:>9.0f} MiB"
        )
    print(
        "ratio stacklab / tifffile:        "
        f"{med['stacklab']['wall'] / med['tifffile']['wall']:>16.4f}  "
        f"{med['stacklab']['process_wall'] / med['tifffile']['process_wall']:>12.3f}  "
        f"{med['stacklab']['rss_kib'] / med['tifffile']['rss_kib']:>10.3f}"
    )


if __name__ == "__main__":
    main()
