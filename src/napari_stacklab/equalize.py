"""Bring a set of images to a common brightness, contrast and sharpness.

The first step of the *compare a set of images* workflow: photographs or
micrographs of the same kind of sample, taken on different days or with
different settings, are equalized before they are segmented, aligned and
compared.

Every statistic is taken **per frame**: a 2-D image is one frame; stacks
``(..., M, N)`` with the same batch shape are equalized frame by frame (frame
``i`` of every image is brought to frame ``i`` of the reference). The frames
of different images may have different sizes. Statistics are computed once
(explicitly, with :func:`napari_stacklab._backend.materialize`); the
equalized images are then built from them lazily for dask input.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal, Sequence, get_args

import numpy as np

from . import _backend
from ._validation import as_float, check_choice, check_ndim, check_number, check_real, float_dtype
from .channels import lightness, with_lightness
from .frames import iter_frame_indices
from .lift import map_frames, reduce_frames
from .registry import ImageRef, Range, validated

__all__ = ["equalize_set", "laplacian_variance", "EQUALIZE_METHODS"]

EqualizeMethod = Literal["histogram", "meanstd"]
EQUALIZE_METHODS = get_args(EqualizeMethod)
#: Quantile levels sampled to build the median histogram of a set.
_N_QUANTILES = 1025


def _laplacian_variance(frame: Any) -> Any:
    _, ndi = _backend.get_namespace(frame)
    return ndi.laplace(as_float(frame), mode="reflect").astype(np.float64).var()


@validated
def laplacian_variance(image: ImageRef) -> float | np.ndarray:
    """Sharpness of each frame: the variance of its Laplacian.

    A focused image has strong second derivatives at its edges; blurring
    lowers the variance of the (discrete, 5-point, ``scipy.ndimage.laplace``)
    Laplacian, sharpening raises it. The value scales with the square of the
    contrast, so compare images of equal contrast (see :func:`equalize_set`).

    Parameters
    ----------
    image : array, shape ``(M, N)`` or ``(..., M, N)``
        NumPy, CuPy or dask array of real values (computed here: this is a
        statistic).

    Returns
    -------
    float or ndarray of float64, shape ``(...)``
        One value for a 2-D image, one per frame for a stack.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(size=(64, 64))
    >>> bool(laplacian_variance(ndi.gaussian_filter(img, 2)) < laplacian_variance(img))
    True
    """
    check_ndim(image, 2)
    check_real(image)
    values = _backend.materialize(reduce_frames(_laplacian_variance, image, dtype=np.float64))
    return float(values) if image.ndim == 2 else np.asarray(values)


# --- helpers ------------------------------------------------------------------


def _check_images(images: list) -> list:
    if len(images) == 0:
        raise ValueError("images must contain at least one image")
    for i, image in enumerate(images):
        check_ndim(image, 2, f"images[{i}]")
        check_real(image, f"images[{i}]")
    batch = tuple(images[0].shape[:-2])
    for i, image in enumerate(images[1:], start=1):
        if tuple(image.shape[:-2]) != batch:
            raise ValueError(
                f"images must have the same leading (frame) axes: images[0] has {batch}, "
                f"images[{i}] has {tuple(image.shape[:-2])}"
            )
    return list(images)


def _frames(batch_shape: tuple) -> list[tuple]:
    return list(iter_frame_indices(batch_shape))


def _gain(frame: Any, *, gain: float, offset: float) -> Any:
    frame = as_float(frame)
    return (frame * gain + offset).astype(frame.dtype, copy=False)


def _match(frame: Any, *, reference: Any) -> Any:
    out = _backend.skimage_module(frame, "exposure").match_histograms(frame, reference)
    return out.astype(float_dtype(frame.dtype), copy=False)


def _sharpen(frame: Any, *, radius: float, amount: float) -> Any:
    _, ndi = _backend.get_namespace(frame)
    frame = as_float(frame)
    sharpened = frame + amount * (frame - ndi.gaussian_filter(frame, radius, mode="reflect", truncate=4.0))
    return sharpened.astype(frame.dtype, copy=False)


def _per_frame(kernel: Callable, image: Any, frame_params: dict) -> Any:
    """``kernel`` on every frame with that frame's parameters, in the float dtype; dask stays lazy."""
    dtype = float_dtype(image.dtype)
    batch = tuple(image.shape[:-2])
    if not batch:
        return map_frames(kernel, image, dtype=dtype, **frame_params[()])
    outs = [map_frames(kernel, image[index], dtype=dtype, **frame_params[index]) for index in _frames(batch)]
    stacked = _backend.array_module(outs[0]).stack(outs)
    return stacked.reshape(batch + tuple(stacked.shape[-2:]))


