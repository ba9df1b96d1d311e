"""The operation schema: every operation declared once, four faces derived.

An operation is declared by decorating its frame kernel with :func:`operation`::

    @operation(menu="filter", halo=lambda sigma, truncate, **_: ceil(truncate * sigma))
    def gaussian(image, *, sigma: Annotated[float, Range(0, 100)] = 1.0, truncate: float = 4.0):
        '''numpydoc ...'''
        xp, ndi = get_namespace(image)
        return ndi.gaussian_filter(image.astype(float_dtype(image.dtype)), sigma, truncate=truncate)

The decorated body is the *frame kernel*: it sees one frame (2-D by default).
Its type hints are the parameters' declaration (:class:`Param`: kind, range,
choices); the decorator's arguments are the operation's (:class:`Operation`:
frame dimensionality, halo, output dtype and frame shape, each a number or a
function of the parameters). The decorator files the record and returns the
public function, which hands the call to :func:`napari_stacklab.engine.run`.
The napari widgets, recipes, the CLI and the manifest are generated from the
records (:mod:`napari_stacklab.catalog` lists them all).

Public functions that are not operations (they take two images, return a
transform or a tuple) are decorated with :func:`validated`: the same hints,
the same checks and the same ``device=`` keyword.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from collections.abc import Callable

import numpy as np

from . import _backend, costs, engine
from ._validation import check_array, check_choice, check_number, float_dtype
from .channels import POLICIES, ChannelPolicy, Channels

__all__ = [
    "ImageRef",
    "PerFrame",
    "Range",
    "Unit",
    "Param",
    "Operation",
    "operation",
    "validated",
    "declared",
    "MENUS",
    "OUTPUT_KINDS",
    "ARRAY_OUTPUTS",
]

#: napari Layers-menu ids by short name.
MENUS = {
    "filter": "napari/layers/filter",
    "segment": "napari/layers/segment",
    "measure": "napari/layers/measure",
    "register": "napari/layers/register",
    "transform": "napari/layers/transform",
    "visualize": "napari/layers/visualize",
    "project": "napari/layers/project",
    "data": "napari/layers/data",
}

#: Outputs that are one array aligned with the input, shown as one layer (and chainable in a recipe).
ArrayOutput = Literal["image", "labels", "mask"]
#: What an operation returns. ``"images"`` is a dict ``{name: array}`` (e.g. amplitude and
#: phase), each shown as its own layer ``"<input> <op> <name>"``.
OutputKind = Literal["image", "labels", "mask", "images", "table", "points", "value"]
#: Which input axes an output keeps: all, the leading batch axes, or the trailing frame axes.
Keeps = Literal["all", "batch", "frame"]
ARRAY_OUTPUTS = get_args(ArrayOutput)
OUTPUT_KINDS = get_args(OutputKind)
KEEPS = get_args(Keeps)

_REGISTRY: dict[str, Operation] = {}


class ImageRef:
    """Type hint for a parameter that is a second image (a reference, a PSF, a mask).

    In Python it takes an array; the napari widget shows a layer chooser; a
    recipe records ``{"layer": name}`` and :meth:`Recipe.run` takes the array
    from its ``inputs`` mapping.
    """


class PerFrame:
    """``Annotated[ImageRef, PerFrame]``: a second image aligned with the input, pixel for pixel.

    It may have the frame shape (the same for every frame) or the input's whole
    shape (one per frame: a mask per time point); the kernel receives the frame
    matching the one it computes.
    """


@dataclass(frozen=True)
class Unit:
    """``Annotated[float, Unit("cycles per frame width")]``: the unit a parameter is measured in.

    Shown with the parameter in the napari widget (``"low cutoff (cycles per
    frame width)"``); a parameter without one is in the image's own units or
    unitless, as its docstring says.
    """

    name: str


@dataclass(frozen=True)
class Range:
    """Allowed interval of a numeric parameter (for validation and widget limits)."""

    low: float | None = None
    high: float | None = None
    step: float | None = None
    low_inclusive: bool = True
    #: what the bound is, for messages (a range an operation's ``limits`` rule derives from the image)
    reason: str = ""


@dataclass(frozen=True)
class Param:
    """One keyword parameter of an operation, derived from its type hints."""

    name: str
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    low_inclusive: bool = True
    choices: tuple | None = None
    optional: bool = False
    per_axis: bool = False  # a number, or a sequence of numbers (one per frame axis)
    per_frame: bool = False  # an ImageRef of the frame shape or of the input's shape (see PerFrame)
    many: bool = False  # a sequence of ImageRef (a set of images)
    columns: int | None = None  # kind list: rows of this many numbers (None: any number)
    unit: str | None = None  # the unit of a number (Unit), shown with its label

    @property
    def label(self) -> str:
        """The parameter's name for people: ``"low cutoff (cycles per frame width)"``."""
        text = self.name.replace("_", " ")
        return f"{text} ({self.unit})" if self.unit else text

    def check(self, value: Any) -> Any:
        """Return ``value`` coerced to the declared kind, or raise naming the parameter."""
        if value is None:
            if self.optional:
                return None
            raise TypeError(f"{self.name} must not be None")
        if self.kind is ImageRef:
            return self._check_images(value) if self.many else _checked_array(value, self.name)
        if self.choices is not None:
            if self.per_axis and isinstance(value, (tuple, list)):  # a choice or a sequence of them
                for item in value:
                    check_choice(self.name, item, self.choices)
                return tuple(value)
            check_choice(self.name, value, self.choices)
            return value
        if self.kind is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{self.name} must be True or False, got {value!r}")
            return bool(value)
        if self.kind is str:
            if not isinstance(value, str):
                raise TypeError(f"{self.name} must be a string, got {value!r}")
            return value
        if self.per_axis and isinstance(value, (tuple, list, np.ndarray)):
            return tuple(self._check_number(v, self.kind is int) for v in value)
        if self.kind in (int, float):
            return self._check_number(value, self.kind is int)
        if self.kind is list:
            return self._check_rows(value)
        if self.kind is tuple:
            if not isinstance(value, (tuple, list)):
                raise TypeError(f"{self.name} must be a sequence of numbers, got {value!r}")
            for item in value:
                check_number(self.name, item, low=self.low, high=self.high, low_inclusive=self.low_inclusive)
            return tuple(value)
        if self.kind is not object and not isinstance(value, self.kind):  # a record, say a Transform
            raise TypeError(f"{self.name} must be of type {self.kind.__name__}, got {type(value).__name__}")
        return value

    def _check_number(self, value: Any, integer: bool) -> Any:
        if isinstance(value, np.generic):
            value = value.item()
        if not integer and isinstance(value, numbers.Integral) and not isinstance(value, bool):
            value = float(value)
        check_number(self.name, value, low=self.low, high=self.high, low_inclusive=self.low_inclusive, integer=integer)
        return value

    def _check_rows(self, value: Any) -> list:
        """Rows of numbers (``list[tuple[float, float]]``: per-frame shifts) as plain nested lists."""
        rows = value.tolist() if isinstance(value, np.ndarray) else value
        if not isinstance(rows, (list, tuple)) or not all(isinstance(row, (list, tuple)) for row in rows):
            raise TypeError(f"{self.name} must be a list of rows of numbers, got {_short(value)}")
        if self.columns is not None and any(len(row) != self.columns for row in rows):
            bad = next(i for i, row in enumerate(rows) if len(row) != self.columns)
            raise ValueError(f"{self.name}: every row must hold {self.columns} numbers, row {bad} holds "
                             f"{len(rows[bad])}")
        return [[self._check_number(item, integer=False) for item in row] for row in rows]

    def _check_images(self, value: Any) -> list:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{self.name} must be a list of arrays, got {type(value).__name__}")
        return [_checked_array(item, f"{self.name}[{i}]") for i, item in enumerate(value)]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _checked_array(value: Any, name: str) -> Any:
    check_array(value, name)
    return value


