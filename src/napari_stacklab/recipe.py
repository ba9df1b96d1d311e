"""Recipes: ordered operation steps, saved as plain YAML and replayed lazily.

A recipe is what a napari session recorded (every output layer carries its
steps in ``layer.metadata["stacklab"]``), written by hand, or built in a
script. ``Recipe.run`` builds the lazy graph of its steps; nothing is
computed until the result is shown or written.

.. code-block:: yaml

    stacklab: 1            # recipe format version
    steps:
      - op: gaussian
        params: {sigma: 2}
      - op: threshold
        params: {method: otsu}
"""

from __future__ import annotations

import os
import pprint
import reprlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from . import __version__, catalog, engine, registry
from ._image import PROVENANCE_KEY, Image
from ._validation import check_regular
from .channels import Channels

__all__ = ["Recipe", "RECIPE_VERSION", "PROVENANCE_KEY", "RecipeWarning", "provenance", "steps_script"]

RECIPE_VERSION = 1

#: A recipe is a short list of steps. Documents beyond these bounds are refused before they are
#: built: YAML aliases can expand 700 bytes into 10**9 nodes ("billion laughs"), and deep nesting
#: would exhaust the parser's recursion.
MAX_RECIPE_BYTES = 2**20
MAX_RECIPE_NODES = 10_000
MAX_RECIPE_DEPTH = 32
#: Longest text of a value quoted in an error message.
MAX_QUOTED = 200


class RecipeWarning(UserWarning):
    """Something in a recipe file was assumed (a missing format version line)."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 6, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = MAX_QUOTED, MAX_QUOTED, 40


def _quoted(value: Any) -> str:
    """A short ``repr`` of ``value`` for an error message: bounded work, at most MAX_QUOTED characters."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."


def _clipped(message: str, limit: int = 2 * MAX_QUOTED) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."

def _normalize_step(step: Any, index: int) -> tuple[dict, engine.Bound]:
    if not isinstance(step, dict) or "op" not in step:
        raise ValueError(f"recipe step {index} must be a mapping with an 'op' key, got {_quoted(step)}")
    extra = set(step) - {"op", "params"}
    if extra:
        raise ValueError(f"recipe step {index} ({_quoted(step['op'])}) has unknown keys {_quoted(sorted(map(str, extra)))}")
    if not isinstance(step["op"], str):
        raise ValueError(f"recipe step {index}: 'op' must be an operation name, got {_quoted(step['op'])}")
    try:
        op = catalog.get(step["op"])
    except KeyError as exc:
        raise ValueError(f"recipe step {index}: {_clipped(str(exc.args[0]))}") from None
    params = step.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"recipe step {index} ({op.name!r}): params must be a mapping, got {_quoted(params)}")
    try:
        bound = op.bind(params, recorded=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"recipe step {index} ({op.name!r}): {_clipped(str(exc))}") from None
    return {"op": op.name, "params": dict(params)}, bound


