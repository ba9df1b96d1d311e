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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from . import __version__, catalog, engine, registry
from .channels import Channels
from .io._image import Image

__all__ = ["Recipe", "RECIPE_VERSION", "PROVENANCE_KEY", "provenance"]

RECIPE_VERSION = 1
#: Key under which output layers / images record how they were made.
PROVENANCE_KEY = "stacklab"

def _normalize_step(step: Any, index: int) -> tuple[dict, engine.Bound]:
    if not isinstance(step, dict) or "op" not in step:
        raise ValueError(f"recipe step {index} must be a mapping with an 'op' key, got {step!r}")
    extra = set(step) - {"op", "params"}
    if extra:
        raise ValueError(f"recipe step {index} ({step['op']!r}) has unknown keys {sorted(extra)}")
    try:
        op = catalog.get(step["op"])
    except KeyError as exc:
        raise ValueError(f"recipe step {index}: {exc.args[0]}") from None
    params = step.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"recipe step {index} ({op.name!r}): params must be a mapping, got {params!r}")
    try:
        bound = op.bind(params, recorded=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"recipe step {index} ({op.name!r}): {exc}") from None
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
        if not isinstance(document, dict) or "steps" not in document:
            raise ValueError(f"{source} is not a stacklab recipe (a mapping with 'stacklab' and 'steps')")
        version = document.get("stacklab")
        if version != RECIPE_VERSION:
            raise ValueError(f"{source}: unsupported recipe format version {version!r} (this is {RECIPE_VERSION})")
        if not isinstance(document["steps"], list):
            raise ValueError(f"{source}: 'steps' must be a list")
        return cls(steps=document["steps"])

    @classmethod
    def from_yaml(cls, text: str, source: str = "recipe") -> "Recipe":
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{source} is not valid YAML: {exc}") from None
        return cls.from_dict(document, source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Recipe":
        path = Path(path)
        return cls.from_yaml(path.read_text(encoding="utf-8"), source=str(path))

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
