"""Complex split, phase unwrapping and off-axis hologram reconstruction."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from skimage import data, restoration

from napari_stacklab import phase

TWO_PI = 2 * np.pi


def _smooth_phase(shape=(128, 160), amplitude=25.0, seed=0):
    """A smooth phase of many turns: a tilted plane plus two Gaussian bumps (radians)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    cy, cx = rng.uniform(0.3, 0.7, 2) * shape
    bump = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (shape[0] / 5) ** 2))
    dip = np.exp(
        -((yy - shape[0] * 0.8) ** 2 + (xx - shape[1] * 0.2) ** 2) / (2 * (shape[0] / 8) ** 2)
    )
    return amplitude * bump - 0.5 * amplitude * dip + 0.05 * xx + 0.03 * yy


def _smooth_volume(depth=6, shape=(48, 64)):
    """A phase volume that also changes slowly along the first axis."""
    frame = _smooth_phase(shape, amplitude=12)
    return np.stack([frame * (1 + 0.05 * z) + 0.3 * z for z in range(depth)])


def _remove_2pi_k(a, b):
    """Difference ``a - b`` after removing the best constant multiple of 2 pi."""
    diff = a - b
    return diff - TWO_PI * np.round(np.nanmedian(diff) / TWO_PI)


def _wrapped(phi):
    return np.angle(np.exp(1j * phi))


# --- complex data --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, real", [(np.complex64, np.float32), (np.complex128, np.float64)])
def test_complex_split_matches_numpy(dtype, real):
    rng = np.random.default_rng(1)
    z = (rng.normal(size=(2, 16, 20)) + 1j * rng.normal(size=(2, 16, 20))).astype(dtype)
    parts = phase.complex_split(z)
    expected = {"amplitude": np.abs(z), "phase": np.angle(z), "real": z.real, "imag": z.imag}
    assert sorted(parts) == sorted(expected)
    for name, value in expected.items():
        assert parts[name].dtype == real
        np.testing.assert_allclose(parts[name], value, rtol=1e-6)
    lazy = phase.complex_split(da.from_array(z, chunks=(1, 5, 7)))
    assert all(isinstance(v, da.Array) for v in lazy.values())
    np.testing.assert_allclose(lazy["phase"].compute(), np.angle(z), rtol=1e-6)


def test_wrap_folds_into_half_open_interval():
    phi = np.linspace(-20, 20, 400).reshape(20, 20)
    out = phase.wrap(phi)
    assert out.min() >= -np.pi and out.max() < np.pi
    np.testing.assert_allclose(np.exp(1j * out), np.exp(1j * phi), atol=1e-12)


# --- unwrapping --------------------------------------------------------------------------------


def test_exact_unwrap_equals_skimage():
    wrapped = _wrapped(_smooth_phase())
    noisy = _wrapped(wrapped + np.random.default_rng(2).normal(0, 0.6, wrapped.shape))  # residues
    for phi in (wrapped, noisy):
        out = phase.unwrap(phi, method="exact")
        expected = restoration.unwrap_phase(phi, rng=0)
        assert np.abs(_remove_2pi_k(out, expected)).max() < 1e-6
        np.testing.assert_allclose(_wrapped(out), phi, atol=1e-6)  # re-wraps to the input


def test_exact_unwrap_of_a_stack_and_a_volume():
    phis = np.stack([_smooth_phase((64, 80), seed=s) for s in range(3)])
    wrapped = _wrapped(phis)
    out = phase.unwrap(da.from_array(wrapped, chunks=(2, 40, 50)), method="exact")
    assert isinstance(out, da.Array)
    out = out.compute()
    for frame_out, frame_true in zip(out, phis):
        assert np.abs(_remove_2pi_k(frame_out, frame_true)).max() < 1e-6
    smooth = _wrapped(_smooth_volume())
    volume = phase.unwrap(smooth, method="exact", volume=True)
    assert np.abs(_remove_2pi_k(volume, restoration.unwrap_phase(smooth, rng=0))).max() < 1e-6


def test_exact_unwrap_with_mask_equals_skimage_masked_array():
    phi = _smooth_phase()
    yy, xx = np.mgrid[: phi.shape[0], : phi.shape[1]]
    mask = (yy - 64) ** 2 + (xx - 80) ** 2 < 55**2
    out = phase.unwrap(_wrapped(phi), method="exact", mask=mask)
    expected = restoration.unwrap_phase(np.ma.masked_array(_wrapped(phi), ~mask), rng=0)
    assert np.isnan(out[~mask]).all()
    assert np.abs(_remove_2pi_k(out[mask], expected.data[mask])).max() < 1e-6


