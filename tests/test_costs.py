"""The cost model (issue 19): caps checked before anything is computed, ranges the image sets,
third-party errors translated at the operation boundary, and the algorithms that keep large
parameters affordable, each against its library oracle."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from typing import Annotated

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from skimage import data, exposure, filters, morphology
from skimage import restoration

import napari_stacklab as sl
from napari_stacklab import catalog, costs, engine, neighbourhoods, registry
from napari_stacklab.registry import Range

CAMERA = data.camera()


@pytest.fixture
def scratch_registry(monkeypatch):
    """Operations declared by a test are filed in a copy of the registry, dropped after the test."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


# --- the caps -------------------------------------------------------------------------------------


def test_a_call_past_the_time_cap_is_refused_with_the_estimate_and_what_to_change():
    with pytest.raises(costs.CostError) as refused:
        sl.filters.median(CAMERA.astype(np.float32), size=99)
    text = str(refused.value)
    assert isinstance(refused.value, ValueError)
    for part in ("median would take about", "per frame", "(512, 512) float32", "99 x 99 window",
                 "MAX_SECONDS = 30 s", "a smaller size", "STACKLAB_MAX_SECONDS"):
        assert part in text, text


def test_a_call_past_the_memory_cap_is_refused_with_the_numbers(monkeypatch):
    monkeypatch.setattr(costs, "MAX_BYTES", 2**20)
    with pytest.raises(costs.CostError, match=r"gaussian would need about .* MiB .* and 1\.0 MiB for the result, "
                                              r"more than napari_stacklab\.costs\.MAX_BYTES = 1\.0 MiB"):
        sl.filters.gaussian(CAMERA, sigma=2)
    monkeypatch.setattr(costs, "MAX_BYTES", None)  # no cap
    assert sl.filters.gaussian(CAMERA, sigma=2).shape == CAMERA.shape


def test_the_caps_are_read_at_call_time(monkeypatch):
    monkeypatch.setattr(costs, "MAX_SECONDS", None)
    op = catalog.get("median")
    estimate = op.cost_for((512, 512), np.float32, op.bind({"size": 99}))
    assert estimate.seconds > 30  # refused above with the default cap, accepted without one
    monkeypatch.setattr(costs, "MAX_SECONDS", estimate.seconds / 2)
    with pytest.raises(costs.CostError):
        sl.filters.median(np.zeros((512, 512), np.float32), size=99)


def _caps_in_a_fresh_process(env: dict, limit_as: int | None = None) -> tuple[float, float]:
    code = textwrap.dedent(f"""
        import resource
        if {limit_as!r} is not None:
            resource.setrlimit(resource.RLIMIT_AS, ({limit_as!r}, {limit_as!r}))
        from napari_stacklab import costs
        print(costs.MAX_BYTES, costs.MAX_SECONDS)
    """)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STACKLAB_MAX_")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    max_bytes, max_seconds = out.stdout.split()
    return float(max_bytes), float(max_seconds)


def test_the_caps_come_from_the_environment_or_the_machine():
    assert _caps_in_a_fresh_process({"STACKLAB_MAX_BYTES": "123456789", "STACKLAB_MAX_SECONDS": "7.5"}) == (
        123456789, 7.5)
    unusable = {"STACKLAB_MAX_BYTES": "lots", "STACKLAB_MAX_SECONDS": "-1"}  # not a positive number: the default
    max_bytes, max_seconds = _caps_in_a_fresh_process(unusable)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < max_bytes <= physical / 2 and max_seconds == 30
    # under an address-space limit (a batch node, the sweep's fence) the default follows it
    limited, _ = _caps_in_a_fresh_process({}, limit_as=3 * 2**30)
    assert limited == 1.5 * 2**30


