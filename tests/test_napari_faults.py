"""Faults around the generated operation widgets, in real viewers.

What happens when the input layer is deleted mid-run, the viewer or the dock is
closed mid-run, an operation warns or fails in the worker or in the preview, a
run is cancelled, and which thread touches napari objects. Mid-run states are
reached without blind sleeps: temporary registry operations block on a
:class:`threading.Event` the test controls (and are removed from the registry
afterwards).

Run under Xvfb: ``xvfb-run -a python -m pytest tests/test_napari_faults.py -q``.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from typing import Annotated

import numpy as np
import pytest
from skimage import data

from napari_stacklab import catalog, registry
from napari_stacklab._napari import widgets
from napari_stacklab.registry import Range

da = pytest.importorskip("dask.array")

WAIT_MS = 15_000


class Gate:
    """Frames block in the kernel until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.frames = 0
        self.threads: set[bool] = set()

    def pass_frame(self) -> None:
        self.threads.add(threading.current_thread() is threading.main_thread())
        self.entered.set()
        if not self.opened.wait(WAIT_MS / 1000):
            raise TimeoutError("the test never opened the gate")
        self.frames += 1


GATE = Gate()


def _gated(image, *, gain: Annotated[float, Range(0, 10)] = 2.0):
    """Gated gain: each frame waits for the test's gate, then is multiplied by ``gain``."""
    GATE.pass_frame()
    return image.astype(np.float32) * np.float32(gain)


def _warns(image, *, gain: Annotated[float, Range(0, 10)] = 2.0):
    """Gain that warns about clipping on every frame."""
    warnings.warn("fault_warns: 3 pixels clipped", UserWarning, stacklevel=2)
    return image.astype(np.float32) * np.float32(gain)


def _explodes(image, *, gain: Annotated[float, Range(0, 10)] = 2.0):
    """A kernel that always fails."""
    raise RuntimeError("the kernel exploded")


def _bad_points(image, *, gain: Annotated[float, Range(0, 10)] = 2.0):
    """Returns 1-D 'coordinates' that no Points layer can show (fails in the main thread)."""
    return np.zeros(5)


TEST_OPS = {
    "fault_gated": dict(kernel=_gated, output="image"),
    "fault_warns": dict(kernel=_warns, output="image"),
    "fault_explodes": dict(kernel=_explodes, output="image"),
    "fault_bad_points": dict(kernel=_bad_points, output="points"),
}


@pytest.fixture(scope="module")
def ops():
    catalog.operations()  # load the real families first
    made = {}
    for name, spec in TEST_OPS.items():
        lifted = spec["output"] != "points"
        registry.operation(menu="filter", name=name, output=spec["output"], lift=lifted)(spec["kernel"])
        made[name] = catalog.get(name)
    yield made
    for name in TEST_OPS:
        registry._REGISTRY.pop(name, None)


@pytest.fixture(autouse=True)
def gate():
    global GATE
    GATE = Gate()
    yield GATE
    GATE.opened.set()  # never leave a worker blocked


@pytest.fixture
def stack():
    """Four different 64 x 80 uint16 crops of the camera image."""
    cam = data.camera().astype(np.uint16) * 16
    return np.stack([cam[50 * i : 50 * i + 64, 40 * i : 40 * i + 80] for i in range(4)])


@pytest.fixture
def lazy_stack(stack):
    """The stack as dask, one frame per chunk: one progress step (and cancel point) per frame."""
    return da.from_array(stack, chunks=(1, 64, 80))


@pytest.fixture
def shown(monkeypatch):
    """Every message the widgets send to napari notifications, by level."""
    messages = {"error": [], "warning": [], "info": []}
    for level in messages:
        monkeypatch.setattr(widgets.notifications, f"show_{level}",
                            lambda message, level=level: messages[level].append(str(message)))
    return messages


