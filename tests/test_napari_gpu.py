"""The device chooser of the widgets, on a GPU: results reach napari as host data (it cannot show CuPy arrays).

On machines without a GPU this runs with the host-simulated CuPy of ``tests/_simcupy.py``
(its device arrays refuse implicit conversion to NumPy, as CuPy's do, so a layer
holding one fails to render). Run under Xvfb.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _simcupy import real_gpu_present, simulated_gpu
from skimage import data

import napari_stacklab as sl
from napari_stacklab import _backend

da = pytest.importorskip("dask.array")
pytestmark = pytest.mark.skipif(real_gpu_present(), reason="a real GPU is here: the simulation is not used")


@pytest.fixture
def stack():
    cam = data.camera().astype(np.uint16)
    return np.stack([cam[60 * i : 60 * i + 96, 50 * i : 50 * i + 128] for i in range(3)])


@pytest.fixture
def gpu_viewer(make_napari_viewer, stack):
    with simulated_gpu():
        viewer = make_napari_viewer(show=True)  # a hidden viewer's canvas screenshots black
        viewer.add_image(stack, name="cells")
        yield viewer


def _open(viewer, title):
    _, widget = viewer.window.add_plugin_dock_widget("napari-stacklab", title)
    widget.input.value = viewer.layers["cells"]
    widget.device.value = "gpu"
    return widget


def test_run_preview_and_lazy_on_the_gpu_give_host_layers(qtbot, gpu_viewer, stack, tmp_path):
    viewer = gpu_viewer
    expected = sl.filters.gaussian(stack, sigma=2.0)
    widget = _open(viewer, "Gaussian")
    widget.set_params(sigma=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", _backend.GPUFallbackWarning)  # the GPU path ran, no fallback
        viewer.dims.current_step = (0, 0, 0)
        widget.preview.value = True
        widget.update_preview()
        widget.run()
        qtbot.waitUntil(lambda: not widget.running, timeout=30_000)
    preview = viewer.layers["cells gaussian (preview)"]
    assert isinstance(preview.data, np.ndarray)
    np.testing.assert_array_equal(preview.data, expected[0])
    out = viewer.layers["cells gaussian"]
    assert isinstance(out.data, np.ndarray)
    np.testing.assert_array_equal(out.data, expected)

    widget.lazy.value = True
    widget.run()
    lazy = viewer.layers["cells gaussian"]
    assert isinstance(lazy.data, da.Array) and isinstance(lazy.data._meta, np.ndarray)
    np.testing.assert_array_equal(lazy.data.compute(), expected)
    for layer in viewer.layers:
        layer.visible = layer is lazy
    lazy.contrast_limits = (float(expected.min()), float(expected.max()))
    viewer.dims.current_step = (2, 0, 0)
    viewer.reset_view()
    shot = viewer.screenshot(str(tmp_path / "gpu.png"), canvas_only=True)  # napari reads the lazy GPU chunks
    assert shot[..., :3].std() > 10, "the lazy GPU result did not render"


def test_an_operation_without_gpu_code_tells_the_user_it_ran_on_the_cpu(qtbot, gpu_viewer, stack):
    viewer = gpu_viewer
    viewer.layers["cells"].data = stack > 100
    widget = _open(viewer, "Skeletonize")
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=30_000)
    qtbot.wait(20)
    assert "GPUFallbackWarning" in widget.info.value and "running on the CPU" in widget.info.value
    assert "skeletonize has no GPU implementation" in widget.info.value
    np.testing.assert_array_equal(viewer.layers["cells skeletonize"].data.astype(bool),
                                  sl.morphology.skeletonize(stack > 100))


def test_drift_and_align_tools_estimate_on_the_chosen_device(qtbot, gpu_viewer, stack):
    """The drift tool and the align tool have the same device switch; on the GPU they find the same motion."""
    from napari_stacklab._napari.align_widget import AlignSetWidget
    from napari_stacklab._napari.drift_widget import DriftWidget

    viewer = gpu_viewer
    frames = np.stack([np.roll(stack[0], (i, -2 * i), axis=(0, 1)) for i in range(4)]).astype(np.float32)
    viewer.add_image(frames, name="moving cells")
    drift_tool = DriftWidget(viewer)
    drift_tool.source.value = viewer.layers["moving cells"]
    drift_tool.set_params(refine=False)
    found = {}
    for device in ("cpu", "gpu"):
        drift_tool.device.value = device
        with warnings.catch_warnings():
            warnings.simplefilter("error", _backend.GPUFallbackWarning)
            worker = drift_tool.run()
            with qtbot.waitSignal(worker.finished, timeout=60_000):
                pass
        found[device] = drift_tool.shifts.copy()
    np.testing.assert_array_equal(found["gpu"], found["cpu"])
    np.testing.assert_allclose(found["gpu"], [[0, 0], [1, -2], [2, -4], [3, -6]], atol=0.05)

    viewer.add_image(frames[0], name="base")
    viewer.add_image(frames[2], name="later")
    align = AlignSetWidget(viewer)
    align.base.value, align.targets.value = viewer.layers["base"], [viewer.layers["later"]]
    align.method.value, align.device.value = "phase correlation", "gpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error", _backend.GPUFallbackWarning)
        align.run()
        qtbot.waitUntil(lambda: not align.running, timeout=60_000)  # computed, and its layers shown
    np.testing.assert_allclose(align.results["later"]["transform"].shift, [2, -4], atol=0.05)
