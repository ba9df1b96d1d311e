"""What every reader checks before trusting a file: sizes it claims, metadata it carries, files that change.

- :func:`check_eager_size` refuses to allocate more than ``io.MAX_EAGER_BYTES``
  for an in-memory read (the value is read at call time, so a user may change it);
- :func:`clean_frame` drops a non-finite or non-positive pixel size (and a
  non-finite offset) with a :class:`MetadataWarning` naming the file, so the
  image still loads;
- :class:`FileSignature` remembers a file's size and modification time when a
  lazy array is opened, and lazy reads refuse (naming the file) when it was
  deleted, shortened or rewritten since.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import check_regular  # noqa: F401  (re-exported for the readers)


class MetadataWarning(UserWarning):
    """A file's metadata (pixel size, units, ImageJ/OME header) was unusable and was dropped."""


class EagerSizeError(ValueError):
    """An in-memory read would need more than ``napari_stacklab.io.MAX_EAGER_BYTES``."""


class ExternalDataError(ValueError):
    """A file refers to data stored outside itself (HDF5 external storage, external links, virtual datasets)."""


def nbytes(shape: Sequence[int], dtype: Any) -> int:
    """Bytes an array of ``shape`` and ``dtype`` needs, in exact integers (no 64-bit overflow)."""
    return math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize


#: dtype kinds that are image data: bool, signed and unsigned integers, floats, complex.
IMAGE_KINDS = "biufc"
_KIND_NAMES = {
    "U": "text", "S": "byte strings", "V": "raw or structured records", "M": "dates and times",
    "m": "time differences", "O": "Python objects",
}


def image_problem(shape: Sequence[int], dtype: Any) -> str | None:
    """Why an array of ``shape`` and ``dtype`` is not an image (``None`` when it is one)."""
    dtype = np.dtype(dtype)
    if dtype.fields is not None:
        return f"holds structured records (dtype {dtype}), not pixel values"
    if dtype.kind not in IMAGE_KINDS or dtype.itemsize == 0:
        kind = _KIND_NAMES.get(dtype.kind, "values that are not numbers")
        return f"holds {kind} (dtype {dtype}), not pixel values; images are booleans, integers, floats or complex numbers"
    if dtype.subdtype is not None:
        return f"holds sub-arrays (dtype {dtype}), not pixel values"
    if len(shape) == 0:
        return "holds a scalar, not an image"
    if len(shape) == 1:
        return f"holds a 1-D array (shape {tuple(int(s) for s in shape)}), not an image: an image has at least 2 axes"
    return None


def check_image(path: Any, shape: Sequence[int], dtype: Any) -> None:
    """Raise ``ValueError`` naming ``path`` unless ``shape``/``dtype`` describe an image (numbers, >= 2 axes)."""
    problem = image_problem(shape, dtype)
    if problem:
        raise ValueError(f"{path}: {problem}")


def check_eager_size(path: Any, shape: Sequence[int], dtype: Any, what: str = "reading it into memory") -> None:
    """Raise :class:`EagerSizeError` naming ``path`` when ``shape``/``dtype`` exceed the eager cap."""
    detail = f"shape {tuple(int(s) for s in shape)}, {np.dtype(dtype)}"
    check_eager_bytes(path, nbytes(shape, dtype), what, detail)


def check_eager_bytes(path: Any, size: int, what: str, detail: str = "") -> None:
    """Raise :class:`EagerSizeError` naming ``path`` when ``size`` bytes exceed the eager cap."""
    from . import MAX_EAGER_BYTES

    if MAX_EAGER_BYTES is not None and size > MAX_EAGER_BYTES:
        raise EagerSizeError(
            f"{path}: {what} needs {_human(size)}{f' ({detail})' if detail else ''}, "
            f"more than napari_stacklab.io.MAX_EAGER_BYTES = {_human(MAX_EAGER_BYTES)}; "
            "read it lazily (lazy=True) or raise the limit"
        )


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"  # pragma: no cover


def warn_metadata(path: Any, message: str) -> None:
    warnings.warn(f"{path}: {message}", MetadataWarning, stacklevel=3)


def clean_frame(path: Any, frame: dict) -> dict:
    """``frame`` with unusable pixel sizes reset to 1 pixel and bad offsets to 0, each with a warning."""
    scale = list(frame.get("scale", ()))
    units = list(frame.get("units", ()))
    translate = list(frame.get("translate", ()))
    labels = list(frame.get("axis_labels", ())) or [str(i) for i in range(len(scale))]
    for i, size in enumerate(scale):
        if not _finite_positive(size):
            warn_metadata(path, f"ignoring the pixel size {size!r} of axis {labels[i]!r} (not a positive number)")
            scale[i] = 1.0
            if i < len(units):
                units[i] = "pixel"
    for i, offset in enumerate(translate):
        if not _finite(offset):
            warn_metadata(path, f"ignoring the offset {offset!r} of axis {labels[i]!r} (not a finite number)")
            translate[i] = 0.0
    out = dict(frame)
    for key, value in (("scale", scale), ("units", units), ("translate", translate)):
        if key in frame:
            out[key] = tuple(value)
    return out


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def _finite_positive(value: Any) -> bool:
    return _finite(value) and float(value) > 0


class FileSignature:
    """A file's size and modification time, to notice it changing under a lazy array."""

    def __init__(self, path: Any):
        self.path = os.fspath(path)
        stat = os.stat(self.path)
        self.size = stat.st_size
        self.mtime_ns = stat.st_mtime_ns

    def check(self, needed_bytes: int = 0) -> None:
        """Raise ``OSError`` naming the file when it is gone, ``ValueError`` when it changed or is too short."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{self.path}: the file was deleted or moved after it was opened lazily; open it again"
            ) from None
        if stat.st_size != self.size or stat.st_mtime_ns != self.mtime_ns:
            raise ValueError(
                f"{self.path}: the file changed on disk after it was opened lazily "
                f"(size {self.size} -> {stat.st_size} bytes); open it again"
            )
        if needed_bytes > stat.st_size:
            raise ValueError(f"{self.path}: truncated file: reading needs {needed_bytes} bytes, it has {stat.st_size}")


def reading_error(path: Any, exc: BaseException, what: str = "cannot decode image data") -> ValueError:
    """A ``ValueError`` naming ``path`` for a decoder's own error (struct, zlib, tifffile, ...)."""
    return ValueError(f"{path}: {what} ({type(exc).__name__}: {exc})")
