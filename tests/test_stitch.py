"""Stitching: tiles, pairwise registration, global solve, report, lazy fusion (headless, in memory).

The done-when scenario of issue 20 is ``test_synthetic_scan_positions`` (positions) and
``test_seams_are_invisible`` (fusion): 4 x 4 tiles cut from a bundled image at true
sub-pixel positions, 10-20 % overlap, stage jitter up to 5 % of a tile, noise, one tile of
pure background and one tile 40 px off.
"""

from __future__ import annotations

import doctest
import importlib

import dask
import dask.array as da
import numpy as np
import pytest
from _mosaics import group_errors
from dask.optimization import cull
from scipy import ndimage as ndi
from skimage import color, data

import napari_stacklab as sl
from napari_stacklab._mosaic._layout import solve_layout
from napari_stacklab._mosaic._pairs import _shifts, measure_pair
from napari_stacklab.stitch import (
    Pairs,
    Tiles,
    find_pairs,
    fuse,
    masked_ncc,
    register_tiles,
    synthetic_tiles,
)

BACKGROUND, MISPLACED = 5, 10
NOISE = 0.02


@pytest.fixture(scope="module")
def hubble():
    return color.rgb2gray(data.hubble_deep_field()) * 255.0


def scan(image, overlap, seed=0, tile=192):
    return synthetic_tiles(image, rows=4, cols=4, tile_shape=(tile, tile), overlap=overlap, jitter=0.05, noise=NOISE,
                           background_tile=BACKGROUND, misplaced_tile=MISPLACED, misplacement=(0.0, 40.0), seed=seed)


# ---------------------------------------------------------------- the done-when scenario


@pytest.fixture(scope="module", params=[0.1, 0.15, 0.2], ids=lambda o: f"overlap{int(o * 100)}")
def solved(request, hubble):
    tiles, truth = scan(hubble, request.param)
    return tiles, truth, register_tiles(tiles, margin=64)


def test_synthetic_scan_positions(solved):
    tiles, truth, layout = solved
    # the scenario is as the issue asks: stage errors up to 5 % of a tile, one tile 40 px off
    stage_error = np.abs(truth - tiles.positions - np.median(truth - tiles.positions, axis=0))
    jitter = 0.05 * 192
    others = np.delete(stage_error, MISPLACED, axis=0)
    assert stage_error[MISPLACED, 1] > 40 - 2 * jitter and jitter / 2 < others.max() <= 2 * jitter
    errors = group_errors(layout, truth)
    main = layout.groups == 0
    # every tile placed by registration is within 0.2 px of the truth ...
    assert errors[main].max() < 0.2, errors
    # ... including the tile the stage put 40 px off (its own pairs place it)
    assert main[MISPLACED] and errors[MISPLACED] < 0.2
    # the tile of pure background is reported: none of its pairs kept, placed by the stage
    background_pairs = np.flatnonzero((layout.pairs.index == BACKGROUND).any(axis=1))
    assert len(background_pairs) == 4 and not layout.kept[background_pairs].any()
    assert layout.fallback[BACKGROUND]
    np.testing.assert_allclose(layout.positions[BACKGROUND], tiles.positions[BACKGROUND], atol=1e-3)
    # the pair the 40 px error pulled apart (no overlap left) is rejected
    lost = np.flatnonzero((layout.pairs.index == [MISPLACED - 1, MISPLACED]).all(axis=1))
    assert not layout.kept[lost].any()
    # every kept pair agrees with the truth; rejected ones are reported as such
    true_d = truth[layout.pairs.index[:, 1]] - truth[layout.pairs.index[:, 0]]
    assert np.abs(layout.pairs.measured - true_d)[layout.kept].max() < 0.5
    summary = layout.summary()
    assert f"{int((~layout.kept).sum())} rejected" in summary and "largest residual" in summary
    assert "tile_005" in summary