@pytest.mark.parametrize("shape", [(1, 4), (5, 8), (7, 6)])
def test_fft_based_dct_matches_scipy(shape):
    import scipy.fft

    x = np.random.default_rng(5).normal(size=shape)
    for axis in (0, 1):
        np.testing.assert_allclose(phase._dct(x, axis), scipy.fft.dct(x, axis=axis), atol=1e-12)
        np.testing.assert_allclose(phase._idct(scipy.fft.dct(x, axis=axis), axis), x, atol=1e-12)


def test_fast_unwrap_recovers_a_smooth_phase():
    true = _smooth_phase()
    out = phase.unwrap(_wrapped(true).astype(np.float32), method="fast")
    assert out.dtype == np.float32
    # no residues: the least-squares solution is the true phase up to a constant
    assert np.abs((out - out.mean()) - (true - true.mean())).max() < 1e-5  # solved in float64
    out64 = phase.unwrap(_wrapped(true), method="fast")
    assert np.abs((out64 - out64.mean()) - (true - true.mean())).max() < 1e-8


def test_fast_unwrap_with_noise_stays_close():
    true = _smooth_phase()
    noisy = _wrapped(true + np.random.default_rng(3).normal(0, 0.3, true.shape))
    out = phase.unwrap(noisy, method="fast")
    error = (out - out.mean()) - (true - true.mean())
    assert np.sqrt(np.mean(error**2)) < 0.3


def test_fast_unwrap_with_mask_ignores_the_outside():
    true = _smooth_phase()
    yy, xx = np.mgrid[: true.shape[0], : true.shape[1]]
    mask = (yy - 64) ** 2 + (xx - 80) ** 2 < 55**2
    garbage = np.random.default_rng(4).uniform(-np.pi, np.pi, true.shape)
    wrapped = np.where(mask, _wrapped(true), garbage)
    out = phase.unwrap(wrapped, method="fast", mask=mask)
    assert np.isnan(out[~mask]).all()
    error = (out - true)[mask]
    assert np.abs(error - error.mean()).max() < 1e-4
    unmasked = phase.unwrap(wrapped, method="fast")
    assert (
        np.abs((unmasked - true)[mask] - (unmasked - true)[mask].mean()).max() > 0.1
    )  # the mask mattered


def test_fast_unwrap_volume_and_dask_stack():
    phis = np.stack([_smooth_phase((48, 64), amplitude=12, seed=s) for s in range(4)])
    wrapped = _wrapped(phis)
    lazy = phase.unwrap(da.from_array(wrapped, chunks=(3, 20, 30)), method="fast")
    assert isinstance(lazy, da.Array)
    expected = np.stack([phase.unwrap(w, method="fast") for w in wrapped])
    np.testing.assert_allclose(lazy.compute(), expected, atol=1e-10)
    true = _smooth_volume()
    volume = phase.unwrap(_wrapped(true), method="fast", volume=True)
    diff = volume - true
    assert np.abs(diff - diff.mean()).max() < 1e-6


# --- holography --------------------------------------------------------------------------------


def _hologram(shape=(256, 256), carrier=(20.3, 45.7), phase_amplitude=6.0, contrast=0.6, seed=0):
    """Synthetic off-axis hologram ``|r + psi|^2``-like with a known wave ``A exp(i phi)``.

    Returns (hologram, reference hologram, amplitude, phase). The carrier is
    the sideband position in FFT pixels; the twin at ``-carrier`` is the conjugate.
    """
    m, n = shape
    yy, xx = np.mgrid[:m, :n].astype(float)
    rng = np.random.default_rng(seed)
    cy, cx = rng.uniform(0.4, 0.6, 2) * shape
    phi = phase_amplitude * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 30.0**2))
    amp = 1.0 - 0.3 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 40.0**2))
    fringe = 2 * np.pi * (carrier[0] * yy / m + carrier[1] * xx / n)
    biprism = 1 + 0.05 * np.cos(xx / 9.0)  # a slow "Fresnel" modulation present in both
    holo = biprism * (1 + amp**2 + 2 * contrast * amp * np.cos(fringe + phi))
    reference = biprism * (2 + 2 * contrast * np.cos(fringe))
    return holo * 1000, reference * 1000, amp, phi


INNER = (slice(40, -40), slice(40, -40))


def test_find_sideband_is_subpixel():
    holo, _, _, _ = _hologram()
    ky, kx = phase.find_sideband(holo)
    assert abs(ky - 20.3) < 0.25 and abs(kx - 45.7) < 0.25


