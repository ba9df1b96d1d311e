"""Measure every neighbouring pair of tiles, then place all tiles at once."""

from __future__ import annotations

import inspect
import math
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np

from .._validation import check_number
from ._flatfield import check_field, correct, estimate_flatfield
from ._layout import Layout, solve_layout
from ._pairs import find_pairs, finish, measure_pairs_stepwise
from ._tiles import Tiles

__all__ = ["register_tiles", "register_tiles_stepwise"]


def register_tiles(
    tiles: Tiles,
    *,
    plane: int | Sequence[int] | None = None,
    margin: int | None = None,
    upsample: int = 20,
    refine: bool = True,
    diagonal: bool = False,
    min_overlap: int = 8,
    flatfield: Any = None,
    min_confidence: float = 0.6,
    min_distinctiveness: float = 0.1,
    max_residual: float = 2.0,
    prior_weight: float = 1e-6,
    exclude: Sequence = (),
) -> Layout:
    """Find where every tile really is: pairwise registration of overlaps, then a global solve.

    1. Neighbours are the tiles whose nominal footprints overlap.
    2. For each pair, the expected overlap plus ``margin`` is cut from both
       tiles; the integer displacement maximises their normalised
       cross-correlation within ``margin`` of the stage's, phase correlation
       (:func:`napari_stacklab.register.phase_correlation`) of the two
       overlaps adds the sub-pixel part and ECC
       (:func:`napari_stacklab.register.ecc`, translation) polishes it. The
       correlation over the overlap is the pair's confidence.
    3. All tiles are placed by weighted least squares (weights: confidence)
       with a weak pull towards the stage positions; low-confidence pairs are
       left out and, while the worst pair's residual exceeds
       ``max_residual``, it is rejected and the solve repeated. A tile with
       no trusted pair stays at its stage position.

    Only the crops around each overlap are read (lazily for dask tiles),
    pairs are measured in parallel on the active dask scheduler (threads, or
    a dask.distributed client).

    Parameters
    ----------
    tiles : Tiles
        Tiles with nominal positions (grid, stage metadata, CSV or layers).
    plane : int or tuple of int, optional
        For tiles with leading axes (channels, z, time): the plane positions
        are estimated on, e.g. the nuclear channel; they apply to every plane.
        Default: index 0 of every leading axis.
    margin : int, optional
        Largest stage error searched, in pixels, along each axis. Default:
        a tenth of the larger tile side, at least 8.
    upsample : int
        Sub-pixel precision ``1 / upsample`` of the phase correlation.
    refine : bool
        Polish each displacement with ECC (accurate to a few hundredths of a
        pixel on textured overlaps; phase correlation alone to about 0.1 px).
    diagonal : bool
        Also register corner neighbours (a small overlap on both axes).
    min_overlap : int
        Smallest overlap, in pixels along each axis, a displacement may imply.
    flatfield : None, "median" or array
        Flat-field correct the registration plane first (see :func:`fuse`).
    min_confidence : float
        Pairs whose correlation over the overlap is lower are not used.
    min_distinctiveness : float
        Pairs whose best match beats the next best one (more than 3 px away)
        by less are not used: a featureless or periodic overlap matches
        almost as well at several displacements.
    max_residual : float
        Pairs that disagree with the global solution by more pixels are rejected.
    prior_weight : float
        Pull of each tile towards its stage position, relative to a pair of
        confidence 1 (small: the stage only decides what the images cannot).
    exclude : sequence of pairs
        Pairs ``(i, j)`` (tile indices or names) to leave out.

    Returns
    -------
    Layout
        Solved positions, the per-pair report (:meth:`Layout.table`,
        :meth:`Layout.summary`, :meth:`Layout.seams`); ``layout.solve(...)``
        re-solves without measuring again.

    Examples
    --------
    >>> from skimage import data
    >>> from napari_stacklab.stitch import synthetic_tiles
    >>> tiles, truth = synthetic_tiles(data.camera(), rows=2, cols=2, tile_shape=(160, 160), seed=3)
    >>> layout = register_tiles(tiles, margin=24)
    >>> error = (layout.positions - layout.positions[0]) - (truth - truth[0])
    >>> bool(abs(error).max() < 0.2), layout.summary().split(";")[0]
    (True, '4 tiles, 4 pairs: 4 kept, 0 rejected')
    """
    return finish(_register(tiles, batch=None, plane=plane, margin=margin, upsample=upsample, refine=refine,
                            diagonal=diagonal, min_overlap=min_overlap, flatfield=flatfield,
                            min_confidence=min_confidence, min_distinctiveness=min_distinctiveness,
                            max_residual=max_residual, prior_weight=prior_weight, exclude=exclude))


