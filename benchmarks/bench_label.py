"""Per-frame labeling of a time stack: lazy stacklab (dask, all cores) vs an eager scikit-image loop.

Pipeline per frame: global Otsu threshold (computed once over the stack) then
2-D connected components. Baseline: the stack in memory, ``threshold_otsu`` of
the whole stack, then ``skimage.measure.label`` frame by frame into a
preallocated int32 stack. Candidate: the same stack as a lazy dask array (the
way a reader returns it: generated frame by frame, never whole in memory),
``segment.threshold`` + ``segment.label(mode="2d")`` and the labels reduced to
a per-frame object count (what a time-lapse analysis keeps).

Each side runs in its own subprocess so its peak RSS is measured alone.

    python benchmarks/bench_label.py [--frames 200] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
frames, size, side = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def frame(i):
    rng = np.random.default_rng(i)
    from scipy import ndimage as ndi
    image = ndi.gaussian_filter(rng.random((size, size), dtype=np.float32), 4)
    return (image * 6000).astype(np.uint16)

start = time.perf_counter()
if side == "eager":
    from skimage.filters import threshold_otsu
    from skimage.measure import label
    stack = np.stack([frame(i) for i in range(frames)])
    value = threshold_otsu(stack)
    labels = np.empty(stack.shape, np.int32)
    for i in range(frames):
        labels[i] = label(stack[i] > value)
    counts = labels.max(axis=(1, 2))
else:
    import dask, dask.array as da
    from napari_stacklab import segment
    parts = [da.from_delayed(dask.delayed(frame)(i), (size, size), np.uint16) for i in range(frames)]
    stack = da.stack(parts)
    labels = segment.label(segment.threshold(stack, method="otsu"))
    counts = labels.max(axis=(1, 2)).compute(scheduler="threads")
elapsed = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": elapsed, "peak_mb": peak_mb, "objects": int(np.asarray(counts).sum())}))
"""


def run(side: str, frames: int, size: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(frames), str(size), side], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    eager = run("eager", args.frames, args.size)
    lazy = run("lazy", args.frames, args.size)
    if eager["objects"] != lazy["objects"]:
        raise SystemExit(f"results differ: {eager['objects']} vs {lazy['objects']} objects")
    print(f"stack {args.frames} x {args.size} x {args.size} uint16, threshold (otsu) + label 2d per frame")
    print(f"baseline eager skimage loop : {eager['seconds']:.2f} s, peak RSS {eager['peak_mb']:.0f} MB")
    print(f"stacklab lazy (dask threads): {lazy['seconds']:.2f} s, peak RSS {lazy['peak_mb']:.0f} MB")
    print(f"time ratio lazy/eager = {lazy['seconds'] / eager['seconds']:.2f}")
    print(f"peak RSS ratio lazy/eager = {lazy['peak_mb'] / eager['peak_mb']:.2f}")
    print(f"objects (both): {eager['objects']}")


if __name__ == "__main__":
    main()
