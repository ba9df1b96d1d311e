"""The parameter sweep: every registry operation at the extremes of its parameters, each case fenced.

Cases are enumerated from the registry (:func:`napari_stacklab.catalog.operations`), so
an operation added tomorrow is swept without a line here. For every operation, on
512 x 512 frames of uint8, uint16 and float32 (the camera image), the variants are:

- the minimal valid call (``tests/_opcases.py``: defaults plus required images);
- each numeric parameter alone at its declared minimum and maximum; a bound the
  registry does not declare is taken from the operation's limits for this image
  (:meth:`Operation.limits_for`), else the extreme finite value of its kind
  (``±1e308`` for a float, ``±(2**63 - 1)`` for an integer), an open lower bound
  just above it;
- every numeric parameter at its minimum together, and at its maximum together;
- every value of each choice (and each boolean) alone, and with all the maxima; a
  choice that makes frames volumes (``mode="3d"``, a ball) gets three 512 x 512 planes.

Each case runs in a worker process under a 4 GiB address-space limit
(``RLIMIT_AS``) and a 30 s time limit: 30 s of the worker's CPU time, so that
a busy machine (the project's are shared) does not turn a 10 s case into a
timeout, with a wall-clock backstop of four times that for a case that waits
instead of computing. Past either the worker is killed and replaced. A case passes when it completes with finite outputs, or when it is
refused with a ``ValueError``/``TypeError`` raised by the project's own checks
(not a third-party error translated at the operation boundary) whose message
names the operation, one of its parameters or the image.

Run it standalone to get the figures (cases, refusals, largest RSS, slowest)::

    python3 tests/_sweep.py --workers 2            # every operation, three dtypes
    python3 tests/_sweep.py --quick                # the CI share (see SHARE)
    python3 tests/_sweep.py --ops median,clahe --dtypes uint8 --verbose
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FRAME = (512, 512)
DTYPES = ("uint8", "uint16", "float32")
MEMORY_LIMIT = 4 * 2**30
TIME_LIMIT = 30.0  # CPU seconds a case
WALL_FACTOR = 4  # wall-clock backstop: this many times the time limit
#: extreme finite values swept for a bound the registry leaves open
FLOAT_EXTREME = 1e308
INT_EXTREME = 2**63 - 1


@dataclass(frozen=True)
class Case:
    op: str
    dtype: str
    label: str


@dataclass
class Outcome:
    op: str
    dtype: str
    label: str
    status: str  # ok | refused | nonfinite | unclear | timeout | crashed
    seconds: float = 0.0  # wall clock
    rss: int = 0  # peak resident set of the worker during the case, bytes
    message: str = ""
    cpu: float = 0.0  # CPU time of the worker during the case

    @property
    def passed(self) -> bool:
        return self.status in ("ok", "refused")


# -- what is swept ---------------------------------------------------------------------------------------------


def _base(dtype: str) -> np.ndarray:
    from skimage import data

    camera = data.camera()[: FRAME[0], : FRAME[1]]
    if dtype == "uint8":
        return camera.copy()
    if dtype == "uint16":
        return camera.astype(np.uint16) * 257
    return (camera / 255.0).astype(dtype)


def image_for(op, dtype: str) -> np.ndarray:
    """The input of ``op``: a 512 x 512 frame, or a stack / RGB image / 3 x 3 4D-STEM scan of them."""
    from _opcases import minimal_image

    base = _base(dtype)
    if op.family == "stem":
        patterns = [base, np.roll(base, 7, axis=0), base[::-1]]
        return np.stack([np.stack(patterns)] * 3)
    return minimal_image(op, dtype, base)


def _numeric(p) -> bool:
    return p.choices is None and p.kind in (int, float, tuple) and p.kind is not bool


def _nudge_up(low, integer: bool):
    """The smallest value above an open lower bound (per element for a tuple)."""
    if isinstance(low, tuple):
        return tuple(_nudge_up(v, integer) for v in low)
    return low + 1 if integer else float(np.nextafter(low, np.inf)) if low else float(np.finfo(float).tiny)


def _is_int(p) -> bool:
    if p.kind is int:
        return True
    default = p.default
    return p.kind is tuple and isinstance(default, tuple) and bool(default) and isinstance(default[0], int)


def extremes(op, p, frame: tuple, dtype) -> tuple:
    """The minimum and maximum swept for parameter ``p`` of ``op`` on a frame of ``frame``."""
    integer = _is_int(p)
    huge = INT_EXTREME if integer else FLOAT_EXTREME
    low, high, inclusive = p.low, p.high, p.low_inclusive
    limit = op.limits_for(frame, dtype, {}).get(p.name)
    if limit is not None:
        if low is None:
            low, inclusive = limit.low, limit.low_inclusive
        if high is None:
            high = limit.high
    low = -huge if low is None else low if inclusive else _nudge_up(low, integer)
    high = huge if high is None else high
    return low, high


def _value(p, number, frame: tuple):
    """``number`` as a value of ``p`` (a tuple parameter gets one per element)."""
    if p.kind is tuple:
        if isinstance(number, tuple):
            return number
        length = len(p.default) if isinstance(p.default, tuple) and p.default else len(frame)
        return (number,) * length
    if p.kind is int:
        return int(number)
    return float(number)


def variants(op, image) -> list[tuple[str, dict]]:
    """``(label, params)`` for every swept call of ``op`` on ``image``."""
    from _opcases import minimal_params

    frame = tuple(image.shape[image.ndim - op.frame_ndim:])
    base = minimal_params(op, image)
    if "reference" in base:  # compared with itself, a PSNR is +inf: compare with a shifted copy
        base["reference"] = np.roll(base["reference"], 1, axis=-1)
    numeric = [p for p in op.params if _numeric(p)]
    choices = [p for p in op.params if p.choices is not None or p.kind is bool]
    bounds = {p.name: extremes(op, p, frame, image.dtype) for p in numeric}
    found = [("minimal", dict(base))]
    for p in numeric:
        low, high = bounds[p.name]
        found.append((f"{p.name}=min", {**base, p.name: _value(p, low, frame)}))
        found.append((f"{p.name}=max", {**base, p.name: _value(p, high, frame)}))
    all_low = {p.name: _value(p, bounds[p.name][0], frame) for p in numeric}
    all_high = {p.name: _value(p, bounds[p.name][1], frame) for p in numeric}
    if len(numeric) > 1:
        found.append(("all=min", {**base, **all_low}))
        found.append(("all=max", {**base, **all_high}))
    for p in choices:
        values = p.choices if p.choices is not None else (True, False)
        for value in values:
            if value == p.default:
                continue
            found.append((f"{p.name}={value}", {**base, p.name: value}))
            if numeric:
                found.append((f"{p.name}={value},all=max", {**base, **all_high, p.name: value}))
    labels = [label for label, _ in found]
    assert len(labels) == len(set(labels)), labels
    return found


def cases(ops: Iterable | None = None, dtypes: Sequence[str] = DTYPES) -> list[Case]:
    """Every swept case, in a stable order."""
    from napari_stacklab import catalog

    found = []
    for op in ops if ops is not None else catalog.operations():
        op = catalog.get(op) if isinstance(op, str) else op
        for dtype in dtypes:
            for label, _ in variants(op, image_for(op, dtype)):
                found.append(Case(op.name, dtype, label))
    return found


def share(all_cases: Sequence[Case], part: int, parts: int) -> list[Case]:
    """A deterministic ``1/parts`` of the cases that still visits every operation and dtype."""
    return [case for i, case in enumerate(all_cases) if i % parts == part]


# -- running one case ------------------------------------------------------------------------------------------


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:  # not Linux, or not allowed: the peak then covers the worker's life
        pass


def _arrays(result) -> list[np.ndarray]:
    if isinstance(result, dict):
        return [a for value in result.values() for a in _arrays(value)]
    if hasattr(result, "to_numpy") and hasattr(result, "columns"):  # a table
        return [np.asarray(result[c]) for c in result.columns if np.asarray(result[c]).dtype.kind in "fc"]
    if isinstance(result, (list, tuple)):
        return [a for value in result for a in _arrays(value)]
    if isinstance(result, (int, float, complex, np.generic)) or hasattr(result, "dtype"):
        from napari_stacklab import _backend

        return [np.asarray(_backend.to_numpy(result))]
    return []


def _clear(exc: BaseException, op) -> bool:
    """A ValueError/TypeError from the project's own checks whose message says what is wrong."""
    from napari_stacklab import engine

    OperationError = getattr(engine, "OperationError", ())
    if not isinstance(exc, (ValueError, TypeError)) or isinstance(exc, OperationError):
        return False
    text = str(exc)
    words = [op.name, "image", "frame", "dtype"] + [p.name for p in op.params]
    return bool(text) and any(word in text for word in words)


