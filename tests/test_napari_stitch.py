"""The stitching tool in a real napari viewer (run under xvfb-run).

Tiles are cut from a bundled image (the Hubble deep field) at known sub-pixel
positions, with noise, one tile of pure background and one tile 40 px off
(``synthetic_tiles``), and given to the tool as layers placed by their
``translate`` or as files. The tool is opened through the manifest and driven
through its buttons' methods: register, select a pair by its row and by a
click on its seam, exclude it, re-solve, fuse, save; and through every way
it can fail.
"""

from __future__ import annotations

import csv

import dask.array as da
import numpy as np
import pytest
from _gates import Gate
from _mosaics import group_errors
from skimage import color, data

import napari_stacklab as sl
from napari_stacklab._mosaic import _pairs
from napari_stacklab._napari import stitch_tool
from napari_stacklab._napari.stitch_tool import (
    CSV,
    EXCLUDED_COLOUR,
    GRID,
    LAYERS,
    REJECTED_COLOUR,
    STACK,
    StitchTool,
    residual_limit,
)

PLUGIN = "napari-stacklab"
TITLE = "Stitch tiles into a mosaic"
WAIT_MS = 120_000
PIXEL = 0.5  # um
BACKGROUND, MISPLACED = 5, 10


@pytest.fixture(scope="module")
def scan():
    image = color.rgb2gray(data.hubble_deep_field()) * 255.0
    tiles, truth = sl.stitch.synthetic_tiles(image, rows=4, cols=4, tile_shape=(128, 128), overlap=0.15,
                                             background_tile=BACKGROUND, misplaced_tile=MISPLACED, seed=1)
    return tiles, truth


def open_tool(viewer) -> StitchTool:
    _, tool = viewer.window.add_plugin_dock_widget(PLUGIN, TITLE)
    return tool


def finish(qtbot, tool):
    qtbot.waitUntil(lambda: not tool.running, timeout=WAIT_MS)
    qtbot.wait(10)


def messages(notes, tool):
    return [str(note.message) for note in notes if str(note.message).startswith(f"{tool.title}:")]


def units_of(layer):
    return tuple(str(u) for u in layer.units)


def add_tiles(viewer, tiles, pixel=PIXEL, names=None):
    """One layer per tile, placed by its stage position (translate in um), as a scanner's tiles would be."""
    layers = []
    for k, tile in enumerate(tiles.data):
        layers.append(viewer.add_image(tile, name=(names or tiles.names)[k], scale=(pixel, pixel),
                                       translate=tuple(tiles.positions[k] * pixel), units=("um", "um")))
    return layers


def click(layer, world):
    """A mouse click (press, then release without moving) at the world point ``world``."""
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    for kind, callbacks in (("mouse_press", mouse_press_callbacks), ("mouse_release", mouse_release_callbacks)):
        callbacks(layer, read_only_mouse_event(type=kind, button=1, position=tuple(world)))


def drag(layer, world):
    """Press at ``world``, move, release: a pan of the view, not a click."""
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    start = np.asarray(world, dtype=float)
    mouse_press_callbacks(layer, read_only_mouse_event(type="mouse_press", button=1, position=tuple(start)))
    mouse_move_callbacks(layer, read_only_mouse_event(type="mouse_move", button=1, is_dragging=True,
                                                      position=tuple(start + 5)))
    mouse_release_callbacks(layer, read_only_mouse_event(type="mouse_release", button=1, position=tuple(start + 5)))


