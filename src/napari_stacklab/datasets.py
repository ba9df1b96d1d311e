"""Seeded synthetic sample data with known ground truth (headless; no napari).

Each generator returns an :class:`~napari_stacklab.io.Image` with physical
scale, units and axis labels, and puts the truth an algorithm should recover
in ``metadata``:

- :func:`timelapse` -- a drifting fluorescence time-lapse; ``metadata["true_shifts"]``;
- :func:`stem4d` -- a 4D-STEM scan; ``metadata["true_deflection"]`` and the sample maps;
- :func:`hologram` -- an off-axis electron hologram; ``metadata["true_phase"]`` (> 2 pi, so it wraps).
"""

from __future__ import annotations

import numpy as np

from ._image import Image

__all__ = ["hologram", "stem4d", "timelapse"]


def _blobs(rng: np.random.Generator, shape: tuple, count: int, sigma: tuple, peak: tuple) -> np.ndarray:
    """Sum of axis-aligned Gaussian blobs (separable, so cheap), float64."""
    yy = np.arange(shape[0], dtype=np.float64)
    xx = np.arange(shape[1], dtype=np.float64)
    out = np.zeros(shape)
    for _ in range(count):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        sy, sx = rng.uniform(*sigma, size=2)
        amplitude = rng.uniform(*peak)
        out += amplitude * np.outer(np.exp(-0.5 * ((yy - cy) / sy) ** 2), np.exp(-0.5 * ((xx - cx) / sx) ** 2))
    return out


def timelapse(seed: int = 0, *, frames: int = 24, size: int = 256) -> Image:
    """A drifting, noisy fluorescence time-lapse with known sub-pixel drift.

    Blob-like cells on a dim background drift along a smooth random path;
    each frame is the scene translated by ``metadata["true_shifts"][t]``
    (``(dy, dx)`` in pixels, frame 0 at ``(0, 0)``; the convention of
    ``scipy.ndimage.shift``: content at ``p`` in frame 0 is at ``p + shift``
    in frame ``t``), then Poisson noise. The shift is exact (Fourier shift of
    a periodic scene larger than the frame, cropped).

    Parameters
    ----------
    seed : int
        Random seed; equal seeds give identical data.
    frames, size : int
        Number of frames ``T`` and frame side ``M = N``.

    Returns
    -------
    Image
        ``uint16`` counts of shape ``(T, M, N)``; axes ``("t", "y", "x")``,
        scale 30 s and 0.65 um.

    Examples
    --------
    >>> from napari_stacklab import datasets
    >>> img = datasets.timelapse(seed=1)
    >>> img.shape, img.dtype.name, img.axis_labels, img.metadata["true_shifts"].shape
    ((24, 256, 256), 'uint16', ('t', 'y', 'x'), (24, 2))
    """
    rng = np.random.default_rng(seed)
    margin = 32
    canvas = size + 2 * margin
    scene = 120.0 + _blobs(rng, (canvas, canvas), count=45, sigma=(3.0, 8.0), peak=(300.0, 1200.0))
    steps = rng.normal(0.0, 0.35, size=(frames, 2)) + np.array([0.25, -0.15])
    steps[0] = 0.0
    shifts = np.cumsum(steps, axis=0)
    spectrum = np.fft.rfft2(scene)
    ky = np.fft.fftfreq(canvas)[:, None]
    kx = np.fft.rfftfreq(canvas)[None, :]
    stack = np.empty((frames, size, size), np.uint16)
    for t, (dy, dx) in enumerate(shifts):
        moved = np.fft.irfft2(spectrum * np.exp(-2j * np.pi * (ky * dy + kx * dx)), s=scene.shape)
        expected = np.clip(moved[margin : margin + size, margin : margin + size], 0, None)
        stack[t] = np.minimum(rng.poisson(expected), np.iinfo(np.uint16).max)
    return Image(
        stack,
        scale=(30.0, 0.65, 0.65),
        units=("s", "um", "um"),
        axis_labels=("t", "y", "x"),
        metadata={"true_shifts": shifts, "seed": seed, "description": "generated drifting time-lapse"},
        name="timelapse",
    )


