"""What an operation will cost, known before it runs, and the caps past which it is refused.

Every operation has a cost rule, ``cost(shape, dtype, **params) -> Cost``: the memory
one call of its kernel allocates (bytes, beyond its input) and the time it takes
(seconds on one core), estimated from the shape of what the call receives, the dtype
and the parameters. Operations whose cost grows only with the number of pixels use
:func:`pixelwise`; the others declare their own rule next to their kernel (a median's
grows with its footprint, a non-local means' with its search window). The engine
evaluates the rule before anything is computed, on what one call receives: a frame,
a block of frames for kernels that take several, or, for dask input, one chunk with
its halo, so that a lazy stack of any length costs what one task allocates.

Past a cap the engine refuses with a :class:`CostError` (a ``ValueError``) giving the
estimate, the cap and what to change:

- :data:`MAX_BYTES`: the most memory one call may need (for in-memory input, with the
  whole result it fills). Default: half of the memory this process may use
  (physical memory, a cgroup limit, or ``RLIMIT_AS``, whichever is smallest); set
  ``STACKLAB_MAX_BYTES`` before start-up, or assign at run time; ``None`` removes it.
- :data:`MAX_SECONDS`: the longest estimated time for one frame. Default 30 s; set
  ``STACKLAB_MAX_SECONDS``, or assign at run time; ``None`` removes it.

The rules' rates are twice those measured on one idle core of a 2-core cloud machine
(``benchmarks/bench_costs.py`` prints estimate / measured), a margin for a busy machine.

The same style as the readers' cap (``io.MAX_EAGER_BYTES`` and
``STACKLAB_MAX_EAGER_BYTES``). Estimates are meant to be right within a factor of a
few: they decide between "runs" and "would exhaust the machine or hang it", not
between 2 and 3 seconds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "MAX_BYTES",
    "MAX_SECONDS",
    "Cost",
    "CostError",
    "pixelwise",
    "gaussian",
    "nbytes",
    "human_bytes",
    "check",
]


def _memory_available() -> int | None:
    """Bytes this process may use: physical memory, a cgroup v2/v1 limit and RLIMIT_AS, the smallest."""
    found = []
    try:
        found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as limit:
                text = limit.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            found.append(int(text))
    try:
        import resource  # POSIX only
    except ImportError:
        resource = None
    if resource is not None:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            found.append(soft)
    return min(found) if found else None


def _env_number(name: str) -> float | None:
    try:
        value = float(os.environ[name])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _default_max_bytes() -> int:
    """``$STACKLAB_MAX_BYTES`` if set, else half of the memory available (4 GiB where unknown)."""
    given = _env_number("STACKLAB_MAX_BYTES")
    if given is not None:
        return int(given)
    available = _memory_available()
    return available // 2 if available else 4 * 2**30


def _default_max_seconds() -> float:
    """``$STACKLAB_MAX_SECONDS`` if set, else 30 seconds per frame."""
    given = _env_number("STACKLAB_MAX_SECONDS")
    return given if given is not None else 30.0


#: Most memory (bytes) one kernel call may need, read at call time: for in-memory input
#: the estimate includes the whole result. ``None`` removes the cap.
MAX_BYTES: int | None = _default_max_bytes()
#: Longest estimated time (seconds) for one frame, read at call time. ``None`` removes the cap.
MAX_SECONDS: float | None = _default_max_seconds()


class CostError(ValueError):
    """An operation would need more memory or time than :data:`MAX_BYTES` / :data:`MAX_SECONDS`."""


@dataclass(frozen=True)
class Cost:
    """Estimated peak memory and time of one kernel call.

    Attributes
    ----------
    bytes : int
        Memory the call allocates beyond its input (temporaries and result).
    seconds : float
        Time on one core, within a factor of a few.
    why : str
        What drives the cost, for the message when it is refused
        (``"a 255 x 255 footprint at every pixel"``).
    hint : str
        What the user can change (``"a smaller size"``).
    """

    bytes: float = 0
    seconds: float = 0.0
    why: str = ""
    hint: str = ""

    def then(self, other: Cost) -> Cost:
        """This call followed by ``other``: the larger peak, the sum of the times."""
        return Cost(max(self.bytes, other.bytes), self.seconds + other.seconds,
                    "; ".join(filter(None, (self.why, other.why))), self.hint or other.hint)


def nbytes(shape: Sequence[int], dtype: Any) -> int:
    """Bytes of an array of ``shape`` and ``dtype``, in exact integers (no 64-bit overflow)."""
    return math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize


def _float_size(dtype: Any) -> int:
    return 8 if np.dtype(dtype).itemsize > 4 or np.dtype(dtype).kind == "c" else 4


def pixelwise(shape: Sequence[int], dtype: Any, *, copies: float = 4, ns_per_pixel: float = 20, **_: Any) -> Cost:
    """The cost of an operation linear in the number of pixels: ``copies`` float arrays, ``ns_per_pixel``.

    The default rule of every operation that declares none: a float copy of
    the input, the result and two temporaries, 20 ns a pixel.
    """
    pixels = math.prod(int(s) for s in shape)
    return Cost(copies * pixels * _float_size(dtype), pixels * ns_per_pixel * 1e-9)


#: seconds per kernel tap and pixel of a 1-D correlation pass (scipy.ndimage.correlate1d, gaussian_filter1d)
TAP_SECONDS = 1e-9


def gaussian(shape: Sequence[int], dtype: Any, sigma: float | Sequence[float], truncate: float = 4.0,
             passes: int = 1) -> Cost:
    """Cost of ``passes`` separable Gaussian filters of ``sigma`` (one or one per axis) truncated at ``truncate``.

    Each axis costs one tap per pixel per kernel tap (``2 * ceil(truncate * sigma) + 1`` of them).
    """
    sigmas = tuple(sigma) if isinstance(sigma, Sequence) else (sigma,) * len(shape)
    taps = sum(2 * math.ceil(truncate * s) + 1 for s in sigmas)
    pixels = math.prod(int(n) for n in shape)
    widest = max(2 * math.ceil(truncate * s) + 1 for s in sigmas)
    return Cost(4 * pixels * _float_size(dtype), passes * pixels * (taps * TAP_SECONDS + 10e-9),
                f"a Gaussian kernel of {widest} taps", "a smaller sigma or truncate")


def human_bytes(size: float) -> str:
    if size >= 2**70:  # past float range for exact integers; the number no longer helps
        return "more than 1024 EiB"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024 or unit == "EiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"  # pragma: no cover


def human_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.3g} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"


def _advice(*options: str) -> str:
    options = tuple(filter(None, options))
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + ", or " + options[-1]


def check(name: str, cost: Cost, *, what: str, frames: int = 1, result: float = 0) -> None:
    """Raise :class:`CostError` when one call's memory or time per frame passes the caps.

    ``cost`` is one call's estimate for ``what`` (``"a (512, 512) uint8 frame"``),
    a call covering ``frames`` frames; ``result`` is the bytes of the result
    held with it (the whole result for in-memory input). The message gives the
    estimate, what drives it, the cap and what to change. The caps are read at
    call time, so a user may change them while running.
    """
    driven = f" ({cost.why})" if cost.why else ""
    peak = cost.bytes + result
    if MAX_BYTES is not None and peak > MAX_BYTES:
        held = f" and {human_bytes(result)} for the result" if result else ""
        raise CostError(
            f"{name} would need about {human_bytes(cost.bytes)} for {what}{driven}{held}, more than "
            f"napari_stacklab.costs.MAX_BYTES = {human_bytes(MAX_BYTES)}; try "
            + _advice(cost.hint, "a dask array in smaller chunks" if result > cost.bytes else "",
                      "raising the limit (STACKLAB_MAX_BYTES)")
        )
    per_frame = cost.seconds / max(frames, 1)
    if MAX_SECONDS is not None and per_frame > MAX_SECONDS:
        raise CostError(
            f"{name} would take about {human_seconds(per_frame)} per frame, for {what}{driven}, more than "
            f"napari_stacklab.costs.MAX_SECONDS = {human_seconds(MAX_SECONDS)}; try "
            + _advice(cost.hint, "raising the limit (STACKLAB_MAX_SECONDS)")
        )