def test_report_table_and_positions(solved):
    tiles, truth, layout = solved
    table = layout.table()
    k = len(layout.pairs)
    assert set(table) == {"tile_i", "tile_j", "name_i", "name_j", "expected_y", "expected_x", "shift_y", "shift_x",
                          "confidence", "distinctiveness", "residual", "status", "kept"}
    assert all(len(column) == k for column in table.values())
    kept = np.asarray(table["kept"])
    assert set(np.asarray(table["status"])[kept]) == {"kept"}
    assert set(np.asarray(table["status"])[~kept]) <= {"low confidence", "ambiguous", "large residual",
                                                      "no overlap", "flat overlap", "at search limit"}
    # the shift column is the stage's error: the misplaced tile's right neighbour shows the 40 px
    right = np.flatnonzero((layout.pairs.index == [MISPLACED, MISPLACED + 1]).all(axis=1))[0]
    true_shift = (truth[MISPLACED + 1] - truth[MISPLACED]) - (tiles.positions[MISPLACED + 1] - tiles.positions[MISPLACED])
    np.testing.assert_allclose([table["shift_y"][right], table["shift_x"][right]], true_shift, atol=0.2)
    assert abs(true_shift[1] + 40) <= 2 * 0.05 * 192  # 40 px, give or take both tiles' jitter
    # the largest kept residual in the summary is the table's
    worst = np.nanmax(np.where(kept, table["residual"], np.nan))
    assert f"{worst:.3g} px" in layout.summary()
    positions = layout.positions_table()
    assert positions["placed"][BACKGROUND] == "stage" and positions["placed"][MISPLACED] == "registered"
    np.testing.assert_array_equal(positions["y"], layout.positions[:, 0])


def test_seams_layer_data(solved):
    tiles, _, layout = solved
    seams = layout.seams()
    k = len(layout.pairs)
    assert seams["rectangles"].shape == (k, 4, 2) and seams["lines"].shape == (k, 2, 2)
    np.testing.assert_array_equal(seams["residual"], layout.residual)
    np.testing.assert_array_equal(seams["kept"], layout.kept)
    # each seam lies inside its overlap rectangle, and that rectangle inside both tiles (mosaic pixels)
    p = layout.positions - layout.origin
    shape = np.asarray(tiles.tile_shape)
    for (i, j), rect, line, kept in zip(layout.pairs.index, seams["rectangles"], seams["lines"], layout.kept):
        lo, hi = rect.min(axis=0), rect.max(axis=0)
        assert np.all(line >= lo - 1e-9) and np.all(line <= hi + 1e-9)
        if kept:
            assert np.all(lo >= np.maximum(p[i], p[j]) - 1e-9) and np.all(hi <= np.minimum(p[i], p[j]) + shape + 1e-9)
            assert np.all(hi - lo > 0)
    # rectangles in mosaic pixels fit the mosaic
    assert seams["rectangles"].min() >= 0
    assert np.all(seams["rectangles"].max(axis=(0, 1)) <= np.asarray(layout.mosaic_shape))


def test_seams_are_invisible(hubble):
    """In the overlaps, the fused mosaic equals the source up to the noise; at the stage positions it does not."""
    tiles, truth = scan(hubble, 0.15)
    layout = register_tiles(tiles, margin=64)
    sigma = NOISE * (hubble.max() - hubble.min())

    def compare(positions, order):
        mosaic = fuse(tiles, positions=positions, order=order, chunks=200).compute()
        registered = ~layout.fallback
        offset = np.median((positions - truth)[registered], axis=0)
        origin = np.floor(positions.min(axis=0) + 1e-6) - offset  # source pixel of mosaic pixel 0
        source = ndi.map_coordinates(hubble, np.indices(mosaic.shape) + origin[:, None, None], order=3)
        cover = np.zeros(mosaic.shape, int)
        background = np.zeros(mosaic.shape, bool)
        corner = np.floor(positions - np.floor(positions.min(axis=0) + 1e-6)).astype(int)
        for k, (y, x) in enumerate(corner):
            if k == BACKGROUND:
                background[max(y - 1, 0) : y + 194, max(x - 1, 0) : x + 194] = True
            else:
                cover[y + 2 : y + 190, x + 2 : x + 190] += 1
        diff = mosaic - source
        overlaps, single = (cover >= 2) & ~background, (cover == 1) & ~background
        return np.sqrt(np.mean(diff[overlaps] ** 2)), np.sqrt(np.mean(diff[single] ** 2))

    for order in (1, 3):
        in_overlaps, elsewhere = compare(layout.positions, order)
        assert in_overlaps <= sigma, (order, in_overlaps, sigma)      # blending two tiles: at most the noise
        assert in_overlaps <= elsewhere * 1.05, (order, in_overlaps, elsewhere)   # no worse than one tile alone
    # the check can fail: the same tiles at their stage positions leave visible seams
    at_stage, _ = compare(tiles.positions, 1)
    assert at_stage > 3 * sigma


