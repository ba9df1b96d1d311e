"""TIFF, ImageJ and OME-TIFF: round trips, metadata, laziness, bad files, overwrite rules."""

from __future__ import annotations

import fcntl
import os
import pickle

import dask.array as da
import numpy as np
import pytest
import tifffile
from skimage import data as skdata

import napari_stacklab as sl
from napari_stacklab.io._lazy import RawArray

Image = sl.io.Image


def _graph_sources(array, kind):
    return [v for v in dict(array.__dask_graph__()).values() if isinstance(v, kind)]


def _roundtrip(tmp_path, image, name="out.tif", lazy=False):
    path = tmp_path / name
    sl.io.imwrite(path, image)
    return sl.io.imread(path, lazy=lazy)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int16, np.float64, np.int32])
@pytest.mark.parametrize("ndim", [2, 3, 4, 5])
def test_roundtrip_dtype_shape_frame(tmp_path, dtype, ndim):
    rng = np.random.default_rng(ndim)
    labels = ("t", "z", "c", "y", "x")[5 - ndim :]
    shape = (3, 2, 2, 17, 23)[5 - ndim :]
    scale = (4.0, 0.8, 1.0, 0.25, 0.125)[5 - ndim :]
    units = ("s", "um", "pixel", "um", "um")[5 - ndim :]
    values = rng.integers(-100 if np.dtype(dtype).kind == "i" else 0, 250, size=shape).astype(dtype)
    image = Image(values, scale=scale, units=units, axis_labels=labels)
    for lazy in (False, True):
        back = _roundtrip(tmp_path, image, name=f"rt_{lazy}.tif", lazy=lazy)
        assert back.dtype == np.dtype(dtype)
        assert back.shape == shape
        np.testing.assert_array_equal(np.asarray(back.data), values)
        assert back.axis_labels == labels
        assert back.units == units
        np.testing.assert_allclose(back.scale, scale, rtol=1e-6)
        assert back.metadata["source"] == str(tmp_path / f"rt_{lazy}.tif")
        assert back.name == f"rt_{lazy}"


def test_imagej_for_imagej_types_ome_otherwise(tmp_path):
    frame = {"scale": (0.5, 0.1, 0.1), "units": ("um", "um", "um"), "axis_labels": ("z", "y", "x")}
    ij = _roundtrip(tmp_path, Image(np.zeros((2, 8, 8), np.uint16), **frame), "ij.tif")
    ome = _roundtrip(tmp_path, Image(np.zeros((2, 8, 8), np.int16), **frame), "ome.tif")
    forced = _roundtrip(tmp_path, Image(np.zeros((2, 8, 8), np.uint16), **frame), "f.ome.tif")
    assert (ij.metadata["format"], ome.metadata["format"], forced.metadata["format"]) == ("imagej", "ome", "ome")
    with tifffile.TiffFile(tmp_path / "ij.tif") as tif:
        assert tif.is_imagej and tif.imagej_metadata["spacing"] == pytest.approx(0.5)
        assert tif.pages[0].resolution == pytest.approx((10.0, 10.0))
    with tifffile.TiffFile(tmp_path / "ome.tif") as tif:
        assert tif.is_ome and 'PhysicalSizeX="0.1"' in tif.ome_metadata


def test_axis_order_kept_and_exotic_frames_roundtrip(tmp_path):
    values = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    image = Image(values, scale=(1, 2.5, 0.2, 0.3), units=("pixel", "ms", "nm", "nm"), axis_labels=("c", "t", "y", "x"))
    back = _roundtrip(tmp_path, image, "ct.tif")
    assert back.axis_labels == ("c", "t", "y", "x") and back.units == image.units
    np.testing.assert_array_equal(back.data, values)
    # 6-D with units no TIFF flavour knows: kept in the description
    stem = Image(
        np.ones((2, 2, 2, 2, 4, 4), np.float32),
        scale=(0.4, 0.4, 1, 1, 0.5, 0.5),
        units=("nm", "nm", "pixel", "pixel", "mrad", "mrad"),
        axis_labels=("a", "b", "c", "d", "ky", "kx"),
        translate=(0, 0, 0, 0, -16, -16),
    )
    back = _roundtrip(tmp_path, stem, "stem.tif", lazy=True)
    assert (back.axis_labels, back.units, back.scale, back.translate) == (
        stem.axis_labels, stem.units, stem.scale, stem.translate,
    )


def test_imwrite_bare_array_with_keywords_and_units_normalised(tmp_path):
    path = tmp_path / "bare.tif"
    sl.io.imwrite(path, np.ones((4, 6), np.uint8), scale=(0.2, 0.2), units=("micrometer", "µm"), axis_labels=("y", "x"))
    back = sl.io.imread(path)
    assert back.units == ("um", "um") and back.scale == pytest.approx((0.2, 0.2))
    with pytest.raises(ValueError, match="scale"):
        sl.io.imwrite(tmp_path / "bad.tif", np.ones((4, 6)), scale=(1.0,))
    with pytest.raises(ValueError, match=r"\.tif"):
        sl.io.imwrite(tmp_path / "bad.png", np.ones((4, 6)))
    with pytest.raises(TypeError, match="image_or_array"):
        sl.io.imwrite(tmp_path / "bad.tif", [[1, 2]])


