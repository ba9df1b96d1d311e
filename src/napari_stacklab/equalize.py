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

Equalizing a set is two steps. :func:`equalize_targets` reads the set once
and says, for each image, which levels it is brought to: a mean and standard
deviation, a quantile function (or a reference image to match histograms
to), a sharpness. :func:`equalize_levels`, a registry operation, brings one
image to those levels, measuring the image's own statistics. The targets are
numbers, so they are recorded as one recipe step per image that replays on
that image alone (``stacklab run``) and brings other images to the same
levels. :func:`equalize_set` is the two steps together.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal, Sequence, get_args

import numpy as np

from . import _backend
from ._validation import as_float, check_choice, check_ndim, check_number, check_real, float_dtype
from .channels import lightness, with_lightness
from .frames import iter_frame_indices
from .lift import map_frames, reduce_frames
from .registry import ImageRef, Range, operation, validated

__all__ = ["equalize_set", "equalize_targets", "equalize_levels", "laplacian_variance", "EQUALIZE_METHODS"]

EqualizeMethod = Literal["histogram", "meanstd"]
EQUALIZE_METHODS = get_args(EqualizeMethod)
#: Quantile levels (evenly spaced from 0 to 1) at which the median histogram of a set is sampled.
#: A recorded quantile function has this many values per frame; a recipe holds at most
#: ``recipe.MAX_RECIPE_NODES`` values, so a median histogram target replays for stacks of up to ~38 frames.
N_QUANTILES = 257
#: Target levels, one entry per frame (C order over the batch axes) or one entry for every frame.
Levels = Sequence[Sequence[float]]


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
    """``(..., N_QUANTILES)`` quantile function of every frame at evenly spaced levels (computed once)."""
    levels = np.linspace(0, 1, N_QUANTILES)

    def quantiles(frame):
        xp, _ = _backend.get_namespace(frame)
        return xp.quantile(frame.astype(np.float64), xp.asarray(levels))

    return _backend.materialize(reduce_frames(quantiles, image, out_shape=(N_QUANTILES,), dtype=np.float64))