# ---------------------------------------------------------------- pairs


def test_masked_ncc_matches_direct_correlation():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(13, 17))
    b = rng.normal(size=(9, 11))
    b[2:7, 3:9] += 2 * a[5:10, 1:7]  # a[u] resembles b[u + t] for t = (-3, 2)
    ncc, area = masked_ncc(a, b)
    for t in [(-3, 2), (0, 0), (4, -5), (-8, 10), (-12, -16), (8, 10)]:
        rows = [u for u in range(a.shape[0]) if 0 <= u + t[0] < b.shape[0]]
        cols = [v for v in range(a.shape[1]) if 0 <= v + t[1] < b.shape[1]]
        x = a[np.ix_(rows, cols)].ravel()
        y = b[np.ix_([u + t[0] for u in rows], [v + t[1] for v in cols])].ravel()
        index = tuple(s % n for s, n in zip(t, ncc.shape))
        assert area[index] == x.size
        if x.size > 2:
            np.testing.assert_allclose(ncc[index], np.corrcoef(x, y)[0, 1], atol=1e-9)
    best = np.unravel_index(np.nanargmax(np.where(area >= 20, ncc, -np.inf)), ncc.shape)
    assert tuple(int(_shifts(n, size)[i]) for i, n, size in zip(best, ncc.shape, a.shape)) == (-3, 2)


@pytest.mark.parametrize("refine, tolerance", [(True, 0.05), (False, 0.15)])
def test_measure_pair_sub_pixel(refine, tolerance):
    image = data.camera().astype(np.float64)
    truth = np.array([3.37, 150.62])  # tile j's first pixel in tile i's frame
    grid = np.indices((200, 200)).astype(np.float64)
    tile_i = ndi.map_coordinates(image, grid + np.array([150.0, 40.0])[:, None, None], order=3)
    tile_j = ndi.map_coordinates(image, grid + (np.array([150.0, 40.0]) + truth)[:, None, None], order=3)
    expected = np.array([0.0, 160.0])
    d, confidence, distinct, failure = measure_pair(tile_i, tile_j, np.zeros(2, int), np.zeros(2, int), expected,
                                                    (200, 200), margin=20, refine=refine)
    assert failure == "" and confidence > 0.9 and distinct > 0.1
    np.testing.assert_allclose(d, truth, atol=tolerance)


def test_find_pairs_grid_neighbours():
    positions, _ = sl.stitch.grid_positions(9, rows=3, cols=3, tile_shape=(100, 100), overlap=0.1)
    sides = find_pairs(positions, (100, 100))
    assert len(sides) == 12 and np.all(sides[:, 0] < sides[:, 1])
    assert len(find_pairs(positions, (100, 100), diagonal=True)) == 12 + 8
    assert len(find_pairs(positions, (100, 100), min_overlap=11)) == 0


def test_grid_positions_orders():
    positions, grid = sl.stitch.grid_positions(6, rows=2, cols=3, tile_shape=(10, 20), overlap=0.5, order="snake")
    np.testing.assert_array_equal(grid, [[0, 0], [0, 1], [0, 2], [1, 2], [1, 1], [1, 0]])
    np.testing.assert_array_equal(positions[3], [5.0, 20.0])
    _, grid = sl.stitch.grid_positions(6, rows=2, cols=3, tile_shape=(10, 20), order="column-major")
    np.testing.assert_array_equal(grid, [[0, 0], [1, 0], [0, 1], [1, 1], [0, 2], [1, 2]])
    _, grid = sl.stitch.grid_positions(6, rows=2, cols=3, tile_shape=(10, 20), order="snake-column")
    np.testing.assert_array_equal(grid, [[0, 0], [1, 0], [1, 1], [0, 1], [0, 2], [1, 2]])
    with pytest.raises(ValueError, match="holds 6 tiles, got 5"):
        sl.stitch.grid_positions(5, rows=2, cols=3, tile_shape=(10, 20))
    with pytest.raises(ValueError, match="order must be one of"):
        sl.stitch.grid_positions(6, rows=2, cols=3, tile_shape=(10, 20), order="spiral")
    with pytest.raises(ValueError, match="overlap"):
        sl.stitch.grid_positions(6, rows=2, cols=3, tile_shape=(10, 20), overlap=1.5)


