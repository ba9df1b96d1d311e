"""``stacklab stitch``: the command-line face of the stitch package (arguments and the run)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``stitch`` subcommand's arguments."""
    parser.add_argument("tiles", nargs="*",
                        help="tile files, a folder or a quoted glob pattern (not needed with --positions)")
    parser.add_argument("-o", "--output", required=True, help="mosaic to write: .zarr (multiscale OME-Zarr) or .tif")
    where = parser.add_argument_group("tile positions (default: the stage positions in OME metadata)")
    where.add_argument("--grid", metavar="ROWSxCOLS", help="a regular grid scan, e.g. 4x5")
    where.add_argument("--order", choices=("row-major", "column-major", "snake", "snake-column"), default="row-major",
                       help="grid acquisition order (default row-major)")
    where.add_argument("--overlap", type=float, default=0.1, help="grid overlap fraction (default 0.1)")
    where.add_argument("--positions", metavar="CSV", help="a CSV with columns file, y, x")
    where.add_argument("--physical", action="store_true", help="CSV positions are in physical units, not pixels")
    where.add_argument("--pixel-size", type=float, default=None, help="override the files' pixel size")
    where.add_argument("--unit", default=None, help="unit of --pixel-size (e.g. um)")
    reg = parser.add_argument_group("registration")
    reg.add_argument("--plane", default=None, help="leading-axis index to register on, e.g. 0 or 1,0 (channel, z)")
    reg.add_argument("--margin", type=int, default=None, help="largest stage error searched, pixels")
    reg.add_argument("--no-refine", action="store_true", help="skip the ECC refinement")
    reg.add_argument("--min-confidence", type=float, default=0.6, help="reject pairs below this correlation")
    reg.add_argument("--min-distinctiveness", type=float, default=0.1,
                     help="reject pairs whose best match beats the next best by less")
    reg.add_argument("--max-residual", type=float, default=2.0, help="reject pairs off by more pixels")
    reg.add_argument("--exclude", action="append", default=[], metavar="I-J", help="leave out a pair (repeatable)")
    fusion = parser.add_argument_group("fusion")
    fusion.add_argument("--blend", choices=("linear", "overwrite", "max"), default="linear")
    fusion.add_argument("--flatfield", default=None, help="'median' (estimated from the tiles) or a flat-field image")
    fusion.add_argument("--interpolation", type=int, choices=(0, 1, 3), default=1,
                        help="0: whole pixels; 1 (default): linear; 3: cubic")
    fusion.add_argument("--chunks", type=int, default=1024, help="output chunk side, pixels")
    fusion.add_argument("--dtype", default=None,
                        help="output dtype, e.g. uint16 or 'same' as the tiles (default float32, or the tiles' "
                             "dtype for --interpolation 0 without linear blending)")
    fusion.add_argument("--levels", type=int, default=None, help="zarr pyramid levels (default: automatic)")
    parser.add_argument("--scheduler", default=None,
                        help="'local' for a local dask.distributed cluster, or a scheduler ADDRESS; default: threads")
    parser.add_argument("--overwrite", action="store_true", help="replace the output and its report files")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _grid(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX*,]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"--grid must be ROWSxCOLS, e.g. 4x5, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _pair(text: str) -> tuple:
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"--exclude must be I-J (tile indices or names), got {text!r}")
    return tuple(int(p) if p.strip().isdigit() else p.strip() for p in parts)


def _tiles(args: argparse.Namespace) -> Any:
    from . import csv_tiles, grid_tiles, ome_tiles

    source = args.tiles[0] if len(args.tiles) == 1 else args.tiles
    units = args.unit if args.pixel_size is not None else None
    if args.positions:
        if args.grid:
            raise ValueError("give either --grid or --positions, not both")
        return csv_tiles(args.positions, physical=args.physical, pixel_size=args.pixel_size, units=units)
    if not args.tiles:
        raise ValueError("give the tiles (files, a folder or a pattern), or --positions CSV")
    if args.grid:
        rows, cols = _grid(args.grid)
        return grid_tiles(source, rows=rows, cols=cols, order=args.order, overlap=args.overlap,
                          pixel_size=args.pixel_size, units=units)
    return ome_tiles(source, pixel_size=args.pixel_size)


def _report_paths(output: Path) -> tuple[Path, Path]:
    stem = output.name
    for suffix in (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return output.with_name(stem + "_pairs.csv"), output.with_name(stem + "_positions.csv")


def run(args: argparse.Namespace, compute: Callable[[list], Any] | None = None) -> int:
    """Read the tiles, register, solve, fuse and write; print the quality summary."""
    import contextlib

    import numpy as np

    from .. import io
    from . import mosaic_image, register_tiles, write_mosaic
    from .._mosaic._flatfield import estimate_flatfield

    output = Path(args.output)
    pairs_csv, positions_csv = _report_paths(output)
    for path in (output, pairs_csv, positions_csv):
        if path.exists() and not args.overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    tiles = _tiles(args)
    say = (lambda *_: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"{len(tiles)} tiles of {tiles.shape} {tiles.dtype} ({tiles.metadata.get('positions')} positions)")
    flatfield = args.flatfield
    if flatfield is not None and flatfield != "median":
        flatfield = io.imread(flatfield).data
    elif flatfield == "median":
        flatfield = estimate_flatfield(tiles)
    plane = None if args.plane is None else tuple(int(p) for p in str(args.plane).split(","))
    from dask.diagnostics import ProgressBar

    progress = ProgressBar(out=sys.stderr) if not args.quiet else contextlib.nullcontext()
    say("registering neighbouring tiles")
    with progress:
        layout = register_tiles(
            tiles, plane=plane, margin=args.margin, refine=not args.no_refine, flatfield=flatfield,
            min_confidence=args.min_confidence, min_distinctiveness=args.min_distinctiveness,
            max_residual=args.max_residual,
            exclude=[_pair(p) for p in args.exclude],
        )
    print(layout.summary())
    dtype = tiles.dtype if args.dtype == "same" else args.dtype
    image = mosaic_image(layout, name=output.name, blend=args.blend, flatfield=flatfield,
                         order=args.interpolation, chunks=args.chunks, dtype=dtype)
    say(f"writing {output} ({' x '.join(str(s) for s in image.shape)}, {image.dtype}, "
        f"{np.prod(image.shape) * image.dtype.itemsize / 2**30:.2f} GiB)")
    tiff = output.suffix.lower() in (".tif", ".tiff")
    with (ProgressBar(out=sys.stderr) if tiff and not args.quiet else contextlib.nullcontext()):
        write_mosaic(output, image, levels=args.levels, chunks=args.chunks, overwrite=args.overwrite, compute=compute)
    layout.to_csv(pairs_csv)
    layout.positions_to_csv(positions_csv)
    for path in (output, pairs_csv, positions_csv):
        print(path)
    return 0
