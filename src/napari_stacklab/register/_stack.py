"""Drift correction and frame-by-frame alignment of time-lapse stacks.

Transforms are estimated once (explicitly computed: they are small) and then
applied lazily, so the same shifts or transforms can be reused on every other
channel of the acquisition.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Callable, Literal, get_args

import numpy as np

from .. import _backend
from .._validation import check_ndim, check_real, float_dtype
from ..channels import Channels, grey
from ..lift import reduce_frames
from ..registry import ImageRef, Range, operation, validated
from ._ecc import (
    MIN_CORRELATION,
    ECCError,
    _default_levels,
    _Reference,
    _starts,
    blur,
    host_fallback,
    refine_translation,
)
from ._features import from_features
from ._phasecorr import Window, cross_power, peak_shift, spectrum
from ._transform import Transform
from ._warp import WarpMode, _fill_limits, _out_dtype, warp

__all__ = ["drift", "apply_drift", "stack_transforms", "drift_correct", "align_stack", "REFERENCES",
           "STACK_MODELS", "STACK_METHODS"]

Reference = Literal["first", "mean", "previous"]
#: What each frame is aligned to: the first frame, the mean frame, or the previous frame (cumulated).
REFERENCES: tuple[str, ...] = get_args(Reference)
StackModel = Literal["euclidean", "translation", "similarity", "affine"]
#: Motion models of :func:`stack_transforms` (the first is the default).
STACK_MODELS: tuple[str, ...] = get_args(StackModel)
StackMethod = Literal["ecc", "features"]
#: How :func:`stack_transforms` finds each transform: ECC with its automatic starts, or matched
#: keypoints (:func:`from_features`) refined by ECC.
STACK_METHODS: tuple[str, ...] = get_args(StackMethod)


def _check_stack(stack: Any) -> None:
    check_ndim(stack, 3, "stack", max_ndim=3)
    check_real(stack, "stack")


class _Prepared:
    """A reference prepared once and handed to every frame's task.

    dask would otherwise hash its (large) arrays to name the graph; a random
    token per instance names it at no cost.
    """

    def __init__(self, **parts: Any) -> None:
        self.__dict__.update(parts)
        self._token = uuid.uuid4().hex

    def __dask_tokenize__(self) -> str:
        return self._token


def _per_frame(stack: Any, reference: str, prepare: Callable, kernel: Callable, out_shape: tuple,
               **params: Any) -> np.ndarray:
    """``kernel(frame, prepare(reference_frame))`` for every frame, in parallel over dask's threads.

    With ``reference="previous"`` the kernel gets frame pairs ``(t - 1, t)``
    and prepares the reference of each pair itself.
    """
    if _backend.is_dask(stack):
        lazy = stack
    else:  # one task per frame for dask's threads; name=False: no hashing of the whole stack to name it
        lazy = _backend.dask_module().from_array(stack, chunks=(1, -1, -1), name=False,
                                                 meta=_backend.empty_like_meta(stack, stack.dtype))
    if reference == "previous":
        pairs = _backend.dask_module().stack([lazy[:-1], lazy[1:]], axis=1)
        return _backend.materialize(reduce_frames(_pair_kernel, pairs, frame_ndim=3, out_shape=out_shape,
                                                  prepare=prepare, kernel=kernel, params=params))
    ref = lazy[0] if reference == "first" else lazy.mean(axis=0, dtype=np.float64).astype(float_dtype(stack.dtype))
    ref = _backend.like(_backend.materialize(ref), stack)  # computed once, explicitly
    return _backend.materialize(reduce_frames(_ref_kernel, lazy, out_shape=out_shape, kernel=kernel,
                                              prepared=prepare(ref, **params), params=params))


def _ref_kernel(frame: Any, *, kernel: Callable, prepared: _Prepared, params: dict) -> np.ndarray:
    return kernel(frame, prepared, **params)


def _pair_kernel(pair: Any, *, prepare: Callable, kernel: Callable, params: dict) -> np.ndarray:
    return kernel(pair[1], prepare(pair[0], **params), **params)


# -- drift ---------------------------------------------------------------------
def _smooth(frame: Any, dtype: Any) -> Any:
    """A frame as the translation refinement sees it: float, mean-free, Gaussian-smoothed (sigma 1)."""
    frame = frame.astype(dtype, copy=False)
    return blur(frame - frame.mean(dtype=np.float64).astype(dtype), 1.0)


def _prepare_drift(frame: Any, *, window: str, **_: Any) -> _Prepared:
    xp, _ = _backend.get_namespace(frame)
    dtype = float_dtype(frame.dtype)
    template = _smooth(frame, dtype)
    return _Prepared(spectrum=spectrum(frame, window), dtype=dtype, template=template,
                     gradients=tuple(xp.gradient(template)))


def _drift_kernel(frame: Any, reference: _Prepared, *, window: str, upsample: int, refine: bool) -> np.ndarray:
    """``(row shift, col shift, correlation)`` of one frame; the correlation is NaN if there is none."""
    product = cross_power(reference.spectrum, spectrum(frame, window))
    smoothed = _smooth(frame, reference.dtype)
    if refine:
        start, _ = peak_shift(product, frame.shape, upsample=1, parabolic=True)
        try:
            refined, rho_start, rho_end, converged = refine_translation(
                reference.template, reference.gradients, smoothed, start
            )
            # ECC polishes phase correlation's estimate (or corrects it, on few photons) unless it correlates worse
            if converged and rho_end >= rho_start - _WORSE:
                return np.r_[refined, rho_end]
        except ECCError:
            pass
    shift, _ = peak_shift(product, frame.shape, upsample=upsample)
    try:
        correlation = refine_translation(reference.template, reference.gradients, smoothed, shift, max_iter=0)[1]
    except ECCError:  # no overlap, or a constant frame
        correlation = np.nan
    return np.r_[shift, correlation]


#: A refined drift whose correlation is lower by more than this than phase correlation's is not kept.
_WORSE = 0.01


@validated
def drift(
    stack: ImageRef,
    *,
    reference: Reference = "first",
    upsample: Annotated[int, Range(1, 1000)] = 20,
    window: Window = "hann",
    refine: bool = True,
) -> np.ndarray:
    """Per-frame drift of a time-lapse, by phase correlation refined with ECC.

    The reference frame is transformed once; every frame costs one FFT, a
    sub-pixel peak search and, with ``refine``, a few translation-only ECC
    iterations on the true overlap of the two frames. Frames are processed in
    parallel with dask (eager stacks too), and only the shifts are computed.

    Parameters
    ----------
    stack : array, shape ``(T, M, N)``
        One channel of the time-lapse (NumPy, CuPy or dask).
    reference : {"first", "mean", "previous"}
        Align to the first frame, to the mean frame, or each frame to the
        previous one with the shifts summed up (for slow changes of the
        sample that make the first frame a poor reference).
    upsample : int
        Sub-pixel precision ``1 / upsample`` of the phase correlation.
    window : {"hann", "none"}
        Apodisation before the FFT.
    refine : bool
        Polish each phase-correlation shift with ECC (translation model,
        inverse compositional, full resolution) over the true overlap of the
        two frames; the polished shift is kept where ECC converges without
        lowering the correlation. Phase correlation alone is biased by the
        non-periodic frame border by up to ~0.1 px (and can miss by pixels on
        noisy frames with few photons); the refined shift is accurate to
        ~0.01 px on textured frames.
    device : {"auto", "cpu", "gpu"}, optional
        Where to compute; default: where ``stack`` is.

    Returns
    -------
    ndarray of float64, shape ``(T, 2)``
        ``(row, col)`` displacement of every frame relative to the reference
        frame (first frame for ``"previous"``). Apply it with
        :func:`apply_drift` to this or any other channel, or with
        :func:`warp_points` to point coordinates.

    Raises
    ------
    ValueError
        When a frame does not match its reference: its correlation with the
        reference (smoothed, over their overlap, at the shift found) stays
        below 0.25 -- a blank or corrupted frame, or a scene that changed
        completely. The message lists the frames.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> frame = data.camera().astype(np.float32)
    >>> stack = np.stack([np.roll(frame, (2 * t, -t), axis=(0, 1)) for t in range(3)])
    >>> drift(stack, window="none", refine=False).tolist()
    [[0.0, 0.0], [2.0, -1.0], [4.0, -2.0]]
    """
    _check_stack(stack)
    if stack.shape[0] == 1:
        return np.zeros((1, 2))
    found = _per_frame(stack, reference, _prepare_drift, _drift_kernel, (3,), upsample=upsample, window=window,
                       refine=refine)
    shifts, correlation = found[:, :2], found[:, 2]
    bad = ~(correlation >= MIN_CORRELATION)  # (NaN: a constant frame)
    if bad.any():
        first = 1 if reference == "previous" else 0
        listed = ", ".join(f"{t + first} ({c:.2f})" if np.isfinite(c) else f"{t + first} (none)"
                           for t, c in zip(np.flatnonzero(bad)[:8], correlation[bad][:8]))
        raise ValueError(
            f"drift: {int(bad.sum())} frame(s) do not match the {reference} frame (correlation at the found shift "
            f"below {MIN_CORRELATION}; frame (correlation): {listed}); check those frames, or try "
            "reference='previous' for a sample that changes over time"
        )
    if reference == "first":
        shifts[0] = 0.0  # the reference itself, exactly
    if reference == "previous":
        shifts = np.concatenate([np.zeros((1, 2)), np.cumsum(shifts, axis=0)])
    return np.asarray(shifts, dtype=np.float64)


@operation(menu="register", lift=False, frame_ndim=3, dtype=lambda dtype, order, **_: _out_dtype(dtype, order),
           limits=_fill_limits, name="apply_drift",
           title="Apply drift (per-frame shifts)")
def apply_drift(
    image,
    *,
    shifts: list[tuple[float, float]],
    order: Annotated[int, Range(0, 5)] = 1,
    cval: float = 0.0,
    mode: WarpMode = "constant",
):
    """Undo drift: resample frame ``t`` of a stack by ``-shifts[t]``.

    Parameters
    ----------
    image : array, shape ``(T, ..., M, N)``
        The stack the shifts were measured on, or another channel of the same
        acquisition; every frame at time ``t`` (all channels / planes) gets
        ``shifts[t]``. Dask stays lazy, one chunk per frame.
    shifts : list of [row, col], shape ``(T, 2)``
        As returned by :func:`drift` (an array or a list of pairs: a recipe
        records the list).
    order : int
        Spline order of the resampling, 0 (nearest: labels stay labels) to 5.
    cval : float
        Value of pixels shifted in from outside the frame.
    mode : {"constant", "nearest", "reflect", "mirror", "wrap"}
        How a frame is extended beyond its edges.

    Returns
    -------
    array, shape of ``image``
        float32 (float64 for float64 input), or the input dtype for
        ``order=0``. No halo.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.zeros((2, 6, 6)); stack[0, 2, 2] = stack[1, 3, 4] = 1
    >>> fixed = apply_drift(stack, shifts=[[0, 0], [1, 2]])
    >>> bool(fixed[1, 2, 2] == 1)
    True
    """
    # Not lifted: frame t needs shifts[t], and a lifted kernel is not told which frame it computes; warp
    # applies one transform per index of the first axis and keeps one chunk per frame.
    return _shifted(image, shifts, order=order, cval=cval, mode=mode)


def _shifted(data: Any, shifts: Any, **interpolation: Any) -> Any:
    """``data`` with frame ``t`` moved back by ``shifts[t]`` (lazy for dask)."""
    if len(shifts) == 0:
        raise ValueError("shifts must hold one [row, col] shift per frame, got none")
    if len(shifts) != data.shape[0]:
        raise ValueError(f"shifts has {len(shifts)} rows but the stack has {data.shape[0]} frames along axis 0")
    return warp(data, [Transform.from_shift(s) for s in shifts], **interpolation)


def _prepare_ecc(frame: Any, *, model: str, method: str, levels: int, **_: Any) -> _Prepared:
    """The reference frame's pyramid and ECC precomputation, made once for every frame."""
    ecc_reference = _Reference(frame, model=model, levels=levels, sigma=1.0, dtype=float_dtype(frame.dtype))
    return _Prepared(ecc=ecc_reference, frame=frame if method == "features" else None)