def _by_frame(name: str, values: Any, frames: list[tuple], entry: int | None) -> dict[tuple, Any]:
    """Target ``values`` by frame index: one entry per frame (C order) or one for every frame, each checked.

    ``entry`` is the length of one entry (2 for a mean and a standard
    deviation), ``0`` for any length of at least 2 (a quantile function), or
    ``None`` for a number.
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, one entry per frame, got {values!r}") from None
    entry_ndim = 0 if entry is None else 1
    if array.ndim == entry_ndim:
        array = array[None]
    shape_ok = array.ndim == entry_ndim + 1 and len(array) in (1, len(frames))
    if shape_ok and entry is not None:
        shape_ok = array.shape[1] == entry if entry else array.shape[1] >= 2
    if not shape_ok:
        what = {None: "a number", 2: "[mean, standard deviation]", 0: "a quantile function (>= 2 values)"}[entry]
        raise ValueError(f"{name} must give {what} for each of the {len(frames)} frame(s), or one for every "
                         f"frame; got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers, got {values!r}")
    return {index: array[i if len(array) > 1 else 0] for i, index in enumerate(frames)}


def _levelled(image: Any, method: str, target: Any, reference: Any) -> Any:
    """``image`` (grey, ``(..., M, N)``) with every frame brought to its target levels (lazy for dask)."""
    frames = _frames(tuple(image.shape[:-2]))
    if method == "meanstd":
        if reference is not None:
            raise ValueError("reference is an image to match histograms to (method='histogram'); method='meanstd' "
                             "takes target=[[mean, std]]")
        if target is None:
            raise ValueError("method='meanstd' needs the target levels: target=[[mean, std]] (one pair per frame, "
                             "or one for every frame)")
        targets = _by_frame("target", target, frames, 2)
        if any(t[1] < 0 for t in targets.values()):
            raise ValueError(f"target standard deviations must be >= 0, got {target!r}")
        stats = _frame_stats(image)
        params = {}
        for index in frames:
            mean, std = stats[index]
            t_mean, t_std = targets[index]
            gain = t_std / std if std > 0 else 1.0
            params[index] = {"gain": gain, "offset": t_mean - gain * mean}
        return _per_frame(_gain, image, params)
    if (target is None) == (reference is None):
        raise ValueError("method='histogram' needs either a target quantile function (target=...) or a reference "
                         "image (reference=...), not both")
    if reference is not None:
        check_ndim(reference, 2, "reference")
        check_real(reference, "reference")
        batch = tuple(reference.shape[:-2])
        if batch not in ((), tuple(image.shape[:-2])):
            raise ValueError(f"reference must be one frame or have the image's leading (frame) axes "
                             f"{tuple(image.shape[:-2])}, got shape {tuple(reference.shape)}")
        templates = {index: _backend.materialize(reference[index] if batch else reference) for index in frames}
    else:
        quantiles = _by_frame("target", target, frames, 0)
        if any(np.any(np.diff(q) < 0) for q in quantiles.values()):
            raise ValueError("a target quantile function must not decrease")
        templates = {index: _backend.like(q[None, :], image) for index, q in quantiles.items()}
    if image.dtype.kind == "u" and any(t.dtype.kind != "u" for t in templates.values()):
        # scikit-image's fast path for unsigned images needs an unsigned reference too
        image = image.astype(float_dtype(image.dtype))
    return _per_frame(_match, image, {index: {"reference": t} for index, t in templates.items()})


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


def _sharpness_variances(image: Any, radius: float) -> np.ndarray:
    """``(...)`` variance of the Laplacian of every frame, with the terms :func:`_solve_amount` needs."""
    return _backend.materialize(reduce_frames(_sharpness_terms, image, out_shape=(3,), dtype=np.float64,
                                              radius=radius))


def _sharpened(image: Any, sharpness: Any, radius: float, max_amount: float) -> Any:
    """``image`` with every frame's variance of the Laplacian brought to its target by an unsharp mask."""
    frames = _frames(tuple(image.shape[:-2]))
    targets = _by_frame("sharpness", sharpness, frames, None)
    terms = _sharpness_variances(image, radius)
    params = {index: {"radius": radius, "amount": _solve_amount(terms[index], float(targets[index]), max_amount)}
              for index in frames}
    return _per_frame(_sharpen, image, params)


def _equalized(image: Any, *, method: str, target: Any, reference: Any, sharpness: Any, sharpness_radius: float,
               max_amount: float) -> Any:
    out = _levelled(image, method, target, reference)
    if sharpness is not None:
        out = _sharpened(out, sharpness, float(sharpness_radius), float(max_amount))
    return out


def _levels_limits(frame: tuple, dtype: Any, **_: Any) -> dict:
    return {"sharpness_radius": Range(0, max(frame), low_inclusive=False,
                                      reason="the frame's larger side: a wider blur is flat across it")}


@operation(menu="filter", lift=False, channels="colour", display_adjustment=True, title="Equalize to levels",
           limits=_levels_limits)
