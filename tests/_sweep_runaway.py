"""Operations that misbehave on purpose, declared only inside sweep workers (tests/test_param_sweep.py).

They check the fence itself: memory past the address-space limit, a process that dies, time past the
limit, NaN from finite input and an error from a library each end as a reported case, never as a
failure of the process running the sweep.
"""

import os
import time

import numpy as np

from napari_stacklab.registry import operation


def _declare(kernel):
    return operation(menu="filter", name=kernel.__name__, family="sweep_fence")(kernel)


@_declare
def _sweep_allocates(image):
    return np.ones((2**30,), np.float64)[: image.size].reshape(image.shape)  # 8 GiB, past the 4 GiB fence


@_declare
def _sweep_aborts(image):
    os.abort()


@_declare
def _sweep_sleeps(image):
    time.sleep(600)
    return image


@_declare
def _sweep_nan(image):
    return np.full(image.shape, np.nan, np.float32)


@_declare
def _sweep_library_error(image):
    return np.broadcast_arrays(image, np.zeros(3))[0]