def run_case(case: Case) -> Outcome:
    """Run one case here (in a worker) and say how it went."""
    from napari_stacklab import _backend, catalog

    op = catalog.get(case.op)
    image = image_for(op, case.dtype)
    params = dict(variants(op, image))[case.label]
    if op.frame_ndim_for(params) > op.frame_ndim:  # a choice makes frames volumes: three 512 x 512 planes
        image = np.stack([image, np.roll(image, 3, axis=-1), image[..., ::-1, :]], axis=-3)
    _reset_peak_rss()
    start, start_cpu = time.perf_counter(), time.process_time()

    def outcome(status: str, message: str = "") -> Outcome:
        return Outcome(**asdict(case), status=status, seconds=time.perf_counter() - start, rss=_peak_rss(),
                       message=message, cpu=time.process_time() - start_cpu)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = op.func(image, **params)
            arrays = _arrays(_backend.materialize(result) if _backend.is_dask(result) else result)
    except MemoryError as exc:
        return outcome("crashed", f"MemoryError: {exc}")
    except Exception as exc:  # noqa: BLE001 - the kind of error is what is judged
        status = "refused" if _clear(exc, op) else "unclear"
        where = traceback.extract_tb(exc.__traceback__)[-1]
        text = f"{type(exc).__name__}: {exc}"[:400]
        if status == "unclear":
            text += f" [at {Path(where.filename).name}:{where.lineno}]"
        return outcome(status, text)
    bad = [a for a in arrays if a.dtype.kind in "fc" and not np.isfinite(a).all()]
    if bad:
        return outcome("nonfinite", f"{sum(int((~np.isfinite(a)).sum()) for a in bad)} non-finite values")
    return outcome("ok")


