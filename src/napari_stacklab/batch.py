"""Run a recipe over many files: lazily, on all local cores or on a dask.distributed cluster.

Each input is opened lazily with :func:`napari_stacklab.io.imread`, the
recipe builds its lazy graph (:meth:`Recipe.run`), and every result is
written chunk by chunk, so no dataset has to fit in memory.

Outputs are named ``<out_dir>/<input name>.zarr`` (or ``.tif``); an operation
that returns several images (``output="images"``, e.g. centre of mass) gives
one output per image, ``<name>_<key>.zarr``. Masks are written as uint8 0/1,
as napari shows and saves them.

**What is in the output folder is honest:**

- each output is written under a hidden temporary name in the output folder
  (``.stacklab-<host>-<pid>-*/``), marked complete in its own metadata
  (:data:`COMPLETE_KEY` in the zarr attributes, or in the TIFF's
  ``<name>.tif.json`` sidecar) and only then renamed into place, refusing to
  replace anything that appeared there meanwhile (another batch): a name in
  the folder is a finished output or nothing;
- a re-run skips complete outputs (reported as skipped, with a
  :class:`SkippedOutputWarning`) and redoes the rest, so re-running an
  interrupted batch resumes it; an incomplete output left by an older version
  is replaced, a file stacklab did not write is never touched;
- an input that fails (unreadable, a recipe that fails on it, a full disk) is
  reported and the batch goes on with the others; it ends with
  :class:`BatchError` listing what failed;
- nothing is written outside ``out_dir`` or through a symbolic link (dangling
  ones included), and an output never replaces its own input.

Metadata travel with every output:

- zarr: an OME-NGFF ``multiscales`` block (axis names and units, scale,
  translation: read back by :func:`napari_stacklab.io.imread`) plus the
  ``stacklab`` provenance (the recipe steps, the source file, the version) in
  the group attributes;
- TIFF: scale, units and axis labels inside the TIFF (``io.imwrite``) and the
  provenance in a sidecar ``<name>.tif.json``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from . import _backend, catalog
from .io import PROVENANCE_KEY, Image, imread
from .recipe import Recipe

__all__ = ["run_batch", "BatchResult", "BatchError", "SkippedOutputWarning", "FORMATS", "COMPLETE_KEY"]

Format = Literal["zarr", "tiff"]
FORMATS: tuple[str, ...] = get_args(Format)
_SUFFIX = {"zarr": ".zarr", "tiff": ".tif"}

#: Attribute (zarr) or sidecar key (TIFF) marking an output written to the end: ``{"complete": true, ...}``.
COMPLETE_KEY = "stacklab_output"
#: Scheduler protocols dask.distributed speaks (an ``http://`` address is the dashboard, not a scheduler).
_PROTOCOLS = ("tcp", "tls", "inproc", "ws", "wss", "ucx", "ucxx")
_TEMP_PREFIX = ".stacklab-"

log = logging.getLogger(__name__)


class SkippedOutputWarning(UserWarning):
    """An output was already complete, so its input was not processed again."""


class BatchResult(list):
    """The complete outputs of a batch, in input order (a list of Path), and what happened to each input.

    Attributes
    ----------
    written : list of Path
        Outputs this run wrote.
    skipped : list of Path
        Outputs that were already complete and were left as they were.
    failed : dict
        Input path -> the exception that stopped it (nothing of it was written).
    """

    def __init__(self) -> None:
        super().__init__()
        self.written: list[Path] = []
        self.skipped: list[Path] = []
        self.failed: dict[Path, BaseException] = {}

    def summary(self) -> str:
        return f"{len(self.written)} written, {len(self.skipped)} skipped (already complete), {len(self.failed)} failed"


class BatchError(Exception):
    """Some inputs of a batch failed; the others were written. ``result`` is the :class:`BatchResult`."""

    def __init__(self, result: BatchResult):
        self.result = result
        lines = [f"{path}: {_describe(exc)}" for path, exc in result.failed.items()]
        super().__init__(f"{len(result.failed)} input(s) failed ({result.summary()}):\n  " + "\n  ".join(lines))


def run_batch(
    recipe: Recipe | str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    fmt: Format = "zarr",
    scheduler: str | None = None,
    device: str | None = None,
    progress: bool = True,
    images: Mapping[str, str | os.PathLike] | None = None,
) -> BatchResult:
    """Apply ``recipe`` to every file in ``inputs`` and write one result per input (per image).

    Parameters
    ----------
    recipe : Recipe or path
        The steps, or a recipe YAML file.
    inputs : sequence of path
        Files (or folders) :func:`napari_stacklab.io.imread` reads.
    out_dir : path
        Folder for the results (created if needed). It may hold the inputs.
    fmt : {"zarr", "tiff"}
        Output format.
    scheduler : None, "local" or str
        ``None``: dask's threaded scheduler in this process. ``"local"``: a
        ``distributed.LocalCluster`` of threads started for this batch (its
        dashboard shows the work). Any other string: the address of a running
        dask.distributed scheduler (``"tcp://10.0.0.5:8786"``, or ``host:port``);
        its workers must see the input and output paths.
    device : {None, "auto", "cpu", "gpu"}
        Where the recipe runs (see :meth:`Recipe.run`); results are copied to
        the host as they are written.
    progress : bool
        Show a progress bar (``dask.diagnostics.ProgressBar`` or
        ``distributed.progress``).
    images : mapping, optional
        The files of the images the recipe's steps name (a reference, a
        mask: parameters recorded as ``{layer: NAME}``), by name; each is
        read once (lazily) and given to every run (``Recipe.run(inputs=)``).

    Returns
    -------
    BatchResult
        A list of every complete output path, in input order (written now or
        skipped), with ``written``, ``skipped`` and ``failed`` attributes.

    Raises
    ------
    ValueError
        Unknown ``fmt``, no inputs, two inputs that would write the same output,
        a scheduler address that is not one, all before anything runs.
    FileNotFoundError
        An input does not exist (checked before anything runs).
    BatchError
        At the end, when some inputs failed (the others were written); its
        ``result`` says which.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from napari_stacklab import Recipe
    >>> folder = tempfile.mkdtemp()
    >>> np.save(os.path.join(folder, "a.npy"), np.eye(16, dtype=np.float32))
    >>> rec = Recipe(steps=[{"op": "gaussian", "params": {"sigma": 1}}])
    >>> outs = run_batch(rec, [os.path.join(folder, "a.npy")], os.path.join(folder, "out"), progress=False)
    >>> [p.name for p in outs], outs.written == list(outs)
    (['a.zarr'], True)
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    check_scheduler(scheduler)
    if not isinstance(recipe, Recipe):
        recipe = Recipe.load(recipe)
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ValueError("inputs is empty: give at least one file")
    for path in inputs:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
    named = _named_images(recipe, images or {})
    stems = [output_stem(p) for p in inputs]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise ValueError(f"several inputs would write the same output name(s) {clashes}; rename them")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(os.path.realpath(out_dir))
    _remove_abandoned_temporaries(folder)

    result = BatchResult()
    planned: list[tuple[Path, list[tuple[Path, Image]]]] = []
    every_output: list[Path] = []
    for path, stem in zip(inputs, stems):
        try:
            outputs = _plan(recipe, path, stem, folder, out_dir, fmt, device, named)
        except Exception as exc:  # reported per input; the batch goes on
            _fail(result, path, exc)
            continue
        pending = []
        for target, image in outputs:
            every_output.append(target)
            if image is None:
                warnings.warn(f"{target} is complete; skipping it (delete it to recompute)", SkippedOutputWarning,
                              stacklevel=2)
                log.info("skipped %s (already complete)", target)
                result.skipped.append(target)
            else:
                pending.append((target, image))
        planned.append((path, pending))

    temporaries: list[Path] = []
    try:
        with _scheduler(scheduler) as client:
            for path, pending in planned:
                for target, image in pending:
                    try:
                        _write(folder, target, image, fmt, path, client, progress, temporaries)
                    except Exception as exc:  # a recipe failing at compute time, a full disk, a race lost
                        _fail(result, path, exc)
                        break
                    log.info("wrote %s", target)
                    result.written.append(target)
    finally:  # after the scheduler stopped: no task of an interrupted or failed write is still writing
        _remove_settled([work for work in temporaries if os.path.lexists(work)])
    done = set(result.written) | set(result.skipped)
    result.extend(target for target in every_output if target in done)
    if result.failed:
        raise BatchError(result)
    return result


