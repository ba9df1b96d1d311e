"""Sub-pixel translation by phase correlation (Guizar-Sicairos et al., Opt. Lett. 33, 2008)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, get_args

import numpy as np

from .. import _backend
from .._validation import check_ndim, check_real, check_same_shape, float_dtype
from ..registry import ImageRef, Range, validated
from ._transform import Transform

__all__ = ["phase_correlation", "phase_shift", "rotation_scale", "noise_level", "WINDOWS"]

Window = Literal["hann", "none"]
#: Apodisation before the FFT: a Hann window (for real, non-periodic images) or none.
WINDOWS: tuple[str, ...] = get_args(Window)


def _window(shape: tuple, xp: Any, dtype: Any = np.float64) -> Any:
    """Separable Hann window of ``shape``."""
    out = None
    for axis, size in enumerate(shape):
        w = xp.asarray(np.hanning(size).astype(dtype))
        w = w.reshape((1,) * axis + (size,) + (1,) * (len(shape) - axis - 1))
        out = w if out is None else out * w
    return out


def _upsampled_dft(data: Any, region: int, factor: int, offsets: Any, xp: Any) -> Any:
    """Inverse DFT of ``data`` on a ``region``-sized grid ``factor`` times finer, starting at ``offsets``."""
    for axis in reversed(range(data.ndim)):
        n = data.shape[-1]  # tensordot moves each finished axis to the front
        freqs = xp.fft.fftfreq(n, factor)
        kernel = xp.exp(-2j * math.pi * (xp.arange(region) - offsets[axis])[:, None] * freqs[None, :])
        data = xp.tensordot(kernel.astype(data.dtype), data, axes=(1, -1))
    return data


def _full_spectrum(half: Any, shape: tuple, xp: Any) -> Any:
    """The whole spectrum of a real signal of ``shape`` from its ``rfftn`` half (Hermitian symmetry)."""
    n = shape[-1]
    mirrored = xp.conj(half[..., 1 : n - n // 2][..., ::-1])  # columns n - 1 .. n // 2 + 1
    for axis in range(len(shape) - 1):  # and every other frequency k -> -k (mod the size)
        mirrored = xp.roll(xp.flip(mirrored, axis=axis), 1, axis=axis)
    return xp.concatenate([half, mirrored], axis=-1)


def prepare(image: Any, window: str) -> Any:
    """``image`` as phase correlation sees it: float, and for ``window="hann"`` mean-free and apodised."""
    xp, _ = _backend.get_namespace(image)
    image = image.astype(float_dtype(image.dtype), copy=False)
    if window == "hann":
        image = (image - image.mean()) * _window(image.shape, xp, image.dtype)
    return image


def spectrum(image: Any, window: str) -> Any:
    """The half Fourier transform phase correlation uses (:func:`prepare`, then ``rfftn``); cache it for a
    reference."""
    return _backend.fft_module(image).rfftn(prepare(image, window))


def cross_power(fixed_spectrum: Any, moving_spectrum: Any) -> Any:
    """Normalised cross-power spectrum of two spectra (:func:`spectrum`): its inverse FFT peaks at the shift."""
    xp, _ = _backend.get_namespace(fixed_spectrum)
    product = fixed_spectrum * moving_spectrum.conj()
    magnitude = xp.abs(product)
    return product / xp.maximum(magnitude, 1e-12 * float(magnitude.max()) + 1e-30)


def noise_level(shape: tuple) -> float:
    """Typical height of the phase-correlation peak of two unrelated images of ``shape``.

    The normalised cross-power spectrum of unrelated images has random
    phases, so its inverse transform is complex noise of variance ~``1 / n``
    and the largest of its ``n`` values is about ``sqrt(log(n) / n)``
    (Hann-windowed unrelated images reach about twice that).
    """
    n = int(np.prod(shape))
    return math.sqrt(math.log(max(n, 2)) / n)


def peak_shift(product: Any, shape: tuple, *, upsample: int, parabolic: bool = False) -> tuple[np.ndarray, float]:
    """``(shift, peak)`` from the normalised cross-power spectrum (:func:`cross_power`) of images of ``shape``.

    ``parabolic`` (with ``upsample=1``): a parabola through the peak and its
    two neighbours along each axis gives a free sub-pixel estimate (~0.1 px).
    """
    xp, _ = _backend.get_namespace(product)
    shape = tuple(int(s) for s in shape)
    correlation = _backend.fft_module(product).irfftn(product, s=shape)
    peak_index = np.unravel_index(int(xp.argmax(correlation)), shape)
    size = np.array(shape)
    shifts = np.array(peak_index, dtype=np.float64)
    shifts[shifts > size // 2] -= size[shifts > size // 2]
    peak = float(correlation[peak_index])
    if parabolic:
        for axis, index in enumerate(peak_index):
            around = [list(peak_index) for _ in range(3)]
            for k, step in enumerate((-1, 0, 1)):
                around[k][axis] = (index + step) % shape[axis]
            below, centre, above = (float(correlation[tuple(i)]) for i in around)
            curvature = below - 2 * centre + above
            if curvature < 0:
                shifts[axis] += 0.5 * (below - above) / curvature
    if upsample > 1:
        region = math.ceil(upsample * 1.5)
        centre = np.fix(region / 2.0)
        shifts = np.round(shifts * upsample) / upsample
        offsets = centre - shifts * upsample
        full = _full_spectrum(product, shape, xp)
        upsampled = xp.abs(_upsampled_dft(full.conj(), region, upsample, offsets, xp))
        local = np.unravel_index(int(xp.argmax(upsampled)), upsampled.shape)
        peak = float(upsampled[local]) / int(np.prod(shape))
        shifts = shifts + (np.array(local, dtype=np.float64) - centre) / upsample
    # ``shifts`` registers moving onto fixed; the fixed -> moving displacement is its negative.
    return 0.0 - shifts, peak  # (0.0 - x avoids printing -0.0)


def phase_shift(fixed: Any, moving: Any, *, upsample: int = 20, window: str = "hann") -> tuple[np.ndarray, float]:
    """Kernel of :func:`phase_correlation`: ``(shift, peak)`` with no validation (frames of one kind)."""
    product = cross_power(spectrum(fixed, window), spectrum(moving, window))
    return peak_shift(product, fixed.shape, upsample=upsample)


def _log_polar_magnitude(image: Any, n_angles: int, n_radii: int, min_radius: float) -> Any:
    """High-passed Fourier magnitude of a square image resampled on (angle over [0, pi), log radius)."""
    xp, ndi = _backend.get_namespace(image)
    fft = _backend.fft_module(image)
    size = image.shape[0]
    magnitude = xp.abs(fft.fftshift(fft.fftn(prepare(image, "hann"))))
    freqs = xp.asarray(np.cos(np.pi * np.fft.fftshift(np.fft.fftfreq(size))).astype(magnitude.dtype))
    cosines = freqs[:, None] * freqs[None, :]
    magnitude = magnitude * ((1 - cosines) * (2 - cosines))  # emphasise the high frequencies that carry the angle
    radii = np.exp(np.linspace(np.log(min_radius), np.log(size / 2 - 1), n_radii))
    angles = np.arange(n_angles) * np.pi / n_angles
    rows = size // 2 + np.cos(angles)[:, None] * radii[None, :]
    cols = size // 2 + np.sin(angles)[:, None] * radii[None, :]
    coords = xp.asarray(np.stack([rows, cols]).astype(magnitude.dtype))
    out = ndi.map_coordinates(magnitude, coords, order=1)
    return out * xp.asarray(np.hanning(n_radii + 2)[1:-1].astype(out.dtype))[None, :]


def rotation_scale(fixed: Any, moving: Any) -> tuple[float, float, float]:
    """Rotation and scale between two square images by log-polar (Fourier-Mellin) phase correlation.

    Returns ``(angle, scale, peak)``: ``moving`` shows ``fixed`` turned by
    ``angle`` (radians, from the row axis towards the column axis, up to a
    half turn: ``angle + pi`` fits the Fourier magnitude as well) and enlarged
    by ``scale``; ``peak`` is the log-polar correlation peak. Translations do
    not change the Fourier magnitude, so they do not disturb the estimate.
    """
    size = fixed.shape[0]
    n_angles, n_radii = max(64, size), max(64, size // 2)
    min_radius = max(2.0, size / 64)
    lp_fixed = _log_polar_magnitude(fixed, n_angles, n_radii, min_radius)
    lp_moving = _log_polar_magnitude(moving, n_angles, n_radii, min_radius)
    (d_angle, d_radius), peak = phase_shift(lp_fixed, lp_moving, upsample=10, window="none")
    step = (math.log(size / 2 - 1) - math.log(min_radius)) / (n_radii - 1)
    return float(d_angle * math.pi / n_angles), float(math.exp(-d_radius * step)), peak


@validated
def phase_correlation(fixed: ImageRef, moving: ImageRef, *, upsample: Annotated[int, Range(1, 1000)] = 20,
                      window: Window = "hann") -> Transform:
    """Sub-pixel translation between two images by phase correlation.

    Parameters
    ----------
    fixed, moving : array, shape ``(M, N)`` (or ``(P, M, N)``)
        Reference and moved image of the same shape (NumPy or CuPy; dask is
        computed once, explicitly).
    upsample : int
        Precision is ``1 / upsample`` pixel (matrix-multiply DFT around the
        peak, so the cost hardly depends on it).
    window : {"hann", "none"}
        Hann apodisation suppresses the edge jump of non-periodic images
        (recommended for real data); ``"none"`` suits periodic shifts.
    device : {"auto", "cpu", "gpu"}, optional
        Where to compute; default: where the images are.

    Returns
    -------
    Transform
        ``model="translation"``; ``shift`` is the fixed -> moving displacement
        (a feature at ``x`` in ``fixed`` is at ``x + shift`` in ``moving``) and
        ``score`` the normalised correlation peak (1 for a perfect circular
        shift). ``metadata["peak_to_noise"]`` is the peak in units of
        :func:`noise_level`: about 2 (up to ~2.5) for unrelated images, tens to
        hundreds for sharp, well-exposed overlaps; noisy, smooth images (few
        photons) can match at only 3-4, so read it as a ranking of
        overlaps rather than a verdict.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> fixed = data.camera().astype(np.float32)
    >>> moving = np.roll(fixed, (5, -7), axis=(0, 1))
    >>> phase_correlation(fixed, moving, window="none").shift.tolist()
    [5.0, -7.0]
    """
    for name, image in (("fixed", fixed), ("moving", moving)):
        check_ndim(image, 2, name, max_ndim=3)
        check_real(image, name)
    check_same_shape(fixed, moving, ("fixed", "moving"))
    fixed, moving = _backend.compute_here(fixed), _backend.compute_here(moving)
    shift, peak = phase_shift(fixed, moving, upsample=upsample, window=window)
    transform = Transform.from_shift(shift)
    transform.score = peak
    transform.metadata["peak_to_noise"] = peak / noise_level(fixed.shape)
    return transform