# ---------------------------------------------------------------- solve and re-solve


def test_exclude_a_pair_and_resolve(hubble):
    tiles, truth = scan(hubble, 0.2)
    layout = register_tiles(tiles, margin=64)
    kept = np.flatnonzero(layout.kept)
    pair = tuple(int(v) for v in layout.pairs.index[kept[0]])
    again = layout.solve(exclude=[pair])
    assert again is not layout and layout.status[kept[0]] == "kept"  # the original is unchanged
    assert again.status[kept[0]] == "excluded" and again.settings["exclude"] == [pair]
    assert group_errors(again, truth)[again.groups == 0].max() < 0.2
    # by tile names, in any order, is the same
    names = (tiles.names[pair[1]], tiles.names[pair[0]])
    np.testing.assert_allclose(layout.solve(exclude=[names]).positions, again.positions)
    # the exclusion is kept by a later re-solve with other settings, and dropped by exclude=[]
    stricter = again.solve(min_confidence=0.9)
    assert stricter.status[kept[0]] == "excluded" and stricter.settings["min_confidence"] == 0.9
    assert again.solve(exclude=[]).status[kept[0]] == "kept"
    with pytest.raises(ValueError, match="not a measured pair"):
        layout.solve(exclude=[(0, 15)])
    with pytest.raises(ValueError, match="no tile named"):
        layout.solve(exclude=[("tile_000", "nope")])
    with pytest.raises(TypeError, match="each pair"):
        layout.solve(exclude=[3])
    with pytest.raises(ValueError, match="max_residual"):
        layout.solve(max_residual=0)


