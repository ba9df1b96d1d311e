"""Global placement of the tiles from the pairwise measurements, and the quality report."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_number
from ._pairs import Pairs
from ._tiles import Tiles

__all__ = [
    "AMBIGUOUS",
    "EXCLUDED",
    "KEPT",
    "LARGE_RESIDUAL",
    "LOW_CONFIDENCE",
    "Layout",
    "mosaic_geometry",
    "solve_layout",
]

KEPT = "kept"
LOW_CONFIDENCE = "low confidence"
AMBIGUOUS = "ambiguous"
LARGE_RESIDUAL = "large residual"
EXCLUDED = "excluded"


def mosaic_geometry(positions: np.ndarray, tile_shape: Sequence[int]) -> tuple[np.ndarray, tuple[int, int]]:
    """``(origin, shape)``: the integer pixel where the mosaic starts and its ``(rows, cols)``."""
    origin = np.floor(positions.min(axis=0) + 1e-6)
    end = np.ceil(positions.max(axis=0) + np.asarray(tile_shape) - origin - 1e-6)
    return origin, (int(end[0]), int(end[1]))


@dataclass
class Layout:
    """Where every tile goes: the solved positions and the record of how they were found.

    Returned by :func:`register_tiles`; :meth:`solve` re-solves with other
    settings or with pairs excluded by hand, without measuring again.

    Attributes
    ----------
    tiles : Tiles
        The tiles (with their nominal positions).
    pairs : Pairs
        Every neighbouring pair and its measurement.
    positions : ndarray of float64, shape ``(n_tiles, 2)``
        Solved ``(row, col)`` position of each tile, in pixels of the stage frame.
    status : tuple of str
        Per pair: ``"kept"``, ``"low confidence"``, ``"ambiguous"`` (another
        displacement matches almost as well), ``"large residual"``
        (contradicts the other pairs), ``"excluded"`` (by the caller) or a
        measurement failure (``"no overlap"``, ``"flat overlap"``).
    residual : ndarray of float64, shape ``(K,)``
        Per pair, the distance (pixels) between the measured displacement and
        the solved one (NaN where nothing was measured).
    settings : dict
        ``min_confidence``, ``min_distinctiveness``, ``max_residual``,
        ``prior_weight`` and ``exclude`` of the solve, plus the registration settings.
    """

    tiles: Tiles
    pairs: Pairs
    positions: np.ndarray
    status: tuple
    residual: np.ndarray
    settings: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Layout({self.summary()})"

    # -- per tile ----------------------------------------------------------
    @property
    def kept(self) -> np.ndarray:
        """Per pair: True where the pair took part in the final solve."""
        return np.array([s == KEPT for s in self.status], dtype=bool)

    @property
    def groups(self) -> np.ndarray:
        """Per tile: its group of tiles linked by kept pairs, numbered by size (0: the largest group)."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n = len(self.tiles)
        i, j = self.pairs.index[self.kept].T if self.kept.any() else (np.zeros(0, int), np.zeros(0, int))
        labels = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)[1]
        sizes = np.bincount(labels)
        rank = np.empty_like(sizes)
        rank[np.argsort(-sizes, kind="stable")] = np.arange(len(sizes))
        return rank[labels]

    @property
    def fallback(self) -> np.ndarray:
        """Per tile: True where no kept pair links it to the main (largest) group of tiles.

        Such a tile is placed relative to the mosaic by its stage position
        (alone, or with the other tiles of its own group, which are registered
        to each other).
        """
        groups = self.groups
        return (groups != 0) | (np.count_nonzero(groups == 0) < 2)

    @property
    def origin(self) -> np.ndarray:
        """``(row, col)`` pixel of the stage frame where the mosaic's first pixel lies."""
        return mosaic_geometry(self.positions, self.tiles.tile_shape)[0]

    @property
    def mosaic_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the fused mosaic."""
        return mosaic_geometry(self.positions, self.tiles.tile_shape)[1]

    @property
    def translate(self) -> tuple[float, float]:
        """Physical position of the mosaic's first pixel (its napari ``translate``, in ``tiles.units``)."""
        return tuple(float(o * s) for o, s in zip(self.origin, self.tiles.pixel_size))

    # -- re-solve ----------------------------------------------------------
    def solve(
        self,
        *,
        exclude: Iterable | None = None,
        min_confidence: float | None = None,
        min_distinctiveness: float | None = None,
        max_residual: float | None = None,
        prior_weight: float | None = None,
    ) -> Layout:
        """Solve again from the same measurements (nothing is re-measured).

        Parameters
        ----------
        exclude : iterable of pairs, optional
            Pairs to leave out, each ``(i, j)`` by tile index or tile name
            (order does not matter); replaces the previous list. ``None`` keeps it.
        min_confidence, min_distinctiveness, max_residual, prior_weight : float, optional
            As in :func:`register_tiles`; ``None`` keeps the current value.

        Returns
        -------
        Layout
            A new layout; this one is unchanged.
        """
        settings = dict(self.settings)
        for key, value in (("min_confidence", min_confidence), ("min_distinctiveness", min_distinctiveness),
                           ("max_residual", max_residual), ("prior_weight", prior_weight)):
            if value is not None:
                settings[key] = value
        if exclude is not None:
            settings["exclude"] = _pair_list(exclude, self.tiles, self.pairs)
        return solve_layout(self.tiles, self.pairs, **{k: settings[k] for k in _SOLVE_KEYS},
                            registration={k: v for k, v in settings.items() if k not in _SOLVE_KEYS})

    # -- report ------------------------------------------------------------
    def table(self) -> dict:
        """The per-pair report as columns (``pandas.DataFrame(layout.table())`` makes it a frame).

        Columns: ``tile_i``, ``tile_j``, ``name_i``, ``name_j``;
        ``expected_y``/``_x`` (nominal displacement of tile j from tile i),
        ``shift_y``/``_x`` (measured displacement minus the expected one: the
        stage's error), ``confidence`` (normalised cross-correlation over the
        overlap), ``distinctiveness`` (how much the match beats the next best
        one), ``residual`` (pixels, after the global solve), ``status`` and
        ``kept``. Displacements are in pixels.
        """
        i, j = self.pairs.index.T
        shift = self.pairs.measured - self.pairs.expected
        return {
            "tile_i": i.copy(),
            "tile_j": j.copy(),
            "name_i": [self.tiles.names[k] for k in i],
            "name_j": [self.tiles.names[k] for k in j],
            "expected_y": self.pairs.expected[:, 0].copy(),
            "expected_x": self.pairs.expected[:, 1].copy(),
            "shift_y": shift[:, 0],
            "shift_x": shift[:, 1],
            "confidence": self.pairs.confidence.copy(),
            "distinctiveness": self.pairs.distinctiveness.copy(),
            "residual": self.residual.copy(),
            "status": list(self.status),
            "kept": self.kept,
        }

    def positions_table(self) -> dict:
        """Per tile: ``name``, ``file`` (the name for in-memory tiles), solved ``y``/``x``,
        ``stage_y``/``stage_x`` (pixels), ``placed`` (``"registered"``, or ``"stage"`` for a
        tile placed by the stage, see :attr:`fallback`) and ``group`` (see :attr:`groups`)."""
        files = self.tiles.metadata.get("files") or list(self.tiles.names)
        return {
            "name": list(self.tiles.names),
            "file": [str(f) for f in files],
            "y": self.positions[:, 0].copy(),
            "x": self.positions[:, 1].copy(),
            "stage_y": self.tiles.positions[:, 0].copy(),
            "stage_x": self.tiles.positions[:, 1].copy(),
            "placed": ["stage" if f else "registered" for f in self.fallback],
            "group": self.groups,
        }

    def summary(self) -> str:
        """One line: tiles, pairs kept and rejected (by reason), the largest kept residual, tiles left on the stage."""
        counts: dict[str, int] = {}
        for s in self.status:
            if s != KEPT:
                counts[s] = counts.get(s, 0) + 1
        kept = self.kept
        line = f"{len(self.tiles)} tiles, {len(self.pairs)} pairs: {int(kept.sum())} kept, {len(self.pairs) - int(kept.sum())} rejected"
        if counts:
            line += " (" + ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) + ")"
        if kept.any():
            worst = int(np.flatnonzero(kept)[np.argmax(self.residual[kept])])
            i, j = self.pairs.index[worst]
            line += (f"; largest residual {self.residual[worst]:.3g} px "
                     f"({self.tiles.names[i]} - {self.tiles.names[j]})")
        else:
            line += "; no pair kept"
        stage = [self.tiles.names[k] for k in np.flatnonzero(self.fallback)]
        if stage:
            shown = ", ".join(stage[:6]) + (", ..." if len(stage) > 6 else "")
            line += f"; {len(stage)} tile(s) placed by the stage, not linked to the main group ({shown})"
        return line

    def seams(self) -> dict:
        """Geometry of every overlap, in mosaic pixel coordinates, for a layer coloured by residual.

        Returns
        -------
        dict
            ``"rectangles"``: ndarray ``(K, 4, 2)``, the corners ``(row, col)``
            of each pair's overlap at the solved positions (a napari Shapes
            ``rectangle``); ``"lines"``: ndarray ``(K, 2, 2)``, the seam, i.e.
            the centre line of each overlap along its long side (a Shapes
            ``line``); ``"residual"``, ``"confidence"``, ``"kept"`` and
            ``"status"`` per pair. Show them with the mosaic's ``scale`` and
            :attr:`translate`.
        """
        shape = np.asarray(self.tiles.tile_shape, dtype=np.float64)
        p = self.positions - self.origin
        i, j = self.pairs.index.T
        start = np.maximum(p[i], p[j])
        stop = np.minimum(p[i] + shape, p[j] + shape)
        stop = np.maximum(stop, start)  # footprints that no longer overlap give a zero-width seam
        r0, c0 = start.T
        r1, c1 = stop.T
        rectangles = np.stack([np.stack([r0, c0], -1), np.stack([r0, c1], -1), np.stack([r1, c1], -1),
                               np.stack([r1, c0], -1)], axis=1)
        middle = (start + stop) / 2
        tall = (r1 - r0) >= (c1 - c0)
        lines = np.where(
            tall[:, None, None],
            np.stack([np.stack([r0, middle[:, 1]], -1), np.stack([r1, middle[:, 1]], -1)], axis=1),
            np.stack([np.stack([middle[:, 0], c0], -1), np.stack([middle[:, 0], c1], -1)], axis=1),
        )
        return {
            "rectangles": rectangles,
            "lines": lines,
            "residual": self.residual.copy(),
            "confidence": self.pairs.confidence.copy(),
            "kept": self.kept,
            "status": list(self.status),
        }

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write :meth:`table` to a CSV file; returns its path."""
        return _write_csv(path, self.table())

    def positions_to_csv(self, path: str | os.PathLike) -> Path:
        """Write :meth:`positions_table` (``file, y, x``, ...) to a CSV file that :func:`csv_tiles` reads back."""
        return _write_csv(path, self.positions_table())

    def record(self) -> dict:
        """JSON-ready record of the solve (settings, summary, positions) for an output's metadata."""
        return {
            "settings": {k: (list(map(list, v)) if k == "exclude" else v) for k, v in self.settings.items()},
            "summary": self.summary(),
            "positions": self.positions.round(4).tolist(),
            "names": list(self.tiles.names),
        }


