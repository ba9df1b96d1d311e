"""Stitching benchmark: accuracy and time against m2stitch, and the memory of a > 2 GB mosaic written lazily.

1. Registration. The same synthetic scan (tiles cut at known sub-pixel positions from a
   textured image, stage jitter, noise) is registered by ``napari_stacklab.stitch.register_tiles``
   and by ``m2stitch.stitch_images`` (the MIST algorithm; it places tiles at whole pixels).
   Printed: time of each and the ratio ours / m2stitch, and the largest and mean position error
   of each (pixels, after removing the common offset, which no stitcher can know).
2. Lazy mosaic. A scan of lazily generated tiles (never in memory together) is fused and written
   to an OME-Zarr pyramid in /tmp (deleted afterwards), in a child process whose peak resident
   memory (``ru_maxrss``) is read when it ends. Printed: the mosaic size, the peak RSS, the
   ratio peak RSS / mosaic size, and the time ratio against the named baseline "plain dask
   store": writing a random dask array of the same shape and chunks to zarr.

Ratios are measured in the same run (the machine is shared; absolute times mean little).
``--quick``: 3 x 3 tiles of 256 pixels and a 0.16 GiB mosaic instead of 6 x 6 tiles of 512 pixels
and a 2.16 GiB (2.3 GB) one.

    python benchmarks/bench_stitch.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy import ndimage as ndi
from skimage import color, data


def _source(size: int) -> np.ndarray:
    """A ``size``-square textured image: the Hubble deep field enlarged, plus fine structure."""
    sky = color.rgb2gray(data.hubble_deep_field()) * 255.0
    big = ndi.zoom(sky, size / min(sky.shape), order=3)[:size, :size]
    fine = ndi.gaussian_filter(np.random.default_rng(0).normal(0, 25, big.shape), 1.5)
    return big + fine


def _error(positions: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    offset = np.median(positions - truth, axis=0)
    error = np.linalg.norm(positions - truth - offset, axis=1)
    return float(error.max()), float(error.mean())


def bench_registration(grid: int, tile: int) -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")  # m2stitch's progress bars
    import m2stitch

    from napari_stacklab.stitch import register_tiles, synthetic_tiles

    overlap = 0.15
    size = int(tile * (grid - (grid - 1) * overlap) + 0.25 * tile)
    tiles, truth = synthetic_tiles(_source(size), rows=grid, cols=grid, tile_shape=(tile, tile), overlap=overlap,
                                   jitter=0.03, noise=0.02, seed=1)
    start = time.perf_counter()
    layout = register_tiles(tiles, margin=int(0.08 * tile))
    ours_time = time.perf_counter() - start
    images = np.stack(tiles.data)
    rows, cols = np.array(tiles.metadata["grid"]).T
    start = time.perf_counter()
    result, _ = m2stitch.stitch_images(images, rows=list(rows), cols=list(cols), row_col_transpose=False)
    theirs_time = time.perf_counter() - start
    theirs = result[["y_pos", "x_pos"]].to_numpy(dtype=np.float64)
    ours_max, ours_mean = _error(layout.positions, truth)
    theirs_max, theirs_mean = _error(theirs, truth)
    print(f"registration, {grid} x {grid} tiles of {tile} px, {len(layout.pairs)} pairs ({layout.summary()})")
    print(f"  time: ours {ours_time:.2f} s, m2stitch {theirs_time:.2f} s, ratio ours/m2stitch = "
          f"{ours_time / theirs_time:.2f}")
    print(f"  position error (px): ours max {ours_max:.3f} mean {ours_mean:.3f}; "
          f"m2stitch max {theirs_max:.3f} mean {theirs_mean:.3f}")


_CHILD = r"""
import json, resource, sys, time
import numpy as np
import dask, dask.array as da
from napari_stacklab.stitch import Tiles, fuse, write_mosaic
from napari_stacklab.io import Image

mode, folder, grid, tile = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
step = int(tile * 0.9)
height = width = step * (grid - 1) + tile

def make(seed, tile=tile):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4000, (tile, tile), dtype=np.uint16)

start = time.perf_counter()
dask.config.set(scheduler="threads")
if mode == "stitch":
    data = [da.from_delayed(dask.delayed(make)(k), (tile, tile), np.uint16) for k in range(grid * grid)]
    positions = [(step * (k // grid), step * (k % grid)) for k in range(grid * grid)]
    tiles = Tiles(data, positions, scale=(0.2, 0.2), units=("um", "um"))
    mosaic = fuse(tiles, chunks=1024)
    write_mosaic(folder + "/mosaic.zarr", Image(mosaic, scale=(0.2, 0.2), units=("um", "um")), chunks=1024)
else:
    import zarr
    mosaic = da.random.default_rng(0).random((height, width), chunks=1024, dtype=np.float32)
    target = zarr.open_array(folder + "/plain.zarr", mode="w", shape=mosaic.shape, chunks=(1024, 1024),
                             dtype=np.float32, zarr_format=2)
    da.store(mosaic, target, lock=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "shape": [height, width], "bytes": height * width * 4}))
"""


def _child(mode: str, folder: str, grid: int, tile: int) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, mode, folder, str(grid), str(tile)], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_lazy_mosaic(grid: int, tile: int) -> None:
    folder = tempfile.mkdtemp(prefix="bench_stitch_", dir="/tmp")
    try:
        ours = _child("stitch", folder, grid, tile)
        plain = _child("plain", folder, grid, tile)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    gib = 2**30
    print(f"lazy mosaic, {grid} x {grid} tiles of {tile} px generated on demand -> "
          f"{ours['shape'][0]} x {ours['shape'][1]} float32 = {ours['bytes'] / gib:.2f} GiB, OME-Zarr pyramid in /tmp")
    print(f"  peak RSS: {ours['peak_rss'] / gib:.2f} GiB, ratio peak RSS / mosaic size = "
          f"{ours['peak_rss'] / ours['bytes']:.3f}; baseline plain dask store of the same shape: "
          f"peak RSS {plain['peak_rss'] / gib:.2f} GiB")
    print(f"  time: stitch + pyramid {ours['seconds']:.1f} s, plain dask store {plain['seconds']:.1f} s, "
          f"ratio = {ours['seconds'] / plain['seconds']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        bench_registration(3, 256)
        bench_lazy_mosaic(7, 1024)
    else:
        bench_registration(6, 512)
        bench_lazy_mosaic(26, 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