def test_stepwise_registration_reports_progress_stops_when_closed_and_equals_register_tiles(hubble, monkeypatch):
    from napari_stacklab._mosaic import _pairs

    tiles, _ = synthetic_tiles(hubble, rows=2, cols=3, tile_shape=(128, 128), overlap=0.15, seed=2)
    steps = sl.stitch.register_tiles_stepwise(tiles, batch=3, margin=24)
    progress = []
    while True:
        try:
            progress.append(next(steps))
        except StopIteration as done:
            layout = done.value
            break
    assert progress == [(3, 7), (6, 7), (7, 7)]  # 2 x 3 tiles: 4 pairs along rows, 3 along columns
    whole = register_tiles(tiles, margin=24)
    np.testing.assert_array_equal(layout.positions, whole.positions)
    assert layout.status == whole.status and layout.settings == whole.settings

    calls = []
    real = _pairs.measure_pair
    monkeypatch.setattr(_pairs, "measure_pair", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    steps = sl.stitch.register_tiles_stepwise(tiles, batch=2, margin=24)
    assert next(steps) == (2, 7)
    steps.close()  # a Cancel button: nothing more is measured
    assert len(calls) == 2

    apart = Tiles([np.zeros((32, 32))] * 2, [[0, 0], [0, 100]])
    steps = sl.stitch.register_tiles_stepwise(apart)
    assert next(steps) == (0, 0)
    with pytest.raises(StopIteration):
        next(steps)
    with pytest.raises(TypeError, match="unexpected keyword argument 'marg'"):
        next(sl.stitch.register_tiles_stepwise(tiles, marg=3))
    with pytest.raises(ValueError, match="batch must be"):
        next(sl.stitch.register_tiles_stepwise(tiles, batch=0))


def test_wrong_pairs_across_a_cut_do_not_outvote_the_right_one():
    """Two wrong pairs across a cut must not push out the one right pair (the most confident decide first)."""
    positions, _ = sl.stitch.grid_positions(6, rows=2, cols=3, tile_shape=(100, 100), overlap=0.1)
    index = find_pairs(positions, (100, 100))
    measured = positions[index[:, 1]] - positions[index[:, 0]]
    confidence = np.full(len(index), 0.95)
    for pair, error in (((1, 4), 20.0), ((2, 5), 26.0)):  # the bottom row's right pair is (0, 3)
        k = np.flatnonzero((index == pair).all(axis=1))[0]
        measured[k, 1] += error
        confidence[k] = 0.7
    pairs = Pairs(index=index, expected=positions[index[:, 1]] - positions[index[:, 0]], measured=measured,
                  confidence=confidence, distinctiveness=np.full(len(index), 0.5), failure=("",) * len(index))
    layout = solve_layout(Tiles([np.zeros((100, 100))] * 6, positions), pairs)
    status = dict(zip(map(tuple, index.tolist()), layout.status))
    assert status[(0, 3)] == "kept" and status[(1, 4)] == status[(2, 5)] == "large residual"
    np.testing.assert_allclose(layout.positions - layout.positions[0], positions - positions[0], atol=1e-6)
    # a plain "reject the largest residual, re-solve" would have dropped (0, 3): the weighted mean of the
    # three cross pairs puts the bottom row 13 px off, farthest from the right pair


def test_tiles_with_no_usable_pair_stay_at_the_stage():
    rng = np.random.default_rng(0)
    tiles = Tiles([rng.normal(size=(64, 64)) for _ in range(4)], [[0, 0], [0, 50], [50, 0], [50, 50]])
    layout = register_tiles(tiles, margin=4)  # independent noise: nothing matches
    assert len(layout.pairs) == 4 and not layout.kept.any() and layout.fallback.all()
    np.testing.assert_allclose(layout.positions, tiles.positions, atol=1e-6)
    assert "0 kept" in layout.summary() and "no pair kept" in layout.summary()


# ---------------------------------------------------------------- fusion


def reference_mosaic(tiles, positions, blend, order, cval=0.0):
    """A plain NumPy mosaic (whole arrays, no chunks) built independently of the library's graph."""
    M, N = tiles.tile_shape
    origin = np.floor(positions.min(axis=0) + 1e-6)
    placed = positions - origin
    whole = np.round(placed).astype(int) if order == 0 else np.floor(placed + 1e-9).astype(int)
    shape = tuple(int(s) for s in np.ceil(positions.max(axis=0) + (M, N) - origin - 1e-6))
    ramp_y = np.minimum(np.arange(M) + 1.0, M - np.arange(M))
    ramp_x = np.minimum(np.arange(N) + 1.0, N - np.arange(N))
    total, weight = np.zeros(shape), np.zeros(shape)
    out, seen = np.full(shape, -np.inf), np.zeros(shape, bool)
    for k, tile in enumerate(tiles.data):
        tile = np.asarray(tile, dtype=np.float64)
        fraction = placed[k] - whole[k]
        if order and np.any(fraction > 1e-6):
            tile = ndi.shift(tile, fraction, order=order, mode="nearest")
        y, x = whole[k]
        region = (slice(y, y + M), slice(x, x + N))
        if blend == "linear":
            w = ramp_y[:, None] * ramp_x[None, :]
            total[region] += w * tile
            weight[region] += w
        elif blend == "max":
            out[region] = np.maximum(out[region], tile)
        else:
            out[region] = tile
        seen[region] = True
    if blend == "linear":
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1), cval)
    return np.where(seen, out, cval)


@pytest.fixture(scope="module")
def small_tiles():
    tiles, _ = synthetic_tiles(data.camera(), rows=3, cols=3, tile_shape=(96, 80), overlap=0.2, seed=4)
    positions = tiles.positions + np.random.default_rng(2).uniform(-3, 3, size=tiles.positions.shape)
    return tiles, positions


@pytest.mark.parametrize("blend", ["linear", "max", "overwrite"])
@pytest.mark.parametrize("order", [0, 1])
def test_fuse_matches_a_plain_numpy_mosaic(small_tiles, blend, order):
    tiles, positions = small_tiles
    out = fuse(tiles, positions=positions, blend=blend, order=order, chunks=37, cval=-1.0)
    expected = reference_mosaic(tiles, positions, blend, order, cval=-1.0)
    assert out.shape == expected.shape and out.dtype == np.float32
    np.testing.assert_allclose(out.compute(), expected, rtol=1e-5, atol=1e-3)


def test_fuse_lazy_equals_eager_whatever_the_chunks(small_tiles):
    tiles, positions = small_tiles
    eager = fuse(tiles, positions=positions, chunks=1000).compute()
    awkward = Tiles([da.from_array(t, chunks=(31, 23)) for t in tiles.data], tiles.positions)
    lazy = fuse(awkward, positions=positions, chunks=50)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), eager)
    # each chunk depends on the tiles it overlaps only (here the corner chunk: tile 0 and maybe a neighbour)
    block = lazy.blocks[0, 0]
    graph, _ = cull(dict(block.__dask_graph__()), list(dask.core.flatten(block.__dask_keys__())))
    tiles_read = {k[0] for k in graph if isinstance(k, tuple) and str(k[0]).startswith("_prepare_tile")}
    assert 1 <= len(tiles_read) <= 4 < len(tiles)


