"""The tutorial scripts in examples/ run end to end (quick mode) and produce correct results.

Each script's ``main(out_dir, quick=True)`` runs once per module into a
temporary folder; the tests check its outputs against ground truth (the
known distortions, the generated 4D-STEM sample) and against NumPy /
scikit-image / SciPy oracles, and read every written file back.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi
from skimage import color, data

import napari_stacklab as sl

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def corner_error(matrix_a, matrix_b, shape) -> float:
    """Largest distance (pixels) between where two 3x3 transforms send the image corners."""
    rows, cols = shape[0] - 1, shape[1] - 1
    corners = np.array([[0, 0, 1], [0, cols, 1], [rows, 0, 1], [rows, cols, 1]], float).T
    return float(np.abs((np.asarray(matrix_a) @ corners)[:2] - (np.asarray(matrix_b) @ corners)[:2]).max())


# --- 1. compare a set of images ---------------------------------------------------------------


@pytest.fixture(scope="module")
def compare(tmp_path_factory):
    module = load_example("compare_images")
    out = tmp_path_factory.mktemp("compare")
    return module, out, module.main(out, quick=True)


def test_compare_inputs_are_tiffs_with_pixel_size(compare):
    module, out, _summary = compare
    for name in module.DISTORTIONS:
        image = sl.io.imread(out / "inputs" / f"{name}.tif")
        assert image.shape == (192, 192) and image.dtype == np.uint8
        assert image.scale == (0.5, 0.5) and image.units[0] in ("um", "micrometer")


def test_compare_equalizes_brightness_contrast_and_sharpness(compare):
    module, out, summary = compare
    names = list(module.DISTORTIONS)
    raw = [np.asarray(sl.io.imread(out / "inputs" / f"{n}.tif").data, np.float64) for n in names]
    equalized = [np.asarray(sl.io.imread(summary["files"][f"{n}_equalized"]).data, np.float64) for n in names]
    # before: means and contrasts differ by tens of grey levels
    assert np.ptp([r.mean() for r in raw]) > 50 and np.ptp([r.std() for r in raw]) > 40
    base = equalized[0]
    for image in equalized[1:]:
        assert abs(image.mean() - base.mean()) < 1e-3 * base.mean()
        # sharpening a blurred image to the base's sharpness raises its contrast a little
        assert abs(image.std() - base.std()) < 0.1 * base.std()
    sharpness = list(summary["sharpness"].values())
    raw_sharpness = [sl.equalize.laplacian_variance(r) for r in raw]
    assert np.ptp(sharpness) < 0.01 * sharpness[0] < np.ptp(raw_sharpness)


def test_compare_otsu_masks_match_scikit_image(compare):
    from skimage.filters import threshold_otsu

    module, _out, summary = compare
    for name in module.DISTORTIONS:
        equalized = np.asarray(sl.io.imread(summary["files"][f"{name}_equalized"]).data)
        mask = np.asarray(sl.io.imread(summary["files"][f"{name}_mask"]).data)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        oracle = equalized > threshold_otsu(equalized)
        assert np.mean(mask.astype(bool) != oracle) < 1e-3


def test_compare_ecc_recovers_the_known_affine_distortions(compare):
    _module, _out, summary = compare
    assert summary["base"] == "camera_base" and len(summary["images"]) == 3
    for name, info in summary["images"].items():
        assert corner_error(info["transform"], info["true_transform"], (192, 192)) < 0.1, name
        assert info["ecc_score"] > 0.99


def test_compare_alignment_raises_similarity_and_mask_overlap(compare):
    _module, _out, summary = compare
    base_mask = np.asarray(sl.io.imread(summary["files"]["camera_base_mask"]).data).astype(bool)

    def dice(a, b):
        return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())

    for name, info in summary["images"].items():
        assert info["similarity_after"] > 0.97 and info["similarity_after"] > info["similarity_before"] + 0.1
        before = np.asarray(sl.io.imread(summary["files"][f"{name}_mask"]).data).astype(bool)
        after = np.asarray(sl.io.imread(summary["files"][f"{name}_aligned_mask"]).data).astype(bool)
        interior = (slice(16, -16),) * 2  # away from the edges the warp leaves empty
        assert dice(after[interior], base_mask[interior]) > 0.95 > dice(before[interior], base_mask[interior])


def test_compare_heatmaps_are_in_range_and_warm_after_alignment(compare):
    _module, out, summary = compare
    base = np.asarray(sl.io.imread(summary["files"]["camera_base_equalized"]).data)
    for name, info in summary["images"].items():
        heat = sl.io.imread(summary["files"][f"{name}_similarity"])
        values = np.asarray(heat.data)
        assert heat.dtype == np.float32 and heat.shape == (192, 192) and heat.scale == (0.5, 0.5)
        assert values.min() >= -1 and values.max() <= 1
        unaligned = np.asarray(sl.io.imread(summary["files"][f"{name}_equalized"]).data)
        before = np.asarray(sl.register.similarity_map(unaligned, reference=base, window=15))
        assert values.mean() > before.mean() + 0.3
        assert np.isclose(values[values != 0].mean(), info["mean_heatmap"], atol=0.05)
        aligned = sl.io.imread(summary["files"][f"{name}_aligned"])
        assert aligned.dtype == np.float32 and aligned.shape == (192, 192) and aligned.units == heat.units
    assert json.loads((out / "summary.json").read_text())["images"].keys() == summary["images"].keys()


def test_compare_script_runs_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLES / "compare_images.py"), str(tmp_path), "--quick"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("similarity") == 3
    assert (tmp_path / "camera_rotated_similarity.tif").is_file()


# --- 2. prepare one image ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepare(tmp_path_factory):
    pytest.importorskip("pymatting")
    module = load_example("prepare_image")
    out = tmp_path_factory.mktemp("prepare")
    return module, out, module.main(out, quick=True)


def _panels(module, result) -> dict:
    import imageio.v3 as iio

    sheet = iio.imread(result["files"]["side_by_side"])
    size, gap = 256, 4
    assert sheet.shape == (2 * size + gap, 4 * size + 3 * gap, 3)
    out = {}
    for i, name in enumerate(result["panels"]):
        r, c = divmod(i, 4)
        out[name] = sheet[r * (size + gap) : r * (size + gap) + size, c * (size + gap) : c * (size + gap) + size]
    return out


def test_prepare_side_by_side_panels_match_oracles(prepare):
    module, _out, result = prepare
    original = data.astronaut()[::2, ::2]
    panels = _panels(module, result)
    assert result["panels"] == ["original", "bilateral", "saturation", "clahe", "sharpen", "gamma", "gain", "chain"]
    np.testing.assert_array_equal(panels["original"], original)
    # gain and gamma act on the brightest channel of each pixel, the others keep their ratio to it (hue kept)
    colour = original.astype(np.float64)
    value = colour.max(axis=-1, keepdims=True)
    ratio = np.divide(colour, value, out=np.zeros_like(colour), where=value > 0)
    np.testing.assert_allclose(panels["gain"], np.rint(np.minimum(1.3 * value, 255) * ratio), atol=1)
    np.testing.assert_allclose(panels["gamma"], np.rint(255 * (value / 255) ** 0.7 * ratio), atol=1)
    hsv = color.rgb2hsv(original)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.6, 0, 1)
    np.testing.assert_allclose(panels["saturation"], np.rint(255 * color.hsv2rgb(hsv)), atol=1)
    gray = {name: color.rgb2gray(panel) for name, panel in panels.items()}
    # bilateral smoothing flattens texture (small local deviations) and keeps edges; sharpening adds detail
    texture = {name: np.median(np.abs(g - ndi.uniform_filter(g, 3))) for name, g in gray.items()}
    assert texture["bilateral"] < 0.5 * texture["original"]
    sharpness = {name: ndi.laplace(g).var() for name, g in gray.items()}
    assert sharpness["sharpen"] > 1.5 * sharpness["original"]
    # CLAHE raises local contrast: the mean absolute deviation from a local mean grows
    local = {name: np.abs(g - ndi.uniform_filter(g, 15)).mean() for name, g in gray.items()}
    assert local["clahe"] > 1.2 * local["original"]
    assert not np.array_equal(panels["chain"], panels["original"])


def test_prepare_alpha_matte_is_soft_only_in_the_unknown_band(prepare):
    module, _out, result = prepare
    matte = result["result"]
    alpha, trimap = matte["alpha"], matte["trimap"]
    assert alpha.shape == (256, 256) and alpha.min() >= 0 and alpha.max() <= 1
    np.testing.assert_allclose(alpha[trimap == 1], 1, atol=1e-6)
    np.testing.assert_allclose(alpha[trimap == 0], 0, atol=1e-6)
    band = trimap == 0.5
    assert band.sum() > 1000 and ((alpha[band] > 0.05) & (alpha[band] < 0.95)).sum() > 100
    # the band is the rough mask's edge widened by erode_size on both sides
    rough = module.rough_mask((256, 256)).astype(bool)
    edge = rough ^ ndi.binary_erosion(rough, border_value=1)
    assert band[edge].mean() > 0.95
    written = sl.io.imread(result["files"]["alpha"])
    assert written.dtype == np.float32
    np.testing.assert_allclose(np.asarray(written.data), alpha.astype(np.float32))


def test_prepare_saved_original_removed_and_subject(prepare):
    import imageio.v3 as iio

    _module, _out, result = prepare
    original = data.astronaut()[::2, ::2]
    alpha = result["result"]["alpha"]
    np.testing.assert_array_equal(iio.imread(result["files"]["original"]), original)
    removed = iio.imread(result["files"]["background_removed"])
    assert removed.shape == original.shape and removed.dtype == np.uint8
    np.testing.assert_array_equal(removed[alpha == 0], 255)  # white background
    np.testing.assert_array_equal(removed[alpha == 1], original[alpha == 1])
    expected = np.rint(alpha[..., None] * original + (1 - alpha[..., None]) * 255)
    np.testing.assert_allclose(removed, expected, atol=1)
    subject = iio.imread(result["files"]["subject"])
    crop = result["crop"]
    assert subject.shape == original[crop].shape[:2] + (4,)
    np.testing.assert_array_equal(subject[..., :3], original[crop])
    np.testing.assert_allclose(subject[..., 3], np.rint(alpha[crop] * 255), atol=1)


# --- 3. 4D-STEM ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stem(tmp_path_factory):
    module = load_example("stem_batch")
    out = tmp_path_factory.mktemp("stem")
    return module, out, module.main(out, quick=True)


def _truth(seed: int):
    return sl.datasets.stem4d(seed=seed, scan=16, detector=32)


def test_stem_scans_open_lazily_with_calibration(stem):
    da = pytest.importorskip("dask.array")
    _module, _out, result = stem
    first = result["first"]
    assert isinstance(first.data, da.Array)
    assert first.shape == (16, 16, 32, 32) and first.dtype == np.uint16
    assert all(chunks[-2:] == (32, 32) for chunks in [tuple(c[0] for c in first.data.chunks)])
    assert first.scale == (0.4, 0.4, 0.5, 0.5) and first.axis_labels == ("scan_y", "scan_x", "ky", "kx")
    np.testing.assert_array_equal(np.asarray(first.data), _truth(0).data)


def test_stem_mean_pattern_adf_and_com_against_numpy_and_truth(stem):
    _module, _out, result = stem
    truth = _truth(0)
    counts = truth.data.astype(np.float64)
    np.testing.assert_allclose(result["mean_pattern"], counts.mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(result["geometry"]["center"], truth.metadata["center"], atol=0.3)
    assert abs(result["geometry"]["bf_radius"] - truth.metadata["bf_radius"]) < 0.5

    params = result["adf_params"]
    ky, kx = np.mgrid[:32, :32]
    r = np.hypot(ky - params["center"][0], kx - params["center"][1])
    ring = (r >= params["inner"]) & (r <= params["outer"])
    np.testing.assert_allclose(result["adf"], (counts * ring).sum(axis=(2, 3)), rtol=1e-5)
    potential = truth.metadata["true_potential"]
    assert np.corrcoef(result["adf"].ravel(), potential.ravel())[0, 1] > 0.9  # particles bright in ADF

    com_y = np.empty((16, 16))
    com_x = np.empty((16, 16))
    for iy, ix in np.ndindex(16, 16):
        cy, cx = ndi.center_of_mass(counts[iy, ix])
        com_y[iy, ix], com_x[iy, ix] = cy - params["center"][0], cx - params["center"][1]
    np.testing.assert_allclose(result["com"]["com_y"], com_y, atol=1e-4)
    np.testing.assert_allclose(result["com"]["com_x"], com_x, atol=1e-4)
    deflection = truth.metadata["true_deflection"]
    assert np.corrcoef(com_y.ravel(), deflection[..., 0].ravel())[0, 1] > 0.9
    assert np.corrcoef(com_x.ravel(), deflection[..., 1].ravel())[0, 1] > 0.9


def test_stem_recipes_are_plain_yaml(stem):
    import yaml

    _module, _out, result = stem
    document = yaml.safe_load(Path(result["recipes"]["adf"]).read_text())
    assert document == {"stacklab": 1, "steps": [{"op": "annular_dark_field", "params": result["adf_params"]}]}
    assert sl.Recipe.load(result["recipes"]["com"]).steps[0]["op"] == "center_of_mass"


def _in_process(recipe_path, scan_path):
    """The recipe run in this process on one scan, computed."""
    out = sl.Recipe.load(recipe_path).run(sl.io.imread(scan_path, lazy=True).data)
    return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out)


def test_stem_cli_outputs_equal_the_in_process_recipe(stem):
    _module, _out, result = stem
    assert [p.name for p in result["cli_outputs"]] == ["scan_0.zarr", "scan_1.zarr", "scan_2.zarr"]
    for path, scan in zip(result["cli_outputs"], result["scans"]):
        written = sl.io.imread(path)
        np.testing.assert_allclose(np.asarray(written.data), _in_process(result["recipes"]["adf"], scan), rtol=1e-6)
        assert written.shape == (16, 16) and written.scale == (0.4, 0.4) and written.units == ("nm", "nm")
        record = zarr.open_group(str(path), mode="r").attrs["stacklab"]
        assert record["steps"] == [{"op": "annular_dark_field", "params": result["adf_params"]}]
    np.testing.assert_allclose(np.asarray(sl.io.imread(result["cli_outputs"][0]).data), result["adf"], rtol=1e-6)


def test_stem_run_batch_outputs_equal_the_in_process_recipe(stem):
    _module, _out, result = stem
    adf_paths, com_paths = result["batch_outputs"]["adf"], result["batch_outputs"]["com"]
    assert [p.name for p in com_paths] == [f"scan_{i}_com_{c}.zarr" for i in range(3) for c in "yx"]
    for i, scan in enumerate(result["scans"]):
        np.testing.assert_allclose(np.asarray(sl.io.imread(adf_paths[i]).data),
                                   _in_process(result["recipes"]["adf"], scan), rtol=1e-6)
        expected = _in_process(result["recipes"]["com"], scan)
        for c in "yx":
            written = sl.io.imread(com_paths[2 * i + "yx".index(c)])
            np.testing.assert_allclose(np.asarray(written.data), expected[f"com_{c}"], rtol=1e-6, atol=1e-6)
            assert written.scale == (0.4, 0.4)
    # a different scan gives a different image: the batch did not repeat the first result
    assert not np.allclose(np.asarray(sl.io.imread(adf_paths[1]).data), result["adf"])