def _param_from_hint(name: str, hint: Any, default: Any) -> Param:
    """Read kind, range, choices and optionality from a (possibly Annotated/Optional) hint."""
    limits = Range()
    unit = None
    optional = default is None
    per_axis = per_frame = many = False
    while True:
        origin = typing.get_origin(hint)
        if origin is typing.Annotated:
            hint, *extras = typing.get_args(hint)
            limits = next((e for e in extras if isinstance(e, Range)), limits)
            unit = next((e.name for e in extras if isinstance(e, Unit)), unit)
            per_frame = per_frame or PerFrame in extras
        elif origin in (typing.Union, types.UnionType):
            args = typing.get_args(hint)
            kept = [a for a in args if a is not type(None)]
            optional = optional or len(kept) < len(args)
            sequences = [a for a in kept if typing.get_origin(a) in (tuple, list)]
            per_axis = per_axis or bool(sequences) and len(kept) > len(sequences)
            scalars = [a for a in kept if a not in sequences]
            # several kinds of value (an index or a name): not one kind to check, the function checks it
            hint = object if len(scalars) > 1 else (scalars[0] if scalars else kept[0])
        elif origin in (list, tuple, Sequence) and typing.get_args(hint)[:1] == (ImageRef,):
            hint, many = ImageRef, True
        else:
            break
    choices = columns = None
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        kind = type(choices[0])
    elif typing.get_origin(hint) in (tuple, list):
        kind = tuple
        row = typing.get_args(hint)[:1]
        if row and typing.get_origin(row[0]) in (tuple, list):  # rows of numbers, e.g. one shift per frame
            kind = list
            items = typing.get_args(row[0])
            columns = None if Ellipsis in items or typing.get_origin(row[0]) is list else len(items)
    elif isinstance(hint, type):
        kind = hint
    else:
        kind = object
    return Param(
        name=name,
        kind=kind,
        default=default,
        low=limits.low,
        high=limits.high,
        step=limits.step,
        low_inclusive=limits.low_inclusive,
        choices=choices,
        optional=optional,
        per_axis=per_axis,
        per_frame=per_frame,
        many=many,
        columns=columns,
        unit=unit,
    )


