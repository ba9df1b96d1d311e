"""Long fuzzing run over the readers: mutated TIFF / .npy files, every failure collected.

The same check as ``tests/test_fuzz_readers.py`` (which runs 200 hypothesis
examples in CI), run for many more seeded random examples. Each example takes
one valid seed file (plain, deflate, LZW, tiled, ImageJ, OME TIFF; C and
Fortran .npy), applies 1-4 random edits (bit flip, byte, 32-bit word,
insertion, deletion, truncation) and reads it the way napari and scripts do:
the napari hook must not raise, ``imread`` must give a readable Image or a
ValueError/OSError naming the file. Slow reads are reported too.

Baseline: the seed files themselves, read the same way in the same run
(the "ms per read" ratio says how much slower a mutated file is to refuse).

Usage::

    python benchmarks/fuzz_readers.py                 # 20000 examples, seed 0
    python benchmarks/fuzz_readers.py --quick         # 500 examples (smoke run)
    python benchmarks/fuzz_readers.py -n 2000 --seed 3

Exit status 1 when any failure was found; each distinct failure is printed
once with the seed file and edits that reproduce it.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
import warnings
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import _badfiles as bad  # noqa: E402

import napari_stacklab as sl  # noqa: E402


def random_edits(rng: random.Random, size: int) -> list[tuple[str, int, int]]:
    return [
        (rng.choice(bad.MUTATIONS), rng.randrange(max(size, 1)), rng.randrange(2**32))
        for _ in range(rng.randint(1, 4))
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--examples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow", type=float, default=5.0, help="seconds after which a read is reported as slow")
    parser.add_argument("--quick", action="store_true", help="500 examples: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.examples = 500

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # tifffile logs every defect it skips
    warnings.simplefilter("ignore")
    sl.io.MAX_EAGER_BYTES = 64 * 2**20
    seeds = bad.fuzz_seeds()
    names = sorted(seeds)
    rng = random.Random(args.seed)
    outcomes: Counter = Counter()
    failures: dict[str, tuple] = {}
    slow = []
    with tempfile.TemporaryDirectory() as folder:
        seed_paths = []
        for name in names:
            seed_paths.append(os.path.join(folder, "seed_" + name))
            with open(seed_paths[-1], "wb") as fh:
                fh.write(seeds[name])
            assert bad.check_read(seed_paths[-1]) == "ok", name  # also warms imports up
        base_start = time.perf_counter()
        for _ in range(10):
            for path in seed_paths:
                bad.check_read(path)
        base_ms = (time.perf_counter() - base_start) * 1e3 / (10 * len(names))

        start = time.perf_counter()
        for i in range(args.examples):
            name = rng.choice(names)
            edits = random_edits(rng, len(seeds[name]))
            path = os.path.join(folder, f"{i % 64}_{name}")
            with open(path, "wb") as fh:
                fh.write(bad.mutate(seeds[name], edits))
            t0 = time.perf_counter()
            try:
                outcomes[bad.check_read(path)] += 1
            except AssertionError as exc:
                outcomes["FAILED"] += 1
                key = str(exc).replace(path, "<file>")[:160]
                failures.setdefault(key, (name, edits))
            seconds = time.perf_counter() - t0
            if seconds > args.slow:
                slow.append((seconds, name, edits))
            if (i + 1) % 2000 == 0:
                print(f"  {i + 1} examples, {dict(outcomes)}", flush=True)
        elapsed = time.perf_counter() - start

    per_read_ms = elapsed * 1e3 / max(args.examples, 1)
    print(f"examples: {args.examples} (seed {args.seed}) in {elapsed:.1f} s")
    print(f"outcomes: {dict(outcomes)}")
    print(f"baseline (unmutated seed files): {base_ms:.1f} ms per file; mutated: {per_read_ms:.1f} ms per file "
          f"(ratio {per_read_ms / base_ms:.2f})")
    print(f"slow reads (> {args.slow} s): {len(slow)}")
    for seconds, name, edits in sorted(slow, reverse=True)[:5]:
        print(f"  {seconds:.1f} s  {name} {edits}")
    print(f"distinct failures: {len(failures)}")
    for key, (name, edits) in failures.items():
        print(f"  {key}\n    reproduce: bad.mutate(bad.fuzz_seeds()[{name!r}], {edits!r})")
    return 1 if failures or slow else 0


if __name__ == "__main__":
    sys.exit(main())