def test_lazy_input_costs_one_chunk_in_memory_input_the_whole_result(monkeypatch):
    stack = da.zeros((10_000, 512, 512), dtype=np.uint16, chunks=(4, 512, 512))  # 5 GB, never allocated
    monkeypatch.setattr(costs, "MAX_BYTES", 64 * 2**20)
    lazy = sl.filters.median(stack, size=5)  # one chunk: 4 frames and their result
    assert isinstance(lazy, da.Array) and lazy.shape == stack.shape
    with pytest.raises(costs.CostError, match=r"for the result"):
        sl.filters.median(np.zeros((160, 512, 512), np.uint16), size=5)  # 80 MiB in, 80 MiB out
    # a chunk is costed with its halo: a 64 x 64 chunk of a median of size 61 reads 124 x 124
    op = catalog.get("median")
    assert engine._call_shape(op, da.zeros((512, 512), chunks=64), op.bind({"size": 61}), 2) == (124, 124)


def test_a_refusal_computes_nothing():
    computed = []

    def counted(block):
        computed.append(block.shape)
        return block

    stack = da.zeros((4, 512, 512), dtype=np.float32, chunks=(1, 512, 512)).map_blocks(
        counted, dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))
    with pytest.raises(costs.CostError):
        sl.filters.median(stack, size=99)
    with pytest.raises(costs.CostError):  # refused before prepare scans the stack
        sl.segment.threshold_local(stack, block_size=99, method="median")
    assert computed == []


def test_dask_chunks_cost_their_frames_with_a_vectorized_kernel():
    op = catalog.get("threshold_multiotsu")
    call = engine._call_shape(op, da.zeros((30, 256, 256), chunks=(5, 256, 256)), op.bind({}), 2)
    assert call == (5, 256, 256)


# --- ranges the image sets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "func, params, message",
    [
        (sl.stem.radial_profile, {"center": (1e9, 0.0)}, r"center must be in \[\(-512, -512\), \(1023, 1023\)\]"),
        (sl.preprocess.warp_polar, {"radius": 1e12}, r"radius must be in \(0, 1448.15\]"),
        (sl.preprocess.warp_polar, {"center": (-1e300, 3.0)}, r"center must be in"),
        (sl.preprocess.resize, {"output_shape": (10**12, 5)}, r"output_shape must be in \[\(1, 1\), \(51200, 51200\)\]"),
        (sl.filters.clahe, {"kernel_size": 10000}, r"kernel_size must be in \[2, 512\] \(a tile at most"),
        (sl.preprocess.rotate, {"cval": 1e300}, r"cval must be in .* float32 result"),
        (sl.morphology.clear_border, {"buffer_size": 600}, r"buffer_size must be in \[0, 511\]"),
        (sl.phase.reconstruct_hologram, {"sideband": (300.0, 0.0)}, r"sideband must be in"),
        (sl.phase.reconstruct_hologram, {"sideband": (20.0, 30.0), "aperture_radius": 1e300},
         r"aperture_radius must be in \(0, 362.039\]"),
    ],
)
def test_unbounded_parameters_get_ranges_tied_to_the_frame(func, params, message):
    image = CAMERA if func is not sl.stem.radial_profile else CAMERA.astype(np.float32)
    with pytest.raises(ValueError, match=message) as refused:
        func(image, **params)
    assert "for a frame of shape (512, 512)" in str(refused.value)


def test_the_rolling_ball_radius_is_bounded_by_the_frame():
    with pytest.raises(ValueError, match=r"radius must be in \[1, 96\] \(twice the frame's larger side"):
        sl.preprocess.subtract_background(CAMERA[:48, :40], radius=1000)
    with pytest.raises(costs.CostError, match=r"a ball of radius 1000 .* method='tophat'"):
        sl.preprocess.subtract_background(CAMERA, radius=1000)  # in range, past the time cap (10 min before)
    # the top-hat's time grows with the radius: 300 runs, 1000 (about 45 s a frame, measured) is refused too
    assert sl.preprocess.subtract_background(CAMERA, method="tophat", radius=300).shape == CAMERA.shape
    with pytest.raises(costs.CostError, match=r"2001 x 2001 footprint .*smaller radius"):
        sl.preprocess.subtract_background(CAMERA, method="tophat", radius=1000)


