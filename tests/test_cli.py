"""The ``stacklab`` command line, run as a user would (real processes, real files)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from skimage import data

import napari_stacklab as sl


def stacklab(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "napari_stacklab.cli", *map(str, args)],
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


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
    written = [line for line in result.stdout.splitlines() if line.strip()]
    assert [os.path.basename(p) for p in written] == ["camera.tif", "moon.tif"]
    for source, target in zip(tiffs, written):
        got = sl.io.imread(target)
        expected = sl.Recipe.load(recipe).run(sl.io.imread(source).data)
        np.testing.assert_array_equal(np.asarray(got.data).astype(bool), np.asarray(expected))
        assert got.scale[-2:] == (0.25, 0.25) and got.units[-1] == "um"


def test_info_describes_files_and_fails_on_bad_ones(tmp_path, tiffs):
    result = stacklab("info", tiffs[0])
    assert "(2, 512, 512)" in result.stdout and "uint8" in result.stdout and "0.25 um" in result.stdout
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    result = stacklab("info", tiffs[0], bad, check=False)
    assert result.returncode != 0
    assert "bad.tif" in result.stderr and "(2, 512, 512)" in result.stdout


def test_ops_lists_every_operation_and_explains_one():
    listing = stacklab("ops").stdout
    for op in sl.catalog.operations():
        assert op.name in listing
    detail = stacklab("ops", "gaussian").stdout
    assert "sigma = 1.0" in detail and "[0, 1000]" in detail
    unknown = stacklab("ops", "gausian", check=False)
    assert unknown.returncode == 2 and "known operations" in unknown.stderr


def test_convert_never_overwrites_without_asking(tmp_path, tiffs):
    target = tmp_path / "copy.tif"
    stacklab("convert", tiffs[0], target)
    np.testing.assert_array_equal(np.asarray(sl.io.imread(target).data), np.asarray(sl.io.imread(tiffs[0]).data))
    before = target.read_bytes()
    refused = stacklab("convert", tiffs[1], target, check=False)
    assert refused.returncode == 2 and "exists" in refused.stderr
    assert target.read_bytes() == before


def test_bad_recipe_is_a_clear_error(tmp_path, tiffs):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stacklab: 1\nsteps: [{op: gaussian, params: {sigma: -1}}]\n")
    result = stacklab("run", recipe, tiffs[0], "-o", tmp_path / "out", check=False)
    assert result.returncode == 2 and "sigma must be >= 0" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
