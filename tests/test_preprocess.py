"""Background, defects and geometry against scikit-image / SciPy oracles, lazily and eagerly."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data, measure, morphology, restoration, transform

from napari_stacklab import preprocess as P


@pytest.fixture(scope="module")
def coins():
    return data.coins()[::2, ::2].copy()  # (152, 192) uint8


@pytest.fixture(scope="module")
def stack():
    cam = data.camera()
    return np.stack([cam[i * 60 : i * 60 + 90, i * 40 : i * 40 + 110] for i in range(3)]).astype(np.uint16) * 100


def _loop(func, stack, **params):
    return np.stack([func(frame, **params) for frame in stack])


# --------------------------------------------------------------------------- background and defects


def test_subtract_background_oracles(coins):
    rolled = P.subtract_background(coins, method="rolling_ball", radius=8)
    background = restoration.rolling_ball(coins.astype(np.float32), radius=8)
    np.testing.assert_allclose(rolled, coins - background, atol=1e-3)
    assert rolled.dtype == np.float32 and rolled.min() >= 0
    top = P.subtract_background(coins, method="tophat", radius=6)
    np.testing.assert_allclose(top, morphology.white_tophat(coins.astype(np.float32), morphology.disk(6)), atol=1e-3)


def test_remove_hot_pixels_restores_defects_only(stack):
    rng = np.random.default_rng(3)
    clean = stack[0]
    damaged = clean.copy()
    rows, cols = rng.integers(2, 88, 20), rng.integers(2, 108, 20)
    damaged[rows[:10], cols[:10]] = 65000  # hot
    damaged[rows[10:], cols[10:]] = 0  # dead
    out = P.remove_hot_pixels(damaged, threshold=6)
    assert out.dtype == np.uint16
    median = ndi.median_filter(damaged, 3)
    np.testing.assert_array_equal(out[rows, cols], median[rows, cols])
    changed = out != damaged
    assert changed[rows, cols].all()
    assert changed.sum() < 20 + 0.005 * changed.size  # almost nothing else touched
    hot_only = P.remove_hot_pixels(damaged, threshold=6, kind="hot")
    assert (hot_only[rows[:10], cols[:10]] < 65000).all() and (hot_only[rows[10:], cols[10:]] == 0).all()


def test_remove_hot_pixels_on_sparse_counts():
    counts = np.zeros((32, 32), np.uint16)
    counts[8, 8] = counts[8, 9] = counts[9, 8] = 3  # a real blob: neighbours agree
    counts[20, 20] = 500  # a hot pixel
    out = P.remove_hot_pixels(counts, threshold=5)
    assert out[20, 20] == 0 and out[8, 8] == 3


def test_inpaint_biharmonic_and_nearest(coins):
    mask = np.zeros(coins.shape, bool)
    mask[40:44, 50:53] = mask[100, 20:30] = True
    damaged = np.where(mask, 0, coins)
    out = P.inpaint(damaged, mask=mask)
    np.testing.assert_allclose(out, restoration.inpaint_biharmonic(damaged.astype(np.float32), mask), atol=1e-3)
    np.testing.assert_array_equal(out[~mask], damaged[~mask])
    near = P.inpaint(damaged, mask=mask, method="nearest")
    np.testing.assert_array_equal(near[~mask], damaged[~mask])
    assert abs(near[mask] - coins[mask].astype(float)).mean() < 25
    stack = np.stack([damaged, damaged[::-1]])
    lazy = P.inpaint(da.from_array(stack, chunks=(1, 50, 70)), mask=da.from_array(mask), method="nearest")
    np.testing.assert_array_equal(lazy.compute()[0], near)
    with pytest.raises(ValueError, match="mask"):
        P.inpaint(coins, mask=np.zeros((5, 5), bool))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.float64])
def test_inpaint_reads_any_numeric_mask_as_nonzero(coins, dtype):
    """An integer/float mask is 'nonzero = fill' (it once failed with a zero-size-array error)."""
    holes = np.zeros(coins.shape, bool)
    holes[40:44, 50:53] = holes[100, 20:30] = True
    damaged = np.where(holes, 0, coins)
    weights = np.where(holes, 3, 0).astype(dtype)  # e.g. a defect map with a count per pixel
    for method in ("biharmonic", "nearest"):
        np.testing.assert_array_equal(
            P.inpaint(damaged, mask=weights, method=method), P.inpaint(damaged, mask=holes, method=method)
        )


def test_inpaint_refuses_unusable_masks_naming_the_mask(coins):
    for everything in (np.ones(coins.shape, bool), coins.astype(np.float32) + 1):
        with pytest.raises(ValueError, match="mask marks every pixel"):
            P.inpaint(coins, mask=everything)
    with pytest.raises(ValueError, match=r"mask must have the frame shape \(152, 192\), got \(192, 152\)"):
        P.inpaint(coins, mask=np.zeros((192, 152), bool))
    with pytest.raises(ValueError, match=r"frame shape \(152, 192\) \(used for every frame\) or the image's shape"):
        P.inpaint(np.stack([coins, coins]), mask=np.zeros((3,) + coins.shape, bool))
    with pytest.raises(TypeError, match="mask"):
        P.inpaint(coins, mask=np.full(coins.shape, "x"))


# --------------------------------------------------------------------------- geometry


def test_rescale_resize_oracles(coins):
    for factor in (0.5, (0.37, 1.3), 2.2):
        out = P.rescale(coins, factor=factor)
        expected = transform.rescale(coins.astype(np.float32), factor, order=1, preserve_range=True, mode="reflect")
        assert out.shape == expected.shape
        np.testing.assert_allclose(out, expected, atol=1e-3)
    out = P.resize(coins, output_shape=(50, 333), order=3)
    np.testing.assert_allclose(
        out, transform.resize(coins.astype(np.float32), (50, 333), order=3, preserve_range=True, mode="reflect"), atol=1e-3
    )


def test_bin_pixels_oracle(coins):
    crop = coins[: 152 // 3 * 3, : 192 // 4 * 4]
    out = P.bin_pixels(coins, factor=(3, 4))
    np.testing.assert_array_equal(out, measure.block_reduce(crop.astype(np.int64), (3, 4), np.sum))
    assert out.dtype == np.int64 and out.sum() == crop.astype(np.int64).sum()  # counts kept
    mean = P.bin_pixels(coins, factor=2, reduce="mean")
    np.testing.assert_allclose(mean, measure.block_reduce(coins.astype(np.float64), 2, np.mean), rtol=1e-6)
    assert mean.dtype == np.float32
    with pytest.raises(ValueError, match="factor"):
        P.bin_pixels(coins, factor=500)


@pytest.mark.parametrize("angle", [0.0, 17.0, 90.0, -135.5, 271.0])
@pytest.mark.parametrize("resize", [False, True])
def test_rotate_oracle_and_shape(coins, angle, resize):
    out = P.rotate(coins, angle=angle, resize=resize)
    expected = transform.rotate(coins.astype(np.float32), angle, resize=resize, order=1, preserve_range=True)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
def test_rotate_reads_write_protected_frames(tmp_path, stack, dtype):
    """A read-only memory map (how files are opened) once failed in skimage's Cython warp."""
    path = tmp_path / "stack.npy"
    np.save(path, stack.astype(dtype))
    mapped = np.load(path, mmap_mode="r")
    assert not mapped.flags.writeable
    out = P.rotate(mapped, angle=17.0, resize=True)
    np.testing.assert_allclose(out, _loop(P.rotate, stack.astype(dtype), angle=17.0, resize=True), rtol=1e-6)
    frame = mapped[1]
    np.testing.assert_allclose(
        P.rotate(frame, angle=-40.0),
        transform.rotate(np.array(frame, dtype=np.float32 if dtype != np.float64 else dtype), -40.0, preserve_range=True),
        rtol=1e-5,
    )
    lazy = P.rotate(da.from_array(mapped, chunks=(1, 45, 55)), angle=17.0, resize=True)
    np.testing.assert_allclose(lazy.compute(), out, rtol=1e-6)