# --- the whole way: register, choose a pair, exclude, re-solve, fuse, save -----------------------------
def test_register_exclude_resolve_fuse_and_save(make_napari_viewer, qtbot, scan, tmp_path, monkeypatch, escaped):
    from napari.utils.colormaps import ensure_colormap
    from napari.utils.colormaps.standardize_color import transform_color

    tiles, truth = scan
    viewer = make_napari_viewer()
    layers = add_tiles(viewer, tiles)
    tool = open_tool(viewer)
    assert isinstance(tool, StitchTool)
    tool.layers.value = layers
    tool.margin.value = 48  # finds the tile the stage put 40 px off
    assert tool.register() is not None
    assert tool.running and tool.cancel_button.enabled
    finish(qtbot, tool)
    layout = tool.solved
    assert layout is not None, tool.status.value

    # positions: every tile linked to the main group within 0.2 px of the truth, the 40-px tile included
    errors = group_errors(layout, truth)
    linked = ~layout.fallback
    assert linked[MISPLACED] and not linked[BACKGROUND]
    assert errors[linked].max() < 0.2, errors
    assert not layout.kept[[k for k, (i, j) in enumerate(layout.pairs.index) if BACKGROUND in (i, j)]].any()
    assert tool.summary.value == layout.summary() and "placed by the stage" in tool.summary.value

    # the seams: one line per pair, in the tiles' physical frame, coloured by residual, rejected pairs grey
    seams = viewer.layers["tile seams"]
    assert seams == tool.seams_layer and viewer.layers.selection.active == seams  # the tool holds proxies
    assert len(seams.data) == len(layout.pairs) and set(seams.shape_type) == {"line"}
    assert tuple(seams.scale) == (PIXEL, PIXEL) and units_of(seams) == ("micrometer", "micrometer")
    np.testing.assert_allclose(seams.translate, layout.translate)
    np.testing.assert_allclose(seams.features["residual"], layout.residual)
    assert seams.metadata["stacklab"]["role"] == "seams"
    limit = residual_limit(layout.residual[layout.kept])
    assert layout.residual[layout.kept].max() <= limit < 10 * max(layout.residual[layout.kept].max(), 0.01)
    low, high = stitch_tool.RESIDUAL_RANGE  # 0 px is the colormap at `low`, the top of the legend at `high`
    expected = ensure_colormap("turbo").map(low + (high - low) * np.clip(layout.residual[layout.kept] / limit, 0, 1))
    np.testing.assert_allclose(seams.edge_color[layout.kept], expected, atol=1e-6)
    np.testing.assert_allclose(seams.edge_color[~layout.kept], np.repeat(transform_color(REJECTED_COLOUR), (~layout.kept).sum(), 0))
    assert tool.legend_high.value == f"{limit:g} px"
    outlines = viewer.layers["tile outlines"]
    assert len(outlines.data) == len(tiles) and list(outlines.features["tile"]) == list(tiles.names)
    # a tile's outline is where the layout placed it (mosaic pixels from the layout's origin)
    np.testing.assert_allclose(outlines.data[MISPLACED][0], layout.positions[MISPLACED] - layout.origin)

    # the table: one row per pair, with its status
    table = tool.table
    assert table.rowCount() == len(layout.pairs)
    column = stitch_tool.COLUMNS.index("status")
    assert [table.item(k, column).text() for k in range(table.rowCount())] == list(layout.status)

    # choose a kept pair by clicking its seam; its row is selected
    k = int(np.flatnonzero(layout.kept)[0])
    middle = np.asarray(seams.data[k]).mean(axis=0)
    click(seams, seams.data_to_world(middle))
    assert tool.selected == k and {i.row() for i in table.selectedIndexes()} == {k}
    assert tool.exclude_button.text == "Exclude pair" and layout.table()["name_i"][k] in tool.status.value
    # dragging (panning the view) over another seam chooses nothing
    other = int(np.flatnonzero(layout.kept)[1])
    drag(seams, seams.data_to_world(np.asarray(seams.data[other]).mean(axis=0)))
    assert tool.selected == k
    # clicking far from every seam chooses nothing
    assert tool.pick_seam(seams.data_to_world(np.array([-500.0, -500.0]))) is None and tool.selected == k

    # exclude it: solved again from the same measurements, nothing measured again
    measured = []
    monkeypatch.setattr(_pairs, "measure_pair", lambda *a, **kw: measured.append(1))
    tool.toggle_pair()
    finish(qtbot, tool)
    again = tool.solved
    assert again is not layout and again.pairs is layout.pairs and measured == []
    assert again.status[k] == "excluded" and again.settings["exclude"] == [tuple(layout.pairs.index[k])]
    np.testing.assert_allclose(seams.edge_color[k], transform_color(EXCLUDED_COLOUR)[0])
    assert tool.exclude_button.text == "Include pair"
    assert again.positions.tolist() == sl.stitch.Layout.solve(layout, exclude=[tuple(layout.pairs.index[k])]).positions.tolist()

    # choose it by its row, take it back
    table.selectRow(k)
    assert tool.selected == k
    tool.toggle_pair()
    finish(qtbot, tool)
    assert tool.solved.status[k] == "kept" and tool.solved.settings["exclude"] == []

    # thresholds: re-solve with a stricter confidence
    tool.min_confidence.value = 0.95
    tool.resolve()
    finish(qtbot, tool)
    assert tool.solved.settings["min_confidence"] == 0.95
    assert all(s != "kept" for s, c in zip(tool.solved.status, tool.solved.pairs.confidence) if c < 0.95)
    tool.min_confidence.value = 0.6

    # exclude again, then fuse: a lazy layer in the tiles' frame that records how it was made
    tool.toggle_pair(k)
    finish(qtbot, tool)
    tool.fuse()
    finish(qtbot, tool)
    mosaic = viewer.layers["tile mosaic"]
    assert mosaic == tool.mosaic_layer and isinstance(mosaic.data, da.Array)
    assert tuple(mosaic.scale) == (PIXEL, PIXEL) and units_of(mosaic) == ("micrometer", "micrometer")
    np.testing.assert_allclose(mosaic.translate, tool.solved.translate)
    step = mosaic.metadata["stacklab"]["steps"][-1]
    assert step["op"] == "stitch" and step["params"]["exclude"] == [list(layout.pairs.index[k])]
    assert step["params"]["tiles"] == list(tiles.names) and step["params"]["blend"] == "linear"
    assert mosaic.metadata["stitch"]["summary"] == tool.solved.summary()
    assert "role" not in mosaic.metadata["stacklab"]
    # the seams and outlines stay above the mosaic
    names = [layer.name for layer in viewer.layers]
    assert names.index("tile mosaic") < names.index("tile seams")
    # what the layer shows is the headless fusion of the same layout, and the source within the noise
    shown = np.asarray(mosaic.data)
    np.testing.assert_allclose(shown, np.asarray(sl.stitch.fuse(tool.solved)), rtol=1e-6, atol=1e-4)
    # mosaic pixel (r, c) is stage-frame pixel origin + (r, c), which is image pixel origin + (r, c) + d, d being
    # the main group's common offset from the truth: the mosaic equals the source within the noise there
    from scipy import ndimage as ndi

    main = tool.solved.groups == 0
    d = np.median((truth - tool.solved.positions)[main], axis=0)
    r, c = (int(v) for v in np.round(tool.solved.positions[0] - tool.solved.origin))  # tile 0 is in the main group
    yy, xx = np.mgrid[r + 10 : r + 110, c + 10 : c + 110].astype(float)
    image = color.rgb2gray(data.hubble_deep_field()) * 255.0
    expected = ndi.map_coordinates(image, [yy + tool.solved.origin[0] + d[0], xx + tool.solved.origin[1] + d[1]],
                                   order=3)
    noise = 0.02 * float(np.ptp(image))
    assert np.abs(shown[r + 10 : r + 110, c + 10 : c + 110] - expected).mean() < noise

    # save: asks for a path; writes OME-Zarr that reads back with the pixel size
    out = tmp_path / "mosaic.zarr"
    asked = []
    monkeypatch.setattr(tool, "ask_path", lambda: str(out))
    monkeypatch.setattr(tool, "confirm", lambda text: asked.append(text) or False)
    tool.save_mosaic()
    finish(qtbot, tool)
    assert out.is_dir() and asked == [], tool.status.value
    back = sl.io.imread(out)
    assert back.scale == (PIXEL, PIXEL) and back.units == ("um", "um")
    np.testing.assert_allclose(back.translate, tool.solved.translate)
    np.testing.assert_allclose(np.asarray(back.data), shown, rtol=1e-6, atol=1e-4)
    # again: asks before replacing; "no" writes nothing
    stamp = (out / "0").stat().st_mtime_ns
    tool.save_mosaic()
    finish(qtbot, tool)
    assert len(asked) == 1 and "exists" in asked[0] and "nothing written" in tool.status.value
    assert (out / "0").stat().st_mtime_ns == stamp
    monkeypatch.setattr(tool, "confirm", lambda text: True)
    tool.save_mosaic(tmp_path / "mosaic.tif")
    finish(qtbot, tool)
    assert sl.io.imread(tmp_path / "mosaic.tif").scale == (PIXEL, PIXEL)
    assert viewer.layers.extent.units is not None  # no "inconsistent units" anywhere