def test_fuse_dtype_rules(small_tiles):
    tiles, _ = small_tiles
    counts = Tiles([np.clip(t, 0, None).astype(np.uint16) for t in tiles.data], tiles.positions)
    assert fuse(counts, order=0, blend="overwrite").dtype == np.uint16  # copies values: keeps the dtype
    assert fuse(counts, order=0, blend="max").dtype == np.uint16
    assert fuse(counts, order=0).dtype == np.float32  # linear blending computes
    assert fuse(counts, order=1, blend="max").dtype == np.float32  # interpolation computes
    as_uint8 = fuse(counts, order=0, dtype=np.uint8).compute()
    assert as_uint8.dtype == np.uint8 and as_uint8.max() == 255  # clipped, not wrapped
    f64 = Tiles([t.astype(np.float64) for t in tiles.data], tiles.positions)
    assert fuse(f64).dtype == np.float64
    # overwrite and max at whole pixels reproduce the tile values exactly
    mosaic = fuse(counts, order=0, blend="overwrite").compute()
    y, x = np.round(counts.positions[-1] - np.floor(counts.positions.min(axis=0))).astype(int)
    np.testing.assert_array_equal(mosaic[y : y + 96, x : x + 80], counts.data[-1])


def test_fuse_flatfield_removes_shading(small_tiles):
    tiles, positions = small_tiles
    yy, xx = np.indices(tiles.tile_shape)
    shading = 1.0 - 0.4 * (((yy - 48) / 48) ** 2 + ((xx - 40) / 40) ** 2) / 2
    shaded = Tiles([t * shading + 0 for t in tiles.data], tiles.positions)
    clean = fuse(tiles, positions=positions).compute()
    uncorrected = fuse(shaded, positions=positions).compute()
    given = fuse(shaded, positions=positions, flatfield=shading).compute()
    level = clean * shading.mean()  # a flat is scaled to mean 1: counts keep their level
    np.testing.assert_allclose(given, level, rtol=1e-4, atol=1e-2)
    assert np.sqrt(np.mean((uncorrected - level) ** 2)) > 5  # the shading was visible
    np.testing.assert_allclose(
        fuse(shaded, positions=positions, flatfield="median").compute(),
        fuse(shaded, positions=positions, flatfield=sl.stitch.estimate_flatfield(shaded)).compute(), rtol=1e-6,
    )
    dark = np.full(tiles.tile_shape, 5.0)
    darkened = Tiles([t + 5.0 for t in tiles.data], tiles.positions)
    np.testing.assert_allclose(fuse(darkened, positions=positions, darkfield=dark).compute(), clean, atol=1e-3)
    with pytest.raises(ValueError, match="flatfield must be positive"):
        fuse(shaded, flatfield=shading - 1)
    with pytest.raises(ValueError, match="flatfield must have shape"):
        fuse(shaded, flatfield=np.ones((5, 5)))
    with pytest.raises(ValueError, match="flatfield must be None, 'median'"):
        fuse(shaded, flatfield="mean")


def test_estimate_flatfield_recovers_the_shading():
    image = color.rgb2gray(data.astronaut()) * 200 + 20
    rng = np.random.default_rng(3)
    yy, xx = np.indices((64, 80))
    shading = np.exp(-(((yy - 20) / 60) ** 2) - ((xx - 50) / 70) ** 2)  # vignetting off centre
    corners = rng.integers(0, 512 - 80, size=(40, 2))
    tiles = Tiles([image[y : y + 64, x : x + 80] * shading for y, x in corners], np.zeros((40, 2)))
    flat = sl.stitch.estimate_flatfield(tiles)
    assert flat.shape == (64, 80) and flat.dtype == np.float32
    np.testing.assert_allclose(flat.mean(), 1.0, rtol=1e-5)
    relative_error = np.abs(flat / (shading / shading.mean()) - 1)
    assert np.median(relative_error) < 0.05 and np.corrcoef(flat.ravel(), shading.ravel())[0, 1] > 0.95
    stack = Tiles([np.stack([t, 2 * t]) for t in tiles.data], tiles.positions)
    np.testing.assert_allclose(sl.stitch.estimate_flatfield(stack), np.stack([flat, flat]), rtol=1e-5)
    with pytest.raises(ValueError, match="not positive everywhere"):
        sl.stitch.estimate_flatfield(Tiles([t - 500 for t in tiles.data], tiles.positions))