def equalize_levels(
    image,
    *,
    method: EqualizeMethod = "meanstd",
    target: Levels | None = None,
    reference: ImageRef | None = None,
    sharpness: Annotated[float, Range(0, None)] | tuple[float, ...] | None = None,
    sharpness_radius: Annotated[float, Range(0, None, low_inclusive=False)] = 1.0,
    max_amount: Annotated[float, Range(0, 100, low_inclusive=False)] = 10.0,
    rgb: bool = False,
):
    """Bring every frame of an image to target levels: brightness, contrast, histogram, sharpness.

    The second step of :func:`equalize_set` (whose first step,
    :func:`equalize_targets`, reads the targets off a set of images), and the
    recipe step the *Equalize a set* tool records for each image. The
    image's own statistics are measured here (once, explicitly), so the
    same step brings any other image to the same levels.

    Parameters
    ----------
    image : array, shape ``(M, N)`` or ``(..., M, N)``
        Image or stack (NumPy, CuPy or dask); each frame is brought to its
        own target. Colour (``rgb=True``, channels last): the CIELAB
        lightness L* is equalized, hue and chroma are kept, and the targets
        are L* levels (0-100).
    method : {"meanstd", "histogram"}
        ``"meanstd"``: the linear map ``(x - mean) / std * std_t + mean_t``
        that gives each frame the target mean and standard deviation.
        ``"histogram"``: histogram matching (``skimage.exposure.match_histograms``)
        to the target quantile function or to the reference image.
    target : list of list of float, optional
        One entry per frame (C order over the leading axes) or one entry for
        every frame: ``[mean, std]`` for ``"meanstd"``; for ``"histogram"``
        a quantile function, the values at evenly spaced levels from 0 to 1
        (any number >= 2 of them, not decreasing).
    reference : array, shape ``(M', N')`` or ``(..., M', N')``, optional
        For ``"histogram"`` instead of ``target``: frame ``i`` is matched to
        frame ``i`` of the reference (which has the image's leading axes,
        its frames any size), or to the reference's only frame.
    sharpness : float or sequence of float, optional
        Target variance of the Laplacian (:func:`laplacian_variance`), one
        per frame or one for every frame: after the levels, each frame is
        sharpened or softened with the unsharp mask ``x + a (x - G_r x)``
        whose amount ``a`` in ``[-1, max_amount]`` reaches it (solved in
        closed form, see :func:`equalize_set`). ``None``: sharpness kept.
    sharpness_radius : float
        Gaussian sigma of the unsharp mask, in pixels (> 0).
    max_amount : float
        Largest sharpening amount allowed (in (0, 100]).

    Returns
    -------
    array, shape of ``image``
        float32 (float64 for float64 or 32/64-bit integer input), in the
        units of the targets, never rescaled to [0, 1]; dask stays lazy.
        Colour images keep their dtype (uint8 RGB in, uint8 RGB out; alpha
        kept). No halo: frames are never split.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> image = rng.normal(50, 2, (32, 32))
    >>> out = equalize_levels(image, target=[[100.0, 10.0]])
    >>> round(float(out.mean()), 6), round(float(out.std()), 6)
    (100.0, 10.0)
    """
    settings = {"method": method, "target": target, "sharpness": sharpness, "sharpness_radius": sharpness_radius,
                "max_amount": max_amount}
    if not rgb:
        check_ndim(image, 2)
        check_real(image)
        return _equalized(image, reference=reference, **settings)
    whole = _whole_colour(image)
    if reference is not None:
        if reference.ndim != image.ndim or reference.shape[-1] not in (3, 4):
            raise ValueError(f"reference must be a colour image (channels last) like the image "
                             f"{tuple(image.shape)}, got shape {tuple(reference.shape)}")
        reference = _colour_blocks(lightness, _whole_colour(reference)[..., :3], drop_axis=True)
    light = _equalized(_colour_blocks(lightness, whole, drop_axis=True), reference=reference, **settings)
    return _colour_blocks(_relit, whole, light)


def _whole_colour(image: Any) -> Any:
    """``image`` with its colour axis (last) in one chunk (dask)."""
    return image.rechunk({image.ndim - 1: -1}) if _backend.is_dask(image) else image


def _check_colour_images(images: list) -> None:
    for i, image in enumerate(images):
        check_ndim(image, 3, f"images[{i}]")
        if image.shape[-1] not in (3, 4):
            raise ValueError(f"images[{i}] must have 3 (RGB) or 4 (RGBA) colour channels last with rgb=True, "
                             f"got shape {tuple(image.shape)}")


