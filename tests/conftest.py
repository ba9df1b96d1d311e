"""Shared fixtures. Viewer tests (test_napari_*.py) use napari's ``make_napari_viewer``
fixture and must run under Xvfb (``xvfb-run -a python -m pytest``)."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest


def pytest_collection_modifyitems(config, items):
    """Skip GPU tests cleanly when CuPy or a CUDA device is missing."""
    from napari_stacklab._backend import gpu_available

    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def camera_stack():
    """A small (4, 96, 128) float32 stack of different camera crops."""
    from skimage import data

    cam = data.camera().astype(np.float32)
    return np.stack([cam[40 * i : 40 * i + 96, 30 * i : 30 * i + 128] for i in range(4)])


@pytest.fixture
def escaped(monkeypatch):
    """Exceptions escaping a Qt slot or a thread, and every napari notification: ``(caught, notes)``.

    The test fails at teardown if anything escaped. (Some test modules define their own
    ``escaped`` with other checks; theirs wins there.)
    """
    from napari.utils.notifications import notification_manager

    caught = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: caught.append(value))
    monkeypatch.setattr(threading, "excepthook", lambda args: caught.append(args.exc_value))
    notes = []
    notification_manager.notification_ready.connect(notes.append)
    yield caught, notes
    notification_manager.notification_ready.disconnect(notes.append)
    assert caught == [], f"uncaught exceptions: {caught}"