# --- tiles from files ---------------------------------------------------------------------------------
def test_tiles_loaded_from_a_folder_and_a_csv(make_napari_viewer, qtbot, scan, tmp_path, escaped):
    tiles, truth = scan
    folder = tmp_path / "scan"
    folder.mkdir()
    for k, tile in enumerate(tiles.data):
        sl.io.imwrite(folder / f"tile_{k:02d}.tif", sl.io.Image(tile, scale=(PIXEL, PIXEL), units=("um", "um")))
    viewer = make_napari_viewer()
    tool = open_tool(viewer)
    tool.source.value = GRID
    assert tool.layers.native.isHidden() and not tool.path_row.native.isHidden()
    assert not tool.grid_rows[0].native.isHidden()
    tool.path.value = str(folder)
    tool.rows.value, tool.cols.value, tool.overlap.value = 4, 4, 0.15
    tool.load()
    finish(qtbot, tool)
    assert len(viewer.layers) == len(tiles) + 1, tool.status.value  # the tiles and their outlines
    first = viewer.layers["tile_00"]
    assert isinstance(first.data, da.Array) and tuple(first.scale) == (PIXEL, PIXEL)
    np.testing.assert_allclose(viewer.layers["tile_05"].translate, tiles.positions[5] * PIXEL)
    assert first.metadata["source"] == str(folder / "tile_00.tif")
    assert tool.source.value == LAYERS and [layer.name for layer in tool.layers.value] == \
        [f"tile_{k:02d}" for k in range(len(tiles))]
    tool.margin.value = 48
    tool.register()
    finish(qtbot, tool)
    errors = group_errors(tool.solved, truth)
    assert errors[~tool.solved.fallback].max() < 0.2
    # the report: the pairs table, and the solved positions that read back as tiles
    pairs_csv, positions_csv = tool.save_report(tmp_path / "scan_pairs.csv")
    assert positions_csv.name == "scan_positions.csv"
    with open(pairs_csv) as fh:
        assert [row["status"] for row in csv.DictReader(fh)] == list(tool.solved.status)
    np.testing.assert_allclose(sl.stitch.csv_tiles(positions_csv).positions, tool.solved.positions, atol=1e-6)
    asked = []
    tool.confirm = lambda text: asked.append(text) or False
    assert tool.save_report(pairs_csv) is None and "exist" in asked[0]
    tool.fuse()
    finish(qtbot, tool)
    mosaic = viewer.layers["tile mosaic"]
    assert mosaic.metadata["files"][0] == str(folder / "tile_00.tif") and "source" not in mosaic.metadata

    # a CSV of positions: the same tiles, read again
    listed = tmp_path / "positions.csv"
    listed.write_text("file,y,x\n" + "".join(f"scan/tile_{k:02d}.tif,{y},{x}\n" for k, (y, x) in
                                          enumerate(tiles.positions)))
    tool.source.value = CSV
    assert tool.grid_rows[0].native.isHidden()
    tool.path.value = str(listed)
    tool.load()
    finish(qtbot, tool)
    again = tool.layers.value
    assert len(again) == len(tiles) and "Loaded 16 tiles (csv positions)" in tool.status.value
    assert not {layer.name for layer in again} & {f"tile_{k:02d}" for k in range(len(tiles))}  # new layers
    for layer, position in zip(again, tiles.positions):
        np.testing.assert_allclose(layer.translate, position * PIXEL)

    # a path that holds no tiles: a message, nothing added
    before = len(viewer.layers)
    tool.source.value = GRID
    tool.path.value = str(tmp_path / "nowhere")
    tool.load()
    finish(qtbot, tool)
    assert tool.status.value.startswith("Stitch tiles: ") and len(viewer.layers) == before
    tool.path.value = "  "
    assert tool.load() is None and "give the tiles'" in tool.status.value
    assert messages(escaped[1], tool)