def test_a_range_is_checked_before_prepare_scans_a_lazy_stack():
    computed = []
    stack = da.from_array(CAMERA, chunks=256).map_blocks(lambda b: computed.append(1) or b, dtype=CAMERA.dtype,
                                                         meta=np.empty((0, 0), CAMERA.dtype))
    with pytest.raises(ValueError, match="kernel_size"):
        sl.filters.clahe(stack, kernel_size=5000)
    assert computed == []


# --- third-party errors at the operation boundary -------------------------------------------------


def _declare(name, kernel, **kw):
    return registry.operation(menu="filter", name=name, family="test", **kw)(kernel)


def test_a_library_error_becomes_a_value_error_naming_the_operation_and_parameter(scratch_registry):
    def overflowing(image, *, order: Annotated[int, Range(0, 100)] = 2):
        return ndi.spline_filter(image, order=order)  # scipy: RuntimeError "spline order not supported"

    op = _declare("overflowing", overflowing)
    with pytest.raises(engine.OperationError) as raised:
        op(np.zeros((8, 8)), order=7)
    text = str(raised.value)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value.__cause__, RuntimeError)
    assert text.startswith("overflowing failed in scipy.ndimage on (8, 8) float64 (check order=7): RuntimeError:")
    assert "[parameters: order=7]" in text
    lazy = op(da.zeros((2, 8, 8), chunks=(1, 8, 8)), order=7)  # the same translation when a block is computed
    with pytest.raises(engine.OperationError, match="overflowing failed in scipy.ndimage"):
        lazy.compute(scheduler="synchronous")


def test_broadcast_and_index_errors_are_translated_and_long_values_cut(scratch_registry):
    def broadcasting(image, *, weights: tuple = (1.0, 2.0, 3.0)):
        return np.broadcast_arrays(image, np.zeros(len(weights)))[0]

    def indexing(image, *, index: int = 10**6):
        return np.take(image, [index]).reshape(1, 1) + image

    with pytest.raises(engine.OperationError, match=r"broadcasting failed in numpy.* ValueError: .*broadcast"):
        _declare("broadcasting", broadcasting)(np.zeros((4, 4)))
    long = tuple(float(i) for i in range(500))
    with pytest.raises(engine.OperationError) as raised:
        _declare("broadcasting", broadcasting)(np.zeros((4, 4)), weights=long)
    assert len(str(raised.value)) < 800 and "..." in str(raised.value)
    with pytest.raises(engine.OperationError, match=r"indexing failed .* IndexError"):
        _declare("indexing", indexing)(np.zeros((4, 4)))


def test_the_projects_own_errors_and_gpu_failures_pass_unchanged(scratch_registry):
    from napari_stacklab._validation import check_number

    def ours(image, *, fail: str = "value"):
        if fail == "value":
            check_number("threshold", -1.0, low=0)  # the project's own check, raised in its code
        if fail == "class":
            raise costs.CostError("a class of the project's, raised anywhere")
        raise sl._backend.NoGPUImplementation("no GPU kernel")

    op = _declare("ours", ours)
    with pytest.raises(ValueError, match="^threshold must be >= 0, got -1.0$") as raised:
        op(np.zeros((4, 4)))
    assert type(raised.value) is ValueError
    with pytest.raises(costs.CostError, match="^a class of the project's"):
        op(np.zeros((4, 4)), fail="class")
    with pytest.raises(sl._backend.NoGPUImplementation):
        op(np.zeros((4, 4)), fail="gpu")


def test_translated_kernels_keep_deterministic_dask_keys():
    stack = da.zeros((4, 64, 64), chunks=(1, 64, 64))
    assert sl.filters.gaussian(stack, sigma=1).name == sl.filters.gaussian(stack, sigma=1).name


