"""4D-STEM reductions over a >= 2 GB scan, ``.npy`` and Merlin ``.mib``: napari-stacklab vs LiberTEM.

    python benchmarks/bench_stem.py            # 256 x 256 scan of 128 x 128 uint16 patterns: 2.15 GB per file
    python benchmarks/bench_stem.py --quick    # 64 x 64 scan (134 MB), one run each: a smoke test
    python benchmarks/bench_stem.py --repeat 5 --workers 2

Writes the same scan twice under the system's temporary folder (never in the repository):
as ``.npy`` and as a Merlin ``.mib`` (a 384-byte header before every big-endian frame, and a
``.hdr``), and deletes both at the end. Patterns: a bright disk whose centre moves with the
scan position, on Poisson-like noise.

For each file it times, in the same process and interleaved run by run (the machine may be
shared: compare the ratios, which vary much less than the times; medians of ``--repeat``):

- ``stacklab``: ``sl.io.imread(path)`` (lazy; opened once) then ``stem.annular_dark_field`` /
  ``stem.center_of_mass`` computed with dask's threaded scheduler on ``--workers`` threads;
- ``LiberTEM``: ``create_ring_analysis`` / ``create_com_analysis`` on ``ctx.load(...)`` of the
  same file (opened once), on its ``InlineJobExecutor`` (one thread) and on its threaded
  executor with ``--workers`` threads; the faster of the two is LiberTEM's figure;
- the machine's own limits for a reduction, on ``--workers`` threads, each over its share of the
  file: ``np.sum`` over a memory map (the values as uint16); ``preadv`` of 1 MiB pieces into one
  reused buffer with no arithmetic (the most a copying reader such as ours can reach; napari-stacklab
  reads with ``preadv`` rather than a memory map so that a file shortened while it is read gives an
  error instead of a SIGBUS); and compiled code reading every byte of a memory map once (XOR of
  8-byte words: what the memory delivers with no copy). The largest is the limit that the
  fractions refer to.

**warm**: the file is in the page cache (read once before timing). **cold**: before every
run the file is evicted from the page cache with ``os.posix_fadvise(fd, 0, 0,
POSIX_FADV_DONTNEED)`` (allowed without root for one's own files); the script checks with
``mincore`` that at most a few percent of its pages stayed resident, and prints that figure.

Results are checked against each other (ring: rtol 1e-4; centre of mass: atol 1e-3 px; for
``.mib`` RosettaSciIO shows frames flipped vertically, as the Merlin detector reads out, and
LiberTEM does not, so there the y component changes sign).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import mmap
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

INNER, OUTER = 20.0, 50.0
HEADER = 384


# ---------------------------------------------------------------- the files


def _rows(scan: int, detector: int):
    """Scan rows of patterns ``(scan, detector, detector)`` uint16: a disk moving with the position, plus noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:detector, :detector]
    noise = rng.integers(0, 8, (16, scan, detector, detector), dtype=np.uint16)
    radius = detector / 6
    for row in range(scan):
        dy = 3 * np.sin(2 * np.pi * row / scan)
        patterns = noise[row % 16].copy()
        for col in range(0, scan, 16):  # the disk moves in x every 16 positions
            dx = 3 * np.cos(2 * np.pi * col / scan)
            disk = np.hypot(yy - (detector - 1) / 2 - dy, xx - (detector - 1) / 2 - dx) < radius
            patterns[col : col + 16] += (200 * disk).astype(np.uint16)
        yield patterns


def write_npy(path: Path, scan: int, detector: int) -> None:
    header = {"descr": "<u2", "fortran_order": False, "shape": (scan, scan, detector, detector)}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for patterns in _rows(scan, detector):
            handle.write(patterns.astype("<u2").tobytes())