# --- a stack of tiles with channels: split into tile layers, registered on the plane shown ----------------
def test_a_stack_layer_of_tiles_with_channels(make_napari_viewer, qtbot, scan, escaped):
    tiles, truth = scan
    # channel 0 is featureless: it cannot be registered, it is placed with channel 1's positions
    stack = np.stack([np.stack([np.full_like(tile, 7.0), tile]) for tile in tiles.data])  # (tile, c, y, x)
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="montage", scale=(1.0, 1.0, PIXEL, PIXEL), translate=(0.0, 0.0, 10.0, 20.0),
                     units=("pixel", "pixel", "um", "um"), axis_labels=("tile", "c", "y", "x"))
    tool = open_tool(viewer)
    tool.source.value = STACK
    assert tool.stack.value.name == "montage" and tool.path_row.native.isHidden()
    tool.rows.value, tool.cols.value, tool.overlap.value = 4, 4, 0.15
    tool.load()
    finish(qtbot, tool)
    layers = tool.layers.value
    assert [layer.name for layer in layers] == [f"montage [{k}]" for k in range(len(tiles))], tool.status.value
    assert layers[5].data.shape == (2, 128, 128) and tuple(layers[5].axis_labels) == ("c", "y", "x")
    np.testing.assert_allclose(layers[5].translate, (0.0, 10.0 + tiles.positions[5][0] * PIXEL,
                                                     20.0 + tiles.positions[5][1] * PIXEL))
    tool.margin.value = 48
    viewer.dims.set_current_step(1, 1)  # show channel 1
    tool.register()
    finish(qtbot, tool)
    layout = tool.solved
    assert layout.settings["plane"] == [1]
    assert group_errors(layout, truth)[~layout.fallback].max() < 0.2
    tool.fuse()
    finish(qtbot, tool)
    mosaic = viewer.layers["montage mosaic"]
    assert mosaic.data.shape[0] == 2 and tuple(mosaic.scale) == (1.0, PIXEL, PIXEL)
    assert tuple(mosaic.axis_labels) == ("c", "y", "x")
    np.testing.assert_allclose(layout.tiles.positions[0], (10.0 / PIXEL, 20.0 / PIXEL))  # the stack's offset
    np.testing.assert_allclose(mosaic.translate[1:], layout.translate)
    plane0 = np.asarray(mosaic.data[0])
    assert np.allclose(plane0[plane0 != 0], 7.0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(mosaic.data[1]), np.asarray(sl.stitch.fuse(layout)[1]), rtol=1e-6)


