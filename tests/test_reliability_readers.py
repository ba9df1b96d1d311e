"""Readers under bad input: every case gives None from the napari hook or a clear error naming the file.

Each bad file is generated here (tests/_badfiles.py). The whole set is also read
in a subprocess with a wall-clock limit (a hang fails instead of blocking the
suite) while its peak resident memory is measured: no header may make a reader
allocate what it claims (10 GB, 2**120 bytes, ...).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
import zlib

import numpy as np
import pytest
import tifffile
import zarr

import _badfiles as bad
import napari_stacklab as sl
from napari_stacklab._napari import reader
from napari_stacklab.io import EagerSizeError, MetadataWarning

# name -> bytes; every one must be refused with an error naming the file
_VALID_TIFF = bad.valid_tiff()
_VALID_ZLIB = bad.valid_tiff(compression="zlib")
ERRORS = {
    "empty.tif": b"",
    "empty.npy": b"",
    "random.tif": bad.random_bytes(),
    "random.npy": bad.random_bytes(seed=1),
    "png_named.tif": bad.png(),
    "tiff_named.npy": _VALID_TIFF,
    "npy_named.tif": bad.npy(np.zeros((4, 4))),
    **{f"cut_in_{where}.tif": data for where, data in bad.truncations(_VALID_TIFF).items()},
    **{f"zlib_cut_in_{where}.tif": data for where, data in bad.truncations(_VALID_ZLIB).items()},
    "dims_100000.tif": bad.tiff_huge_dims(),
    "dims_100000_deflate.tif": bad.tiff_huge_dims_compressed(),
    "dims_overflow.tif": bad.tiff_overflowing_dims(),
    "zero_width.tif": bad.tiff_zero_width(),
    "entries_65535.tif": bad.tiff_huge_entry_count(),
    "tag_count_2e30.tif": bad.tiff_huge_tag_count(),
    "offset_past_eof.tif": bad.tiff_offset_past_eof(),
    "corrupt_deflate.tif": bad.tiff_corrupt_deflate(),
    "unknown_compression.tif": bad.tiff_unknown_compression(),
    "npy_100000.npy": bad.npy_header((100_000, 100_000), payload=bytes(100)),
    "npy_overflow.npy": bad.npy_header((2**40, 2**40, 2**40), payload=bytes(100)),
    "npy_negative.npy": bad.npy_header((-1, 16), payload=bytes(64)),
    "npy_zero_axis.npy": bad.npy_header((0, 16)),
    "npy_bad_descr.npy": bad.npy_header((4, 4), descr="zz", payload=bytes(32)),
    "npy_pickled.npy": bad.npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True),
}
#: cases the napari hook can already refuse by their name and first bytes
SNIFFED = {"empty.tif", "empty.npy", "random.tif", "random.npy", "png_named.tif", "tiff_named.npy", "npy_named.tif"}

# name -> (bytes, expected shape); these load, whatever is wrong in their metadata
_Z3 = dict(shape=(3, 16, 16), dtype=np.uint8, photometric=None)
LOADS = {
    "ifd_loops_to_itself.tif": (bad.tiff_circular_ifd(self_loop=True), (16, 16)),
    "ifd_loop_of_two.tif": (bad.tiff_circular_ifd(self_loop=False), (2, 16, 16)),
    "resolution_1_over_0.tif": (bad.tiff_resolution((1, 0), (1, 0)), (16, 16)),
    "resolution_0_over_0.tif": (bad.tiff_resolution((0, 0), (0, 0)), (16, 16)),
    "resolution_negative.tif": (bad.tiff_resolution((-4, 1), (-4, 1), kind=bad.SRATIONAL), (16, 16)),
    "imagej_spacing_nan.tif": (
        bad.valid_tiff(**_Z3, imagej=True, metadata=dict(axes="ZYX", spacing="nan", unit="micron")),
        (3, 16, 16),
    ),
    "imagej_spacing_negative.tif": (
        bad.valid_tiff(**_Z3, imagej=True, metadata=dict(axes="ZYX", spacing=-2, unit="um")),
        (3, 16, 16),
    ),
    "imagej_spacing_text.tif": (
        bad.valid_tiff(**_Z3, imagej=True, metadata=dict(axes="ZYX", spacing="wide", unit="um")),
        (3, 16, 16),
    ),
    "imagej_garbage.tif": (
        bad.tiff_description(bad.imagej_description(images="abc", slices=-5, spacing="inf", finterval=-1)),
        (16, 16),
    ),
    "ome_size_nan_negative.tif": (bad.tiff_description(bad.ome_description('PhysicalSizeX="NaN" PhysicalSizeY="-0.5"')), (16, 16)),
    "ome_size_inf_text.tif": (bad.tiff_description(bad.ome_description('PhysicalSizeX="inf" PhysicalSizeY="abc"')), (16, 16)),
    "ome_cut_xml.tif": (bad.tiff_description(bad.ome_description()[:-30]), (16, 16)),
    "ome_wrong_size.tif": (bad.tiff_description(bad.ome_description(size=(1000, 1000))), (16, 16)),
}
#: loads whose metadata is known bad: a MetadataWarning must say what was dropped
WARNS = {name for name in LOADS if not name.startswith(("ifd_", "ome_cut", "ome_wrong"))}


def _write(folder, name: str, data: bytes) -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _read_plane(path: str, lazy: bool):
    """imread, then touch one plane (lazy errors surface only when data are read)."""
    image = sl.io.imread(path, lazy=lazy)
    plane = np.asarray(image.data[(0,) * (image.ndim - 2)])
    return image, plane


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
@pytest.mark.parametrize("name", sorted(ERRORS))
def test_bad_file_is_refused_naming_the_file(tmp_path, name, lazy):
    path = _write(tmp_path, name, ERRORS[name])
    hook = reader.napari_get_reader(path)  # must not raise
    if name in SNIFFED:
        assert hook is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)  # every handle closed on failure
        with pytest.raises((ValueError, OSError)) as info:
            _read_plane(path, lazy)
    assert path in str(info.value), f"error does not name the file: {info.value!r}"
    assert not isinstance(info.value, (MemoryError, RecursionError))


@pytest.mark.parametrize("name", sorted(LOADS))
def test_bad_metadata_still_loads_and_is_dropped_with_a_warning(tmp_path, name):
    data, shape = LOADS[name]
    path = _write(tmp_path, name, data)
    assert reader.napari_get_reader(path) is reader.read_layers
    for lazy in (False, True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image, plane = _read_plane(path, lazy)
        assert image.shape == shape and plane.shape == shape[-2:]
        assert all(np.isfinite(s) and s > 0 for s in image.scale), image.scale
        assert all(np.isfinite(t) for t in image.translate)
        assert image.units == ("pixel",) * len(shape) or "imagej_spacing" in name
        messages = [str(w.message) for w in caught if issubclass(w.category, MetadataWarning)]
        if name in WARNS:
            assert messages and all(path in m for m in messages), [str(w.message) for w in caught]
    # the napari layer of such a file is valid (what napari would get)
    ((layer_data, kwargs, kind),) = reader.read_layers(path)
    assert kind == "image" and all(s > 0 for s in kwargs["scale"])


def test_imagej_bad_z_spacing_keeps_xy_pixel_size(tmp_path):
    metadata = dict(axes="ZYX", spacing=float("nan"), unit="micron")
    data = bad.valid_tiff(shape=(3, 16, 16), dtype=np.uint8, imagej=True, metadata=metadata, resolution=(4.0, 4.0))
    path = _write(tmp_path, "z_nan.tif", data)
    with pytest.warns(MetadataWarning, match="pixel size nan of axis 'z'"):
        image = sl.io.imread(path)
    assert image.scale == (1.0, 0.25, 0.25) and image.units == ("pixel", "um", "um")


def test_bad_files_in_a_subprocess_finish_fast_without_allocating_what_headers_claim(tmp_path):
    """All refused files read (eager and lazy) in one child process: < 60 s, peak RSS growth < 150 MB."""
    paths = [_write(tmp_path, name, data) for name, data in ERRORS.items()]
    paths += [_write(tmp_path, name, data) for name, (data, _) in LOADS.items()]
    paths.append(_write(tmp_path, "bomb_256MiB.tif", _deflate_bomb()))
    valid = _write(tmp_path, "valid.tif", _VALID_ZLIB)
    script = textwrap.dedent(
        """
        import json, resource, sys, time, warnings
        import numpy as np
        import napari_stacklab as sl
        from napari_stacklab._napari import reader
        warnings.simplefilter("ignore")
        paths, valid = json.loads(sys.argv[1]), sys.argv[2]
        def touch(path, lazy):
            image = sl.io.imread(path, lazy=lazy)
            np.asarray(image.data[(0,) * (image.ndim - 2)])
        for lazy in (False, True, None):  # warm up imports and caches on a valid file
            touch(valid, lazy)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results = []
        for path in paths:
            for lazy in (False, True, None):
                start = time.perf_counter()
                reader.napari_get_reader(path)
                try:
                    touch(path, lazy)
                    outcome = "ok"
                except (ValueError, OSError) as exc:
                    outcome = "named" if path in str(exc) else "unnamed: " + repr(exc)
                except BaseException as exc:
                    outcome = "crash: " + repr(exc)
                results.append([path, lazy, outcome, time.perf_counter() - start])
        growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(json.dumps({"results": results, "growth_kb": growth_kb}))
        """
    )
    env = {**os.environ, "STACKLAB_MAX_EAGER_BYTES": str(64 * 2**20)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(paths), valid],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    bad_outcomes = [r for r in report["results"] if r[2] not in ("ok", "named")]
    assert not bad_outcomes, bad_outcomes
    refused = {os.path.basename(r[0]) for r in report["results"] if r[2] == "named"}
    assert set(ERRORS) | {"bomb_256MiB.tif"} <= refused
    slow = [r for r in report["results"] if r[3] > 10]
    assert not slow, slow
    assert report["growth_kb"] < 150 * 1024, f"peak RSS grew by {report['growth_kb'] / 1024:.0f} MB"
    assert time.perf_counter() - start < 90


def _deflate_bomb(side: int = 16384) -> bytes:
    """A 16384 x 16384 uint8 page (256 MiB decoded) stored as a ~260 kB deflate strip."""
    compressor = zlib.compressobj(9)
    row_block = bytes(side * 256)
    strip = b"".join(compressor.compress(row_block) for _ in range(side // 256)) + compressor.flush()
    return bad.tiff(strip, width=side, height=side, compression=8)


# ---------------------------------------------------------------- the eager size cap


def test_eager_cap_refuses_naming_file_and_setting(tmp_path, monkeypatch):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((4, 64, 64), np.uint16), compression="zlib", photometric="minisblack")
    monkeypatch.setattr(sl.io, "MAX_EAGER_BYTES", 10_000)
    with pytest.raises(EagerSizeError, match="MAX_EAGER_BYTES") as info:
        sl.io.imread(path, lazy=False)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)
    # lazy=None: small on disk, big in memory -> opened lazily, pages decoded one at a time
    image = sl.io.imread(path)
    assert sl._backend.is_dask(image.data) and image.data.shape == (4, 64, 64)
    np.testing.assert_array_equal(image.data[1].compute(), 0)
    # one decoded page larger than the cap: refused even lazily
    monkeypatch.setattr(sl.io, "MAX_EAGER_BYTES", 1000)
    with pytest.raises(EagerSizeError, match="one compressed page"):
        sl.io.imread(path, lazy=True)
    monkeypatch.setattr(sl.io, "MAX_EAGER_BYTES", None)
    assert sl.io.imread(path, lazy=False).data.shape == (4, 64, 64)


@pytest.mark.parametrize("kind", ["npy", "zarr", "folder"])
def test_eager_cap_applies_to_every_reader(tmp_path, monkeypatch, kind):
    array = np.ones((3, 32, 32), np.float32)
    if kind == "npy":
        path = tmp_path / "a.npy"
        np.save(path, array)
    elif kind == "zarr":
        path = tmp_path / "a.zarr"
        zarr.create_array(path, shape=array.shape, dtype=array.dtype, chunks=(1, 32, 32))[...] = array
    else:
        path = tmp_path / "folder"
        path.mkdir()
        for i in range(3):
            tifffile.imwrite(path / f"p{i}.tif", array[i])
    monkeypatch.setattr(sl.io, "MAX_EAGER_BYTES", array.nbytes - 1)
    with pytest.raises(EagerSizeError, match="MAX_EAGER_BYTES"):
        sl.io.imread(path, lazy=False)
    lazy = sl.io.imread(path, lazy=True)
    np.testing.assert_array_equal(lazy.data.compute(), array)
    monkeypatch.setattr(sl.io, "MAX_EAGER_BYTES", array.nbytes)
    np.testing.assert_array_equal(sl.io.imread(path, lazy=False).data, array)


def test_eager_cap_from_environment():
    code = "import napari_stacklab as sl; print(sl.io.MAX_EAGER_BYTES)"
    env = {**os.environ, "STACKLAB_MAX_EAGER_BYTES": "123456"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "123456"
    env["STACKLAB_MAX_EAGER_BYTES"] = "not a number"  # ignored, never breaks the import
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert int(out.stdout.strip()) > 2**20


# ---------------------------------------------------------------- stacks, and files changing under a lazy array


@pytest.mark.parametrize("odd", ["shape", "dtype", "corrupt"])
def test_stack_with_an_odd_file_names_it(tmp_path, odd):
    for i in range(3):
        tifffile.imwrite(tmp_path / f"p{i}.tif", np.full((8, 8), i, np.uint8))
    odd_path = tmp_path / "p1.tif"
    if odd == "shape":
        tifffile.imwrite(odd_path, np.zeros((8, 9), np.uint8))
    elif odd == "dtype":
        tifffile.imwrite(odd_path, np.zeros((8, 8), np.uint16))
    else:
        odd_path.write_bytes(bad.random_bytes(300))
    for lazy in (False, True):
        with pytest.raises(ValueError, match="p1.tif"):
            sl.io.imread(tmp_path, lazy=lazy)


def _lazy_sources(tmp_path):
    """name -> (path, a function that writes the same data, readers that give dask)."""
    stack = np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16)
    npy_path = tmp_path / "a.npy"
    np.save(npy_path, stack)
    raw_path = tmp_path / "raw.tif"
    tifffile.imwrite(raw_path, stack)
    zlib_path = tmp_path / "z.tif"
    tifffile.imwrite(zlib_path, stack, compression="zlib")
    return {"npy (memmap)": npy_path, "tiff (memmap)": raw_path, "tiff (paged)": zlib_path}


@pytest.mark.parametrize("change", ["deleted", "truncated", "rewritten"])
@pytest.mark.parametrize("source", ["npy (memmap)", "tiff (memmap)", "tiff (paged)"])
def test_file_changed_after_lazy_open_is_an_error_naming_it(tmp_path, source, change):
    path = _lazy_sources(tmp_path)[source]
    image = sl.io.imread(path, lazy=True)
    assert int(image.data[0, 0, 1].compute()) == 1
    data = path.read_bytes()
    if change == "deleted":
        path.unlink()
    elif change == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # same size, other content, later modification time
        path.write_bytes(data[:-256] + bytes(256))
        stat = os.stat(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises((ValueError, OSError)) as info:
        image.data[3].compute()
    assert str(path) in str(info.value)
    assert "deleted" in str(info.value) or "changed" in str(info.value)


def test_stack_file_replaced_after_lazy_open(tmp_path):
    for i in range(3):
        tifffile.imwrite(tmp_path / f"p{i}.tif", np.full((8, 8), i, np.uint8))
    image = sl.io.imread(tmp_path, lazy=True)
    np.testing.assert_array_equal(image.data[2].compute(), 2)
    tifffile.imwrite(tmp_path / "p2.tif", np.zeros((4, 4), np.uint8))
    stat = os.stat(tmp_path / "p2.tif")
    os.utime(tmp_path / "p2.tif", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(ValueError, match="p2.tif.*changed"):
        image.data[2].compute()


def test_get_reader_never_raises_on_any_bad_file(tmp_path):
    for name, data in ERRORS.items():
        path = _write(tmp_path, name, data)
        assert reader.napari_get_reader(path) in (None, reader.read_layers)
        assert reader.napari_get_reader([path]) in (None, reader.read_layers)
    assert reader.napari_get_reader(str(tmp_path)) in (None, reader.read_layers)