@dataclass
class Recipe:
    """An ordered list of ``{"op": name, "params": {...}}`` steps.

    Parameters
    ----------
    steps : iterable of dict
        Each step names a registry operation and its parameters; every step is
        validated when the recipe is made, so a typo fails before any data is read.

    Examples
    --------
    >>> import numpy as np
    >>> rec = Recipe(steps=[{"op": "gaussian", "params": {"sigma": 1}},
    ...                     {"op": "threshold", "params": {"method": "manual", "value": 0.5}}])
    >>> rec.run(np.eye(8)).dtype
    dtype('bool')
    >>> Recipe.from_yaml(rec.to_yaml()) == rec
    True
    """

    steps: list = field(default_factory=list)
    #: The steps validated once, when the recipe is made (image parameters still name their layers).
    _bound: list = field(default_factory=list, init=False, repr=False, compare=False)
    _bound_from: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        normalized = [_normalize_step(step, i) for i, step in enumerate(self.steps)]
        self.steps = [step for step, _ in normalized]
        self._bound = [bound for _, bound in normalized]
        self._bound_from = [dict(step, params=dict(step["params"])) for step in self.steps]
        for i, bound in enumerate(self._bound[:-1]):
            if bound.operation.output not in registry.ARRAY_OUTPUTS:
                raise ValueError(
                    f"recipe step {i} ({bound.operation.name!r}) returns a {bound.operation.output}, "
                    "so it can only be the last step"
                )

    # --- YAML -----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"stacklab": RECIPE_VERSION, "steps": [dict(s) for s in self.steps]}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_dict(cls, document: Any, source: str = "recipe") -> "Recipe":
        """A recipe from its parsed YAML document: ``{"stacklab": 1, "steps": [...]}``.

        A document without the ``stacklab`` version line is read as version 1, with a
        :class:`RecipeWarning` saying so (hand-written recipes often leave it out).
        """
        if not isinstance(document, dict) or "steps" not in document:
            raise ValueError(f"{source} is not a stacklab recipe (a mapping with 'stacklab' and 'steps')")
        if "stacklab" not in document:
            warnings.warn(
                f"{source} has no 'stacklab: {RECIPE_VERSION}' line; reading it as recipe format version "
                f"{RECIPE_VERSION}", RecipeWarning, stacklevel=2,
            )
        else:
            version = document["stacklab"]
            if version != RECIPE_VERSION or isinstance(version, bool):
                raise ValueError(
                    f"{source}: unsupported recipe format version {_quoted(version)} (this is {RECIPE_VERSION})"
                )
        if not isinstance(document["steps"], list):
            raise ValueError(f"{source}: 'steps' must be a list")
        return cls(steps=document["steps"])

    @classmethod
    def from_yaml(cls, text: str, source: str = "recipe") -> "Recipe":
        """A recipe from YAML text; the document's size and nesting are bounded before it is built."""
        try:
            _check_document_size(text, source)
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{source} is not valid YAML: {_clipped(str(exc))}") from None
        return cls.from_dict(document, source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Recipe":
        """Read a recipe YAML file (a regular file of at most MAX_RECIPE_BYTES; FIFOs are never opened)."""
        path = Path(path)
        check_regular(path)
        if path.is_dir():
            raise ValueError(f"{path}: is a folder, not a recipe file")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_RECIPE_BYTES + 1)
        if len(raw) > MAX_RECIPE_BYTES:
            raise ValueError(f"{path}: too large for a recipe (more than {MAX_RECIPE_BYTES} bytes)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not a recipe (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
        return cls.from_yaml(text, source=str(path))

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the recipe as YAML; refuses to replace an existing file unless ``overwrite``."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path

    # --- provenance -------------------------------------------------------------
    @classmethod
    def from_metadata(cls, metadata: dict) -> "Recipe":
        """The recipe recorded in a layer's or Image's metadata."""
        record = (metadata or {}).get(PROVENANCE_KEY)
        if not record or not record.get("steps"):
            raise ValueError("this layer records no stacklab steps (it was not made by a stacklab operation)")
        return cls(steps=[{"op": s["op"], "params": s["params"]} for s in record["steps"]])

    @property
    def image_names(self) -> tuple[str, ...]:
        """The names of the images the steps take as parameters (``{"layer": name}``): what ``inputs`` must give."""
        names = []
        for bound in self._bound:
            for p in bound.operation.image_params:
                ref = bound.get(p.name)
                if isinstance(ref, dict) and isinstance(ref.get("layer"), str):
                    names.append(ref["layer"])
        return tuple(dict.fromkeys(names))

    # --- running ----------------------------------------------------------------
    def run(self, image: Any, *, inputs: dict | None = None, device: str | None = None,
            channel_axis: int | None = None, rgb: bool = False) -> Any:
        """Apply every step lazily.

        ``Image`` in -> ``Image`` out (scale, units, axis labels carried,
        provenance extended); array in -> array out (dask stays lazy).
        ``inputs`` maps the names recorded for image parameters
        (``{"layer": name}``, e.g. a reference image) to arrays or Images.

        The channel axis is a property of the input, not of the recipe: an
        Image's axis labels say it (``Image.channels``), an array's
        ``channel_axis=`` and ``rgb=`` (an array without them is grey). Each
        step treats it as its colour policy says; a step whose result has no
        channel axis (a mask from a colour image's luminance) ends it.
        """
        data = image.data if isinstance(image, Image) else image
        frame = _frame_of(image) if isinstance(image, Image) else None
        channels = Channels.from_arguments(channel_axis, rgb)
        if channels is None and isinstance(image, Image):
            channels = image.channels
        if self.steps != self._bound_from:  # steps edited after the recipe was made: validate them again
            self.__post_init__()
        op = None
        for bound in self._bound:
            in_shape, in_channels = tuple(data.shape), channels
            op = bound.operation
            data = engine.run(op, data, _with_inputs(op, bound, inputs or {}), device=device, channels=channels)
            if frame is not None and hasattr(data, "shape"):
                frame = op.output_frame(in_shape, tuple(data.shape), frame, channels=in_channels)
            channels = channels if engine.keeps_channels(op, channels) else None
        if not isinstance(image, Image):
            return data
        metadata = provenance(image.metadata, self.steps, source=image.name)
        if isinstance(data, dict):  # an "images" operation: one Image per output
            return {
                key: Image(value, metadata=dict(metadata), name=f"{image.name} {key}",
                           **op.output_frame(in_shape, tuple(value.shape), frame, channels=in_channels))
                for key, value in data.items()
            }
        if not hasattr(data, "shape"):  # a table, a transform, a value
            return data
        return Image(data, metadata=metadata, name=f"{image.name} recipe", **frame)

    def __len__(self) -> int:
        return len(self.steps)

    # --- as a Python script --------------------------------------------------------
    def to_script(self, source: str | os.PathLike, **options: Any) -> str:
        """A runnable Python script that replays the recipe on ``source`` with the public API.

        The script reads ``source`` with :func:`napari_stacklab.io.imread`,
        calls the public function of every step (``sl.filters.gaussian(data,
        sigma=2.0, ...)``), told the file's colour or channel axis, and writes
        the result to the path given on its command line
        (``python script.py OUTPUT.tif``). Options as :func:`steps_script`.

        Examples
        --------
        >>> rec = Recipe(steps=[{"op": "gaussian", "params": {"sigma": 2.0}}])
        >>> print(rec.to_script("cells.tif").splitlines()[15])
        data = sl.filters.gaussian(data, sigma=2.0, **channels)
        """
        return steps_script(self.steps, source, **options)


def _check_document_size(text: str, source: str) -> None:
    """Refuse YAML nested deeper than MAX_RECIPE_DEPTH, or of more than MAX_RECIPE_NODES nodes with aliases expanded.

    Works on the parser's event stream (no recursion, nothing built), counting what every
    alias would expand to.
    """
    total = depth = 0
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, depth) it expands to
    open_nodes: list[list] = []  # per open collection: [anchor, nodes before it, depth before it, deepest inside]

    def reached(level: int) -> None:
        if open_nodes:
            open_nodes[-1][3] = max(open_nodes[-1][3], level)
        if level > MAX_RECIPE_DEPTH:
            raise ValueError(f"{source}: nested too deeply for a recipe (more than {MAX_RECIPE_DEPTH} levels)")

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            total += 1
            reached(depth + 1)
            open_nodes.append([event.anchor, total - 1, depth, depth + 1])
            depth += 1
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, before, start_depth, deepest = open_nodes.pop()
            depth -= 1
            if anchor:
                sizes[anchor] = (total - before, deepest - start_depth)
            reached(deepest)
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor:
                sizes[event.anchor] = (1, 0)
        elif isinstance(event, yaml.AliasEvent):
            nodes, extra_depth = sizes.get(event.anchor, (1, 0))
            total += nodes
            reached(depth + extra_depth)
        if total > MAX_RECIPE_NODES:
            raise ValueError(
                f"{source}: too large for a recipe: more than {MAX_RECIPE_NODES} values once its YAML "
                "aliases (*name) are expanded"
            )


