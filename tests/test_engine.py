"""The engine: parameters validated once, frames and outputs planned from the declaration, lifted kernels."""

import dask.array as da
import numpy as np
import pytest
from skimage import data

import napari_stacklab as sl
from napari_stacklab import catalog, engine, registry
from napari_stacklab.recipe import Recipe


@pytest.fixture
def checks(monkeypatch):
    """Every parameter check made, by parameter name."""
    seen = []
    real = registry.Param.check

    def counted(self, value):
        seen.append(self.name)
        return real(self, value)

    monkeypatch.setattr(registry.Param, "check", counted)
    return seen


def test_a_python_call_validates_each_parameter_once(checks):
    sl.filters.gaussian(np.zeros((2, 8, 8)), sigma=2)
    assert sorted(checks) == ["mode", "sigma", "truncate"]


def test_bound_parameters_are_not_validated_again(checks):
    op = catalog.get("gaussian")
    bound = op.bind({"sigma": 2})
    checks.clear()
    resolved = op.resolve(np.zeros((8, 8)), bound)
    engine.run(op, np.zeros((2, 8, 8)), resolved)
    engine.run(op, da.zeros((2, 8, 8), chunks=4), bound)
    assert checks == []
    assert isinstance(bound, engine.Bound) and not bound.resolved and resolved.resolved
    assert bound == {"sigma": 2.0, "truncate": 4.0, "mode": "reflect"}


def test_a_recipe_validates_when_made_and_runs_its_bound_steps(checks):
    recipe = Recipe(steps=[{"op": "gaussian", "params": {"sigma": 1}}, {"op": "median", "params": {"size": 3}}])
    made = len(checks)
    assert made == 5
    out = recipe.run(np.arange(64.0).reshape(8, 8))
    assert len(checks) == made, "running a recipe does not validate its steps again"
    np.testing.assert_allclose(out, sl.filters.median(sl.filters.gaussian(np.arange(64.0).reshape(8, 8), sigma=1)))
    recipe.steps[0]["params"]["sigma"] = -1  # edited after it was made: validated again, and refused
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        recipe.run(np.zeros((8, 8)))


def test_a_bound_of_another_operation_is_bound_again():
    median = catalog.get("median")
    with pytest.raises(TypeError, match="unknown parameter"):
        engine.run(median, np.zeros((8, 8)), catalog.get("gaussian").bind({}))


def test_the_plan_follows_the_parameters():
    volumes = np.zeros((2, 5, 16, 16), bool)
    erosion = catalog.get("binary_erosion")
    plan = engine.plan(erosion, volumes, erosion.bind({"footprint": "ball", "radius": 2}))
    assert (plan.frame_ndim, plan.halo, plan.dtype, plan.frame_shape) == (3, 2, np.dtype(bool), None)
    plan = engine.plan(erosion, volumes, erosion.bind({"footprint": "disk", "radius": 1}))
    assert plan.frame_ndim == 2 and erosion.frame_ndim == 2
    binned = catalog.get("bin_pixels")
    plan = engine.plan(binned, np.zeros((3, 10, 9), np.uint8), binned.bind({"factor": 2}))
    assert (plan.dtype, plan.frame_shape) == (np.dtype(np.int64), (5, 4))


def test_the_parameter_that_makes_frames_3d_is_named():
    with pytest.raises(ValueError, match="footprint='cube' needs an image with at least 3 axes"):
        sl.morphology.erosion(np.zeros((8, 8)), footprint="cube")
    with pytest.raises(ValueError, match="volume=True needs an image with at least 3 axes"):
        sl.phase.unwrap(np.zeros((8, 8)), volume=True)
    with pytest.raises(ValueError, match="image must have at least 2 dimensions"):
        sl.filters.gaussian(np.zeros(8))


def test_parts_of_an_images_output_are_lifted_together(rng):
    z = (rng.normal(size=(3, 20, 30)) + 1j * rng.normal(size=(3, 20, 30))).astype(np.complex64)
    lazy = sl.phase.complex_split(da.from_array(z, chunks=(2, 7, 30)))
    assert list(lazy) == ["amplitude", "phase", "real", "imag"]
    for name, expected in [("amplitude", np.abs(z)), ("phase", np.angle(z)), ("real", z.real), ("imag", z.imag)]:
        assert isinstance(lazy[name], da.Array) and lazy[name].dtype == np.float32
        np.testing.assert_allclose(lazy[name].compute(), expected, rtol=1e-6)


def test_one_value_per_frame_keeps_the_scan_chunks(rng):
    scan = rng.poisson(3, (6, 5, 12, 12)).astype(np.uint16)
    lazy = sl.stem.virtual_bright_field(da.from_array(scan, chunks=(4, 3, 12, 12)), radius=3)
    assert lazy.chunks == ((4, 2), (3, 2)) and lazy.dtype == np.float32
    yy, xx = np.mgrid[:12, :12]
    disk = np.hypot(yy - 5.5, xx - 5.5) <= 3
    np.testing.assert_allclose(lazy.compute(), (scan * disk).sum(axis=(-2, -1)), rtol=1e-6)
    profile = sl.stem.radial_profile(da.from_array(scan, chunks=(4, 3, 12, 12)))
    assert profile.shape == (6, 5, profile.shape[-1]) and profile.chunks[:2] == ((4, 2), (3, 2))
    np.testing.assert_allclose(profile.compute(), sl.stem.radial_profile(scan), rtol=1e-6)


def test_kernel_only_parameters_are_not_public():
    op = catalog.get("virtual_detector")
    assert [p.name for p in op.params] == ["inner", "outer", "center", "mask"]
    assert "_weights" not in str(sl.stem.virtual_detector.__signature__)
    with pytest.raises(TypeError, match="unknown parameter"):
        sl.stem.virtual_detector(np.ones((2, 2, 8, 8)), outer=2, _weights=np.ones((1, 8, 8)))


def test_an_image_parameter_used_by_every_frame_is_read_once_before_the_graph():
    coins = data.coins()[:60, :80].astype(np.float32)
    template = da.from_array(coins[20:30, 30:45], chunks=5)
    lazy = sl.measure.match_template(da.from_array(np.stack([coins, coins[::-1]]), chunks=(1, 60, 80)),
                                     template=template)
    assert not set(template.dask) & set(lazy.dask), "the template's graph is not inside the result's"
    np.testing.assert_allclose(lazy.compute()[0], sl.measure.match_template(coins, template=coins[20:30, 30:45]),
                               atol=1e-5)


def test_images_given_one_per_frame_stay_lazy_and_follow_their_frame(rng):
    stack = rng.random((3, 16, 16)).astype(np.float32)
    masks = np.zeros(stack.shape, bool)
    masks[0, 2:4, 2:4] = masks[1, 8:10, 5:7] = masks[2, 12:14, 1:3] = True
    lazy_masks = da.from_array(masks, chunks=(1, 16, 16))
    lazy = sl.preprocess.inpaint(da.from_array(stack, chunks=(1, 16, 16)), mask=lazy_masks, method="nearest")
    assert set(lazy_masks.dask) <= set(lazy.dask), "the masks are read with their frames, not before"
    for i in range(3):
        np.testing.assert_array_equal(lazy[i].compute(), sl.preprocess.inpaint(stack[i], mask=masks[i],
                                                                                method="nearest"))
