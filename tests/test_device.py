"""Device choice and CPU fallback. The ``gpu``-marked tests run only with CuPy and a CUDA device."""

import warnings

import dask.array as da
import numpy as np
import pytest

import napari_stacklab as sl
from napari_stacklab import _backend

no_gpu = pytest.mark.skipif(_backend.gpu_available(), reason="checks the behaviour without a GPU")


@no_gpu
def test_gpu_request_without_gpu_falls_back_visibly(camera_stack):
    with pytest.warns(_backend.GPUFallbackWarning, match="running on the CPU"):
        out = sl.filters.gaussian(camera_stack, sigma=2, device="gpu")
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, sl.filters.gaussian(camera_stack, sigma=2))


@no_gpu
def test_auto_without_gpu_is_the_cpu_silently(camera_stack):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sl.filters.median(camera_stack, device="auto")
    np.testing.assert_array_equal(out, sl.filters.median(camera_stack))


def test_device_cpu_keeps_dask_lazy(camera_stack):
    lazy = da.from_array(camera_stack, chunks=(1, 48, 64))
    out = sl.filters.gaussian(lazy, device="cpu")
    assert isinstance(out, da.Array) and isinstance(out._meta, np.ndarray)


def test_unknown_device_is_refused(camera_stack):
    with pytest.raises(ValueError, match="device must be one of"):
        sl.filters.gaussian(camera_stack, device="tpu")


def test_recipe_and_cli_take_a_device(camera_stack):
    rec = sl.Recipe(steps=[{"op": "gaussian", "params": {"sigma": 1}}])
    np.testing.assert_array_equal(rec.run(camera_stack, device="cpu"), sl.filters.gaussian(camera_stack, sigma=1))
    from napari_stacklab.cli import build_parser

    assert build_parser().parse_args(["run", "r.yaml", "a.tif", "-o", "out", "--device", "gpu"]).device == "gpu"


@pytest.mark.gpu
@pytest.mark.parametrize("name, params", [("gaussian", {"sigma": 2}), ("median", {"size": 5}),
                                          ("threshold", {"method": "otsu"})])
def test_gpu_equals_cpu(camera_stack, name, params):
    import cupy

    op = sl.catalog.get(name)
    cpu = op.func(camera_stack, **params)
    gpu = op.func(cupy.asarray(camera_stack), **params)
    assert isinstance(gpu, cupy.ndarray)
    np.testing.assert_allclose(gpu.get(), cpu, rtol=1e-4, atol=1e-3)


@pytest.mark.gpu
def test_dask_graph_keeps_cupy_chunks(camera_stack):
    import cupy

    lazy = da.from_array(camera_stack, chunks=(1, 48, 64))
    out = sl.filters.gaussian(lazy, sigma=2, device="gpu")
    assert isinstance(out._meta, cupy.ndarray)
    np.testing.assert_allclose(_backend.to_numpy(out).compute(), sl.filters.gaussian(camera_stack, sigma=2),
                               rtol=1e-4, atol=1e-3)