def output_stem(path: str | os.PathLike) -> str:
    """The name outputs of ``path`` are called after: its file name without the format suffix.

    ``"."`` and other relative names are resolved first (``.`` inside ``data/`` is ``data``),
    so that an output name never climbs out of the output folder.
    """
    name = Path(os.path.realpath(path)).name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    stem = Path(name).stem if not name.startswith(".") or name.count(".") > 1 else name
    if not stem or stem in (".", ".."):
        raise ValueError(f"{path}: cannot name an output after this input (its name is empty)")
    return stem


def _fail(result: BatchResult, path: Path, exc: BaseException) -> None:
    log.error("%s: failed: %s", path, _describe(exc))
    result.failed[path] = exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return f"the disk is full or the file size limit was reached ({exc.strerror or exc}); nothing was kept"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (ValueError, TypeError, FileNotFoundError)) else f"{type(exc).__name__}: {text}"


def _plan(recipe: Recipe, path: Path, stem: str, folder: Path, out_dir: Path, fmt: str, device,
          named: dict) -> list:
    """``(target, image)`` per output of ``path``; ``image`` is None for an output already complete.

    Every target is checked to be a plain name inside the folder, not the input itself, not a
    symbolic link and not a file stacklab did not write. When the recipe gives one image, a
    complete output is skipped without even reading the input (a resumed batch of ECC
    alignments does not align again what is done).
    """
    if not recipe.steps or catalog.get(recipe.steps[-1]["op"]).output != "images":
        target = _target(path, stem, "", folder, out_dir, fmt)
        if _state(folder / target.name, fmt) == "complete":
            return [(target, None)]
    outputs = []
    for key, image in _results(recipe, imread(path, lazy=True), device, named):
        target = _target(path, stem, key, folder, out_dir, fmt)
        outputs.append((target, None if _state(folder / target.name, fmt) == "complete" else image))
    return outputs