def _worker(imports: Sequence[str] = ()) -> None:
    """Read cases (one JSON line each) from stdin; write one JSON outcome line for each.

    ``imports``: Python files run first (operations declared only inside the
    workers, as the fence's own tests do).
    """
    import runpy

    sys.path.insert(0, str(HERE))
    from napari_stacklab import catalog

    for path in imports:
        runpy.run_path(path)
    catalog.operations()  # import everything before the first case is timed
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        case = Case(**json.loads(line))
        print(json.dumps(asdict(run_case(case))), flush=True)


# -- the pool --------------------------------------------------------------------------------------------------


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


class _Worker:
    def __init__(self, imports: Sequence[str] = ()) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NUMBA_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
                   filter(None, [str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]))}
        self.errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty worker never blocks on it
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", *[f"--import={p}" for p in imports]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.errors, text=True, env=env, preexec_fn=_limit_memory,
        )
        self.case: Case | None = None
        self.started = 0.0
        self.ready = False

    def cpu(self) -> float:
        """CPU seconds the worker has used (Linux; elsewhere 0, and the wall clock alone limits a case)."""
        try:
            with open(f"/proc/{self.process.pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def send(self, case: Case) -> None:
        self.case, self.started, self.started_cpu = case, time.monotonic(), self.cpu()
        self.process.stdin.write(json.dumps(asdict(case)) + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.errors.close()

    def last_errors(self) -> str:
        self.errors.seek(0)
        return self.errors.read().decode(errors="replace")[-2000:]


def sweep(todo: Sequence[Case], *, workers: int = 2, time_limit: float = TIME_LIMIT, progress=None,
          imports: Sequence[str] = ()) -> list[Outcome]:
    """Run every case in a pool of fenced worker processes; a worker past the time limit is replaced."""
    pending = list(reversed(todo))
    outcomes: list[Outcome] = []
    pool = [_Worker(imports) for _ in range(min(workers, len(todo)) or 1)]
    try:
        while pending or any(w.case is not None for w in pool):
            for w in pool:
                if w.ready and w.case is None and pending:
                    w.send(pending.pop())
            readable, _, _ = select.select([w.process.stdout for w in pool], [], [], 0.5)
            for i, w in enumerate(pool):
                if w.process.stdout in readable:
                    line = w.process.stdout.readline()
                    if not line:  # the worker died: a signal, or memory beyond the limit outside Python
                        if not w.ready:
                            raise RuntimeError(f"a sweep worker failed to start:\n{w.last_errors()}")
                        if w.case is not None:
                            code = w.process.wait()
                            outcomes.append(Outcome(**asdict(w.case), status="crashed",
                                                    seconds=time.monotonic() - w.started,
                                                    message=f"worker exited with {code}"))
                        w.stop()
                        pool[i] = _Worker(imports)
                        continue
                    answer = json.loads(line)
                    if answer.get("ready"):
                        w.ready = True
                        continue
                    outcomes.append(Outcome(**answer))
                    w.case = None
                    if progress:
                        progress(outcomes[-1])
                elif w.case is not None and (w.cpu() - w.started_cpu > time_limit
                                             or time.monotonic() - w.started > WALL_FACTOR * time_limit):
                    wall, cpu = time.monotonic() - w.started, w.cpu() - w.started_cpu
                    outcomes.append(Outcome(**asdict(w.case), status="timeout", seconds=wall, cpu=cpu,
                                            message=f"killed after {cpu:.1f} s of CPU time, {wall:.1f} s of wall time"))
                    if progress:
                        progress(outcomes[-1])
                    w.stop()
                    pool[i] = _Worker(imports)
    finally:
        for w in pool:
            w.stop()
    return outcomes


def summary(outcomes: Sequence[Outcome]) -> str:
    counts = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    largest = max(outcomes, key=lambda o: o.rss)
    slowest = max(outcomes, key=lambda o: o.cpu)
    longest = max(outcomes, key=lambda o: o.seconds)
    ops = {o.op for o in outcomes}
    return (
        f"{len(outcomes)} cases over {len(ops)} operations: "
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        + f"; largest RSS {largest.rss / 2**20:.0f} MiB ({largest.op} {largest.dtype} {largest.label}); "
        f"slowest {slowest.cpu:.1f} s of CPU ({slowest.op} {slowest.dtype} {slowest.label}), "
        f"longest {longest.seconds:.1f} s of wall time ({longest.op} {longest.dtype} {longest.label})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--import", dest="imports", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ops", help="comma-separated operation names (default: every operation)")
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--part", default="0/1", help="run share K/N of the cases (K in 0..N-1)")
    parser.add_argument("--quick", action="store_true", help="the CI share: --part 0/3")
    parser.add_argument("--json", help="write every outcome to this file")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT,
                        help="CPU seconds per case (default 30; the wall-clock backstop is 4 times that)")
    parser.add_argument("--verbose", action="store_true", help="print every case as it ends")
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.imports)
        return 0
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "src"))
    ops = args.ops.split(",") if args.ops else None
    todo = cases(ops, args.dtypes.split(","))
    part, parts = (0, 3) if args.quick else map(int, args.part.split("/"))
    todo = share(todo, part, parts)
    print(f"{len(todo)} cases, {args.workers} workers", flush=True)

    def progress(o: Outcome) -> None:
        if args.verbose or not o.passed:
            print(f"{o.status:9s} {o.cpu:6.1f}s {o.seconds:6.1f}s {o.rss / 2**20:6.0f}MiB {o.op} {o.dtype} {o.label} "
                  f"{o.message}",
                  flush=True)

    start = time.monotonic()
    outcomes = sweep(todo, workers=args.workers, time_limit=args.time_limit, progress=progress)
    print(summary(outcomes), f"in {time.monotonic() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