def _transform_kernel(frame: Any, reference: _Prepared, *, model: str, method: str, levels: int) -> np.ndarray:
    initial, starts = None, _starts("phase")
    if method == "features":
        initial, starts = from_features(reference.frame, frame, model=model), ()
    try:
        found = reference.ecc.align(frame, initial=initial, starts=starts, max_iter=100, eps=1e-6, tol=0.05,
                                    min_correlation=MIN_CORRELATION)
    except ECCError:
        if initial is None:
            raise
        return initial.matrix  # ECC could not polish the keypoint fit: keep it
    return found.matrix


@validated
def stack_transforms(
    stack: ImageRef, *, model: StackModel = "euclidean", reference: Reference = "first", method: StackMethod = "ecc"
) -> list[Transform]:
    """Per-frame transforms of a stack (StackReg-like), computed once.

    Parameters
    ----------
    stack : array, shape ``(T, M, N)``
        One channel (frames are processed in parallel with dask).
    model : {"euclidean", "translation", "similarity", "affine"}
        Motion model per frame.
    reference : {"first", "mean", "previous"}
        As in :func:`drift`; ``"previous"`` composes the frame-to-frame
        transforms.
    method : {"ecc", "features"}
        ``"ecc"``: :func:`ecc` with its automatic starts (the reference
        frame's pyramid is prepared once). ``"features"``: matched ORB
        keypoints and RANSAC (:func:`from_features`), then ECC from there (the
        keypoint fit is kept where ECC cannot polish it); for large motions
        between frames.
    device : {"auto", "cpu", "gpu"}, optional
        Where to compute; default: where ``stack`` is.

    Returns
    -------
    list of Transform
        Reference -> frame ``t`` transforms (identity for the first frame
        with ``"first"`` or ``"previous"``); pass them to :func:`warp`.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> from napari_stacklab.register import Transform, warp
    >>> frame = data.camera()[::2, ::2].astype(np.float32)
    >>> moved = warp(frame, Transform.from_shift([0, -3]), mode="nearest")  # content moves 3 px right
    >>> [t.shift.round(2).tolist() for t in stack_transforms(np.stack([frame, moved]), model="translation")]
    [[0.0, 0.0], [0.0, 3.0]]
    """
    _check_stack(stack)
    return host_fallback("stack_transforms", _transforms, stack, model=model, reference=reference, method=method)