def test_reconstruct_hologram_with_reference_recovers_amplitude_and_phase():
    holo, reference, amp, phi = _hologram()
    out = phase.reconstruct_hologram(holo.astype(np.float32), reference=reference)
    assert sorted(out) == ["amplitude", "phase"] and out["phase"].dtype == np.float32
    phase_error = np.angle(np.exp(1j * (out["phase"] - phi)))[INNER]
    assert np.abs(phase_error).max() < 0.05
    assert np.abs(out["amplitude"][INNER] - amp[INNER]).max() < 0.05
    # the whole chain: unwrapping the reconstructed phase gives the 6 rad bump back
    unwrapped = phase.unwrap(out["phase"], method="exact")
    assert np.abs(_remove_2pi_k(unwrapped, phi)[INNER]).max() < 0.05


def test_hologram_wave_without_reference_on_an_integer_carrier():
    holo, _, _, phi = _hologram(carrier=(16, 40))
    wave = phase.hologram_wave(holo, sideband=(16, 40), aperture_radius=14)
    assert wave.dtype == np.complex128
    error = np.angle(wave * np.exp(-1j * phi))[INNER]
    assert np.abs(error - np.median(error)).max() < 0.1
    conjugate = phase.hologram_wave(holo, sideband=(-16, -40), aperture_radius=14)
    np.testing.assert_allclose(conjugate, np.conj(wave), atol=1e-6 * np.abs(wave).max())


def test_reconstruct_hologram_dask_stack_equals_frames():
    holo, reference, _, _ = _hologram(shape=(128, 128), carrier=(10.2, 30.4))
    stack = np.stack([holo, np.roll(holo, 9, axis=0), holo[::-1]])
    lazy = phase.reconstruct_hologram(da.from_array(stack, chunks=(2, 50, 70)), reference=reference)
    assert isinstance(lazy["phase"], da.Array)
    sideband = phase.find_sideband(reference)
    for i, frame in enumerate(stack):
        eager = phase.reconstruct_hologram(frame, reference=reference, sideband=sideband)
        np.testing.assert_allclose(lazy["phase"][i].compute(), eager["phase"], atol=1e-9)


def test_datasets_hologram_chain_recovers_the_true_phase():
    datasets = pytest.importorskip("napari_stacklab.datasets")
    if not hasattr(datasets, "hologram"):
        pytest.skip("napari_stacklab.datasets.hologram is not available")
    sample = datasets.hologram()
    carrier = tuple(
        np.asarray(sample.metadata["carrier"]) * np.asarray(sample.shape)
    )  # cycles/px -> FFT px
    assert np.hypot(*np.subtract(phase.find_sideband(sample.data), carrier)) < 0.2
    out = phase.reconstruct_hologram(sample.data, sideband=carrier)
    inner = (slice(32, -32), slice(32, -32))
    for method in ("exact", "fast"):
        unwrapped = phase.unwrap(out["phase"], method=method)
        error = (unwrapped - sample.metadata["true_phase"])[inner]
        assert np.abs(error - np.median(error)).max() < 0.15  # Poisson counts, about 200 per pixel


# --- no data, no fringes (issue 9) ----------------------------------------------------------

_NAN_UNWRAP_CHECK = """
import numpy as np
import dask.array as da
from skimage import restoration
from napari_stacklab import phase

yy, xx = np.mgrid[:48, :64].astype(float)
true = 0.3 * xx + 0.2 * yy + 4 * np.exp(-((yy - 24) ** 2 + (xx - 30) ** 2) / 150)
wrapped = np.angle(np.exp(1j * true))
wrapped[3, 3] = np.nan
wrapped[30, 40] = np.inf
wrapped[10, 50] = -np.inf
finite = np.isfinite(wrapped)
user = np.ones(true.shape, bool)
user[20:26, 5:12] = False
oracle = restoration.unwrap_phase(np.ma.masked_array(np.nan_to_num(wrapped), ~(finite & user)), rng=0)
for method, tolerance in (("exact", 1e-6), ("fast", 1e-3)):
    for mask in (None, user):
        valid = finite if mask is None else finite & mask
        out = phase.unwrap(wrapped, method=method, mask=mask)
        assert np.isnan(out[~valid]).all() and np.isfinite(out[valid]).all(), (method, mask is None)
        error = (out - true)[valid]
        assert np.abs(error - np.median(error)).max() < tolerance, (method, np.abs(error - np.median(error)).max())
    if method == "exact":
        assert np.abs((out - oracle.data)[finite & user] - 2 * np.pi * np.round(np.median((out - oracle.data)[finite & user]) / (2 * np.pi))).max() < 1e-6
    # non-finite pixels are masked frame by frame; a frame without data is all NaN
    stack = np.stack([np.angle(np.exp(1j * true)), wrapped, np.full(true.shape, np.nan)]).astype(np.float32)
    lazy = phase.unwrap(da.from_array(stack, chunks=(2, 20, 30)), method=method).compute()
    eager = phase.unwrap(stack, method=method)
    assert lazy.dtype == eager.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(lazy), np.isnan(eager))
    assert not np.isnan(eager[0]).any() and np.isnan(eager[1]).sum() == 3 and np.isnan(eager[2]).all()
print("ok")
"""


