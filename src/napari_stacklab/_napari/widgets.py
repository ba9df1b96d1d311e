"""One napari widget per registry operation, generated from its declaration.

:class:`OperationWidget` turns a :class:`~napari_stacklab.registry.Operation`
into a dock widget: an input-layer chooser, one control per parameter (with
the declared ranges and choices), a device chooser, a live preview of the
plane the viewer shows, and "Run on all", which computes the lazy result batch
by batch in a worker thread with a progress bar and a Cancel button. Results
become layers named ``"<input> <op>"`` that inherit the input's physical frame
and record their recipe step (see ``_layers.py``).

npe2 finds the widgets as ``napari_stacklab._napari.widgets:make_<op>_widget``:
module attributes made on demand for every registered operation.
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from typing import Any, Callable, Iterator

import numpy as np
import yaml
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker
from napari.utils import notifications, progress
from qtpy.QtCore import QTimer

from .. import _backend, catalog, engine, registry
from ..frames import frame_chunks
from . import _channels, _layers, _tool
from ._tool import worker_task
from .manifest import widget_factory_name

__all__ = ["OperationWidget", "compute_all"]

#: Milliseconds the preview waits for parameter or plane changes to settle.
PREVIEW_DELAY_MS = 150
#: Most progress steps (groups of dask blocks) one "Run on all" reports.
MAX_PROGRESS_STEPS = 100
_AUTO = "auto"
_INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e12
_LAYER_OUTPUTS = (*registry.ARRAY_OUTPUTS, "images", "points")
_PREVIEW_OUTPUTS = (*_LAYER_OUTPUTS, "value")


# --- the computation (no napari objects: it runs in a worker thread) ----------------------------
def _block_groups(array: Any) -> list[list[tuple]]:
    """The array's block indices in C order, grouped into at most MAX_PROGRESS_STEPS batches."""
    blocks = list(np.ndindex(*array.numblocks))
    size = -(-len(blocks) // MAX_PROGRESS_STEPS)
    return [blocks[i : i + size] for i in range(0, len(blocks), size)]


def _block_slices(chunks: tuple, index: tuple) -> tuple:
    slices = []
    for axis_chunks, i in zip(chunks, index):
        start = int(sum(axis_chunks[:i]))
        slices.append(slice(start, start + axis_chunks[i]))
    return tuple(slices)


def _lazy(op: registry.Operation, data: Any, params: engine.Bound) -> Any:
    """``data`` as a dask array with whole frames (of the dimensionality ``params`` give) per chunk."""
    if _backend.is_dask(data):
        return data
    return _backend.as_dask(data, chunks=frame_chunks(data.ndim, op.frame_ndim_for(params)))


def compute_all(op: registry.Operation, data: Any, params: engine.Bound, device: str | None = None) -> Iterator:
    """Generator for a worker: resolve, build the lazy graph, compute it block batch by batch.

    ``params`` are bound already (``op.bind``). Yields ``("resolved", params)``,
    then ``("total", n)``, then ``("step", 1)`` after each batch (the points
    where a cancel takes effect); returns the result with every dask array
    computed to a NumPy array.
    """
    import dask

    resolved = op.resolve(data, params)
    yield ("resolved", resolved)
    result = engine.run(op, _lazy(op, data, resolved), resolved, device=device)
    leaves = dict(result) if isinstance(result, dict) else {None: result}
    plans = {key: _block_groups(value) for key, value in leaves.items() if _backend.is_dask(value)}
    yield ("total", sum(len(groups) for groups in plans.values()))
    computed = {}
    for key, value in leaves.items():
        if key not in plans:
            computed[key] = _backend.to_numpy(value) if _backend.is_cupy(value) else value
            continue
        out = np.empty(value.shape, dtype=value.dtype)
        for group in plans[key]:
            parts = dask.compute(*[value.blocks[index] for index in group])
            for index, part in zip(group, parts):
                out[_block_slices(value.chunks, index)] = _backend.to_numpy(part)
            yield ("step", 1)
        computed[key] = out
    return computed if isinstance(result, dict) else computed[None]


# --- parameter controls ---------------------------------------------------------------------------
def _parse_numbers(name: str, text: str, integer: bool, always_tuple: bool = False) -> Any:
    """``"2"`` -> 2, ``"1, 2.5"`` -> (1, 2.5); a clear error naming the parameter otherwise."""
    def number(part: str) -> float | int:
        try:
            return int(part)
        except ValueError:
            if integer:
                raise
            return float(part)

    try:
        values = tuple(number(part) for part in text.replace(";", ",").split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{name} must be a number or comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{name} needs a value")
    return values if always_tuple or len(values) > 1 else values[0]


def _format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value)
    return str(value)


@dataclasses.dataclass
class _Field:
    """One parameter's control, with how to read and set its value."""

    widget: Any
    get: Callable[[], Any]
    set: Callable[[Any], None]
    #: Shows the value the operation worked out while the control says "auto" (``None``).
    show_auto: Callable[[Any], None] = lambda value: None


def _number_field(p: registry.Param, label: str) -> _Field:
    integer = p.kind is int
    limit = _INT_LIMIT if integer else _FLOAT_LIMIT
    step = p.step or (1 if integer else 0.1)
    low = -limit if p.low is None else p.low
    if p.low is not None and not p.low_inclusive:
        low = p.low + (1 if integer else 1e-4)
    high = limit if p.high is None else p.high
    default = p.default if isinstance(p.default, numbers.Real) and not isinstance(p.default, bool) else None
    value = min(max(default if default is not None else max(low, 0), low), high)
    cls = SpinBox if integer else FloatSpinBox
    spin = cls(value=value, min=low, max=high, step=step, label=label)
    if not integer:
        spin.native.setDecimals(4)
    return _Field(spin, lambda: spin.value, lambda v: setattr(spin, "value", v))


def _text_field(p: registry.Param, label: str) -> _Field:
    """Free text: per-axis numbers, sequences, strings or any YAML value; empty means None."""
    edit = LineEdit(value=_format_value(p.default if p.default is not inspect.Parameter.empty else None),
                    label=label)

    def get() -> Any:
        text = edit.value.strip()
        if not text:
            return None
        if p.per_axis or p.kind is tuple:
            return _parse_numbers(p.name, text, p.kind is int, always_tuple=p.kind is tuple)
        if p.kind is str:
            return text
        return yaml.safe_load(text)

    def show_auto(value: Any) -> None:
        edit.native.setPlaceholderText(f"auto: {_format_value(value)}")

    return _Field(edit, get, lambda v: setattr(edit, "value", _format_value(v)), show_auto)


def _optional(field: _Field, p: registry.Param, label: str) -> _Field:
    """Add an "auto" check box: checked means None (the operation decides)."""
    auto = CheckBox(value=p.default is None, text=_AUTO)
    field.widget.label = ""
    field.widget.enabled = not auto.value
    auto.changed.connect(lambda checked: setattr(field.widget, "enabled", not checked))
    box = Container(layout="horizontal", labels=False, widgets=[auto, field.widget], label=label)
    box.margins = (0, 0, 0, 0)

    def set_value(value: Any) -> None:
        auto.value = value is None
        if value is not None:
            field.set(value)

    return _Field(box, lambda: None if auto.value else field.get(), set_value)


def _choice_field(p: registry.Param, label: str) -> _Field:
    choices = [(str(c), c) for c in p.choices]
    if p.optional:
        choices.insert(0, (_AUTO, _AUTO))
    default = _AUTO if p.default is None else p.default
    combo = ComboBox(choices=choices, value=default if default in [c for _, c in choices] else choices[0][1],
                     label=label)

    def get() -> Any:
        return None if p.optional and combo.value == _AUTO else combo.value

    return _Field(combo, get, lambda v: setattr(combo, "value", _AUTO if v is None else v))


def _bool_field(p: registry.Param, label: str) -> _Field:
    box = CheckBox(value=bool(p.default) if isinstance(p.default, (bool, np.bool_)) else False, text=label)
    return _Field(box, lambda: box.value, lambda v: setattr(box, "value", bool(v)))


def _param_field(p: registry.Param, layer_choices: Callable) -> _Field:
    label = p.label
    if p.kind is registry.ImageRef:
        combo = ComboBox(choices=layer_choices, nullable=p.optional, label=label)
        if p.optional:
            combo.value = None
        return _Field(combo, lambda: combo.value, lambda v: setattr(combo, "value", v))
    if p.choices is not None:
        return _choice_field(p, label)
    if p.kind is bool:
        return _bool_field(p, label)
    if p.kind in (int, float) and not p.per_axis:
        field = _number_field(p, label)
        return _optional(field, p, label) if p.optional else field
    return _text_field(p, label)


# --- the widget -----------------------------------------------------------------------------------
@dataclasses.dataclass
class _Job:
    """Everything one run needs, collected in the main thread."""

    layer: Any
    data: Any
    params: dict
    refs: dict
    device: str


class OperationWidget(Container):
    """Dock widget for one registry operation: choose a layer, set parameters, preview, run.

    Parameters
    ----------
    operation : registry.Operation
        The operation to expose.
    napari_viewer : napari.Viewer
        The viewer whose layers are read and to which results are added.
    """

    #: Docks of stacklab share one tab group (see _tool.tabify_with_stacklab_docks).
    stacklab_dock = True

    def __init__(self, operation: registry.Operation, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.operation = operation
        self.viewer = napari_viewer
        self._worker = None
        self._running_job: _Job | None = None
        self._progress = None
        self._cancelled = False
        self._stop_reason = "cancelled"
        self._closed = False  # the Qt widget is gone: nothing may touch it any more
        self._preview_names: list[str] = []
        self._resolve_cache: tuple | None = None
        self._tables: dict[str, Any] = {}

        self.input = ComboBox(label="input", choices=self._input_choices)
        self.fields = {p.name: _param_field(p, self._ref_choices) for p in operation.params}
        self.device = ComboBox(label="device", choices=list(_backend.DEVICES), value="auto")
        self.preview = CheckBox(text="Preview (current plane)", value=False)
        self.lazy = CheckBox(text="lazy result (compute when shown)", value=False)
        self.run_button = PushButton(text="Run on all")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.info = Label(value="")
        self.extend(
            [self.input, *(f.widget for f in self.fields.values()), self.device, self.preview, self.lazy,
             Container(layout="horizontal", labels=False, widgets=[self.run_button, self.cancel_button]),
             self.info]
        )
        self.tooltip = operation.summary
        if operation.output not in _PREVIEW_OUTPUTS:
            self.preview.enabled = False
            self.preview.tooltip = "a table is made for the whole input; use Run on all"
        if operation.output not in (*registry.ARRAY_OUTPUTS, "images"):
            self.lazy.enabled = False

        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self.update_preview)
        self.changed.connect(self._schedule_preview)
        self.viewer.dims.events.current_step.connect(self._schedule_preview)
        for event in ("inserted", "removed", "moved"):
            getattr(self.viewer.layers.events, event).connect(self._layers_changed)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._layers_changed)
        self.native.destroyed.connect(self._disconnect)
        # docked: joins the stacklab tab group; dock closed: the run stops and the preview goes
        self._dock_watcher = _tool.DockWatcher(self.native, self._on_dock_closed)
        self.reset_choices()
        active = self.viewer.layers.selection.active
        if active is not None and active in [layer for _, layer in self._input_choices()]:
            self.input.value = active

    # --- layers -------------------------------------------------------------------------------
    def _is_preview(self, layer: Any) -> bool:
        return layer.name.endswith(" (preview)")

    def _input_choices(self, *_: Any) -> list[tuple[str, Any]]:
        layers = [layer for layer in self.viewer.layers if isinstance(layer, (Image, Labels))]
        layers.sort(key=lambda layer: not isinstance(layer, Image))
        return [(layer.name, layer) for layer in layers if not self._is_preview(layer)]

    def _ref_choices(self, *_: Any) -> list[tuple[str, Any]]:
        return self._input_choices()

    def _layers_changed(self, event: Any = None) -> None:
        kind = getattr(event, "type", None)
        if kind == "inserted":
            event.value.events.name.connect(self._layers_changed)
        elif kind == "removed" and self._running_job is not None and event.value is self._running_job.layer:
            # Its result would be an orphan layer whose recorded source no longer exists.
            message = f"{self.operation.title} stopped: its input layer {event.value.name!r} was removed"
            self._stop(f"stopped, input layer {event.value.name!r} removed; nothing added")
            notifications.show_warning(message)
        if not self._closed:
            self.reset_choices()

    def _disconnect(self, *_: Any) -> None:
        """The Qt widget was destroyed (e.g. the viewer closed): stop the run, let go of the viewer."""
        self._closed = True
        self._stop("widget closed")
        self.viewer.dims.events.current_step.disconnect(self._schedule_preview)
        for event in ("inserted", "removed", "moved"):
            getattr(self.viewer.layers.events, event).disconnect(self._layers_changed)

    def _on_dock_closed(self) -> None:
        """The dock was closed: stop the run (nothing is added) and take the preview away."""
        self._stop("dock closed; nothing added")
        self._timer.stop()
        self.preview.value = False
        self._remove_preview()

    def _say(self, text: str) -> None:
        """Show ``text`` in the widget, unless its Qt widget is already gone."""
        if not self._closed:
            self.info.value = text

    # --- parameters ---------------------------------------------------------------------------
    def set_params(self, **values: Any) -> None:
        """Set parameter controls by name (``None`` means "auto" for optional parameters)."""
        for name, value in values.items():
            if name not in self.fields:
                raise KeyError(f"{self.operation.name} has no parameter {name!r}")
            self.fields[name].set(value)

    def _job(self) -> _Job:
        layer = self.input.value
        if layer is None:
            raise ValueError(f"{self.operation.title}: choose an input layer first")
        values, refs = {}, {}
        for p in self.operation.params:
            value = self.fields[p.name].get()
            if p.kind is registry.ImageRef and value is not None:
                refs[p.name] = value.name
                value = _layer_data(value)
            values[p.name] = value
        params = self.operation.bind(values, channels=_channels.layer_channels(layer))
        return _Job(layer, _layer_data(layer), params, refs, self.device.value)

    def _output_name(self, layer: Any) -> str:
        return f"{layer.name} {self.operation.name}"

    # --- preview ------------------------------------------------------------------------------
    def _schedule_preview(self, *_: Any) -> None:
        if self.preview.enabled and (self.preview.value or self._preview_names):
            self._timer.start()

    def _plane_index(self, layer: Any, params: engine.Bound) -> tuple:
        """Index of the frame the viewer shows, over the layer's batch axes (frames as ``params`` make them)."""
        return _layers.shown_index(self.viewer, layer, self.operation.frame_ndim_for(params))

    def _resolved(self, job: _Job) -> engine.Bound:
        """Resolved parameters, cached so scrolling planes never recomputes global statistics."""
        if self.operation.prepare is None:
            return self.operation.resolve(job.data, job.params)
        key = (id(job.data), repr({k: (id(v) if hasattr(v, "shape") else v) for k, v in job.params.items()}))
        if self._resolve_cache is None or self._resolve_cache[0] != key:
            resolved = self.operation.resolve(job.data, job.params)
            self._resolve_cache = (key, resolved)
            self._show_resolved(job.params, resolved)
        return self._resolve_cache[1]

    def update_preview(self) -> None:
        """Compute the operation on the plane the viewer shows into the preview layer(s)."""
        self._timer.stop()
        if not self.preview.value:
            self._remove_preview()
            return
        if self.input.value is None:
            self._remove_preview()  # its input was removed: no preview named after it stays
            self._say(f"preview: {self.operation.title}: choose an input layer first")
            return
        try:
            job = self._job()
            resolved = self._resolved(job)
            index = _channels.with_channel_axis(self._plane_index(job.layer, resolved), resolved.channels, job.layer)
            planes = {
                p.name: _backend.materialize(resolved[p.name][index]) for p in self.operation.image_params
                if getattr(resolved.get(p.name), "ndim", None) == job.data.ndim
            }
            plane = _backend.materialize(job.data[index])
            result = _materialized(engine.run(self.operation, plane, resolved.replace(**planes), device=job.device))
            names = self._publish(job, result, preview=True, in_shape=tuple(plane.shape))
        except Exception as exc:  # shown in the widget; a preview must never break the viewer
            self._say(f"preview: {exc}")
            return
        for stale in set(self._preview_names) - set(names):
            if stale in self.viewer.layers:
                self.viewer.layers.remove(stale)
        self._preview_names = names

    def _remove_preview(self) -> None:
        for name in self._preview_names:
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        self._preview_names = []

    # --- run on all ---------------------------------------------------------------------------
    def run(self) -> None:
        """Compute the result for the whole input (in a worker), or add it lazily."""
        if self._worker is not None:
            notifications.show_info(f"{self.operation.title} is already running")
            return
        try:
            job = self._job()
        except (TypeError, ValueError, KeyError) as exc:
            self._fail(exc)
            return
        if self.lazy.value and self.lazy.enabled:
            self._run_lazy(job)
            return
        self._cancelled = False
        self._stop_reason = "cancelled"
        self._warnings_shown: set[str] = set()
        worker = thread_worker(worker_task, start_thread=False, ignore_errors=True)(
            compute_all, self.operation, job.data, job.params, job.device
        )
        worker.yielded.connect(lambda message: self._on_yielded(job, message))
        worker.returned.connect(lambda result: self._on_returned(job, result))
        worker.errored.connect(self._on_errored)
        worker.warned.connect(self._on_warned)
        worker.aborted.connect(lambda: self._say(f"{self.operation.title}: {self._stop_reason}"))
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._running_job = job
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.info.value = f"{self.operation.title}: running..."
        worker.start()

    def _run_lazy(self, job: _Job) -> None:
        try:
            resolved = self.operation.resolve(job.data, job.params)
            self._show_resolved(job.params, resolved)
            data = _lazy(self.operation, job.data, resolved)
            result = _on_host(engine.run(self.operation, data, resolved, device=job.device))
            self._publish(job, result)
        except Exception as exc:
            self._fail(exc)

    def cancel(self) -> None:
        """Stop the running computation after the current batch; nothing is added."""
        self._stop("cancelled")

    def _stop(self, reason: str) -> None:
        """Ask the worker to stop after the current batch and discard whatever it returns."""
        if self._worker is None:
            return
        self._cancelled = True
        self._stop_reason = reason
        self._worker.quit()
        if not self._closed:
            self.cancel_button.enabled = False

    @property
    def running(self) -> bool:
        return self._worker is not None

    def _on_yielded(self, job: _Job, message: tuple) -> None:
        kind, value = message
        if self._cancelled:
            return
        if kind == "resolved":
            self._show_resolved(job.params, value)
        elif kind == "total":
            self._progress = progress(total=value, desc=f"{self.operation.title}")
        elif self._progress is not None:
            self._progress.update(value)

    def _on_returned(self, job: _Job, result: Any) -> None:
        if self._cancelled:  # stopped after the last batch had already run: still nothing is added
            self._say(f"{self.operation.title}: {self._stop_reason}")
            return
        try:
            self._publish(job, result)
        except Exception as exc:  # a result napari cannot show must not escape into the Qt event loop
            self._fail(exc)
            return
        self._say(self.info.value.replace("running...", "done"))

    def _on_errored(self, exc: BaseException) -> None:
        if self._cancelled:  # a failure after a stop (e.g. the input vanished) is no news
            return
        self._fail(exc)

    def _on_warned(self, warning: tuple) -> None:
        """A warning raised in the worker (``warnings.showwarning`` arguments): shown once per run."""
        message, category = warning[0], warning[1]
        text = f"{self.operation.title}: {getattr(category, '__name__', 'warning')}: {message}"
        if self._cancelled or text in self._warnings_shown:  # a kernel warns once per frame
            return
        self._warnings_shown.add(text)
        self._say(text)
        notifications.show_warning(text)

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._worker = None
        self._running_job = None
        if not self._closed:
            self.run_button.enabled = True
            self.cancel_button.enabled = False

    def _fail(self, exc: BaseException) -> None:
        self._say(f"{self.operation.title} failed: {exc}")
        notifications.show_error(f"{self.operation.title} failed: {exc}")

    def _show_resolved(self, params: dict, resolved: dict) -> None:
        """Say what the operation worked out (an Otsu threshold, the centre it used), in the info line and beside
        the controls left on auto."""
        changed = {
            k: v for k, v in resolved.items()
            if k in params and not hasattr(v, "shape") and params[k] != v
        }
        for name, value in changed.items():
            if params[name] is None and name in self.fields and not self._closed:
                self.fields[name].show_auto(value)
        if changed:
            values = ", ".join(f"{k} = {_short(v)}" for k, v in changed.items())
            self.info.value = f"{self.operation.name}: {values}"

    # --- results -> layers --------------------------------------------------------------------
    def _publish(self, job: _Job, result: Any, preview: bool = False, in_shape: tuple | None = None) -> list[str]:
        """Show ``result`` as layers (or a table, or text); returns the layer names used.

        ``in_shape`` is the shape the result was computed from (the previewed plane), by
        default the whole input.
        """
        op = self.operation
        if op.output == "table":
            if not preview:
                self._show_table(job, self._output_name(job.layer), result)
            return []
        if op.output not in _LAYER_OUTPUTS:
            self._show_value(result, preview)
            return []
        layers = _tool.publish_operation(
            self.viewer, op, result, source=job.layer, params=job.params, refs=job.refs,
            in_shape=tuple(job.data.shape) if in_shape is None else in_shape, preview=preview,
        )
        return [layer.name for layer in layers]

    def _show_table(self, job: _Job, name: str, table: dict) -> None:
        from .table import TableWidget, as_frame

        frame = as_frame(table)
        if isinstance(job.layer, Labels):
            job.layer.features = frame.assign(index=frame["label"]) if "label" in frame else frame
        widget = self._tables.get(name)
        if widget is not None and widget.alive:
            widget.set_table(frame)
            return
        widget = TableWidget(frame, title=name)
        self._tables[name] = widget
        self.viewer.window.add_dock_widget(widget, name=name, area="right")

    def _show_value(self, result: Any, preview: bool) -> None:
        text = f"{self.operation.name} = {_short(result)}"
        self.info.value = f"{text} (current plane)" if preview else text