def test_stacks_register_on_one_plane_and_place_every_plane(hubble):
    tiles, _ = scan(hubble, 0.2)
    second = [np.sqrt(np.clip(t, 0, None)) * 7 + 3 for t in tiles.data]  # another channel: same place, other look
    stack = Tiles([np.stack([a, b]) for a, b in zip(tiles.data, second)], tiles.positions,
                  scale=(0.5, 0.5), units=("um", "um"), axis_labels=("c", "y", "x"))
    assert stack.shape == (2, 192, 192) and stack.scale == (1.0, 0.5, 0.5) and stack.units == ("pixel", "um", "um")
    layout = register_tiles(stack, plane=0, margin=64)
    np.testing.assert_allclose(layout.positions, register_tiles(tiles, margin=64).positions, atol=1e-9)
    mosaic = fuse(layout)
    assert mosaic.shape[0] == 2 and mosaic.chunks[0] == (1, 1)
    only_second = fuse(Tiles(second, tiles.positions), positions=layout.positions).compute()
    np.testing.assert_allclose(mosaic[1].compute(), only_second, rtol=1e-6)
    image = sl.stitch.mosaic_image(layout)
    assert image.axis_labels == ("c", "y", "x") and image.scale == (1.0, 0.5, 0.5)
    np.testing.assert_allclose(image.translate[1:], layout.origin * 0.5)
    with pytest.raises(ValueError, match="plane must index"):
        register_tiles(stack, plane=2)
    with pytest.raises(ValueError, match="plane must index"):
        register_tiles(stack, plane=(0, 0))


def test_pyramid_levels():
    mosaic = da.from_array(np.arange(40 * 36, dtype=np.uint16).reshape(40, 36), chunks=16)
    levels = sl.stitch.pyramid(mosaic, levels=3)
    assert [lv.shape for lv in levels] == [(40, 36), (20, 18), (10, 9)]
    assert all(lv.dtype == np.uint16 for lv in levels)
    np.testing.assert_array_equal(levels[1].compute(), np.rint(mosaic.compute().reshape(20, 2, 18, 2).mean((1, 3))))
    assert len(sl.stitch.pyramid(da.zeros((3000, 100)))) == 5  # down to under 256 pixels


# ---------------------------------------------------------------- parallel, validation, docs


def test_registration_runs_on_a_distributed_cluster(hubble):
    distributed = pytest.importorskip("distributed")
    tiles, _ = scan(hubble, 0.2)
    lazy = Tiles([da.from_array(t, chunks=96) for t in tiles.data], tiles.positions)
    threads = register_tiles(lazy, margin=64)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster, distributed.Client(cluster):
        on_cluster = register_tiles(lazy, margin=64)
        mosaic = fuse(on_cluster, chunks=256).compute()
    np.testing.assert_allclose(on_cluster.positions, threads.positions, atol=1e-9)
    np.testing.assert_allclose(mosaic, fuse(threads, chunks=256).compute(), atol=1e-4)


def test_bad_input_is_refused_by_name():
    good = [np.zeros((20, 20))] * 2
    with pytest.raises(ValueError, match=r"data\[1\] has shape"):
        Tiles([np.zeros((20, 20)), np.zeros((20, 21))], [[0, 0], [0, 18]])
    with pytest.raises(ValueError, match="positions must be a finite array of shape"):
        Tiles(good, [[0, 0]])
    with pytest.raises(ValueError, match="positions must be a finite"):
        Tiles(good, [[0, 0], [np.nan, 1]])
    with pytest.raises(TypeError, match="data must be a non-empty list"):
        Tiles([], np.zeros((0, 2)))
    with pytest.raises(TypeError, match=r"data\[0\] must have a real"):
        Tiles([np.zeros((4, 4), complex)] * 2, [[0, 0], [0, 2]])
    with pytest.raises(ValueError, match="scale must hold positive"):
        Tiles(good, [[0, 0], [0, 18]], scale=(0, 1))
    tiles = Tiles(good, [[0, 0], [0, 18]])
    with pytest.raises(TypeError, match="tiles must be a Tiles"):
        register_tiles(good)
    with pytest.raises(ValueError, match="margin must be"):
        register_tiles(tiles, margin=-1)
    with pytest.raises(TypeError, match="refine must be True or False"):
        register_tiles(tiles, refine="yes")
    with pytest.raises(ValueError, match="blend must be one of"):
        fuse(tiles, blend="average")
    with pytest.raises(ValueError, match="order must be"):
        fuse(tiles, order=5)
    with pytest.raises(ValueError, match="positions must be finite, of shape"):
        fuse(tiles, positions=np.zeros((3, 2)))
    with pytest.raises(TypeError, match="tiles must be a Tiles or a Layout"):
        fuse(good)
    with pytest.raises(ValueError, match="at least 3 tiles"):
        sl.stitch.estimate_flatfield(tiles)


