"""Batch runs: results equal the in-process recipe, metadata survive, outputs are honest (complete or absent)."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr
from skimage import data as skdata

from napari_stacklab import batch, io, stem
from napari_stacklab.batch import COMPLETE_KEY, BatchError, SkippedOutputWarning, run_batch
from napari_stacklab.recipe import Recipe

RECIPE = Recipe(steps=[{"op": "gaussian", "params": {"sigma": 1.5}}, {"op": "median", "params": {"size": 3}}])


@pytest.fixture
def tiffs(tmp_path):
    """Two small calibrated stacks cut from skimage's camera and coins."""
    paths = []
    for name, image in [("camera", skdata.camera()), ("coins", skdata.coins())]:
        stack = np.stack([image[:96, :128], image[50:146, 60:188]])
        path = tmp_path / "in" / f"{name}.tif"
        path.parent.mkdir(exist_ok=True)
        io.imwrite(path, io.Image(stack, scale=(3.0, 0.25, 0.25), units=("s", "um", "um"), axis_labels=("t", "y", "x")))
        paths.append(path)
    return paths


def _expected(path):
    return np.asarray(RECIPE.run(io.imread(path, lazy=False).data))


def test_batch_on_a_local_cluster_equals_the_in_process_result(tiffs, tmp_path):
    outputs = run_batch(RECIPE, tiffs, tmp_path / "out", scheduler="local", progress=False)
    assert [p.name for p in outputs] == ["camera.zarr", "coins.zarr"]
    for path, out in zip(tiffs, outputs):
        back = io.imread(out)
        np.testing.assert_allclose(np.asarray(back.data), _expected(path), rtol=1e-6)
        assert back.scale == (3.0, 0.25, 0.25) and back.units == ("s", "um", "um")
        assert back.axis_labels == ("t", "y", "x")
        record = back.metadata["attrs"]["stacklab"]
        assert [s["op"] for s in record["steps"]] == ["gaussian", "median"]
        assert Recipe.from_metadata({"stacklab": record}) == RECIPE


def test_tiff_output_with_sidecar_and_threaded_scheduler(tiffs, tmp_path, capsys):
    recipe_file = RECIPE.save(tmp_path / "recipe.yaml")
    outputs = run_batch(recipe_file, tiffs[:1], tmp_path / "out", fmt="tiff", device="cpu", progress=True)
    assert outputs == [tmp_path / "out" / "camera.tif"]
    back = io.imread(outputs[0], lazy=False)
    np.testing.assert_allclose(back.data, _expected(tiffs[0]), rtol=1e-6)
    assert back.scale == pytest.approx((3.0, 0.25, 0.25)) and back.units == ("s", "um", "um")
    sidecar = json.loads((tmp_path / "out" / "camera.tif.json").read_text())
    assert sidecar["stacklab"]["source"] == "camera"
    assert "[####" in capsys.readouterr().out  # dask's ProgressBar


def test_existing_outputs_are_skipped_never_overwritten(tiffs, tmp_path):
    out = tmp_path / "out"
    first = run_batch(RECIPE, tiffs[:1], out, progress=False)

    def stamps(folder):
        return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}

    stamp = stamps(first[0])
    assert stamp
    with pytest.warns(SkippedOutputWarning, match="camera.zarr is complete"):
        again = run_batch(RECIPE, tiffs, out, progress=False)
    assert again == [out / "camera.zarr", out / "coins.zarr"]
    assert again.skipped == [out / "camera.zarr"] and again.written == [out / "coins.zarr"]
    assert stamps(first[0]) == stamp
    np.testing.assert_allclose(np.asarray(io.imread(again[1]).data), _expected(tiffs[1]), rtol=1e-6)


