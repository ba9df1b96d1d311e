"""Run every benchmark script in this folder, one after another, and sum up the goals they measure.

Each ``bench_*.py`` prints ratios against the baseline it names, measured in the same run (the
machines are shared and noisy, so absolute times mean little). Their output is shown as it comes;
at the end, every line that states a goal (issue 18's "done when": one operation per family,
threshold + labels, the 4D-STEM reductions warm and cold, opening a TIFF stack, the Gaussian) is
repeated in one summary, under the name of the script that printed it.

    python benchmarks/run_all.py                    # the full figures (about 10-15 minutes on 2 cores)
    python benchmarks/run_all.py --quick            # every script on small inputs: a smoke run
    python benchmarks/run_all.py --only stem,label  # some scripts only
    python benchmarks/run_all.py -- --workers 2     # arguments after -- go to every script
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
#: Printed lines that carry a figure the summary repeats.
KEYS = ("goal", "ratio", "passes over", "bytes read")


def _machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.node()}: {os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}; "
            f"load average {load:.1f} at the start (above the core count: the machine is busy, ratios drift)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated names: run only bench_<NAME>.py")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script (small inputs)")
    args = parser.parse_args(argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        wanted = {f"bench_{name}" for name in args.only.split(",")}
        scripts = [s for s in scripts if s.stem in wanted]
    extra = (["--quick"] if args.quick else []) + passthrough
    print(_machine(), flush=True)
    failed, summary = [], []
    for script in scripts:
        print(f"\n=== {script.name} {' '.join(extra)} ===", flush=True)
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, str(script), *extra], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1)
        context = ""
        for line in process.stdout:
            print(line, end="", flush=True)
            stripped = line.rstrip()
            if stripped.endswith(":") and not any(key in stripped for key in KEYS):
                context = stripped.strip()[:48]
            elif any(key in stripped for key in KEYS):
                summary.append(f"{script.stem:16s} {(context + ' ') if context else ''}{stripped.strip()}")
        if process.wait() != 0:
            failed.append(script.name)
        print(f"--- {script.name}: {time.perf_counter() - start:.0f} s", flush=True)
    print("\n=== summary: every ratio and goal printed above ===")
    print("\n".join(summary))
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
