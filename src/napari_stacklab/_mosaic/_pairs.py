"""Neighbouring tiles and the measured displacement between each pair.

Only the expected overlap plus a search margin is cut from each tile. The
integer displacement maximises the normalised cross-correlation of the two
crops' texture over every overlap in the search range, each normalised on
its own pixels (masked NCC: thin and wide overlaps compare fairly, and no
apodisation window hides the tile borders where overlaps lie). The project's
phase correlation of the two overlaps then gives the sub-pixel part and ECC
polishes it. Each pair is scored by that correlation (confidence) and by how
much it beats the best match elsewhere (distinctiveness).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _backend
from ..register import ECCError, Transform, ecc, phase_correlation

__all__ = ["Pairs", "find_pairs", "measure_pair", "measure_pairs", "measure_pairs_stepwise"]

#: Why a pair has no usable measurement (the ``status`` column of the report).
FAILURES = ("no overlap", "flat overlap", "at search limit")
#: Gaussian sigmas (pixels) of the band-pass the integer search correlates (see :func:`texture`).
TEXTURE_SIGMAS = (1.0, 8.0)
#: Pixels around the best match that the runner-up must lie beyond (distinctiveness).
PEAK_RADIUS = 3


@dataclass
class Pairs:
    """Every neighbouring pair and what was measured on it.

    Attributes
    ----------
    index : ndarray of int, shape ``(K, 2)``
        Tile indices ``(i, j)``, ``i < j``.
    expected : ndarray of float64, shape ``(K, 2)``
        Nominal displacement ``positions[j] - positions[i]`` (pixels).
    measured : ndarray of float64, shape ``(K, 2)``
        Measured displacement (NaN where the measurement failed).
    confidence : ndarray of float64, shape ``(K,)``
        Normalised cross-correlation of the two tiles' texture over their
        overlap at the measured displacement (-1 to 1; 0 where it failed).
    distinctiveness : ndarray of float64, shape ``(K,)``
        How much that correlation beats the best one more than
        :data:`PEAK_RADIUS` pixels away (0 to 2): small when the overlap is
        featureless or periodic and the match ambiguous.
    failure : tuple of str
        ``""`` for a usable measurement, else why not (see :data:`FAILURES`).
    """

    index: np.ndarray
    expected: np.ndarray
    measured: np.ndarray
    confidence: np.ndarray
    distinctiveness: np.ndarray
    failure: tuple

    def __len__(self) -> int:
        return len(self.index)


def find_pairs(positions: np.ndarray, tile_shape: tuple, *, diagonal: bool = False, min_overlap: int = 8) -> np.ndarray:
    """Pairs of tiles whose nominal footprints overlap, shape ``(K, 2)``, ``i < j``, sorted.

    Side-by-side neighbours are those whose overlap spans at least half a
    tile along one axis; corner neighbours (a small overlap on both axes) are
    added with ``diagonal=True``. Both overlap extents must reach ``min_overlap``.
    Candidates come from a k-d tree, so large scans cost ``O(n log n)``.
    """
    from scipy.spatial import cKDTree

    shape = np.asarray(tile_shape, dtype=np.float64)
    candidates = cKDTree(positions).query_pairs(r=float(np.hypot(*shape)), output_type="ndarray")
    if not len(candidates):
        return np.zeros((0, 2), dtype=np.int64)
    candidates = np.sort(candidates, axis=1)
    extent = shape - np.abs(positions[candidates[:, 1]] - positions[candidates[:, 0]])
    keep = (extent >= min_overlap).all(axis=1)
    if not diagonal:
        keep &= (extent >= shape / 2).any(axis=1)
    pairs = candidates[keep]
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))].astype(np.int64)


def _boxes(expected: np.ndarray, shape: tuple, margin: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Crop boxes ``(start, stop)`` in tile i and tile j: the expected overlap grown by ``margin``."""
    shape = np.asarray(shape)
    d = np.round(expected).astype(np.int64)
    lo = np.maximum(0, d)
    hi = np.minimum(shape, shape + d)
    a_start = np.maximum(0, lo - margin)
    a_stop = np.minimum(shape, hi + margin)
    b_start = np.maximum(0, lo - d - margin)
    b_stop = np.minimum(shape, hi - d + margin)
    return a_start, a_stop, b_start, b_stop


