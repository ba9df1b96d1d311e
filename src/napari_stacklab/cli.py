"""The ``stacklab`` command line.

::

    stacklab run RECIPE INPUT... -o OUT [--format zarr|tiff] [--scheduler local|ADDRESS] [--device auto|cpu|gpu]
    stacklab info FILE...
    stacklab ops [NAME]
    stacklab convert INPUT OUTPUT.tif [--overwrite]
    stacklab demo [--sample timelapse|stem4d|hologram]
    stacklab stitch TILES... -o OUT.zarr [--grid 4x5 | --positions CSV] [--scheduler local|ADDRESS]

Exit status: 0 on success, 1 when some inputs of a batch failed (the others were
written), 2 for a usage or input error, 130 when interrupted (Ctrl-C). Errors are
one line naming the file, never a traceback; notes (a recipe without its version
line, metadata dropped from a file) are printed as ``stacklab CMD: note: ...``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from . import __version__
from ._backend import DEVICES
from ._napari._contrib import SAMPLES as _SAMPLE_CONTRIBUTIONS  # plain data: imports no napari
from .batch import FORMATS

SAMPLES = tuple(sample["key"] for sample in _SAMPLE_CONTRIBUTIONS)


class _BatchLines(logging.Handler):
    """Batch progress as lines: ``wrote``/``skipped`` on stdout, failures on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            print(f"stacklab run: {record.getMessage()}", file=sys.stderr, flush=True)
        else:
            print(record.getMessage(), flush=True)


def _run(args: argparse.Namespace) -> int:
    from .batch import BatchError, SkippedOutputWarning, run_batch
    from .recipe import Recipe

    recipe = Recipe.load(args.recipe)
    logger = logging.getLogger("napari_stacklab.batch")
    handler = _BatchLines()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedOutputWarning)  # reported as "skipped ..." lines
            result = run_batch(
                recipe,
                [Path(p) for p in args.inputs],
                Path(args.output),
                fmt=args.format,
                scheduler=args.scheduler,
                device=args.device,
                progress=not args.quiet,
                images=_named_files(args.image),
            )
    except BatchError as exc:
        print(f"stacklab run: {exc.result.summary()}", file=sys.stderr)
        return 1
    finally:
        logger.removeHandler(handler)
    print(f"stacklab run: {result.summary()}", file=sys.stderr)
    return 0


def _named_files(pairs: list[str] | None) -> dict[str, Path]:
    """``["mask=mask.tif", ...]`` (``--image NAME=FILE``) -> ``{"mask": Path("mask.tif")}``."""
    named = {}
    for pair in pairs or []:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--image takes NAME=FILE (the name a recipe step records for an image), got {pair!r}")
        named[name] = Path(path)
    return named


def _describe(image) -> str:
    from . import _backend

    lines = [
        f"  name        {image.name}",
        f"  shape       {image.shape}",
        f"  dtype       {image.dtype}",
        f"  axes        {', '.join(image.axis_labels)}",
        "  pixel size  " + ", ".join(f"{s:g} {u}" for s, u in zip(image.scale, image.units)),
        "  origin      " + ", ".join(f"{t:g}" for t in image.translate),
    ]
    if _backend.is_dask(image.data):
        chunk = tuple(c[0] for c in image.data.chunks)
        lines.append(f"  lazy        yes (dask, {image.data.npartitions} chunks of {chunk})")
    else:
        lines.append("  lazy        no (in memory)")
    extra = sorted(k for k in image.metadata if k not in ("source",))
    if extra:
        lines.append(f"  metadata    {', '.join(extra)}")
    return "\n".join(lines)


def _info(args: argparse.Namespace) -> int:
    from . import io

    status = 0
    for path in args.files:
        try:
            images = io.imread_all(path)
        except Exception as exc:  # report every file, then fail
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{path}: {len(images)} image(s)")
        for image in images:
            print(_describe(image))
    return status