# --- better algorithms, with the library as the oracle --------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "bool", "int16"])
@pytest.mark.parametrize("histogram", [True, False])
def test_rank_filter_gives_scipys_values_on_both_paths(dtype, histogram, monkeypatch, rng):
    if not histogram:  # force SciPy's direct path
        monkeypatch.setattr(neighbourhoods, "_HISTOGRAM_SECONDS", 1.0)
    else:
        monkeypatch.setattr(neighbourhoods, "_DIRECT_SECONDS", 1.0)
    image = (rng.integers(0, 60, (37, 29)) * (3 if dtype != "bool" else 1)).astype(dtype)
    if dtype == "float32":
        image = image / 7
    for size, mode in itertools.product((2, 3, 4, 7, 10), ("reflect", "mirror", "nearest", "wrap", "constant")):
        window = size * size
        for rank in (0, 1, window // 2, window - 2, window - 1):
            expected = ndi.rank_filter(image, rank, size=size, mode=mode)
            found = neighbourhoods.rank_filter(image, rank, size, mode)
            assert found.dtype == expected.dtype
            np.testing.assert_array_equal(found, expected, err_msg=f"{dtype} size={size} {mode} rank={rank}")


def test_large_median_and_percentile_equal_scipy_and_stay_cheap():
    crop = CAMERA[:160, :140]
    np.testing.assert_array_equal(sl.filters.median(crop, size=61), ndi.median_filter(crop, size=61))
    np.testing.assert_array_equal(sl.filters.percentile_filter(crop, percentile=20, size=45),
                                  ndi.percentile_filter(crop, 20, size=45))
    op = catalog.get("median")
    big = op.cost_for((512, 512), np.uint8, op.bind({"size": 255}))
    # the 34 GB (scipy's offset table, 8 * 255**4 bytes) and 48 s at size 127 are gone for 8-bit data
    assert big.bytes < 100 * 2**20 and big.seconds < 30
    assert sl.filters.median(CAMERA, size=255).shape == CAMERA.shape


@pytest.mark.parametrize("footprint", ["disk", "square", "diamond"])
@pytest.mark.parametrize("name", ["erosion", "dilation", "opening", "closing"])
def test_flat_morphology_by_chords_equals_skimage(footprint, name, rng):
    element = morphology.footprint_rectangle((11, 11)) if footprint == "square" else getattr(morphology, footprint)(5)
    grey = rng.integers(0, 255, (45, 38)).astype(np.uint8)
    mask = rng.random((45, 38)) > 0.6
    np.testing.assert_array_equal(getattr(sl.morphology, name)(grey, footprint=footprint, radius=5),
                                  getattr(morphology, name)(grey, element))
    np.testing.assert_array_equal(getattr(sl.morphology, f"binary_{name}")(mask, footprint=footprint, radius=5),
                                  getattr(morphology, name)(mask, element))


@pytest.mark.parametrize("footprint", ["ball", "cube", "octahedron"])
def test_flat_morphology_of_volumes_equals_skimage(footprint, rng):
    volume = rng.random((9, 21, 17)).astype(np.float32)
    element = morphology.footprint_rectangle((5, 5, 5)) if footprint == "cube" else getattr(morphology, footprint)(2)
    np.testing.assert_array_equal(sl.morphology.erosion(volume, footprint=footprint, radius=2),
                                  morphology.erosion(volume, element))
    np.testing.assert_array_equal(sl.morphology.dilation(volume, footprint=footprint, radius=2),
                                  morphology.dilation(volume, element))


@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "wrap", "constant"])
def test_flat_filter_follows_every_boundary_mode(mode, rng):
    image = rng.integers(0, 1000, (30, 33)).astype(np.uint16)
    disk = morphology.disk(6).astype(bool)
    np.testing.assert_array_equal(neighbourhoods.flat_filter(image, disk, dilate=False, mode=mode),
                                  ndi.grey_erosion(image, footprint=disk, mode=mode))
    np.testing.assert_array_equal(neighbourhoods.flat_filter(image, disk, dilate=True, mode=mode),
                                  ndi.grey_dilation(image, footprint=disk, mode=mode))


def test_erosion_of_radius_100_is_affordable():
    op = catalog.get("erosion")
    cost = op.cost_for((512, 512), np.uint8, op.bind({"radius": 100}))
    assert cost.bytes < 50 * 2**20 and cost.seconds < 5  # scipy's footprint filter: 8 * 201**4 bytes = 13 GB
    eroded = sl.morphology.erosion(CAMERA, radius=100)
    disk = morphology.disk(100).astype(bool)
    for y, x in itertools.product((120, 256, 390), (150, 300, 400)):  # inside, the minimum over the disk
        assert eroded[y, x] == CAMERA[y - 100 : y + 101, x - 100 : x + 101][disk].min()


