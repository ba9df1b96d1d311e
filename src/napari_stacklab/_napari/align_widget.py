"""Align a set of images to a base image and show how well each one matches.

For every chosen layer the tool estimates a transform on the frames the
viewer shows (ECC with the chosen motion model, matched image features
refined by ECC, phase correlation, or the point pairs of the
point-registration tool), adds ``"<layer> aligned"`` (the
layer resampled onto the base grid, lazily) and ``"<layer> similarity"`` (the
local normalised cross-correlation with the base: warm = matches the base,
cool = differs), and lists the global scores. The work runs in a worker, one
image after the other, with a progress bar; Cancel stops between two images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, PushButton, Select, SpinBox, Table

from .. import _backend
from ..register import (
    ECC_MODELS,
    ECCError,
    from_features,
    from_points,
    phase_correlation,
    similarity_map,
    similarity_score,
    warp,
)
from ..register import ecc as ecc_transform
from . import _layers
from ._tool import Tool, action, rounded
from .table import fit_table

__all__ = ["AlignSetWidget", "METHODS", "HEATMAP_COLORMAP", "transform_step"]

#: How a transform is found: ECC (automatic starts), matched ORB keypoints with RANSAC then ECC from there,
#: phase correlation (translation), or the point tool's pairs.
METHODS = ("ECC", "features + ECC", "phase correlation", "points")
#: Warm (red) = similar, cool (blue) = different.
HEATMAP_COLORMAP = "turbo"
COLUMNS = ["layer", "method", "model", "fit score", "similarity"]


def transform_step(transform: Any, output_shape: tuple, order: int = 1, **result: Any) -> dict:
    """The recipe step that resamples an image with ``transform`` onto a grid of ``output_shape``.

    Replayed by the registry operation ``apply_transform`` (recipes, ``stacklab
    run``, exported scripts). ``result`` (how the transform was found, its
    score, the ``fixed`` and ``moving`` layers) is kept beside the step.
    """
    step = {"op": "apply_transform", "params": {
        "transform": transform.to_dict(), "output_shape": [int(n) for n in output_shape], "order": int(order),
    }}
    if result:
        step["result"] = result
    return step


def _estimate(method: str, model: str, fixed: np.ndarray, moving: np.ndarray, pairs: Any, device: str) -> Any:
    if method == "ECC":
        return ecc_transform(fixed, moving, model=model, device=device)
    if method == "features + ECC":
        keypoints = from_features(fixed, moving, model=model)
        try:
            return ecc_transform(fixed, moving, model=model, initial=keypoints, start=(), device=device)
        except ECCError:  # ECC could not polish the keypoint fit: keep it
            return keypoints
    if method == "phase correlation":
        if fixed.shape != moving.shape:
            raise ValueError(f"phase correlation needs images of the same shape, got {fixed.shape} and {moving.shape}")
        return phase_correlation(fixed, moving, device=device)
    fixed_pts, moving_pts = pairs
    return from_points(fixed_pts, moving_pts, model=model)


def align_images(base: Any, jobs: list[dict], method: str, model: str, window: int, device: str):
    """Worker task: estimate, resample and score every job; one progress step per image.

    ``base`` is the fixed frame, each job holds ``name``, ``frame`` (the moving
    frame), ``data`` (the whole layer, resampled lazily) and ``pairs``.
    Returns one dict per job: the transform, the lazy aligned data, the
    heatmap of the compared frame and the global similarity, or the error.
    """
    yield ("total", len(jobs))
    fixed = np.asarray(_backend.materialize(base), dtype=np.float32)
    results = []
    for job in jobs:
        moving = np.asarray(_backend.materialize(job["frame"]), dtype=np.float32)
        try:
            transform = _estimate(method, model, fixed, moving, job["pairs"], device)
        except (ValueError, RuntimeError) as exc:  # ECCError, too few matches or a bad pair set: ValueErrors
            results.append({"name": job["name"], "error": str(exc)})
            yield ("step", 1)
            continue
        data = job["data"]
        aligned_frame = warp(moving, transform, output_shape=fixed.shape)
        if data.ndim == 2:  # an image: computed here, so that showing it computes nothing in the GUI thread
            aligned = warp(np.asarray(_backend.materialize(data)), transform, output_shape=fixed.shape)
        else:  # a stack: resampled lazily, frame by frame, when napari shows it
            lazy = _backend.as_dask(data, chunks=(1,) * (data.ndim - 2) + tuple(data.shape[-2:]))
            aligned = warp(lazy, transform, output_shape=fixed.shape)
        valid = warp(np.ones(moving.shape, np.float32), transform, output_shape=fixed.shape, order=0) > 0
        heat = np.asarray(similarity_map(aligned_frame, reference=fixed, window=window)) * valid
        results.append({
            "name": job["name"],
            "transform": transform,
            "aligned": aligned,
            "heat": heat.astype(np.float32),
            "similarity": similarity_score(aligned_frame, fixed, mask=valid),
        })
        yield ("step", 1)
    return results


class AlignSetWidget(Tool):
    """Base layer + layers to align + model + method -> aligned layers, similarity heatmaps, scores."""

    title = "Align images"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.base = self.chooser("base")
        self.targets = Select(label="align", choices=self._target_choices)
        self.targets.native.setMaximumHeight(140)
        self.model = ComboBox(label="model", choices=list(ECC_MODELS), value="affine")
        self.method = ComboBox(label="method", choices=list(METHODS), value="ECC")
        self.window = SpinBox(label="heatmap window (px)", value=15, min=3, max=255, step=2)
        self.device = ComboBox(label="device", choices=list(_backend.DEVICES), value="auto")
        self.run_button = PushButton(text="Align")
        self.table = Table(value={c: [] for c in COLUMNS})
        fit_table(self.table.native)
        self.add(self.base, self.targets, self.model, self.method, self.window, self.device, self.run_button,
                 self.table)
        self.busy_widgets = [self.run_button]
        self.results: dict[str, dict] = {}
        self.run_button.changed.connect(lambda *_: self.run())
        self.base.changed.connect(lambda *_: self.targets.reset_choices())
        self.reset_choices()

    def _target_choices(self, *_: Any) -> list[tuple[str, Any]]:
        base = self.base.value if hasattr(self, "base") else None
        return [(layer.name, layer) for layer in self.base.layers() if layer is not base]

    @action
    def run(self) -> Any:
        """Align every chosen layer to the base in a worker; returns the worker (None if nothing to do)."""
        base = self.base.value
        if base is None:
            raise ValueError("choose a base image")
        targets = [layer for layer in self.targets.value if layer is not base]
        if not targets:
            raise ValueError("choose the images to align (they must differ from the base)")
        method, model = self.method.value, self.model.value
        jobs = [{"name": layer.name, "frame": self.shown_frame(layer), "data": _layers.source_data(layer),
                 "pairs": self._pairs(base, layer) if method == "points" else None} for layer in targets]
        return self.launch(
            align_images, self.shown_frame(base), jobs, method, model, self.window.value, self.device.value,
            on_result=lambda results: self._show(base, targets, results),
            description=f"Aligning {len(jobs)} image(s) to {base.name!r}", inputs=[base, *targets],
        )

    def _pairs(self, base: Any, layer: Any) -> tuple[np.ndarray, np.ndarray]:
        names = (f"{base.name} points", f"{layer.name} points")
        missing = [name for name in names if name not in self.viewer.layers]
        if missing:
            raise ValueError(f"no point pairs for {layer.name!r}: add {missing} with the point-registration tool")
        fixed, moving = (np.asarray(self.viewer.layers[name].data, float)[:, -2:] for name in names)
        n = min(len(fixed), len(moving))
        return fixed[:n], moving[:n]

    def _show(self, base: Any, targets: list, results: list[dict]):
        """Show the results, one layer per turn of the event loop (a generator the base runs)."""
        layers = {layer.name: layer for layer in targets}
        rows, failures = [], []
        for result in results:
            name = result["name"]
            if "error" in result:
                failures.append(f"{name}: {result['error']}")
                continue
            layer, transform = layers[name], result["transform"]
            found = {"method": self.method.value, "score": transform.score, "similarity": result["similarity"],
                     "fixed": base.name, "moving": name}
            grid = _layers.regridded_kwargs(layer, base, 2)
            step = transform_step(transform, result["heat"].shape, **found)
            self.publish(result["aligned"], source=layer, name=f"{name} aligned", steps=[step], frame=grid,
                         colormap=layer.colormap.name, contrast_limits=tuple(layer.contrast_limits))
            yield
            heat_step = {"op": "similarity_map", "params": {"reference": {"layer": base.name},
                                                            "window": int(self.window.value)}}
            self.publish(result["heat"], source=layer, name=f"{name} similarity", steps=[step, heat_step],
                         frame=_layers.spatial_kwargs(base, 2), role="heatmap",
                         colormap=HEATMAP_COLORMAP, contrast_limits=(0.0, 1.0), opacity=0.7)
            yield
            self.results[name] = {"transform": transform, "score": transform.score,
                                  "similarity": result["similarity"]}
            rows.append([name, self.method.value, transform.model, rounded(transform.score),
                         rounded(result["similarity"])])
        self.table.value = {c: [row[i] for row in rows] for i, c in enumerate(COLUMNS)}
        fit_table(self.table.native)
        done = f"Aligned {len(rows)} image(s) to {base.name!r}."
        if failures:
            self.fail(f"{done} Failed: {'; '.join(failures)}")
        else:
            self.say(done)

