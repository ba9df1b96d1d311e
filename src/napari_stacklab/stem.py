"""4D-STEM: diffraction-pattern statistics, virtual detectors, centre of mass and DPC.

A 4D-STEM dataset has shape ``(..., Sy, Sx, Ky, Kx)``: one diffraction
pattern ``(Ky, Kx)`` per scan position ``(Sy, Sx)``. The last two axes are the
detector (the *frame*); every leading axis is a scan (batch) axis.

Every operation here reduces over one kind of axis and never loads the scan
whole: on dask input (a lazily read file) it returns a dask array whose
chunks are whole diffraction frames, reduced block by block with one matrix
contraction per block (the lift's :func:`~napari_stacklab.lift.map_frames` with
one value per pattern), so a virtual detector image of a 100 GB scan costs one
streaming pass. NumPy and CuPy input
give NumPy and CuPy output. Counts are never rescaled.

Coordinates on the detector are ``(ky, kx)`` in detector pixels; the default
``center`` is the geometric centre ``((Ky - 1) / 2, (Kx - 1) / 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np

from . import _backend, _compiled
from ._backend import get_namespace
from ._validation import float_dtype
from .costs import Cost, pixelwise
from .lift import map_frames, reduce_frames
from .registry import ImageRef, Range, Unit, operation, validated

__all__ = [
    "sum_pattern",
    "mean_pattern",
    "max_pattern",
    "std_pattern",
    "virtual_detector",
    "virtual_images",
    "virtual_bright_field",
    "annular_dark_field",
    "center_of_mass",
    "dpc",
    "radial_profile",
    "detector_mask",
]

Center = tuple[float, float] | None
#: The unscattered beam's position on the detector, (ky, kx) in detector pixels.
BeamCenter = Annotated[tuple[float, float], Unit("ky, kx in detector pixels")] | None
Radius = Annotated[float, Range(0, 1e6)]


# --- helpers -------------------------------------------------------------------------------


def _scan_axes(data: Any) -> tuple[int, ...]:
    if data.ndim < 3:
        raise ValueError(
            f"data must be a scan of diffraction patterns (..., Sy, Sx, Ky, Kx), got shape {tuple(data.shape)}"
        )
    return tuple(range(data.ndim - 2))


def _center_limits(frame: tuple, dtype: Any, **_: Any) -> dict:
    """A centre within one detector width of the detector: anything farther measures nothing new."""
    return {"center": Range(tuple(-float(n) for n in frame), tuple(2.0 * n - 1 for n in frame),
                            reason="within one detector width of the detector")}


def _center(center: tuple | None, detector_shape: tuple) -> tuple[float, float]:
    if center is None:
        return ((detector_shape[0] - 1) / 2, (detector_shape[1] - 1) / 2)
    if len(center) != 2:
        raise ValueError(f"center must be (ky, kx), got {center!r}")
    return float(center[0]), float(center[1])


def _host_mask(mask: Any, detector_shape: tuple, like: Any) -> Any:
    """A detector mask as weights in ``like``'s namespace: labels/bools -> 0/1, floats kept."""
    if tuple(mask.shape) != tuple(detector_shape):
        raise ValueError(f"mask must have the detector shape {tuple(detector_shape)}, got {tuple(mask.shape)}")
    xp, _ = get_namespace(like)
    mask = xp.asarray(_backend.materialize(mask))
    return mask > 0 if mask.dtype.kind in "biu" else mask


@validated(device=False)
def detector_mask(
    detector_shape: tuple[int, int],
    *,
    inner: Radius = 0.0,
    outer: Radius,
    center: Center = None,
    like: Any = None,
) -> Any:
    """Boolean disk (``inner=0``) or annulus ``inner <= r <= outer`` on the detector.

    Parameters
    ----------
    detector_shape : (Ky, Kx)
        Shape of one diffraction pattern.
    inner, outer : float
        Radii in detector pixels.
    center : (ky, kx), optional
        Centre in detector pixels (default: the geometric centre).
    like : array, optional
        Build the mask in this array's namespace (NumPy or CuPy).

    Returns
    -------
    array of bool, shape ``(Ky, Kx)``

    Examples
    --------
    >>> int(detector_mask((5, 5), outer=1).sum())   # the centre and its 4 neighbours
    5
    """
    if not 0 <= inner <= outer:
        raise ValueError(f"inner and outer must satisfy 0 <= inner <= outer, got inner={inner}, outer={outer}")
    xp, _ = get_namespace(like if like is not None else np.empty(0))
    cy, cx = _center(center, detector_shape)
    ky = xp.arange(detector_shape[0], dtype=np.float64)[:, None] - cy
    kx = xp.arange(detector_shape[1], dtype=np.float64)[None, :] - cx
    r2 = ky**2 + kx**2
    return (r2 >= inner**2) & (r2 <= outer**2)


