"""Export a layer's recorded history as a runnable Python script that uses the public API.

Every stacklab layer records its steps in ``metadata["stacklab"]``; a layer
read from a file also keeps the file (``metadata["source"]``). The script is
:meth:`napari_stacklab.Recipe.to_script` of those steps on that file, with
the layer's pixel size, units and axis names for the result::

    python made_by_napari.py result.tif

Every step a tool records is a registry operation (the alignment tools'
``apply_transform`` and ``apply_drift`` included), so the script replays
exactly what a recipe would. This module imports no napari and no Qt.
"""

from __future__ import annotations

from .. import catalog
from ..recipe import PROVENANCE_KEY, steps_script

__all__ = ["layer_script", "ScriptError", "OUTPUT"]

#: Record key naming which output of a several-output operation a layer shows (``_tool.OUTPUT``).
OUTPUT = "output"


class ScriptError(ValueError):
    """The layer's history cannot be written as a script (no source file, an unknown step, ...)."""


def _output_of(record: dict, steps: list[dict], name: str) -> str | None:
    """Which output of a last several-output step the layer shows: its record says, or its name."""
    if record.get(OUTPUT):
        return str(record[OUTPUT])
    try:
        op = catalog.get(steps[-1]["op"])
    except KeyError:
        return None
    prefix = f" {op.name} "
    return f"{name} ".split(prefix, 1)[1].strip() if op.output == "images" and prefix in f"{name} " else None


def layer_script(metadata: dict, *, name: str, frame: dict, rgb: bool = False,
                 inputs: dict[str, str] | None = None) -> str:
    """The Python source that reproduces a layer from its source file.

    Parameters
    ----------
    metadata : dict
        The layer's metadata: its stacklab record and ``"source"`` (the file it was read from).
    name : str
        The layer's name.
    frame : dict
        ``scale``, ``translate``, ``units`` and ``axis_labels`` of the layer (its spatial axes).
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
    frame = {key: list(frame[key]) for key in ("scale", "translate", "units", "axis_labels")}
    if rgb:  # the colour samples: one more axis, without a pixel size
        for key, value in (("scale", 1.0), ("translate", 0.0), ("units", "pixel"), ("axis_labels", "s")):
            frame[key].append(value)
    frame["units"] = [str(u) for u in frame["units"]]
    try:
        return steps_script(steps, source, inputs=inputs, output=_output_of(record, steps, name),
                            series=int(metadata.get("series") or 0), frame=frame, name=name)
    except ValueError as exc:
        raise ScriptError(str(exc)) from None