def _mean_std(frame: Any) -> Any:
    xp, _ = _backend.get_namespace(frame)
    frame = frame.astype(np.float64)
    return xp.stack([frame.mean(), frame.std()])


def _frame_stats(image: Any) -> np.ndarray:
    """``(..., 2)`` mean and standard deviation of every frame (float64, computed once)."""
    return _backend.materialize(reduce_frames(_mean_std, image, out_shape=(2,), dtype=np.float64))


def _frame_quantiles(image: Any) -> np.ndarray:
    levels = np.linspace(0, 1, _N_QUANTILES)

    def quantiles(frame):
        xp, _ = _backend.get_namespace(frame)
        return xp.quantile(frame.astype(np.float64), xp.asarray(levels))

    return _backend.materialize(reduce_frames(quantiles, image, out_shape=(_N_QUANTILES,), dtype=np.float64))


def _equalize_meanstd(images: list, reference: int | str) -> list:
    stats = [_frame_stats(image) for image in images]
    if reference == "median":
        target = np.median(np.stack(stats), axis=0)
    else:
        target = stats[reference]
    out = []
    for image, stat in zip(images, stats):
        params = {}
        for index in _frames(tuple(image.shape[:-2])):
            mean, std = stat[index]
            t_mean, t_std = target[index]
            gain = t_std / std if std > 0 else 1.0
            params[index] = {"gain": gain, "offset": t_mean - gain * mean}
        out.append(_per_frame(_gain, image, params))
    return out


def _equalize_histogram(images: list, reference: int | str) -> list:
    batch = tuple(images[0].shape[:-2])
    if reference == "median":
        templates = np.median(np.stack([_frame_quantiles(image) for image in images]), axis=0)
        # a (1, K) "image" whose histogram is the median quantile function
        template_of = lambda index: templates[index][None, :]  # noqa: E731
    else:
        ref = images[reference]
        template_of = lambda index: _backend.materialize(ref[index])  # noqa: E731
    out = []
    for i, image in enumerate(images):
        if i == reference:
            unchanged = {index: {"gain": 1.0, "offset": 0.0} for index in _frames(batch)}
            out.append(_per_frame(_gain, image, unchanged))
            continue
        params = {index: {"reference": template_of(index)} for index in _frames(batch)}
        if image.dtype.kind == "u" and any(p["reference"].dtype.kind != "u" for p in params.values()):
            # scikit-image's fast path for unsigned images needs an unsigned reference too
            image = image.astype(float_dtype(image.dtype))
        out.append(_per_frame(_match, image, params))
    return out


def _sharpness_terms(frame: Any, *, radius: float) -> Any:
    """var(L), cov(L, D), var(D) with L = laplace(frame), D = laplace(frame - gaussian(frame))."""
    _, ndi = _backend.get_namespace(frame)
    frame = frame.astype(np.float64)
    lap = ndi.laplace(frame, mode="reflect")
    detail = lap - ndi.laplace(ndi.gaussian_filter(frame, radius, mode="reflect", truncate=4.0), mode="reflect")
    lap = lap - lap.mean()
    detail = detail - detail.mean()
    xp, _ = _backend.get_namespace(frame)
    return xp.asarray([(lap * lap).mean(), (lap * detail).mean(), (detail * detail).mean()])