def _ops(args: argparse.Namespace) -> int:
    from . import catalog

    ops = catalog.operations() if args.name is None else [catalog.get(args.name)]
    for op in ops:
        print(f"{op.name:24s} {op.family:11s} -> {op.output:9s} {op.summary}")
        if args.name is not None or args.verbose:
            for p in op.params:
                limits = f" in [{p.low}, {p.high}]" if p.low is not None or p.high is not None else ""
                choices = f" one of {list(p.choices)}" if p.choices else ""
                print(f"    {p.name} = {p.default!r} ({p.kind.__name__}{limits}{choices})")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from . import io

    if os.path.lexists(args.output) and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace it")
    image = io.imread(args.input)
    io.imwrite(args.output, image, overwrite=args.overwrite)
    print(f"wrote {args.output} ({' x '.join(map(str, image.shape))} {image.dtype}, "
          f"axes {', '.join(image.axis_labels)})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ._napari.demo import launch

    launch(sample=args.sample, screenshot=args.screenshot)
    return 0


def _stitch(args: argparse.Namespace) -> int:
    from .batch import _compute, _scheduler
    from .stitch._cli import run

    with _scheduler(args.scheduler) as client:
        return run(args, compute=lambda tasks: _compute(tasks, client, not args.quiet))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stacklab", description="napari-stacklab: lazy microscopy image operations")
    parser.add_argument("--version", action="version", version=f"napari-stacklab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a recipe over input files (lazily, in batch)")
    run.add_argument("recipe", help="recipe YAML file")
    run.add_argument("inputs", nargs="+", help="input files (TIFF, EM formats, npy, zarr)")
    run.add_argument("-o", "--output", required=True, help="output folder")
    run.add_argument("--format", choices=FORMATS, default=FORMATS[0], help=f"output format (default {FORMATS[0]})")
    run.add_argument("--scheduler", default=None,
                     help="'local' for a local dask.distributed cluster, or a scheduler ADDRESS "
                          "(tcp://HOST:8786); default: threads")
    run.add_argument("--device", choices=DEVICES, default=None, help="where to compute")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.add_argument("--image", action="append", metavar="NAME=FILE",
                     help="the file of an image the recipe names (a reference, a mask: 'reference: {layer: NAME}' "
                          "in a step); repeat for several")
    run.set_defaults(handler=_run)

    info = sub.add_parser("info", help="describe files: shape, dtype, axes, pixel size, laziness")
    info.add_argument("files", nargs="+")
    info.set_defaults(handler=_info)

    ops = sub.add_parser("ops", help="list operations (or one operation's parameters)")
    ops.add_argument("name", nargs="?")
    ops.add_argument("-v", "--verbose", action="store_true", help="show every operation's parameters")
    ops.set_defaults(handler=_ops)

    convert = sub.add_parser("convert", help="convert a readable file to TIFF keeping pixel size")
    convert.add_argument("input")
    convert.add_argument("output")
    convert.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    convert.set_defaults(handler=_convert)

    demo = sub.add_parser("demo", help="open napari with the plugin and a generated sample dataset")
    demo.add_argument("--sample", choices=SAMPLES, default="timelapse")
    demo.add_argument("--screenshot", default=None, help="save a screenshot to this PNG and quit (for docs/CI)")
    demo.set_defaults(handler=_demo)

    from .stitch._cli import add_arguments

    stitch = sub.add_parser("stitch", help="stitch overlapping tiles into one mosaic, with a quality report")
    add_arguments(stitch)
    stitch.set_defaults(handler=_stitch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = warnings.showwarning
    warnings.showwarning = _note_for(args.command)
    try:
        status = args.handler(args)
        sys.stdout.flush()  # here, where a closed pipe can still be handled
        return status
    except BrokenPipeError:  # `stacklab ops | head`: the reader has all it wanted
        _stdout_to_devnull()
        return 0
    except KeyboardInterrupt:
        print(f"stacklab {args.command}: interrupted" + (
            "; complete outputs were kept and unfinished ones removed: run the same command again to resume"
            if args.command == "run" else ""), file=sys.stderr)
        return 130
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"stacklab {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = previous


def _note_for(command: str):
    """Warnings as one line each, ``stacklab CMD: note: ...``, instead of Python's file:line format."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"stacklab {command}: note: {message}", file=sys.stderr)

    return show


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain about the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
