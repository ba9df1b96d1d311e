"""Faults around the 4D-STEM navigator (StemNavigator), in real viewers.

The navigator computes the mean pattern and scan images in worker threads.
Mid-computation states are reached without blind sleeps: the worker's
``materialize`` blocks on a gate the test controls (see tests/test_napari_faults.py,
whose fixtures for escaped exceptions this mirrors).

Run under Xvfb: ``xvfb-run -a python -m pytest tests/test_napari_navigator_faults.py -q``.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from napari_stacklab import _backend, stem
from napari_stacklab._napari import navigator as navigator_module
from napari_stacklab._napari.navigator import StemNavigator

da = pytest.importorskip("dask.array")

WAIT_MS = 60_000  # a safety net against a hang, not a timing: napari collects garbage on every layer removal


class Gate:
    """Worker-thread computations block until the test opens the gate (main-thread ones pass)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.passed = 0

    def materialize(self, real, array):
        if threading.current_thread() is not threading.main_thread():
            self.entered.set()
            if not self.opened.wait(WAIT_MS / 1000):
                raise TimeoutError("the test never opened the gate")
            self.passed += 1
        return real(array)


@pytest.fixture
def gate(monkeypatch):
    gate = Gate()
    real = _backend.materialize
    monkeypatch.setattr(navigator_module._backend, "materialize", lambda array: gate.materialize(real, array))
    yield gate
    gate.opened.set()  # never leave a worker blocked


@pytest.fixture
def scan(rng):
    """(6, 8, 32, 32) counts: a bright disk in the middle of every pattern."""
    yy, xx = np.mgrid[:32, :32]
    disk = np.hypot(yy - 15.5, xx - 15.5) < 6
    return rng.poisson(2 + 50 * disk, size=(6, 8, 32, 32)).astype(np.uint16)


@pytest.fixture
def escaped(monkeypatch):
    """Exceptions escaping a Qt slot or a thread, and napari error notifications."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    caught = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: caught.append(value))
    monkeypatch.setattr(threading, "excepthook", lambda args: caught.append(args.exc_value))
    record = []
    notification_manager.notification_ready.connect(record.append)
    yield caught
    notification_manager.notification_ready.disconnect(record.append)
    assert [n for n in record if n.severity >= NotificationSeverity.ERROR] == [], "unexpected error notifications"


def open_navigator(viewer, scan):
    viewer.add_image(da.from_array(scan, chunks=(2, 3, 32, 32)), name="scan4d")
    nav = StemNavigator(viewer)
    dock = viewer.window.add_dock_widget(nav, area="right")
    return nav, dock


def wait_idle(qtbot, nav):
    qtbot.waitUntil(lambda: not nav.busy, timeout=WAIT_MS)
    qtbot.wait(20)


def names(viewer):
    return [layer.name for layer in viewer.layers]


def test_deleting_a_panel_mid_computation_stops_and_gives_the_4d_layer_back(qtbot, make_napari_viewer, scan, gate,
                                                                            escaped):
    viewer = make_napari_viewer()
    nav, _ = open_navigator(viewer, scan)
    nav.start()
    assert gate.entered.wait(WAIT_MS / 1000) and nav.busy
    assert "scan4d" not in viewer.layers  # held while the navigator runs
    viewer.layers.remove("scan4d scan")
    assert "'scan4d scan' was removed" in nav.status.value
    assert names(viewer) == ["scan4d"]  # the other panels went, the 4-D layer came back
    gate.opened.set()
    wait_idle(qtbot, nav)
    assert names(viewer) == ["scan4d"]  # the pending images were discarded, nothing stale was shown
    assert nav.data is None and nav.held is None and escaped == []

    nav.start(viewer.layers["scan4d"])  # and the navigator opens again
    wait_idle(qtbot, nav)
    np.testing.assert_allclose(nav.layers["scan"].data, stem.virtual_detector(scan, **nav.detector()), rtol=1e-6)


def test_closing_the_viewer_mid_computation_touches_no_deleted_widget(qtbot, make_napari_viewer, scan, gate,
                                                                      escaped):
    viewer = make_napari_viewer()
    nav, _ = open_navigator(viewer, scan)
    destroyed = []
    nav.native.destroyed.connect(lambda *_: destroyed.append(True))
    nav.start()
    assert gate.entered.wait(WAIT_MS / 1000)
    viewer.close()
    qtbot.waitUntil(lambda: destroyed == [True], timeout=WAIT_MS)
    gate.opened.set()
    wait_idle(qtbot, nav)
    assert escaped == []  # no "wrapped C/C++ object has been deleted" from the status label


def test_closing_the_dock_mid_computation_discards_and_puts_the_4d_layer_back(qtbot, make_napari_viewer, scan, gate,
                                                                              escaped):
    viewer = make_napari_viewer()
    nav, dock = open_navigator(viewer, scan)
    nav.start()
    assert gate.entered.wait(WAIT_MS / 1000)
    detector = nav.layers["detector"]
    viewer.window.remove_dock_widget(dock)  # what the dock's close button does
    gate.opened.set()
    wait_idle(qtbot, nav)
    assert names(viewer) == ["scan4d"] and nav.closed
    assert nav.status.value == "navigator closed"
    detector.data = []  # a panel kept by someone: inert, nothing listens any more
    qtbot.wait(50)
    assert not nav.busy and escaped == []


@pytest.mark.parametrize("corners, why", [
    (np.array([[10, 10], [10, 10], [10, 10], [10, 10]], float), "zero area"),
    (np.array([[80, 80], [80, 90], [90, 90], [90, 80]], float), "outside the pattern"),
])
def test_a_detector_with_no_pixels_says_so(qtbot, make_napari_viewer, scan, corners, why, escaped):
    viewer = make_napari_viewer()
    nav, _ = open_navigator(viewer, scan)
    nav.start()
    wait_idle(qtbot, nav)
    before = nav.layers["scan"].data.copy()
    nav.layers["detector"].data = []
    nav.layers["detector"].add_ellipses(corners)
    wait_idle(qtbot, nav)
    assert "covers no pixel of the pattern" in nav.status.value, why
    np.testing.assert_array_equal(nav.layers["scan"].data, before)  # the last good image stays
    nav.layers["detector"].data = []
    nav.layers["detector"].add_rectangles(corners)  # a rasterised mask outside the pattern: same message
    wait_idle(qtbot, nav)
    assert "covers no pixel of the pattern" in nav.status.value
    assert escaped == []


def test_layer_changes_happen_in_the_main_thread(qtbot, make_napari_viewer, scan, escaped):
    viewer = make_napari_viewer()
    events = []

    def record(event):
        events.append((getattr(event, "type", "?"), threading.current_thread() is threading.main_thread()))

    viewer.layers.events.connect(record)
    viewer.layers.events.inserted.connect(lambda event: event.value.events.connect(record))
    nav, _ = open_navigator(viewer, scan)
    nav.start()
    wait_idle(qtbot, nav)
    nav.layers["detector"].data = []
    nav.layers["detector"].add_ellipses(np.array([[8, 8], [8, 24], [24, 24], [24, 8]], float))
    wait_idle(qtbot, nav)
    assert {"inserted", "data"} <= {kind for kind, _ in events}
    assert [kind for kind, on_main in events if not on_main] == []
    np.testing.assert_allclose(nav.layers["scan"].data, stem.virtual_detector(scan, **nav.detector()), rtol=1e-6)
    assert escaped == []