def test_4dstem_recipe_writes_one_output_per_image(tmp_path, rng):
    pytest.importorskip("h5py")
    from rsciio.hspy import file_writer

    scan = rng.poisson(5, (4, 5, 12, 12)).astype(np.uint16)
    axes = [{"name": n, "size": s, "scale": sc, "offset": 0.0, "units": u, "navigate": nav}
            for n, s, sc, u, nav in [("y", 4, 2.0, "nm", True), ("x", 5, 2.0, "nm", True),
                                     ("ky", 12, 0.5, "mrad", False), ("kx", 12, 0.5, "mrad", False)]]
    path = tmp_path / "scan.hspy"
    file_writer(str(path), {"data": scan, "axes": axes, "metadata": {"General": {"title": "scan"}},
                            "original_metadata": {}, "tmp_parameters": {}, "attributes": {"_lazy": False},
                            "learning_results": {}, "models": {}, "package_info": {"name": "x", "version": "0"}})
    com = Recipe(steps=[{"op": "center_of_mass", "params": {"calibration": 0.5}}])
    outputs = run_batch(com, [path], tmp_path / "out", progress=False)
    assert [p.name for p in outputs] == ["scan_com_y.zarr", "scan_com_x.zarr"]
    expected = stem.center_of_mass(scan, calibration=0.5)
    for out, key in zip(outputs, ["com_y", "com_x"]):
        back = io.imread(out)
        np.testing.assert_allclose(np.asarray(back.data), expected[key], rtol=1e-5)
        assert back.scale == (2.0, 2.0) and back.units == ("nm", "nm")
    (pattern,) = run_batch(Recipe(steps=[{"op": "mean_pattern"}]), [path], tmp_path / "mean", progress=False)
    back = io.imread(pattern)
    np.testing.assert_allclose(np.asarray(back.data), scan.mean(axis=(0, 1)), rtol=1e-6)
    assert back.units == ("mrad", "mrad") and back.axis_labels == ("ky", "kx")


def test_invalid_batches_fail_before_running(tiffs, tmp_path):
    with pytest.raises(ValueError, match="fmt must be one of"):
        run_batch(RECIPE, tiffs, tmp_path / "o", fmt="png")
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        run_batch(RECIPE, [tiffs[0], tmp_path / "missing.tif"], tmp_path / "o")
    twin = tmp_path / "other" / "camera.tif"
    twin.parent.mkdir()
    twin.write_bytes(tiffs[0].read_bytes())
    with pytest.raises(ValueError, match="same output name"):
        run_batch(RECIPE, [tiffs[0], twin], tmp_path / "o")
    with pytest.raises(ValueError, match="inputs is empty"):
        run_batch(RECIPE, [], tmp_path / "o")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


# ---------------------------------------------------------------- honest outputs (issue 19)

def _visible(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _temporaries(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".stacklab-")]


def _complete(path):
    return (zarr.open_group(str(path), mode="r").attrs.get(COMPLETE_KEY) or {}).get("complete") is True


def test_outputs_are_marked_complete_and_no_temporaries_are_left(tiffs, tmp_path):
    out = tmp_path / "out"
    outputs = run_batch(RECIPE, tiffs, out, progress=False)
    assert all(_complete(p) for p in outputs)
    assert _visible(out) == ["camera.zarr", "coins.zarr"] and not _temporaries(out)
    (tiff,) = run_batch(RECIPE, tiffs[:1], tmp_path / "tif", fmt="tiff", progress=False)
    sidecar = json.loads(tiff.with_name("camera.tif.json").read_text())
    assert sidecar[COMPLETE_KEY]["complete"] is True and sidecar[COMPLETE_KEY]["input"] == str(tiffs[0])


def _corrupt_zarr(path):
    sl_image = np.arange(3 * 32 * 32, dtype=np.float32).reshape(3, 32, 32)
    io.imwrite(path, sl_image)
    chunk = next(p for p in (path / "0").rglob("*") if p.is_file() and not p.name.startswith("."))
    chunk.write_bytes(b"garbage" * 10)


def test_an_input_failing_at_compute_time_leaves_nothing_and_the_batch_goes_on(tiffs, tmp_path):
    broken = tmp_path / "in" / "broken.zarr"
    _corrupt_zarr(broken)
    out = tmp_path / "out"
    with pytest.raises(BatchError, match="broken.zarr") as info:
        run_batch(RECIPE, [tiffs[0], broken, tiffs[1]], out, progress=False)
    result = info.value.result
    assert result == [out / "camera.zarr", out / "coins.zarr"] == result.written
    assert list(result.failed) == [broken] and "cannot read the zarr array" in str(result.failed[broken])
    assert _visible(out) == ["camera.zarr", "coins.zarr"] and not _temporaries(out)
    np.testing.assert_allclose(np.asarray(io.imread(out / "coins.zarr").data), _expected(tiffs[1]), rtol=1e-6)


def test_an_incomplete_output_is_redone_and_a_foreign_one_never_touched(tiffs, tmp_path):
    out = tmp_path / "out"
    (first,) = run_batch(RECIPE, tiffs[:1], out, progress=False)
    # what an interrupted older version left: the store, its provenance, zeros, no completion marker
    group = zarr.open_group(str(first), mode="r+")
    del group.attrs[COMPLETE_KEY]
    group["0"][...] = 0
    foreign = out / "coins.zarr"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(BatchError, match="coins.zarr exists and is not a complete stacklab output") as info:
        run_batch(RECIPE, tiffs, out, progress=False)
    assert info.value.result.written == [first]
    np.testing.assert_allclose(np.asarray(io.imread(first).data), _expected(tiffs[0]), rtol=1e-6)
    assert _complete(first)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"] and not _temporaries(out)