def test_flip_rot90_exact(coins):
    np.testing.assert_array_equal(P.flip(coins, axis="x"), coins[:, ::-1])
    np.testing.assert_array_equal(P.flip(coins, axis="y"), coins[::-1])
    for k in (-3, -1, 1, 2, 3):
        np.testing.assert_array_equal(P.rot90(coins, k=k), np.rot90(coins, k))
    assert P.rot90(coins).dtype == coins.dtype


def test_warp_polar_oracle(coins):
    for scaling in ("linear", "log"):
        out = P.warp_polar(coins, center=(70, 90), radius=60, scaling=scaling)
        expected = transform.warp_polar(
            coins.astype(np.float32), center=(70, 90), radius=60, scaling=scaling, preserve_range=True, order=1
        )
        np.testing.assert_allclose(out, expected, atol=1e-3)
    default = P.warp_polar(coins)
    assert default.shape == transform.warp_polar(coins).shape


def test_line_profile_oracle(coins):
    for src, dst, width, order in (((10, 5), (100, 170), 1, 1), ((3.5, 150), (140, 2), 5, 0), ((0, 0), (151, 191), 3, 3)):
        expected = measure.profile_line(coins, src, dst, linewidth=width, order=order, mode="reflect")
        got = P.line_profile(coins, src, dst, linewidth=width, order=order)
        np.testing.assert_allclose(got, expected, atol=1e-9)
        lazy = P.line_profile(da.from_array(coins, chunks=40), src, dst, linewidth=width, order=order)
        np.testing.assert_allclose(lazy, expected, atol=1e-9)
    with pytest.raises(ValueError, match="src"):
        P.line_profile(coins, (1, 2, 3), (4, 5))
    with pytest.raises(ValueError, match="image"):
        P.line_profile(np.zeros((2, 4, 4)), (0, 0), (1, 1))


