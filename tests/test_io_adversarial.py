"""Readers against a hostile or unlucky user (issue 19): files changing under a computation, files that
point outside themselves, values that are not images, headers that lie, special files.

Every test here failed before the fix it guards: a SIGBUS crash, the bytes of another file shown as
pixels, a 1 GiB eager decode under a 1 MiB cap, a hang, or data read from inside a header.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import warnings

import _badfiles as bad
import numpy as np
import pytest
import tifffile
import zarr
from _emwriters import DMImage, write_dm
from test_io_em import _signal, _write_mib

import napari_stacklab as sl
from napari_stacklab._napari import reader
from napari_stacklab.io import EagerSizeError, ExternalDataError, MetadataWarning
from napari_stacklab.io._lazy import RawArray

FRAMES = (8, 256, 256)  # 128 KiB frames: a truncated file loses whole pages of the first chunk


def _write_lazy_source(kind: str, folder) -> tuple:
    """A file of ``kind`` holding FRAMES-shaped data (values, path) read through a raw layout."""
    rng = np.random.default_rng(3)
    stack = rng.integers(0, 4000, FRAMES).astype(np.uint16)
    if kind == "npy":
        path = folder / "scan.npy"
        np.save(path, stack)
    elif kind == "tiff":
        path = folder / "scan.tif"
        tifffile.imwrite(path, stack, photometric="minisblack")
    elif kind == "mib":
        path = folder / "scan.mib"
        _write_mib(path, stack, hdr_frames=FRAMES[0], scan_width=FRAMES[0])
        stack = stack[:, ::-1, :]  # RosettaSciIO shows Merlin frames flipped vertically
    elif kind == "mrc":
        import mrcfile

        path = folder / "scan.mrc"
        with mrcfile.new(str(path)) as f:
            f.set_data(stack)
    elif kind == "blo":
        from rsciio.blockfile import file_writer

        path = folder / "scan.blo"
        stack = (stack // 16).astype(np.uint8).reshape(2, 4, *FRAMES[1:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            file_writer(str(path), _signal(stack))
    else:  # DigitalMicrograph
        path = folder / "scan.dm4"
        write_dm(path, DMImage(stack, scale=(1.0, 0.5, 0.5), units=("s", "nm", "nm")), version=4)
    return path, stack


RAW_KINDS = ["npy", "tiff", "mib", "mrc", "blo", "dm4"]


@pytest.mark.parametrize("kind", RAW_KINDS)
def test_raw_formats_are_read_without_memory_maps_and_give_the_same_values(tmp_path, kind):
    path, stack = _write_lazy_source(kind, tmp_path)
    image = sl.io.imread(path, lazy=True)
    sources = [v for v in dict(image.data.__dask_graph__()).values() if isinstance(v, RawArray)]
    assert len(sources) == 1, "raw pixels must be read by RawArray, never through a memory map"
    assert not any(isinstance(v, np.memmap) for v in dict(image.data.__dask_graph__()).values())
    np.testing.assert_array_equal(image.data.compute(), stack)
    np.testing.assert_array_equal(image.data[(1,) * (image.ndim - 2)].compute(), stack[(1,) * (stack.ndim - 2)])
    np.testing.assert_array_equal(sl.io.imread(path, lazy=False).data, stack)


_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np, dask
    import napari_stacklab as sl

    image = sl.io.imread(sys.argv[1], lazy=True, chunk_bytes=int(sys.argv[2]))
    paused = []

    def touch_later(block):
        if block.size and not paused:  # the first chunk is in memory (or mapped): let the parent cut the file
            paused.append(1)
            print("READY", flush=True)
            sys.stdin.readline()
        return np.full((1,) * block.ndim, block.sum(dtype=np.float64))

    sums = image.data.map_blocks(touch_later, chunks=(1,) * image.ndim, meta=np.empty((0,) * image.ndim))
    try:
        with dask.config.set(scheduler="synchronous"):
            sums.compute()
    except (ValueError, OSError) as exc:
        print("ERROR", exc, flush=True)
        sys.exit(3)
    print("FINISHED", flush=True)
    """
)