def register_tiles_stepwise(tiles: Tiles, *, batch: int = 8, **params: Any) -> Generator[tuple[int, int], None, Layout]:
    """:func:`register_tiles` a few pairs at a time: for progress bars and a Cancel button.

    A generator: it yields ``(pairs measured, pairs in all)`` after every
    ``batch`` pairs (once, ``(0, 0)``, when there is no pair) and returns the
    :class:`Layout` (``layout = yield from register_tiles_stepwise(...)``, or
    the ``value`` of its ``StopIteration``). Closing it between two yields
    stops the registration. The keywords are :func:`register_tiles`'s; smaller
    batches report more often and run fewer pairs in parallel.

    Examples
    --------
    >>> from skimage import data
    >>> from napari_stacklab.stitch import synthetic_tiles
    >>> tiles, _ = synthetic_tiles(data.camera(), rows=2, cols=2, tile_shape=(160, 160), seed=3)
    >>> steps = register_tiles_stepwise(tiles, batch=2, margin=24)
    >>> next(steps), next(steps)
    ((2, 4), (4, 4))
    >>> try:
    ...     next(steps)
    ... except StopIteration as done:
    ...     layout = done.value
    >>> layout.summary().split(";")[0]
    '4 tiles, 4 pairs: 4 kept, 0 rejected'
    """
    check_number("batch", batch, low=1, integer=True)
    bound = inspect.signature(register_tiles).bind(tiles, **params)
    bound.apply_defaults()
    return (yield from _register(batch=batch, **bound.arguments))


def _register(tiles: Tiles, *, batch: int | None, plane: Any, margin: int | None, upsample: int, refine: bool,
              diagonal: bool, min_overlap: int, flatfield: Any, min_confidence: float, min_distinctiveness: float,
              max_residual: float, prior_weight: float, exclude: Sequence) -> Generator[tuple[int, int], None, Layout]:
    """The registration, every setting given: yields ``(measured, total)`` per batch of pairs, returns the Layout."""
    if not isinstance(tiles, Tiles):
        raise TypeError(f"tiles must be a Tiles (see grid_tiles, csv_tiles, ome_tiles), got {type(tiles).__name__}")
    M, N = tiles.tile_shape
    if margin is None:
        margin = max(8, math.ceil(0.1 * max(M, N)))
    check_number("margin", margin, low=0, high=max(M, N), integer=True)
    check_number("upsample", upsample, low=1, high=1000, integer=True)
    check_number("min_overlap", min_overlap, low=1, high=min(M, N), integer=True)
    for name, value in (("refine", refine), ("diagonal", diagonal)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    frames = tiles.plane(plane)
    prepare = None
    if flatfield is not None:
        if isinstance(flatfield, str):
            if flatfield != "median":
                raise ValueError(f"flatfield must be None, 'median' or an array, got {flatfield!r}")
            flat = estimate_flatfield(tiles)
        else:
            flat = check_field("flatfield", flatfield, tiles, positive=True)
        flat = flat if flat.ndim == 2 else flat[_plane_index(plane, tiles)]

        def prepare(frame: Any) -> Any:
            return frame.map_blocks(correct, flat, dtype=np.float32)

    index = find_pairs(tiles.positions, (M, N), diagonal=diagonal, min_overlap=min_overlap)
    measuring = measure_pairs_stepwise(frames, tiles.positions, index, batch=batch, margin=margin, upsample=upsample,
                                       refine=refine, min_overlap=min_overlap, prepare=prepare)
    total = len(index)
    pairs = yield from _with_total(measuring, total)
    if not total:
        yield (0, 0)
    registration = {"plane": None if plane is None else np.atleast_1d(plane).tolist(), "margin": int(margin),
                    "upsample": int(upsample), "refine": refine, "diagonal": diagonal,
                    "min_overlap": int(min_overlap), "flatfield": _describe(flatfield)}
    return solve_layout(tiles, pairs, min_confidence=min_confidence, min_distinctiveness=min_distinctiveness,
                        max_residual=max_residual, prior_weight=prior_weight, exclude=exclude,
                        registration=registration)


def _with_total(counts: Generator[int, None, Any], total: int) -> Generator[tuple[int, int], None, Any]:
    """``(count, total)`` for every count ``counts`` yields; returns what it returns."""
    while True:
        try:
            count = next(counts)
        except StopIteration as done:
            return done.value
        yield (count, total)


def _plane_index(plane: Any, tiles: Tiles) -> tuple:
    if plane is None:
        return (0,) * len(tiles.leading_shape)
    return tuple(int(i) for i in np.atleast_1d(plane))


def _describe(flatfield: Any) -> Any:
    if flatfield is None or isinstance(flatfield, str):
        return flatfield
    return "array"
