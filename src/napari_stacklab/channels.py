"""Channels: which axis of an image holds colour or fluorescence channels, and grey from colour.

Two kinds of channel axis reach the operations:

- a **colour** axis (``rgb=True``): red, green, blue (and alpha) samples of a
  photograph, a histology slide or a brightfield camera; napari's ``rgb``
  flag, a TIFF's samples axis (label ``"s"``);
- a **channel** axis: separate measurements of the same field, such as the
  fluorescence channels of a ``c`` (or ``channel``) axis. They have no colour
  relation: a weighted sum of a nuclear and a membrane stain means nothing.

Neither is ever a spatial axis of a frame. What an operation does with one is
its **channel policy** (:data:`ChannelPolicy`), declared once in the
registry (``@operation(channels=...)``):

``"per_channel"``
    Each channel is processed alone, like a grey image (its global statistics
    its own); the output keeps the channel axis where it was. Smoothing, rank
    and edge filters, denoising, deconvolution, geometry, morphology.
``"luminance"``
    A colour image is reduced to its luminance (:func:`luminance`, Rec. 709
    weights) and the output has no channel axis: a mask, labels, points, a
    correlation map. A channel axis that is not colour is processed per
    channel instead (one mask per fluorescence channel). Thresholds, Canny,
    segmentation, peaks, template matching.
``"colour"``
    A colour image is processed in a colour space: the kernel receives whole
    colour frames ``(..., M, N, 3)`` (an alpha channel is held back and put
    back unchanged), so hue and chroma can be kept (CLAHE and histogram
    equalisation of CIELAB L*, a colour bilateral, one gamma for all three
    channels). A channel axis that is not colour is processed per channel.
``"native"``
    The operation handles any channel axis itself: the axis is moved last and
    the kernel receives it (an RGB frame for saturation; a registration that
    estimates once on the grey of the channels and moves every channel alike).
``"refused"``
    The operation has no meaning for channels (a wrapped phase, a 4D-STEM
    scan, a hologram): a channel axis raises a ``ValueError`` that names the
    operation and says what to do instead.

:func:`treatment` turns a policy and a channel kind into what the engine does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from ._backend import get_namespace, skimage_module
from ._validation import float_dtype

__all__ = [
    "ChannelPolicy",
    "POLICIES",
    "COLOUR_LABELS",
    "CHANNEL_LABELS",
    "REC709",
    "Channels",
    "find_channels",
    "treatment",
    "luminance",
    "grey",
    "colour_white",
    "lightness",
    "with_lightness",
    "with_value",
]

#: What an operation does with a colour or channel axis (see the module docstring).
ChannelPolicy = Literal["per_channel", "luminance", "colour", "native", "refused"]
POLICIES = get_args(ChannelPolicy)
#: What the engine does for one policy and one kind of axis (see :func:`treatment`).
Treatment = Literal["split", "grey", "colour", "native", "refused"]

#: Axis labels of a colour axis (tifffile's ``S``: samples per pixel).
COLOUR_LABELS = ("s", "rgb", "rgba")
#: Axis labels of a channel axis (fluorescence channels, detectors).
CHANNEL_LABELS = ("c", "channel", "channels", "ch")
#: Rec. 709 (sRGB) luminance weights of red, green and blue (``skimage.color.rgb2gray`` uses the same).
REC709 = (0.2126, 0.7152, 0.0722)
#: Names of the channels of a colour axis.
COLOUR_NAMES = ("red", "green", "blue", "alpha")


@dataclass(frozen=True)
class Channels:
    """Which axis of an image holds channels, and whether they are colour.

    Parameters
    ----------
    axis : int
        The channel axis; stored counted from the end (``-1`` is the last axis)
        so that it stays right when leading axes are indexed away (one time
        point of a time lapse).
    rgb : bool
        The channels are red, green, blue (and alpha): 3 or 4 of them.
    names : tuple of str, optional
        A name per channel (from the file's metadata); see :meth:`names_for`.

    Examples
    --------
    >>> Channels.from_arguments(None, True)
    Channels(axis=-1, rgb=True, names=None)
    >>> Channels(axis=0).checked((3, 64, 64)).axis
    -3
    """

    axis: int = -1
    rgb: bool = False
    names: tuple[str, ...] | None = None

    @classmethod
    def from_arguments(cls, channel_axis: Any, rgb: Any) -> Channels | None:
        """The ``channel_axis=`` and ``rgb=`` keywords of an operation (``None`` when neither is given)."""
        if channel_axis is not None and (isinstance(channel_axis, (bool, np.bool_))
                                         or not isinstance(channel_axis, (int, np.integer))):
            raise TypeError(f"channel_axis must be an integer axis or None, got {channel_axis!r}")
        if not isinstance(rgb, (bool, np.bool_)):
            raise TypeError(f"rgb must be True or False, got {rgb!r}")
        if channel_axis is None and not rgb:
            return None
        return cls(axis=-1 if channel_axis is None else int(channel_axis), rgb=bool(rgb))

    def checked(self, shape: tuple) -> Channels:
        """These channels for an image of ``shape``: the axis in range (counted from the end), the count right."""
        ndim = len(shape)
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"channel_axis {self.axis} is out of range for an image of shape {tuple(shape)}")
        axis = self.axis - ndim if self.axis >= 0 else self.axis
        count = int(shape[axis])
        if self.rgb and count not in (3, 4):
            raise ValueError(
                f"rgb=True needs 3 (RGB) or 4 (RGBA) colour channels on axis {axis}, got {count} "
                f"(shape {tuple(shape)}); for other channels pass channel_axis without rgb"
            )
        if self.names is not None and len(self.names) != count:
            raise ValueError(f"{len(self.names)} channel names {self.names} for {count} channels")
        return self if axis == self.axis else Channels(axis, self.rgb, self.names)

    def names_for(self, count: int) -> tuple[str, ...]:
        """A name per channel: the given names, ``red, green, blue(, alpha)`` for colour, else ``c0, c1, ...``."""
        if self.names is not None and len(self.names) == count:
            return tuple(self.names)
        if self.rgb and count in (3, 4):
            return COLOUR_NAMES[:count]
        return tuple(f"c{i}" for i in range(count))

    @property
    def kind(self) -> str:
        """``"colour"`` or ``"channel"`` (for messages)."""
        return "colour" if self.rgb else "channel"


def find_channels(axis_labels: Any, shape: tuple, names: Any = None) -> Channels | None:
    """The channel axis an image's axis labels name, or ``None``.

    A label in :data:`COLOUR_LABELS` on an axis of 3 or 4 entries is a colour
    axis; a label in :data:`CHANNEL_LABELS` (or a samples axis of another
    length) is a channel axis. The first colour axis wins over a channel axis;
    an image has at most one channel axis for the operations.

    Examples
    --------
    >>> find_channels(("y", "x", "s"), (64, 64, 3))
    Channels(axis=-1, rgb=True, names=None)
    >>> find_channels(("t", "c", "y", "x"), (5, 2, 64, 64))
    Channels(axis=-3, rgb=False, names=None)
    >>> find_channels(("y", "x"), (64, 64)) is None
    True
    """
    labels = [str(label).lower() for label in (axis_labels or ())]
    if len(labels) != len(shape):
        return None
    ndim = len(shape)
    names = tuple(str(n) for n in names) if names is not None else None
    for i, label in enumerate(labels):
        if label in COLOUR_LABELS and shape[i] in (3, 4):
            return _named(Channels(i - ndim, rgb=True), names, shape[i])
    for i, label in enumerate(labels):
        if label in CHANNEL_LABELS or label in COLOUR_LABELS:
            return _named(Channels(i - ndim), names, shape[i])
    return None


def _named(channels: Channels, names: tuple | None, count: int) -> Channels:
    return channels if names is None or len(names) != count else Channels(channels.axis, channels.rgb, names)


def treatment(policy: str, channels: Channels) -> Treatment:
    """What the engine does with ``channels`` for an operation of ``policy``.

    ``"split"``: each channel alone; ``"grey"``: on the luminance; ``"colour"``:
    whole colour frames; ``"native"``: the operation takes the axis; ``"refused"``.

    Examples
    --------
    >>> treatment("luminance", Channels(-1, rgb=True)), treatment("luminance", Channels(0))
    ('grey', 'split')
    """
    if policy not in POLICIES:
        raise ValueError(f"channel policy must be one of {POLICIES}, got {policy!r}")
    if policy in ("native", "refused"):
        return policy
    if policy == "per_channel" or not channels.rgb:
        return "split"
    return "grey" if policy == "luminance" else "colour"


def _channel(image: Any, axis: int, index: int) -> Any:
    """Channel ``index`` of ``image`` along ``axis`` (a view; lazy for dask)."""
    return image[(slice(None),) * (axis % image.ndim) + (index,)]


def luminance(image: Any, channel_axis: int = -1) -> Any:
    """Rec. 709 luminance of a colour image: ``0.2126 R + 0.7152 G + 0.0722 B``, alpha ignored.

    The weights apply to the stored values (as ``skimage.color.rgb2gray``
    does), and the result stays in the image's own units: a uint8 photograph
    gives luminance from 0 to 255, so thresholds keep their meaning.

    Parameters
    ----------
    image : array, shape ``(..., 3 or 4, ...)``
        NumPy, CuPy or dask array with colour channels on ``channel_axis``.
    channel_axis : int
        The colour axis.

    Returns
    -------
    array
        The image without its colour axis; float32 (float64 for float64
        input). Lazy for dask input.

    Examples
    --------
    >>> import numpy as np
    >>> [round(float(v), 2) for v in luminance(np.array([[[255, 0, 0], [255, 255, 255]]], np.uint8))[0]]
    [54.21, 255.0]
    """
    count = image.shape[channel_axis]
    if count not in (3, 4):
        raise ValueError(f"luminance needs 3 (RGB) or 4 (RGBA) channels on axis {channel_axis}, got {count}")
    dtype = float_dtype(image.dtype)
    parts = [_channel(image, channel_axis, i).astype(dtype) * dtype.type(w) for i, w in enumerate(REC709)]
    return (parts[0] + parts[1] + parts[2]).astype(dtype, copy=False)


def grey(image: Any, channels: Channels) -> Any:
    """One grey image from all channels: :func:`luminance` for colour, the mean of the channels otherwise.

    For estimates shared by every channel (a drift, an alignment): the
    channels are summed so that each contributes its structure.

    Examples
    --------
    >>> import numpy as np
    >>> grey(np.stack([np.zeros((2, 2)), np.full((2, 2), 4.0)]), Channels(axis=0)).tolist()
    [[2.0, 2.0], [2.0, 2.0]]
    """
    channels = channels.checked(tuple(image.shape))
    if channels.rgb:
        return luminance(image, channels.axis)
    dtype = float_dtype(image.dtype)
    count = image.shape[channels.axis]
    total = _channel(image, channels.axis, 0).astype(dtype)
    for i in range(1, count):
        total = total + _channel(image, channels.axis, i).astype(dtype)
    return (total / dtype.type(count)).astype(dtype, copy=False)


def colour_white(frame: Any) -> float:
    """The value of white in a colour frame: the dtype's maximum for integers, 1 for floats in [0, 1].

    A float frame with values above 1 (a uint8 photograph after a float
    filter, say) is taken to be in its own units, with its maximum as white.

    Examples
    --------
    >>> import numpy as np
    >>> colour_white(np.zeros((2, 2, 3), np.uint8)), colour_white(np.full((2, 2, 3), 0.5))
    (255.0, 1.0)
    """
    dtype = np.dtype(frame.dtype)
    if dtype == np.bool_:
        return 1.0
    if dtype.kind in "iu":
        return float(np.iinfo(dtype).max)
    high = float(frame.max()) if frame.size else 1.0
    return max(high, 1.0)


def lightness(frame: Any) -> Any:
    """CIELAB lightness L* (0 to 100) of colour pixels, colour last (alpha ignored; white from :func:`colour_white`).

    Examples
    --------
    >>> import numpy as np
    >>> [round(float(v), 1) for v in lightness(np.array([[[255, 255, 255], [128, 128, 128]]], np.uint8))[0]]
    [100.0, 53.6]
    """
    xp, _ = get_namespace(frame)
    unit = xp.clip(frame[..., :3].astype(np.float64) / colour_white(frame), 0, 1)
    return skimage_module(frame, "color").rgb2lab(unit)[..., 0]


def with_lightness(frame: Any, transform: Any) -> Any:
    """A colour frame whose CIELAB lightness L* went through ``transform``; hue and chroma are kept.

    The frame is scaled to [0, 1] by :func:`colour_white`, converted to
    CIELAB (sRGB, D65), ``transform`` maps ``L* / 100`` (in [0, 1]) to new
    values in [0, 1], a* and b* stay, and the result is converted back,
    clipped to the colour gamut and scaled back to the frame's units.

    Parameters
    ----------
    frame : array, shape ``(M, N, 3)``
        One RGB frame (NumPy or CuPy), colour last.
    transform : callable
        ``transform(lightness) -> lightness`` on an ``(M, N)`` float array in [0, 1].

    Returns
    -------
    array, shape ``(M, N, 3)``
        float32 (float64 for float64 input), in the units of ``frame``.

    Examples
    --------
    >>> import numpy as np
    >>> orange = np.array([[[168, 76, 77]]], np.uint8)
    >>> with_lightness(orange, lambda light: light).round().tolist()
    [[[168.0, 76.0, 77.0]]]
    """
    xp, _ = get_namespace(frame)
    color = skimage_module(frame, "color")
    dtype = float_dtype(frame.dtype)
    white = colour_white(frame)
    unit = xp.clip(frame.astype(np.float64) / white, 0, 1)
    lab = color.rgb2lab(unit)
    lab[..., 0] = xp.clip(xp.asarray(transform(lab[..., 0] / 100.0), dtype=np.float64), 0, 1) * 100.0
    with warnings.catch_warnings():  # colours outside the gamut are clipped below, as the docstring says
        warnings.filterwarnings("ignore", message=".*negative Z values.*")
        rgb = xp.clip(color.lab2rgb(lab), 0, 1)
    return (rgb * white).astype(dtype, copy=False)


def with_value(frame: Any, curve: Any) -> Any:
    """A colour frame whose brightest channel went through ``curve``, the others kept in proportion.

    The HSV value ``V = max(R, G, B)`` becomes ``curve(V)`` and every colour
    channel is scaled by ``curve(V) / V``: hue and saturation are kept
    exactly. A black pixel becomes the grey ``curve(0)``. For an integer frame
    the new value is clipped to white (the dtype's maximum) first, so a
    brightened colour saturates to a brighter version of itself instead of
    changing hue. An alpha channel (a fourth one) is returned unchanged.

    Parameters
    ----------
    frame : array, shape ``(..., 3)`` or ``(..., 4)``
        Colour pixels (NumPy or CuPy), colour last.
    curve : callable
        ``curve(value) -> value`` on a float array of the brightest channel.

    Returns
    -------
    array, shape of ``frame``
        float32 (float64 for float64 input), in the units of ``frame``.

    Examples
    --------
    >>> import numpy as np
    >>> with_value(np.array([[200, 100, 50]], np.uint8), lambda v: 2 * v).tolist()
    [[255.0, 127.5, 63.75]]
    """
    xp, _ = get_namespace(frame)
    dtype = float_dtype(frame.dtype)
    values = frame.astype(dtype)
    colour = values[..., :3]
    value = colour.max(axis=-1, keepdims=True)
    new = xp.asarray(curve(value), dtype=dtype)
    if np.dtype(frame.dtype).kind in "iu":
        new = xp.clip(new, np.iinfo(frame.dtype).min, np.iinfo(frame.dtype).max)
    lit = value > 0
    ratio = xp.where(lit, new / xp.where(lit, value, 1), 0)
    out = xp.where(lit, colour * ratio, new).astype(dtype, copy=False)
    return xp.concatenate([out, values[..., 3:]], axis=-1) if frame.shape[-1] == 4 else out