_SOLVE_KEYS = ("min_confidence", "min_distinctiveness", "max_residual", "prior_weight", "exclude")


def _write_csv(path: str | os.PathLike, columns: dict) -> Path:
    path = Path(path)
    names = list(columns)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in zip(*(columns[n] for n in names)):
            writer.writerow([_cell(v) for v in row])
    return path


def _cell(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{float(value):.10g}"
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _pair_list(exclude: Iterable, tiles: Tiles, pairs: Pairs) -> list[tuple[int, int]]:
    """Validated ``[(i, j), ...]`` (``i < j``) from pairs given by tile index or tile name."""
    by_name = {name: k for k, name in enumerate(tiles.names)}
    known = {tuple(p) for p in pairs.index.tolist()}
    out = []
    for item in exclude:
        try:
            a, b = item
        except (TypeError, ValueError):
            raise TypeError(f"exclude: each pair must be (i, j) by tile index or name, got {item!r}") from None
        ends = []
        for end in (a, b):
            if isinstance(end, str):
                if end not in by_name:
                    raise ValueError(f"exclude: no tile named {end!r}")
                end = by_name[end]
            if isinstance(end, bool) or not isinstance(end, (int, np.integer)) or not 0 <= end < len(tiles):
                raise ValueError(f"exclude: tile {end!r} is not an index in [0, {len(tiles)})")
            ends.append(int(end))
        pair = (min(ends), max(ends))
        if pair not in known:
            raise ValueError(f"exclude: tiles {pair} are not a measured pair of neighbours")
        out.append(pair)
    return sorted(set(out))


def _least_squares(stage: np.ndarray, index: np.ndarray, measured: np.ndarray, weight: np.ndarray,
                   prior_weight: float) -> np.ndarray:
    """Positions minimising ``sum w (p_j - p_i - d)^2 + prior_weight * sum (p - stage)^2``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    n = len(stage)
    i, j = index.T if len(index) else (np.zeros(0, int), np.zeros(0, int))
    rows = np.concatenate([i, j, i, j, np.arange(n)])
    cols = np.concatenate([i, j, j, i, np.arange(n)])
    values = np.concatenate([weight, weight, -weight, -weight, np.full(n, prior_weight)])
    normal = coo_matrix((values, (rows, cols)), shape=(n, n)).tocsc()
    rhs = prior_weight * stage.copy()
    np.add.at(rhs, j, weight[:, None] * measured)
    np.add.at(rhs, i, -weight[:, None] * measured)
    return np.column_stack([spsolve(normal, rhs[:, k]) for k in range(2)]).reshape(n, 2)


def solve_layout(
    tiles: Tiles,
    pairs: Pairs,
    *,
    min_confidence: float = 0.6,
    min_distinctiveness: float = 0.1,
    max_residual: float = 2.0,
    prior_weight: float = 1e-6,
    exclude: Sequence = (),
    registration: dict | None = None,
) -> Layout:
    """Weighted least-squares placement with iterative rejection of the worst pair.

    Pairs below ``min_confidence`` or ``min_distinctiveness`` (or failed,
    or in ``exclude``) never take part. The rest are solved together with a weak pull of every tile towards
    its stage position (``prior_weight``, relative to a pair of confidence 1),
    which fixes the placement of groups of tiles not linked to each other and
    leaves an unlinked tile exactly at its stage position. While the largest
    residual exceeds ``max_residual`` pixels, that pair is rejected and the
    solve repeated.
    """
    check_number("min_confidence", min_confidence, low=-1.0, high=1.0)
    check_number("min_distinctiveness", min_distinctiveness, low=0.0, high=2.0)
    check_number("max_residual", max_residual, low=0.0, low_inclusive=False)
    check_number("prior_weight", prior_weight, low=0.0, low_inclusive=False)
    exclude = _pair_list(exclude, tiles, pairs)
    excluded = set(exclude)
    status = []
    for k, (i, j) in enumerate(pairs.index.tolist()):
        if pairs.failure[k]:
            status.append(pairs.failure[k])
        elif (i, j) in excluded:
            status.append(EXCLUDED)
        elif pairs.confidence[k] < min_confidence:
            status.append(LOW_CONFIDENCE)
        elif pairs.distinctiveness[k] < min_distinctiveness:
            status.append(AMBIGUOUS)
        else:
            status.append(KEPT)
    weight = _weights(pairs, tiles.tile_shape)
    for k in _inconsistent(len(tiles), pairs, [s == KEPT for s in status], max_residual):
        status[k] = LARGE_RESIDUAL
    while True:
        use = np.array([s == KEPT for s in status], dtype=bool)
        positions = _least_squares(tiles.positions, pairs.index[use], pairs.measured[use], weight[use], prior_weight)
        residual = _residuals(positions, pairs)
        if not use.any():
            break
        worst = int(np.flatnonzero(use)[np.argmax(residual[use])])
        if residual[worst] <= max_residual:
            break
        status[worst] = LARGE_RESIDUAL
    settings = dict(registration or {})
    settings.update(min_confidence=float(min_confidence), min_distinctiveness=float(min_distinctiveness),
                    max_residual=float(max_residual), prior_weight=float(prior_weight), exclude=exclude)
    return Layout(tiles=tiles, pairs=pairs, positions=positions, status=tuple(status), residual=residual,
                  settings=settings)


def _inconsistent(n: int, pairs: Pairs, usable: Sequence[bool], max_residual: float) -> list[int]:
    """Pairs that contradict more confident ones by more than ``max_residual`` pixels.

    Pairs are taken from the most to the least confident: a pair joining two
    groups of tiles places one group relative to the other; a pair within a
    group must agree with the placement its group already has, or it is
    rejected. The least squares that follow then start from pairs that agree,
    so a few wrong pairs cannot outvote a right one across a weak link, as
    they could in a plain iterative rejection of the largest residual.
    """
    position = np.zeros((n, 2))
    members = {k: [k] for k in range(n)}
    group = list(range(n))
    rejected = []
    for k in sorted(np.flatnonzero(usable), key=lambda k: -pairs.confidence[k]):
        i, j = pairs.index[k]
        d = pairs.measured[k]
        if group[i] == group[j]:
            if np.linalg.norm(position[j] - position[i] - d) > max_residual:
                rejected.append(int(k))
            continue
        keep, move = (group[i], group[j]) if len(members[group[i]]) >= len(members[group[j]]) else (group[j], group[i])
        offset = position[i] + d - position[j] if move == group[j] else position[j] - d - position[i]
        for m in members[move]:
            position[m] += offset
            group[m] = keep
        members[keep] += members.pop(move)
    return rejected


def _weights(pairs: Pairs, tile_shape: tuple) -> np.ndarray:
    """Least-squares weight of each pair: its confidence times the size of its overlap.

    A displacement measured over a thin sliver of overlap is less precise
    than one over a wide strip, so it should bend the solution less. Scaled
    so that the largest overlap with confidence 1 weighs 1.
    """
    extent = np.asarray(tile_shape, dtype=np.float64) - np.abs(np.nan_to_num(pairs.measured))
    area = np.clip(extent, 0, None).prod(axis=1)
    scale = area.max() if len(area) and area.max() > 0 else 1.0
    return np.clip(pairs.confidence, 1e-3, 1.0) * np.clip(area / scale, 1e-3, 1.0)


def _residuals(positions: np.ndarray, pairs: Pairs) -> np.ndarray:
    if not len(pairs):
        return np.zeros(0)
    i, j = pairs.index.T
    return np.linalg.norm(positions[j] - positions[i] - pairs.measured, axis=1)