def test_inputs_are_not_modified(small_tiles):
    tiles, _ = small_tiles
    before = [t.copy() for t in tiles.data]
    stage = tiles.positions.copy()
    layout = register_tiles(tiles, margin=8)
    fuse(layout, flatfield="median").compute()
    for a, b in zip(before, tiles.data):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(stage, tiles.positions)


@pytest.mark.parametrize(
    "module", ["_mosaic._tiles", "stitch._read", "_mosaic._synthetic", "_mosaic._flatfield", "_mosaic._fuse",
               "_mosaic._register", "_mosaic._operation", "stitch._run"]
)
def test_docstring_examples(module):
    mod = importlib.import_module(f"napari_stacklab.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------- the registry operation


def test_stitch_grid_operation_equals_the_api_and_places_every_plane_alike(hubble):
    tiles, truth = synthetic_tiles(hubble, rows=2, cols=3, tile_shape=(128, 128), overlap=0.15, seed=4,
                                   order="snake")
    stack = np.stack(tiles.data)
    op = sl.stitch.stitch_grid
    mosaic = op(stack, rows=2, order="snake", overlap=0.15, margin=24)
    layout = register_tiles(tiles, margin=24)
    assert isinstance(mosaic, np.ndarray) and mosaic.dtype == np.float32
    np.testing.assert_array_equal(mosaic, fuse(layout).compute())
    lazy = op(da.from_array(stack, chunks=(1, 128, 128)), rows=2, cols=3, order="snake", overlap=0.15, margin=24)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), mosaic, rtol=1e-6)
    # (n_tiles, P, Y, X): positions found on plane 1 place plane 0 too (a featureless plane, kept as it is)
    planes = np.stack([np.full_like(stack, 3.0), stack], axis=1)
    both = op(planes, rows=2, order="snake", overlap=0.15, margin=24, plane=1)
    assert both.shape == (2, *mosaic.shape)
    np.testing.assert_allclose(both[1], mosaic, rtol=1e-6)
    covered = both[0] != 0
    np.testing.assert_allclose(both[0][covered], 3.0, atol=1e-5)
    # whole pixels without blending keep the tiles' dtype
    counts = op(stack.astype(np.uint16), rows=2, order="snake", overlap=0.15, margin=24, interpolation=0,
                blend="overwrite")
    assert counts.dtype == np.uint16


def test_stitch_grid_refuses_what_it_cannot_do_by_name():
    op = sl.stitch.stitch_grid
    stack = np.zeros((6, 32, 32), np.float32)
    with pytest.raises(ValueError, match="rows: 6 tiles do not fill 4 rows"):
        op(stack, rows=4)
    with pytest.raises(ValueError, match="a 2 x 2 grid holds 4 tiles, the stack 6"):
        op(stack, rows=2, cols=2)
    with pytest.raises(ValueError, match="plane: the tiles .* have no plane axis"):
        op(stack, rows=2, plane=1)
    with pytest.raises(ValueError, match="plane must be < 2"):
        op(np.zeros((6, 2, 32, 32)), rows=2, plane=2)
    with pytest.raises(ValueError, match="stitch_grid refuses a channel axis"):
        op(np.zeros((2, 6, 32, 32)), rows=2, channel_axis=0)
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        op(np.zeros((32, 32)))
    with pytest.raises(ValueError, match="blend must be one of"):
        op(stack, rows=2, blend="mean")