_layer_data = _layers.source_data


def _each_array(result: Any, convert: Any) -> Any:
    """``convert`` applied to every dask or CuPy array of ``result`` (an array or a dict of them)."""
    if isinstance(result, dict):
        return {k: _each_array(v, convert) for k, v in result.items()}
    if _backend.is_dask(result) or _backend.is_cupy(result):
        return convert(result)
    return result


def _on_host(result: Any) -> Any:
    """``result`` with GPU data moved to host memory for display (lazily: dask chunks are copied when napari reads them)."""
    return _each_array(result, _backend.to_numpy)


def _materialized(result: Any) -> Any:
    """``result`` computed into host memory (a preview plane, a single value)."""
    return _each_array(result, _backend.materialize)


def _short(value: Any) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


# --- npe2 entry points ----------------------------------------------------------------------------
_FACTORIES: dict[str, type] = {}


def _factory(op: registry.Operation) -> type:
    """A dock-widget class for ``op``; napari passes the viewer as ``napari_viewer``."""

    def __init__(self, napari_viewer: Any) -> None:
        OperationWidget.__init__(self, catalog.get(op.name), napari_viewer)

    name = widget_factory_name(op.name)
    return type(name, (OperationWidget,), {
        "__init__": __init__,
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"{op.title}: {op.summary}",
    })


def __getattr__(name: str) -> Any:
    for op in catalog.operations():
        if widget_factory_name(op.name) == name:
            if name not in _FACTORIES:
                _FACTORIES[name] = _factory(op)
            return _FACTORIES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *(widget_factory_name(op.name) for op in catalog.operations())])