def test_chords_refuse_a_footprint_that_is_not_convex():
    ring = morphology.disk(3).astype(bool)
    ring[3, 3] = False
    with pytest.raises(ValueError, match="runs centred"):
        neighbourhoods.chords(ring)


def test_tophat_equals_the_grey_opening():
    crop = CAMERA[:120, :100].astype(np.float32)
    disk = morphology.disk(9).astype(bool)
    np.testing.assert_array_equal(sl.preprocess.subtract_background(crop, method="tophat", radius=9),
                                  crop - ndi.grey_opening(crop, footprint=disk, mode="reflect"))


def test_threshold_local_median_equals_skimage():
    crop = CAMERA[:150, :120]
    for dtype in (np.uint8, np.uint16, np.float32):
        image = crop.astype(dtype)
        for block, offset in ((3, 0.0), (31, 2.5), (101, -1.0)):
            expected = image > filters.threshold_local(image, block, method="median", offset=offset)
            np.testing.assert_array_equal(sl.segment.threshold_local(image, block_size=block, method="median",
                                                                     offset=offset), expected)


def _exhaustive_multiotsu(counts, classes):
    """The split maximising sum(S_k**2 / P_k) over every choice of thresholds (bin indices as values)."""
    levels = np.flatnonzero(counts)
    best, found = -np.inf, None
    index = np.arange(counts.size, dtype=float)
    for cuts in itertools.combinations(range(len(levels) - 1), classes - 1):
        bounds = [0, *[levels[c] + 1 for c in cuts], counts.size]
        score = sum((counts[a:b] * index[a:b]).sum() ** 2 / counts[a:b].sum() for a, b in zip(bounds, bounds[1:]))
        if found is None or score > best * (1 + 1e-12):  # the first of equal splits, as a strict search
            best, found = score, [levels[c] for c in cuts]
    return np.array(found, dtype=float)


@pytest.mark.parametrize("classes", [2, 3, 4, 5, 6])
def test_multiotsu_finds_the_exact_optimum(classes, rng):
    from napari_stacklab.segment import _multiotsu_thresholds

    for _ in range(6):
        counts = rng.integers(0, 1000, 14)
        counts[rng.random(14) < 0.2] = 0
        counts[[0, -1]] += 1
        if np.count_nonzero(counts) <= classes:
            continue
        centers = np.arange(14.0)
        np.testing.assert_array_equal(_multiotsu_thresholds(counts, centers, classes),
                                      _exhaustive_multiotsu(counts.astype(float), classes))


@pytest.mark.parametrize("name", ["camera", "coins", "moon", "page", "cell"])
def test_multiotsu_agrees_with_skimage_on_natural_images(name):
    image = getattr(data, name)()
    op = catalog.get("threshold_multiotsu")
    for classes in (2, 3, 4):
        ours = op.resolve(image, {"classes": classes})["thresholds"]
        # scikit-image's first moment counts the lowest level's pixels as level 1 (its LUT starts at
        # prob[0]), which can move a threshold by a level; ours is the exact optimum (test above)
        np.testing.assert_allclose(ours, filters.threshold_multiotsu(image, classes=classes), atol=1)
    assert op.resolve(image, {"classes": 2})["thresholds"] == (filters.threshold_otsu(image),)


def test_multiotsu_with_six_classes_and_16_bit_data_is_cheap():
    op = catalog.get("threshold_multiotsu")
    assert op.cost_for((512, 512), np.uint16, op.bind({"classes": 6})).seconds < 5
    noisy = CAMERA.astype(np.uint16) * 257 + np.random.default_rng(1).integers(0, 200, CAMERA.shape).astype(np.uint16)
    labels = sl.segment.threshold_multiotsu(noisy, classes=6)
    assert set(np.unique(labels)) == set(range(6))


