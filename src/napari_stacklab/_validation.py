"""Attribute-only checks shared by every operation.

They read ``.ndim``, ``.shape``, ``.dtype`` and ``.size`` and nothing else, so
they cost nothing on NumPy, CuPy and dask arrays alike and never trigger a
computation or a device transfer. One more check guards files: ``check_regular`` refuses a
FIFO or a device before anything opens it (readers and recipe files alike).
"""

from __future__ import annotations

import numbers
import os
import stat
from typing import Any, Iterable

import numpy as np


def check_array(image: Any, name: str = "image") -> None:
    """Raise ``TypeError`` unless ``image`` looks like an array."""
    for attribute in ("ndim", "shape", "dtype"):
        if not hasattr(image, attribute):
            raise TypeError(
                f"{name} must be an array (NumPy, dask or CuPy), got {type(image).__name__}"
            )


def check_ndim(image: Any, min_ndim: int, name: str = "image", max_ndim: int | None = None) -> None:
    """Raise ``ValueError`` unless ``min_ndim <= image.ndim <= max_ndim``."""
    check_array(image, name)
    if image.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions, got shape {tuple(image.shape)}"
        )
    if max_ndim is not None and image.ndim > max_ndim:
        raise ValueError(
            f"{name} must have at most {max_ndim} dimensions, got shape {tuple(image.shape)}"
        )
    if image.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(image.shape)})")


def check_real(image: Any, name: str = "image") -> None:
    """Raise ``TypeError`` for complex, object, string or structured dtypes."""
    kind = np.dtype(image.dtype).kind
    if kind not in "biuf":
        raise TypeError(
            f"{name} must have a real numeric or boolean dtype, got {np.dtype(image.dtype)}"
        )


def check_numeric(image: Any, name: str = "image", allow_complex: bool = False) -> None:
    """Raise ``TypeError`` for dtypes no image operation can use."""
    kind = np.dtype(image.dtype).kind
    allowed = "biufc" if allow_complex else "biuf"
    if kind not in allowed:
        raise TypeError(f"{name} has unsupported dtype {np.dtype(image.dtype)}")


def check_same_shape(a: Any, b: Any, names: tuple[str, str] = ("image", "other")) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    integer: bool = False,
) -> None:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``value`` is a finite number in range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if integer and not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value < low or (not low_inclusive and value == low)):
        bound = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {bound} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def float_dtype(dtype: Any) -> np.dtype:
    """The dtype operations compute in: float64 for float64 input, complex for complex, else float32."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return np.dtype(np.complex128) if dtype.itemsize > 8 else np.dtype(np.complex64)
    if dtype == np.float64 or (dtype.kind in "iu" and dtype.itemsize > 2):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def as_float(image: Any) -> Any:
    """``image`` in the dtype operations compute in (:func:`float_dtype`); values are never rescaled."""
    return image.astype(float_dtype(image.dtype), copy=False)


_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)


def check_regular(path: Any) -> None:
    """Refuse, naming ``path``, anything but a regular file or a folder, before it is opened.

    Opening a FIFO blocks until someone writes to it, and a device can stream forever:
    ``stacklab info pipe.tif`` would hang instead of saying what is wrong.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file or folder") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = next((name for test, name in _SPECIAL if test(mode)), "not a regular file")
    raise ValueError(f"{path}: is {kind}, not a file of image data; refusing to open it (it could wait forever)")