@pytest.mark.parametrize("change", ["truncated", "rewritten"])
@pytest.mark.parametrize("kind", RAW_KINDS)
def test_file_cut_while_another_process_computes_is_an_error_not_a_crash(tmp_path, kind, change):
    """A real second process computes lazily; this one truncates (or rewrites) the file mid-compute.

    With memory maps the child died of SIGBUS as soon as it touched a page past the new end
    (the size check before each chunk cannot cover a chunk already handed out).
    """
    path, _ = _write_lazy_source(kind, tmp_path)
    frame_bytes = FRAMES[1] * FRAMES[2] * np.dtype(np.uint16 if kind != "blo" else np.uint8).itemsize
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), str(frame_bytes)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "READY", child.stderr.read()
        if change == "truncated":
            os.truncate(path, 4096)
        else:
            size = path.stat().st_size
            with open(path, "r+b") as fh:  # same size, other bytes, later modification time
                fh.seek(size // 2)
                fh.write(bytes(4096))
            stat = path.stat()
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        out, err = child.communicate("go\n", timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 3, f"exit status {child.returncode} (-7 is SIGBUS)\n{out}\n{err[-2000:]}"
    assert str(path) in out and ("shortened" in out or "changed" in out), out


def test_raw_reads_skip_frame_headers_and_read_only_what_is_asked(tmp_path):
    path, stack = _write_lazy_source("mib", tmp_path)
    image = sl.io.imread(path, lazy=True)
    (source,) = [v for v in dict(image.data.__dask_graph__()).values() if isinstance(v, RawArray)]
    before = source.bytes_read
    np.testing.assert_array_equal(source[5], stack[5])
    # one frame and nothing else (the 384-byte headers around it are not read)
    assert source.bytes_read - before == FRAMES[1] * FRAMES[2] * 2
    np.testing.assert_array_equal(source[2:7:2, 10:20, ::-3], stack[2:7:2, 10:20, ::-3])


# ---------------------------------------------------------------- values that are not images


def _npy_of(array) -> bytes:
    return bad.npy(array)


NOT_IMAGES = {
    "structured.npy": (_npy_of(np.zeros((4, 4), dtype=[("a", "<u2"), ("b", "<f4")])), "structured records"),
    "unicode.npy": (_npy_of(np.array([["ab", "cd"], ["ef", "gh"]])), "text"),
    "datetime.npy": (_npy_of(np.zeros((4, 4), dtype="datetime64[s]")), "dates and times"),
    "timedelta.npy": (_npy_of(np.zeros((4, 4), dtype="timedelta64[ms]")), "time differences"),
    "void.npy": (_npy_of(np.zeros((4, 4), dtype="V8")), "raw or structured records"),
    "one_d.npy": (_npy_of(np.arange(16, dtype=np.uint16)), "1-D"),
    "scalar.npy": (_npy_of(np.array(3.0)), "scalar"),
    # 128 bytes announcing 10**12 x 10**12 zero-size items: no size check sees a byte to read
    "void0_huge.npy": (bad.npy_header((10**12, 10**12), descr="|V0"), "raw or structured records"),
}


@pytest.mark.parametrize("lazy", [False, True, None], ids=["eager", "lazy", "auto"])
@pytest.mark.parametrize("name", sorted(NOT_IMAGES))
def test_arrays_that_are_not_images_are_refused_at_read_time_naming_the_file(tmp_path, name, lazy):
    data, words = NOT_IMAGES[name]
    path = tmp_path / name
    path.write_bytes(data)
    with bad.hang_guard(20), pytest.raises(ValueError, match=words) as info:
        image = sl.io.imread(path, lazy=lazy)
        np.asarray(image.data[(0,) * (image.ndim - 2)])
    assert str(path) in str(info.value)


@pytest.mark.parametrize("dtype, shape", [("<U4", (4, 4)), ("uint16", (16,)), ("datetime64[s]", (4, 4))])
def test_zarr_arrays_that_are_not_images_are_refused(tmp_path, dtype, shape):
    path = tmp_path / "odd.zarr"
    zarr.create_array(path, shape=shape, dtype=dtype, chunks=shape)
    for lazy in (False, True):
        with pytest.raises(ValueError, match="odd.zarr"):
            sl.io.imread(path, lazy=lazy)


def test_a_multi_signal_file_skips_what_is_not_an_image_with_a_warning(tmp_path, monkeypatch):
    from napari_stacklab.io import _em

    spectrum = sl.io.Image(np.arange(64, dtype=np.float32), name="EDS")
    picture = sl.io.Image(np.ones((4, 5), np.uint16), name="HAADF")
    monkeypatch.setattr(_em, "read_em", lambda path, lazy: [spectrum, picture])
    path = tmp_path / "session.emd"
    path.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.warns(MetadataWarning, match="skipping 'EDS'.*1-D"):
        (image,) = sl.io.imread_all(path)
    assert image.name == "HAADF"


# ---------------------------------------------------------------- headers that lie


def test_mrc_with_a_negative_extended_header_is_refused(tmp_path):
    import mrcfile

    path = tmp_path / "liar.mrc"
    with mrcfile.new(str(path)) as f:
        f.set_data(np.arange(2 * 8 * 8, dtype=np.int16).reshape(2, 8, 8))
    raw = bytearray(path.read_bytes())
    raw[92:96] = struct.pack("<i", -512)  # NSYMBT: the data would start inside the header
    path.write_bytes(bytes(raw))
    for lazy in (False, True):
        with pytest.raises(ValueError, match="liar.mrc.*extended-header length.*-512"):
            sl.io.imread(path, lazy=lazy)


@pytest.mark.parametrize("dpi", [150.0, 300.0, 600.0])
def test_print_resolution_in_inches_is_not_a_pixel_size(tmp_path, dpi):
    """An AxioVision-style TIFF calibrated only by a print resolution reads uncalibrated (as RosettaSciIO reads it)."""
    path = tmp_path / "axiovision.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), resolution=(dpi, dpi), resolutionunit="INCH", metadata=None)
    with pytest.warns(MetadataWarning, match=f"axiovision.tif.*{dpi:g} x {dpi:g} dots per inch.*uncalibrated"):
        image = sl.io.imread(path)
    assert image.scale == (1.0, 1.0) and image.units == ("pixel", "pixel")


def test_screen_default_resolution_is_silently_uncalibrated(tmp_path):
    path = tmp_path / "screen.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), resolution=(72, 72), resolutionunit="INCH", metadata=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MetadataWarning)
        image = sl.io.imread(path)
    assert image.units == ("pixel", "pixel")


# ---------------------------------------------------------------- HDF5 must be self-contained


def _hspy_with_data(path, replace):
    """A HyperSpy file whose data set is swapped for ``replace(h5file, name, shape, dtype)``."""
    import h5py
    from rsciio.hspy import file_writer

    file_writer(str(path), _signal(np.arange(4 * 6, dtype=np.uint8).reshape(4, 6), title="img"))
    with h5py.File(path, "a") as f:
        names = []
        f.visititems(lambda name, node: names.append(name) if name.endswith("/data") else None)
        (name,) = names
        shape, dtype = f[name].shape, f[name].dtype
        del f[name]
        replace(f, name, shape, dtype)


def _external_storage(secret):
    def replace(f, name, shape, dtype):
        f.create_dataset(name, shape=shape, dtype=dtype, external=[(str(secret), 0, 24)])

    return replace


def _external_link(secret_h5):
    import h5py

    def replace(f, name, shape, dtype):
        f[name] = h5py.ExternalLink(str(secret_h5), "/secret")

    return replace


def _virtual(secret_h5):
    import h5py

    def replace(f, name, shape, dtype):
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(str(secret_h5), "secret", shape=shape)
        f.create_virtual_dataset(name, layout)

    return replace


@pytest.mark.parametrize("how", ["external storage", "external link", "virtual dataset"])
def test_hdf5_pointing_outside_itself_is_refused_and_declined_by_napari(tmp_path, how):
    import h5py

    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"password=hunter2;token=0")
    secret_h5 = tmp_path / "secret.h5"
    with h5py.File(secret_h5, "w") as f:
        f["secret"] = np.frombuffer(secret.read_bytes(), np.uint8).reshape(4, 6)
    path = tmp_path / "innocent.hspy"
    replace = {"external storage": _external_storage(secret), "external link": _external_link(secret_h5),
               "virtual dataset": _virtual(secret_h5)}[how]
    _hspy_with_data(path, replace)
    for lazy in (False, True):
        with pytest.raises(ExternalDataError, match="innocent.hspy.*outside the file"):
            sl.io.imread(path, lazy=lazy)
    with pytest.warns(UserWarning, match="does not open this file.*outside the file"):
        assert reader.napari_get_reader(str(path)) is None
    assert not sl.io.can_read(path)


def test_a_virtual_dataset_inside_the_same_file_is_not_refused(tmp_path):
    import h5py

    path = tmp_path / "inside.hspy"

    def replace(f, name, shape, dtype):
        f["plain"] = np.arange(24, dtype=np.uint8).reshape(shape)
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(".", "plain", shape=shape)
        f.create_virtual_dataset(name, layout)

    _hspy_with_data(path, replace)
    sl.io.check_readable(path)  # RosettaSciIO itself cannot chunk a virtual dataset; our check lets it try
    assert reader.napari_get_reader(str(path)) is reader.read_layers


def _gzip_hspy(path, shape, chunks):
    def replace(f, name, _shape, dtype):
        f.create_dataset(name, shape=shape, dtype=np.uint16, chunks=chunks, compression="gzip",
                         fillvalue=0)[...] = 0

    from rsciio.hspy import file_writer

    file_writer(str(path), _signal(np.zeros(shape[-2:], np.uint16), axes=[
        {"name": n, "scale": 1.0, "offset": 0.0, "units": "nm", "navigate": False} for n in "yx"], title="img"))
    import h5py

    with h5py.File(path, "a") as f:
        names = []
        f.visititems(lambda name, node: names.append(name) if name.endswith("/data") else None)
        (name,) = names
        del f[name]
        replace(f, name, shape, np.uint16)
        # the signal now has a stack axis in front: describe it
        group = f[name.rsplit("/", 1)[0]]
        for key in sorted(group, reverse=True):
            if key.startswith("axis-"):
                index = int(key.split("-")[1])
                group.move(key, f"axis-{index + 1}")
        axis = group.create_group("axis-0")
        axis.attrs.update({"name": "t", "size": shape[0], "scale": 1.0, "offset": 0.0, "units": "s",
                           "navigate": True})


def test_em_reader_obeys_the_eager_cap_for_decompressed_sizes(tmp_path, monkeypatch):
    """A small gzip'd file decoding to 8 MiB, with the cap at 1 MiB: never decoded whole."""
    monkeypatch.setattr(sl.io, "MAX_EAGER_BYTES", 2**20)
    bomb = tmp_path / "bomb.hspy"
    _gzip_hspy(bomb, (64, 256, 256), chunks=(64, 256, 256))  # one chunk of 8 MiB
    assert bomb.stat().st_size < 200_000
    for lazy in (False, True, None):
        with pytest.raises(EagerSizeError, match="bomb.hspy.*MAX_EAGER_BYTES"):
            sl.io.imread(bomb, lazy=lazy)
    with pytest.warns(UserWarning, match="does not open this file.*one compressed chunk"):
        assert reader.napari_get_reader(str(bomb)) is None

    framed = tmp_path / "framed.hspy"
    _gzip_hspy(framed, (64, 256, 256), chunks=(1, 256, 256))  # 128 KiB chunks: fine lazily
    with pytest.raises(EagerSizeError, match="framed.hspy.*into memory"):
        sl.io.imread(framed, lazy=False)
    image = sl.io.imread(framed)  # small on disk, big in memory: opened lazily
    assert sl._backend.is_dask(image.data) and image.shape == (64, 256, 256)
    assert int(image.data[10].compute().sum()) == 0


# ---------------------------------------------------------------- special files


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_like_an_image_is_refused_before_it_is_opened(tmp_path):
    fifo = tmp_path / "camera.tif"
    os.mkfifo(fifo)
    with bad.hang_guard(10):
        for lazy in (False, True, None):
            with pytest.raises(ValueError, match="camera.tif.*FIFO"):
                sl.io.imread(fifo, lazy=lazy)
        with pytest.raises(ValueError, match="FIFO"):
            sl.io.imread([fifo])
        assert reader.napari_get_reader(str(fifo)) is None
        assert not sl.io.can_read(fifo)


# ---------------------------------------------------------------- lazy errors name the file


@pytest.mark.parametrize("damage", ["corrupt chunk", "deleted chunk"])
def test_lazy_zarr_errors_name_the_store(tmp_path, damage):
    path = tmp_path / "cells.zarr"
    sl.io.imwrite(path, np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16))
    image = sl.io.imread(path, lazy=True, chunk_bytes=16 * 16 * 2)
    chunk = next(p for p in (path / "0").rglob("*") if p.is_file() and not p.name.startswith("."))
    if damage == "corrupt chunk":
        chunk.write_bytes(b"garbage" * 10)
    else:
        chunk.unlink()  # zarr reads a missing chunk as the fill value: that must not be an error
    if damage == "corrupt chunk":
        with pytest.raises(ValueError, match="cells.zarr"):
            image.data.compute()
    else:
        assert image.data.compute().shape == (4, 16, 16)
    assert not any(isinstance(v, np.memmap) for v in dict(image.data.__dask_graph__()).values())


def test_lazy_mrc_errors_name_the_file(tmp_path):
    import mrcfile

    path = tmp_path / "tilt.mrc"
    with mrcfile.new(str(path)) as f:
        f.set_data(np.arange(4 * 16 * 16, dtype=np.int16).reshape(4, 16, 16))
    image = sl.io.imread(path, lazy=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="tilt.mrc.*(shortened|changed)"):
        image.data.compute()
