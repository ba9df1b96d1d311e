"""EM readers: small files written with RosettaSciIO writers or built by hand following each format."""

import dask.array as da
import numpy as np
import pytest

from napari_stacklab.io import _em
from napari_stacklab.io._em import read_em

SCAN_AXES = [
    {"name": "y", "scale": 2.0, "offset": 10.0, "units": "nm", "navigate": True},
    {"name": "x", "scale": 2.5, "offset": -4.0, "units": "nm", "navigate": True},
    {"name": "ky", "scale": 0.1, "offset": -0.4, "units": "1/nm", "navigate": False},
    {"name": "kx", "scale": 0.1, "offset": -0.3, "units": "1/nm", "navigate": False},
]


@pytest.fixture
def scan4d(rng):
    return rng.integers(0, 4000, (3, 5, 8, 8)).astype(np.uint16)


def _signal(data, axes=SCAN_AXES, title="scan"):
    """The signal dictionary RosettaSciIO writers take (what HyperSpy would pass)."""
    axes = [dict(a, size=s) for a, s in zip(axes, data.shape)]
    return {
        "data": data,
        "axes": axes,
        "metadata": {"General": {"title": title}, "Signal": {"signal_type": "electron_diffraction"}},
        "original_metadata": {},
        "tmp_parameters": {},
        "attributes": {"_lazy": False},
        "learning_results": {},
        "models": {},
        "package_info": {"name": "napari-stacklab", "version": "test"},
    }


def _check_frame_chunks(image):
    assert isinstance(image.data, da.Array)
    for axis in image.metadata["signal_axes"]:
        assert len(image.data.chunks[axis]) == 1, "a detector frame must never be split"


def test_hspy_round_trip_keeps_scale_units_offsets_and_laziness(tmp_path, scan4d):
    pytest.importorskip("h5py")
    from rsciio.hspy import file_writer

    path = tmp_path / "scan.hspy"
    file_writer(str(path), _signal(scan4d))
    (image,) = read_em(path)
    _check_frame_chunks(image)
    assert image.shape == scan4d.shape and image.dtype == np.uint16
    assert image.scale == pytest.approx((2.0, 2.5, 0.1, 0.1))
    assert image.translate == pytest.approx((10.0, -4.0, -0.4, -0.3))
    assert image.units == ("nm", "nm", "1/nm", "1/nm")
    assert image.axis_labels == ("y", "x", "ky", "kx")
    assert image.metadata["navigation_axes"] == (0, 1) and image.metadata["signal_axes"] == (2, 3)
    assert image.metadata["signal_type"] == "electron_diffraction" and image.name == "scan"
    np.testing.assert_array_equal(image.data.compute(), scan4d)
    (eager,) = read_em(path, lazy=False)
    assert isinstance(eager.data, np.ndarray)
    np.testing.assert_array_equal(eager.data, scan4d)


def test_large_scans_are_chunked_by_whole_frames(tmp_path, rng, monkeypatch):
    pytest.importorskip("h5py")
    from rsciio.hspy import file_writer

    monkeypatch.setattr(_em, "CHUNK_BYTES", 40 * 16 * 16 * 2)  # about 40 frames per chunk
    data = rng.integers(0, 100, (12, 10, 16, 16)).astype(np.uint16)
    path = tmp_path / "big.hspy"
    file_writer(str(path), _signal(data), chunks=(5, 3, 8, 8))  # stored chunks split the frames
    (image,) = read_em(path)
    _check_frame_chunks(image)
    assert max(image.data.chunks[0]) * max(image.data.chunks[1]) <= 40
    np.testing.assert_array_equal(image.data.compute(), data)


def test_ncem_emd(tmp_path, scan4d):
    pytest.importorskip("h5py")
    from rsciio.emd import file_writer

    path = tmp_path / "two.emd"
    file_writer(str(path), _signal(scan4d))
    (image,) = read_em(path)
    _check_frame_chunks(image)
    assert image.units == ("nm", "nm", "1/nm", "1/nm")
    assert image.translate == pytest.approx((10.0, -4.0, -0.4, -0.3))
    # NCEM files do not say which axes navigate: the last two axes are the frame
    assert image.metadata["signal_axes"] == (2, 3)
    np.testing.assert_array_equal(image.data.compute(), scan4d)