#: Elements of a block converted to float and contracted at a time: the group and its float
#: copy stay in a core's L2 cache, and the product is too small for BLAS to start threads
#: (which would oversubscribe the cores dask already uses).
_TILE_ELEMENTS = 2**17
#: Up to this many detectors, the host contracts a group with one matrix-vector product per detector.
_VECTOR_DETECTORS = 8


def _weighted_sums(block: Any, *, weights: Any) -> Any:
    """``block (..., Ky, Kx)`` against ``weights (P, Ky, Kx)`` -> ``(..., P)``.

    On the host, a compiled kernel (:mod:`napari_stacklab._compiled`) converts
    each pixel as it multiplies. Without it (no Numba) and on a GPU, a few
    frames at a time are converted to the weights' float dtype into one reused
    buffer and multiplied with the flattened weights.
    """
    xp, _ = get_namespace(block)
    batch = block.shape[:-2]
    n_pixels = block.shape[-2] * block.shape[-1]
    flat = block.reshape(-1, n_pixels)
    weights = weights.reshape(weights.shape[0], n_pixels)
    host = not _backend.on_gpu(block)
    if host:  # the compiled kernel: no float copy, no Python loop over the block, the GIL released
        sums = _compiled.frame_weighted_sums(flat, weights)
        if sums is not None:
            return sums.reshape(batch + (weights.shape[0],))
    # a few detectors on the host: one matrix-vector product each (OpenBLAS runs concurrent matrix products
    # of dask's threads one at a time, so two threads were slower than one; its vector products run together)
    by_vector = host and weights.shape[0] <= _VECTOR_DETECTORS
    out = xp.empty((weights.shape[0], flat.shape[0]) if by_vector else (flat.shape[0], weights.shape[0]),
                   dtype=weights.dtype)
    step = max(1, _TILE_ELEMENTS // n_pixels)
    same = flat.dtype == weights.dtype
    buffer = None if same else xp.empty((min(step, flat.shape[0]), n_pixels), dtype=weights.dtype)
    for start in range(0, flat.shape[0], step):
        group = flat[start : start + step]
        if not same:
            converted = buffer[: group.shape[0]]
            converted[...] = group
            group = converted
        if by_vector:
            for p in range(weights.shape[0]):
                np.dot(group, weights[p], out=out[p, start : start + step])
        else:
            xp.matmul(group, weights.T, out=out[start : start + step])
    out = out.T if by_vector else out
    return out.reshape(batch + (weights.shape[0],))


def _detect(data: Any, weights: Any) -> Any:
    """Images of the scan through each detector in ``weights (P, Ky, Kx)``: ``(..., P)``, lazy for dask."""
    dtype = float_dtype(data.dtype)
    sums = reduce_frames(
        _weighted_sums,
        data,
        out_shape=(weights.shape[0],),
        dtype=dtype,
        vectorized=True,
        weights=weights.astype(dtype),
    )
    if _backend.is_dask(sums):  # a few values per pattern: what follows runs on a few large chunks, not many small
        sums = sums.rechunk({**{axis: "auto" for axis in range(sums.ndim - 1)}, sums.ndim - 1: -1})
    return sums


def _with_detector(image: Any, params: dict, *, inner: float, outer: float | None, center: Center, mask: Any) -> dict:
    """``params`` with the detector's weights ``(1, Ky, Kx)`` in the compute dtype, made once."""
    _scan_axes(image)
    shape = tuple(image.shape[-2:])
    if mask is not None:
        weights = _host_mask(mask, shape, image)
    else:
        if outer is None:
            raise ValueError("virtual_detector needs an outer radius (outer=...) or a mask (mask=...)")
        weights = detector_mask(shape, inner=inner, outer=outer, center=center, like=image)
    return {**params, "_weights": weights[None].astype(float_dtype(image.dtype))}


def _detector_sums(image: Any, weights: Any) -> Any:
    """The detector image of a block of patterns: one value per pattern."""
    return _weighted_sums(image, weights=weights)[..., 0]


def _one_value(frame_shape: tuple, **_: Any) -> tuple:
    return ()


#: A virtual detector: one value per pattern, the patterns of a chunk contracted at once.
_DETECTOR = dict(menu="project", keeps="batch", vectorized=True, frame_shape=_one_value, channels="refused",
                 limits=_center_limits)


# --- pattern statistics over the scan ------------------------------------------------------

_PATTERN_DOC = """{title} diffraction pattern over every scan position.

    Parameters
    ----------
    image : array, shape ``(..., Sy, Sx, Ky, Kx)``
        4D-STEM data (NumPy, dask or CuPy); every axis but the last two is a
        scan axis and is reduced.

    Returns
    -------
    array, shape ``(Ky, Kx)``
        {dtype} No halo; dask input stays lazy (a tree reduction over chunks
        of whole frames).

    Examples
    --------
    >>> import numpy as np
    >>> scan = np.arange(2 * 3 * 4 * 4, dtype=np.uint16).reshape(2, 3, 4, 4)
    >>> {name}(scan).shape
    (4, 4)
    >>> bool(np.allclose({name}(scan), scan.{method}(axis=(0, 1))))
    True
    """

_FLOAT_RULE = "float32 (float64 for float64 and wide integer input), accumulated in float64."


def _pattern_op(name: str, method: str, title: str, dtype: Any, rule: str):
    def kernel(image):
        axes = _scan_axes(image)
        out_dtype = float_dtype(image.dtype) if dtype == "float" else image.dtype
        if method == "max":
            return image.max(axis=axes)
        if method == "std":
            return image.astype(np.float64).std(axis=axes).astype(out_dtype)
        return getattr(image, method)(axis=axes, dtype=np.float64).astype(out_dtype)

    kernel.__name__ = kernel.__qualname__ = name
    kernel.__module__ = __name__
    kernel.__doc__ = _PATTERN_DOC.format(title=title, dtype=rule, name=name, method=method)
    return operation(menu="project", lift=False, dtype=dtype, keeps="frame", channels="refused")(kernel)


sum_pattern = _pattern_op("sum_pattern", "sum", "Summed", "float", _FLOAT_RULE)
mean_pattern = _pattern_op("mean_pattern", "mean", "Mean", "float", _FLOAT_RULE)
max_pattern = _pattern_op("max_pattern", "max", "Maximum", "same", "Same dtype as the input.")
std_pattern = _pattern_op("std_pattern", "std", "Standard deviation of the", "float", _FLOAT_RULE)


# --- virtual detectors ---------------------------------------------------------------------


def _virtual_detector(image: Any, **params: Any) -> dict:
    return _with_detector(image, params, inner=params["inner"], outer=params["outer"], center=params["center"],
                          mask=params["mask"])


@operation(**_DETECTOR, prepare=_virtual_detector)
def virtual_detector(
    image,
    *,
    inner: Radius = 0.0,
    outer: Radius | None = None,
    center: Center = None,
    mask: ImageRef | None = None,
    _weights: Any = None,
):
    """Virtual detector image: the counts inside a disk, an annulus or any mask, per scan position.

    Parameters
    ----------
    image : array, shape ``(..., Sy, Sx, Ky, Kx)``
        4D-STEM data (NumPy, dask or CuPy).
    inner, outer : float
        Radii in detector pixels: a disk for ``inner=0``, else the annulus
        ``inner <= r <= outer``. Ignored when ``mask`` is given.
    center : (ky, kx), optional
        Detector centre in pixels (default: the geometric centre).
    mask : array, shape ``(Ky, Kx)``, optional
        Any detector: labels or booleans (pixels ``> 0`` count) or float
        weights (e.g. a segmented detector).

    Returns
    -------
    array, shape ``(..., Sy, Sx)``
        ``sum(pattern * mask)`` per scan position; float32 (float64 for
        float64 and wide integer input). No halo; dask input stays lazy, one
        streaming contraction per chunk of whole frames.

    Examples
    --------
    >>> import numpy as np
    >>> scan = np.ones((3, 4, 9, 9), np.uint16)
    >>> virtual_detector(scan, inner=0, outer=1).tolist()[0]
    [5.0, 5.0, 5.0, 5.0]
    """
    return _detector_sums(image, _weights)


def _bright_field(image: Any, **params: Any) -> dict:
    return _with_detector(image, params, inner=0.0, outer=params["radius"], center=params["center"], mask=None)


@operation(**_DETECTOR, prepare=_bright_field)
def virtual_bright_field(image, *, radius: Radius = 4.0, center: Center = None, _weights: Any = None):
    """Virtual bright-field image: counts in a disk around the direct beam.

    Parameters
    ----------
    image : array, shape ``(..., Sy, Sx, Ky, Kx)``
        4D-STEM data.
    radius : float
        Disk radius in detector pixels (``r <= radius``).
    center : (ky, kx), optional
        Disk centre (default: the detector's geometric centre).

    Returns
    -------
    array, shape ``(..., Sy, Sx)``
        float32 (float64 for float64 input); no halo; lazy for dask.

    Examples
    --------
    >>> import numpy as np
    >>> scan = np.zeros((2, 2, 7, 7)); scan[0, 0, 3, 3] = 10
    >>> virtual_bright_field(scan, radius=1).tolist()
    [[10.0, 0.0], [0.0, 0.0]]
    """
    return _detector_sums(image, _weights)


def _dark_field(image: Any, **params: Any) -> dict:
    return _with_detector(image, params, inner=params["inner"], outer=params["outer"], center=params["center"],
                          mask=None)


@operation(**_DETECTOR, prepare=_dark_field)
def annular_dark_field(
    image, *, inner: Radius = 8.0, outer: Radius = 32.0, center: Center = None, _weights: Any = None
):
    """Annular dark-field image: counts in the ring ``inner <= r <= outer``.

    Parameters
    ----------
    image : array, shape ``(..., Sy, Sx, Ky, Kx)``
        4D-STEM data.
    inner, outer : float
        Ring radii in detector pixels.
    center : (ky, kx), optional
        Ring centre (default: the detector's geometric centre).

    Returns
    -------
    array, shape ``(..., Sy, Sx)``
        float32 (float64 for float64 input); no halo; lazy for dask.

    Examples
    --------
    >>> import numpy as np
    >>> scan = np.ones((1, 2, 9, 9))
    >>> annular_dark_field(scan, inner=3, outer=4).tolist()
    [[24.0, 24.0]]
    """
    return _detector_sums(image, _weights)


@validated
def virtual_images(image: ImageRef, detectors: Any, *, com: bool = False, center: Center = None) -> dict:
    """Several virtual detector images (and the centre of mass) from one read of the scan.

    Every detector becomes one row of a weight matrix, and each group of
    diffraction patterns is multiplied with all of them at once, so asking for
    five detectors costs one pass over the data, not five. A lazily read file
    is read once, a few patterns at a time, whatever the number of detectors.

    Parameters
    ----------
    image : array, shape ``(..., Sy, Sx, Ky, Kx)``
        4D-STEM data (NumPy, dask or CuPy).
    detectors : mapping of str to detector
        Each detector is a mask of shape ``(Ky, Kx)`` (labels or booleans:
        pixels ``> 0`` count; floats: weights), a mapping of
        :func:`detector_mask` radii (``{"inner": 8, "outer": 32}``, optionally
        ``"center"``), or ``"sum"`` (every pixel: the total counts).
    com : bool
        Also return ``"com_y"`` and ``"com_x"``: the centre of mass of each
        pattern in detector pixels relative to ``center`` (0 for a pattern
        without counts), as :func:`center_of_mass` with its defaults.
    center : (ky, kx), optional
        The default centre of the radii detectors and the origin of the
        centre of mass (default: the geometric centre).

    Returns
    -------
    dict of str to array, shape ``(..., Sy, Sx)``
        One image per detector name (and ``com_y``, ``com_x``); float32
        (float64 for float64 and wide integer input). For dask input they are
        lazy and share one graph: compute them together
        (``dask.compute(*images.values())``) to read the data once.

    Examples
    --------
    >>> import numpy as np
    >>> scan = np.ones((2, 3, 9, 9), np.uint16)
    >>> images = virtual_images(scan, {"bf": {"outer": 1}, "all": "sum"}, com=True)
    >>> sorted(images), images["bf"][0].tolist(), float(images["all"][0, 0]), float(images["com_x"][0, 0])
    (['all', 'bf', 'com_x', 'com_y'], [5.0, 5.0, 5.0], 81.0, 0.0)
    """
    _scan_axes(image)
    if not isinstance(detectors, Mapping) or not (detectors or com):
        raise ValueError(f"detectors must be a mapping of names to detectors (or com=True), got {detectors!r}")
    shape = tuple(image.shape[-2:])
    xp, _ = get_namespace(image)
    weights, names = [], list(detectors)
    for name, spec in detectors.items():
        weights.append(_detector_weights(name, spec, shape, center, image).astype(np.float64))
    if com:
        cy, cx = _center(center, shape)
        ky = xp.arange(shape[0], dtype=np.float64)[:, None] - cy + xp.zeros(shape)
        kx = xp.arange(shape[1], dtype=np.float64)[None, :] - cx + xp.zeros(shape)
        weights += [xp.ones(shape), ky, kx]
    sums = _detect(image, xp.stack(weights))
    images = {name: sums[..., i] for i, name in enumerate(names)}
    if com:
        total = sums[..., len(names)]
        empty = total == 0
        safe = np.where(empty, 1, total)  # np.where dispatches to CuPy and to dask (NEP 18)
        images["com_y"] = np.where(empty, 0, sums[..., len(names) + 1] / safe).astype(sums.dtype)
        images["com_x"] = np.where(empty, 0, sums[..., len(names) + 2] / safe).astype(sums.dtype)
    return images


def _detector_weights(name: str, spec: Any, shape: tuple, center: Center, like: Any) -> Any:
    """One detector of :func:`virtual_images` as weights ``(Ky, Kx)``, refused by name when it is none."""
    xp, _ = get_namespace(like)
    if isinstance(spec, str) and spec == "sum":
        return xp.ones(shape)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"inner", "outer", "center"}
        if unknown or "outer" not in spec:
            raise ValueError(f"detector {name!r} must give 'outer' (and optionally 'inner', 'center'), got {dict(spec)!r}")
        return detector_mask(shape, inner=spec.get("inner", 0.0), outer=spec["outer"],
                             center=spec.get("center", center), like=like)
    if hasattr(spec, "shape"):
        return _host_mask(spec, shape, like)
    raise ValueError(f"detector {name!r} must be a mask, a mapping of radii or 'sum', got {spec!r}")


