"""Export a layer's recorded history as a runnable Python script that uses the public API.

Every stacklab layer records its steps in ``metadata["stacklab"]``; a layer
read from a file also keeps the file (``metadata["source"]``). The script
reads that file with :func:`napari_stacklab.io.imread`, replays each step with
the public function that made it (``sl.filters.gaussian``, ``sl.register.apply_transform``,
``sl.equalize.equalize_set``, ...) and writes the result, with the layer's pixel
size, units and axis names, to the path given on its command line::

    python made_by_napari.py result.tif

Unlike a YAML recipe (registry operations only), a script can replay the
tools' steps that are not registry operations yet (``equalize_set``,
``remove_background``) and the colour steps that ran per channel. This module imports no napari and no Qt.
"""

from __future__ import annotations

import pprint
from typing import Any

from .. import __version__, catalog
from ..recipe import PROVENANCE_KEY

__all__ = ["layer_script", "ScriptError", "TOOL_STEPS"]

#: Steps the tools record that are not (yet) registry operations, with the public function replaying each.
TOOL_STEPS = {
    "equalize_set": "napari_stacklab.equalize.equalize_set",
    "remove_background": "napari_stacklab.matting.remove_background",
}


class ScriptError(ValueError):
    """The layer's history cannot be written as a script (no source file, an unknown step, ...)."""


def _literal(value: Any) -> str:
    return pprint.pformat(value, width=100, sort_dicts=False)


def _kwargs(params: dict, images: dict[str, str]) -> str:
    parts = [f"{key}={images[key] if key in images else _literal(value)}" for key, value in params.items()]
    return ", ".join(parts)


def _read(path: str, series: int = 0) -> str:
    if series:
        return f"sl.io.imread_all({path!r})[{series}].data"
    return f"sl.io.imread({path!r}).data"


def _image_params(params: dict, inputs: dict[str, str], step: str) -> dict[str, str]:
    """Code reading every ``{"layer": name}`` parameter from the file of that layer."""
    code = {}
    for key, value in params.items():
        if isinstance(value, dict) and set(value) == {"layer"}:
            if value["layer"] not in inputs:
                raise ScriptError(f"step {step!r} uses the layer {value['layer']!r} for {key!r}, which was not read "
                                  "from a file (or was itself computed); save it and open it from the file first")
            code[key] = _read(inputs[value["layer"]])
    return code


def _step_code(step: dict, inputs: dict[str, str], layer_name: str, last: bool) -> list[str]:
    op_name, params = step["op"], dict(step.get("params") or {})
    if op_name == "equalize_set":
        names, index = params.pop("images"), params.pop("index")
        missing = [name for i, name in enumerate(names) if i != index and name not in inputs]
        if missing:
            raise ScriptError(f"equalize_set used the layers {missing}, which were not read from files")
        reads = [("data" if i == index else _read(inputs[name])) for i, name in enumerate(names)]
        reference = params.get("reference")
        if reference != "median":
            params["reference"] = names.index(reference)
        return [f"images = [{', '.join(reads)}]",
                f"data = sl.equalize.equalize_set(images, {_kwargs(params, {})})[{index}]"]
    if op_name == "remove_background":
        output = (step.get("result") or {}).get("output", "subject")
        images = _image_params(params, inputs, op_name)
        return [f"data = sl.matting.remove_background(np.asarray(data), {_kwargs(params, images)})[{output!r}]"]
    try:
        op = catalog.get(op_name)
    except KeyError:
        raise ScriptError(f"the step {op_name!r} is neither a registry operation nor a tool step") from None
    call = f"sl.{op.family}.{op.name}"
    args = _kwargs(params, _image_params(params, inputs, op_name))
    args = f", {args}" if args else ""
    if step.get("per_channel"):
        line = f"data = np.moveaxis({call}(np.moveaxis(data, -1, 0){args}), 0, -1)  # on each colour channel"
    else:
        line = f"data = {call}(data{args})"
    lines = [line]
    if op.output == "images":
        prefix = f" {op.name} "
        if not last or prefix not in f"{layer_name} ":
            raise ScriptError(f"cannot tell which output of {op.name!r} the layer {layer_name!r} shows")
        key = f"{layer_name} ".split(prefix, 1)[1].strip()
        lines.append(f"data = data[{key!r}]")
    elif op.output not in ("image", "labels", "mask"):
        raise ScriptError(f"the step {op.name!r} makes a {op.output}, not an image")
    return lines


def layer_script(metadata: dict, *, name: str, frame: dict, rgb: bool = False,
                 inputs: dict[str, str] | None = None) -> str:
    """The Python source that reproduces a layer from its source file.

    Parameters
    ----------
    metadata : dict
        The layer's metadata: its stacklab record and ``"source"`` (the file it was read from).
    name : str
        The layer's name (it says which output of a several-output step it is).
    frame : dict
        ``scale``, ``translate``, ``units`` and ``axis_labels`` written with the result.
    rgb : bool
        The result is a colour image (its last axis holds the colour samples).
    inputs : dict, optional
        The files of the other layers the steps refer to, by layer name.

    Raises
    ------
    ScriptError
        When the layer was not read from a file or records no steps, or a step cannot be written.
    """
    record = (metadata or {}).get(PROVENANCE_KEY) or {}
    steps = record.get("steps") or []
    if not steps:
        raise ScriptError("this layer records no stacklab steps (it was not made by a stacklab operation or tool)")
    source = (metadata or {}).get("source")
    if not isinstance(source, str):
        raise ScriptError("the layer's source file is unknown (its data did not come from a file); save the "
                          "original layer and open it from the file, then redo the steps")
    inputs = dict(inputs or {})
    body = []
    for i, step in enumerate(steps):
        body.append(f"# step {i + 1}: {step['op']}")
        body.extend(_step_code(step, inputs, name, last=i == len(steps) - 1))
    scale, translate = list(frame["scale"]), list(frame["translate"])
    units, labels = [str(u) for u in frame["units"]], [str(a) for a in frame["axis_labels"]]
    if rgb:
        scale, translate, units, labels = scale + [1.0], translate + [0.0], units + ["pixel"], labels + ["s"]
    lines = [
        f'"""Reproduce the napari-stacklab layer {name!r} from {source!r}.',
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
        f"data = {_read(source, int(metadata.get('series') or 0))}",
        *body,
        "result = sl.io.Image(",
        "    np.asarray(data),",
        f"    scale={scale!r},",
        f"    translate={translate!r},",
        f"    units={units!r},",
        f"    axis_labels={labels!r},",
        f"    name={name!r},",
        ")",
        "sl.io.imwrite(sys.argv[1], result)",
        "",
    ]
    return "\n".join(lines)
