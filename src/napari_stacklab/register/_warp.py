"""Resample images through a :class:`Transform`, eagerly or lazily, frame by frame.

:func:`warp` takes a :class:`Transform` (or one per frame); the registry
operation :func:`apply_transform` takes the transform as the plain dictionary
of :meth:`Transform.to_dict`, so that a recipe can record and replay it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Sequence, get_args

import numpy as np

from .. import _backend
from .._validation import check_ndim, check_number, check_numeric, float_dtype
from ..frames import fill_range
from ..lift import map_frames
from ..registry import ImageRef, Range, operation, validated
from ._transform import Transform, scale_translate

__all__ = ["warp", "warp_frame", "warp_points", "apply_transform", "transform_of", "MODES"]

WarpMode = Literal["constant", "nearest", "reflect", "mirror", "wrap"]
#: How the moving image is extended beyond its edges (``scipy.ndimage`` modes).
MODES: tuple[str, ...] = get_args(WarpMode)


def _out_dtype(dtype: Any, order: int) -> np.dtype:
    """Nearest-neighbour keeps the dtype (labels stay labels); interpolation computes in float."""
    return np.dtype(dtype) if order == 0 else float_dtype(dtype)


def warp_frame(frame: Any, transform: Transform, *, output_shape=None, order=1, cval=0.0, mode="constant") -> Any:
    """Resample one frame ``(M, N)`` (or ``(P, M, N)``) onto the fixed grid of ``output_shape``."""
    xp, ndi = _backend.get_namespace(frame)
    dtype = _out_dtype(frame.dtype, order)
    frame = frame.astype(dtype, copy=False)
    output_shape = tuple(frame.shape) if output_shape is None else tuple(output_shape)
    if transform.is_affine:
        matrix = transform.matrix
        linear = matrix[:-1, :-1]
        if np.count_nonzero(linear - np.diag(np.diag(linear))) == 0:
            # Diagonal: scipy's faster zoom/shift path.
            return ndi.affine_transform(
                frame, xp.asarray(np.diag(linear)), offset=tuple(matrix[:-1, -1]),
                output_shape=output_shape, order=order, mode=mode, cval=cval,
            ).astype(dtype, copy=False)
        return ndi.affine_transform(
            frame, xp.asarray(matrix), output_shape=output_shape, order=order, mode=mode, cval=cval
        ).astype(dtype, copy=False)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in output_shape], indexing="ij"), -1)
    coords = transform.apply_points(grid.reshape(-1, len(output_shape))).T.reshape((len(output_shape),) + output_shape)
    return ndi.map_coordinates(frame, xp.asarray(coords), order=order, mode=mode, cval=cval).astype(dtype, copy=False)


def _pick(transforms: list, batch_shape: tuple, index: tuple) -> Transform:
    if len(transforms) == 1:
        return transforms[0]
    if len(transforms) == int(np.prod(batch_shape)):
        return transforms[int(np.ravel_multi_index(index, batch_shape))]
    return transforms[index[0]]


def _warp_block(block, transforms, frame_ndim, full_batch, out_frame, kwargs, block_info=None):
    """Warp every frame of a block, each with the transform of its global frame index."""
    n_batch = block.ndim - frame_ndim
    starts = [loc[0] for loc in block_info[0]["array-location"][:n_batch]] if block_info else [0] * n_batch
    xp, _ = _backend.get_namespace(block)
    out = xp.empty(block.shape[:n_batch] + out_frame, dtype=_out_dtype(block.dtype, kwargs["order"]))
    for local in np.ndindex(*block.shape[:n_batch]):
        index = tuple(s + i for s, i in zip(starts, local))
        out[local] = warp_frame(block[local], _pick(transforms, full_batch, index), output_shape=out_frame, **kwargs)
    return out


@validated
def warp(
    moving: ImageRef,
    transform: Transform | Sequence[Transform],
    *,
    output_shape: Sequence[int] | None = None,
    order: Annotated[int, Range(0, 5)] = 1,
    cval: float = 0.0,
    mode: WarpMode = "constant",
) -> Any:
    """Resample ``moving`` onto the fixed image's grid.

    Parameters
    ----------
    moving : array, shape ``(..., M, N)`` (or ``(..., P, M, N)`` for 3-D transforms)
        Image or stack (NumPy, CuPy or dask; dask stays lazy, whole frames per
        chunk). Leading axes are batch axes; the transform acts on the last
        ``transform.ndim`` axes only.
    transform : Transform or sequence of Transform
        Fixed -> moving transform (as returned by :func:`ecc`,
        :func:`from_points`, ...). A sequence gives one transform per frame
        (C order over the batch axes) or one per index of the first batch
        axis (e.g. per time point, shared by every channel).
    output_shape : sequence of int, optional
        Frame shape of the result (the fixed image's ``shape[-D:]``); default
        the moving frame shape.
    order : int
        Spline order, 0 (nearest) to 5. Orders above 1 can overshoot (negative
        values near edges).
    cval : float
        Value of pixels that map outside the moving image.
    mode : {"constant", "nearest", "reflect", "mirror", "wrap"}
        How the moving image is extended (``scipy.ndimage`` modes).
    device : {"auto", "cpu", "gpu"}, optional
        Where to compute; default: where ``moving`` is. ``"gpu"`` without a
        usable GPU runs on the CPU with a ``GPUFallbackWarning``.

    Returns
    -------
    array, shape ``(..., *output_shape)``
        float32 (float64 for float64 input); ``order=0`` keeps the input dtype,
        so label images stay integer. No halo: each output frame needs its
        whole input frame.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_stacklab.register import Transform
    >>> img = np.zeros((8, 8), np.uint16); img[3, 4] = 100
    >>> out = warp(img, Transform.from_shift([1, 2]))   # fixed (2, 2) looks at moving (3, 4)
    >>> out.dtype, float(out[2, 2])
    (dtype('float32'), 100.0)
    """
    check_numeric(moving, "moving")
    transforms = _transforms(transform)
    frame_ndim = transforms[0].ndim
    check_ndim(moving, frame_ndim, "moving")
    out_frame = tuple(moving.shape[-frame_ndim:]) if output_shape is None else tuple(int(s) for s in output_shape)
    if len(out_frame) != frame_ndim or min(out_frame) < 1:
        raise ValueError(f"output_shape must give {frame_ndim} positive sizes, got {output_shape!r}")
    batch_shape = tuple(moving.shape[:-frame_ndim])
    allowed = {1, int(np.prod(batch_shape))} | set(batch_shape[:1])
    if len(transforms) not in allowed:
        raise ValueError(
            f"transform: got {len(transforms)} transforms for a stack with batch shape {batch_shape}; "
            "give one, one per frame, or one per index of the first axis"
        )
    kwargs = {"order": int(order), "cval": float(cval), "mode": mode}
    if len(transforms) == 1:
        return map_frames(
            warp_frame, moving, frame_ndim=frame_ndim, dtype=_out_dtype(moving.dtype, order),
            frame_shape=out_frame, transform=transforms[0], output_shape=out_frame, **kwargs,
        )
    if not _backend.is_dask(moving):
        return _warp_block(moving, transforms, frame_ndim, batch_shape, out_frame, kwargs)
    n_batch = len(batch_shape)
    whole = moving.rechunk({axis: -1 for axis in range(n_batch, moving.ndim)})
    dtype = _out_dtype(moving.dtype, order)
    return whole.map_blocks(
        _warp_block, transforms, frame_ndim, batch_shape, out_frame, kwargs,
        chunks=whole.chunks[:n_batch] + tuple((s,) for s in out_frame),
        dtype=dtype, meta=_backend.empty_like_meta(moving, dtype),
    )


def warp_points(
    points: Any,
    transform: Transform | Sequence[Transform],
    *,
    scale_fixed: Any = None,
    scale_moving: Any = None,
    translate_fixed: Any = None,
    translate_moving: Any = None,
) -> Any:
    """Move coordinates drawn on the moving image to where :func:`warp` puts that image.

    :func:`warp` resamples the moving image onto the fixed grid; this sends
    annotations of the moving image (napari Points, Shapes vertices, tracked
    positions) the same way, with the inverse of the fixed -> moving
    ``transform``, so they land on the registered image.

    Parameters
    ----------
    points : array, shape ``(K, N)``, or a list of such arrays
        Coordinates in napari's axis order (a Points layer's ``data``, or a
        Shapes layer's ``data``, one vertex array per shape). The last
        ``transform.ndim`` columns are spatial; leading columns (time,
        channel, ...) are kept as they are.
    transform : Transform or sequence of Transform
        Fixed -> moving transform, as for :func:`warp`. A sequence gives one
        transform per index of the first axis (per frame): the first column
        of ``points`` says which one applies. Per-frame drift from
        :func:`drift` is ``[Transform.from_shift(s) for s in shifts]``.
    scale_fixed, scale_moving, translate_fixed, translate_moving : sequence of float, optional
        napari ``scale`` and ``translate`` (only the spatial entries are used)
        when the coordinates are in world units: ``*_moving`` of the layer the
        points were drawn on, ``*_fixed`` of the registered layer (default:
        the moving ones). Without them the coordinates are pixels.

    Returns
    -------
    ndarray of float64, shape ``(K, N)``, or a list of them
        The moved coordinates, in the same units as the input.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_stacklab.register import Transform
    >>> t = Transform.from_shift([2.0, -3.0])                 # moving content sits 2 rows down, 3 cols left
    >>> warp_points(np.array([[12.0, 7.0]]), t).tolist()      # a point on that content goes back
    [[10.0, 10.0]]
    >>> per_frame = [Transform.from_shift(s) for s in [[0, 0], [1.0, 1.0]]]
    >>> warp_points(np.array([[1, 5.0, 5.0]]), per_frame).tolist()   # (t, row, col)
    [[1.0, 4.0, 4.0]]
    """
    transforms = _transforms(transform)
    ndim = transforms[0].ndim
    if isinstance(points, (list, tuple)) and points and np.ndim(points[0]) == 2:  # Shapes: vertices per shape
        kwargs = {"scale_fixed": scale_fixed, "scale_moving": scale_moving, "translate_fixed": translate_fixed,
                  "translate_moving": translate_moving}
        return [warp_points(vertices, transforms, **kwargs) for vertices in points]
    coords = np.array(_backend.materialize(points) if hasattr(points, "shape") else points, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] < ndim or (len(transforms) > 1 and coords.shape[1] < ndim + 1):
        need = ndim + (len(transforms) > 1)
        raise ValueError(f"points must have shape (K, >= {need}) for these transforms, got {coords.shape}")
    if not np.isfinite(coords).all():
        raise ValueError("points must be finite")
    to_pixels = np.linalg.inv(scale_translate(scale_moving, translate_moving, ndim))
    to_world = scale_translate(scale_moving if scale_fixed is None else scale_fixed,
                               translate_moving if translate_fixed is None else translate_fixed, ndim)
    if len(transforms) == 1:
        frames = np.zeros(len(coords), dtype=int)
    else:
        frames = np.round(coords[:, 0]).astype(int)
        if frames.size and (frames.min() < 0 or frames.max() >= len(transforms)):
            raise ValueError(
                f"points: frame indices (first column) run from {frames.min()} to {frames.max()}, "
                f"but there are {len(transforms)} transforms"
            )
    out = coords.copy()
    for frame in np.unique(frames):
        rows = frames == frame
        spatial = _homogeneous(coords[rows, -ndim:]) @ to_pixels.T
        moved = transforms[frame].inverse().apply_points(spatial[:, :-1])
        out[rows, -ndim:] = (_homogeneous(moved) @ to_world.T)[:, :-1]
    return out


def _homogeneous(points: np.ndarray) -> np.ndarray:
    return np.c_[points, np.ones(len(points))]


def _transforms(transform: Any) -> list[Transform]:
    """``transform`` as a non-empty list of Transforms of one dimensionality (``TypeError``/``ValueError``)."""
    transforms = [transform] if isinstance(transform, Transform) else list(transform) \
        if isinstance(transform, (list, tuple)) else []
    if not transforms or not all(isinstance(t, Transform) for t in transforms):
        raise TypeError(f"transform must be a Transform or a non-empty sequence of Transforms, got "
                        f"{type(transform).__name__}")
    if any(t.ndim != transforms[0].ndim for t in transforms):
        raise ValueError("all transforms must have the same number of dimensions")
    return transforms


# -- the registry operation ------------------------------------------------------------------------
def transform_of(transform: Any) -> Transform:
    """The :class:`Transform` a recipe's ``transform`` dictionary describes (errors name the parameter)."""
    if isinstance(transform, Transform):
        return transform
    try:
        return Transform.from_dict(transform)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"transform must be the dictionary of Transform.to_dict(): {exc}") from None