def test_output_scale():
    assert P.output_scale((5.0, 0.2, 0.1), (100, 100), (50, 200)) == (5.0, 0.4, 0.05)


# --------------------------------------------------------------------------- lazy == loop

LAZY = [
    ("subtract_background", {"method": "tophat", "radius": 5}),
    ("subtract_background", {"method": "rolling_ball", "radius": 6}),
    ("remove_hot_pixels", {"threshold": 4}),
    ("rescale", {"factor": 0.6}),
    ("resize", {"output_shape": (40, 70)}),
    ("bin_pixels", {"factor": (2, 3)}),
    ("bin_pixels", {"factor": 4, "reduce": "mean"}),
    ("rotate", {"angle": 30, "resize": True}),
    ("flip", {"axis": "y"}),
    ("rot90", {"k": 1}),
    ("warp_polar", {"scaling": "log", "angles": 180}),
]


@pytest.mark.parametrize("name, params", LAZY, ids=[f"{n}-{i}" for i, (n, _) in enumerate(LAZY)])
def test_lazy_with_awkward_chunks_equals_loop(stack, name, params):
    func = getattr(P, name)
    eager = func(stack, **params)
    np.testing.assert_allclose(eager, _loop(func, stack, **params), rtol=1e-6, atol=1e-4)
    lazy = func(da.from_array(stack, chunks=(2, 41, 47)), **params)
    assert isinstance(lazy, da.Array) and lazy.shape == eager.shape and lazy.dtype == eager.dtype
    assert lazy.chunks[-2:] == tuple((s,) for s in eager.shape[-2:]) or name == "subtract_background"
    np.testing.assert_allclose(lazy.compute(), eager, rtol=1e-5, atol=1e-3)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "func, params, error, words",
    [
        (P.subtract_background, {"method": "ball"}, ValueError, "method"),
        (P.subtract_background, {"radius": 0}, ValueError, "radius"),
        (P.remove_hot_pixels, {"threshold": -1}, ValueError, "threshold"),
        (P.remove_hot_pixels, {"kind": "warm"}, ValueError, "kind"),
        (P.inpaint, {"mask": "holes"}, TypeError, "mask"),
        (P.rescale, {"factor": 0}, ValueError, "factor"),
        (P.resize, {"output_shape": (10, -2)}, ValueError, "output_shape"),
        (P.resize, {"output_shape": (10, 2.5)}, ValueError, "output_shape"),
        (P.bin_pixels, {"factor": 1.5}, TypeError, "factor"),
        (P.rotate, {"angle": "left"}, TypeError, "angle"),
        (P.flip, {"axis": "z"}, ValueError, "axis"),
        (P.rot90, {"k": 5}, ValueError, "k"),
        (P.warp_polar, {"scaling": "log", "radius": 0.5}, ValueError, "radius"),
    ],
)
def test_invalid_parameters_name_the_parameter(func, params, error, words):
    with pytest.raises(error, match=words):
        func(np.ones((16, 16), np.uint8), **params)


def test_input_never_modified(stack):
    frozen = stack.copy()
    for name, params in LAZY:
        getattr(P, name)(stack, **params)
    np.testing.assert_array_equal(stack, frozen)


@pytest.mark.gpu
def test_gpu_matches_cpu(stack):
    cp = pytest.importorskip("cupy")
    for name, params in LAZY:
        if params.get("method") == "rolling_ball":
            continue  # CPU only
        func = getattr(P, name)
        on_gpu = func(cp.asarray(stack), **params)
        assert isinstance(on_gpu, cp.ndarray)
        np.testing.assert_allclose(on_gpu.get(), func(stack, **params), rtol=1e-4, atol=1e-2)


def test_inpaint_with_one_mask_per_frame_equals_frame_by_frame_and_stays_lazy(coins):
    """Hot pixels or cosmic rays found per frame: a mask stack of the image's shape, each frame its own."""
    stack = np.stack([coins, coins[::-1], coins[:, ::-1]]).astype(np.float32)
    masks = np.random.default_rng(3).random(stack.shape) > 0.98
    expected = np.stack([P.inpaint(frame, mask=mask) for frame, mask in zip(stack, masks)])
    np.testing.assert_array_equal(P.inpaint(stack, mask=masks), expected)
    lazy = P.inpaint(da.from_array(stack, chunks=(1,) + stack.shape[1:]), mask=da.from_array(masks, chunks=(2, 76, 96)))
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), expected)
    nearest = P.inpaint(stack, mask=masks.astype(np.uint8), method="nearest")
    np.testing.assert_array_equal(nearest[1], P.inpaint(stack[1], mask=masks[1], method="nearest"))
    with pytest.raises(ValueError, match=r"mask must have the frame shape .* or the image's shape"):
        P.inpaint(stack, mask=masks[:2])
    every = masks.copy()
    every[2] = True
    with pytest.raises(ValueError, match="mask marks every pixel"):
        P.inpaint(stack, mask=every)