def _target(path: Path, stem: str, key: str, folder: Path, out_dir: Path, fmt: str) -> Path:
    name = (f"{stem}_{key}" if key else stem) + _SUFFIX[fmt]
    if name != Path(name).name or name in (".", "..") or os.sep in name or (os.altsep and os.altsep in name):
        raise ValueError(f"{path}: the output name {name!r} is not a plain file name")
    target = folder / name
    source = Path(os.path.realpath(path))
    if target == source or source.is_relative_to(target):
        raise ValueError(
            f"{path}: its output {out_dir / name} would be the input itself; choose another output folder (-o)"
        )
    if target.is_symlink() or _state(target, fmt) == "symlink":
        raise ValueError(f"{out_dir / name} is a symbolic link; refusing to write through it")
    if _state(target, fmt) == "foreign":
        raise FileExistsError(
            f"{out_dir / name} exists and is not a complete stacklab output; "
            "move it away or choose another output folder (-o)"
        )
    return out_dir / name


def _named_images(recipe: Recipe, images: Mapping[str, str | os.PathLike]) -> dict:
    """The images the recipe names, read (lazily) from their files; every missing one is said before anything runs."""
    missing = [name for name in recipe.image_names if name not in images]
    if missing:
        given = " ".join(f"--image {name!r}=FILE" for name in missing)
        raise ValueError(f"the recipe needs the image(s) {missing} (a reference or a mask recorded by name): "
                         f"pass images={{name: path}} ({given} on the command line)")
    named = {}
    for name, path in images.items():
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such file or folder (the image {name!r})")
        named[name] = imread(path, lazy=True)
    return named


def _results(recipe: Recipe, image: Image, device: str | None, named: dict) -> Iterator[tuple[str, Image]]:
    """``(name, Image)`` per array the recipe returns: one, or one per entry of an ``images`` dict."""
    result = recipe.run(image, device=device, inputs=named)
    for name, out in (result.items() if isinstance(result, dict) else [("", result)]):
        if not isinstance(out, Image):
            raise ValueError(f"the recipe returns a {type(out).__name__}, not an image: it cannot be written")
        if np.dtype(out.dtype) == np.bool_:  # masks: uint8 0/1, as napari shows and saves them
            out = out.with_data(out.data.astype(np.uint8))
        yield name, out


