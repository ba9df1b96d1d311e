"""The ``stacklab`` command line, run as a user would (real processes, real files)."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from skimage import data

import napari_stacklab as sl
from napari_stacklab._napari._layers import _labels_data


def stacklab(*args, check=True, cwd=None, timeout=300):
    result = subprocess.run([sys.executable, "-m", "napari_stacklab.cli", *map(str, args)],
                            capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _lines(text, word):
    return [line.split(" ", 1)[1].split(" (")[0] for line in text.splitlines() if line.startswith(word + " ")]


def _no_python_noise(stderr):
    """What a user should never see: a traceback, or a warning in Python's file:line format."""
    assert "Traceback" not in stderr, stderr
    assert "Warning:" not in stderr and "warnings.warn" not in stderr, stderr


@pytest.fixture
def tiffs(tmp_path):
    paths = []
    for name, image in [("camera", data.camera()), ("moon", data.moon())]:
        path = tmp_path / f"{name}.tif"
        sl.io.imwrite(path, np.stack([image, image[::-1]]), scale=(1.0, 0.25, 0.25), units=("s", "um", "um"),
                      axis_labels=("t", "y", "x"))
        paths.append(path)
    return paths


def test_run_replays_a_recipe_over_files(tmp_path, tiffs):
    recipe = sl.Recipe(steps=[{"op": "gaussian", "params": {"sigma": 2}},
                              {"op": "threshold", "params": {"method": "otsu"}}]).save(tmp_path / "r.yaml")
    out = tmp_path / "out"
    result = stacklab("run", recipe, *tiffs, "-o", out, "--format", "tiff", "-q")
    written = _lines(result.stdout, "wrote")
    assert [os.path.basename(p) for p in written] == ["camera.tif", "moon.tif"]
    assert "2 written, 0 skipped (already complete), 0 failed" in result.stderr
    for source, target in zip(tiffs, written):
        got = sl.io.imread(target)
        expected = sl.Recipe.load(recipe).run(sl.io.imread(source).data)
        np.testing.assert_array_equal(np.asarray(got.data).astype(bool), np.asarray(expected))
        assert got.scale[-2:] == (0.25, 0.25) and got.units[-1] == "um"


@pytest.mark.parametrize("fmt", ["tiff", "zarr"])
def test_masks_are_saved_as_uint8_like_the_gui_gives_them(tmp_path, tiffs, fmt):
    recipe = sl.Recipe(steps=[{"op": "threshold", "params": {"method": "otsu"}}]).save(tmp_path / "r.yaml")
    (target,) = _lines(stacklab("run", recipe, tiffs[0], "-o", tmp_path / "out", "--format", fmt, "-q").stdout,
                       "wrote")
    saved = np.asarray(sl.io.imread(target).data)
    mask = sl.segment.threshold(sl.io.imread(tiffs[0]).data, method="otsu")
    gui = _labels_data(mask)  # what the napari widget turns a mask into (a Labels layer) and saves
    assert saved.dtype == gui.dtype == np.uint8
    np.testing.assert_array_equal(saved, np.asarray(gui))


def test_rerun_reports_skipped_outputs_as_skipped_without_python_warnings(tmp_path, tiffs):
    recipe = sl.Recipe(steps=[{"op": "gaussian", "params": {"sigma": 1}}]).save(tmp_path / "r.yaml")
    stacklab("run", recipe, tiffs[0], "-o", tmp_path / "out", "-q")
    again = stacklab("run", recipe, *tiffs, "-o", tmp_path / "out", "-q")
    assert [os.path.basename(p) for p in _lines(again.stdout, "skipped")] == ["camera.zarr"]
    assert [os.path.basename(p) for p in _lines(again.stdout, "wrote")] == ["moon.zarr"]
    assert "1 written, 1 skipped" in again.stderr
    _no_python_noise(again.stderr)