def test_blockfile(tmp_path, scan4d):
    from rsciio.blockfile import file_writer

    data = (scan4d // 16).astype(np.uint8)  # blockfiles store 8-bit frames
    path = tmp_path / "scan.blo"
    file_writer(str(path), _signal(data))
    (image,) = read_em(path)
    _check_frame_chunks(image)
    assert image.shape == data.shape and image.dtype == np.uint8
    assert image.scale[:2] == pytest.approx((2.0, 2.5)) and image.units[:2] == ("nm", "nm")
    np.testing.assert_array_equal(image.data.compute(), data)


def _write_mib(path, frames, *, hdr_frames=None, scan_width=None):
    """A Merlin ``.mib`` (384-byte header + big-endian U16 frame per frame) and its ``.hdr``."""
    n, height, width = frames.shape
    with open(path, "wb") as f:
        for i, frame in enumerate(frames):
            fields = ["MQ1", f"{i + 1:06d}", "00384", "01", f"{width:04d}", f"{height:04d}", "U16", "   1x1", "01",
                      "2024-01-01 00:00:00.000000", "0.001000", "0", "0", "0", "MQ1A",
                      f"2024-01-01T00:00:{i * 0.001:09.6f}Z", "1000000ns", "12", ""]
            f.write(",".join(fields).encode().ljust(384, b"\0"))
            f.write(frame.astype(">u2").tobytes())
    if hdr_frames is not None:
        hdr = path.with_suffix(".hdr")
        hdr.write_text(
            "HDR,\t\nFrames in Acquisition (Number):\t{}\nFrames per Trigger (Number):\t{}\nEnd\t\n".format(
                hdr_frames, scan_width
            )
        )


def test_merlin_mib_by_hand(tmp_path, scan4d):
    path = tmp_path / "scan.mib"
    _write_mib(path, scan4d.reshape(-1, 8, 8), hdr_frames=15, scan_width=5)
    (image,) = read_em(path)
    _check_frame_chunks(image)
    assert image.shape == (3, 5, 8, 8) and image.dtype.kind == "u"
    assert image.axis_labels == ("scan_y", "scan_x", "ky", "kx")
    # RosettaSciIO shows Merlin frames flipped vertically (the detector's readout order)
    np.testing.assert_array_equal(image.data.compute(), scan4d[:, :, ::-1, :])


def test_truncated_mib_names_the_file(tmp_path, scan4d):
    path = tmp_path / "cut.mib"
    _write_mib(path, scan4d.reshape(-1, 8, 8), hdr_frames=15, scan_width=5)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 200])
    with pytest.raises(ValueError, match="cut.mib.*truncated"):
        read_em(path)


def test_mrc_by_mrcfile(tmp_path, rng):
    mrcfile = pytest.importorskip("mrcfile")
    stack = rng.integers(-100, 100, (4, 12, 10)).astype(np.int16)
    path = tmp_path / "tilt.mrc"
    with mrcfile.new(str(path)) as f:
        f.set_data(stack)
        f.voxel_size = (1.5, 1.5, 2.0)  # Angstrom: x, y, z
    (image,) = read_em(path)
    _check_frame_chunks(image)
    assert image.shape == stack.shape and image.dtype == np.int16
    assert image.scale[1:] == pytest.approx((0.15, 0.15)) and image.units[1:] == ("nm", "nm")
    np.testing.assert_array_equal(image.data.compute(), stack)


@pytest.mark.parametrize("suffix", [".hspy", ".emd", ".blo", ".mrc", ".dm3", ".dm4"])
def test_truncated_or_garbage_files_name_the_file(tmp_path, suffix, scan4d):
    path = tmp_path / f"broken{suffix}"
    if suffix in (".hspy", ".emd"):
        pytest.importorskip("h5py")
        writer = __import__(f"rsciio.{ {'.hspy': 'hspy', '.emd': 'emd'}[suffix]}", fromlist=["file_writer"])
        writer.file_writer(str(path), _signal(scan4d))
        path.write_bytes(path.read_bytes()[:1500])
    elif suffix == ".blo":
        from rsciio.blockfile import file_writer

        file_writer(str(path), _signal((scan4d // 16).astype(np.uint8)))
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.write_bytes(b"this is not an electron microscopy file" * 10)
    with pytest.raises(ValueError, match=f"broken\\{suffix}"):
        images = read_em(path)
        for image in images:  # a reader that only fails on access must fail here
            image.data.compute()


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not an electron-microscopy file"):
        read_em(tmp_path / "a.xyz")
    with pytest.raises(FileNotFoundError, match="nothere.dm4"):
        read_em(tmp_path / "nothere.dm4")
