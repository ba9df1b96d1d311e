"""Stitching with real files: tiles from folders, CSV and OME metadata; the mosaic writers; ``stacklab stitch``."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import tifffile
import zarr
from skimage import color, data

import napari_stacklab as sl
from napari_stacklab import cli
from napari_stacklab.stitch import (
    csv_tiles,
    grid_tiles,
    ome_tiles,
    register_tiles,
    stitch,
    synthetic_tiles,
)

PIXEL = 0.5  # um


@pytest.fixture(scope="module")
def scan():
    """A 3 x 3 scan cut from a bundled image: tiles as uint16 counts, nominal grid positions, truth."""
    image = color.rgb2gray(data.hubble_deep_field()) * 255.0
    tiles, truth = synthetic_tiles(image, rows=3, cols=3, tile_shape=(128, 128), overlap=0.2, jitter=0.04, seed=5)
    counts = [np.round(np.clip(t, 0, None) * 10 + 100).astype(np.uint16) for t in tiles.data]
    return counts, tiles.positions, truth


@pytest.fixture()
def tile_folder(tmp_path, scan):
    counts, _, _ = scan
    folder = tmp_path / "tiles"
    folder.mkdir()
    for k, tile in enumerate(counts):  # natural order: tile_2 before tile_10 would matter with more tiles
        sl.io.imwrite(folder / f"tile_{k}.tif", sl.io.Image(tile, scale=(PIXEL, PIXEL), units=("um", "um")))
    return folder


def relative_error(layout, truth):
    offset = np.median(layout.positions - truth, axis=0)
    return np.abs(layout.positions - truth - offset).max()


# ---------------------------------------------------------------- tile sources


def test_grid_tiles_from_a_folder_and_a_pattern(tile_folder, scan):
    counts, nominal, truth = scan
    tiles = grid_tiles(tile_folder, rows=3, cols=3, overlap=0.2)
    assert tiles.lazy and len(tiles) == 9 and tiles.dtype == np.uint16
    assert tiles.pixel_size == (PIXEL, PIXEL) and tiles.spatial_units == ("um", "um")
    assert tiles.names[:2] == ("tile_0", "tile_1") and tiles.metadata["files"][0].endswith("tile_0.tif")
    np.testing.assert_allclose(tiles.positions, nominal)
    np.testing.assert_array_equal(np.asarray(tiles.data[4]), counts[4])
    same = grid_tiles(str(tile_folder / "tile_*.tif"), rows=3, cols=3, overlap=0.2)
    assert same.names == tiles.names
    layout = register_tiles(tiles, margin=16)
    assert layout.kept.all() and relative_error(layout, truth) < 0.2
    overridden = grid_tiles(tile_folder, rows=3, cols=3, overlap=0.2, pixel_size=2.0, units="nm")
    assert overridden.pixel_size == (2.0, 2.0) and overridden.spatial_units == ("nm", "nm")
    with pytest.raises(ValueError, match="holds 12 tiles, got 9"):
        grid_tiles(tile_folder, rows=3, cols=4)


def test_csv_positions_round_trip(tmp_path, tile_folder, scan):
    _, nominal, truth = scan
    layout = register_tiles(grid_tiles(tile_folder, rows=3, cols=3, overlap=0.2), margin=16)
    path = layout.positions_to_csv(tmp_path / "positions.csv")
    again = csv_tiles(path)
    np.testing.assert_allclose(again.positions, layout.positions, atol=1e-5)  # solved positions, as written
    assert again.names == layout.tiles.names and again.metadata["positions"] == "csv"
    # relative paths, physical units, header in any case and order
    with open(tmp_path / "stage.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["X", "Y", "File"])
        for k, (y, x) in enumerate(nominal):
            writer.writerow([x * PIXEL, y * PIXEL, os.path.relpath(tile_folder / f"tile_{k}.tif", tmp_path)])
    physical = csv_tiles(tmp_path / "stage.csv", physical=True)
    np.testing.assert_allclose(physical.positions, nominal, atol=1e-9)
    assert relative_error(register_tiles(physical, margin=16), truth) < 0.2
    with open(tmp_path / "bad.csv", "w") as fh:
        fh.write("file,row,col\na.tif,0,0\n")
    with pytest.raises(ValueError, match=r"needs the columns file, y, x; missing \['y', 'x'\]"):
        csv_tiles(tmp_path / "bad.csv")
    with open(tmp_path / "missing.csv", "w") as fh:
        fh.write("file,y,x\nnope.tif,0,0\n")
    with pytest.raises(FileNotFoundError, match="line 2"):
        csv_tiles(tmp_path / "missing.csv")
    with open(tmp_path / "text.csv", "w") as fh:
        fh.write(f"file,y,x\n{tile_folder / 'tile_0.tif'},zero,0\n")
    with pytest.raises(ValueError, match="must be numbers"):
        csv_tiles(tmp_path / "text.csv")


def write_ome_scan(path, counts, nominal, *, position_unit="µm", channels=False):
    """One OME-TIFF, one image series per tile, its stage position in every Plane (as microscopes write)."""
    with tifffile.TiffWriter(path, ome=True) as tif:
        for tile, (y, x) in zip(counts, nominal):
            scale = {"µm": 1.0, "nm": 1000.0}[position_unit]
            data = np.stack([tile, tile[::-1]]) if channels else tile
            planes = 2 if channels else 1
            tif.write(data, photometric="minisblack", metadata={
                "axes": "CYX" if channels else "YX", "PhysicalSizeX": PIXEL, "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": PIXEL, "PhysicalSizeYUnit": "µm",
                "Plane": {"PositionX": [x * PIXEL * scale] * planes, "PositionY": [y * PIXEL * scale] * planes,
                          "PositionXUnit": [position_unit] * planes, "PositionYUnit": [position_unit] * planes},
            })


@pytest.mark.parametrize("unit", ["µm", "nm"])
def test_ome_tiff_stage_positions_read_back(tmp_path, scan, unit):
    counts, nominal, truth = scan
    path = tmp_path / "scan.ome.tif"
    write_ome_scan(path, counts, nominal + [1000.0, -300.0], position_unit=unit, channels=True)
    tiles = ome_tiles(path)
    assert len(tiles) == 9 and tiles.shape == (2, 128, 128) and tiles.axis_labels == ("c", "y", "x")
    np.testing.assert_allclose(tiles.positions, nominal + [1000.0, -300.0], atol=1e-6)
    assert tiles.metadata["positions"] == "ome" and tiles.names[1] == "scan [1]"
    layout = register_tiles(tiles, plane=0, margin=16)
    assert relative_error(layout, truth) < 0.2
    # the mosaic sits where the stage says, in micrometres
    image = sl.stitch.mosaic_image(layout)
    np.testing.assert_allclose(image.translate[1:], np.floor(layout.positions.min(axis=0) + 1e-6) * PIXEL)
    flipped = ome_tiles(path, flip_x=True)
    np.testing.assert_allclose(flipped.positions[:, 1], -tiles.positions[:, 1])


def test_ome_tiff_files_one_per_tile_and_ome_zarr(tmp_path, scan):
    counts, nominal, truth = scan
    for k, (tile, position) in enumerate(zip(counts, nominal)):
        write_ome_scan(tmp_path / f"t{k}.ome.tif", [tile], [position])
        sl.io.imwrite(tmp_path / f"z{k}.zarr", sl.io.Image(tile, scale=(PIXEL, PIXEL), units=("um", "um"),
                                                            translate=tuple(position * PIXEL)))
    from_tiffs = ome_tiles(str(tmp_path / "t*.ome.tif"))
    from_zarrs = ome_tiles([tmp_path / f"z{k}.zarr" for k in range(9)])
    for tiles in (from_tiffs, from_zarrs):
        np.testing.assert_allclose(tiles.positions, nominal, atol=1e-6)
        assert relative_error(register_tiles(tiles, margin=16), truth) < 0.2
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, counts[0])
    with pytest.raises(ValueError, match="not an OME-TIFF or OME-Zarr image with stage positions"):
        ome_tiles(plain)
    no_position = tmp_path / "nopos.ome.tif"
    tifffile.imwrite(no_position, counts[0], ome=True, metadata={"axes": "YX"})
    with pytest.raises(ValueError, match="records no stage position"):
        ome_tiles(no_position)
    with pytest.raises(FileNotFoundError, match="no files match"):
        ome_tiles(str(tmp_path / "none*.tif"))


def test_stage_label_is_the_fallback_position():
    from napari_stacklab.stitch._read import _ome_position

    xml = ('<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><StageLabel '
           'Name="a" X="12.5" Y="-3" XUnit="mm" YUnit="mm"/><Pixels ID="Pixels:0"/></Image></OME>')
    assert _ome_position(xml, 0) == (-3.0, 12.5, "mm", "mm")
    assert _ome_position(xml, 1) is None
    assert _ome_position("<not xml", 0) is None


# ---------------------------------------------------------------- writers


@pytest.fixture(scope="module")
def mosaic(scan):
    counts, nominal, _ = scan
    tiles = sl.stitch.Tiles(counts, nominal, scale=(PIXEL, PIXEL), units=("um", "um"), names=[f"t{k}" for k in range(9)])
    layout = register_tiles(tiles, margin=16)
    return sl.stitch.mosaic_image(layout, chunks=64), layout


def test_write_zarr_pyramid(tmp_path, mosaic):
    image, layout = mosaic
    path = sl.stitch.write_mosaic(tmp_path / "mosaic.zarr", image, levels=3, chunks=64)
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())
    back = sl.io.imread(path)
    full = image.data.compute()
    np.testing.assert_array_equal(np.asarray(back.data), full)
    assert back.scale == (PIXEL, PIXEL) and back.units == ("um", "um")
    np.testing.assert_allclose(back.translate, image.translate)
    group = zarr.open_group(str(path), mode="r")
    assert group["0"].chunks == (64, 64)
    level1 = group["1"][...]
    h, w = full.shape[0] // 2 * 2, full.shape[1] // 2 * 2
    np.testing.assert_allclose(level1, full[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)), rtol=1e-6)
    assert group["2"].shape == (full.shape[0] // 4, full.shape[1] // 4)
    datasets = group.attrs["multiscales"][0]["datasets"]
    assert [d["coordinateTransformations"][0]["scale"] for d in datasets] == [[0.5, 0.5], [1.0, 1.0], [2.0, 2.0]]
    # level k's first pixel centre sits (2**k - 1) / 2 original pixels further
    np.testing.assert_allclose(datasets[1]["coordinateTransformations"][1]["translation"],
                               np.asarray(image.translate) + 0.25)
    assert group.attrs["stitch"]["summary"] == layout.summary()
    with pytest.raises(FileExistsError, match="exists"):
        sl.stitch.write_mosaic(path, image)
    sl.stitch.write_mosaic(path, image, levels=1, overwrite=True)
    assert "1" not in zarr.open_group(str(path), mode="r")


def test_write_tiled_tiff(tmp_path, mosaic):
    image, _ = mosaic
    path = sl.stitch.write_mosaic(tmp_path / "mosaic.tif", image)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].is_tiled and tif.is_bigtiff
    back = sl.io.imread(path)
    np.testing.assert_array_equal(np.asarray(back.data), image.data.compute())
    assert back.scale == (PIXEL, PIXEL) and back.units == ("um", "um")
    np.testing.assert_allclose(back.translate, image.translate)


def test_writer_refuses_to_overwrite_a_tile(tmp_path, tile_folder):
    tiles = grid_tiles(tile_folder, rows=3, cols=3, overlap=0.2)
    image = sl.stitch.mosaic_image(tiles)
    target = tile_folder / "tile_0.tif"
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match="one of the tiles"):
        sl.stitch.write_mosaic(target, image, overwrite=True)
    assert target.read_bytes() == before
    with pytest.raises(ValueError, match="path must end in one of"):
        sl.stitch.write_mosaic(tmp_path / "mosaic.png", image)


def test_one_call_stitch_writes_what_it_returns(tmp_path, tile_folder, scan):
    _, _, truth = scan
    tiles = grid_tiles(tile_folder, rows=3, cols=3, overlap=0.2)
    image, layout = stitch(tiles, output=tmp_path / "m.zarr", margin=16, blend="max", order=0, chunks=100)
    assert image.dtype == np.uint16  # max of whole-pixel tiles copies counts
    np.testing.assert_array_equal(np.asarray(sl.io.imread(tmp_path / "m.zarr").data), image.data.compute())
    assert relative_error(layout, truth) < 0.2


# ---------------------------------------------------------------- command line


def test_cli_stitch_a_grid_end_to_end(tmp_path, tile_folder, capsys):
    out = tmp_path / "out" / "mosaic.zarr"
    rc = cli.main(["stitch", str(tile_folder), "--grid", "3x3", "--overlap", "0.2", "--margin", "16",
                   "-o", str(out), "--chunks", "64", "-q"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "9 tiles, 12 pairs: 12 kept, 0 rejected" in printed.out and str(out) in printed.out
    pairs_csv, positions_csv = out.with_name("mosaic_pairs.csv"), out.with_name("mosaic_positions.csv")
    with open(pairs_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12 and {r["status"] for r in rows} == {"kept"}
    # the same mosaic as the Python API
    tiles = grid_tiles(tile_folder, rows=3, cols=3, overlap=0.2)
    expected, layout = stitch(tiles, margin=16, chunks=64)
    back = sl.io.imread(out)
    np.testing.assert_allclose(np.asarray(back.data), expected.data.compute(), rtol=1e-6)
    assert back.scale == (PIXEL, PIXEL) and back.units == ("um", "um")
    # the written positions stitch again from the CSV, to TIFF, on a local dask.distributed cluster
    tif = tmp_path / "again.tif"
    rc = cli.main(["stitch", "--positions", str(positions_csv), "--margin", "4", "-o", str(tif), "-q",
                   "--scheduler", "local"])
    assert rc == 0, capsys.readouterr().err
    again = csv_tiles(positions_csv)
    np.testing.assert_allclose(again.positions, layout.positions, atol=1e-4)
    np.testing.assert_allclose(np.asarray(sl.io.imread(tif).data), np.asarray(back.data), atol=1e-2)
    # an existing output is not replaced without --overwrite
    rc = cli.main(["stitch", str(tile_folder), "--grid", "3x3", "--overlap", "0.2", "-o", str(out), "-q"])
    assert rc == 2 and "exists; pass --overwrite" in capsys.readouterr().err


def test_cli_stitch_ome_with_progress_and_bad_arguments(tmp_path, scan, capsys):
    counts, nominal, _ = scan
    path = tmp_path / "scan.ome.tif"
    write_ome_scan(path, counts, nominal)
    out = tmp_path / "m.tif"
    assert cli.main(["stitch", str(path), "-o", str(out), "--margin", "16", "--dtype", "same",
                     "--exclude", "0-1"]) == 0
    printed = capsys.readouterr()
    assert "registering" in printed.err and "100% Completed" in printed.err and "1 excluded" in printed.out
    assert sl.io.imread(out).dtype == np.uint16
    assert cli.main(["stitch", str(path), "--grid", "3by3", "-o", str(tmp_path / "x.zarr")]) == 2
    assert "--grid must be ROWSxCOLS" in capsys.readouterr().err
    assert cli.main(["stitch", "-o", str(tmp_path / "x.zarr")]) == 2
    assert "give the tiles" in capsys.readouterr().err
    assert cli.main(["stitch", str(tmp_path / "nothing.tif"), "-o", str(tmp_path / "x.zarr")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


# ---------------------------------------------------------------- the recipe step


def test_stitch_grid_is_a_recipe_step_that_stacklab_run_replays(tmp_path, scan, capsys):
    """A stack of tiles in one file, a recipe with stitch_grid, ``stacklab run``: the mosaic of the Python API."""
    counts, _, _ = scan
    stack = tmp_path / "montage.tif"
    sl.io.imwrite(stack, sl.io.Image(np.stack(counts), scale=(1.0, PIXEL, PIXEL), units=("pixel", "um", "um"),
                                     axis_labels=("tile", "y", "x")))
    recipe = sl.Recipe(steps=[{"op": "stitch_grid", "params": {"rows": 3, "overlap": 0.2, "margin": 16}}])
    path = recipe.save(tmp_path / "stitch.yaml")
    out = tmp_path / "out"
    rc = cli.main(["run", str(path), str(stack), "-o", str(out), "--format", "tiff", "-q"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    written = [line.split(" ", 1)[1] for line in printed.out.splitlines() if line.startswith("wrote ")]
    back = sl.io.imread(written[0])
    expected = sl.stitch.fuse(register_tiles(grid_tiles(np.stack(counts), rows=3, cols=3, overlap=0.2), margin=16))
    np.testing.assert_allclose(np.asarray(back.data), expected.compute(), rtol=1e-6, atol=1e-3)
    assert back.scale == (PIXEL, PIXEL) and back.units == ("um", "um")
    # replayed in Python from the same recipe, lazily: the same mosaic
    lazy = sl.io.imread(stack, lazy=True)
    result = sl.Recipe.load(path).run(lazy)
    assert result.shape == back.shape and result.scale == (PIXEL, PIXEL)
    np.testing.assert_allclose(np.asarray(result.data), np.asarray(back.data), rtol=1e-6, atol=1e-3)
