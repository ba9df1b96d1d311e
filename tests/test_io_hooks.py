"""The napari reader/writer/sample hooks as plain functions (no viewer needed)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import napari_stacklab as sl
from napari_stacklab._napari import reader, samples, writer


@pytest.fixture
def files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "random.tif").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "readme.md").write_text("no images here")
    tifffile.imwrite(
        tmp_path / "cells.tif", np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30),
        imagej=True, resolution=(4.0, 4.0), metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"},
    )
    (tmp_path / "stack").mkdir()
    for i in range(3):
        tifffile.imwrite(tmp_path / "stack" / f"p{i}.tif", np.full((8, 8), i, np.uint8))
    zarr.create_array(tmp_path / "vol.zarr", shape=(2, 8, 8), dtype="f4", chunks=(1, 8, 8))
    return tmp_path


@pytest.mark.parametrize("name", ["notes.txt", "random.tif", "empty.tif", "missing.tif", "nothing", "missing_dir/"])
def test_get_reader_returns_none_for_unreadable(files, name):
    assert reader.napari_get_reader(str(files / name)) is None


@pytest.mark.parametrize("odd", [None, 42, b"bytes", ["a", None], [], {"path": 1}, "\x00"])
def test_get_reader_never_raises(odd):
    assert reader.napari_get_reader(odd) is None


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.text(max_size=30), st.lists(st.text(max_size=10), max_size=3)))
def test_get_reader_never_raises_on_arbitrary_paths(path):
    assert reader.napari_get_reader(path) in (None, reader.read_layers)


def test_reader_gives_layer_data_with_physical_frame(files):
    read = reader.napari_get_reader(str(files / "cells.tif"))
    assert read is not None
    ((data, kwargs, kind),) = read(str(files / "cells.tif"))
    assert kind == "image" and data.shape == (3, 20, 30)
    assert kwargs["scale"] == pytest.approx((0.5, 0.25, 0.25))
    assert kwargs["units"] == ("um", "um", "um") and kwargs["axis_labels"] == ("z", "y", "x")
    assert kwargs["multiscale"] is False and kwargs["rgb"] is False
    assert kwargs["metadata"]["source"] == str(files / "cells.tif") and kwargs["name"] == "cells"


def test_reader_folder_zarr_and_list(files):
    ((data, kwargs, _),) = reader.napari_get_reader(str(files / "stack"))(str(files / "stack"))
    assert data.shape == (3, 8, 8) and kwargs["axis_labels"] == ("file", "y", "x")
    assert reader.napari_get_reader(str(files / "vol.zarr")) is not None
    paths = [str(files / "stack" / "p2.tif"), str(files / "stack" / "p0.tif")]
    ((data, _, _),) = reader.napari_get_reader(paths)(paths)
    np.testing.assert_array_equal(np.asarray(data)[:, 0, 0], [2, 0])


def test_reader_rgb_layer(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((10, 12, 3), np.uint8), photometric="rgb")
    ((data, kwargs, _),) = reader.read_layers(str(tmp_path / "rgb.tif"))
    assert kwargs["rgb"] is True and len(kwargs["scale"]) == 2 and data.shape == (10, 12, 3)


def test_writer_keeps_frame_and_refuses_source(files, tmp_path):
    ((data, kwargs, _),) = reader.read_layers(str(files / "cells.tif"))
    attributes = {**kwargs, "units": ("micrometer",) * 3}  # napari hands over pint unit names
    out = str(tmp_path / "saved.tif")
    assert writer.write_tiff(out, data, attributes) == [out]
    back = sl.io.imread(out)
    assert back.units == ("um", "um", "um") and back.scale == pytest.approx((0.5, 0.25, 0.25))
    np.testing.assert_array_equal(back.data, np.asarray(data))
    with pytest.raises(FileExistsError, match="read from"):
        writer.write_tiff(str(files / "cells.tif"), data, attributes)
    labels = np.zeros((20, 30), np.int32)
    labels[5:9, 5:9] = 7
    writer.write_tiff(str(tmp_path / "labels.tif"), labels, {"scale": (0.25, 0.25), "metadata": {}})
    assert sl.io.imread(tmp_path / "labels.tif").dtype == np.int32


@pytest.mark.parametrize("key", ["timelapse", "stem4d", "hologram"])
def test_sample_functions(key):
    ((data, kwargs, kind),) = getattr(samples, key)()
    assert kind == "image" and len(kwargs["scale"]) == data.ndim == len(kwargs["axis_labels"])
    assert kwargs["name"] == key


def test_napari_layers_get_view_chunks_and_scripts_get_batch_chunks(tmp_path, monkeypatch):
    """A plane shown in napari reads that plane (one chunk); headless reads group frames for throughput."""
    stack = np.arange(12 * 512 * 512, dtype=np.uint32).reshape(12, 512, 512)  # 1 MiB planes
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    image = sl.io.imread(path, lazy=True)
    assert image.data.chunks[0] == (12,), "batch chunks hold many planes (up to io.CHUNK_BYTES)"
    layers = sl.io.imread_all(path, lazy=True, chunk_bytes=sl.io.VIEW_CHUNK_BYTES)
    assert layers[0].data.chunks[0] == (1,) * 12
    # what napari gets: lazy for a large file, one plane per chunk
    monkeypatch.setattr(sl.io, "LAZY_THRESHOLD_BYTES", 1)
    ((data, kwargs, kind),) = reader.read_layers(str(path))
    assert data.chunks[0] == (1,) * 12 and data.chunks[1:] == ((512,), (512,))
    np.testing.assert_array_equal(data[7].compute(), stack[7])
    with pytest.raises(ValueError, match="chunk_bytes"):
        sl.io.imread(path, chunk_bytes=0)


def test_4d_scans_keep_whole_frames_in_every_chunk_budget(tmp_path):
    scan = np.arange(6 * 7 * 16 * 16, dtype=np.uint16).reshape(6, 7, 16, 16)
    path = tmp_path / "scan.npy"
    np.save(path, scan)
    for budget, frames in [(None, 42), (16 * 16 * 2 * 7, 7), (16 * 16 * 2 * 3, 3), (1, 1)]:
        data = sl.io.imread(path, lazy=True, chunk_bytes=budget).data
        assert data.chunks[2:] == ((16,), (16,))
        assert max(data.chunks[0]) * max(data.chunks[1]) == frames
        np.testing.assert_array_equal(data.compute(), scan)
