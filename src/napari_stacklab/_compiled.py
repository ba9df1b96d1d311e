"""Host kernels compiled with Numba, for the loops NumPy cannot fuse.

A virtual detector over a 4D-STEM scan is bound by memory bandwidth: each
pattern is read once and multiplied with a few weight vectors. NumPy has to
convert every group of integer patterns to float in a buffer first and then
call BLAS, one Python step per group; two threads then spend their time in
the interpreter and in OpenBLAS's lock, and reach under half of what the page
cache delivers. The kernel here converts each pixel in a register as it
multiplies, releases the GIL for the whole group, and runs on every dask
thread at once.

Numba is imported on first use (it takes a few tenths of a second), never by
``import napari_stacklab``. Where it cannot be imported the callers keep their
NumPy code, which is also the tests' oracle for these kernels.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

#: Pattern dtypes the kernel reads directly (native byte order); anything else takes the NumPy path.
_FRAME_KINDS = "biuf"
_LOCK = threading.Lock()
_KERNELS: dict = {}


def _numba() -> Any:
    """The ``numba`` module, or ``None`` where it cannot be imported (not installed, or built for another NumPy)."""
    try:
        import numba
    except ImportError:
        return None
    return numba


def _make_weighted_sums(scalar: Any) -> Any:
    """``kernel(frames (n, K), weights (P, K), out (n, P))`` accumulating in ``scalar`` (np.float32 or np.float64)."""
    numba = _numba()
    if numba is None:
        return None

    # reassociation lets LLVM keep several partial sums in vector registers (as BLAS does); no flag that
    # assumes finite values, so a NaN or an infinity in the data still reaches the result
    @numba.njit(nogil=True, fastmath={"reassoc", "contract"})
    def weighted_sums(frames, weights, out):  # pragma: no cover - compiled; tested through frame_weighted_sums
        n_frames, n_pixels = frames.shape
        paired = n_frames - n_frames % 4
        # four frames share each weight as it is loaded: half the cache traffic of one frame at a time
        for i in range(0, paired, 4):
            for p in range(weights.shape[0]):
                t0 = t1 = t2 = t3 = scalar(0)
                for k in range(n_pixels):
                    w = weights[p, k]
                    t0 += scalar(frames[i, k]) * w
                    t1 += scalar(frames[i + 1, k]) * w
                    t2 += scalar(frames[i + 2, k]) * w
                    t3 += scalar(frames[i + 3, k]) * w
                out[i, p], out[i + 1, p], out[i + 2, p], out[i + 3, p] = t0, t1, t2, t3
        for i in range(paired, n_frames):
            for p in range(weights.shape[0]):
                total = scalar(0)
                for k in range(n_pixels):
                    total += scalar(frames[i, k]) * weights[p, k]
                out[i, p] = total

    return weighted_sums


def frame_weighted_sums(frames: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """``frames (n, K) @ weights (P, K).T`` as ``(n, P)`` in the weights' dtype, or ``None`` without a kernel.

    ``frames`` may hold any real dtype in native byte order (it is not
    copied); ``weights`` is float32 or float64, which is also the
    accumulator's precision (as a BLAS product of converted frames). Returns
    ``None`` when Numba is missing or the arrays are of another kind, and the
    caller computes the product with NumPy.
    """
    dtype = np.dtype(weights.dtype)
    if (frames.ndim != 2 or weights.ndim != 2 or frames.shape[1] != weights.shape[1]
            or dtype not in (np.float32, np.float64) or frames.dtype.kind not in _FRAME_KINDS
            or not frames.dtype.isnative or not weights.dtype.isnative):
        return None
    kernel = kernel_for(dtype)
    if kernel is None:
        return None
    out = np.empty((frames.shape[0], weights.shape[0]), dtype)
    frames = frames.view(np.uint8) if frames.dtype.kind == "b" else frames
    kernel(frames, np.ascontiguousarray(weights), out)
    return out


def kernel_for(dtype: Any) -> Any:
    """The weighted-sums kernel accumulating in ``dtype`` (compiled for each frame dtype on first call), or ``None``."""
    dtype = np.dtype(dtype)
    with _LOCK:
        if dtype not in _KERNELS:
            _KERNELS[dtype] = _make_weighted_sums(dtype.type)
        return _KERNELS[dtype]