def _transforms(stack: Any, *, model: str, reference: str, method: str) -> list[Transform]:
    if stack.shape[0] == 1:
        return [Transform.identity(2, model)]
    levels = _default_levels(tuple(stack.shape[1:]) * 2)
    matrices = _per_frame(stack, reference, _prepare_ecc, _transform_kernel, (3, 3), model=model, method=method,
                          levels=levels)
    if reference == "first":
        matrices[0] = np.eye(3)  # the reference itself, exactly
    if reference == "previous":
        chained = [np.eye(3)]
        for pair in matrices:
            chained.append(pair @ chained[-1])
        matrices = chained
    return [Transform(model=model, matrix=m, metadata={"method": method}) for m in matrices]


def _by_time_then_channel(image: Any, channel_axis: int | None, rgb: bool) -> tuple[Any, Any]:
    """The grey stack to estimate on (luminance, or the channels' mean) and the data as ``(T, C, ...)``."""
    if channel_axis is None:
        return image, image
    moved = _backend.array_module(image).moveaxis(image, channel_axis, 1)
    return grey(image, Channels(channel_axis, rgb)), moved


def _channel_back(result: Any, channel_axis: int | None) -> Any:
    return result if channel_axis is None else _backend.array_module(result).moveaxis(result, 1, channel_axis)


