"""Folder/glob/list stacks, .npy and .zarr readers, and the suffix dispatch table."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tifffile
import zarr
from skimage import data as skdata

import napari_stacklab as sl
from napari_stacklab.io._lazy import RawArray


def _frames():
    coins = skdata.coins()[:120, :160]
    return [np.roll(coins, 7 * i, axis=1) for i in range(11)]


def _write_folder(folder, frames, unit_scale=0.2):
    folder.mkdir()
    for i, frame in enumerate(frames):
        # unpadded numbers: natural order (2 before 10) differs from lexical order
        tifffile.imwrite(folder / f"img{i}.tif", frame, resolution=(1e4 / unit_scale,) * 2, resolutionunit="CENTIMETER")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.tif").write_bytes(b"junk")
    return folder


@pytest.mark.parametrize("lazy", [False, True])
def test_folder_stack_natural_order(tmp_path, lazy):
    frames = _frames()
    folder = _write_folder(tmp_path / "series", frames)
    img = sl.io.imread(folder, lazy=lazy)
    assert img.shape == (11, 120, 160) and img.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(img.data), np.stack(frames))
    assert img.axis_labels == ("file", "y", "x")
    assert img.units == ("pixel", "um", "um") and img.scale == pytest.approx((1.0, 0.2, 0.2))
    assert img.metadata["source"] == str(folder)
    assert [f.rsplit("/", 1)[-1] for f in img.metadata["files"][:3]] == ["img0.tif", "img1.tif", "img2.tif"]
    assert img.name == "series"
    if lazy:
        assert img.data.chunks[1:] == ((120,), (160,))
        np.testing.assert_array_equal(img.data[10].compute(), frames[10])
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(img.data))[3].compute(), frames[3])


def test_glob_pattern_and_list_of_files(tmp_path):
    frames = _frames()
    folder = _write_folder(tmp_path / "series", frames)
    img = sl.io.imread(str(folder / "img1*.tif"))
    assert img.shape == (2, 120, 160)  # img1, img10
    np.testing.assert_array_equal(img.data, np.stack([frames[1], frames[10]]))
    files = [folder / "img3.tif", folder / "img1.tif"]
    listed = sl.io.imread(files, lazy=True)
    np.testing.assert_array_equal(listed.data.compute(), np.stack([frames[3], frames[1]]))
    with pytest.raises(FileNotFoundError, match="pattern"):
        sl.io.imread(str(folder / "zzz*.tif"))


@pytest.mark.parametrize("odd", ["shape", "dtype"])
def test_mismatched_folder_names_the_odd_file(tmp_path, odd):
    frames = _frames()
    folder = _write_folder(tmp_path / "series", frames[:4])
    bad = frames[0][:50] if odd == "shape" else frames[0].astype(np.uint16)
    tifffile.imwrite(folder / "img2.tif", bad)
    with pytest.raises(ValueError, match=r"img2\.tif.*differ"):
        sl.io.imread(folder)


def test_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="no .tif"):
        sl.io.imread(tmp_path / "empty")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
def test_npy_roundtrip_eager_and_memmap(tmp_path, dtype):
    values = (np.random.default_rng(1).random((3, 4, 30, 20)) * 100).astype(dtype)
    path = tmp_path / "arr.npy"
    np.save(path, values)
    eager = sl.io.imread(path, lazy=False)
    lazy = sl.io.imread(path, lazy=True)
    assert isinstance(eager.data, np.ndarray) and sl._backend.is_dask(lazy.data)
    np.testing.assert_array_equal(eager.data, values)
    np.testing.assert_array_equal(lazy.data.compute(), values)
    assert lazy.data.chunks[-2:] == ((30,), (20,))
    (source,) = [v for v in dict(lazy.data.__dask_graph__()).values() if isinstance(v, RawArray)]
    source[...][0, 0, 0, 0] = 1  # reads are copies: the file is untouched
    np.testing.assert_array_equal(lazy.data.compute(), values)
    assert eager.metadata["source"] == str(path) and eager.name == "arr"
    assert eager.units == ("pixel",) * 4


def test_npy_fortran_order(tmp_path):
    values = np.asfortranarray(np.arange(60, dtype=np.uint16).reshape(3, 4, 5))
    np.save(tmp_path / "f.npy", values)
    np.testing.assert_array_equal(sl.io.imread(tmp_path / "f.npy", lazy=True).data.compute(), values)


def test_npy_pickled_refused_and_truncated(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    for lazy in (False, True):
        with pytest.raises(ValueError, match=r"obj\.npy.*pickled object"):
            sl.io.imread(tmp_path / "obj.npy", lazy=lazy)
    np.save(tmp_path / "cut.npy", np.zeros((10, 64, 64), np.float32))
    raw = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[:5000])
    with pytest.raises(ValueError, match=r"cut\.npy.*truncated"):
        sl.io.imread(tmp_path / "cut.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match=r"bad\.npy"):
        sl.io.imread(tmp_path / "bad.npy")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_array_lazy_whole_planes(tmp_path, zarr_format):
    values = np.random.default_rng(2).integers(0, 1000, (5, 64, 48)).astype(np.uint16)
    path = tmp_path / "a.zarr"
    arr = zarr.create_array(path, shape=values.shape, chunks=(2, 32, 16), dtype=values.dtype, zarr_format=zarr_format)
    arr[...] = values
    img = sl.io.imread(path, lazy=True)
    assert sl._backend.is_dask(img.data)
    assert img.data.chunks == ((2, 2, 1), (64,), (48,))
    np.testing.assert_array_equal(img.data.compute(), values)
    eager = sl.io.imread(path, lazy=False)
    assert isinstance(eager.data, np.ndarray)
    np.testing.assert_array_equal(eager.data, values)
    assert eager.metadata["source"] == str(path) and eager.name == "a"


def test_zarr_group_ngff_level0(tmp_path):
    path = tmp_path / "img.ome.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=2)
    level0 = np.arange(2 * 32 * 32, dtype=np.uint8).reshape(2, 32, 32)
    group.create_array("0", data=level0, chunks=(1, 32, 32))
    group.create_array("1", data=level0[:, ::2, ::2], chunks=(1, 16, 16))
    group.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": "z", "type": "space", "unit": "micrometer"},
                 {"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 0.5, 0.5]}]},
                     {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 1.0, 1.0]}]}],
    }]
    img = sl.io.imread(path)
    assert img.shape == (2, 32, 32) and img.metadata["component"] == "0"
    assert img.axis_labels == ("z", "y", "x") and img.units == ("um", "um", "um")
    assert img.scale == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(np.asarray(img.data), level0)
    plain = zarr.open_group(tmp_path / "plain.zarr", mode="w")
    plain.create_group("sub").create_array("b", data=np.ones((4, 4), np.float32))
    assert sl.io.imread(tmp_path / "plain.zarr").metadata["component"] == "sub/b"
    zarr.open_group(tmp_path / "none.zarr", mode="w")
    with pytest.raises(ValueError, match="no array"):
        sl.io.imread(tmp_path / "none.zarr")


def test_dispatch_table_is_data_driven(tmp_path, monkeypatch):
    (tmp_path / "x.fake").write_bytes(b"anything")
    monkeypatch.setitem(sl.io.READERS, ".fake", "napari_stacklab.io._npy:read_npy")
    with pytest.raises(ValueError, match=r"x\.fake.*not a valid \.npy"):
        sl.io.imread(tmp_path / "x.fake")
    assert sl.io.can_read(tmp_path / "x.fake")
    monkeypatch.setitem(sl.io.MAGIC, ".fake", (b"\x93NUMPY",))
    assert not sl.io.can_read(tmp_path / "x.fake")


def test_can_read_never_raises_and_rejects_junk(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "rand.tif").write_bytes(np.random.default_rng(5).bytes(512))
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    tifffile.imwrite(tmp_path / "ok.tif", np.zeros((4, 4), np.uint8))
    np.save(tmp_path / "ok.npy", np.zeros(3))
    for bad in ["a.txt", "rand.tif", "empty.tif", "missing.tif", "dir"]:
        assert not sl.io.can_read(tmp_path / bad), bad
    for weird in [None, 3, object(), [], "\0bad"]:
        assert sl.io.can_read(weird) is False
    assert sl.io.can_read(tmp_path / "ok.tif") and sl.io.can_read(tmp_path / "ok.npy")
    assert sl.io.can_read([tmp_path / "ok.tif", tmp_path / "ok.tif"])
    assert not sl.io.can_read([tmp_path / "ok.tif", tmp_path / "ok.npy"])


def test_folder_suffix_dispatch(tmp_path, monkeypatch):
    store = tmp_path / "model.zspy"
    zarr.create_array(store, shape=(4, 4), dtype="u1", chunks=(4, 4))
    monkeypatch.setitem(sl.io.READERS, ".zspy", "napari_stacklab.io._zarr:read_zarr")
    assert sl.io.imread(store).metadata["format"] == "zarr"
    odd = tmp_path / "odd.tif"  # a folder named like a file: a folder stack
    odd.mkdir()
    tifffile.imwrite(odd / "a.tif", np.zeros((3, 3), np.uint8))
    assert sl.io.imread(odd).shape == (1, 3, 3)
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    assert not sl.io.can_read(empty)


@pytest.mark.parametrize("lazy_input", [False, True])
def test_zarr_writer_roundtrip_ngff(tmp_path, lazy_input):
    import dask.array as da

    values = np.random.default_rng(4).random((3, 5, 40, 30)).astype(np.float32)
    data = da.from_array(values, chunks=(2, 2, 15, 30)) if lazy_input else values
    image = sl.io.Image(data, scale=(2.0, 0.5, 0.1, 0.1), units=("s", "um", "um", "um"),
                        axis_labels=("t", "z", "y", "x"), translate=(0, 0, 5.0, 0))
    path = tmp_path / "out.zarr"
    sl.io.imwrite(path, image)
    back = sl.io.imread(path, lazy=True)
    np.testing.assert_array_equal(back.data.compute(), values)
    assert back.data.chunks[-2:] == ((40,), (30,))
    assert (back.scale, back.units, back.axis_labels, back.translate) == (
        image.scale, image.units, image.axis_labels, image.translate,
    )
    group = zarr.open_group(path, mode="r")
    assert group.attrs["multiscales"][0]["axes"][0] == {"name": "t", "type": "time", "unit": "second"}
    with pytest.raises(FileExistsError):
        sl.io.imwrite(path, image)
    with pytest.raises(FileExistsError, match="read from"):
        sl.io.imwrite(path, back, overwrite=True)
    with pytest.raises(ValueError, match="suffix|end in"):
        sl.io.imwrite(tmp_path / "out.h5", image)


def test_importing_io_and_datasets_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, napari_stacklab as sl; sl.io; sl.datasets; import napari_stacklab._napari.reader; "
        "print(sorted(m for m in ('dask', 'zarr', 'tifffile', 'napari', 'qtpy', 'cupy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