def stem4d(seed: int = 0, *, scan: int = 32, detector: int = 64) -> Image:
    """A small 4D-STEM scan: a bright-field disk modulated by a sample.

    The sample is a set of nanoparticles (projected potential ``V``). At each
    scan position the bright-field disk (radius ``metadata["bf_radius"]``
    pixels around ``metadata["center"]``) is dimmed by ``exp(-V)``, the
    scattered intensity goes to an annulus outside it (so an annular dark
    field image shows the particles bright), and the disk is deflected by
    ``metadata["true_deflection"]`` (``(scan, scan, 2)`` detector pixels,
    proportional to the gradient of ``V``), so centre-of-mass maps show the
    particle edges. Poisson counts.

    Parameters
    ----------
    seed : int
        Random seed.
    scan, detector : int
        Scan side ``(Sy = Sx)`` and detector side ``(Ky = Kx)``.

    Returns
    -------
    Image
        ``uint16`` counts of shape ``(Sy, Sx, Ky, Kx)``; axes
        ``("scan_y", "scan_x", "ky", "kx")``, scan scale 0.4 nm, detector 0.5 mrad.

    Examples
    --------
    >>> from napari_stacklab import datasets
    >>> data = datasets.stem4d()
    >>> data.shape, data.dtype.name, data.axis_labels[2:], data.units[:2]
    ((32, 32, 64, 64), 'uint16', ('ky', 'kx'), ('nm', 'nm'))
    """
    rng = np.random.default_rng(seed)
    potential = _blobs(rng, (scan, scan), count=6, sigma=(1.5, 4.0), peak=(0.4, 1.2))
    gy, gx = np.gradient(potential)
    deflection = 4.0 * np.stack([gy, gx], axis=-1)
    center = (detector / 2.0, detector / 2.0)
    radius = detector / 6.0
    k = np.arange(detector, dtype=np.float32)
    ky = k[None, None, :, None] - (center[0] + deflection[..., 0, None, None]).astype(np.float32)
    kx = k[None, None, None, :] - (center[1] + deflection[..., 1, None, None]).astype(np.float32)
    r = np.sqrt(ky**2 + kx**2)
    disk = 1.0 / (1.0 + np.exp((r - radius) / 0.7))
    transmission = np.exp(-potential)[..., None, None].astype(np.float32)
    annulus = np.exp(-0.5 * ((r - 2.2 * radius) / (0.6 * radius)) ** 2)
    expected = 40.0 * disk * transmission + 6.0 * (1 - transmission) * annulus + 0.05
    counts = rng.poisson(expected).astype(np.uint16)
    return Image(
        counts,
        scale=(0.4, 0.4, 0.5, 0.5),
        units=("nm", "nm", "mrad", "mrad"),
        axis_labels=("scan_y", "scan_x", "ky", "kx"),
        metadata={
            "true_deflection": deflection,
            "true_potential": potential,
            "center": center,
            "bf_radius": radius,
            "seed": seed,
            "description": "generated 4D-STEM scan",
        },
        name="stem4d",
    )


def hologram(seed: int = 0, *, size: int = 256) -> Image:
    """An off-axis electron hologram of a phase object whose phase exceeds 2 pi.

    ``I = 1 + A**2 + 2 * mu * A * cos(2 pi (qy y + qx x) + phi)`` with
    fringe contrast ``mu = 0.6``, carrier ``q = metadata["carrier"]``
    (cycles per pixel, NumPy FFT convention: the sideband at ``+q`` carries
    ``A * exp(1j * phi)``), object amplitude ``A`` and phase ``phi =
    metadata["true_phase"]`` (radians, peak about ``3 * 2 pi``, so it
    wraps), recorded as Poisson counts (about 200 per pixel).

    Parameters
    ----------
    seed : int
        Random seed.
    size : int
        Side ``M = N`` of the hologram.

    Returns
    -------
    Image
        ``float32`` counts of shape ``(M, N)``; axes ``("y", "x")``, scale 0.5 nm.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_stacklab import datasets
    >>> holo = datasets.hologram()
    >>> holo.shape, holo.dtype.name, bool(holo.metadata["true_phase"].max() > 2 * np.pi)
    ((256, 256), 'float32', True)
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = size / 2 + rng.uniform(-8, 8, size=2)
    radius2 = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (size / 6.0) ** 2
    phase = 3.0 * 2 * np.pi * np.exp(-0.5 * radius2)
    phase += 0.3 * _blobs(rng, (size, size), count=8, sigma=(6.0, 14.0), peak=(-1.0, 1.0))
    amplitude = 1.0 - 0.15 * np.exp(-0.5 * radius2)
    carrier = (0.11, 0.21)
    mu = 0.6
    fringes = np.cos(2 * np.pi * (carrier[0] * yy + carrier[1] * xx) + phase)
    intensity = 1.0 + amplitude**2 + 2 * mu * amplitude * fringes
    dose = 100.0
    counts = rng.poisson(dose * intensity).astype(np.float32)
    return Image(
        counts,
        scale=(0.5, 0.5),
        units=("nm", "nm"),
        axis_labels=("y", "x"),
        metadata={
            "true_phase": phase,
            "true_amplitude": amplitude,
            "carrier": carrier,
            "fringe_contrast": mu,
            "seed": seed,
            "description": "generated off-axis hologram",
        },
        name="hologram",
    )