def _solve_amount(terms: np.ndarray, target: float, max_amount: float) -> float:
    """Smallest-magnitude amount ``a`` in ``[-1, max_amount]`` with ``var(L + a D) = target``.

    The Laplacian of ``x + a (x - G x)`` is ``L + a D``, so its variance is the
    quadratic ``v_L + 2 a c + a**2 v_D``: the amount is found in closed form.
    When the target cannot be reached in the interval, the end closest to it is used.
    """
    v_l, c, v_d = (float(t) for t in terms)
    if v_d <= 0:
        return 0.0
    disc = c * c - v_d * (v_l - target)
    if disc < 0:  # target below the minimum of the parabola: go to its vertex
        return float(np.clip(-c / v_d, -1.0, max_amount))
    roots = np.array([(-c - np.sqrt(disc)) / v_d, (-c + np.sqrt(disc)) / v_d])
    inside = roots[(roots >= -1.0) & (roots <= max_amount)]
    if inside.size:
        return float(inside[np.argmin(np.abs(inside))])
    ends = np.array([-1.0, max_amount])
    reached = v_l + 2 * ends * c + ends**2 * v_d
    return float(ends[np.argmin(np.abs(reached - target))])


def _equalize_sharpness(images: list, reference: int | str, radius: float, max_amount: float) -> list:
    terms = [
        _backend.materialize(reduce_frames(_sharpness_terms, image, out_shape=(3,), dtype=np.float64, radius=radius))
        for image in images
    ]
    variances = np.stack([t[..., 0] for t in terms])
    target = np.median(variances, axis=0) if reference == "median" else variances[reference]
    out = []
    for i, (image, term) in enumerate(zip(images, terms)):
        if i == reference:
            out.append(image)
            continue
        params = {
            index: {"radius": radius, "amount": _solve_amount(term[index], float(target[index]), max_amount)}
            for index in _frames(tuple(image.shape[:-2]))
        }
        out.append(_per_frame(_sharpen, image, params))
    return out


@validated
def equalize_set(
    images: Sequence[ImageRef],
    *,
    reference: int | Literal["median"] = "median",
    method: EqualizeMethod = "meanstd",
    sharpness: bool = False,
    sharpness_radius: Annotated[float, Range(0, None, low_inclusive=False)] = 1.0,
    max_amount: Annotated[float, Range(0, 100, low_inclusive=False)] = 10.0,
    rgb: bool = False,
) -> list:
    """Equalize brightness, contrast and (optionally) sharpness across a set of images.

    Parameters
    ----------
    images : list of array, each shape ``(M_i, N_i)`` or ``(..., M_i, N_i)``
        NumPy, CuPy or dask arrays of real values; stacks must share their
        leading (batch) axes and are equalized frame by frame. Inputs are
        never modified.
    reference : int or "median"
        Index of the image whose levels the others adopt, or ``"median"``:
        the median over the set (median mean and standard deviation, or the
        median quantile function for ``method="histogram"``). With an index,
        the reference image is returned unchanged (as float).
    method : {"meanstd", "histogram"}
        ``"meanstd"``: a linear map per frame, ``(x - mean) / std * std_t +
        mean_t`` (keeps the shape of each histogram). ``"histogram"``: full
        histogram matching (:func:`napari_stacklab.filters.match_histograms`) to the
        reference frame, or to the median of the frames' quantile functions
        (sampled at 1025 levels).
    sharpness : bool
        After brightness/contrast, also bring the sharpness (variance of the
        Laplacian, :func:`laplacian_variance`) of every frame to the
        reference's (or the median) value with an unsharp mask
        ``x + a (x - G_r x)`` (:func:`napari_stacklab.filters.unsharp_mask`, radius
        ``sharpness_radius``). Because the Laplacian is linear, the sharpness
        of the result is a quadratic in the amount ``a``: the amount is solved
        in closed form (no iterative search), choosing the root of smallest
        magnitude in ``[-1, max_amount]``. Negative amounts soften
        (``a = -1`` is the Gaussian blur itself); a target outside the
        reachable range gives the nearest reachable end.
    sharpness_radius : float
        Gaussian sigma of the unsharp mask, in pixels (> 0).
    max_amount : float
        Largest sharpening amount allowed (in (0, 100]).
    rgb : bool
        The images are colour, channels last ``(..., M, N, 3)`` (or RGBA):
        their CIELAB lightness L* is equalized as above and a* and b* (hue
        and chroma) are kept; an alpha channel is kept.

    Returns
    -------
    list of array
        New arrays, one per input, same shapes and kind (dask stays lazy);
        float32 (float64 for float64 or 32/64-bit integer input). Values
        are in the units of the reference levels, never rescaled to [0, 1].
        Colour images are in their own units, and integer colour images keep
        their dtype (uint8 RGB in, uint8 RGB out).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(100, 10, (32, 32)); b = rng.normal(50, 2, (32, 32))
    >>> ea, eb = equalize_set([a, b], reference=0)
    >>> bool(np.isclose(eb.mean(), a.mean())), bool(np.isclose(eb.std(), a.std()))
    (True, True)
    """
    if rgb:
        return _equalize_colour(images, reference=reference, method=method, sharpness=sharpness,
                                sharpness_radius=sharpness_radius, max_amount=max_amount)
    images = _check_images(images)
    if isinstance(reference, str):
        check_choice("reference", reference, ("median",))
    else:
        check_number("reference", reference, low=-len(images), high=len(images) - 1, integer=True)
        reference = int(reference) % len(images)

    equalized = (_equalize_meanstd if method == "meanstd" else _equalize_histogram)(images, reference)
    if sharpness:
        equalized = _equalize_sharpness(equalized, reference, float(sharpness_radius), float(max_amount))
    return equalized


