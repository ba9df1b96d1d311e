"""Open a large TIFF stack and show its middle plane: napari-stacklab vs tifffile.imread.

Baseline: ``tifffile.imread(path)[middle]`` -- what a reader that loads the
whole file does before napari can show one plane. Measured, each in a FRESH
process (imports and a dask warm-up done before the clock starts):

- ``napari reader``: what napari does with the plugin -- ``napari_get_reader(path)``,
  the layer data it returns (view chunks: one 8 MiB plane per chunk), then the
  middle plane computed;
- ``sl.io.imread``: the headless default (batch chunks of 64 MiB), middle plane.

Each child reports its wall time, the bytes it read from the file while
opening and showing the plane (``rchar`` of ``/proc/self/io``: every byte read
by a system call, page cache or not; and the reader's own count), and its peak
resident memory. The file is an uncompressed ImageJ stack of 2048 x 2048 uint16
planes written once under ``/tmp`` (never in the repository); it is usually in
the OS page cache when measured, for every contender alike.

    python benchmarks/bench_open_tiff.py                # 1.25 GiB: 160 x 2048 x 2048 uint16
    python benchmarks/bench_open_tiff.py --quick        # 0.31 GiB, one run each (smoke test)
    python benchmarks/bench_open_tiff.py --frames 320 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA_DIR = Path(tempfile.gettempdir()) / "stacklab_bench"
PLANE = (2048, 2048)

_PRELUDE = """
import json, os, resource, sys, time
import numpy as np, dask.array, tifffile
import napari_stacklab as sl
from napari_stacklab._napari.reader import napari_get_reader
from napari_stacklab.io._lazy import RawArray
dask.array.zeros(4, chunks=2).sum().compute()  # dask's scheduler warmed up, as in a running napari
path = sys.argv[1]

def rchar():
    try:
        with open("/proc/self/io") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("rchar"))
    except OSError:
        return -1

def report(start, before, data, plane):
    wall = time.perf_counter() - start
    read = rchar() - before if before >= 0 else -1
    graph = dict(data.__dask_graph__()) if hasattr(data, "__dask_graph__") else {}
    counted = sum(v.bytes_read for v in graph.values() if isinstance(v, RawArray))
    print(json.dumps({"wall": wall, "rchar": read, "reader_bytes": counted,
                      "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "checksum": int(np.asarray(plane).sum(dtype=np.int64)),
                      "chunk": [int(c[0]) for c in getattr(data, "chunks", ())]}))
"""

CHILD = {
    "napari reader": _PRELUDE + """
start, before = time.perf_counter(), rchar()
((data, kwargs, kind),) = napari_get_reader(path)(path)
plane = np.asarray(data[data.shape[0] // 2])
report(start, before, data, plane)
""",
    "sl.io.imread": _PRELUDE + """
start, before = time.perf_counter(), rchar()
data = sl.io.imread(path).data
plane = np.asarray(data[data.shape[0] // 2])
report(start, before, data, plane)
""",
    "tifffile.imread": _PRELUDE + """
start, before = time.perf_counter(), rchar()
data = tifffile.imread(path)
plane = np.asarray(data[data.shape[0] // 2])
report(start, before, data, plane)
""",
}
BASELINE = "tifffile.imread"


def ensure_file(frames: int) -> Path:
    """Write (once) an uncompressed ImageJ uint16 stack of ``frames`` 2048 x 2048 planes under /tmp."""
    import tifffile

    path = DATA_DIR / f"stack_{frames}x{PLANE[0]}x{PLANE[1]}_uint16.tif"
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    ramp = (np.arange(PLANE[0])[:, None] + np.arange(PLANE[1])[None, :]).astype(np.uint16)
    partial = path.with_suffix(".partial.tif")
    print(f"writing {path} ({frames * ramp.nbytes / 2**30:.2f} GiB) once ...", flush=True)
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
    out = subprocess.run([sys.executable, "-c", CHILD[kind], str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_wall"] = time.perf_counter() - start
    return result


def _mib(value: float) -> str:
    return "n/a" if value < 0 else f"{value / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=160, help="2048 x 2048 uint16 planes (default 160: 1.25 GiB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender (median reported)")
    parser.add_argument("--quick", action="store_true", help="40 planes (0.31 GiB, above the lazy threshold), one run each")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.repeat = 40, 1

    path = ensure_file(args.frames)
    results: dict[str, list[dict]] = {kind: [] for kind in CHILD}
    for _ in range(args.repeat):
        for kind in results:  # alternate, so all see the same machine load and page cache
            results[kind].append(run_child(kind, path))
    checksums = {r["checksum"] for runs in results.values() for r in runs}
    assert len(checksums) == 1, f"the contenders read different middle planes: {checksums}"

    size = path.stat().st_size
    plane_bytes = PLANE[0] * PLANE[1] * 2
    print(f"\nfile: {path} ({size / 2**30:.2f} GiB, {args.frames} planes of {plane_bytes / 2**20:.0f} MiB); "
          f"median of {args.repeat} run(s), each in a fresh process")
    header = f"{'':20s}{'open+plane':>12s}{'ratio':>8s}{'process':>10s}{'read (rchar)':>14s}{'reader count':>14s}"
    print(header + f"{'peak RSS':>11s}  chunk")
    base = statistics.median(r["wall"] for r in results[BASELINE])
    for kind, runs in results.items():
        med = {key: statistics.median(r[key] for r in runs) for key in ("wall", "process_wall", "rchar",
                                                                        "reader_bytes", "rss_kib")}
        counted = _mib(med["reader_bytes"]) if kind != BASELINE else "-"
        print(f"{kind:20s}{med['wall']:>10.4f} s{med['wall'] / base:>8.4f}{med['process_wall']:>8.2f} s"
              f"{_mib(med['rchar']):>14s}{counted:>14s}{med['rss_kib'] / 1024:>8.0f} MiB  {runs[0]['chunk']}")
    napari = statistics.median(r["wall"] for r in results["napari reader"])
    print(f"\nratio napari reader / {BASELINE}: {napari / base:.4f} (goal <= 0.05); "
          f"bytes read for the plane: {_mib(statistics.median(r['reader_bytes'] for r in results['napari reader']))}"
          f" of pixels ({_mib(statistics.median(r['rchar'] for r in results['napari reader']))} in all, headers "
          f"included), the plane being {_mib(plane_bytes)}")


if __name__ == "__main__":
    main()