def test_reads_imagej_written_by_tifffile_and_plain_resolution(tmp_path):
    values = np.zeros((3, 2, 6, 7), np.uint8)
    tifffile.imwrite(
        tmp_path / "fiji.tif", values, imagej=True, resolution=(1 / 0.3, 1 / 0.3),
        metadata={"axes": "TZYX", "spacing": 1.5, "unit": "micron", "finterval": 2.0},
    )
    img = sl.io.imread(tmp_path / "fiji.tif")
    assert img.axis_labels == ("t", "z", "y", "x")
    assert img.units == ("s", "um", "um", "um")
    assert img.scale == (2.0, 1.5, 0.3, 0.3)  # exact: no 0.30000000000000004 from the rational tag
    # plain TIFF: 20000 pixels per cm = 0.5 um per pixel
    tifffile.imwrite(tmp_path / "plain.tif", values[0, 0], resolution=(20000, 20000), resolutionunit="CENTIMETER")
    plain = sl.io.imread(tmp_path / "plain.tif")
    assert plain.units == ("um", "um") and plain.scale == pytest.approx((0.5, 0.5))


def test_skimage_multipage_real_file_unknown_size_is_pixel():
    path = os.path.join(os.path.dirname(skdata.__file__), "multipage.tif")
    img = sl.io.imread(path)
    assert img.shape == (2, 15, 10) and img.units == ("pixel",) * 3 and img.scale == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(img.data, tifffile.imread(path))


def test_lazy_uncompressed_is_readonly_memmap_whole_planes(tmp_path):
    camera = skdata.camera()
    stack = np.stack([camera, camera[::-1], camera.T, 255 - camera])
    path = tmp_path / "cam.tif"
    sl.io.imwrite(path, stack)
    img = sl.io.imread(path, lazy=True)
    assert sl._backend.is_dask(img.data)
    assert all(c == (s,) for c, s in zip(img.data.chunks[-2:], stack.shape[-2:]))
    np.testing.assert_array_equal(img.data[2].compute(), stack[2])
    (source,) = _graph_sources(img.data, RawArray)
    chunk = source[1:3]
    chunk[...] = 7  # a copy: nothing reaches the file, which is opened read-only
    np.testing.assert_array_equal(img.data[1:3].compute(), stack[1:3])
    assert fcntl.fcntl(source._descriptor(), fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
    # the graph pickles as a path, not as the data
    assert len(pickle.dumps(img.data)) < 10_000
    eager = sl.io.imread(path, lazy=False)
    assert isinstance(eager.data, np.ndarray)
    np.testing.assert_array_equal(eager.data, img.data.compute())


def test_lazy_compressed_reads_pages_on_demand(tmp_path):
    rng = np.random.default_rng(3)
    stack = rng.integers(0, 4000, (6, 40, 30)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "z.tif", stack, compression="zlib", photometric="minisblack")
    img = sl.io.imread(tmp_path / "z.tif", lazy=True)
    assert img.data.chunks[-2:] == ((40,), (30,))
    assert not _graph_sources(img.data, RawArray)
    np.testing.assert_array_equal(img.data[4].compute(), stack[4])
    np.testing.assert_array_equal(img.data[1:5, 3:9].compute(), stack[1:5, 3:9])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(img.data)).compute(), stack)


def test_lazy_threshold_decides(tmp_path, monkeypatch):
    sl.io.imwrite(tmp_path / "small.tif", np.zeros((2, 16, 16), np.uint16))
    assert isinstance(sl.io.imread(tmp_path / "small.tif").data, np.ndarray)
    monkeypatch.setattr(sl.io, "LAZY_THRESHOLD_BYTES", 100)
    assert sl._backend.is_dask(sl.io.imread(tmp_path / "small.tif").data)
    with pytest.raises(TypeError, match="lazy"):
        sl.io.imread(tmp_path / "small.tif", lazy="yes")


def test_multiple_series_imread_all(tmp_path):
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(np.zeros((5, 6), np.uint8), photometric="minisblack")
        tw.write(np.ones((3, 4, 4), np.float32), photometric="minisblack")
    images = sl.io.imread_all(path)
    assert [im.shape for im in images] == [(5, 6), (3, 4, 4)]
    assert sl.io.imread(path).shape == (5, 6)


def test_rgb_samples_axis(tmp_path):
    rgb = skdata.astronaut()[::4, ::4]
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    img = sl.io.imread(tmp_path / "rgb.tif", lazy=True)
    assert img.axis_labels == ("y", "x", "s")
    np.testing.assert_array_equal(img.data.compute(), rgb)


