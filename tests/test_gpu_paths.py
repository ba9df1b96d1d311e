"""Every registry operation on GPU data: its result, where the result lives, and the CPU fallback.

Each test runs in two settings:

- ``simulated``: ``tests/_simcupy.py``, a host-simulated CuPy + cuCIM with the
  API surface of the real libraries. It runs everywhere (CI has no GPU) and
  checks what a CPU-only run never does: that no GPU code path turns device
  data into NumPy implicitly, mixes host and device arrays, or calls something
  CuPy/cuCIM lacks; that results stay on the device (or come back with a
  visible fallback notice); and that the values equal the CPU path's exactly,
  since the same host libraries compute them underneath.
- ``cuda``: real CuPy on a CUDA device, marked ``gpu`` (``tox -e gpu``); skipped
  cleanly without one. Values are compared with the tolerances of
  :data:`CUDA_TOLERANCE` (float32 kernels, different summation orders).

The simulation says nothing about speed or CUDA numerics; those need the
``cuda`` run and ``benchmarks/bench_gpu.py``.
"""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
from _opcases import BASE, minimal_image, minimal_params
from _simcupy import real_gpu_present, simulated_gpu

from napari_stacklab import _backend, catalog

OPS = catalog.operations()

#: operations whose GPU library (cuCIM 26.10) lacks the function they need -> the function named in the
#: fallback notice. The test fails if one of them stops falling back, or another one starts, so this
#: list stays the true list of CPU-only operations (it is also in docs/performance.md).
CPU_ONLY = {
    "bilateral": "denoise_bilateral",
    "watershed": "watershed",
    "skeletonize": "skeletonize",
    "estimate_noise": "estimate_sigma",
    "nl_means": "estimate_sigma",
    "wavelet": "estimate_sigma",
    "bm3d": "estimate_sigma",
    "unwrap": "unwrap_phase",  # method="exact"; method="fast" runs on the GPU (VARIANTS)
    "inpaint": "inpaint_biharmonic",
    "remove_background": "PyMatting",
    "stitch_grid": "stitching runs on the CPU",  # registration and fusion of tiles are host code (docs/user/stitch.md)
}
#: outputs that are small and returned on the host whatever the device (coordinates, a number, a table)
HOST_OUTPUTS = {"points", "value", "table"}
#: parameter sets whose GPU code differs from the defaults' (each must run on the device)
VARIANTS = {
    "unwrap": {"method": "fast"},
    "threshold": {"method": "li"},
    "resize": {"output_shape": (30, 20)},
    "rotate": {"angle": 33.0},
}
#: operations that differ from run to run on the CPU already -> tolerance as a fraction of the value range
#: (the bm3d package is not bit-reproducible; tests/test_denoise.py uses the same bound)
NOT_REPRODUCIBLE = {"bm3d": 1e-3}
#: tolerances for real CUDA against the CPU, by output kind (rtol, atol as a fraction of the value range)
CUDA_TOLERANCE = {"image": (1e-4, 1e-4), "images": (1e-4, 1e-4), "value": (1e-3, 0.0)}
#: with real CUDA, masks may differ in this fraction of pixels (values exactly at a float32 threshold)
CUDA_MASK_MISMATCH = 1e-3


@pytest.fixture(autouse=True)
def _same_host_kernels(monkeypatch):
    """The simulated GPU runs SciPy and scikit-image underneath: the CPU path it is compared with must too
    (no OpenCV acceleration of registration's resampling and smoothing)."""
    monkeypatch.setattr(_backend, "OPENCV_ACCELERATION", False)


def _image(op):
    if op.name == "regionprops_table":
        from skimage.measure import label

        return label(BASE > 40).astype(np.int32)
    return minimal_image(op, "float32")


