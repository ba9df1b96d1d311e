"""A gate a worker's task blocks on until the test opens it (the napari tool tests)."""

from __future__ import annotations

import threading


class Gate:
    """Worker tasks wrapped by :meth:`wrap` block until the test calls ``opened.set()``.

    ``entered`` is set once a task reached the gate; a gate never opened fails
    the task after ``wait_ms``.
    """

    def __init__(self, wait_ms: float) -> None:
        self.wait_ms = wait_ms
        self.entered, self.opened = threading.Event(), threading.Event()

    def wrap(self, function):
        def gated(*args, **kwargs):
            self.entered.set()
            assert self.opened.wait(self.wait_ms / 1000), "the test never opened the gate"
            result = function(*args, **kwargs)
            if hasattr(result, "__next__"):  # a generator task (progress): pass its steps on
                result = yield from result
            return result
        return gated