def _transform_ndim(transform: Any = None, **_: Any) -> int:
    """Frame dimensionality of :func:`apply_transform`: the transform's (2 before one is given)."""
    if not isinstance(transform, (dict, Transform)):
        return 2
    return transform_of(transform).ndim


def _prepare_transform(image: Any, *, transform: dict, output_shape: tuple | None, **params: Any) -> dict:
    """The transform read once (the kernel gets the Transform), and the output frame checked against it."""
    found = transform_of(transform)
    if output_shape is not None:
        if len(output_shape) != found.ndim:
            raise ValueError(f"output_shape must give {found.ndim} sizes for a {found.ndim}-D transform, "
                             f"got {list(output_shape)}")
        for size in output_shape:
            check_number("output_shape", size, low=1, integer=True)
    return {"transform": transform, "output_shape": output_shape, **params, "_transform": found}


def _output_frame(in_frame: tuple, *, output_shape: tuple | None, **_: Any) -> tuple:
    return tuple(in_frame) if output_shape is None else tuple(int(s) for s in output_shape)


def _fill_limits(frame: tuple, dtype: Any, *, order: int, **_: Any) -> dict:
    """``cval`` within what the result (the input's dtype at ``order=0``, float otherwise) can hold."""
    low, high, reason = fill_range(_out_dtype(dtype, order))
    return {"cval": Range(low, high, reason=reason)}