@pytest.fixture(params=["simulated", pytest.param("cuda", marks=pytest.mark.gpu)])
def gpu(request):
    """The CuPy module of the setting; inside it ``device="gpu"`` is available."""
    if request.param == "cuda":
        import cupy

        pytest.importorskip("cucim.skimage", reason="the expectations are for CuPy with cuCIM (the `gpu` extra)")
        yield cupy
        return
    if real_gpu_present():
        pytest.skip("a real GPU is here: the `cuda` setting covers this")
    with simulated_gpu(cucim=True) as cupy:
        yield cupy


def _leaves(result) -> dict:
    return dict(result) if isinstance(result, dict) else {"": result}


def _host(value):
    if _backend.is_dask(value):
        value = value.compute()
    if _backend.is_cupy(value):
        return value.get()
    if isinstance(value, dict):
        return {k: _host(v) for k, v in value.items()}
    return value


def _fallbacks(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, _backend.GPUFallbackWarning)]


def _assert_same(op, got, expected, cuda: bool) -> None:
    got, expected = _leaves(_host(got)), _leaves(expected)
    assert got.keys() == expected.keys(), f"{op.name}: outputs {sorted(got)} on the GPU, {sorted(expected)} on the CPU"
    for key, want in expected.items():
        have = got[key]
        if isinstance(want, dict):  # a table: column by column
            _assert_same(op, have, want, cuda)
            continue
        have, want = np.asarray(have), np.asarray(want)
        assert have.shape == want.shape and have.dtype == want.dtype, f"{op.name}[{key}]"
        if op.name in NOT_REPRODUCIBLE:
            np.testing.assert_allclose(have, want, atol=NOT_REPRODUCIBLE[op.name] * np.ptp(want), err_msg=op.name)
        elif not cuda:
            np.testing.assert_array_equal(have, want, err_msg=f"{op.name}[{key}]")
        elif op.output == "labels":
            _assert_same_partition(have, want, op.name)
        elif want.dtype == bool:
            assert np.mean(have != want) <= CUDA_MASK_MISMATCH, f"{op.name}[{key}]"
        else:
            rtol, atol = CUDA_TOLERANCE.get(op.output, (1e-4, 1e-4))
            span = float(np.nanmax(np.abs(want))) if want.size else 0.0
            np.testing.assert_allclose(have, want, rtol=rtol, atol=atol * max(span, 1.0), err_msg=f"{op.name}[{key}]")