def test_threshold_minimum_of_16_bit_data_smooths_256_bins():
    wide = CAMERA.astype(np.uint16) * 257  # scikit-image: one bin per level, minutes of smoothing
    value = sl.segment.threshold_value(wide, method="minimum")
    counts, edges = np.histogram(wide, bins=256, range=(wide.min(), wide.max()))
    assert value == filters.threshold_minimum(hist=(counts, (edges[:-1] + edges[1:]) / 2))
    assert sl.segment.threshold_value(CAMERA, method="minimum") == filters.threshold_minimum(CAMERA)


def test_find_peaks_refinement_equals_the_centre_of_mass_of_each_box(rng):
    image = ndi.gaussian_filter(rng.random((60, 70)), 2)
    found = sl.measure.find_peaks(image, min_distance=2, exclude_border=False, window=4)
    coarse = sl.measure.find_peaks(image, min_distance=2, exclude_border=False, subpixel=False).astype(int)
    assert len(found) == len(coarse) > 10
    for (y, x), refined in zip(coarse, found):
        box = (slice(max(y - 4, 0), min(y + 5, image.shape[0])), slice(max(x - 4, 0), min(x + 5, image.shape[1])))
        values = image[box] - image[box].min()
        yy, xx = np.mgrid[box]
        expected = ((values * yy).sum() / values.sum(), (values * xx).sum() / values.sum())
        np.testing.assert_allclose(refined, expected, atol=1e-9)


# --- finite in, finite out ------------------------------------------------------------------------


def test_nl_means_without_fast_mode_on_a_two_level_image_is_finite():
    two = np.zeros((48, 48), np.uint8)
    two[:, 24:] = 1
    two[np.random.default_rng(0).random(two.shape) < 0.1] = 1
    raw = restoration.denoise_nl_means(two.astype(np.float32), patch_size=3, patch_distance=1, h=0.05 * 0.1,
                                       sigma=0.1, fast_mode=False, preserve_range=True)
    out = sl.denoise.nl_means(two, patch_size=3, patch_distance=1, h=0.05, sigma=0.1, fast_mode=False)
    assert np.isnan(raw).any(), "scikit-image's 0/0 no longer happens: the case is obsolete"
    assert np.isfinite(out).all()
    bad = np.isnan(raw)
    np.testing.assert_array_equal(out[bad], two[bad])  # the limit of the weighted mean: the pixel itself
    np.testing.assert_allclose(out[~bad], raw[~bad])


@pytest.mark.parametrize("cutoff", [np.finfo(float).tiny, 1e-30, 1e300])
@pytest.mark.parametrize("edge", ["butterworth", "gaussian"])
def test_frequency_filters_are_finite_at_extreme_cutoffs(cutoff, edge):
    for func in (sl.filters.lowpass, sl.filters.highpass):
        assert np.isfinite(func(CAMERA, cutoff=cutoff, edge=edge)).all()
    assert np.isfinite(sl.filters.bandpass(CAMERA, low_cutoff=cutoff / 2, high_cutoff=cutoff, edge=edge)).all()


@pytest.mark.parametrize("vmin, vmax", [(-1e308, None), (-1.7e308, 1.7e308), (1e308, None), (-1e300, 1e-300)])
def test_rescale_percentile_is_finite_for_any_finite_vmin_vmax(vmin, vmax):
    out = sl.filters.rescale_percentile(CAMERA, vmin=vmin, vmax=vmax)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_adjust_gamma_is_finite_or_refused_with_the_range():
    for vmax, gamma in itertools.product((np.finfo(float).tiny, 1e-30, 1.0, 1e30, 1e308), (0.01, 1.0, 5.0, 20.0)):
        try:
            out = sl.filters.adjust_gamma(CAMERA, gamma=gamma, vmax=vmax)
        except ValueError as refused:
            assert "choose vmax" in str(refused) and "float32 range" in str(refused)
        else:
            assert np.isfinite(out).all()
    with pytest.raises(ValueError, match=r"vmax=1e-30 with gamma=20 .* choose vmax >= "):
        sl.filters.adjust_gamma(CAMERA, gamma=20, vmax=1e-30)
    frame = CAMERA / 255.0
    np.testing.assert_allclose(sl.filters.adjust_gamma(frame, gamma=2.2, vmax=1), exposure.adjust_gamma(frame, 2.2),
                               rtol=1e-12)