@pytest.mark.parametrize("dangling", [True, False])
def test_outputs_are_never_written_through_symlinks(tiffs, tmp_path, dangling):
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere" / "camera.zarr"
    elsewhere.parent.mkdir()
    if not dangling:
        elsewhere.mkdir()
    (out / "camera.zarr").symlink_to(elsewhere)
    with pytest.raises(BatchError, match="symbolic link"):
        run_batch(RECIPE, tiffs, out, progress=False)
    assert os.path.islink(out / "camera.zarr") and os.readlink(out / "camera.zarr") == str(elsewhere)
    assert (not elsewhere.exists()) if dangling else not any(elsewhere.iterdir())
    assert _complete(out / "coins.zarr")


def test_input_dot_writes_inside_the_output_folder(tiffs, tmp_path, monkeypatch):
    monkeypatch.chdir(tiffs[0].parent)  # the folder "in" of two same-size stacks... made same size here
    io.imwrite("extra.tif", io.imread(tiffs[0]).data[:, :50, :50])
    for path in tiffs:
        os.replace(path, tmp_path / path.name)
    before = sorted(os.listdir(tmp_path))
    (output,) = run_batch(RECIPE, ["."], "out", progress=False)
    assert output == Path("out") / "in.zarr" and _complete(output)
    assert sorted(os.listdir(tmp_path)) == before, "nothing may appear outside the output folder"
    assert _visible(tiffs[0].parent) == ["extra.tif", "out"]


def test_an_output_folder_holding_the_inputs_never_reports_an_input_as_output(tiffs, tmp_path):
    folder = tiffs[0].parent
    stored = folder / "stored.zarr"
    io.imwrite(stored, io.imread(tiffs[0]).data)
    fingerprint = {p: p.read_bytes() for p in stored.rglob("*") if p.is_file()}
    with pytest.raises(BatchError, match="would be the input itself") as info:
        run_batch(RECIPE, [tiffs[0], stored], folder, progress=False)
    assert info.value.result == [folder / "camera.zarr"]
    assert {p: p.read_bytes() for p in stored.rglob("*") if p.is_file()} == fingerprint