def _checked_reference(reference: Any, count: int) -> int | str:
    if isinstance(reference, str):
        check_choice("reference", reference, ("median",))
        return reference
    check_number("reference", reference, low=-count, high=count - 1, integer=True)
    return int(reference) % count


@validated
def equalize_targets(
    images: Sequence[ImageRef],
    *,
    reference: int | Literal["median"] = "median",
    method: EqualizeMethod = "meanstd",
    sharpness: bool = False,
    sharpness_radius: Annotated[float, Range(0, None, low_inclusive=False)] = 1.0,
    max_amount: Annotated[float, Range(0, 100, low_inclusive=False)] = 10.0,
    rgb: bool = False,
) -> list[dict]:
    """The levels each image of a set is brought to: the keyword arguments of :func:`equalize_levels`.

    Reads the set once (explicitly): the reference's statistics, or every
    image's for ``"median"``. Parameters as :func:`equalize_set`.

    Returns
    -------
    list of dict
        One per image: ``method``, ``target`` (nested lists of floats, one
        entry per frame) or ``reference`` (the reference image itself, for
        histogram matching to one of the images), and with ``sharpness``
        the target variances of the Laplacian, ``sharpness_radius`` and
        ``max_amount``. ``equalize_levels(images[i], rgb=rgb, **targets[i])``
        is ``equalize_set(images, ...)[i]``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.full((4, 4), 10.0); a[0, 0] = 14.0
    >>> b = a * 3
    >>> equalize_targets([a, b], reference=0)[1]["target"]
    [[10.25, 0.9682458365518543]]
    """
    images = list(images)
    if rgb:
        _check_colour_images(images)
        grey = [_colour_blocks(lightness, _whole_colour(image), drop_axis=True) for image in images]
    else:
        grey = _check_images(images)
    _check_images(grey)  # the same leading (frame) axes
    reference = _checked_reference(reference, len(images))
    grey_reference = None
    if method == "meanstd":
        stats = [_frame_stats(image) for image in grey] if reference == "median" else None
        target = np.median(np.stack(stats), axis=0) if stats is not None else _frame_stats(grey[reference])
        levels = {"method": "meanstd", "target": target.reshape(-1, 2).tolist()}
    elif reference == "median":
        target = np.median(np.stack([_frame_quantiles(image) for image in grey]), axis=0)
        levels = {"method": "histogram", "target": target.reshape(-1, N_QUANTILES).tolist()}
    else:
        levels = {"method": "histogram", "reference": images[reference]}
        grey_reference = grey[reference]
    targets = [dict(levels) for _ in images]
    if not sharpness:
        return targets
    radius = float(sharpness_radius)
    grey_levels = {key: value for key, value in levels.items() if key != "reference"}

    def levelled(image: Any) -> Any:
        return _levelled(image, grey_levels["method"], grey_levels.get("target"), grey_reference)

    if reference == "median":
        variances = np.median(np.stack([_sharpness_variances(levelled(image), radius)[..., 0] for image in grey]),
                              axis=0)
    else:
        variances = _sharpness_variances(levelled(grey[reference]), radius)[..., 0]
    for target in targets:
        target.update(sharpness=np.reshape(variances, -1).tolist(), sharpness_radius=radius,
                      max_amount=float(max_amount))
    return targets


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
        (sampled at :data:`N_QUANTILES` = 257 evenly spaced levels).
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
        ``[equalize_levels(image, rgb=rgb, **t) for image, t in zip(images, equalize_targets(images, ...))]``
        (:func:`equalize_targets`, :func:`equalize_levels`): new arrays, one
        per input, same shapes and kind (dask stays lazy);
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
    targets = equalize_targets(images, reference=reference, method=method, sharpness=sharpness,
                               sharpness_radius=sharpness_radius, max_amount=max_amount, rgb=rgb)
    return [equalize_levels(image, rgb=rgb, **levels) for image, levels in zip(images, targets)]


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
