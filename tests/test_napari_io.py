"""Reader, writer and sample data through a real napari viewer and the plugin manifest."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import napari_stacklab as sl


@pytest.fixture
def hyperstack(tmp_path):
    path = tmp_path / "cells.tif"
    values = np.random.default_rng(0).integers(0, 4000, (4, 3, 40, 50)).astype(np.uint16)
    tifffile.imwrite(
        path, values, imagej=True, resolution=(1 / 0.2, 1 / 0.2),
        metadata={"axes": "TZYX", "spacing": 0.8, "unit": "um", "finterval": 5.0},
    )
    return path, values


def test_viewer_opens_tiff_lazily_with_physical_frame(make_napari_viewer, hyperstack, monkeypatch):
    path, values = hyperstack
    monkeypatch.setattr(sl.io, "LAZY_THRESHOLD_BYTES", 1024)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-stacklab")
    assert layer.name == "cells"
    np.testing.assert_allclose(layer.scale, (5.0, 0.8, 0.2, 0.2))
    assert [str(u) for u in layer.units] == ["second", "micrometer", "micrometer", "micrometer"]
    assert tuple(layer.axis_labels) == ("t", "z", "y", "x")
    assert sl._backend.is_dask(layer.data)
    assert layer.data.chunks[-2:] == ((40,), (50,))
    viewer.dims.set_point(0, 2 * 5.0)
    np.testing.assert_array_equal(np.asarray(layer.data[2, 0]), values[2, 0])
    assert layer.metadata["source"] == str(path)


def test_viewer_save_refuses_source_and_writes_elsewhere(make_napari_viewer, hyperstack, tmp_path):
    path, values = hyperstack
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-stacklab")
    with pytest.raises(Exception, match="read from"):
        layer.save(str(path), plugin="napari-stacklab")
    out = tmp_path / "copy.tif"
    layer.save(str(out), plugin="napari-stacklab")
    back = sl.io.imread(out)
    np.testing.assert_array_equal(back.data, values)
    assert back.scale == pytest.approx((5.0, 0.8, 0.2, 0.2)) and back.units == ("s", "um", "um", "um")
    np.testing.assert_array_equal(tifffile.imread(path), values)  # source untouched


@pytest.mark.parametrize(
    ("key", "shape", "labels"),
    [
        ("timelapse", (24, 256, 256), ("t", "y", "x")),
        ("stem4d", (32, 32, 64, 64), ("scan_y", "scan_x", "ky", "kx")),
        ("hologram", (256, 256), ("y", "x")),
    ],
)
def test_open_sample(make_napari_viewer, key, shape, labels):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-stacklab", key)
    (layer,) = layers
    assert layer.data.shape == shape and tuple(layer.axis_labels) == labels
    assert layer.name == key and layer.metadata["seed"] == 0
