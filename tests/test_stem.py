"""4D-STEM operations against direct NumPy / SciPy computations."""

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_stacklab import catalog, filters, stem

SCAN, DETECTOR = (6, 7), (24, 20)


@pytest.fixture
def scan(rng):
    """Poisson counts, uint16, (6, 7, 24, 20), brighter in a central disk."""
    yy, xx = np.mgrid[: DETECTOR[0], : DETECTOR[1]]
    disk = np.hypot(yy - 11.5, xx - 9.5) <= 5
    lam = 3 + 40 * disk + rng.uniform(0, 5, SCAN + (1, 1))
    return rng.poisson(lam).astype(np.uint16)


def _awkward(data):
    """Chunks that split scan rows and detector frames unevenly."""
    return da.from_array(data, chunks=(4, 3, 10, 7))


def _loop_detector(data, weights):
    """Oracle: explicit loop over scan positions."""
    out = np.empty(data.shape[:2])
    for i, j in np.ndindex(*data.shape[:2]):
        out[i, j] = (data[i, j].astype(np.float64) * weights).sum()
    return out


def _ring(shape, inner, outer, center):
    out = np.zeros(shape, bool)
    for y, x in np.ndindex(*shape):
        out[y, x] = inner <= np.hypot(y - center[0], x - center[1]) <= outer
    return out


@pytest.mark.parametrize("name, method", [("sum_pattern", "sum"), ("mean_pattern", "mean"),
                                          ("max_pattern", "max"), ("std_pattern", "std")])
def test_pattern_statistics_equal_numpy(scan, name, method):
    func = getattr(stem, name)
    expected = getattr(scan.astype(np.float64), method)(axis=(0, 1))
    eager = func(scan)
    lazy = func(_awkward(scan))
    assert isinstance(lazy, da.Array) and lazy.shape == DETECTOR
    assert eager.dtype == (np.uint16 if method == "max" else np.float32) == lazy.dtype
    np.testing.assert_allclose(eager, expected, rtol=1e-6)
    np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-6)


@pytest.mark.parametrize("inner, outer, center", [(0, 5, None), (4, 9, None), (2.5, 7, (10.2, 8.7))])
def test_virtual_detector_equals_loop(scan, inner, outer, center):
    c = center or ((DETECTOR[0] - 1) / 2, (DETECTOR[1] - 1) / 2)
    expected = _loop_detector(scan, _ring(DETECTOR, inner, outer, c))
    eager = stem.virtual_detector(scan, inner=inner, outer=outer, center=center)
    lazy = stem.virtual_detector(_awkward(scan), inner=inner, outer=outer, center=center)
    assert eager.dtype == np.float32 and eager.shape == SCAN
    assert isinstance(lazy, da.Array) and lazy.chunks == ((4, 2), (3, 3, 1))
    np.testing.assert_allclose(eager, expected, rtol=1e-6)
    np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-6)


def test_virtual_detector_arbitrary_masks(scan, rng):
    labels = rng.integers(0, 3, DETECTOR).astype(np.int32)  # a Labels layer drawn on the pattern
    np.testing.assert_allclose(stem.virtual_detector(scan, mask=labels), _loop_detector(scan, labels > 0), rtol=1e-6)
    weights = rng.uniform(0, 1, DETECTOR)  # a segmented / weighted detector
    lazy = stem.virtual_detector(_awkward(scan), mask=da.from_array(weights, chunks=7))
    np.testing.assert_allclose(lazy.compute(), _loop_detector(scan, weights), rtol=1e-5)


def test_bright_field_and_dark_field_are_detectors(scan):
    np.testing.assert_array_equal(stem.virtual_bright_field(scan, radius=5),
                                  stem.virtual_detector(scan, inner=0, outer=5))
    np.testing.assert_array_equal(stem.annular_dark_field(scan, inner=6, outer=10, center=(11, 9)),
                                  stem.virtual_detector(scan, inner=6, outer=10, center=(11, 9)))
    total = stem.virtual_detector(scan, inner=0, outer=100)
    np.testing.assert_allclose(total, scan.sum(axis=(2, 3)), rtol=1e-6)