@pytest.fixture
def escaped(monkeypatch):
    """Exceptions that reach ``sys.excepthook`` (an exception escaping a Qt slot) or napari's error
    notifications (napari's workers relay their errors there)."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    caught = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: caught.append(value))
    monkeypatch.setattr(threading, "excepthook", lambda args: caught.append(args.exc_value))
    record = []

    def on_notification(event):
        note = event if not hasattr(event, "value") else event.value
        record.append(note)

    notification_manager.notification_ready.connect(on_notification)
    yield caught, record
    notification_manager.notification_ready.disconnect(on_notification)
    assert [note for note in record if note.severity >= NotificationSeverity.ERROR and
            "the kernel exploded" not in str(note.message)] == [], "unexpected error notifications"


def dock(viewer, op, layer):
    widget = widgets.OperationWidget(op, viewer)
    dock_widget = viewer.window.add_dock_widget(widget, name=op.title, area="right")
    widget.input.value = viewer.layers[layer]
    return widget, dock_widget


def wait_finished(qtbot, worker):
    """Wait until the worker has left its thread and its queued signals were delivered."""
    qtbot.waitUntil(lambda: worker not in type(worker)._worker_set, timeout=WAIT_MS)
    qtbot.wait(20)


def names(viewer):
    return [layer.name for layer in viewer.layers]


# --- deleting the input mid-run -----------------------------------------------------------------
def test_deleting_the_input_mid_run_stops_and_adds_nothing(qtbot, make_napari_viewer, ops, gate, lazy_stack, stack,
                                                           shown, escaped):
    """Decision: the run stops and its result is discarded. A layer named ``"cells fault_gated"``
    recording a source layer that no longer exists would be an orphan; the user removed the data."""
    viewer = make_napari_viewer()
    viewer.add_image(lazy_stack, name="cells", contrast_limits=(0, 4096))
    viewer.add_image(stack[0], name="other")
    widget, _ = dock(viewer, ops["fault_gated"], "cells")
    widget.run()
    worker = widget._worker
    assert gate.entered.wait(WAIT_MS / 1000)
    viewer.layers.remove("cells")
    gate.opened.set()
    wait_finished(qtbot, worker)

    assert names(viewer) == ["other"]  # no orphan "cells fault_gated"
    assert gate.frames < 4  # stopped after the batch in progress, well before the end
    assert len(shown["warning"]) == 1 and "'cells' was removed" in shown["warning"][0]
    assert "removed" in widget.info.value and "nothing added" in widget.info.value
    assert shown["error"] == [] and escaped[0] == []
    assert widget.run_button.enabled and not widget.running
    assert widget.input.value is viewer.layers["other"]  # the chooser moved on

    widget.run()  # the widget still works, on the remaining layer
    wait_finished(qtbot, widget._worker) if widget._worker else None
    qtbot.waitUntil(lambda: "other fault_gated" in viewer.layers, timeout=WAIT_MS)
    np.testing.assert_array_equal(viewer.layers["other fault_gated"].data, stack[0].astype(np.float32) * 2)


def test_deleting_a_reference_layer_mid_run_keeps_the_result(qtbot, make_napari_viewer, stack, shown, escaped):
    """A second image (ImageRef) is read when the run starts: removing its layer later changes nothing."""
    import napari_stacklab as sl

    viewer = make_napari_viewer()
    lazy = da.from_array(stack, chunks=(1, 64, 80))
    viewer.add_image(lazy, name="cells", contrast_limits=(0, 4096))
    reference = stack[1, ::-1] // 2
    viewer.add_image(reference, name="reference")
    widget, _ = dock(viewer, catalog.get("match_histograms"), "cells")
    widget.set_params(reference=viewer.layers["reference"])
    widget.run()
    viewer.layers.remove("reference")
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    expected = sl.filters.match_histograms(stack, reference=reference)
    np.testing.assert_allclose(viewer.layers["cells match_histograms"].data, expected, rtol=1e-6)
    assert shown["warning"] == [] and shown["error"] == [] and escaped[0] == []


def test_deleting_the_input_with_preview_on_removes_its_preview(qtbot, make_napari_viewer, stack, shown, escaped):
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="cells")
    widget, _ = dock(viewer, catalog.get("gaussian"), "cells")
    widget.preview.value = True
    widget.update_preview()
    assert "cells gaussian (preview)" in viewer.layers
    viewer.layers.remove("cells")
    qtbot.waitUntil(lambda: "cells gaussian (preview)" not in viewer.layers, timeout=WAIT_MS)
    assert names(viewer) == []
    assert "choose an input layer" in widget.info.value
    assert escaped[0] == []


# --- closing the viewer or the dock mid-run -----------------------------------------------------
def test_closing_the_viewer_mid_run_discards_the_result(qtbot, make_napari_viewer, ops, gate, lazy_stack, shown,
                                                        escaped):
    viewer = make_napari_viewer()
    viewer.add_image(lazy_stack, name="cells", contrast_limits=(0, 4096))
    widget, _ = dock(viewer, ops["fault_gated"], "cells")
    destroyed = []
    widget.native.destroyed.connect(lambda *_: destroyed.append(True))
    widget.run()
    worker = widget._worker
    assert gate.entered.wait(WAIT_MS / 1000)
    viewer.close()
    qtbot.waitUntil(lambda: destroyed == [True], timeout=WAIT_MS)  # the Qt widget is really gone
    gate.opened.set()
    wait_finished(qtbot, worker)

    assert gate.frames < 4  # the worker stopped instead of computing every frame
    assert "cells fault_gated" not in viewer.layers  # nothing added to the closed viewer's model
    assert not widget.running
    assert escaped[0] == [] and shown["error"] == []  # no access to the deleted QLabel / buttons


def test_closing_the_dock_mid_run_stops_and_clears_the_preview(qtbot, make_napari_viewer, ops, gate, lazy_stack,
                                                               shown, escaped):
    viewer = make_napari_viewer()
    viewer.add_image(lazy_stack, name="cells", contrast_limits=(0, 4096))
    widget, dock_widget = dock(viewer, ops["fault_gated"], "cells")
    gate.opened.set()  # the preview passes straight through
    widget.preview.value = True
    widget.update_preview()
    assert "cells fault_gated (preview)" in viewer.layers
    gate.opened.clear()
    gate.entered.clear()
    widget.run()
    worker = widget._worker
    assert gate.entered.wait(WAIT_MS / 1000)
    viewer.window.remove_dock_widget(dock_widget)  # what the dock's close button does
    gate.opened.set()
    wait_finished(qtbot, worker)

    assert names(viewer) == ["cells"]  # neither the result nor a stale preview
    assert gate.frames < 4
    viewer.dims.current_step = (2, 0, 0)  # the closed tool no longer follows the viewer
    qtbot.wait(widgets.PREVIEW_DELAY_MS + 100)
    assert names(viewer) == ["cells"]
    assert escaped[0] == [] and shown["error"] == []


# --- warnings and errors ------------------------------------------------------------------------
def test_a_warning_in_the_worker_is_shown_and_the_run_completes(qtbot, make_napari_viewer, ops, lazy_stack, stack,
                                                                shown, escaped):
    """napari's worker class does not relay ``warned`` (its notifying mixin is never initialised),
    so the widget shows the warning itself: in its message line and once per run as a notification."""
    viewer = make_napari_viewer()
    viewer.add_image(lazy_stack, name="cells", contrast_limits=(0, 4096))
    widget, _ = dock(viewer, ops["fault_warns"], "cells")
    for run in (1, 2):
        widget.run()
        qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
        qtbot.wait(20)
        np.testing.assert_array_equal(viewer.layers["cells fault_warns"].data, stack.astype(np.float32) * 2)
        assert "UserWarning: fault_warns: 3 pixels clipped" in widget.info.value  # in the widget ...
        assert len(shown["warning"]) == run  # ... and notified once per run, not once per frame
        assert "3 pixels clipped" in shown["warning"][-1]
    assert shown["error"] == [] and escaped[0] == []
    viewer.layers.selection.active = viewer.layers["cells"]  # the viewer keeps working
    viewer.dims.current_step = (3, 0, 0)
    assert viewer.dims.current_step[0] == 3


def test_a_result_napari_cannot_show_is_reported_not_raised(qtbot, make_napari_viewer, ops, stack, shown, escaped):
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="cells")
    widget, _ = dock(viewer, ops["fault_bad_points"], "cells")
    widget.run()  # computed fine in the worker; turning it into a layer fails in the main thread
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    qtbot.wait(20)
    assert escaped[0] == []
    assert len(shown["error"]) == 1 and "shape (K, D)" in shown["error"][0]
    assert "failed" in widget.info.value and names(viewer) == ["cells"]
    assert widget.run_button.enabled


def test_a_failing_preview_leaves_the_viewer_usable(qtbot, make_napari_viewer, ops, stack, shown, escaped):
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="cells")
    widget, _ = dock(viewer, ops["fault_explodes"], "cells")
    widget.preview.value = True
    widget.update_preview()  # fails while computing
    # a kernel's RuntimeError comes back as the engine's OperationError, naming the operation and the error
    assert widget.info.value.startswith("preview: fault_explodes failed") and "the kernel exploded" in widget.info.value
    assert names(viewer) == ["cells"]
    viewer.dims.current_step = (1, 0, 0)  # the throttled preview fails again, quietly, in the widget
    qtbot.wait(widgets.PREVIEW_DELAY_MS + 100)

    points = dock(viewer, ops["fault_bad_points"], "cells")[0]
    points.preview.value = True
    points.update_preview()  # computes, then fails while becoming a layer
    assert points.info.value.startswith("preview: ") and "shape (K, D)" in points.info.value
    assert names(viewer) == ["cells"]
    assert escaped[0] == [] and shown["error"] == []  # a preview failure is no error popup

    gaussian = dock(viewer, catalog.get("gaussian"), "cells")[0]  # other tools still work
    gaussian.run()
    qtbot.waitUntil(lambda: not gaussian.running, timeout=WAIT_MS)
    assert "cells gaussian" in viewer.layers


# --- cancel -------------------------------------------------------------------------------------
def test_cancel_leaves_no_partial_layer_and_run_again_works(qtbot, make_napari_viewer, ops, gate, lazy_stack, stack,
                                                            shown, escaped):
    viewer = make_napari_viewer()
    viewer.add_image(lazy_stack, name="cells", contrast_limits=(0, 4096))
    inserted = []
    viewer.layers.events.inserted.connect(lambda event: inserted.append(event.value.name))
    widget, _ = dock(viewer, ops["fault_gated"], "cells")
    widget.run()
    worker = widget._worker
    assert gate.entered.wait(WAIT_MS / 1000)
    widget.cancel()
    assert not widget.cancel_button.enabled
    gate.opened.set()
    wait_finished(qtbot, worker)
    assert inserted == [] and names(viewer) == ["cells"]  # not even briefly
    assert widget.info.value.endswith("cancelled")
    assert gate.frames < 4
    assert widget.run_button.enabled and not widget.running

    widget.set_params(gain=3.0)  # run again at once: a complete, correct result
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    np.testing.assert_array_equal(viewer.layers["cells fault_gated"].data, stack.astype(np.float32) * 3)
    assert inserted == ["cells fault_gated"]
    assert shown["error"] == [] and escaped[0] == []


def test_cancel_after_the_last_batch_still_adds_nothing(qtbot, make_napari_viewer, ops, gate, stack, shown,
                                                        escaped):
    """Cancel pressed when the worker has already computed everything but not yet returned."""
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="cells")  # NumPy: a single batch
    widget, _ = dock(viewer, ops["fault_gated"], "cells")
    widget.run()
    worker = widget._worker
    qtbot.waitUntil(lambda: worker.is_running, timeout=WAIT_MS)
    gate.opened.set()
    deadline = time.monotonic() + WAIT_MS / 1000
    while worker.is_running and time.monotonic() < deadline:  # no Qt events: "returned" stays queued
        time.sleep(0.01)
    assert gate.frames == 4 and not worker.is_running
    widget.cancel()
    wait_finished(qtbot, worker)
    assert names(viewer) == ["cells"]
    assert widget.info.value.endswith("cancelled")
    assert shown["error"] == [] and escaped[0] == []


# --- threads ------------------------------------------------------------------------------------
def test_napari_objects_are_only_touched_from_the_main_thread(qtbot, make_napari_viewer, ops, gate, lazy_stack,
                                                              monkeypatch, escaped):
    viewer = make_napari_viewer()
    viewer.add_image(lazy_stack, name="cells", contrast_limits=(0, 4096))
    events = []

    def record(event):
        events.append((getattr(event, "type", "?"), threading.current_thread() is threading.main_thread()))

    def watch_layer(layer):
        layer.events.connect(record)

    viewer.layers.events.connect(record)
    viewer.dims.events.connect(record)
    viewer.layers.events.inserted.connect(lambda event: watch_layer(event.value))
    watch_layer(viewer.layers["cells"])

    progress_threads = []
    real_progress = widgets.progress

    class WatchedProgress(real_progress):
        def update(self, n=1):
            progress_threads.append(threading.current_thread() is threading.main_thread())
            return super().update(n)

    monkeypatch.setattr(widgets, "progress", WatchedProgress)
    widget, _ = dock(viewer, ops["fault_gated"], "cells")
    gate.opened.set()
    for _ in range(2):  # the second run replaces the first layer's data in place
        widget.run()
        qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert gate.threads == {False}  # the kernel did run in the worker ...
    kinds = {kind for kind, _ in events}
    assert {"inserted", "data"} <= kinds
    assert progress_threads and all(progress_threads)
    off_main = [kind for kind, on_main in events if not on_main]
    assert off_main == []  # ... but every napari event fired in the main thread
    assert escaped[0] == []


# --- stateful tools with workers ----------------------------------------------------------------
def test_drift_tool_input_removed_mid_estimate_adds_nothing(qtbot, make_napari_viewer, gate, stack, monkeypatch,
                                                            escaped):
    """Before the fix the result was applied to whatever stack the chooser showed after the removal."""
    from napari_stacklab._napari import drift_widget

    real = drift_widget.drift

    def gated_drift(*args, **kwargs):
        gate.pass_frame()
        return real(*args, **kwargs)

    monkeypatch.setattr(drift_widget, "drift", gated_drift)
    # a drifting field (drift refuses frames that show nothing of the first one, as the crops of `stack` do)
    cam = data.camera().astype(np.uint16) * 16
    drifting = np.stack([cam[5 * i : 5 * i + 64, 4 * i : 4 * i + 80] for i in range(4)])
    viewer = make_napari_viewer()
    viewer.add_image(drifting, name="a")
    viewer.add_image(drifting[::-1].copy(), name="b")
    tool = drift_widget.DriftWidget(viewer)
    viewer.window.add_dock_widget(tool, area="right")
    tool.source.value = viewer.layers["a"]
    tool.set_params(refine=False)
    worker = tool.run()
    assert gate.entered.wait(WAIT_MS / 1000)
    viewer.layers.remove("a")
    assert tool.source.value is viewer.layers["b"]
    gate.opened.set()
    wait_finished(qtbot, worker)
    assert names(viewer) == ["b"] and tool.shifts is None
    assert "'a' was removed" in tool.status.value
    assert escaped[0] == [] and gate.threads == {False}
    tool.run()  # still usable, on the remaining stack
    qtbot.waitUntil(lambda: "b drift_correct" in viewer.layers, timeout=WAIT_MS)


def test_drift_tool_failure_is_shown_not_raised(qtbot, make_napari_viewer, stack, monkeypatch, escaped):
    from napari_stacklab._napari import drift_widget

    def broken(*args, **kwargs):
        raise ValueError("no overlap between frames")

    monkeypatch.setattr(drift_widget, "drift", broken)
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="a")
    tool = drift_widget.DriftWidget(viewer)
    viewer.window.add_dock_widget(tool, area="right")
    wait_finished(qtbot, tool.run())
    assert tool.status.value == "Drift correction: no overlap between frames"
    assert escaped[0] == [] and tool.run_button.enabled


def test_measure_tool_reads_widgets_in_the_gui_thread_and_drops_a_removed_layer(qtbot, make_napari_viewer, gate,
                                                                                 monkeypatch, escaped):
    from napari_stacklab._napari import measure_widget

    real = measure_widget._measure

    def gated(**inputs):
        gate.pass_frame()
        return real(**inputs)

    monkeypatch.setattr(measure_widget, "_measure", gated)
    labels = np.zeros((48, 48), np.int32)
    labels[4:12, 4:20] = 1
    labels[25:40, 30:38] = 2
    viewer = make_napari_viewer()
    viewer.add_labels(labels, name="nuclei")
    viewer.add_labels(labels * 0, name="empty")
    tool = measure_widget.MeasureWidget(viewer)
    viewer.window.add_dock_widget(tool, area="right")
    tool.labels_layer.value = viewer.layers["nuclei"]
    worker = tool.run()
    assert gate.entered.wait(WAIT_MS / 1000)
    viewer.layers.remove("nuclei")
    gate.opened.set()
    wait_finished(qtbot, worker)
    assert "'nuclei' was removed" in tool.status.value and tool.table_widget is None
    assert "nuclei measurements" not in viewer.window.dock_widgets
    assert gate.threads == {False} and escaped[0] == []

    viewer.add_labels(labels, name="nuclei")
    tool.labels_layer.value = viewer.layers["nuclei"]
    tool.run()
    qtbot.waitUntil(lambda: not tool.running, timeout=WAIT_MS)
    np.testing.assert_array_equal(tool.table["label"], [1, 2])
    assert "nuclei measurements" in viewer.window.dock_widgets