@operation(menu="register", lift=False, frame_ndim=3, name="drift_correct", title="Drift correction",
           channels="native")
def drift_correct(
    image,
    *,
    reference: Reference = "first",
    upsample: Annotated[int, Range(1, 1000)] = 20,
    window: Window = "hann",
    refine: bool = True,
    order: Annotated[int, Range(0, 5)] = 1,
    channel_axis: int | None = None,
    rgb: bool = False,
):
    """Remove translational drift from a time-lapse ``(T, M, N)``.

    Not a lifted frame map: the shifts are estimated across all frames
    together, and frame ``t`` is then moved by ``shifts[t]`` (a lifted kernel
    is not told which frame it computes; declared with the whole stack as one
    frame it would hold the time-lapse in one chunk).

    Parameters
    ----------
    image : array, shape ``(T, M, N)``
        One channel of a time-lapse. Shifts are measured once (phase
        correlation, :func:`drift`), then applied lazily. With a colour or
        channel axis (``rgb=True``, ``channel_axis``) they are measured once on
        the luminance (colour) or the mean of the channels, and every channel
        is moved alike.
    reference : {"first", "mean", "previous"}
        Frame every frame is aligned to (``"previous"`` sums frame-to-frame
        shifts).
    upsample : int
        Sub-pixel precision ``1 / upsample``.
    window : {"hann", "none"}
        Apodisation before the FFT.
    refine : bool
        Polish each shift with ECC (see :func:`drift`).
    order : int
        Interpolation order of the resampling.

    Returns
    -------
    array, shape ``(T, M, N)``
        float32 (float64 for float64 input; input dtype for ``order=0``);
        pixels shifted in from outside are 0. No halo (whole frames).

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> from napari_stacklab.register import Transform, warp
    >>> frame = data.camera()[::2, ::2].astype(np.float32)
    >>> moves = [Transform.from_shift([-0.7 * t, -1.6 * t]) for t in range(3)]  # content drifts down-right
    >>> stack = np.stack([warp(frame, m, mode="nearest") for m in moves])
    >>> out = drift_correct(stack)
    >>> from napari_stacklab.register import similarity_score
    >>> core = (slice(10, -10), slice(10, -10))
    >>> bool(similarity_score(out[2][core], frame[core]) > similarity_score(stack[2][core], frame[core]))
    True
    >>> round(similarity_score(out[2][core], frame[core]), 2)
    0.99
    """
    estimate, data = _by_time_then_channel(image, channel_axis, rgb)
    shifts = drift(estimate, reference=reference, upsample=upsample, window=window, refine=refine)
    return _channel_back(_shifted(data, shifts, order=order), channel_axis)


