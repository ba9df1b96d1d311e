"""Smoothing, rank, edge, intensity and frequency filters, frame by frame.

Every function here takes an image or a stack ``(..., M, N)`` (NumPy, dask or
CuPy), filters each frame independently, and returns the same kind of array;
dask input stays lazy. Physical counts are never rescaled to [0, 1].

The sub-families live in private modules: smoothing and rank
(``_smoothing``), edges and derivatives (``_edges``), intensity mappings
(``_intensity``) and frequency space (``_frequency``). The whole-stack
statistics :func:`stack_percentiles` and :func:`stack_range` come from
:mod:`napari_stacklab.statistics`.
"""

from .._bilateral import bilateral
from ..statistics import stack_percentiles, stack_range
from ._edges import canny, difference_of_gaussians, gaussian_laplace, laplace, prewitt, scharr, sobel
from ._frequency import bandpass, fft_amplitude, highpass, lowpass
from ._intensity import (
    adjust_gain,
    adjust_gamma,
    adjust_log,
    adjust_saturation,
    clahe,
    equalize_hist,
    match_histograms,
    rescale_percentile,
)
from ._smoothing import gaussian, maximum_filter, mean_filter, median, minimum_filter, percentile_filter, unsharp_mask

__all__ = [
    "gaussian",
    "median",
    "mean_filter",
    "minimum_filter",
    "maximum_filter",
    "percentile_filter",
    "bilateral",
    "unsharp_mask",
    "sobel",
    "scharr",
    "prewitt",
    "laplace",
    "gaussian_laplace",
    "difference_of_gaussians",
    "canny",
    "rescale_percentile",
    "adjust_gamma",
    "adjust_gain",
    "adjust_log",
    "clahe",
    "equalize_hist",
    "match_histograms",
    "adjust_saturation",
    "lowpass",
    "highpass",
    "bandpass",
    "fft_amplitude",
    "stack_percentiles",
    "stack_range",
]