def test_float64_input_stays_float64(scan):
    assert stem.virtual_detector(scan.astype(np.float64), outer=3).dtype == np.float64
    assert stem.center_of_mass(scan.astype(np.float64))["com_y"].dtype == np.float64


@pytest.mark.parametrize(
    "func, params, error, words",
    [
        (stem.virtual_detector, {"inner": 5, "outer": 2}, ValueError, "inner"),
        (stem.virtual_detector, {"outer": -1}, ValueError, "outer must be >= 0"),
        (stem.virtual_detector, {}, ValueError, "outer"),
        (stem.virtual_detector, {"outer": 3, "center": (1, 2, 3)}, ValueError, "center"),
        (stem.virtual_detector, {"mask": np.ones((3, 3))}, ValueError, "mask must have the detector shape"),
        (stem.annular_dark_field, {"inner": "a"}, TypeError, "inner"),
        (stem.center_of_mass, {"calibration": 0}, ValueError, "calibration"),
        (stem.center_of_mass, {"descan": "linear"}, ValueError, "descan must be one of"),
        (stem.center_of_mass, {"flip": 1}, TypeError, "flip"),
        (stem.radial_profile, {"bin_width": 0}, ValueError, "bin_width"),
    ],
)
def test_invalid_parameters_name_the_parameter(scan, func, params, error, words):
    with pytest.raises(error, match=words):
        func(scan, **params)


def test_a_single_pattern_is_not_a_scan():
    with pytest.raises(ValueError, match="scan"):
        stem.mean_pattern(np.ones((8, 8)))
    with pytest.raises(ValueError, match="two scan axes"):
        stem.dpc(np.ones((5, 8, 8)))


# --- centre of mass and DPC on spots with known shifts ---------------------------------------


def _spots(shift_y, shift_x, detector=(32, 32), sigma=2.0, peak=1000.0):
    """One Gaussian spot per scan position, displaced from the detector centre by (shift_y, shift_x)."""
    yy, xx = np.mgrid[: detector[0], : detector[1]]
    cy, cx = (detector[0] - 1) / 2, (detector[1] - 1) / 2
    dy = yy - cy - shift_y[..., None, None]
    dx = xx - cx - shift_x[..., None, None]
    return peak * np.exp(-(dy**2 + dx**2) / (2 * sigma**2))


def test_center_of_mass_recovers_known_shifts_and_matches_scipy(rng):
    shift_y, shift_x = rng.uniform(-3, 3, (2, 5, 6))
    data = _spots(shift_y, shift_x).astype(np.float32)
    com = stem.center_of_mass(data)
    np.testing.assert_allclose(com["com_y"], shift_y, atol=1e-3)
    np.testing.assert_allclose(com["com_x"], shift_x, atol=1e-3)
    oracle = np.array([ndi.center_of_mass(data[i, j]) for i, j in np.ndindex(5, 6)]).reshape(5, 6, 2) - 15.5
    np.testing.assert_allclose(com["com_y"], oracle[..., 0], atol=1e-4)
    lazy = stem.center_of_mass(da.from_array(data, chunks=(2, 4, 17, 32)), calibration=0.5)
    assert isinstance(lazy["com_x"], da.Array)
    np.testing.assert_allclose(lazy["com_x"].compute(), 0.5 * shift_x, atol=1e-3)


def test_center_of_mass_rotation_flip_and_empty_patterns():
    data = _spots(np.array([[1.0]]), np.array([[0.0]]))
    data = np.concatenate([data, np.zeros_like(data)], axis=1)  # second position: no counts
    rotated = stem.center_of_mass(data, rotation=90)  # (x, y) = (0, 1) -> (-1, 0)
    np.testing.assert_allclose(rotated["com_x"][0, 0], -1.0, atol=1e-4)
    np.testing.assert_allclose(rotated["com_y"][0, 0], 0.0, atol=1e-4)
    assert rotated["com_x"][0, 1] == 0 and rotated["com_y"][0, 1] == 0
    sideways = _spots(np.array([[0.0]]), np.array([[2.0]]))
    np.testing.assert_allclose(stem.center_of_mass(sideways, flip=True)["com_x"], [[-2.0]], atol=1e-4)