# ---------------------------------------------------------------- what is already there


def _state(target: Path, fmt: str) -> str:
    """``"absent"``, ``"complete"``, ``"incomplete"`` (ours, unfinished), ``"foreign"`` or ``"symlink"``."""
    sidecar = target.with_name(target.name + ".json")
    if target.is_symlink() or (fmt == "tiff" and sidecar.is_symlink()):
        return "symlink"
    if fmt == "zarr":
        if not os.path.lexists(target):
            return "absent"
        attrs = _json(target / ".zattrs") if target.is_dir() else None
        if attrs is None:
            return "foreign"
        if (attrs.get(COMPLETE_KEY) or {}).get("complete") is True:
            return "complete"
        return "incomplete" if PROVENANCE_KEY in attrs else "foreign"
    record = _json(sidecar) if sidecar.is_file() else None
    if record is None or not (COMPLETE_KEY in record or PROVENANCE_KEY in record):
        return "foreign" if os.path.lexists(target) or os.path.lexists(sidecar) else "absent"
    if (record.get(COMPLETE_KEY) or {}).get("complete") is True and target.is_file():
        return "complete"
    return "incomplete"


def _json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------- writing, then renaming into place


def _write(
    folder: Path, target: Path, image: Image, fmt: str, source: Path, client: Any, progress: bool,
    temporaries: list[Path],
) -> None:
    """Write ``image`` in a private temporary folder inside ``folder``, mark it complete, rename it into place.

    The temporary folder is listed in ``temporaries``; the caller removes it once no task can
    still be writing into it (after an interrupt, running tasks finish their chunk first).
    """
    while True:  # listed before it exists: an interrupt at any point leaves nothing unlisted behind
        work = folder / (_temp_prefix() + secrets.token_hex(6))
        temporaries.append(work)
        try:
            work.mkdir(mode=0o700)
            break
        except FileExistsError:
            continue
    staged = work / target.name
    marker = {"complete": True, "input": str(source), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if fmt == "zarr":
        _stage_zarr(staged, image, marker, client, progress)
        _commit(staged, folder / target.name, fmt, work)
    else:
        _stage_tiff(staged, image, marker, progress, client)
        sidecar = staged.with_name(staged.name + ".json")
        _commit(sidecar, folder / sidecar.name, fmt, work, moving_sidecar=True)
        _commit(staged, folder / target.name, fmt, work)
    shutil.rmtree(work, ignore_errors=True)


def _stage_zarr(staged: Path, image: Image, marker: dict, client: Any, progress: bool) -> None:
    import zarr

    from .io._zarr import write_zarr

    store = write_zarr(str(staged), image, compute=False)
    _compute(store, client, progress)
    zarr.open_group(str(staged), mode="r+").attrs[COMPLETE_KEY] = marker


def _stage_tiff(staged: Path, image: Image, marker: dict, progress: bool, client: Any) -> None:
    from .io import imwrite
    from .io._zarr import ngff_attrs

    with _progress_bar(progress and client is None):
        imwrite(staged, image.with_data(_backend.to_numpy(image.data)))
    sidecar = {**ngff_attrs(image), PROVENANCE_KEY: image.metadata.get(PROVENANCE_KEY, {}), COMPLETE_KEY: marker}
    staged.with_name(staged.name + ".json").write_text(json.dumps(sidecar, indent=2), encoding="utf-8")


def _commit(staged: Path, target: Path, fmt: str, work: Path, moving_sidecar: bool = False) -> None:
    """Rename ``staged`` to ``target``, never replacing a complete output or anything not ours."""
    if os.path.lexists(target):
        state = "symlink" if target.is_symlink() else _state(target.with_suffix("") if moving_sidecar else target, fmt)
        if state == "complete":
            raise FileExistsError(
                f"{target} appeared, complete, while this batch computed it (another batch?); "
                "it was kept and this result discarded"
            )
        if state != "incomplete":
            raise FileExistsError(f"{target} appeared while this batch computed it; it was kept, this result discarded")
        aside = work / ("replaced-" + target.name)
        os.rename(target, aside)  # atomic: from here on the old output is ours alone
        if _state(aside.with_suffix("") if moving_sidecar else aside, fmt) == "complete":
            _rename_noreplace(aside, target)  # another batch finished it in between: put it back
            raise FileExistsError(f"{target} was completed by another batch meanwhile; it was kept")
    _rename_noreplace(staged, target)


def _rename_noreplace(source: Path, target: Path) -> None:
    """Rename, failing with FileExistsError when ``target`` exists (a symlink, dangling or not, included)."""
    rename2 = _renameat2()
    if rename2 is not None:
        if rename2(-100, os.fsencode(source), -100, os.fsencode(target), 1) == 0:  # AT_FDCWD, RENAME_NOREPLACE
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, f"{target} appeared meanwhile; it was kept", str(target))
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(target))
    if os.path.lexists(target):  # no atomic no-replace rename here: the narrowest check
        raise FileExistsError(errno.EEXIST, f"{target} appeared meanwhile; it was kept", str(target))
    if source.is_dir():
        os.rename(source, target)  # refuses a non-empty target folder
    else:
        try:
            os.link(source, target)  # refuses any existing target
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise
            os.rename(source, target)
        else:
            os.unlink(source)


