"""Frequency-space filters of each frame: low-, high- and band-pass, FFT amplitude."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np

from .._backend import get_namespace
from .._validation import as_float
from ..registry import Range, Unit, operation

FrequencyEdge = Literal["butterworth", "gaussian"]
#: A cut-off: a radius in frequency pixels of the frame's FFT, i.e. cycles per frame width.
Cutoff = Annotated[float, Range(0, None, low_inclusive=False), Unit("cycles per frame width")]


def _frequency_radius(xp, shape, dtype):
    """Distance from zero frequency of every ``rfft2`` coefficient, in cycles per frame width.

    Scaled to the last axis (width ``N``) so the filter is round in physical
    frequency also for non-square frames: a cut-off ``c`` keeps periods
    longer than ``N / c`` pixels in every direction.
    """
    rows, cols = shape
    fy = xp.fft.fftfreq(rows).astype(dtype)[:, None] * cols
    fx = xp.fft.rfftfreq(cols).astype(dtype)[None, :] * cols
    return xp.sqrt(fy * fy + fx * fx)


def _lowpass_response(xp, radius, cutoff, edge, order):
    # in float64, as powers of radius / cutoff: a cut-off near 0 or near the float range gives a
    # response of 0 or 1 (an infinite ratio is a response of 0), never 0 / 0
    with np.errstate(over="ignore"):
        ratio = radius / cutoff
        if edge == "gaussian":
            return xp.exp(-0.5 * ratio * ratio)
        return 1.0 / (1.0 + ratio ** (2 * order))


def _apply_response(image, response):
    xp, _ = get_namespace(image)
    frame = as_float(image)
    spectrum = xp.fft.rfft2(frame)
    gain = response(xp, _frequency_radius(xp, frame.shape, np.float64)).astype(frame.dtype)
    return xp.fft.irfft2(spectrum * gain, s=frame.shape).astype(frame.dtype, copy=False)


_FREQUENCY_UNITS = """The cut-off is a radius in frequency pixels of the frame's FFT, i.e. in
    cycles per frame width ``N``: a cut-off ``c`` corresponds to a period of
    ``N / c`` pixels (for non-square frames the filter is round in physical
    frequency, scaled to the width)."""


@operation(menu="filter")
def lowpass(
    image,
    *,
    cutoff: Cutoff = 32.0,
    edge: FrequencyEdge = "butterworth",
    order: Annotated[float, Range(0.5, 20)] = 2.0,
):
    """Low-pass filter of each frame in Fourier space (keeps coarse structure).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    cutoff : float
        Radius in frequency pixels (cycles per frame width) where the
        response falls to 1/2 (Butterworth) or ``exp(-1/2)`` (Gaussian).
    edge : {"butterworth", "gaussian"}
        Shape of the roll-off: Butterworth ``1 / (1 + (r / cutoff)**(2 * order))``
        or Gaussian ``exp(-r**2 / (2 * cutoff**2))``.
    order : float
        Butterworth order (steepness); ignored for ``"gaussian"``.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), in the units of the input (the
        mean is kept). Whole frames (an FFT sees the entire frame, so frames
        are never split); the frame is treated as periodic. Equals
        ``skimage.filters.butterworth(cutoff_frequency_ratio=cutoff / N)``
        for Butterworth edges.

    Notes
    -----
    {units}

    Examples
    --------
    >>> import numpy as np
    >>> stripes = 100 + 10 * np.cos(2 * np.pi * 16 * np.arange(64) / 64) * np.ones((64, 1))
    >>> out = lowpass(stripes, cutoff=4, order=4)
    >>> round(float(out.mean()), 6), float(np.ptp(out)) < 0.01
    (100.0, True)
    """
    return _apply_response(image, lambda xp, r: _lowpass_response(xp, r, cutoff, edge, order))


@operation(menu="filter")
def highpass(
    image,
    *,
    cutoff: Cutoff = 4.0,
    edge: FrequencyEdge = "butterworth",
    order: Annotated[float, Range(0.5, 20)] = 2.0,
):
    """High-pass filter of each frame in Fourier space (removes slow background).

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    cutoff : float
        Radius in frequency pixels (cycles per frame width) of the transition.
    edge : {"butterworth", "gaussian"}
        Roll-off shape; the response is ``1 - lowpass response``.
    order : float
        Butterworth order (steepness); ignored for ``"gaussian"``.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input); the mean (zero frequency) is
        removed, so values are centred on 0. Whole frames, treated as periodic.

    Notes
    -----
    {units}

    Examples
    --------
    >>> import numpy as np
    >>> flat = np.full((16, 16), 300, np.uint16)
    >>> float(abs(highpass(flat, cutoff=2)).max()) < 1e-3
    True
    """
    return _apply_response(image, lambda xp, r: 1.0 - _lowpass_response(xp, r, cutoff, edge, order))


def _check_band(image, **params):
    if params["high_cutoff"] <= params["low_cutoff"]:
        raise ValueError(
            f"high_cutoff must be larger than low_cutoff, got {params['high_cutoff']} <= {params['low_cutoff']}"
        )
    return params


@operation(menu="filter", prepare=_check_band)
def bandpass(
    image,
    *,
    low_cutoff: Cutoff = 2.0,
    high_cutoff: Cutoff = 32.0,
    edge: FrequencyEdge = "butterworth",
    order: Annotated[float, Range(0.5, 20)] = 2.0,
):
    """Band-pass filter of each frame: keeps frequencies between two cut-offs.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; leading axes are filtered independently.
    low_cutoff : float
        Frequencies below this radius (periods longer than ``N / low_cutoff``
        pixels: uneven background) are removed.
    high_cutoff : float
        Frequencies above this radius (periods shorter than ``N / high_cutoff``
        pixels: noise) are removed.
    edge : {"butterworth", "gaussian"}
        Roll-off shape of both edges.
    order : float
        Butterworth order (steepness); ignored for ``"gaussian"``.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input); the response is
        ``lowpass(high_cutoff) * highpass(low_cutoff)``. Whole frames.

    Notes
    -----
    {units}

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(64)
    >>> img = 5 + np.cos(2 * np.pi * 8 * x / 64) * np.ones((64, 1))
    >>> out = bandpass(img, low_cutoff=2, high_cutoff=30, order=4)
    >>> round(float(out.mean()), 3), round(float(out.max()), 1)
    (0.0, 1.0)
    """
    return _apply_response(
        image,
        lambda xp, r: _lowpass_response(xp, r, high_cutoff, edge, order)
        * (1.0 - _lowpass_response(xp, r, low_cutoff, edge, order)),
    )


for _op in (lowpass, highpass, bandpass):
    _op.__doc__ = _op.__doc__.replace("{units}", _FREQUENCY_UNITS)


def _reciprocal(unit: str) -> str:
    """``"micrometer"`` -> ``"1/micrometer"`` (and back: the FFT of an FFT)."""
    unit = str(unit).replace(" ", "")
    return unit[2:] if unit.startswith("1/") else f"1/{unit}"


def _frequency_frame(frame: dict, in_shape: tuple, out_shape: tuple) -> dict:
    """The frame of an ``fftshift``-ed spectrum: reciprocal units, ``1 / (N d)`` per pixel, 0 at ``N // 2``.

    Along a frame axis of ``N`` pixels of size ``d`` the spectrum's pixels are
    the frequencies ``k / (N d)``; zero frequency is pixel ``N // 2``, so the
    axis starts at ``-(N // 2) / (N d)``. Leading (batch) axes keep their frame.
    """
    frame = {key: list(value) for key, value in frame.items()}
    for axis in range(len(out_shape) - 2, len(out_shape)):
        n, pixel = int(out_shape[axis]), float(frame["scale"][axis])
        step = 1.0 / (n * pixel)
        frame["scale"][axis] = step
        frame["translate"][axis] = -(n // 2) * step
        frame["units"][axis] = _reciprocal(frame["units"][axis])
        label = str(frame["axis_labels"][axis])
        frame["axis_labels"][axis] = f"k{label}" if label.isalnum() and len(label) <= 2 else f"frequency {label}"
    return frame


@operation(menu="filter", reframe=_frequency_frame)
def fft_amplitude(image):
    """Log amplitude of the 2-D Fourier transform of each frame, zero frequency centred.

    Shows periodicities (lattices, stripes, scan noise) as peaks: ``log(1 + |FFT|)``.

    Parameters
    ----------
    image : array, shape ``(..., M, N)``
        Image or stack; each frame is transformed independently.

    Returns
    -------
    array, shape ``(..., M, N)``
        float32 (float64 for float64 input), ``fftshift``-ed so that zero
        frequency is at ``(M // 2, N // 2)``. Whole frames. Its pixels are
        frequencies: for a pixel size ``d`` (µm) the result's is
        ``1 / (N d)`` (1/µm), zero frequency at the origin (the napari layer
        and a recipe's Image say so: axes ``ky``, ``kx`` in ``1/<unit>``).

    Examples
    --------
    >>> import numpy as np
    >>> out = fft_amplitude(np.ones((4, 4), np.uint8))
    >>> round(float(out[2, 2]), 4), float(out[0, 0])
    (2.8332, 0.0)
    """
    xp, _ = get_namespace(image)
    frame = as_float(image)
    return xp.log1p(xp.abs(xp.fft.fftshift(xp.fft.fft2(frame)))).astype(frame.dtype, copy=False)