def test_descan_plane_fit_removes_linear_drift(rng):
    sy, sx = np.mgrid[:8, :9]
    field_y, field_x = rng.uniform(-1, 1, (2, 8, 9))
    drift_y, drift_x = 0.8 + 0.2 * sy - 0.1 * sx, -0.5 + 0.15 * sx
    data = _spots(field_y + drift_y, field_x + drift_x, detector=(40, 40))
    com = stem.center_of_mass(da.from_array(data, chunks=(3, 4, 40, 40)), descan="plane")

    def minus_plane(m):
        design = np.c_[np.ones(m.size), sy.ravel(), sx.ravel()]
        coef, *_ = np.linalg.lstsq(design, m.ravel(), rcond=None)
        return m - (design @ coef).reshape(m.shape)

    np.testing.assert_allclose(com["com_y"].compute(), minus_plane(field_y), atol=2e-3)
    np.testing.assert_allclose(com["com_x"].compute(), minus_plane(field_x), atol=2e-3)


def test_dpc_integrates_a_known_potential():
    n = 24
    sy, sx = np.mgrid[:n, :n] * (2 * np.pi / n)
    phi = np.sin(sy) + 0.5 * np.cos(2 * sx) + 0.3 * np.sin(sy + sx)  # periodic over the scan
    grad_y = (np.cos(sy) + 0.3 * np.cos(sy + sx)) * (2 * np.pi / n)
    grad_x = (-np.sin(2 * sx) + 0.3 * np.cos(sy + sx)) * (2 * np.pi / n)
    scale = 5.0  # CoM shift in detector pixels per unit of potential gradient
    data = _spots(scale * grad_y, scale * grad_x)
    out = stem.dpc(da.from_array(data, chunks=(7, 24, 32, 32)), descan="none", calibration=1 / scale)
    assert isinstance(out["potential"], da.Array)
    np.testing.assert_allclose(out["dpc_y"].compute(), grad_y, atol=1e-4)
    np.testing.assert_allclose(out["potential"].compute(), phi - phi.mean(), atol=2e-3)


# --- radial profile -------------------------------------------------------------------------


def test_radial_profile_equals_bincount(scan):
    center, width = (10.3, 9.1), 1.5
    yy, xx = np.mgrid[: DETECTOR[0], : DETECTOR[1]]
    bins = (np.hypot(yy - center[0], xx - center[1]) / width).astype(int).ravel()
    counts = np.bincount(bins)
    expected = np.array([np.bincount(bins, scan[i, j].ravel().astype(float)) / counts
                         for i, j in np.ndindex(*SCAN)]).reshape(SCAN + (counts.size,))
    eager = stem.radial_profile(scan, center=center, bin_width=width)
    lazy = stem.radial_profile(_awkward(scan), center=center, bin_width=width)
    assert eager.shape == SCAN + (counts.size,) and eager.dtype == np.float32
    np.testing.assert_allclose(eager, expected, rtol=1e-5)
    np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-5)
    np.testing.assert_allclose(stem.radial_profile(scan[0, 0], center=center, bin_width=width), expected[0, 0],
                               rtol=1e-5)


def test_radial_profile_interpolates_empty_rings():
    """Rings thinner than the pixel spacing hold no pixel: they are interpolated, never NaN (issue 19)."""
    yy, xx = np.mgrid[:9, :9]
    radius = np.hypot(yy - 4.0, xx - 4.0)  # intensity = radius: the profile is the ring radii
    width = 0.1
    profile = stem.radial_profile(radius, bin_width=width)
    bins = np.floor(radius / width).astype(int).ravel()
    counts = np.bincount(bins, minlength=profile.size)
    filled = np.flatnonzero(counts)
    means = np.bincount(bins, radius.ravel())[filled] / counts[filled]
    assert np.isfinite(profile).all() and (counts == 0).sum() > profile.size // 2
    np.testing.assert_allclose(profile[filled], means, rtol=1e-6)
    np.testing.assert_allclose(profile, np.interp(np.arange(profile.size), filled, means), rtol=1e-6)
    flat = stem.radial_profile(np.ones((4, 4)), bin_width=0.2)  # the centre is between pixels: ring 0 is empty
    assert np.isfinite(flat).all() and (flat == 1.0).all()