def _overlap(shape: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(start, stop)`` in tile i of the overlap with tile j displaced by the integer ``d``."""
    return np.maximum(0, d), np.minimum(shape, shape + d)


def texture(frame: Any) -> Any:
    """Band-pass (difference of Gaussians, :data:`TEXTURE_SIGMAS` pixels) a frame, in float32.

    Keeps the texture registration relies on, drops pixel noise and smooth
    shading (vignetting, a gradient of the background) that would otherwise
    correlate at any shift. Applied to whole tiles, so that crops are exact
    except along the tile's own border.
    """
    from scipy import ndimage as ndi

    frame = np.asarray(frame, dtype=np.float32)
    fine, coarse = TEXTURE_SIGMAS
    return ndi.gaussian_filter(frame, fine, mode="nearest") - ndi.gaussian_filter(frame, coarse, mode="nearest")


def masked_ncc(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised cross-correlation of two rectangles for every relative shift, and each overlap's area.

    ``ncc[t]`` (``t`` taken modulo the padded shape, ``ncc.shape``) correlates
    ``a[u]`` with ``b[u + t]`` over the pixels both cover, each side's mean
    and norm taken over that overlap only (Padfield's masked NCC, IEEE TIP 21,
    2012): a small overlap is compared as fairly as a large one and no
    apodisation window hides the tile borders, where overlaps lie. Shifts
    with no overlap or a constant side are ``-inf``. ``area[t]`` is the
    number of pixels compared.
    """
    from scipy import fft

    shape = tuple(fft.next_fast_len(int(p), real=True) for p in np.add(a.shape, b.shape))

    def spectrum(x: np.ndarray) -> np.ndarray:
        return fft.rfft2(x, s=shape)

    def correlate(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # sum_u x[u] y[u + t], zero-padded
        return fft.irfft2(np.conj(x) * y, s=shape)

    ones_a, ones_b = spectrum(np.ones(a.shape)), spectrum(np.ones(b.shape))
    fa, fb = spectrum(a), spectrum(b)
    area = np.round(correlate(ones_a, ones_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        sum_a, sum_b = correlate(fa, ones_b), correlate(ones_a, fb)
        var_a = correlate(spectrum(a * a), ones_b) - sum_a**2 / area
        var_b = correlate(ones_a, spectrum(b * b)) - sum_b**2 / area
        ncc = (correlate(fa, fb) - sum_a * sum_b / area) / np.sqrt(var_a * var_b)
    # FFT round-off leaves tiny variances where a side is constant: treat those as flat
    flat_a = var_a <= 1e-9 * float((a * a).sum()) + 1e-300
    flat_b = var_b <= 1e-9 * float((b * b).sum()) + 1e-300
    ncc[(area < 1) | flat_a | flat_b | ~np.isfinite(ncc)] = -np.inf
    return np.clip(ncc, -np.inf, 1.0), area


def _shifts(padded: int, size_a: int) -> np.ndarray:
    """The shift each index of a :func:`masked_ncc` axis stands for: ``-(size_a - 1)`` up to ``padded - size_a``."""
    index = np.arange(padded)
    return np.where(index > padded - size_a, index - padded, index)


def measure_pair(
    a: np.ndarray,
    b: np.ndarray,
    a_start: np.ndarray,
    b_start: np.ndarray,
    expected: np.ndarray,
    tile_shape: tuple,
    *,
    margin: int,
    upsample: int = 20,
    refine: bool = True,
    min_overlap: int = 8,
    a_texture: np.ndarray | None = None,
    b_texture: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float, str]:
    """Displacement of tile j relative to tile i from their crops ``a`` and ``b``.

    ``a`` is tile i's crop starting at ``a_start``, ``b`` tile j's starting at
    ``b_start``; both cover the expected overlap plus ``margin``. The integer
    displacement maximises the masked NCC of the crops' texture (``*_texture``:
    the band-passed crops, :func:`texture`; computed from the crops if not
    given) within ``margin`` of ``expected``, for overlaps of at least
    ``min_overlap`` pixels each way. Phase correlation of the two overlaps
    then gives the sub-pixel part, optionally polished by ECC.

    Returns ``(displacement, confidence, distinctiveness, failure)``:
    confidence is the NCC at the displacement, distinctiveness how much it
    beats the best NCC more than :data:`PEAK_RADIUS` pixels away (small for
    featureless or periodic overlaps, whose match is ambiguous).
    """
    shape = np.asarray(tile_shape)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a_texture = texture(a) if a_texture is None else np.asarray(a_texture, dtype=np.float64)
    b_texture = texture(b) if b_texture is None else np.asarray(b_texture, dtype=np.float64)
    ncc, _ = masked_ncc(a_texture, b_texture)
    padded = np.asarray(ncc.shape)
    # shift t (modulo the padded shape) <-> displacement d = a_start - b_start - t
    t = [_shifts(p, n) for p, n in zip(padded, a.shape)]
    d = [a_start[k] - b_start[k] - t[k] for k in range(2)]
    ok = [(np.abs(d[k] - expected[k]) <= margin) & (shape[k] - np.abs(d[k]) >= min_overlap) for k in range(2)]
    score = np.where(ok[0][:, None] & ok[1][None, :], ncc, -np.inf)
    best = np.unravel_index(int(np.argmax(score)), score.shape)
    if not np.isfinite(score[best]):
        failure = "no overlap" if not (ok[0].any() and ok[1].any()) else "flat overlap"
        return np.full(2, np.nan), 0.0, 0.0, failure
    confidence = float(score[best])
    displacement = np.array([d[0][best[0]], d[1][best[1]]], dtype=np.float64)
    # a best match on the limit of the searched region is no peak: the real one may lie beyond it
    at_limit = any(not ok[k][(best[k] + step) % len(ok[k])] for k in range(2) for step in (-1, 1))
    if at_limit:
        return np.full(2, np.nan), confidence, 0.0, "at search limit"
    near = [np.abs(t[k] - t[k][best[k]]) <= PEAK_RADIUS for k in range(2)]
    score[np.ix_(near[0], near[1])] = -np.inf
    second = float(score.max())
    distinctiveness = confidence - second if np.isfinite(second) else confidence
    a = a - a.mean()
    b = b - b.mean()
    displacement = _subpixel(a, b, a_start, b_start, displacement, shape, upsample)
    if refine:
        displacement = _refine(a, b, a_start, b_start, displacement, shape)
    return displacement, confidence, distinctiveness, ""


def _subpixel(a, b, a_start, b_start, d, shape, upsample) -> np.ndarray:
    """Phase correlation of the two overlaps cut at the integer displacement ``d``: its sub-pixel part."""
    start, stop = _overlap(shape, d.astype(np.int64))
    fixed = _crop(a, a_start, start, stop)
    moving = _crop(b, b_start, start - d.astype(np.int64), stop - d.astype(np.int64))
    if fixed is None or moving is None or min(fixed.shape) < 4:
        return d
    # feature at fixed u is at moving u + s, with s = d_integer - d_true
    s = phase_correlation(fixed, moving, upsample=upsample, window="hann").shift
    return d - s if np.all(np.abs(s) <= 1.5) else d


def _crop(crop: np.ndarray, origin: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray | None:
    """The tile region ``[start, stop)`` out of a crop that begins at ``origin`` (None if it reaches outside)."""
    lo = start - origin
    hi = stop - origin
    if np.any(lo < 0) or np.any(hi > np.asarray(crop.shape)):
        return None
    return crop[lo[0] : hi[0], lo[1] : hi[1]]


def _refine(a, b, a_start, b_start, d, shape) -> np.ndarray:
    """ECC (translation) on the true overlap, started from ``d``; ``d`` unchanged if it fails or wanders."""
    start, stop = _overlap(shape, np.round(d).astype(np.int64))
    fixed = _crop(a, a_start, start, stop)
    if fixed is None or min(fixed.shape) < 8 or fixed.std() == 0:
        return d
    # fixed pixel u is tile-i pixel u + start, tile-j pixel u + start - d, crop-b pixel u + start - d - b_start
    initial = Transform.from_shift(start - d - b_start)
    try:
        # no smoothing: a Gaussian near the edges of the cut-out overlap would differ from the one in tile j
        t = ecc(fixed, b, model="translation", initial=initial, levels=1, max_iter=50, sigma=0)
    except ECCError:
        return d
    refined = start - b_start - t.shift
    return refined if np.all(np.abs(refined - d) <= 2.0) else d


def _measure_task(a, b, a_texture, b_texture, a_start, b_start, expected, tile_shape, params) -> tuple:
    return measure_pair(
        _backend.to_numpy(a), _backend.to_numpy(b), a_start, b_start, expected, tile_shape,
        a_texture=_backend.to_numpy(a_texture), b_texture=_backend.to_numpy(b_texture), **params
    )


def measure_pairs(
    frames: list,
    positions: np.ndarray,
    index: np.ndarray,
    *,
    margin: int,
    upsample: int,
    refine: bool,
    min_overlap: int,
    prepare: Any = None,
) -> Pairs:
    """Measure every pair in ``index`` (in parallel with dask, on whatever scheduler is active).

    ``frames`` are the 2-D registration frames (NumPy or dask); only the crops
    around each expected overlap are used, the band-passed :func:`texture`
    is computed once per tile. ``prepare(frame)`` (e.g. a flat-field
    correction) is applied lazily to each frame first.
    """
    return finish(measure_pairs_stepwise(frames, positions, index, batch=None, margin=margin, upsample=upsample,
                                         refine=refine, min_overlap=min_overlap, prepare=prepare))


def finish(steps: Generator) -> Any:
    """Run a stepwise generator to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def measure_pairs_stepwise(
    frames: list,
    positions: np.ndarray,
    index: np.ndarray,
    *,
    batch: int | None,
    margin: int,
    upsample: int,
    refine: bool,
    min_overlap: int,
    prepare: Any = None,
) -> Generator[int, None, Pairs]:
    """:func:`measure_pairs`, ``batch`` pairs per computation: yields the pairs measured so far, returns the Pairs.

    Between two batches the caller may report progress or stop (close the
    generator); ``batch=None`` measures every pair in one computation (the
    most parallel, and what :func:`measure_pairs` does). A tile's texture is
    computed once per batch that uses it.
    """
    import dask

    tile_shape = tuple(int(s) for s in frames[0].shape)
    # stitching computes on the host: CuPy frames are copied there, a crop at a time
    lazy = [_backend.to_numpy(f if _backend.is_dask(f) else _backend.as_dask(f, chunks=f.shape)) for f in frames]
    if prepare is not None:
        lazy = [prepare(f) for f in lazy]
    textures = [f.map_blocks(texture, dtype=np.float32) for f in lazy]
    params = {"margin": int(margin), "upsample": int(upsample), "refine": bool(refine), "min_overlap": int(min_overlap)}
    tasks = []
    expected_all = positions[index[:, 1]] - positions[index[:, 0]]
    measure = dask.delayed(_measure_task, pure=True)
    for (i, j), expected in zip(index, expected_all):
        a0, a1, b0, b1 = _boxes(expected, tile_shape, int(margin))
        box_a = (slice(a0[0], a1[0]), slice(a0[1], a1[1]))
        box_b = (slice(b0[0], b1[0]), slice(b0[1], b1[1]))
        tasks.append(measure(lazy[i][box_a], lazy[j][box_b], textures[i][box_a], textures[j][box_b], a0, b0,
                             expected, tile_shape, params))
    size = len(tasks) if batch is None else int(batch)
    results: list = []
    for start in range(0, len(tasks), max(size, 1)):
        results.extend(dask.compute(*tasks[start : start + size]))
        yield len(results)
    column = np.array([r[1:3] for r in results], dtype=np.float64).reshape(-1, 2)
    return Pairs(
        index=index,
        expected=expected_all,
        measured=np.array([r[0] for r in results], dtype=np.float64).reshape(-1, 2),
        confidence=column[:, 0],
        distinctiveness=column[:, 1],
        failure=tuple(r[3] for r in results),
    )
