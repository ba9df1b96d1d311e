import os
import time

import dask.array as da
import numpy as np
import pytest
import yaml

import napari_stacklab as sl
from napari_stacklab.recipe import PROVENANCE_KEY, Recipe, RecipeWarning, provenance

STEPS = [{"op": "gaussian", "params": {"sigma": 2}}, {"op": "threshold", "params": {"method": "otsu"}}]


def test_yaml_round_trip(tmp_path):
    rec = Recipe(steps=STEPS)
    path = rec.save(tmp_path / "r.yaml")
    assert yaml.safe_load(path.read_text()) == {"stacklab": 1, "steps": STEPS}
    assert Recipe.load(path) == rec


def test_save_refuses_to_overwrite(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("precious")
    with pytest.raises(FileExistsError):
        Recipe(steps=STEPS).save(path)
    assert path.read_text() == "precious"
    Recipe(steps=STEPS).save(path, overwrite=True)
    assert Recipe.load(path).steps == STEPS


def test_run_equals_calling_the_api(camera_stack):
    expected = sl.segment.threshold(sl.filters.gaussian(camera_stack, sigma=2), method="otsu")
    np.testing.assert_array_equal(Recipe(steps=STEPS).run(camera_stack), expected)


def test_run_is_lazy_and_carries_the_physical_frame(camera_stack):
    img = sl.io.Image(da.from_array(camera_stack, chunks=(1, 40, 40)), scale=(2.0, 0.1, 0.1),
                      units=("s", "um", "um"), axis_labels=("t", "y", "x"), name="cells")
    out = Recipe(steps=STEPS[:1]).run(img)
    assert isinstance(out.data, da.Array)
    assert (out.scale, out.units, out.axis_labels) == (img.scale, img.units, img.axis_labels)
    assert out.metadata[PROVENANCE_KEY]["steps"] == STEPS[:1]
    assert out.metadata[PROVENANCE_KEY]["source"] == "cells"
    # the recorded steps replay to the same result
    again = Recipe.from_metadata(out.metadata).run(camera_stack)
    np.testing.assert_allclose(out.data.compute(), again, atol=1e-5)


def test_provenance_accumulates():
    first = provenance({}, [STEPS[0]], source="raw")
    second = provenance(first, [STEPS[1]], source="raw gaussian")
    assert second[PROVENANCE_KEY]["steps"] == STEPS
    assert second[PROVENANCE_KEY]["source"] == "raw"
    assert second[PROVENANCE_KEY]["version"] == sl.__version__


@pytest.mark.parametrize(
    "document, words",
    [
        ("[1, 2", "not valid YAML"),
        ("just text", "not a stacklab recipe"),
        ("stacklab: 99\nsteps: []", "unsupported recipe format version"),
        ("stacklab: 1\nsteps: {op: gaussian}", "'steps' must be a list"),
        ("stacklab: 1\nsteps: [{op: gausian}]", "no operation named 'gausian'"),
        ("stacklab: 1\nsteps: [{op: gaussian, params: {sigma: -3}}]", "sigma must be >= 0"),
        ("stacklab: 1\nsteps: [{op: gaussian, parms: {}}]", "unknown keys"),
        ("stacklab: 1\nsteps: [gaussian]", "must be a mapping"),
    ],
)
def test_bad_recipes_fail_before_any_data_is_read(document, words):
    with pytest.raises(ValueError, match=words):
        Recipe.from_yaml(document)


def test_from_metadata_without_steps():
    with pytest.raises(ValueError, match="records no stacklab steps"):
        Recipe.from_metadata({"source": "x.tif"})


def test_physical_frame_follows_reductions_and_resampling():
    scan = sl.io.Image(np.ones((6, 5, 16, 16), np.float32), scale=(0.4, 0.4, 0.5, 0.5),
                       units=("nm", "nm", "mrad", "mrad"), axis_labels=("scan_y", "scan_x", "ky", "kx"))
    adf = Recipe(steps=[{"op": "annular_dark_field", "params": {"inner": 2, "outer": 6}}]).run(scan)
    assert adf.shape == (6, 5) and adf.scale == (0.4, 0.4) and adf.units == ("nm", "nm")
    assert adf.axis_labels == ("scan_y", "scan_x")
    pattern = Recipe(steps=[{"op": "mean_pattern"}]).run(scan)
    assert pattern.shape == (16, 16) and pattern.units == ("mrad", "mrad") and pattern.scale == (0.5, 0.5)

    stack = sl.io.Image(np.ones((3, 20, 30), np.uint16), scale=(2.0, 0.1, 0.1), translate=(0, 5.0, 5.0))
    binned = Recipe(steps=[{"op": "bin_pixels", "params": {"factor": 2}}]).run(stack)
    assert binned.shape == (3, 10, 15)
    np.testing.assert_allclose(binned.scale, (2.0, 0.2, 0.2))
    # the first binned pixel is centred between the first two input pixels
    np.testing.assert_allclose(binned.translate, (0.0, 5.05, 5.05))
    rotated = Recipe(steps=[{"op": "rot90", "params": {"k": 1}}]).run(stack)
    assert rotated.shape == (3, 30, 20) and rotated.scale == stack.scale, "rotation does not resample"


def test_recipe_with_a_required_reference_image_loads_and_replays(camera_stack):
    rec = Recipe.from_yaml(
        "stacklab: 1\nsteps:\n  - op: match_histograms\n    params: {reference: {layer: ref}}\n"
    )
    reference = camera_stack[0] * 0.5 + 10
    out = rec.run(camera_stack[1], inputs={"ref": reference})
    np.testing.assert_allclose(out, sl.filters.match_histograms(camera_stack[1], reference=reference))
    with pytest.raises(ValueError, match="pass it as inputs"):
        rec.run(camera_stack[1])
    with pytest.raises(ValueError, match="reference must be recorded as"):
        Recipe(steps=[{"op": "match_histograms", "params": {"reference": "ref"}}])


# ---------------------------------------------------------------- hostile or hand-written recipe files


def _billion_laughs() -> str:
    """About 700 bytes of YAML whose aliases expand to 10**9 strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    lines += ["stacklab: 1", "steps: [{op: gaussian, params: {sigma: *i}}]"]
    return "\n".join(lines) + "\n"


def test_billion_laughs_fails_fast_and_small(tmp_path):
    text = _billion_laughs()
    assert len(text) < 800
    path = tmp_path / "laughs.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="too large for a recipe") as info:
        Recipe.load(path)
    assert time.perf_counter() - start < 2
    assert len(str(info.value)) < 400 and str(path) in str(info.value)


@pytest.mark.parametrize("depth", [40, 5000])
def test_deep_nesting_is_a_clear_error_not_a_recursion_error(depth):
    document = "stacklab: 1\nsteps: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(ValueError, match="nested too deeply"):
        Recipe.from_yaml(document)
    aliased = "x: &x " + "[" * 20 + "1" + "]" * 20 + "\ny: &y [*x]\nz: [[[[[[[[[[[[[[*y]]]]]]]]]]]]]]\nstacklab: 1\nsteps: []\n"
    with pytest.raises(ValueError, match="nested too deeply"):
        Recipe.from_yaml(aliased)


def test_error_messages_quote_at_most_200_characters_of_a_value():
    long_list = "[" + ", ".join(str(i) for i in range(3000)) + "]"
    for document in (
        f"stacklab: 1\nsteps: [{{op: gaussian, params: {long_list}}}]",
        f"stacklab: 1\nsteps: [{long_list}]",
        f"stacklab: {long_list}\nsteps: []",
        f"stacklab: 1\nsteps: [{{op: gaussian, params: {{sigma: {long_list}}}}}]",
        f"stacklab: 1\nsteps: [{{op: {'x' * 5000}}}]",
    ):
        with pytest.raises(ValueError) as info:
            Recipe.from_yaml(document)
        assert len(str(info.value)) < 500, str(info.value)[:600]


def test_a_recipe_without_the_version_line_is_version_1_with_a_notice():
    with pytest.warns(RecipeWarning, match="no 'stacklab: 1' line.*version 1"):
        rec = Recipe.from_yaml("steps:\n  - op: gaussian\n    params: {sigma: 2}\n")
    assert rec == Recipe(steps=[{"op": "gaussian", "params": {"sigma": 2}}])
    with pytest.raises(ValueError, match="unsupported recipe format version"):
        Recipe.from_yaml("stacklab: true\nsteps: []")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_recipe_load_refuses_special_and_huge_files(tmp_path):
    fifo = tmp_path / "recipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        Recipe.load(fifo)
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (2**20 + 10))
    with pytest.raises(ValueError, match="too large"):
        Recipe.load(huge)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not UTF-8"):
        Recipe.load(binary)


def test_to_script_writes_a_runnable_script_that_equals_the_recipe(tmp_path):
    """Recipe.to_script: the public functions, told the file's colour axis, give what Recipe.run gives."""
    import subprocess
    import sys

    import tifffile
    from skimage import data

    photo_path = tmp_path / "photo.tif"
    tifffile.imwrite(photo_path, data.astronaut()[::4, ::4], photometric="rgb")
    reference_path = tmp_path / "reference.tif"
    sl.io.imwrite(reference_path, sl.io.Image(data.camera()[::4, ::4], scale=(0.5, 0.5), units=("um", "um")))
    recipe = Recipe(steps=[{"op": "gaussian", "params": {"sigma": 1.5}},        # each colour channel
                           {"op": "threshold", "params": {"method": "otsu"}},  # the luminance: no colour left
                           {"op": "binary_opening", "params": {}}])
    colour = recipe.to_script(photo_path)
    assert "sl.filters.gaussian(data, sigma=1.5, **channels)" in colour
    matched = Recipe(steps=[{"op": "match_histograms", "params": {"reference": {"layer": "ref"}}}])
    with pytest.raises(ValueError, match="ref"):
        matched.to_script(reference_path)
    grey = matched.to_script(reference_path, inputs={"ref": photo_path}, name="matched")
    removal = Recipe(steps=[{"op": "remove_background", "params": {"foreground": 100.0, "mask_only": True}}])
    with pytest.raises(ValueError, match="output"):
        removal.to_script(photo_path)
    alpha = removal.to_script(photo_path, output="alpha",
                              frame={"scale": [2.0, 2.0], "translate": [0.0, 0.0], "units": ["um", "um"],
                                     "axis_labels": ["y", "x"]})
    cases = [(colour, recipe.run(sl.io.imread(photo_path)).data),
             (grey, matched.run(sl.io.imread(reference_path).data,
                                inputs={"ref": sl.io.imread(photo_path).data})),
             (alpha, removal.run(sl.io.imread(photo_path))["alpha"].data)]
    for i, (script, expected) in enumerate(cases):
        path = tmp_path / f"script{i}.py"
        path.write_text(script, encoding="utf-8")
        out = tmp_path / f"out{i}.tif"
        done = subprocess.run([sys.executable, str(path), str(out)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        written = sl.io.imread(out)
        np.testing.assert_allclose(np.asarray(written.data).astype(float), np.asarray(expected).astype(float))
        if i == 1:
            assert written.scale == (0.5, 0.5) and written.units == ("um", "um")  # the source's frame
        if i == 2:
            assert written.scale == (2.0, 2.0)