# --- centre of mass and DPC ----------------------------------------------------------------


def _subtract_plane(m: Any) -> Any:
    """``m (..., Sy, Sx)`` minus its least-squares plane over the last two axes (lazy for dask).

    With centred coordinates the columns 1, sy, sx are orthogonal over the
    grid, so the fit is three sums and needs no solve.
    """
    xp, _ = get_namespace(m)
    sy = xp.arange(m.shape[-2], dtype=m.dtype)[:, None] - (m.shape[-2] - 1) / 2
    sx = xp.arange(m.shape[-1], dtype=m.dtype)[None, :] - (m.shape[-1] - 1) / 2
    plane = m.mean(axis=(-2, -1), keepdims=True)
    for coord in (sy, sx):
        norm = m.shape[-2] * m.shape[-1] * float((coord**2).mean())  # sum of coord**2 over the grid
        if norm > 0:
            plane = plane + (m * coord).sum(axis=(-2, -1), keepdims=True) / norm * coord
    return m - plane


def _com(
    data: Any, *, center: Center, mask: Any, calibration: float, rotation: float, flip: bool, descan: str
) -> tuple[Any, Any]:
    axes = _scan_axes(data)
    if descan == "plane" and len(axes) < 2:
        raise ValueError("descan='plane' needs two scan axes (..., Sy, Sx, Ky, Kx)")
    xp, _ = get_namespace(data)
    shape = tuple(data.shape[-2:])
    cy, cx = _center(center, shape)
    base = xp.ones(shape, dtype=np.float64) if mask is None else _host_mask(mask, shape, data).astype(np.float64)
    ky = xp.arange(shape[0], dtype=np.float64)[:, None] - cy
    kx = xp.arange(shape[1], dtype=np.float64)[None, :] - cx
    sums = _detect(data, xp.stack([base, base * ky, base * kx]))
    total = sums[..., 0]
    empty = total == 0
    safe = np.where(empty, 1, total)  # np.where dispatches to CuPy and to dask (NEP 18)
    com_y = np.where(empty, 0, sums[..., 1] / safe) * calibration
    com_x = np.where(empty, 0, sums[..., 2] / safe) * calibration
    if flip:
        com_x = -com_x
    if rotation:
        c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
        com_y, com_x = s * com_x + c * com_y, c * com_x - s * com_y
    if descan == "plane":
        com_y, com_x = _subtract_plane(com_y), _subtract_plane(com_x)
    dtype = float_dtype(data.dtype)
    return com_y.astype(dtype), com_x.astype(dtype)