@operation(menu="register", frame_ndim=_transform_ndim, prepare=_prepare_transform, frame_shape=_output_frame,
           dtype=lambda dtype, order, **_: _out_dtype(dtype, order), limits=_fill_limits, name="apply_transform",
           title="Apply transform")
def apply_transform(
    image,
    *,
    transform: dict,
    output_shape: Annotated[tuple[int, ...], Range(1, None)] | None = None,
    order: Annotated[int, Range(0, 5)] = 1,
    cval: float = 0.0,
    mode: WarpMode = "constant",
    _transform: Transform | None = None,
):
    """Resample every frame through a transform given as a dictionary (a recipe step).

    :func:`warp` with the transform written as :meth:`Transform.to_dict`
    writes it (also the content of a transform's JSON file), so that a
    recipe records and replays it. The napari registration tools record
    this step for the layers they resample.

    Parameters
    ----------
    image : array, shape ``(..., M, N)`` (``(..., P, M, N)`` for a 3-D transform)
        Image or stack; leading axes are batch axes, each frame gets the same
        transform. Dask stays lazy (whole frames per chunk).
    transform : dict
        ``Transform.to_dict()`` of the fixed -> moving transform (``model``,
        ``matrix`` and, for polynomials, ``coefficients`` and ``order``).
    output_shape : tuple of int, optional
        Frame shape of the result (the fixed image's); default: the input's.
    order : int
        Spline order, 0 (nearest: labels stay labels) to 5.
    cval : float
        Value of pixels that map outside the image.
    mode : {"constant", "nearest", "reflect", "mirror", "wrap"}
        How the image is extended beyond its edges.

    Returns
    -------
    array, shape ``(..., *output_shape)``
        float32 (float64 for float64 input); ``order=0`` keeps the input
        dtype. No halo: each output frame needs its whole input frame.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((8, 8), np.uint16); img[3, 4] = 100
    >>> shift = Transform.from_shift([1, 2]).to_dict()
    >>> out = apply_transform(img, transform=shift, output_shape=(6, 6))
    >>> out.shape, float(out[2, 2])
    ((6, 6), 100.0)
    """
    return warp_frame(image, _transform if _transform is not None else transform_of(transform),
                      output_shape=_output_frame(image.shape, output_shape=output_shape), order=order, cval=cval,
                      mode=mode)