def _assert_same_partition(have, want, name) -> None:
    """Labels may be numbered differently on the GPU; the regions must be the same."""
    assert np.array_equal(have == 0, want == 0), f"{name}: background differs"
    pairs = np.unique(np.stack([have.ravel(), want.ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1], f"{name}: regions differ"


def _cases():
    for op in OPS:
        yield pytest.param(op, {}, id=op.name)
        if op.name in VARIANTS:
            yield pytest.param(op, VARIANTS[op.name], id=f"{op.name}-{'-'.join(map(str, VARIANTS[op.name].values()))}")


@pytest.mark.parametrize("op, variant", list(_cases()))
def test_operation_on_the_gpu_equals_the_cpu(op, variant, gpu):
    image = _image(op)
    params = {**minimal_params(op, image), **variant}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = op.func(image, device="cpu", **params)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = op.func(image, device="gpu", **params)
    notices = _fallbacks(record)
    if op.name in CPU_ONLY and not variant:
        assert len(notices) == 1 and CPU_ONLY[op.name] in notices[0], f"{op.name}: expected one fallback notice"
        assert not any(_backend.on_gpu(v) for v in _leaves(result).values())
    else:
        assert not notices, f"{op.name} fell back to the CPU: {notices}"
        for key, leaf in _leaves(result).items():
            if op.output in HOST_OUTPUTS:
                assert not _backend.on_gpu(leaf), f"{op.name}[{key}]: small results come back to the host"
            else:
                assert _backend.on_gpu(leaf), f"{op.name}[{key}] is not on the GPU: {type(leaf)}"
    _assert_same(op, result, expected, cuda=not _is_sim(gpu))


def _is_sim(module) -> bool:
    return module.__version__.endswith("+simulated")


def _frames(image, op):
    lead = image.ndim - (op.frame_ndim if op.lifted else image.ndim)
    return da.from_array(image, chunks=(1,) * lead + image.shape[lead:])


@pytest.mark.parametrize("op", [op for op in OPS if op.output not in HOST_OUTPUTS], ids=lambda op: op.name)
def test_lazy_gpu_graph_keeps_device_chunks_or_falls_back_before_computing(op, gpu):
    image = _image(op)
    params = minimal_params(op, image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _host(op.func(_frames(image, op), device="cpu", **params))  # the same graph on the CPU
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = op.func(_frames(image, op), device="gpu", **params)
    notices = _fallbacks(record)  # only those raised while the graph was built: before any compute
    if op.name in CPU_ONLY:
        assert len(notices) == 1 and CPU_ONLY[op.name] in notices[0]
    else:
        assert not notices, f"{op.name} fell back: {notices}"
        for key, leaf in _leaves(result).items():
            assert _backend.on_gpu(leaf), f"{op.name}[{key}]: {type(_backend.chunk_type(leaf))} chunks"
            if _backend.is_dask(leaf):
                assert _backend.is_cupy(leaf.compute()), f"{op.name}[{key}]: the meta says GPU, the chunks do not"
    _assert_same(op, result, expected, cuda=not _is_sim(gpu))


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_without_cucim_each_operation_runs_on_cupy_or_falls_back_visibly(op):
    if real_gpu_present():
        pytest.skip("a real GPU is here: the `cuda` setting covers this")
    image = _image(op)
    params = minimal_params(op, image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = op.func(image, device="cpu", **params)
    with simulated_gpu(cucim=False), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = op.func(image, device="gpu", **params)
        notices = _fallbacks(record)
        on_gpu = [_backend.on_gpu(v) for v in _leaves(result).values()]
        if notices:
            assert len(notices) == 1 and ("install cuCIM" in notices[0] or op.name in CPU_ONLY), notices
            assert not any(on_gpu)
        elif op.output not in HOST_OUTPUTS:
            assert all(on_gpu), f"{op.name}: neither on the GPU nor a fallback notice"
        _assert_same(op, result, expected, cuda=False)


def test_out_of_memory_falls_back_to_the_cpu_with_a_notice(camera_stack):
    with simulated_gpu() as cp:
        ndi = __import__("cupyx.scipy.ndimage", fromlist=["x"])

        def no_memory(*args, **kwargs):
            raise cp.cuda.memory.OutOfMemoryError("out of memory allocating 2,147,483,648 bytes")

        ndi.gaussian_filter = no_memory
        with pytest.warns(_backend.GPUFallbackWarning, match="out of memory.*running on the CPU"):
            out = catalog.get("gaussian").func(camera_stack, sigma=2, device="gpu")
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, catalog.get("gaussian").func(camera_stack, sigma=2))


def test_out_of_memory_in_one_block_of_a_lazy_graph_recomputes_that_block_on_the_cpu(camera_stack):
    """The probe before building a graph is tiny; a real block can still run out of memory when computed."""
    lazy = da.from_array(camera_stack, chunks=(1, 96, 128))
    with simulated_gpu() as cp:
        ndi = __import__("cupyx.scipy.ndimage", fromlist=["x"])
        real = ndi.gaussian_filter
        calls = []

        def big_blocks_run_out(frame, *args, **kwargs):
            calls.append(frame.shape)
            if frame.size > 2 * 16 * 16:  # more than the probe's (2, 16, 16)
                raise cp.cuda.memory.OutOfMemoryError("out of memory allocating 1,073,741,824 bytes")
            return real(frame, *args, **kwargs)

        ndi.gaussian_filter = big_blocks_run_out
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # building the graph: the tiny probe passes, no notice yet
            out = catalog.get("gaussian").func(lazy, sigma=2, device="gpu")
        with pytest.warns(_backend.GPUFallbackWarning, match="did not fit on the GPU.*computed on the CPU"):
            computed = out.compute(scheduler="sync")
        assert _backend.is_cupy(computed)
        np.testing.assert_array_equal(computed.get(), catalog.get("gaussian").func(camera_stack, sigma=2))
    assert calls[0] == (2, 16, 16) and len(calls) == 1 + len(camera_stack)


def test_image_parameters_follow_the_image_to_the_gpu(camera_stack):
    """A reference given as a NumPy array is moved to the device of the image it is used with."""
    with simulated_gpu() as cp:
        reference = camera_stack[0]
        psnr = catalog.get("psnr").func(cp.asarray(camera_stack[0] + 1), reference=reference)
        matched = catalog.get("match_histograms").func(camera_stack, reference=cp.asarray(reference), device="cpu")
    assert isinstance(matched, np.ndarray)
    assert np.isfinite(float(psnr))


def test_the_simulation_refuses_what_cupy_refuses():
    """The checks above are only as good as the simulation; it must fail where real CuPy fails."""
    import scipy.ndimage

    with simulated_gpu() as cp:
        device = cp.asarray(np.ones((4, 4), np.float32))
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
            np.asarray(device)
        with pytest.raises(TypeError, match="Implicit conversion"):
            scipy.ndimage.gaussian_filter(device, 1)
        with pytest.raises(TypeError, match="numpy.ndarray"):
            device + np.ones((4, 4))
        with pytest.raises(TypeError, match="numpy.ndarray"):
            cp.stack([device, np.ones((4, 4))])
        with pytest.raises(AttributeError):
            cp.ndimage_does_not_exist  # noqa: B018 - the attribute access is the test
        ndi = __import__("cupyx.scipy.ndimage", fromlist=["x"])
        with pytest.raises(TypeError, match="unexpected keyword"):
            ndi.gaussian_filter(device, 1, radius_typo=3)
        assert isinstance(cp.sum(device), cp.ndarray) and float(cp.sum(device)) == 16.0
        np.testing.assert_array_equal(device.get(), np.ones((4, 4)))
        lazy = da.from_array(device, chunks=2)
        assert isinstance(lazy._meta, cp.ndarray) and isinstance((lazy * 2).compute(), cp.ndarray)


def test_the_gpu_benchmark_runs_every_case_on_the_simulated_device(capsys):
    """``benchmarks/bench_gpu.py`` must work the first time it meets a GPU: every case runs and the GPU
    results match the CPU's (exactly here, where the same host code computes both). It times nothing useful."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "bench_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with simulated_gpu(), warnings.catch_warnings():
        warnings.simplefilter("error", _backend.GPUFallbackWarning)  # every benchmarked case has GPU code
        assert bench.main(["--tiny", "--repeat", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "simulated GPU" in lines[0]
    rows = lines[2:]
    assert [row[:34].strip() for row in rows] == [case[0] for case in bench._cases("tiny", np.random.default_rng(0))]
    assert all(float(row.split()[-1]) == 0.0 for row in rows), rows


def _functions():
    """The public image functions outside the registry, each with a small valid call."""
    import napari_stacklab as sl

    hologram = sl.datasets.hologram(size=64).data.astype(np.float32)
    stack = sl.datasets.timelapse(frames=4, size=64).data.astype(np.float32)
    fixed, moving = stack[0], stack[2]
    shift = sl.register.Transform(matrix=np.array([[1.0, 0, 1.5], [0, 1.0, -2.0], [0, 0, 1]]), model="translation")
    return {
        "ecc": lambda device: sl.register.ecc(fixed, moving, model="translation", device=device).matrix,
        "phase_correlation": lambda device: sl.register.phase_correlation(fixed, moving, device=device).matrix,
        "similarity_score": lambda device: sl.register.similarity_score(fixed, moving, device=device),
        "drift": lambda device: sl.register.drift(stack, device=device),
        "stack_transforms": lambda device: np.stack([t.matrix for t in sl.register.stack_transforms(stack, device=device)]),
        "warp": lambda device: sl.register.warp(moving, shift, device=device),
        "find_sideband": lambda device: np.asarray(sl.phase.find_sideband(hologram, device=device)),
        "hologram_wave": lambda device: sl.phase.hologram_wave(hologram, device=device),
        "line_profile": lambda device: sl.preprocess.line_profile(fixed, (5, 5), (50, 40), linewidth=3, device=device),
    }


@pytest.mark.parametrize("name", list(_functions()))
def test_public_functions_take_a_device_and_compute_there(name, gpu):
    """Registration, holography and profiles outside the registry: ``device="gpu"`` runs their GPU code."""
    call = _functions()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = call("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", _backend.GPUFallbackWarning)
        result = call("gpu")
    if isinstance(expected, np.ndarray) and expected.ndim >= 2 and name not in {"ecc", "phase_correlation",
                                                                               "stack_transforms", "drift"}:
        assert _backend.on_gpu(result), f"{name}: an image result stays on the GPU"
    have, want = np.asarray(_host(result)), np.asarray(expected)
    if _is_sim(gpu):
        np.testing.assert_array_equal(have, want)
    else:
        np.testing.assert_allclose(have, want, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(want).max())))


def test_batch_on_a_dask_cluster_computes_on_the_gpu_and_writes_host_data(tmp_path, gpu):
    """``stacklab run --device gpu --scheduler local``: recipe steps on GPU chunks, results written to zarr."""
    import napari_stacklab as sl
    from napari_stacklab.batch import run_batch

    stack = np.random.default_rng(0).random((4, 64, 64)).astype(np.float32)
    sl.io.imwrite(tmp_path / "in.tif", stack)
    recipe = sl.Recipe(steps=[{"op": "gaussian", "params": {"sigma": 1.0}},
                              {"op": "threshold", "params": {"method": "otsu"}}])
    with warnings.catch_warnings():
        warnings.simplefilter("error", _backend.GPUFallbackWarning)
        (out,) = run_batch(recipe, [tmp_path / "in.tif"], tmp_path / "out", scheduler="local", device="gpu",
                           progress=False)
    written, expected = np.asarray(sl.io.imread(out).data), recipe.run(stack, device="cpu")
    if _is_sim(gpu):
        np.testing.assert_array_equal(written, expected)
    else:  # a float32 Otsu threshold on the GPU may fall on the other side of a few pixels
        assert written.shape == expected.shape and np.mean(written != expected) <= CUDA_MASK_MISMATCH


def test_the_user_guide_lists_exactly_the_cpu_only_operations():
    from pathlib import Path

    page = (Path(__file__).parents[1] / "docs" / "user" / "gpu.md").read_text()
    listed = {line.split("`")[1] for line in page.splitlines() if line.strip().startswith("| `")}
    assert listed == set(CPU_ONLY)
    for name, function in CPU_ONLY.items():
        assert f"| `{name}` | `{function}`" in page


def test_a_lazy_mask_per_frame_follows_an_eager_image_to_the_gpu():
    """inpaint of an in-memory stack on the GPU with a lazy mask stack: the mask frames must reach the device."""
    import napari_stacklab as sl

    stack = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)
    masks = stack > 0.97
    expected = sl.preprocess.inpaint(stack, mask=masks, method="nearest")
    with simulated_gpu(), warnings.catch_warnings():
        warnings.simplefilter("error", _backend.GPUFallbackWarning)
        out = sl.preprocess.inpaint(stack, mask=da.from_array(masks, chunks=(1, 32, 32)), method="nearest",
                                    device="gpu")
        assert _backend.is_cupy(out)
        np.testing.assert_array_equal(out.get(), expected)