# --- every way it can fail is a message -----------------------------------------------------------------
def test_nothing_one_tile_and_mismatched_tiles_are_messages(make_napari_viewer, qtbot, scan, escaped):
    tiles, _ = scan
    viewer = make_napari_viewer()
    tool = open_tool(viewer)
    expected = {tool.register: "no tiles", tool.resolve: "register the tiles first",
                tool.toggle_pair: "register the tiles first", tool.fuse: "register the tiles first",
                tool.save_mosaic: "fuse the mosaic first", tool.load: "the tiles are layers already"}
    for method, text in expected.items():
        assert method() is None and not tool.running
        assert tool.status.value.startswith(f"Stitch tiles: {text}"), tool.status.value
    layers = add_tiles(viewer, tiles)
    tool.layers.value = layers[:1]
    tool.register()
    assert "at least two tiles" in tool.status.value and "tile_000" in tool.status.value
    viewer.add_image(np.zeros((100, 120), np.float32), name="odd", translate=(0, 80))
    tool.reset_choices()
    tool.layers.value = [layers[0], viewer.layers["odd"]]
    tool.register()
    assert "one shape and dtype" in tool.status.value and "'odd' is (100, 120)" in tool.status.value
    viewer.add_image(tiles.data[1], name="coarse", scale=(1.0, 1.0), translate=(0, 60))
    tool.reset_choices()
    tool.layers.value = [layers[0], viewer.layers["coarse"]]
    tool.register()
    assert "one pixel size" in tool.status.value
    viewer.add_image(data.astronaut()[:64, :64], name="photo", rgb=True)
    tool.reset_choices()
    assert "photo" not in [layer.name for layer in tool.layers.choices]  # colour tiles are not offered
    assert {"tile seams", "tile mosaic"}.isdisjoint(layer.name for layer in viewer.layers)
    assert len(messages(escaped[1], tool)) >= 8