def _dtype_rule(rule: Any) -> Callable[..., np.dtype]:
    if callable(rule):
        return rule
    fixed = {
        "float": lambda dtype, **_: float_dtype(dtype),
        "same": lambda dtype, **_: np.dtype(dtype),
        "bool": lambda dtype, **_: np.dtype(bool),
        "labels": lambda dtype, **_: np.dtype(np.int32),
    }
    if rule in fixed:
        return fixed[rule]
    return lambda dtype, **_: np.dtype(rule)


@dataclass(frozen=True)
class Operation:
    """The single declaration of an operation, from which every face is derived.

    Frame dimensionality, halo, output dtype and output frame shape are
    declared as numbers or as functions of the parameters (``frame_ndim``,
    ``halo``, ``out_dtype``, ``frame_shape``); the ``*_for`` methods evaluate
    them for given parameters. Kernel parameters whose names start with ``_``
    are not public: ``prepare`` derives them (a footprint array, detector
    weights) and the kernel receives them. ``channels`` is the colour policy
    (:mod:`napari_stacklab.channels`); a ``display_adjustment`` returns an
    integer colour image in its own dtype.
    """

    name: str
    family: str
    title: str
    menu: str
    output: OutputKind
    params: tuple[Param, ...]
    kernel: Callable = field(repr=False)
    func: Callable = field(repr=False, compare=False, default=None)
    frame_rule: int | Callable[..., int] = field(repr=False, default=2)
    halo: Callable[..., Any] | None = field(repr=False, default=None)
    prepare: Callable[..., dict] | None = field(repr=False, default=None)
    out_dtype: Callable[..., np.dtype] = field(repr=False, default=None)
    frame_shape: Callable[..., tuple] | None = field(repr=False, default=None)
    vectorized: bool = False
    lifted: bool = True
    allow_complex: bool = False
    keeps: Keeps = "all"
    resamples: bool = False
    parts: tuple[str, ...] = ()
    display: dict = field(default_factory=dict, compare=False)
    summary: str = ""
    channels: ChannelPolicy = "per_channel"
    display_adjustment: bool = False
    reframe: Callable[..., dict] | None = field(repr=False, default=None)
    # -- cost model (issue 19): what a call needs, and the ranges the image sets
    cost: Callable[..., costs.Cost] | None = field(repr=False, default=None)
    limits: Callable[..., Mapping[str, Range]] | None = field(repr=False, default=None)

    def display_for(self, key: str = "") -> dict:
        """napari layer keyword arguments suggested for an output (``key`` names an ``images`` output)."""
        return dict(self.display.get(key, {}))

    def __call__(self, image: Any, **params: Any) -> Any:
        return self.func(image, **params)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"operation {self.name!r} has no parameter {name!r}")

    @property
    def defaults(self) -> dict:
        """The declared default of every parameter (``inspect.Parameter.empty`` when required)."""
        return {p.name: p.default for p in self.params}

    @property
    def frame_ndim(self) -> int:
        """Frame dimensionality with the default parameters (:meth:`frame_ndim_for` for others)."""
        return self.frame_ndim_for(self.defaults)

    def frame_ndim_for(self, params: Mapping) -> int:
        """Number of axes of the frame the kernel sees with ``params`` (a 3-D footprint: volumes)."""
        rule = self.frame_rule
        return int(rule(**{**self.defaults, **params}) if callable(rule) else rule)

    @property
    def frame_parameters(self) -> tuple[str, ...]:
        """The parameters that decide the frame dimensionality (``mode``, ``footprint``, ...)."""
        if not callable(self.frame_rule):
            return ()
        rule = inspect.signature(self.frame_rule).parameters.values()
        return tuple(p.name for p in rule if p.kind is not inspect.Parameter.VAR_KEYWORD)

    def halo_for(self, params: Mapping) -> Any:
        """Pixels of context the kernel needs per frame axis (``None``: whole frames)."""
        return self.halo(**params) if self.halo is not None else None

    def frame_shape_for(self, in_frame: tuple, params: Mapping) -> tuple | None:
        """Output frame shape for an input frame of ``in_frame`` (``None``: unchanged)."""
        return tuple(self.frame_shape(tuple(in_frame), **params)) if self.frame_shape is not None else None

    def dtype_for(self, in_dtype: Any, params: Mapping) -> np.dtype:
        """Output dtype for input of ``in_dtype`` (computed on native byte order, float16 as float32)."""
        return np.dtype(self.out_dtype(engine.computable_dtype(in_dtype), **params))

    def cost_for(self, shape: tuple, dtype: Any, params: Mapping) -> costs.Cost:
        """Estimated :class:`~napari_stacklab.costs.Cost` of one kernel call on input of ``shape``.

        ``shape`` is what one call receives: a frame, a block of frames
        (vectorized kernels), a dask chunk with its halo, or the whole input of
        an operation that is not lifted. Without a declared rule the cost is
        linear in the pixels (:func:`~napari_stacklab.costs.pixelwise`).
        """
        rule = self.cost if self.cost is not None else costs.pixelwise
        return rule(tuple(int(s) for s in shape), engine.computable_dtype(dtype), **{**self.defaults, **params})

    def limits_for(self, frame: tuple, dtype: Any, params: Mapping) -> dict[str, Range]:
        """The ranges a frame of shape ``frame`` sets on parameters the declaration leaves open.

        ``{name: Range(low, high, reason=...)}``; ``low``/``high`` may be a
        tuple with one bound per element of a tuple parameter (a centre).
        """
        if self.limits is None:
            return {}
        found = self.limits(tuple(int(s) for s in frame), engine.computable_dtype(dtype), **{**self.defaults, **params})
        return dict(found)

    def bind(self, params: Mapping | None = None, *, recorded: bool = False,
             channels: Channels | None = None) -> engine.Bound:
        """Complete ``params`` with defaults and validate each one (raises naming the parameter).

        With ``recorded=True`` (a recipe step), image parameters hold the
        ``{"layer": name}`` reference a recipe records instead of an array;
        :meth:`with_images` puts the arrays in. ``channels`` names the colour
        or channel axis of the image the parameters are for.
        """
        params = dict(params or {})
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise TypeError(
                f"{self.name}() got unknown parameter(s) {unknown}; it takes {sorted(known)}"
            )
        bound = {}
        for p in self.params:
            value = params.get(p.name, p.default)
            if value is inspect.Parameter.empty:
                raise TypeError(f"{self.name}() missing required parameter {p.name!r}")
            if recorded and p.kind is ImageRef and value is not None:
                if not (isinstance(value, dict) and isinstance(value.get("layer"), str)):
                    raise ValueError(f"{p.name} must be recorded as {{layer: <name>}}, got {value!r}")
                bound[p.name] = value
                continue
            bound[p.name] = p.check(value)
        return engine.Bound(self, bound, channels=channels)

    def with_images(self, bound: engine.Bound, images: Mapping) -> engine.Bound:
        """``bound`` (bound as a recorded step) with the arrays for its image parameters, each checked."""
        return bound.replace(**{name: self.param(name).check(array) for name, array in images.items()})

    def resolve(self, image: Any, params: Mapping) -> engine.Bound:
        """Parameters with global statistics (a threshold, a reference) computed once."""
        bound = params if isinstance(params, engine.Bound) else self.bind(params)
        if bound.resolved:
            return bound
        if bound.channels is not None:  # each channel, the luminance or colour frames: as the run will see them
            return engine.resolve_channels(self, image, bound)
        found = self.prepare(image, **bound) if self.prepare is not None else bound
        return engine.Bound(self, found, resolved=True)

    def step(self, params: Mapping, refs: dict | None = None) -> dict:
        """The recipe step for ``params``; image parameters are recorded by the name in ``refs``."""
        refs = refs or {}
        recorded = {}
        for p in self.params:
            if p.name not in params:
                continue
            value = params[p.name]
            if p.kind is ImageRef and value is not None:
                if p.name not in refs:
                    raise ValueError(f"{self.name}: name the image passed as {p.name!r} to record it in a recipe")
                value = {"layer": refs[p.name]}
            recorded[p.name] = value
        return {"op": self.name, "params": _plain(recorded)}

    @property
    def image_params(self) -> tuple[Param, ...]:
        """Parameters that take a second image."""
        return tuple(p for p in self.params if p.kind is ImageRef)

    def output_frame(self, in_shape: tuple, out_shape: tuple, frame: dict, frame_ndim: int | None = None,
                     channels: Channels | None = None) -> dict:
        """Physical frame (scale, translate, units, axis_labels) of a result of shape ``out_shape``.

        ``frame`` holds the input's per-axis ``scale``, ``translate``, ``units``
        and ``axis_labels``. The output keeps the input axes named by
        :attr:`keeps` (all, the leading batch axes, or the trailing frame
        axes of ``frame_ndim``, by default :attr:`frame_ndim`); axes it adds
        are unitless pixel axes; when :attr:`resamples`, a frame axis that
        changed length gets the pixel size ``scale * in / out`` with the first
        pixel centre moved accordingly; a :attr:`reframe` rule then puts the
        result on its own grid (the FFT's frequency axes). An input's channel
        axis (``channels``) is never a frame axis: it is kept where it was, or
        dropped when the result has none (a mask from a colour image's
        luminance).
        """
        if channels is not None:
            return self._frame_around_channels(in_shape, out_shape, frame, frame_ndim, channels)
        frame_ndim = self.frame_ndim if frame_ndim is None else frame_ndim
        n_in, n_out = len(in_shape), len(out_shape)
        kept = {
            "all": list(range(n_in)),
            "batch": list(range(n_in - frame_ndim)),
            "frame": list(range(n_in - frame_ndim, n_in)),
        }[self.keeps][-n_out:] if n_out else []
        out = {key: [tuple(frame[key])[i] for i in kept] for key in ("scale", "translate", "units", "axis_labels")}
        if self.resamples and len(kept) == n_out:
            for j, i in enumerate(kept):
                if in_shape[i] != out_shape[j]:
                    old = out["scale"][j]
                    out["scale"][j] = old * in_shape[i] / out_shape[j]
                    out["translate"][j] += (out["scale"][j] - old) / 2
        for j in range(len(kept), n_out):
            out["scale"].append(1.0)
            out["translate"].append(0.0)
            out["units"].append("pixel")
            out["axis_labels"].append(f"{self.name}_{j - len(kept)}")
        out = {key: tuple(value) for key, value in out.items()}
        if self.reframe is not None:
            out = {key: tuple(value) for key, value in self.reframe(out, tuple(in_shape), tuple(out_shape)).items()}
        return out

    def _frame_around_channels(self, in_shape: tuple, out_shape: tuple, frame: dict, frame_ndim: int | None,
                               channels: Channels) -> dict:
        axis = channels.checked(tuple(in_shape)).axis % len(in_shape)

        def without(values: tuple, at: int) -> tuple:
            return tuple(values[:at]) + tuple(values[at + 1:])

        # a native operation's result keeps the axis where it has one (the input's number of axes): the
        # subject of a background removal does, its mask does not
        kept = engine.keeps_channels(self, channels) and (self.channels != "native"
                                                          or len(out_shape) == len(in_shape))
        at = axis - len(in_shape) + len(out_shape) if kept else None  # the same place, counted from the end
        inner = self.output_frame(
            without(in_shape, axis), without(out_shape, at) if kept else tuple(out_shape),
            {key: without(tuple(frame[key]), axis) for key in ("scale", "translate", "units", "axis_labels")},
            frame_ndim,
        )
        if not kept:
            return inner
        return {key: value[:at] + (tuple(frame[key])[axis],) + value[at:] for key, value in inner.items()}

    @property
    def menu_id(self) -> str:
        return MENUS.get(self.menu, self.menu)