def test_radial_profile_centre_is_bounded_by_the_detector():
    """A centre far off the detector would make billions of rings (10 GiB before issue 19): refused up front."""
    with pytest.raises(ValueError, match=r"center must be in .*within one detector width"):
        stem.radial_profile(np.ones((32, 32)), center=(1e9, 0))
    assert stem.radial_profile(np.ones((32, 32)), center=(-31, 62)).shape == (int(np.hypot(31 + 31, 62)) + 1,)


# --- other families run over the scan axes --------------------------------------------------


def test_frame_filters_run_over_every_scan_position(scan):
    lazy = filters.median(da.from_array(scan, chunks=(4, 3, 9, 7)), size=3)
    assert isinstance(lazy, da.Array)
    expected = np.stack([[ndi.median_filter(scan[i, j], size=3, mode="reflect") for j in range(SCAN[1])]
                         for i in range(SCAN[0])])
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_operations_are_registered_and_recorded():
    names = {op.name for op in catalog.operations() if op.family == "stem"}
    assert names == {"sum_pattern", "mean_pattern", "max_pattern", "std_pattern", "virtual_detector",
                     "virtual_bright_field", "annular_dark_field", "center_of_mass", "dpc", "radial_profile"}
    assert catalog.get("center_of_mass").output == "images"
    assert catalog.get("virtual_detector").param("mask").optional


@pytest.mark.gpu
def test_gpu_matches_cpu(scan):
    cp = pytest.importorskip("cupy")
    gpu = cp.asarray(scan)
    np.testing.assert_allclose(stem.virtual_detector(gpu, inner=3, outer=8).get(),
                               stem.virtual_detector(scan, inner=3, outer=8), rtol=1e-5)
    com_gpu = stem.center_of_mass(da.from_array(gpu, chunks=(3, 7, 24, 20)), descan="plane")
    np.testing.assert_allclose(com_gpu["com_x"].compute().get(),
                               stem.center_of_mass(scan, descan="plane")["com_x"], atol=1e-4)
    np.testing.assert_allclose(stem.radial_profile(gpu).get(), stem.radial_profile(scan), rtol=1e-5)
    np.testing.assert_allclose(stem.dpc(gpu)["potential"].get(), stem.dpc(scan)["potential"], atol=1e-3)


# --- reductions read straight from the file, several detectors in one pass ---------------------


def _reduced_from_file(result):
    """True when a lazy reduction reads its file itself (the lift's cache-sized groups), not dask's chunks."""
    return any(str(name).startswith("reduce-frames") for name in result.__dask_graph__().layers)


@pytest.mark.parametrize("chunk_bytes", [None, 3000])
def test_detectors_on_a_lazily_read_file_read_it_themselves_and_agree(tmp_path, scan, chunk_bytes):
    from napari_stacklab import io as sio

    path = tmp_path / "scan.npy"
    np.save(path, scan)
    data = sio.imread(path, lazy=True, chunk_bytes=chunk_bytes).data
    ring = stem.annular_dark_field(data, inner=3, outer=9)
    com = stem.center_of_mass(data)
    assert _reduced_from_file(ring) and _reduced_from_file(com["com_y"])
    np.testing.assert_allclose(ring.compute(), stem.annular_dark_field(scan, inner=3, outer=9), rtol=1e-6)
    for part in ("com_y", "com_x"):
        np.testing.assert_allclose(com[part].compute(), stem.center_of_mass(scan)[part], rtol=1e-5, atol=1e-6)
    profile = stem.radial_profile(data, bin_width=2.0)
    assert _reduced_from_file(profile)
    np.testing.assert_allclose(profile.compute(), stem.radial_profile(scan, bin_width=2.0), rtol=1e-6)
    # a view of the file (a slice) is reduced through dask's chunks, with the same values
    part = stem.virtual_detector(data[1:4], outer=6)
    assert not _reduced_from_file(part)
    np.testing.assert_allclose(part.compute(), stem.virtual_detector(scan[1:4], outer=6), rtol=1e-6)