def test_dask_written_a_chunk_at_a_time(tmp_path):
    calls = []

    def block(x, block_info=None):
        calls.append(block_info[None]["chunk-location"])
        return x + 1

    base = da.zeros((4, 3, 32, 32), dtype=np.uint16, chunks=(1, 3, 32, 16))
    lazy = base.map_blocks(block, dtype=np.uint16)
    sl.io.imwrite(tmp_path / "d.tif", Image(lazy, axis_labels=("t", "z", "y", "x")))
    assert len(calls) == lazy.npartitions  # every chunk once: never the whole array at once, no recompute
    back = sl.io.imread(tmp_path / "d.tif")
    assert back.shape == (4, 3, 32, 32) and back.axis_labels == ("t", "z", "y", "x")
    assert np.all(back.data == 1)


def test_overwrite_rules(tmp_path):
    path = tmp_path / "src.tif"
    sl.io.imwrite(path, np.zeros((8, 8), np.uint16))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        sl.io.imwrite(path, np.ones((8, 8), np.uint16))
    sl.io.imwrite(path, np.ones((8, 8), np.uint16), overwrite=True)
    assert sl.io.imread(path).data.max() == 1
    img = sl.io.imread(path, lazy=True)
    with pytest.raises(FileExistsError, match="read from"):
        sl.io.imwrite(path, img, overwrite=True)
    with pytest.raises(FileExistsError, match="read from"):
        sl.io.imwrite(str(tmp_path / "." / "src.tif"), img.with_data(img.data + 1), overwrite=True)
    np.testing.assert_array_equal(sl.io.imread(path).data, 1)
    sl.io.imwrite(tmp_path / "copy.tif", img)  # another name is fine


def _tiff_bytes(tmp_path, compression=None):
    tifffile.imwrite(tmp_path / "full.tif", np.arange(4 * 64 * 64, dtype=np.uint16).reshape(4, 64, 64),
                     photometric="minisblack", compression=compression)
    return (tmp_path / "full.tif").read_bytes()


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("lazy", [False, True])
def test_truncated_tiff_is_an_error_naming_the_file(tmp_path, compression, lazy):
    raw = _tiff_bytes(tmp_path, compression)
    path = tmp_path / "cut.tif"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut\.tif.*(truncated|corrupted|decode)"):
        sl.io.imread(path, lazy=lazy)


def test_not_a_tiff_and_missing_and_unknown(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError, match=r"junk\.tif.*not a readable TIFF"):
        sl.io.imread(junk)
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.tif"):
        sl.io.imread(empty)
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        sl.io.imread(tmp_path / "nope.tif")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="unknown file format"):
        sl.io.imread(tmp_path / "notes.txt")


@pytest.mark.parametrize("dtype", [bool, np.int8, np.uint32, np.int64, np.uint64, np.float16, np.complex64])
@pytest.mark.parametrize("lazy_input", [False, True])
def test_every_dtype_roundtrips(tmp_path, dtype, lazy_input):
    values = (np.arange(2 * 6 * 8).reshape(2, 6, 8) % 3).astype(dtype)
    data = da.from_array(values, chunks=(1, 3, 8)) if lazy_input else values
    image = Image(data, axis_labels=("z", "y", "x"), scale=(1.0, 0.5, 0.5), units=("um", "um", "um"))
    back = _roundtrip(tmp_path, image)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.data, values)
    assert back.scale == (1.0, 0.5, 0.5) and back.axis_labels == ("z", "y", "x")


@pytest.mark.gpu
def test_imwrite_accepts_cupy(tmp_path):
    cp = pytest.importorskip("cupy")
    if not sl._backend.gpu_available():
        pytest.skip("no CUDA device")
    values = np.arange(2 * 16 * 16, dtype=np.uint16).reshape(2, 16, 16)
    sl.io.imwrite(tmp_path / "gpu.tif", cp.asarray(values))
    sl.io.imwrite(tmp_path / "gpu_lazy.tif", da.from_array(values, chunks=(1, 16, 16)).map_blocks(cp.asarray))
    np.testing.assert_array_equal(sl.io.imread(tmp_path / "gpu.tif").data, values)
    np.testing.assert_array_equal(sl.io.imread(tmp_path / "gpu_lazy.tif").data, values)


@pytest.mark.parametrize("lazy", [False, True])
def test_rgb_channel_last_is_written_as_rgb_pages(tmp_path, lazy):
    frames = np.stack([skdata.astronaut(), skdata.astronaut()[::-1]])
    payload = da.from_array(frames, chunks=(1, 100, 512, 3)) if lazy else frames
    path = tmp_path / "rgb.tif"
    sl.io.imwrite(path, sl.io.Image(payload, axis_labels=("t", "y", "x", "c"), scale=(2.0, 0.5, 0.5, 1.0),
                                    units=("s", "um", "um", "pixel")))
    with tifffile.TiffFile(path) as tif:  # what any other TIFF reader sees: two colour pages
        assert len(tif.pages) == 2 and tif.pages[0].shape == (512, 512, 3)
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
    back = sl.io.imread(path)
    np.testing.assert_array_equal(np.asarray(back.data), frames)
    assert back.axis_labels == ("t", "y", "x", "c") and back.scale[1:3] == (0.5, 0.5)