def _plain(value: Any) -> Any:
    """Recipe-safe (YAML) version of a parameter value."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _summary(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ").strip()


def _family_of(module: str) -> str:
    """``napari_stacklab.<family>[._private_module]`` -> ``family``."""
    parts = module.split(".")
    return (parts[1] if len(parts) > 1 and parts[0] == "napari_stacklab" else parts[-1]).lstrip("_")


_DEVICE = inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="str | None")
#: Every operation takes these: which axis holds channels, and whether they are colour (see channels).
_CHANNEL_ARGUMENTS = [
    inspect.Parameter("channel_axis", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="int | None"),
    inspect.Parameter("rgb", inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool"),
]


def operation(
    *,
    menu: str,
    frame_ndim: int | Callable[..., int] = 2,
    output: OutputKind = "image",
    halo: Callable[..., Any] | None = None,
    prepare: Callable[..., dict] | None = None,
    dtype: Any = "float",
    frame_shape: Callable[..., tuple] | None = None,
    vectorized: bool = False,
    lift: bool = True,
    allow_complex: bool = False,
    keeps: Keeps = "all",
    resamples: bool = False,
    parts: Sequence[str] = (),
    display: dict | None = None,
    title: str | None = None,
    name: str | None = None,
    family: str | None = None,
    channels: ChannelPolicy = "per_channel",
    display_adjustment: bool = False,
    reframe: Callable[..., dict] | None = None,
    cost: Callable[..., costs.Cost] | None = None,
    limits: Callable[..., Mapping[str, Range]] | None = None,
) -> Callable[[Callable], Callable]:
    """Declare an operation; return its public, validated, lifted function.

    Parameters
    ----------
    menu : str
        Short napari Layers-menu name (see :data:`MENUS`) or a full menu id.
    frame_ndim : int or callable
        Number of axes of the frame the kernel sees (2 or 3), or
        ``frame_ndim(**params) -> int`` when a parameter decides it (a 3-D
        footprint, ``mode="3d"``).
    output : {"image", "labels", "mask", "images", "table", "points", "value"}
        What the operation returns; decides the napari layer type.
    halo : callable, optional
        ``halo(**params) -> int`` pixels of context the kernel needs; lets dask
        split frames into overlapping chunks. ``None`` keeps frames whole.
    prepare : callable, optional
        ``prepare(image, **params) -> params``: computes global statistics once
        over the whole input (or a chosen plane) before the lazy graph is built.
    dtype : {"float", "same", "bool", "labels"} or dtype or callable
        Output dtype rule (``"float"``: float32, or float64 for float64 input),
        or ``dtype(in_dtype, **params) -> dtype``.
    frame_shape : callable, optional
        ``frame_shape(in_frame_shape, **params) -> out_frame_shape`` for kernels
        that change the frame size, or its number of axes (``()``: one value
        per frame, as a virtual detector gives).
    vectorized : bool
        The kernel handles leading batch axes itself.
    lift : bool
        ``False`` for operations that are not frame maps (tables, point
        lists, reductions across frames): the function receives the whole
        input and does its own lifting.
    allow_complex : bool
        Accept complex input.
    keeps : {"all", "batch", "frame"}
        Which input axes the output keeps, for its pixel size, units and axis
        labels: all of them (filters), the leading batch axes (a virtual
        detector over a scan), or the trailing frame axes (a mean pattern).
    resamples : bool
        A change of frame size resamples the same field of view (resize, bin),
        so the pixel size changes; ``False`` for ops that pad or crop (rotate).
    parts : sequence of str
        For ``output="images"``: the names of the arrays the kernel returns
        (``{name: frame}``), in layer order.
    display : dict, optional
        Suggested napari layer settings per output: ``{"": {...}}`` for a single
        output, ``{"phase": {"colormap": "twilight"}}`` for an ``images`` output.
    family : str, optional
        The family the operation is listed under (default: its module's).
    channels : {"per_channel", "luminance", "colour", "native", "refused"}
        What the operation does with a colour or channel axis
        (:mod:`napari_stacklab.channels`). The public function takes
        ``channel_axis=`` and ``rgb=`` to name one; a kernel that declares
        ``channel_axis`` or ``rgb`` keywords is told them (``"colour"`` and
        ``"native"`` operations: the axis is last, ``channel_axis=-1``).
    display_adjustment : bool
        A display adjustment (gamma, gain, CLAHE, sharpening, ...): on an
        integer colour image it returns the image's dtype, rounded and
        clipped to the dtype's range.
    reframe : callable, optional
        ``reframe(frame, in_shape, out_shape) -> frame``: the physical frame
        (``scale``, ``translate``, ``units``, ``axis_labels``, one entry per
        output axis) of a result on another grid than its input's, from the
        frame ``keeps`` and ``resamples`` give. The FFT's frequency axes are
        in reciprocal units, ``1 / (N d)`` per pixel.
    cost : callable, optional
        ``cost(shape, dtype, **params) -> Cost``: memory and time of one kernel
        call on input of ``shape`` (see :mod:`napari_stacklab.costs`); checked
        against the caps before anything is computed. Default: linear in the
        pixels (:func:`~napari_stacklab.costs.pixelwise`).
    limits : callable, optional
        ``limits(frame_shape, dtype, **params) -> {name: Range}``: ranges the
        image sets on parameters the hints leave open (a centre inside the
        frame, a radius up to its diagonal); a value outside is refused before
        anything is computed, naming the parameter, the range and its reason.
    """
    check_choice("keeps", keeps, KEEPS)
    check_choice("channels", channels, POLICIES)
    check_choice("output", output, OUTPUT_KINDS)
    if lift and output == "images" and not parts:
        raise ValueError("a lifted operation with output='images' names its parts (parts=...)")

    def decorate(kernel: Callable) -> Callable:
        op_name = name or kernel.__name__
        signature = inspect.signature(kernel)
        hints = typing.get_type_hints(kernel, include_extras=True)
        parameters = list(signature.parameters.values())
        if not parameters or any(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in parameters[1:]):
            raise TypeError(f"operation {op_name!r}: the image comes first, every other parameter keyword-only")
        public_params = [parameters[0].replace(kind=inspect.Parameter.POSITIONAL_ONLY)] + [
            p for p in parameters[1:] if not p.name.startswith("_") and p.name not in engine.CHANNEL_KEYWORDS
        ]
        params = tuple(
            _param_from_hint(p.name, hints.get(p.name, type(p.default)), p.default) for p in public_params[1:]
        )
        op = Operation(
            name=op_name,
            family=family or _family_of(kernel.__module__),
            title=title or op_name.replace("_", " ").capitalize(),
            menu=menu,
            output=output,
            params=params,
            kernel=kernel,
            frame_rule=frame_ndim,
            halo=halo,
            prepare=prepare,
            out_dtype=_dtype_rule(dtype),
            frame_shape=frame_shape,
            vectorized=vectorized,
            lifted=lift,
            allow_complex=allow_complex,
            keeps=keeps,
            resamples=resamples,
            parts=tuple(parts),
            display=dict(display or {}),
            summary=_summary(kernel.__doc__),
            channels=channels,
            display_adjustment=display_adjustment,
            reframe=reframe,
            cost=cost,
            limits=limits,
        )

        @functools.wraps(kernel)
        def public(image: Any, /, *, device: str | None = None, channel_axis: int | None = None,
                   rgb: bool = False, **params: Any) -> Any:
            return engine.run(op, image, params, device=device,
                              channels=Channels.from_arguments(channel_axis, rgb))

        public.__signature__ = signature.replace(parameters=public_params + [*_CHANNEL_ARGUMENTS, _DEVICE])
        public.operation = op
        object.__setattr__(op, "func", public)
        if op_name in _REGISTRY and _REGISTRY[op_name].kernel.__qualname__ != kernel.__qualname__:
            raise ValueError(f"two operations are both named {op_name!r}")
        _REGISTRY[op_name] = op
        return public

    return decorate


def declared() -> Mapping[str, Operation]:
    """The operations declared so far, by name, in declaration order.

    Only the families already imported have declared theirs; use
    :mod:`napari_stacklab.catalog` for every operation.
    """
    return types.MappingProxyType(_REGISTRY)


def validated(func: Callable | None = None, *, device: bool = True) -> Callable:
    """Validate a public function's arguments from its type hints; give it ``device=``.

    For public functions that are not operations: the hints are read as an
    operation's are (``Annotated[int, Range(1, None)]``, ``Literal`` choices,
    ``ImageRef`` for an array, ``Sequence[ImageRef]`` for a set of arrays), and
    every argument given is checked and coerced the same way, naming the
    parameter in the error. Arguments without a hint, or hinted ``Any``, are
    left to the function.

    With ``device=True`` the function gains the keyword ``device`` that every
    operation has (``"auto"``, ``"cpu"`` or ``"gpu"``; default: where the data
    are): its image arguments are moved there before it runs. Host-only
    functions say ``device=False``.

    Examples
    --------
    >>> from typing import Annotated
    >>> @validated
    ... def repeat(image: ImageRef, *, times: Annotated[int, Range(1, None)] = 2):
    ...     return [image] * times
    >>> import numpy as np
    >>> len(repeat(np.zeros(3), times=3))
    3
    >>> repeat(np.zeros(3), times=0)
    Traceback (most recent call last):
    ...
    ValueError: times must be >= 1, got 0
    """
    if func is None:
        return functools.partial(validated, device=device)
    signature = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=True)
    checks = {
        name: _param_from_hint(name, hints[name], p.default)
        for name, p in signature.parameters.items()
        if name in hints and hints[name] is not Any
    }
    images = tuple(name for name, p in checks.items() if p.kind is ImageRef)

    def checked(args: tuple, kwargs: dict) -> inspect.BoundArguments:
        bound = signature.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            if name in checks:
                bound.arguments[name] = checks[name].check(value)
        return bound

    if not device:
        @functools.wraps(func)
        def public(*args: Any, **kwargs: Any) -> Any:
            bound = checked(args, kwargs)
            return func(*bound.args, **bound.kwargs)

        return public

    @functools.wraps(func)
    def public_on_device(*args: Any, device: str | None = None, **kwargs: Any) -> Any:
        bound = checked(args, kwargs)
        target = _backend.resolve_device(device)
        if target is not None:
            for name in images:
                value = bound.arguments.get(name)
                if isinstance(value, list):
                    bound.arguments[name] = [_backend.to_device(item, target) for item in value]
                elif value is not None:
                    bound.arguments[name] = _backend.to_device(value, target)
        return func(*bound.args, **bound.kwargs)

    public_on_device.__signature__ = signature.replace(parameters=[*signature.parameters.values(), _DEVICE])
    return public_on_device