def _frame_of(image: Image) -> dict:
    return {"scale": image.scale, "translate": image.translate, "units": image.units,
            "axis_labels": image.axis_labels}


def _with_inputs(op: registry.Operation, bound: engine.Bound, inputs: dict) -> engine.Bound:
    """The step's bound parameters with the arrays its recorded layer names refer to."""
    images = {}
    for p in op.image_params:
        ref = bound.get(p.name)
        if isinstance(ref, dict) and "layer" in ref:
            if ref["layer"] not in inputs:
                raise ValueError(
                    f"step {op.name!r} needs the image {ref['layer']!r} for {p.name!r}; "
                    f"pass it as inputs={{{ref['layer']!r}: array}}"
                )
            found = inputs[ref["layer"]]
            images[p.name] = found.data if isinstance(found, Image) else found
    return op.with_images(bound, images)


def provenance(metadata: dict | None, steps: Iterable[dict], source: str) -> dict:
    """Metadata of a result: the source's metadata with ``steps`` appended to its record."""
    metadata = dict(metadata or {})
    previous = list((metadata.get(PROVENANCE_KEY) or {}).get("steps", []))
    metadata[PROVENANCE_KEY] = {
        "steps": previous + [dict(s) for s in steps],
        "source": (metadata.get(PROVENANCE_KEY) or {}).get("source", source),
        "version": __version__,
    }
    return metadata