def test_a_complete_output_that_appears_meanwhile_is_never_replaced(tiffs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    (theirs,) = run_batch(RECIPE, tiffs[:1], tmp_path / "theirs", progress=False)
    stage = batch._stage_zarr

    def another_batch_wins(staged, *args, **kwargs):
        stage(staged, *args, **kwargs)
        shutil.copytree(theirs, out / staged.name)  # finished by someone else while we computed

    monkeypatch.setattr(batch, "_stage_zarr", another_batch_wins)
    with pytest.raises(BatchError, match="appeared, complete, while this batch computed it"):
        run_batch(RECIPE, tiffs[:1], out, progress=False)
    kept = {p.relative_to(out): p.read_bytes() for p in (out / "camera.zarr").rglob("*") if p.is_file()}
    assert kept == {p.relative_to(theirs.parent): p.read_bytes() for p in theirs.rglob("*") if p.is_file()}
    assert not _temporaries(out)


@pytest.mark.parametrize("address, words", [
    ("http://127.0.0.1:8787", "dashboard"),
    ("https://cluster.example.org", "dashboard"),
    ("ftp://host:21", "not a dask scheduler address"),
    ("tcp://host", "HOST:PORT"),
    ("tcp://host:abc", "HOST:PORT"),
])
def test_scheduler_addresses_are_checked_before_anything_runs(tiffs, tmp_path, address, words):
    with pytest.raises(ValueError, match=words):
        run_batch(RECIPE, tiffs, tmp_path / "out", scheduler=address, progress=False)
    assert not (tmp_path / "out").exists()
    batch.check_scheduler("10.0.0.5:8786")
    batch.check_scheduler("tcp://10.0.0.5:8786")


# ---------------------------------------------------------------- real processes: Ctrl-C, full disk, two batches


def _slow_inputs(folder, count=4):
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        paths.append(folder / f"s{i}.tif")
        io.imwrite(paths[-1], rng.random((6, 384, 384)).astype(np.float32))
    recipe = Recipe(steps=[{"op": "median", "params": {"size": 7}}]).save(folder / "slow.yaml")
    return recipe, paths


def _cli(*args, preexec_fn=None, **kwargs):
    def start():
        # Ctrl-C as from a terminal: a child inherits an ignored SIGINT (something in a long pytest session
        # may ignore it), and Python then never raises KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if preexec_fn is not None:
            preexec_fn()

    return subprocess.Popen([sys.executable, "-m", "napari_stacklab.cli", *map(str, args)], preexec_fn=start,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _words(text, word):
    return sorted(Path(line.split()[1]).name for line in text.splitlines() if line.startswith(word + " "))


def test_ctrl_c_mid_batch_leaves_only_complete_outputs_and_a_rerun_resumes(tmp_path):
    recipe, inputs = _slow_inputs(tmp_path / "in")
    out = tmp_path / "out"
    child = _cli("run", recipe, *inputs, "-o", out, "-q")
    first = child.stdout.readline()  # "wrote .../s0.zarr": the batch is under way
    assert first.startswith("wrote"), child.stderr.read()
    child.send_signal(signal.SIGINT)
    rest, err = child.communicate(timeout=300)
    assert child.returncode == 130, err
    assert "interrupted" in err and "run the same command again to resume" in err and "Traceback" not in err
    done = _visible(out)
    assert 1 <= len(done) < len(inputs), "the interrupt must land mid-batch"
    assert all(_complete(out / name) for name in done) and not _temporaries(out)

    again = subprocess.run([sys.executable, "-m", "napari_stacklab.cli", "run", recipe, *inputs, "-o", out, "-q"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert _words(again.stdout, "skipped") == done
    assert sorted(_words(again.stdout, "wrote") + done) == [f"s{i}.zarr" for i in range(len(inputs))]
    expected = Recipe.load(recipe)
    for path in inputs:
        np.testing.assert_allclose(np.asarray(io.imread(out / f"{path.stem}.zarr").data),
                                   np.asarray(expected.run(io.imread(path).data)), rtol=1e-6)


def test_a_full_disk_fails_that_input_cleanly_and_keeps_the_others(tmp_path):
    """RLIMIT_FSIZE stands in for a full disk: writing a chunk past it fails with EFBIG, as ENOSPC would."""
    folder = tmp_path / "in"
    folder.mkdir()
    small, big = folder / "small.tif", folder / "big.tif"
    io.imwrite(small, np.ones((2, 32, 32), np.float32))
    io.imwrite(big, np.random.default_rng(1).random((2, 384, 384)).astype(np.float32))  # 1.1 MiB chunk
    recipe = Recipe(steps=[{"op": "gaussian", "params": {"sigma": 0.5}}]).save(folder / "r.yaml")
    limit = 256 * 2**10

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "out"
    child = _cli("run", recipe, big, small, "-o", out, "-q", preexec_fn=small_disk)
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 1, stderr
    assert f"{big}: failed: the disk is full or the file size limit was reached" in stderr
    assert "Traceback" not in stderr
    assert _words(stdout, "wrote") == ["small.zarr"]
    assert _visible(out) == ["small.zarr"] and not _temporaries(out)
    assert _complete(out / "small.zarr")


def test_two_concurrent_batches_never_replace_each_others_outputs(tmp_path):
    recipe, inputs = _slow_inputs(tmp_path / "in", count=3)
    out = tmp_path / "out"
    children = [_cli("run", recipe, *inputs, "-o", out, "-q") for _ in range(2)]
    results = [child.communicate(timeout=600) for child in children]
    wrote = [_words(stdout, "wrote") for stdout, _ in results]
    names = [f"s{i}.zarr" for i in range(len(inputs))]
    # every output was written by exactly one batch; the other skipped it or refused to replace it
    assert sorted(wrote[0] + wrote[1]) == names, results
    for (stdout, stderr), child, theirs in zip(results, children, wrote[::-1]):
        refused = [name for name in theirs if name not in _words(stdout, "skipped")]
        for name in refused:
            assert f"{name} appeared" in stderr or f"{name} was completed by another batch" in stderr, stderr
        assert child.returncode == (1 if refused else 0), stderr
        assert "Traceback" not in stderr
    assert _visible(out) == names and not _temporaries(out)
    expected = Recipe.load(recipe)
    for path in inputs:
        assert _complete(out / f"{path.stem}.zarr")
        np.testing.assert_allclose(np.asarray(io.imread(out / f"{path.stem}.zarr").data),
                                   np.asarray(expected.run(io.imread(path).data)), rtol=1e-6)


def test_a_resumed_batch_does_not_rerun_the_recipe_on_complete_outputs(tiffs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_batch(RECIPE, tiffs[:1], out, progress=False)
    opened = []
    real_imread = batch.imread
    monkeypatch.setattr(batch, "imread", lambda path, **kw: opened.append(Path(path).name) or real_imread(path, **kw))
    with pytest.warns(SkippedOutputWarning):
        again = run_batch(RECIPE, tiffs, out, progress=False)
    assert opened == ["coins.tif"] and again.skipped == [out / "camera.zarr"]