def write_mib(path: Path, scan: int, detector: int) -> None:
    """Merlin raw ``.mib``: per frame a 384-byte ASCII header then the big-endian U16 pixels; and its ``.hdr``."""
    record = np.dtype([("header", f"S{HEADER}"), ("frame", ">u2", (detector, detector))])
    with open(path, "wb") as handle:
        for row, patterns in enumerate(_rows(scan, detector)):
            frames = np.zeros(scan, record)
            for col in range(scan):
                number = row * scan + col + 1
                fields = ["MQ1", f"{number:06d}", f"{HEADER:05d}", "01", f"{detector:04d}", f"{detector:04d}", "U16",
                          "   1x1", "01", "2024-01-01 00:00:00.000000", "0.001000", "0", "0", "0", "MQ1A",
                          "2024-01-01T00:00:00.000000Z", "1000000ns", "12", ""]
                frames["header"][col] = ",".join(fields).encode()
            frames["frame"] = patterns
            handle.write(frames.tobytes())
    path.with_suffix(".hdr").write_text(
        f"HDR,\t\nFrames in Acquisition (Number):\t{scan * scan}\nFrames per Trigger (Number):\t{scan}\nEnd\t\n"
    )


# ---------------------------------------------------------------- the page cache


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache (``POSIX_FADV_DONTNEED``; no root needed for one's own file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident(path: Path) -> float:
    """Fraction of the file's pages in the page cache (``mincore`` over a map of it; nothing is read)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = path.stat().st_size
    vector = np.zeros((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE, np.uint8)
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) as mapped:
        view = np.frombuffer(mapped, np.uint8)
        failed = libc.mincore(view.ctypes.data, size, vector.ctypes.data)
        del view  # the map closes only once no array uses it
    return float("nan") if failed else float((vector & 1).mean())


# ---------------------------------------------------------------- the limit


def _shares(size: int, workers: int, align: int) -> list[tuple[int, int]]:
    bounds = [size * i // workers // align * align for i in range(workers)] + [size]
    return list(zip(bounds[:-1], bounds[1:]))


def memmap_sum(path: Path, workers: int) -> float:
    """``np.sum`` (uint16, the file's values) over each thread's share of a memory map of the file."""
    data = np.memmap(path, np.uint8, "r")
    body = data[: data.size // 2 * 2].view(np.uint16)

    def part(share):
        return int(body[share[0] : share[1]].sum(dtype=np.uint64))

    with ThreadPoolExecutor(workers) as pool:
        return float(sum(pool.map(part, _shares(body.size, workers, 4096))))


def pread_copy(path: Path, workers: int, piece: int = 2**20) -> float:
    """``preadv`` of ``piece`` bytes at a time into one reused buffer, nothing else: a copying reader's ceiling."""
    size = path.stat().st_size

    def part(share):
        fd = os.open(path, os.O_RDONLY)
        buffer = memoryview(bytearray(piece))
        position = share[0]
        try:
            while position < share[1]:
                position += os.preadv(fd, [buffer[: min(piece, share[1] - position)]], position)
        finally:
            os.close(fd)
        return 0.0

    with ThreadPoolExecutor(workers) as pool:
        return float(sum(pool.map(part, _shares(size, workers, 4096))))


@functools.cache
def _xor_words():
    import numba

    @numba.njit(nogil=True)
    def xor_words(words):
        total = np.uint64(0)
        for word in words:
            total ^= word
        return total

    words = np.zeros(1, np.uint64)
    words.flags.writeable = False  # as a read-only map's words: compiled now for that type, not while timed
    xor_words(words)
    return xor_words


def memmap_touch(path: Path, workers: int) -> float:
    """Every byte of a memory map of the file read once by compiled code (XOR of 8-byte words): no copy, no cast."""
    data = np.memmap(path, np.uint8, "r")
    words = np.asarray(data[: data.size // 8 * 8]).view(np.uint64)  # a plain read-only array, not a memmap
    xor_words = _xor_words()

    def part(share):
        return float(xor_words(words[share[0] : share[1]]))

    with ThreadPoolExecutor(workers) as pool:
        return float(sum(pool.map(part, _shares(words.size, workers, 512))))


# ---------------------------------------------------------------- the contenders


class Stacklab:
    name = "stacklab"

    def __init__(self, path: Path, workers: int):
        import dask

        import napari_stacklab as sl

        self.dask, self.sl, self.workers = dask, sl, workers
        self.data = sl.io.imread(path, lazy=True).data
        self.center = ((self.data.shape[-2] - 1) / 2, (self.data.shape[-1] - 1) / 2)

    def ring(self) -> np.ndarray:
        lazy = self.sl.stem.annular_dark_field(self.data, inner=INNER, outer=OUTER, center=self.center)
        return np.asarray(lazy.compute(scheduler="threads", num_workers=self.workers))

    def com(self) -> tuple[np.ndarray, np.ndarray]:
        lazy = self.sl.stem.center_of_mass(self.data, center=self.center)
        found = self.dask.compute(lazy, scheduler="threads", num_workers=self.workers)[0]
        return np.asarray(found["com_y"]), np.asarray(found["com_x"])

    def close(self) -> None:
        pass


class LiberTEM:
    def __init__(self, path: Path, executor: str, workers: int, nav_shape: tuple):
        from libertem.api import Context

        self.name = f"LiberTEM {executor}"
        self.ctx = Context.make_with("inline") if executor == "inline" else Context.make_with(executor, cpus=workers)
        if path.suffix == ".mib":
            self.dataset = self.ctx.load("mib", path=str(path), nav_shape=nav_shape)
        else:
            self.dataset = self.ctx.load("npy", path=str(path))
        ky, kx = self.dataset.shape.sig
        self.cy, self.cx = (ky - 1) / 2, (kx - 1) / 2

    def ring(self) -> np.ndarray:
        analysis = self.ctx.create_ring_analysis(dataset=self.dataset, cx=self.cx, cy=self.cy, ri=INNER, ro=OUTER)
        return np.asarray(self.ctx.run(analysis).intensity.raw_data, np.float32)

    def com(self) -> tuple[np.ndarray, np.ndarray]:
        analysis = self.ctx.create_com_analysis(dataset=self.dataset, cx=self.cx, cy=self.cy, mask_radius=None)
        with warnings.catch_warnings():  # LiberTEM's own division by empty patterns
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            result = self.ctx.run(analysis)
        return np.asarray(result.y.raw_data), np.asarray(result.x.raw_data)

    def close(self) -> None:
        self.ctx.close()


# ---------------------------------------------------------------- the measurements


def _timed(func, path: Path, cold: bool) -> tuple[float, float]:
    """Seconds one call takes (and the fraction of the file resident just before it)."""
    if cold:
        evict(path)
    before = resident(path)
    start = time.perf_counter()
    func()
    return time.perf_counter() - start, before


def check(path: Path, ours: Stacklab, theirs: list) -> None:
    ring, (com_y, com_x) = ours.ring(), ours.com()
    flip = -1.0 if path.suffix == ".mib" else 1.0
    for other in theirs:
        np.testing.assert_allclose(other.ring(), ring, rtol=1e-4, err_msg=f"{other.name} ring disagrees")
        their_y, their_x = other.com()
        np.testing.assert_allclose(flip * their_y, com_y, atol=1e-3, err_msg=f"{other.name} com_y disagrees")
        np.testing.assert_allclose(their_x, com_x, atol=1e-3, err_msg=f"{other.name} com_x disagrees")


def measure_file(path: Path, args, nav_shape: tuple, has_libertem: bool) -> dict:
    size = path.stat().st_size
    ours = Stacklab(path, args.workers)
    theirs = [LiberTEM(path, executor, args.workers, nav_shape) for executor in ("inline", "threads")] \
        if has_libertem else []
    contenders = [ours, *theirs]
    limits = {"np.sum over a memory map": lambda: memmap_sum(path, args.workers),
              "preadv 1 MiB, no arithmetic": lambda: pread_copy(path, args.workers),
              "memory map read, compiled": lambda: memmap_touch(path, args.workers)}
    times: dict = {}
    _xor_words()  # compiled before any run is timed
    try:
        check(path, ours, theirs)  # also reads the file into the page cache
        for temperature in ("warm", "cold"):
            repeat = args.repeat if temperature == "warm" else args.cold_repeat
            for _ in range(repeat):  # interleaved, so that every contender meets the same machine load
                for name, probe in limits.items():
                    times.setdefault((temperature, "limit", name), []).append(_timed(probe, path, temperature == "cold"))
                for task in ("ring", "com"):
                    for contender in contenders:
                        times.setdefault((temperature, task, contender.name), []).append(
                            _timed(getattr(contender, task), path, temperature == "cold"))
    finally:
        for contender in contenders:
            contender.close()
    return {key: (size / statistics.median(t for t, _ in runs) / 1e9, max(r for _, r in runs))
            for key, runs in times.items()}


def report(path: Path, rates: dict, workers: int) -> list[str]:
    lines = []
    for temperature in ("warm", "cold"):
        limit_name, limit = max(((name, rate) for (t, kind, name), (rate, _) in rates.items()
                                 if t == temperature and kind == "limit"), key=lambda item: item[1])
        resident_before = max(r for (t, _, _), (_, r) in rates.items() if t == temperature)
        how = ("file in the page cache" if temperature == "warm" else
               f"file evicted before every run with posix_fadvise(DONTNEED); at most {resident_before:.1%} of its "
               "pages were resident when a run started (mincore)")
        lines.append(f"  {path.suffix} {temperature} ({how}):")
        for (t, kind, name), (rate, _) in rates.items():
            if t == temperature and kind == "limit":
                lines.append(f"    limit   {name:30s} {rate:6.2f} GB/s")
        for task, title in (("ring", "annular detector"), ("com", "centre of mass")):
            ours = rates[(temperature, task, "stacklab")][0]
            libertem = [(rate, name) for (t, k, name), (rate, _) in rates.items()
                        if t == temperature and k == task and name.startswith("LiberTEM")]
            best_rate, best_name = max(libertem) if libertem else (float("nan"), "LiberTEM (not installed)")
            for (t, k, name), (rate, _) in rates.items():
                if t == temperature and k == task:
                    lines.append(f"    {title:16s} {name:20s} {rate:6.2f} GB/s")
            lines.append(f"    {title:16s} stacklab / {best_name}: throughput ratio {ours / best_rate:5.2f} "
                         f"(goal >= 1.5); fraction of the limit ({limit_name}): {ours / limit:4.2f} (goal >= 0.7)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=int, default=256, help="scan positions per side (256: 2.15 GB per file)")
    parser.add_argument("--detector", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs of each (median)")
    parser.add_argument("--cold-repeat", type=int, default=1, help="cold runs of each (median)")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--formats", default="npy,mib")
    parser.add_argument("--quick", action="store_true", help="a 64 x 64 scan, one run of each")
    args = parser.parse_args(argv)
    if args.quick:
        args.scan, args.repeat, args.cold_repeat = 64, 1, 1
    try:
        import libertem

        has_libertem = True
        version = f"LiberTEM {libertem.__version__}"
    except ImportError as exc:
        has_libertem, version = False, f"LiberTEM not installed ({exc}): pip install 'napari-stacklab[bench]'"
    folder = Path(tempfile.mkdtemp(prefix="stacklab_bench_stem_"))
    print(f"{os.cpu_count()} CPU cores, {args.workers} threads for every parallel contender; {version}")
    try:
        for fmt in args.formats.split(","):
            path = folder / f"scan_{args.scan}x{args.scan}x{args.detector}x{args.detector}.{fmt}"
            (write_npy if fmt == "npy" else write_mib)(path, args.scan, args.detector)
            size = path.stat().st_size
            print(f"\n{path.name}: {size / 1e9:.2f} GB ({args.scan}x{args.scan} scan of {args.detector}x"
                  f"{args.detector} uint16 patterns); annulus {INNER:g}..{OUTER:g} px; medians of {args.repeat} warm "
                  f"and {args.cold_repeat} cold run(s)", flush=True)
            rates = measure_file(path, args, (args.scan, args.scan), has_libertem)
            print("\n".join(report(path, rates, args.workers)), flush=True)
            path.unlink()
            path.with_suffix(".hdr").unlink(missing_ok=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
