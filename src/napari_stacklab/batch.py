"""Run a recipe over many files: lazily, on all local cores or on a dask.distributed cluster.

Each input is opened lazily with :func:`napari_stacklab.io.imread`, the
recipe builds its lazy graph (:meth:`Recipe.run`), and every result is
written chunk by chunk, so no dataset has to fit in memory. All zarr outputs
are written in **one** dask computation, so the scheduler overlaps reading,
computing and writing across files.

Outputs are named ``<out_dir>/<input stem>.zarr`` (or ``.tif``); an operation
that returns several images (``output="images"``, e.g. centre of mass) gives
one output per image, ``<stem>_<name>.zarr``. Existing outputs are **never
overwritten**: they are skipped with a :class:`SkippedOutputWarning`, so
re-running an interrupted batch resumes it. Metadata travel with every output:

- zarr: an OME-NGFF ``multiscales`` block (axis names and units, scale,
  translation: read back by :func:`napari_stacklab.io.imread`) plus the
  ``stacklab`` provenance (the recipe steps, the source file, the version) in
  the group attributes;
- TIFF: scale, units and axis labels inside the TIFF (``io.imwrite``) and the
  provenance in a sidecar ``<name>.tif.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence


from . import _backend
from .io import Image, imread
from .recipe import PROVENANCE_KEY, Recipe

__all__ = ["run_batch", "SkippedOutputWarning", "FORMATS"]

FORMATS = ("zarr", "tiff")
_SUFFIX = {"zarr": ".zarr", "tiff": ".tif"}


class SkippedOutputWarning(UserWarning):
    """An output already existed, so its input was not processed again."""


def run_batch(
    recipe: Recipe | str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    fmt: Literal["zarr", "tiff"] = "zarr",
    scheduler: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> list[Path]:
    """Apply ``recipe`` to every file in ``inputs`` and write one result per input (per image).

    Parameters
    ----------
    recipe : Recipe or path
        The steps, or a recipe YAML file.
    inputs : sequence of path
        Files (or folders) :func:`napari_stacklab.io.imread` reads.
    out_dir : path
        Folder for the results (created if needed).
    fmt : {"zarr", "tiff"}
        Output format.
    scheduler : None, "local" or str
        ``None``: dask's threaded scheduler in this process. ``"local"``: a
        ``distributed.LocalCluster`` of threads started for this batch (its
        dashboard shows the work). Any other string: the address of a running
        dask.distributed scheduler (``"tcp://10.0.0.5:8786"``); its workers
        must see the input and output paths.
    device : {None, "auto", "cpu", "gpu"}
        Where the recipe runs (see :meth:`Recipe.run`); results are copied to
        the host as they are written.
    progress : bool
        Show a progress bar (``dask.diagnostics.ProgressBar`` or
        ``distributed.progress``).

    Returns
    -------
    list of Path
        Every output path, in input order, including outputs that already
        existed and were skipped.

    Raises
    ------
    ValueError
        Unknown ``fmt``, no inputs, or two inputs that would write the same output.
    FileNotFoundError
        An input does not exist (checked before anything runs).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from napari_stacklab import Recipe
    >>> folder = tempfile.mkdtemp()
    >>> np.save(os.path.join(folder, "a.npy"), np.eye(16, dtype=np.float32))
    >>> rec = Recipe(steps=[{"op": "gaussian", "params": {"sigma": 1}}])
    >>> outs = run_batch(rec, [os.path.join(folder, "a.npy")], os.path.join(folder, "out"), progress=False)
    >>> [p.name for p in outs]
    ['a.zarr']
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(recipe, Recipe):
        recipe = Recipe.load(recipe)
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ValueError("inputs is empty: give at least one file")
    for path in inputs:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
    stems = [_stem(p) for p in inputs]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise ValueError(f"several inputs would write the same output name(s) {clashes}; rename them")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    outputs: list[Path] = []
    pending: list[tuple[Path, Image]] = []
    for path, stem in zip(inputs, stems):
        for name, image in _results(recipe, imread(path, lazy=True), device):
            target = out_dir / (f"{stem}_{name}" if name else stem)
            target = target.with_name(target.name + _SUFFIX[fmt])
            outputs.append(target)
            if target.exists():
                warnings.warn(f"{target} exists; skipping it (delete it to recompute)", SkippedOutputWarning,
                              stacklevel=2)
            else:
                pending.append((target, image))
    with _scheduler(scheduler):
        if fmt == "zarr":
            _compute([_zarr_store(target, image) for target, image in pending], progress)
        else:
            for target, image in pending:
                with _progress_bar(progress, scheduler):
                    _write_tiff(target, image)
    return outputs


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _results(recipe: Recipe, image: Image, device: str | None) -> Iterator[tuple[str, Image]]:
    """``(name, Image)`` per array the recipe returns: one, or one per entry of an ``images`` dict."""
    result = recipe.run(image, device=device)
    for name, out in (result.items() if isinstance(result, dict) else [("", result)]):
        if not isinstance(out, Image):
            raise ValueError(f"the recipe returns a {type(out).__name__}, not an image: it cannot be written")
        yield name, out


def _zarr_store(target: Path, image: Image) -> Any:
    """Create the OME-Zarr group with its attributes; return the lazy write of its array."""
    from .io._zarr import write_zarr

    return write_zarr(str(target), image, compute=False)


def _write_tiff(target: Path, image: Image) -> None:
    from .io import imwrite
    from .io._zarr import ngff_attrs

    imwrite(target, image.with_data(_backend.to_numpy(image.data)))
    sidecar = {**ngff_attrs(image), PROVENANCE_KEY: image.metadata.get(PROVENANCE_KEY, {})}
    target.with_name(target.name + ".json").write_text(json.dumps(sidecar, indent=2), encoding="utf-8")


@contextlib.contextmanager
def _scheduler(scheduler: str | None):
    """dask's threaded scheduler, a LocalCluster for this batch, or a client of a running cluster."""
    if scheduler is None:
        import dask

        with dask.config.set(scheduler="threads"):
            yield None
        return
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be None, 'local' or a scheduler address, got {scheduler!r}")
    from distributed import Client, LocalCluster

    if scheduler == "local":
        logger = logging.getLogger("distributed.scheduler")
        level = logger.level
        try:
            with LocalCluster(processes=False, dashboard_address=None) as cluster:
                with Client(cluster) as client:
                    yield client
                # the progress bar's feed is cancelled when our own cluster stops: not an error
                logger.setLevel(logging.CRITICAL)
        finally:
            logger.setLevel(level)
    else:
        with Client(scheduler) as client:
            yield client


def _compute(tasks: list, progress: bool) -> None:
    if not tasks:
        return
    import dask

    try:
        from distributed import get_client, progress as distributed_progress

        client = get_client()
    except (ImportError, ValueError):
        client = None
    if client is None:
        with _progress_bar(progress, None):
            dask.compute(*tasks)
        return
    futures = client.compute(tasks)
    if progress:
        distributed_progress(futures)
    client.gather(futures)


@contextlib.contextmanager
def _progress_bar(progress: bool, scheduler: str | None):
    if progress and scheduler is None:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            yield
    else:
        yield