#: a calibration up to 1e30 units a pixel keeps shifts (and DPC potentials) far inside float32
Calibration = Annotated[float, Range(0, 1e30, low_inclusive=False)]
Rotation = Annotated[float, Range(-360, 360)]
Descan = Literal["none", "plane"]


def _resolve_center(image: Any, **params: Any) -> dict:
    """The centre used when none is given, the detector's geometric centre, made explicit (a widget shows it)."""
    if params["center"] is None:
        params = {**params, "center": _center(None, tuple(image.shape[-2:]))}
    return params


@operation(menu="measure", output="images", lift=False, keeps="batch", channels="refused", prepare=_resolve_center,
           limits=_center_limits)
def center_of_mass(
    image,
    *,
    center: BeamCenter = None,
    calibration: Calibration = 1.0,
    rotation: Rotation = 0.0,
    flip: bool = False,
    descan: Descan = "none",
    mask: ImageRef | None = None,
):
    """Centre of mass of every diffraction pattern, relative to ``center``.

    Parameters
    ----------
    image : array, shape ``(..., Sy, Sx, Ky, Kx)``
        4D-STEM data (NumPy, dask or CuPy).
    center : (ky, kx), optional
        Origin of the shifts in detector pixels: the unscattered beam's
        position. Default: the geometric centre ``((Ky - 1) / 2, (Kx - 1) / 2)``,
        resolved before the run (``Operation.resolve``), so a widget shows
        the centre it used; give the beam centre when it is elsewhere.
    calibration : float
        Detector pixel size (e.g. mrad or 1/nm per pixel); shifts are returned
        in those units (1.0: detector pixels).
    rotation : float
        Angle in degrees by which the shift vectors are rotated
        counter-clockwise (``x' = x cos a - y sin a``, ``y' = x sin a + y cos a``)
        to bring the detector axes onto the scan axes; applied after ``flip``.
    flip : bool
        Mirror the detector x axis (``com_x -> -com_x``) first.
    descan : {"none", "plane"}
        ``"plane"`` removes the least-squares plane over the scan from each
        component: the linear beam drift (descan) across the field of view.
    mask : array, shape ``(Ky, Kx)``, optional
        Only pixels ``> 0`` (or float weights) count, e.g. the bright-field disk.

    Returns
    -------
    dict of str -> array, shape ``(..., Sy, Sx)``
        ``{"com_y", "com_x"}``: float32 (float64 for float64 input); 0 where a
        pattern holds no counts. No halo; dask input stays lazy.

    Examples
    --------
    >>> import numpy as np
    >>> scan = np.zeros((1, 2, 5, 5)); scan[0, 0, 3, 2] = 1; scan[0, 1, 2, 4] = 1
    >>> com = center_of_mass(scan)
    >>> com["com_y"].tolist(), com["com_x"].tolist()
    ([[1.0, 0.0]], [[0.0, 2.0]])
    """
    com_y, com_x = _com(
        image, center=center, mask=mask, calibration=calibration, rotation=rotation, flip=flip, descan=descan
    )
    return {"com_y": com_y, "com_x": com_x}