# --- recipes as Python scripts -------------------------------------------------------------------------
def _literal(value: Any) -> str:
    return pprint.pformat(value, width=100, sort_dicts=False)


def _read_code(path: str, series: int = 0) -> str:
    if series:
        return f"sl.io.imread_all({path!r})[{series}]"
    return f"sl.io.imread({path!r})"


def _step_lines(step: dict, inputs: Mapping[str, str], output: str | None, last: bool) -> list[str]:
    """The lines replaying one registry step (``data`` in, ``data`` out)."""
    op = catalog.get(step["op"])
    params = dict(step.get("params") or {})
    arguments = []
    for key, value in params.items():
        if isinstance(value, dict) and set(value) == {"layer"}:
            if value["layer"] not in inputs:
                raise ValueError(f"step {op.name!r} uses the image {value['layer']!r} for {key!r}: give its file "
                                 f"in inputs={{{value['layer']!r}: path}}")
            arguments.append(f"{key}={_read_code(str(inputs[value['layer']]))}.data")
        else:
            arguments.append(f"{key}={_literal(value)}")
    lines = [f"data = sl.{op.family}.{op.name}(data{''.join(', ' + a for a in arguments)}, **channels)"]
    if op.channels == "luminance" and op.output in registry.ARRAY_OUTPUTS:
        lines.append('if channels["rgb"]:  # made from the luminance: no colour axis left')
        lines.append('    channels = {"channel_axis": None, "rgb": False}')
    if op.output == "images":
        if not last:
            raise ValueError(f"step {op.name!r} returns several images, so it can only be the last step")
        if output is None or (op.parts and output not in op.parts):
            raise ValueError(f"name the output of {op.name!r} to write: output= one of {list(op.parts) or '...'}")
        lines.append(f"data = data[{output!r}]")
    elif op.output not in registry.ARRAY_OUTPUTS:
        raise ValueError(f"the step {op.name!r} makes a {op.output}, not an image to write")
    return lines


def steps_script(
    steps: Iterable[dict],
    source: str | os.PathLike,
    *,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    output: str | None = None,
    series: int = 0,
    frame: Mapping[str, Any] | None = None,
    name: str = "result",
) -> str:
    """The Python source replaying ``steps`` on the file ``source`` (see :meth:`Recipe.to_script`).

    Parameters
    ----------
    steps : iterable of dict
        Recipe steps (``{"op": name, "params": {...}}``).
    source : path
        The file the script reads (series ``series`` of it, for files that hold several).
    inputs : mapping, optional
        The files of the images the steps name (``{"layer": name}`` parameters), by name.
    output : str, optional
        Which output of a last step with several (``output="images"``) to write.
    frame : mapping, optional
        ``scale``, ``translate``, ``units`` and ``axis_labels`` written with the
        result (one entry per axis of the result). By default the source's
        frame, when the result has the source's shape.
    name : str
        The result's name (written in its metadata).

    Raises
    ------
    ValueError
        An unknown step, an image parameter without its file, an output not named.
    """
    steps = list(steps)
    if not steps:
        raise ValueError("no steps to write as a script")
    inputs = dict(inputs or {})
    body = []
    for i, step in enumerate(steps):
        body.append(f"# step {i + 1}: {step['op']}")
        try:
            body.extend(_step_lines(step, inputs, output, last=i == len(steps) - 1))
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
    if frame is None:
        result = ["data = np.asarray(data)",
                  "# the source's pixel size, origin, units and axis names, where the result has its shape",
                  f"result = image.with_data(data, name={name!r}) if data.shape == image.shape "
                  f"else sl.io.Image(data, name={name!r})"]
    else:
        result = ["result = sl.io.Image(",
                  "    np.asarray(data),",
                  *(f"    {key}={list(frame[key])!r}," for key in ("scale", "translate", "units", "axis_labels")),
                  f"    name={name!r},",
                  ")"]
    source = str(source)
    lines = [
        f'"""Replay {len(steps)} napari-stacklab step(s) on {source!r}.',
        "",
        f"Written by napari-stacklab {__version__}. Run: python this_script.py OUTPUT.tif",
        '"""',
        "",
        "import sys",
        "",
        "import numpy as np",
        "",
        "import napari_stacklab as sl",
        "",
        f"image = {_read_code(source, int(series or 0))}",
        "data = image.data",
        'channels = {"channel_axis": image.channel_axis, "rgb": image.rgb}  # the file\'s colour or channel axis',
        *body,
        *result,
        "sl.io.imwrite(sys.argv[1], result)",
        "",
    ]
    return "\n".join(lines)