@operation(menu="register", lift=False, frame_ndim=3, name="align_stack", title="Align stack (ECC per frame)",
           channels="native")
def align_stack(
    image,
    *,
    model: StackModel = "euclidean",
    reference: Reference = "first",
    method: StackMethod = "ecc",
    order: Annotated[int, Range(0, 5)] = 1,
    channel_axis: int | None = None,
    rgb: bool = False,
):
    """Align every frame of a stack ``(T, M, N)`` to a reference with ECC (StackReg-like).

    Not a lifted frame map, for the reasons of :func:`drift_correct`: the
    transforms come from the frames together, and frame ``t`` gets its own.

    Parameters
    ----------
    image : array, shape ``(T, M, N)``
        One channel. Transforms are estimated once (:func:`stack_transforms`),
        then applied lazily. With a colour or channel axis they are estimated
        once on the luminance (colour) or the mean of the channels, and every
        channel is moved alike.
    model : {"euclidean", "translation", "similarity", "affine"}
        Motion model per frame.
    reference : {"first", "mean", "previous"}
        Frame every frame is aligned to.
    method : {"ecc", "features"}
        ECC with automatic starts, or matched keypoints (ORB + RANSAC)
        refined by ECC (see :func:`stack_transforms`).
    order : int
        Interpolation order of the resampling.

    Returns
    -------
    array, shape ``(T, M, N)``
        float32 (float64 for float64 input; input dtype for ``order=0``).
        No halo (whole frames).

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> from napari_stacklab.register import Transform, warp
    >>> frame = data.camera()[::2, ::2].astype(np.float32)
    >>> moved = warp(frame, Transform.from_shift([-2, 0]), mode="nearest")  # content moves 2 px down
    >>> out = align_stack(np.stack([frame, moved]), model="translation")
    >>> bool(np.abs(out[1, 8:-8, 8:-8] - frame[8:-8, 8:-8]).max() < 1)
    True
    """
    estimate, data = _by_time_then_channel(image, channel_axis, rgb)
    _check_stack(estimate)
    # the registry moves the whole operation to the CPU if the GPU cannot run it
    transforms = _transforms(estimate, model=model, reference=reference, method=method)
    return _channel_back(warp(data, transforms, order=order), channel_axis)
