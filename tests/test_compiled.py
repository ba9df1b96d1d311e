"""The compiled host kernels against NumPy as the oracle, and the NumPy path they replace."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stacklab import _compiled, stem

numba = pytest.importorskip("numba")

FRAME_DTYPES = [np.bool_, np.uint8, np.uint16, np.int16, np.uint32, np.int64, np.float32, np.float64]


@pytest.mark.parametrize("dtype", FRAME_DTYPES)
@pytest.mark.parametrize("weights_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_frames", [0, 1, 3, 4, 9])
@pytest.mark.parametrize("n_weights", [1, 3, 5])
def test_weighted_sums_equal_a_float64_matrix_product(rng, dtype, weights_dtype, n_frames, n_weights):
    frames = rng.integers(0, 200, (n_frames, 7 * 11)).astype(dtype)
    weights = rng.normal(size=(n_weights, 7 * 11)).astype(weights_dtype)
    got = _compiled.frame_weighted_sums(frames, weights)
    expected = frames.astype(np.float64) @ weights.astype(np.float64).T
    assert got.dtype == weights_dtype and got.shape == (n_frames, n_weights)
    tolerance = 1e-5 if weights_dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * np.abs(expected).max(initial=1))


def test_strided_frames_are_read_in_place(rng):
    frames = rng.integers(0, 1000, (12, 64)).astype(np.uint16)[::3, ::2]  # neither axis contiguous
    weights = rng.random((2, 32))
    np.testing.assert_allclose(_compiled.frame_weighted_sums(frames, weights), frames @ weights.T, rtol=1e-12)


def test_nan_and_infinity_reach_the_result():
    frames = np.ones((5, 16), np.float32)
    frames[1, 3], frames[2, 0], frames[3, 15] = np.nan, np.inf, -np.inf
    got = _compiled.frame_weighted_sums(frames, np.ones((1, 16), np.float32))[:, 0]
    assert got[0] == 16 and got[4] == 16
    assert np.isnan(got[1]) and got[2] == np.inf and got[3] == -np.inf


@pytest.mark.parametrize("frames, weights", [
    (np.ones((2, 4), ">u2"), np.ones((1, 4), np.float32)),  # another byte order
    (np.ones((2, 4), np.complex64), np.ones((1, 4), np.float32)),  # no real dtype
    (np.ones((2, 4), np.uint16), np.ones((1, 4), np.int32)),  # integer weights
    (np.ones((2, 4), np.uint16), np.ones((1, 5), np.float32)),  # shapes that do not match
])
def test_what_the_kernel_does_not_take_is_left_to_numpy(frames, weights):
    assert _compiled.frame_weighted_sums(frames, weights) is None


@pytest.fixture
def without_numba(monkeypatch):
    """Numba missing (or built for another NumPy): every kernel is unavailable."""
    monkeypatch.setattr(_compiled, "_numba", lambda: None)
    monkeypatch.setattr(_compiled, "_KERNELS", {})


def test_without_numba_the_detectors_use_numpy_and_agree(rng, without_numba):
    scan = rng.integers(0, 500, (3, 4, 16, 16)).astype(np.uint16)
    assert _compiled.frame_weighted_sums(scan.reshape(12, -1), np.ones((1, 256), np.float32)) is None
    images = stem.virtual_images(scan, {"ring": {"inner": 2, "outer": 6}, "all": "sum"}, com=True)
    np.testing.assert_allclose(images["all"], scan.sum(axis=(-2, -1)), rtol=1e-6)
    mask = stem.detector_mask((16, 16), inner=2, outer=6)
    np.testing.assert_allclose(images["ring"], (scan * mask).sum(axis=(-2, -1)), rtol=1e-6)


def test_compiled_and_numpy_centres_of_mass_agree_and_a_big_endian_scan_gives_the_same(rng, monkeypatch):
    scan = rng.integers(0, 500, (2, 5, 12, 12)).astype(np.uint16)
    compiled = stem.center_of_mass(scan)
    swapped = stem.center_of_mass(scan.astype(">u2"))  # a Merlin file read eagerly: NumPy's path
    monkeypatch.setattr(_compiled, "_numba", lambda: None)
    monkeypatch.setattr(_compiled, "_KERNELS", {})
    numpy_path = stem.center_of_mass(scan)
    for key in ("com_y", "com_x"):
        assert np.abs(compiled[key]).max() > 0.05  # the shifts are not all zero: the check can fail
        np.testing.assert_allclose(compiled[key], numpy_path[key], atol=1e-5)
        np.testing.assert_allclose(swapped[key], numpy_path[key], atol=1e-5)


def test_importing_the_package_does_not_import_numba():
    import subprocess
    import sys

    code = "import sys, napari_stacklab, napari_stacklab.stem; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
