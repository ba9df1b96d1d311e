"""Batch runs: results equal the in-process recipe, metadata survive, nothing is overwritten."""

import json
import warnings

import numpy as np
import pytest
from skimage import data as skdata

from napari_stacklab import io, stem
from napari_stacklab.batch import SkippedOutputWarning, run_batch
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
    with pytest.warns(SkippedOutputWarning, match="camera.zarr exists"):
        again = run_batch(RECIPE, tiffs, out, progress=False)
    assert again == [out / "camera.zarr", out / "coins.zarr"]
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