def test_a_merlin_file_is_reduced_from_the_file_despite_headers_byte_order_and_flipped_rows(tmp_path, scan):
    from test_io_em import _write_mib

    from napari_stacklab import io as sio

    path = tmp_path / "scan.mib"
    _write_mib(path, scan.reshape(-1, *DETECTOR), hdr_frames=SCAN[0] * SCAN[1], scan_width=SCAN[1])
    data = sio.imread(path, lazy=True).data
    assert data.dtype.byteorder == ">"  # big-endian on disk: the engine casts it, the file is still read directly
    expected = scan[:, :, ::-1, :]  # RosettaSciIO shows Merlin frames flipped vertically
    mask = np.zeros(DETECTOR, bool)
    mask[2:9, 3:17] = True
    detector = stem.virtual_detector(data, mask=mask)
    assert _reduced_from_file(detector)
    np.testing.assert_allclose(detector.compute(), _loop_detector(expected, mask), rtol=1e-6)


def test_a_file_shortened_while_reduced_is_an_error_naming_it(tmp_path, scan):
    from napari_stacklab import io as sio

    path = tmp_path / "cut.npy"
    np.save(path, scan)
    ring = stem.annular_dark_field(sio.imread(path, lazy=True).data, inner=3, outer=9)
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 500)
    with pytest.raises(ValueError, match="cut.npy"):
        ring.compute()


def test_virtual_images_equal_one_detector_at_a_time_in_one_pass(scan, rng):
    mask = rng.random(DETECTOR).astype(np.float32)
    detectors = {"bf": {"outer": 5}, "adf": {"inner": 6, "outer": 11, "center": (11.0, 9.0)}, "weights": mask,
                 "total": "sum"}
    reads = []

    class Counted:  # an array-like that records every block read from it
        shape, dtype, ndim = scan.shape, scan.dtype, scan.ndim

        def __dask_tokenize__(self):  # else dask hashes a pickled copy, and may read from that copy
            return ("Counted", id(self))

        def __getitem__(self, key):
            reads.append(key)
            return scan[key]

    source = da.from_array(Counted(), chunks=(4, 3, 24, 20))
    reads.clear()  # dask's look at the array's kind
    lazy = stem.virtual_images(source, detectors, com=True)
    eager = stem.virtual_images(scan, detectors, com=True)
    assert sorted(lazy) == sorted(eager) == ["adf", "bf", "com_x", "com_y", "total", "weights"]
    computed = dict(zip(lazy, dask.compute(*lazy.values())))
    assert len(reads) == len(set(map(str, reads))) == source.npartitions  # every block read once for all images
    expected = {
        "bf": stem.virtual_detector(scan, outer=5),
        "adf": stem.virtual_detector(scan, inner=6, outer=11, center=(11.0, 9.0)),
        "weights": _loop_detector(scan, mask),
        "total": scan.sum(axis=(2, 3), dtype=np.float64),
        **stem.center_of_mass(scan),
    }
    for name, values in expected.items():
        np.testing.assert_allclose(eager[name], values, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(computed[name], values, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("detectors, words", [
    ({"ring": {"inner": 2}}, "'outer'"),
    ({"ring": {"outer": 4, "radius": 2}}, "'outer'"),
    ({"x": 3}, "must be a mask"),
    ({"x": np.ones((3, 3))}, "detector shape"),
    ([np.ones(DETECTOR)], "mapping"),
    ({}, "mapping"),
])
def test_virtual_images_refuse_what_is_no_detector(scan, detectors, words):
    with pytest.raises(ValueError, match=words):
        stem.virtual_images(scan, detectors)