def test_unwrap_treats_non_finite_pixels_as_masked_and_never_hangs():
    """NaN/inf = no data: masked (with the user's mask), NaN in the output; killed after 60 s if it hangs."""
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-c", _NAN_UNWRAP_CHECK], timeout=60, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail("phase.unwrap hangs on non-finite pixels")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize("value", [0.0, 7.0])
def test_reconstruct_hologram_refuses_a_hologram_without_fringes(value):
    flat = np.full((64, 64), value, np.float32)
    with pytest.raises(ValueError, match="no sideband found: the hologram is constant"):
        phase.reconstruct_hologram(flat)
    with pytest.raises(ValueError, match="hologram is constant"):
        phase.find_sideband(flat)
    holo, _, _, _ = _hologram(shape=(128, 128), carrier=(10, 30))
    with pytest.raises(ValueError, match="no sideband found: the reference is constant"):
        phase.reconstruct_hologram(holo, reference=np.full(holo.shape, value))
    with pytest.raises(ValueError, match="reference has no fringes"):
        phase.reconstruct_hologram(holo, sideband=(10, 30), reference=np.full(holo.shape, value))
    # an explicit sideband on a flat hologram is a valid (if empty) request: finite zeros, no NaN
    out = phase.reconstruct_hologram(flat, sideband=(10, 30))
    assert all(np.isfinite(v).all() for v in out.values())


# --- invalid parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda x: phase.unwrap(x, method="quick"), ValueError, "method"),
        (lambda x: phase.unwrap(x, mask=np.ones((3, 3), bool)), ValueError, "mask"),
        (lambda x: phase.unwrap(x, volume="yes"), TypeError, "volume"),
        (lambda x: phase.unwrap(x.astype(np.complex64)), TypeError, "dtype"),
        (lambda x: phase.reconstruct_hologram(x, sideband=(1, 2, 3)), ValueError, "sideband"),
        (
            lambda x: phase.reconstruct_hologram(x, aperture_radius=-1.0),
            ValueError,
            "aperture_radius",
        ),
        (
            lambda x: phase.reconstruct_hologram(x, aperture_smoothness=2.0),
            ValueError,
            "aperture_smoothness",
        ),
        (lambda x: phase.reconstruct_hologram(x, reference=x[:10]), ValueError, "reference"),
        (lambda x: phase.hologram_wave(x, aperture_radius="big"), TypeError, "aperture_radius"),
    ],
)
def test_invalid_parameters_name_the_parameter(call, error, name):
    with pytest.raises(error, match=name):
        call(data.camera()[:64, :64].astype(np.float32))


@pytest.mark.gpu
def test_fast_unwrap_and_hologram_on_gpu_match_cpu():
    cp = pytest.importorskip("cupy")
    true = _smooth_phase()
    wrapped = _wrapped(true)
    gpu = phase.unwrap(cp.asarray(wrapped), method="fast")
    assert isinstance(gpu, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(gpu), phase.unwrap(wrapped, method="fast"), atol=1e-8)
    holo, reference, _, _ = _hologram()
    out = phase.reconstruct_hologram(cp.asarray(holo), reference=cp.asarray(reference))
    expected = phase.reconstruct_hologram(holo, reference=reference)
    np.testing.assert_allclose(cp.asnumpy(out["phase"]), expected["phase"], atol=1e-6)


@pytest.mark.parametrize("method", ["exact", "fast"])
def test_unwrap_with_one_mask_per_frame(method):
    y, x = np.mgrid[:48, :48] / 48.0
    true = np.stack([20 * (x - 0.5) ** 2 + k * y for k in (5, 10, 15)]).astype(np.float32)
    wrapped = np.angle(np.exp(1j * true)).astype(np.float32)
    masks = np.ones(true.shape, bool)
    masks[:, 20:24, 20:24] = False
    masks[1, :5] = False
    expected = np.stack([phase.unwrap(w, mask=m, method=method) for w, m in zip(wrapped, masks)])
    np.testing.assert_array_equal(phase.unwrap(wrapped, mask=masks, method=method), expected)
    lazy = phase.unwrap(da.from_array(wrapped, chunks=(1, 48, 48)), mask=da.from_array(masks, chunks=(3, 24, 48)),
                        method=method)
    np.testing.assert_array_equal(lazy.compute(), expected)
    assert np.isnan(expected[1, :5]).all() and np.isfinite(expected[0, :5]).all()
    with pytest.raises(ValueError, match=r"mask must have the frame shape \(48, 48\) .* or the image's shape"):
        phase.unwrap(wrapped, mask=masks[:, :10], method=method)
