"""Generated sample data: shapes, metadata, determinism, and that the stated truth is recoverable."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.filters import window
from skimage.registration import phase_cross_correlation
from skimage.restoration import unwrap_phase

from napari_stacklab import datasets


@pytest.mark.parametrize("make", [datasets.timelapse, datasets.stem4d, datasets.hologram])
def test_seeded_and_deterministic(make):
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    assert len(a.scale) == len(a.units) == len(a.axis_labels) == a.ndim


def test_timelapse_true_shifts_recovered_by_skimage():
    img = datasets.timelapse(seed=0)
    assert img.shape == (24, 256, 256) and img.dtype == np.uint16
    assert img.units == ("s", "um", "um") and img.axis_labels == ("t", "y", "x")
    shifts = img.metadata["true_shifts"]
    assert shifts.shape == (24, 2) and np.all(shifts[0] == 0)
    assert np.abs(shifts[-1]).max() > 2 and np.any(np.abs(shifts - np.round(shifts)) > 0.1)  # drifts, sub-pixel
    frames = img.data.astype(np.float32)
    hann = window("hann", frames.shape[1:])
    reference = (frames[0] - frames[0].mean()) * hann
    for t in (1, 5, 23):
        # phase_cross_correlation(reference, moving) returns the shift that registers moving onto reference
        moving = (frames[t] - frames[t].mean()) * hann
        found, _, _ = phase_cross_correlation(reference, moving, upsample_factor=20, normalization=None)
        np.testing.assert_allclose(-found, shifts[t], atol=0.1)
        # OpenCV ECC (translation): warp maps reference coordinates to moving ones, columns are (x, y)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
        _, warp = cv2.findTransformECC(frames[0], frames[t], np.eye(2, 3, dtype=np.float32),
                                       cv2.MOTION_TRANSLATION, criteria, None, 5)
        np.testing.assert_allclose(warp[::-1, 2], shifts[t], atol=0.05)


def test_stem4d_bright_field_and_centre_of_mass_show_the_sample():
    img = datasets.stem4d(seed=0)
    assert img.shape == (32, 32, 64, 64) and img.dtype == np.uint16
    assert img.axis_labels == ("scan_y", "scan_x", "ky", "kx") and img.units == ("nm", "nm", "mrad", "mrad")
    cy, cx = img.metadata["center"]
    radius = img.metadata["bf_radius"]
    ky, kx = np.mgrid[0:64, 0:64]
    r = np.hypot(ky - cy, kx - cx)
    data = img.data.astype(np.float64)
    bright = (data * (r < radius)).sum(axis=(2, 3))
    dark = (data * ((r > 1.5 * radius) & (r < 3 * radius))).sum(axis=(2, 3))
    potential = img.metadata["true_potential"]
    assert np.corrcoef(bright.ravel(), potential.ravel())[0, 1] < -0.9
    assert np.corrcoef(dark.ravel(), potential.ravel())[0, 1] > 0.8
    disk = data * (r < 1.3 * radius)
    total = disk.sum(axis=(2, 3))
    com = np.stack([(disk * ky).sum(axis=(2, 3)) / total - cy, (disk * kx).sum(axis=(2, 3)) / total - cx], -1)
    truth = img.metadata["true_deflection"]
    assert np.corrcoef(com.ravel(), truth.ravel())[0, 1] > 0.9


def test_hologram_sideband_gives_the_true_phase():
    img = datasets.hologram(seed=0)
    assert img.shape == (256, 256) and img.dtype == np.float32 and img.units == ("nm", "nm")
    phase = img.metadata["true_phase"]
    assert phase.max() - phase.min() > 2 * np.pi  # it wraps
    qy, qx = img.metadata["carrier"]
    spectrum = np.fft.fft2(img.data - img.data.mean())
    fy = np.fft.fftfreq(256)[:, None]
    fx = np.fft.fftfreq(256)[None, :]
    mask = np.hypot(fy - qy, fx - qx) < 0.07
    yy, xx = np.mgrid[0:256, 0:256]
    wave = np.fft.ifft2(spectrum * mask) * np.exp(-2j * np.pi * (qy * yy + qx * xx))
    recovered = unwrap_phase(np.angle(wave))
    inner = (slice(32, -32), slice(32, -32))
    error = recovered[inner] - phase[inner]
    error -= np.median(error)  # the absolute phase offset is arbitrary
    assert np.sqrt(np.mean(error**2)) < 0.15