def test_a_recipe_without_the_version_line_runs_with_a_note(tmp_path, tiffs):
    recipe = tmp_path / "hand.yaml"
    recipe.write_text("steps:\n  - op: gaussian\n    params: {sigma: 1}\n")
    result = stacklab("run", recipe, tiffs[0], "-o", tmp_path / "out", "-q")
    assert "note:" in result.stderr and "no 'stacklab: 1' line" in result.stderr
    _no_python_noise(result.stderr)
    assert len(_lines(result.stdout, "wrote")) == 1


def test_failed_inputs_are_reported_per_file_and_the_batch_goes_on(tmp_path):
    camera = data.camera().astype(np.float32)
    good = []
    for name, (dy, dx) in {"first": (2, 1), "second": (-1, 3)}.items():
        good.append(tmp_path / f"{name}.tif")
        sl.io.imwrite(good[-1], np.stack([camera[100:300, 100:300], camera[100 + dy:300 + dy, 100 + dx:300 + dx]]))
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff at all" * 20)
    blank = tmp_path / "blank.tif"
    sl.io.imwrite(blank, np.zeros((3, 64, 64), np.float32))  # ECC cannot align constant frames (ECCError)
    recipe = sl.Recipe(steps=[{"op": "align_stack", "params": {}}]).save(tmp_path / "r.yaml")
    result = stacklab("run", recipe, good[0], bad, blank, good[1], "-o", tmp_path / "out", "-q", check=False)
    assert result.returncode == 1, result.stderr
    assert [os.path.basename(p) for p in _lines(result.stdout, "wrote")] == ["first.zarr", "second.zarr"]
    assert f"{bad}: failed" in result.stderr and f"{blank}: failed" in result.stderr
    assert "2 written, 0 skipped (already complete), 2 failed" in result.stderr
    _no_python_noise(result.stderr)
    assert "ECC" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["first.zarr", "second.zarr"]


def test_an_http_scheduler_address_is_refused_with_a_hint(tmp_path, tiffs):
    recipe = sl.Recipe(steps=[{"op": "gaussian", "params": {"sigma": 1}}]).save(tmp_path / "r.yaml")
    start = time.perf_counter()
    result = stacklab("run", recipe, tiffs[0], "-o", tmp_path / "out", "--scheduler", "http://127.0.0.1:8787",
                      check=False)
    assert result.returncode == 2 and "not a dask scheduler address" in result.stderr
    assert "dashboard" in result.stderr and "allocate" not in result.stderr
    assert time.perf_counter() - start < 60
    _no_python_noise(result.stderr)


def test_info_describes_files_and_fails_on_bad_ones(tmp_path, tiffs):
    result = stacklab("info", tiffs[0])
    assert "(2, 512, 512)" in result.stdout and "uint8" in result.stdout and "0.25 um" in result.stdout
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    result = stacklab("info", tiffs[0], bad, check=False)
    assert result.returncode != 0
    assert "bad.tif" in result.stderr and "(2, 512, 512)" in result.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_tif_never_hangs_info_or_run(tmp_path, tiffs):
    fifo = tmp_path / "stream.tif"
    os.mkfifo(fifo)
    info = stacklab("info", fifo, check=False, timeout=60)
    assert info.returncode != 0 and "FIFO" in info.stderr
    recipe = sl.Recipe(steps=[{"op": "gaussian", "params": {"sigma": 1}}]).save(tmp_path / "r.yaml")
    run = stacklab("run", recipe, fifo, tiffs[0], "-o", tmp_path / "out", "-q", check=False, timeout=120)
    assert run.returncode == 1 and "FIFO" in run.stderr
    assert [os.path.basename(p) for p in _lines(run.stdout, "wrote")] == ["camera.zarr"]
    recipe_fifo = tmp_path / "recipe.yaml"
    os.mkfifo(recipe_fifo)
    run = stacklab("run", recipe_fifo, tiffs[0], "-o", tmp_path / "out2", check=False, timeout=60)
    assert run.returncode == 2 and "FIFO" in run.stderr


