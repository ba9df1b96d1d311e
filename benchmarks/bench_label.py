"""Global threshold + per-frame labels of a time stack: lazy stacklab (dask, all cores) vs an eager scikit-image loop.

Pipeline: a global Otsu threshold over the whole stack, then 2-D connected components of every
frame, reduced to a per-frame object count (what a time-lapse analysis keeps). Two sources of
the same kind of stack (200 x 512 x 512 uint16 by default):

- ``generated``: every frame made on demand (noise smoothed by a Gaussian filter), as a lazy
  reader that decodes frames would give it: reading a frame costs real work;
- ``file``: a ``.npy`` file in the system's temporary folder, read by ``sl.io.imread``
  (lazy) and by ``numpy.load`` (eager).

Baseline: the stack in memory, ``skimage.filters.threshold_otsu`` of the whole stack, then
``skimage.measure.label`` frame by frame into a preallocated int32 stack. Candidate: the lazy
stack, ``segment.threshold(method="otsu")`` (the statistic computed once, in one read of a
16-bit stack) then ``segment.label(mode="2d")``; the script counts the passes dask makes over
the stack (the statistic, then the labels: two). Each side runs in its own subprocess so its
peak RSS is measured alone; libraries are imported, and each side run once on a toy stack,
before the clock starts (the peak RSS includes them, and is also printed without them).

    python benchmarks/bench_label.py [--frames 200] [--size 512] [--source generated,file] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.measure import label
frames, size, side, source = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if side == "lazy":
    import dask, dask.array as da
    from dask.callbacks import Callback
    import napari_stacklab as sl
    from napari_stacklab import segment

    class Passes(Callback):
        count = 0
        def _start(self, dsk):
            Passes.count += 1

def frame(i):
    rng = np.random.default_rng(i)
    image = ndi.gaussian_filter(rng.random((size, size), dtype=np.float32), 4)
    return (image * 6000).astype(np.uint16)

tiny = (np.arange(2 * 64 * 64) % 97).astype(np.uint16).reshape(2, 64, 64)
if side == "eager":  # warm-up on a toy stack: modules loaded on first use are loaded before the clock starts
    label(tiny[0] > threshold_otsu(tiny))
else:
    segment.label(segment.threshold(da.from_array(tiny, chunks=(1, 64, 64)), method="otsu")).max().compute()
imported_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
passes = 1
if side == "eager":
    stack = np.load(source) if source.endswith(".npy") else np.stack([frame(i) for i in range(frames)])
    value = threshold_otsu(stack)
    labels = np.empty(stack.shape, np.int32)
    for i in range(frames):
        labels[i] = label(stack[i] > value)
    counts = labels.max(axis=(1, 2))
else:
    if source.endswith(".npy"):
        stack = sl.io.imread(source, lazy=True).data
    else:
        stack = da.stack([da.from_delayed(dask.delayed(frame)(i), (size, size), np.uint16) for i in range(frames)])
    with Passes():
        labels = segment.label(segment.threshold(stack, method="otsu"))
        counts = labels.max(axis=(1, 2)).compute(scheduler="threads")
    passes = Passes.count
elapsed = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": elapsed, "peak_mb": peak_mb, "work_mb": peak_mb - imported_mb,
                  "objects": int(np.asarray(counts).sum()), "passes": passes}))
"""


def run(side: str, frames: int, size: int, source: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(frames), str(size), side, source],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{side} ({source}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_stack(path: Path, frames: int, size: int) -> None:
    import numpy as np
    from scipy import ndimage as ndi

    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(frames, size, size))
    for i in range(frames):
        image = ndi.gaussian_filter(np.random.default_rng(i).random((size, size), dtype=np.float32), 4)
        data[i] = (image * 6000).astype(np.uint16)
    data.flush()
    del data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--source", default="generated,file", help="generated, file or both (comma-separated)")
    parser.add_argument("--quick", action="store_true", help="40 frames: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames = 40
    print(f"stack {args.frames} x {args.size} x {args.size} uint16, threshold (otsu, global) + label 2d per frame")
    with tempfile.TemporaryDirectory(prefix="stacklab_bench_label_") as folder:
        for source in args.source.split(","):
            where = "generated"
            if source == "file":
                where = str(Path(folder) / "stack.npy")
                write_stack(Path(where), args.frames, args.size)
            eager = run("eager", args.frames, args.size, where)
            lazy = run("lazy", args.frames, args.size, where)
            if eager["objects"] != lazy["objects"]:
                raise SystemExit(f"results differ: {eager['objects']} vs {lazy['objects']} objects")
            title = {"generated": "frames generated on demand", "file": "a .npy file (sl.io.imread / numpy.load)"}
            print(f"\n{title[source]}:")
            for name, r in (("baseline eager skimage loop ", eager), ("stacklab lazy (dask threads)", lazy)):
                print(f"  {name}: {r['seconds']:6.2f} s, peak RSS {r['peak_mb']:5.0f} MB "
                      f"({r['work_mb']:4.0f} MB above the imported libraries), {r['passes']} pass(es) over the stack")
            print(f"  time ratio lazy/eager = {lazy['seconds'] / eager['seconds']:.2f} (goal <= 1.0)")
            print(f"  peak RSS ratio lazy/eager = {lazy['peak_mb'] / eager['peak_mb']:.2f} (goal <= 0.3)")
            print(f"  objects (both): {eager['objects']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
