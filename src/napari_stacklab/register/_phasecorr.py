"""Sub-pixel translation by phase correlation (Guizar-Sicairos et al., Opt. Lett. 33, 2008)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _backend
from .._validation import check_choice, check_ndim, check_number, check_real, check_same_shape
from ._transform import Transform

__all__ = ["phase_correlation", "phase_shift", "WINDOWS"]

WINDOWS = ("hann", "none")


def _window(shape: tuple, xp: Any) -> Any:
    out = None
    for axis, size in enumerate(shape):
        w = xp.asarray(np.hanning(size))
        w = w.reshape((1,) * axis + (size,) + (1,) * (len(shape) - axis - 1))
        out = w if out is None else out * w
    return out


def _upsampled_dft(data: Any, region: int, factor: int, offsets: Any, xp: Any) -> Any:
    """Inverse DFT of ``data`` on a ``region``-sized grid ``factor`` times finer, starting at ``offsets``."""
    for axis in reversed(range(data.ndim)):
        n = data.shape[-1]  # tensordot moves each finished axis to the front
        freqs = xp.fft.fftfreq(n, factor)
        kernel = xp.exp(-2j * math.pi * (xp.arange(region) - offsets[axis])[:, None] * freqs[None, :])
        data = xp.tensordot(kernel, data, axes=(1, -1))
    return data


def phase_shift(fixed: Any, moving: Any, *, upsample: int = 20, window: str = "hann") -> tuple[np.ndarray, float]:
    """Kernel of :func:`phase_correlation`: ``(shift, peak)`` with no validation (frames of one kind)."""
    xp, _ = _backend.get_namespace(fixed)
    a = xp.asarray(fixed, dtype=xp.float64)
    b = xp.asarray(moving, dtype=xp.float64)
    if window == "hann":
        w = _window(a.shape, xp)
        a = (a - a.mean()) * w
        b = (b - b.mean()) * w
    product = xp.fft.fftn(a) * xp.fft.fftn(b).conj()
    product = product / xp.maximum(xp.abs(product), 1e-12 * float(xp.abs(product).max()) + 1e-300)
    correlation = xp.fft.ifftn(product)
    peak_index = np.unravel_index(int(xp.argmax(xp.abs(correlation))), correlation.shape)
    shape = np.array(correlation.shape)
    shifts = np.array(peak_index, dtype=np.float64)
    shifts[shifts > shape // 2] -= shape[shifts > shape // 2]
    peak = float(xp.abs(correlation[peak_index]))
    if upsample > 1:
        region = math.ceil(upsample * 1.5)
        centre = np.fix(region / 2.0)
        shifts = np.round(shifts * upsample) / upsample
        offsets = centre - shifts * upsample
        upsampled = _upsampled_dft(product.conj(), region, upsample, offsets, xp).conj()
        local = np.unravel_index(int(xp.argmax(xp.abs(upsampled))), upsampled.shape)
        peak = float(xp.abs(upsampled[local])) / product.size
        shifts = shifts + (np.array(local, dtype=np.float64) - centre) / upsample
    # ``shifts`` registers moving onto fixed; the fixed -> moving displacement is its negative.
    return 0.0 - shifts, peak  # (0.0 - x avoids printing -0.0)


@_backend.with_device("fixed", "moving")
def phase_correlation(fixed: Any, moving: Any, *, upsample: int = 20, window: str = "hann") -> Transform:
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

    Returns
    -------
    Transform
        ``model="translation"``; ``shift`` is the fixed -> moving displacement
        (a feature at ``x`` in ``fixed`` is at ``x + shift`` in ``moving``) and
        ``score`` the normalised correlation peak (1 for a perfect circular shift).

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
    check_number("upsample", upsample, low=1, high=1000, integer=True)
    check_choice("window", window, WINDOWS)
    fixed, moving = (_backend.materialize(a) if _backend.is_dask(a) else a for a in (fixed, moving))
    shift, peak = phase_shift(fixed, moving, upsample=upsample, window=window)
    transform = Transform.from_shift(shift)
    transform.score = peak
    return transform