def _integrate_gradient(gradient: Any) -> Any:
    """``(..., 2, Sy, Sx)`` gradient (d/dy, d/dx) -> ``(..., 1, Sy, Sx)`` potential, by FFT Poisson integration."""
    xp, _ = get_namespace(gradient)
    sy, sx = gradient.shape[-2:]
    ky = xp.fft.fftfreq(sy)[:, None]
    kx = xp.fft.fftfreq(sx)[None, :]
    k2 = ky**2 + kx**2
    k2[0, 0] = 1.0
    spectrum = (ky * xp.fft.fft2(gradient[..., 0, :, :]) + kx * xp.fft.fft2(gradient[..., 1, :, :])) / (
        2j * math.pi * k2
    )
    spectrum[..., 0, 0] = 0
    return xp.fft.ifft2(spectrum).real[..., None, :, :].astype(gradient.dtype)


@operation(menu="measure", output="images", lift=False, keeps="batch", channels="refused", limits=_center_limits)
def dpc(
    image,
    *,
    center: Center = None,
    calibration: Calibration = 1.0,
    rotation: Rotation = 0.0,
    flip: bool = False,
    descan: Descan = "plane",
    mask: ImageRef | None = None,
):
    """Differential phase contrast: centre-of-mass shift components and their integrated potential.

    The centre-of-mass shift is proportional to the gradient of the projected
    potential; integrating it by FFT Poisson integration,
    ``F(phi) = (ky F(g_y) + kx F(g_x)) / (2 pi i |k|^2)``, gives the
    potential up to that factor and an additive constant (its mean is 0).
    The integration treats the scan as periodic.

    Parameters
    ----------
    image : array, shape ``(..., Sy, Sx, Ky, Kx)``
        4D-STEM data with at least two scan axes.
    center, calibration, rotation, flip, descan, mask
        As for :func:`center_of_mass` (``descan`` defaults to ``"plane"``).

    Returns
    -------
    dict of str -> array, shape ``(..., Sy, Sx)``
        ``{"dpc_y", "dpc_x", "potential"}``; float32 (float64 for float64
        input). The potential is in shift units times scan pixels. No halo;
        dask input stays lazy.

    Examples
    --------
    >>> import numpy as np
    >>> scan = np.zeros((4, 4, 5, 5)); scan[..., 2, 2] = 1; scan[:, 2:, 2, 2] = 0; scan[:, 2:, 2, 3] = 1
    >>> out = dpc(scan, descan="none")
    >>> sorted(out), out["potential"].shape
    (['dpc_x', 'dpc_y', 'potential'], (4, 4))
    """
    if image.ndim < 4:
        raise ValueError(f"dpc needs two scan axes (..., Sy, Sx, Ky, Kx), got shape {tuple(image.shape)}")
    com_y, com_x = _com(
        image, center=center, mask=mask, calibration=calibration, rotation=rotation, flip=flip, descan=descan
    )
    gradient = np.stack([com_y, com_x], axis=-3)  # dispatches to dask / CuPy (NEP 18)
    potential = map_frames(
        _integrate_gradient,
        gradient,
        frame_ndim=3,
        frame_shape=(1,) + tuple(com_y.shape[-2:]),
        dtype=com_y.dtype,
        vectorized=True,
    )[..., 0, :, :]
    return {"dpc_y": com_y, "dpc_x": com_x, "potential": potential}