def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _remove_settled(folders: list[Path], quiet: float = 0.3, patience: float = 3.0) -> None:
    """Remove ``folders``, again if something recreates them within ``quiet`` seconds (up to ``patience``).

    zarr writes through its own I/O thread: after an interrupt it may still finish a metadata
    file of the store being created, recreating a folder just removed.
    """
    deadline = time.monotonic() + patience
    while folders:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        time.sleep(quiet)
        folders = [folder for folder in folders if os.path.lexists(folder)]
        if time.monotonic() > deadline:
            return


def _temp_prefix() -> str:
    return f"{_TEMP_PREFIX}{socket.gethostname()}-{os.getpid()}-"


def _remove_abandoned_temporaries(folder: Path) -> None:
    """Remove temporary folders that batches on this machine left when killed (their process is gone)."""
    host = socket.gethostname()
    for entry in folder.glob(f"{_TEMP_PREFIX}{host}-*-*"):
        try:
            pid = int(entry.name[len(_TEMP_PREFIX) + len(host) + 1 :].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


# ---------------------------------------------------------------- schedulers


def check_scheduler(scheduler: str | None) -> None:
    """Refuse, before anything runs, what is not ``None``, ``"local"`` or a dask scheduler address."""
    if scheduler is None or scheduler == "local":
        return
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be None, 'local' or a scheduler address, got {scheduler!r}")
    protocol, sep, rest = scheduler.partition("://")
    if not sep:
        protocol, rest = "tcp", scheduler
    if protocol not in _PROTOCOLS:
        hint = " (http:// is the dashboard's address, usually port 8787)" if protocol.startswith("http") else ""
        raise ValueError(
            f"scheduler {scheduler!r} is not a dask scheduler address{hint}: use 'local', or "
            f"{'/'.join(_PROTOCOLS[:2])}://HOST:PORT (the scheduler's port, usually 8786)"
        )
    host, colon, port = rest.rpartition(":")
    if protocol in ("tcp", "tls", "ws", "wss") and (not colon or not host or not port.isdigit()):
        raise ValueError(f"scheduler {scheduler!r}: expected {protocol}://HOST:PORT, e.g. tcp://10.0.0.5:8786")


@contextlib.contextmanager
def _scheduler(scheduler: str | None):
    """dask's threaded scheduler (``None`` is yielded), a LocalCluster for this batch, or a running cluster."""
    if scheduler is None:
        from concurrent.futures import ThreadPoolExecutor

        import dask

        pool = ThreadPoolExecutor(max_workers=dask.system.CPU_COUNT)
        try:
            with dask.config.set(scheduler="threads", pool=pool):
                yield None
        finally:  # a Ctrl-C stops the main thread only: let the running tasks end before anything is removed
            pool.shutdown(wait=True, cancel_futures=True)
        return
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


def _compute(task: Any, client: Any, progress: bool) -> None:
    if client is None:
        import dask

        with _progress_bar(progress):
            dask.compute(task)
        return
    future = client.compute(task)
    if progress:
        from distributed import progress as distributed_progress

        distributed_progress(future)
    future.result()


@contextlib.contextmanager
def _progress_bar(progress: bool):
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            yield
    else:
        yield