def test_bilateral_colour_sigma_extremes_are_its_limits():
    crop = CAMERA[:96, :96]
    flat = sl.filters.bilateral(crop, sigma_color=1e308)
    np.testing.assert_array_equal(flat, sl.filters.bilateral(crop, sigma_color=255 * 1e3))  # infinite: a Gaussian
    assert np.abs(sl.filters.bilateral(crop, sigma_color=1e-300) - crop).max() < 1e-3  # zero: nothing moves
    assert np.isfinite(flat).all()


def test_center_of_mass_calibration_and_distance_sampling_are_bounded():
    scan = np.random.default_rng(0).random((3, 3, 16, 16)).astype(np.float32)
    with pytest.raises(ValueError, match=r"calibration must be <= 1e\+30"):
        sl.stem.center_of_mass(scan, calibration=1e308)
    com = sl.stem.center_of_mass(scan, calibration=1e30, center=(-16.0, 31.0))
    assert all(np.isfinite(part).all() for part in com.values())
    assert all(np.isfinite(part).all() for part in sl.stem.dpc(scan, calibration=1e30).values())
    mask = CAMERA > 100
    with pytest.raises(ValueError, match=r"sampling must be <= 1e\+30"):
        sl.morphology.distance_transform(mask, sampling=1e308)
    assert np.isfinite(sl.morphology.distance_transform(mask, sampling=1e30)).all()
    tiny = sl.morphology.remove_small_objects(mask, max_size=1e308, spacing=np.finfo(float).tiny)
    assert not tiny.any()  # every object is smaller than an infinite area


def test_hologram_aperture_extremes_are_finite():
    yy, xx = np.mgrid[:128, :128]
    holo = 2 + 2 * np.cos(2 * np.pi * (10 * yy + 30 * xx) / 128)
    for radius in (np.finfo(float).tiny, 1e-3, 90.5):
        out = sl.phase.reconstruct_hologram(holo, sideband=(10.0, 30.0), aperture_radius=radius)
        assert all(np.isfinite(part).all() for part in out.values())
    out = sl.phase.reconstruct_hologram(holo, sideband=(-64.0, 64.0))
    assert all(np.isfinite(part).all() for part in out.values())


def test_denoiser_sigmas_and_ranges_are_bounded_and_finite():
    crop = CAMERA[:64, :64]
    with pytest.raises(ValueError, match=r"sigma must be <= 1e\+30"):
        sl.denoise.wavelet(crop, sigma=1e308)
    for func in (sl.denoise.wavelet, sl.denoise.nl_means):
        assert np.isfinite(func(crop, sigma=1e30)).all()
    assert np.isfinite(sl.denoise.tv(crop, data_range=1e30)).all()
    np.testing.assert_array_equal(sl.denoise.tv(crop, weight=np.finfo(float).tiny), crop.astype(np.float32))
    assert np.isfinite(sl.denoise.psnr(crop, reference=np.roll(crop, 1), data_range=np.finfo(float).tiny))
    assert np.isfinite(sl.denoise.ssim(crop, reference=np.roll(crop, 1), data_range=1e30))


def test_bm3d_sigma_is_bounded_and_finite():
    pytest.importorskip("bm3d")
    crop = CAMERA[:32, :32]
    with pytest.raises(ValueError, match=r"sigma must be <= 1000000000000.0"):
        sl.denoise.bm3d(crop, sigma=1e30)  # the bm3d package squares it in float32: NaN everywhere
    assert np.isfinite(sl.denoise.bm3d(crop, sigma=1e12, stage="hard")).all()


def test_the_scheduler_does_not_matter_for_a_translated_error(scratch_registry):
    def failing(image):
        return ndi.spline_filter(image, order=9)

    lazy = _declare("failing", failing)(da.zeros((2, 8, 8), chunks=(1, 8, 8)))
    with dask.config.set(scheduler="threads"), pytest.raises(engine.OperationError, match="failing failed"):
        lazy.compute()