# --- radial profile ------------------------------------------------------------------------


def _ring_count(frame_shape: tuple, center: Center, bin_width: float, **_: Any) -> tuple[int]:
    """Number of rings: the farthest pixel (a corner, the distance being convex) sets it."""
    cy, cx = _center(center, frame_shape)
    corners = [(y, x) for y in (0, frame_shape[0] - 1) for x in (0, frame_shape[1] - 1)]
    return (int(max(np.floor(np.hypot(y - cy, x - cx) / bin_width) for y, x in corners)) + 1,)


def _rings(image: Any, **params: Any) -> dict:
    """The rings of the profile, found once: pixel order by ring, ring starts, pixel counts, filled rings,
    and for every ring the two filled rings (and weight) it is interpolated from."""
    shape = tuple(image.shape[-2:])
    cy, cx = _center(params["center"], shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    bins = np.floor(np.hypot(yy - cy, xx - cx) / params["bin_width"]).astype(np.int64).ravel()
    (n_bins,) = _ring_count(shape, params["center"], params["bin_width"])
    order = np.argsort(bins, kind="stable")
    counts = np.bincount(bins, minlength=n_bins)
    filled = np.flatnonzero(counts)
    ring = np.arange(n_bins)
    right = np.clip(np.searchsorted(filled, ring), 0, filled.size - 1)  # first filled ring >= each ring
    left = np.where(filled[right] == ring, right, np.clip(right - 1, 0, None))
    gap = (filled[right] - filled[left]).astype(np.float64)
    weight = np.divide(ring - filled[left], gap, out=np.zeros(n_bins), where=gap > 0)
    xp, _ = get_namespace(image)
    dtype = float_dtype(image.dtype)
    return {
        **params,
        "_order": xp.asarray(order),
        "_starts": xp.asarray(np.searchsorted(bins[order], filled)),
        "_counts": xp.asarray(counts[filled].astype(dtype)),
        "_between": (xp.asarray(left), xp.asarray(right), xp.asarray(np.clip(weight, 0, 1).astype(dtype))),
    }


def _profile_cost(shape: tuple, dtype: Any, **_: Any) -> Cost:
    # the pixels gathered in ring order (a float copy) and summed, about 15 ns a pixel
    return pixelwise(shape, dtype, copies=3, ns_per_pixel=15)


@operation(
    menu="measure",
    keeps="batch",
    vectorized=True,
    prepare=_rings,
    frame_shape=_ring_count,
    channels="refused",
    limits=_center_limits,
    cost=_profile_cost,
)
def radial_profile(
    image,
    *,
    center: Center = None,
    bin_width: Annotated[float, Range(0.1, 1e4)] = 1.0,
    _order: Any = None,
    _starts: Any = None,
    _counts: Any = None,
    _between: Any = None,
):
    """Azimuthal average of each pattern: mean intensity in rings of width ``bin_width`` around ``center``.

    Parameters
    ----------
    image : array, shape ``(..., Ky, Kx)``
        One pattern (e.g. the mean pattern) or a 4D-STEM scan.
    center : (ky, kx), optional
        Ring centre in detector pixels (default: the geometric centre), within
        one detector width of the detector.
    bin_width : float
        Ring width in detector pixels; bin ``b`` holds ``b * w <= r < (b + 1) * w``,
        its radius is ``(b + 0.5) * w``.

    Returns
    -------
    array, shape ``(..., n_bins)``
        ``n_bins = floor(r_max / bin_width) + 1`` with ``r_max`` the distance
        from the centre to the farthest pixel; float32 (float64 for float64
        input). A ring that holds no pixel (rings thinner than the pixel
        spacing, near the centre) takes the value interpolated linearly
        between the nearest rings that do (the nearest one's, before the
        first). No halo; lazy for dask.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:9, :9]
    >>> pattern = np.hypot(yy - 4, xx - 4)          # intensity = radius
    >>> np.round(radial_profile(pattern)[:3], 2).tolist()
    [0.0, 1.21, 2.33]
    """
    batch = image.shape[:-2]
    flat = image.reshape(-1, image.shape[-2] * image.shape[-1])[:, _order].astype(_counts.dtype)
    means = get_namespace(image)[0].add.reduceat(flat, _starts, axis=1) / _counts
    left, right, weight = _between
    out = means[:, left] * (1 - weight) + means[:, right] * weight
    return out.reshape(batch + (out.shape[-1],))