def test_ops_lists_every_operation_and_explains_one():
    listing = stacklab("ops").stdout
    for op in sl.catalog.operations():
        assert op.name in listing
    detail = stacklab("ops", "gaussian").stdout
    assert "sigma = 1.0" in detail and "[0, 1000]" in detail
    unknown = stacklab("ops", "gausian", check=False)
    assert unknown.returncode == 2 and "known operations" in unknown.stderr


def test_ops_into_a_closed_pipe_ends_cleanly():
    """``stacklab ops -v | head``: the reader leaves early; no 'Broken pipe' error, status 0."""
    child = subprocess.Popen([sys.executable, "-m", "napari_stacklab.cli", "ops", "-v"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.stdout.readline()
    child.stdout.close()  # as `head -1` does after its line
    stderr = child.stderr.read()
    assert child.wait(timeout=120) == 0, stderr
    assert "Broken pipe" not in stderr and "Errno 32" not in stderr and "Exception ignored" not in stderr, stderr


def test_convert_says_what_it_wrote_and_never_overwrites_without_asking(tmp_path, tiffs):
    target = tmp_path / "copy.tif"
    done = stacklab("convert", tiffs[0], target)
    assert done.stdout.startswith(f"wrote {target}") and "None" not in done.stdout
    np.testing.assert_array_equal(np.asarray(sl.io.imread(target).data), np.asarray(sl.io.imread(tiffs[0]).data))
    before = target.read_bytes()
    refused = stacklab("convert", tiffs[1], target, check=False)
    assert refused.returncode == 2 and "exists" in refused.stderr and "--overwrite" in refused.stderr
    assert "overwrite=True" not in refused.stderr
    assert target.read_bytes() == before
    stacklab("convert", tiffs[1], target, "--overwrite")
    assert target.read_bytes() != before


def test_bad_recipe_is_a_clear_error(tmp_path, tiffs):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stacklab: 1\nsteps: [{op: gaussian, params: {sigma: -1}}]\n")
    result = stacklab("run", recipe, tiffs[0], "-o", tmp_path / "out", check=False)
    assert result.returncode == 2 and "sigma must be >= 0" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_choices_come_from_the_vocabularies():
    from napari_stacklab._backend import DEVICES
    from napari_stacklab.batch import FORMATS
    from napari_stacklab.cli import build_parser

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    choices = {action.dest: action.choices for action in run._actions if action.choices}
    assert tuple(choices["format"]) == FORMATS and tuple(choices["device"]) == DEVICES


def test_run_takes_the_images_a_recipe_names(tmp_path, tiffs):
    """A step that uses a second image records its name; ``--image NAME=FILE`` gives its file."""
    recipe = sl.Recipe(steps=[{"op": "match_histograms", "params": {"reference": {"layer": "camera"}}}])
    saved = recipe.save(tmp_path / "r.yaml")
    missing = stacklab("run", saved, tiffs[1], "-o", tmp_path / "none", "-q", check=False)
    assert missing.returncode == 2 and "--image 'camera'=FILE" in missing.stderr
    _no_python_noise(missing.stderr)
    assert not (tmp_path / "none" / "moon.zarr").exists()
    result = stacklab("run", saved, tiffs[1], "-o", tmp_path / "out", "--format", "tiff", "-q",
                      "--image", f"camera={tiffs[0]}")
    got = sl.io.imread(_lines(result.stdout, "wrote")[0])
    expected = recipe.run(sl.io.imread(tiffs[1]).data, inputs={"camera": sl.io.imread(tiffs[0]).data})
    np.testing.assert_allclose(np.asarray(got.data), np.asarray(expected), rtol=1e-6)
    bad = stacklab("run", saved, tiffs[1], "-o", tmp_path / "out2", "--image", "camera", check=False)
    assert bad.returncode == 2 and "NAME=FILE" in bad.stderr