def test_a_tile_layer_removed_mid_run_adds_nothing(make_napari_viewer, qtbot, scan, monkeypatch, escaped):
    tiles, _ = scan
    gate = Gate(WAIT_MS)
    monkeypatch.setattr(stitch_tool, "register_task", gate.wrap(stitch_tool.register_task))
    viewer = make_napari_viewer()
    layers = add_tiles(viewer, tiles)
    tool = open_tool(viewer)
    tool.layers.value = layers
    assert tool.register() is not None
    assert gate.entered.wait(WAIT_MS / 1000)
    viewer.layers.remove("tile_003")
    gate.opened.set()
    finish(qtbot, tool)
    assert "'tile_003' was removed" in tool.status.value
    assert tool.solved is None and "tile seams" not in viewer.layers
    assert any("was removed" in text for text in messages(escaped[1], tool))
    assert tool.register_button.enabled
    # registered without it, then another tile is deleted: the solve is dropped, and the tool says so
    tool.register()
    finish(qtbot, tool)
    assert tool.solved is not None and len(tool.solved.tiles) == len(tiles) - 1
    viewer.layers.remove("tile_007")
    assert tool.solved is None and "'tile_007' was removed: register the tiles again" in tool.status.value
    assert tool.fuse() is None and "register the tiles first" in tool.status.value


def test_cancel_stops_between_batches_of_pairs(make_napari_viewer, qtbot, scan, monkeypatch, escaped):
    tiles, _ = scan
    calls = []
    real = _pairs.measure_pair

    def counted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            tool.cancel()  # pressed while the first batch is measured
        return real(*args, **kwargs)

    monkeypatch.setattr(_pairs, "measure_pair", counted)
    monkeypatch.setattr(stitch_tool, "BATCH", 2)
    viewer = make_napari_viewer()
    tool = open_tool(viewer)
    tool.layers.value = add_tiles(viewer, tiles)
    tool.register()
    finish(qtbot, tool)
    assert "cancelled" in tool.status.value and tool.solved is None and "tile seams" not in viewer.layers
    assert 0 < len(calls) <= 2 * 2  # the batch running when Cancel was pressed, perhaps the next one; not 24


def test_a_cancelled_write_leaves_no_file(make_napari_viewer, qtbot, scan, tmp_path, monkeypatch, escaped):
    tiles, _ = scan
    viewer = make_napari_viewer()
    tool = open_tool(viewer)
    tool.layers.value = add_tiles(viewer, tiles)
    tool.register()
    finish(qtbot, tool)
    tool.fuse()
    finish(qtbot, tool)
    real = stitch_tool.write_mosaic

    def cancelled_write(path, image, **kwargs):
        tool._stop_write.set()  # Cancel pressed as the write starts
        return real(path, image, **kwargs)

    monkeypatch.setattr(stitch_tool, "write_mosaic", cancelled_write)
    out = tmp_path / "mosaic.zarr"
    tool.save_mosaic(out)
    finish(qtbot, tool)
    assert not out.exists() and not list(tmp_path.glob(".mosaic.zarr*")), list(tmp_path.iterdir())
    assert tool.save_button.enabled
    tool.save_mosaic(tmp_path / "mosaic.png")
    assert ".zarr folder or a .tif file" in tool.status.value


# --- the contract of every tool -------------------------------------------------------------------------
def test_fits_a_1280_by_800_screen_and_lets_go_when_closed(make_napari_viewer, qtbot, scan):
    tiles, _ = scan
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    viewer.window.resize(1280, 800)
    layers = add_tiles(viewer, tiles)
    tool = open_tool(viewer)
    qtbot.wait(100)
    assert window.width() <= 1280 and window.height() <= 800, (window.width(), window.height())
    assert tool.native.parent().minimumSizeHint().height() < 400
    assert viewer.window._qt_viewer.canvas.native.width() > 500
    assert tool.native.width() >= tool.native.minimumSizeHint().width()
    tool.layers.value = layers
    tool.register()
    finish(qtbot, tool)
    qtbot.wait(50)
    assert tool.tabs.currentIndex() == 1 and tool.table.isVisible() and tool.table.height() > 200
    seams = tool.seams_layer
    assert tool._pick in seams.mouse_drag_callbacks
    viewer.window.remove_dock_widget(tool.native.parent())
    assert tool.closed and tool._links == [] and tool._pick not in seams.mouse_drag_callbacks