def _equalize_colour(images: list, **settings: Any) -> list:
    """:func:`equalize_set` of colour images: their lightness is equalized, hue and chroma kept."""
    for i, image in enumerate(images):
        check_ndim(image, 3, f"images[{i}]")
        if image.shape[-1] not in (3, 4):
            raise ValueError(f"images[{i}] must have 3 (RGB) or 4 (RGBA) colour channels last with rgb=True, "
                             f"got shape {tuple(image.shape)}")
    whole = [image.rechunk({image.ndim - 1: -1}) if _backend.is_dask(image) else image for image in images]
    light = [_colour_blocks(lightness, image, drop_axis=True) for image in whole]
    equalized = equalize_set(light, rgb=False, **settings)
    return [_colour_blocks(_relit, image, new) for image, new in zip(whole, equalized)]


def _relit(frame: Any, light: Any) -> Any:
    """``frame`` with the lightness ``light`` (L*), in its dtype (integers rounded and clipped)."""
    out = with_lightness(frame, lambda _: light / 100.0)
    if frame.shape[-1] == 4:
        out = _backend.get_namespace(frame)[0].concatenate([out, frame[..., 3:].astype(out.dtype)], axis=-1)
    dtype = np.dtype(frame.dtype)
    if dtype.kind not in "iu":
        return out
    xp, _ = _backend.get_namespace(out)
    return xp.clip(xp.rint(out), np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


def _colour_blocks(func: Callable, image: Any, *others: Any, drop_axis: bool = False) -> Any:
    """``func`` on colour blocks (colour axis whole); lazy for dask."""
    if not _backend.is_dask(image):
        return func(image, *others)
    others = [_backend.as_dask(o).rechunk(image.chunks[:-1]) for o in others]
    if drop_axis:
        return _backend.dask_module().map_blocks(func, image, dtype=np.float64, drop_axis=image.ndim - 1)
    dtype = image.dtype if np.dtype(image.dtype).kind in "iu" else float_dtype(image.dtype)
    return _backend.dask_module().map_blocks(lambda block, light: func(block, light), image, *others, dtype=dtype)
