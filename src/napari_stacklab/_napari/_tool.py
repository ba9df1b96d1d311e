"""The base every stateful napari tool is built on.

A tool (align a set, the point tool, the navigator, ...) is a :class:`Tool`:
a dock widget whose body scrolls, with a status line and a Cancel button
below it. The base gives every tool the same behaviour:

- **layer choosers** (:class:`LayerChooser`) that never offer an FFT layer,
  a display-only layer (a heatmap, a preview, the navigator's panels) or, for
  two roles made distinct with :meth:`Tool.distinct`, the same layer twice;
- **event connections** made through :meth:`Tool.listen` and all released
  when the dock closes or the widget is destroyed;
- **one publish path** (:func:`publish`) through ``_layers``: every output
  copies the physical frame (scale, translate, rotate, shear, affine, units,
  axis labels) of the layer it was made from and records its recipe steps
  under one metadata key, ``metadata["stacklab"]``;
- **a worker runner** (:meth:`Tool.launch`): the computation runs in a napari
  ``thread_worker`` with a progress bar and Cancel; it gets arrays and
  parameters only, never a layer, and its result is published in the GUI
  thread; a run whose input layer is deleted stops and adds nothing;
- **no exception escapes a button** (:func:`action`): every failure becomes
  a status line and a napari notification, a missing optional dependency is
  named with the command that installs it.

The frame the viewer shows and the source data of a layer are defined once,
in ``_layers`` (:func:`~._layers.shown_frame`, :func:`~._layers.source_data`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton
from napari.qt.threading import thread_worker
from napari.utils import notifications, progress
from qtpy.QtCore import QEvent, QObject, QSize, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QSizePolicy

from ..recipe import PROVENANCE_KEY, provenance
from . import _channels, _layers
from .script import OUTPUT  # which output of a several-output operation a layer shows (the script reads it)

__all__ = [
    "Tool",
    "LayerChooser",
    "LayerFilter",
    "action",
    "publish",
    "publish_operation",
    "record_of",
    "role_of",
    "is_fourier",
    "describe_error",
    "INSTALL",
    "OUTPUT",
    "DockWatcher",
]

#: The command that installs each optional dependency a tool may need.
INSTALL = {
    "pymatting": 'pip install "napari-stacklab[matting]"',
    "bm3d": 'pip install "napari-stacklab[bm3d]"',
    "cupy": 'pip install "napari-stacklab[gpu]"',
    "cucim": 'pip install "napari-stacklab[gpu]"',
}
#: Operations whose result lives in Fourier space (no image to register or align).
FOURIER_OPS = frozenset({"fft_amplitude"})
#: Record key naming a display-only output (heatmap, preview, panel, point pairs, ...).
ROLE = "role"
#: Layer properties that may be changed after a layer was made (the rest are given when it is added).
_SETTABLE = ("colormap", "contrast_limits", "opacity", "blending", "visible", "gamma", "interpolation2d",
             "face_color", "border_color", "edge_color", "edge_width", "size", "symbol")


# --- what a layer is ---------------------------------------------------------------------------
def record_of(layer: Any) -> dict:
    """The stacklab record of a layer (``metadata["stacklab"]``): steps, source, role; ``{}`` if none."""
    record = (getattr(layer, "metadata", None) or {}).get(PROVENANCE_KEY)
    return record if isinstance(record, dict) else {}


def role_of(layer: Any) -> str | None:
    """The display role of a layer a tool made for looking at (``None`` for data layers)."""
    if layer.name.endswith(" (preview)"):
        return "preview"
    return record_of(layer).get(ROLE)


def is_fourier(layer: Any) -> bool:
    """True for a layer in Fourier space (made by an FFT operation)."""
    return any(step.get("op") in FOURIER_OPS for step in record_of(layer).get("steps", []))


def describe_error(exc: BaseException) -> str:
    """A one-line message for ``exc``; a missing optional package is named with its install command."""
    if isinstance(exc, ImportError):
        missing = exc.name or getattr(exc.__cause__, "name", None) or ""
        command = INSTALL.get(missing.split(".")[0])
        text = str(exc) or f"the optional package {missing!r} is missing"
        if command and command not in text:
            text = f"{text} (install it with: {command})"
        return text
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, (FileExistsError, FileNotFoundError, PermissionError)) and exc.filename:
        text = f"{exc.strerror or text}: {exc.filename}"
    return text


# --- choosers ------------------------------------------------------------------------------------
class LayerFilter:
    """The layers of a viewer a tool can use for one role.

    Never an FFT layer; never a display-only layer (a heatmap, a preview, the
    navigator's panels) unless ``allow_derived``; only the napari layer
    ``kinds`` given (``"image"``, ``"labels"``, ``"shapes"``, ...) and those
    ``accept(layer)`` admits (e.g. "a stack", "gray").
    """

    def __init__(self, viewer: Any, *, kinds: tuple = ("image",), accept: Callable | None = None,
                 allow_derived: bool = False) -> None:
        self.viewer = viewer
        self._kinds = tuple(_layer_class(kind) for kind in kinds)
        self._accept = accept
        self._allow_derived = allow_derived

    def acceptable(self, layer: Any) -> bool:
        """Whether ``layer`` may be chosen for this role."""
        if not isinstance(layer, self._kinds) or is_fourier(layer):
            return False
        if not self._allow_derived and role_of(layer) is not None:
            return False
        return self._accept is None or bool(self._accept(layer))

    def layers(self) -> list:
        """Every acceptable layer, in the viewer's order."""
        return [layer for layer in self.viewer.layers if self.acceptable(layer)]

    def choices(self, *_: Any) -> list[tuple[str, Any]]:
        """magicgui choices: ``(name, layer)`` for every acceptable layer."""
        return [(layer.name, layer) for layer in self.layers()]


class LayerChooser(ComboBox):
    """A layer drop-down offering the layers of a :class:`LayerFilter`.

    Parameters
    ----------
    viewer : napari.Viewer
        Whose layers are offered.
    label : str
        The label shown beside the chooser.
    nullable : bool
        Offer "no layer".
    **filters
        ``kinds``, ``accept``, ``allow_derived`` of :class:`LayerFilter`.
    """

    def __init__(self, viewer: Any, label: str, *, nullable: bool = False, kinds: tuple = ("image",),
                 accept: Callable | None = None, allow_derived: bool = False, **kwargs: Any) -> None:
        self.filter = LayerFilter(viewer, kinds=kinds, accept=accept, allow_derived=allow_derived)
        super().__init__(label=label, choices=self.filter.choices, nullable=nullable, **kwargs)

    def layers(self) -> list:
        """Every layer the chooser offers."""
        return self.filter.layers()

    def prefer(self, layer: Any) -> None:
        """Choose ``layer`` if it is offered (e.g. the active layer when the tool opens)."""
        if layer is not None and layer in self.layers():
            self.value = layer


def _layer_class(kind: str) -> type:
    import napari.layers

    return getattr(napari.layers, kind.capitalize())


# --- publishing ----------------------------------------------------------------------------------
def publish(
    viewer: Any,
    data: Any,
    *,
    source: Any,
    name: str,
    kind: str = "image",
    steps: Iterable[dict] = (),
    role: str | None = None,
    frame: dict | None = None,
    note: dict | None = None,
    **display: Any,
) -> Any:
    """Add (or replace) the layer ``name`` showing ``data`` made from the layer ``source``.

    The one path by which a tool's result becomes a layer: the physical frame
    is ``source``'s for the trailing axes (``frame`` overrides entries, for a
    result on another grid), the metadata is ``source``'s with ``steps``
    appended to its stacklab record, and display settings (``colormap``,
    ``contrast_limits``, ...) are applied whether the layer is new or replaced.
    A ``role`` marks a layer made for looking at (a heatmap, point pairs, a
    panel): choosers skip it; without ``steps`` it records none, so it never
    passes for a replayable result. ``note`` adds entries to the record (e.g.
    ``per_channel``: the 2-D steps ran on each colour channel).
    """
    steps = list(steps)
    if frame is not None and "scale" in frame:
        ndim = len(frame["scale"])
    else:
        ndim = int(data.shape[1]) if kind == "points" else data.ndim - (1 if display.get("rgb") else 0)
    kwargs = _layers.spatial_kwargs(source, ndim)
    if frame is not None:
        kwargs.update(frame)
    if steps or role is None:
        metadata = provenance(source.metadata, steps, source=source.name)
    else:
        metadata = {key: value for key, value in dict(source.metadata or {}).items() if key != PROVENANCE_KEY}
        metadata[PROVENANCE_KEY] = {"source": record_of(source).get("source", source.name)}
    if role is not None:
        metadata[PROVENANCE_KEY][ROLE] = role
    metadata[PROVENANCE_KEY].update(note or {})
    kwargs.update(display, name=name, metadata=metadata)
    layer = _layers.add_or_replace(viewer, data, kwargs, kind)
    for key in _SETTABLE:
        if key in display:
            setattr(layer, key, display[key])
    warn_builtin_writer_once(layer)
    return layer


def publish_operation(viewer: Any, op: Any, result: Any, *, source: Any, params: dict, refs: dict | None = None,
                      in_shape: tuple, preview: bool = False) -> list:
    """Add the layer(s) of a registry operation's ``result``: the one path of operation widgets and tools.

    ``"<source> <op>"`` (``"<source> <op> <key>"`` for each output of an
    ``images`` operation, whose record names it under :data:`OUTPUT`), a
    Points layer for a points result, in the frame the operation's
    declaration gives (:func:`~._layers.array_layers`), recording
    ``op.step(params, refs)``. A mask or labels result with a colour axis
    shows its channels as a leading axis (:func:`~._channels.shown_as`).
    ``in_shape`` is the shape the result was computed from (the whole
    layer, or the previewed plane). A ``preview`` is named
    ``"... (preview)"`` and records nothing.
    """
    name = f"{source.name} {op.name}"
    metadata = {} if preview else _layers.recorded_metadata(source, op.step(params, refs))
    if op.output == "points":
        tuples = [_layers.points_layer(result, source, name, metadata)]
    else:
        tuples = _layers.array_layers(op, result, source, name, metadata, in_shape)
    layers = []
    for data, kwargs, kind in tuples:
        data, kwargs = _channels.shown_as(data, kwargs, kind)
        if preview:
            kwargs["name"] = f"{kwargs['name']} (preview)"
        elif op.output == "images":
            kwargs["metadata"][PROVENANCE_KEY] = {**kwargs["metadata"][PROVENANCE_KEY],
                                                  OUTPUT: kwargs["name"][len(name) + 1:]}
        layers.append(_layers.add_or_replace(viewer, data, kwargs, kind))
        if not preview:
            warn_builtin_writer_once(layers[-1])
    return layers


_WRITER_WARNED = False


def warn_builtin_writer_once(layer: Any) -> None:
    """Tell the user once per session that napari's own TIFF writer would drop this layer's calibration.

    napari's *Save Selected Layers* dialog offers its own writer first; it writes
    1-pixel spacing (and Labels as uint32). napari has no setting that changes
    the writer a save uses, so the user picks ours in the dialog's file-type list.
    """
    global _WRITER_WARNED
    if _WRITER_WARNED or not isinstance(layer, (_layer_class("image"), _layer_class("labels"))) \
            or not _calibrated(layer):
        return
    _WRITER_WARNED = True
    notifications.show_warning(
        f"{layer.name!r} has a pixel size ({_unit_text(layer)}). napari's own TIFF writer, the first type in "
        "File > Save Selected Layers, drops it: pick 'napari-stacklab Save as TIFF (keeps dtype and pixel size)' "
        "in the dialog's type list."
    )


def _calibrated(layer: Any) -> bool:
    units = [str(u) for u in getattr(layer, "units", ())]
    return any(float(s) != 1.0 for s in layer.scale) or any(u not in ("pixel", "px", "") for u in units)


def _unit_text(layer: Any) -> str:
    unit = layer.units[-1]
    return f"{float(layer.scale[-1]):g} {format(unit, '~') if hasattr(unit, 'dimensionality') else unit}"


# --- actions and runs ----------------------------------------------------------------------------
def action(method: Callable) -> Callable:
    """Make a tool method safe to connect to a button: any exception becomes a message."""

    @functools.wraps(method)
    def guarded(self: "Tool", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a button never raises into the Qt event loop
            self.fail(exc)
            return None

    return guarded


@dataclasses.dataclass(eq=False)
class _Run:
    """One computation in a worker thread and what it depends on."""

    worker: Any
    description: str
    inputs: tuple
    on_result: Callable[[Any], Any]
    cancelled: bool = False
    showing: bool = False  # the result is being shown, one layer per event-loop turn
    reason: str = "cancelled"
    bar: Any = None
    shown_warnings: set = dataclasses.field(default_factory=set)


class OperationFailed(Exception):
    """A ``RuntimeError`` from a worker's task raised again as a plain exception (see :func:`worker_task`)."""


def worker_task(task: Callable, *args: Any, **kwargs: Any) -> Iterator:
    """Run ``task`` (a generator function or a plain function) as a worker generator.

    superqt's generator worker takes a ``RuntimeError`` escaping the generator
    for "the worker object was deleted", only warns, and never emits
    ``errored`` or ``finished``: the run would never end. It is raised again as
    :class:`OperationFailed`, with the same message (an ECC that diverges in
    ``drift_correct`` raises one). Tools and operation widgets run their work through it.
    """
    try:
        result = task(*args, **kwargs)
        if isinstance(result, Iterator):
            result = yield from result
        else:
            yield ("total", 0)
        return result
    except RuntimeError as exc:
        raise OperationFailed(str(exc)) from exc


class DockWatcher(QObject):
    """Watches a stacklab widget being docked (-> tabs with the other stacklab docks) or undocked (-> ``closed()``).

    ``Window.remove_dock_widget`` (the dock's close button) only reparents the
    inner widget to ``None``; it is not destroyed, so ``destroyed`` never fires.
    """

    def __init__(self, widget: Any, closed: Callable[[], None]) -> None:
        super().__init__(widget)
        self._closed = closed
        widget.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 (Qt name)
        if event.type() == QEvent.Type.ParentChange:
            if obj.parent() is None:
                self._closed()
            elif isinstance(obj.parent(), QDockWidget):
                QTimer.singleShot(0, lambda: tabify_with_stacklab_docks(obj))
        return False


def _is_stacklab_dock(dock: QDockWidget) -> bool:
    """A dock of ours: its widget (or the magicgui widget behind it) says ``stacklab_dock``."""
    inner = dock.widget()
    return bool(getattr(getattr(inner, "_magic_widget", None), "stacklab_dock", False)
                or getattr(inner, "stacklab_dock", False))


class _WindowDocks(QObject):
    """Once a stacklab dock is in a window: every stacklab dock added to it later joins the tabs too."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        window.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 (Qt name)
        if event.type() == QEvent.Type.ChildAdded and isinstance(event.child(), QDockWidget):
            dock = event.child()
            QTimer.singleShot(0, lambda: dock.widget() is not None and _is_stacklab_dock(dock)
                              and tabify_with_stacklab_docks(dock.widget()))
        return False


def tabify_with_stacklab_docks(widget: Any) -> None:
    """Put the dock holding ``widget`` into one tab group with the other visible stacklab docks beside it."""
    try:
        dock = widget.parent()
        window = dock.parentWidget() if isinstance(dock, QDockWidget) else None
    except RuntimeError:  # the widget was deleted before the queued call ran
        return
    if not isinstance(window, QMainWindow) or dock.isFloating():
        return
    if window.findChild(_WindowDocks) is None:
        _WindowDocks(window)
    area = window.dockWidgetArea(dock)
    others = [
        other for other in window.findChildren(QDockWidget)
        if other is not dock and other.isVisible() and not other.isFloating()
        and window.dockWidgetArea(other) == area and _is_stacklab_dock(other)
    ]
    if others:
        window.tabifyDockWidget(others[0], dock)
        dock.show()
        dock.raise_()


class _VerticalScroll(QScrollArea):
    """Scrolls its controls vertically only, and asks the dock for the width they need.

    A plain scroll area asks for little width, so napari made the docks of the
    tools narrower than their labels ("detecto", "4D-STEM r").
    """

    def __init__(self, body: Any) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(body)

    def _wide(self, hint: QSize, inner: QSize) -> QSize:
        return QSize(max(hint.width(), inner.width() + self.verticalScrollBar().sizeHint().width()), hint.height())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return self._wide(super().sizeHint(), self.widget().sizeHint())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return self._wide(super().minimumSizeHint(), self.widget().minimumSizeHint())


class Tool(Container):
    """A dock widget for a stateful tool: scrolling body, status line, Cancel, workers, choosers, publish.

    Subclasses add their controls with :meth:`add`, connect buttons to
    methods decorated with :func:`action`, start computations with
    :meth:`launch`, make layers with :meth:`publish` and connect to viewer or
    layer events only through :meth:`listen`.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer the tool works in.
    """

    #: Docks of stacklab share one tab group (see _tool.tabify_with_stacklab_docks).
    stacklab_dock = True

    #: Shown in messages and progress bars.
    title = "tool"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=False)
        self.viewer = napari_viewer
        self.body = Container(labels=True)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        # a long message wraps within the dock's width instead of widening the dock
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.cancel_button.tooltip = "stop the computation after its current step; nothing is added"
        self.body.native.layout().addStretch(1)  # controls stay together at the top of a tall dock
        scroll = _VerticalScroll(self.body.native)
        layout = self.native.layout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        layout.addWidget(self.status.native)
        layout.addWidget(self.cancel_button.native)
        self._scroll = scroll
        self._links: list[tuple[Any, Callable]] = []
        self._pairs: list[tuple[LayerChooser, LayerChooser]] = []
        self._run: _Run | None = None
        self._closed = False
        self.busy_widgets: list = []  # disabled while a computation runs
        self.cancel_button.changed.connect(lambda *_: self.cancel())
        self.native.destroyed.connect(lambda *_: self._release(destroyed=True))
        self._dock_events = DockWatcher(self.native, lambda: self._release(destroyed=False))
        self.listen(self.viewer.layers.events.removed, self._on_layer_removed)
        self.listen(self.viewer.layers.events.inserted, self.reset_choices)
        self.listen(self.viewer.layers.events.removed, self.reset_choices)

    # --- building --------------------------------------------------------------------------------
    def add(self, *widgets: Any) -> None:
        """Append controls to the tool's (scrolling) body."""
        self.body.extend(widgets)

    def add_plot(self, widget: Any) -> None:
        """Put a Qt widget that wants the dock's remaining height (a plot) at the end of the body."""
        layout = self.body.native.layout()
        layout.takeAt(layout.count() - 1)  # the stretch: the plot takes the space instead
        layout.addWidget(widget, 1)

    def chooser(self, label: str, **kwargs: Any) -> LayerChooser:
        """A :class:`LayerChooser` over this tool's viewer."""
        return LayerChooser(self.viewer, label, **kwargs)

    def distinct(self, first: LayerChooser, second: LayerChooser) -> None:
        """Keep two choosers on different layers: choosing one's layer in the other moves it away."""
        self._pairs.append((first, second))
        for changed, other in ((first, second), (second, first)):
            changed.changed.connect(lambda *_, a=changed, b=other: self._separate(a, b))
        if second.value is None:  # a nullable second role starts on a layer too, when there is one
            alternatives = [layer for layer in second.layers() if layer is not first.value]
            if alternatives:
                second.value = alternatives[0]
        self._separate(first, second)

    def _separate(self, changed: LayerChooser, other: LayerChooser) -> None:
        if changed.value is None or changed.value is not other.value:
            return
        alternatives = [layer for layer in other.layers() if layer is not changed.value]
        if alternatives:
            other.value = alternatives[0]

    def reset_choices(self, *_: Any) -> None:
        if self._closed:
            return
        self.body.reset_choices()
        for first, second in self._pairs:
            self._separate(first, second)

    def listen(self, emitter: Any, callback: Callable) -> None:
        """Connect ``callback`` to a napari/psygnal ``emitter`` until the tool is closed."""
        emitter.connect(callback)
        self._links.append((emitter, callback))

    def unlisten(self, emitter: Any, callback: Callable) -> None:
        """Disconnect one connection made with :meth:`listen`."""
        if (emitter, callback) in self._links:
            self._links.remove((emitter, callback))
            emitter.disconnect(callback)

    # --- closing ---------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the dock was closed or the widget destroyed: the tool is inert."""
        return self._closed

    def _release(self, destroyed: bool) -> None:
        if vars(self).get("_closed", True):  # closed already, or torn down by the garbage collector
            return
        if destroyed:
            self._closed = True  # the Qt widgets are gone: nothing may touch them any more
        self._stop("the tool was closed; nothing added")
        for emitter, callback in self._links:
            try:
                emitter.disconnect(callback)
            except (RuntimeError, TypeError, ValueError):  # already gone with its layer
                pass
        self._links = []
        self.on_close()
        self._closed = True

    def on_close(self) -> None:
        """Hook for subclasses: the tool is closing (its connections are already released)."""

    # --- messages --------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        """Show ``text`` in the status line (unless the widget is gone)."""
        if not self._closed:
            self.status.value = text

    def fail(self, problem: BaseException | str) -> None:
        """Show a problem in the status line and as a napari notification.

        A ``ValueError``/``TypeError``/``str`` is something the user can fix (a
        warning); any other exception is an error.
        """
        text = problem if isinstance(problem, str) else describe_error(problem)
        message = f"{self.title}: {text}"
        self.say(message)
        if isinstance(problem, (str, ValueError, TypeError, LookupError, ImportError)):
            notifications.show_warning(message)
        else:
            notifications.show_error(message)

    # --- computations ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a computation of this tool runs."""
        return self._run is not None

    def launch(self, task: Callable, *args: Any, on_result: Callable[[Any], Any], description: str,
              inputs: Iterable = (), **kwargs: Any) -> Any:
        """Run ``task(*args, **kwargs)`` in a worker thread; ``on_result(result)`` runs in the GUI thread.

        ``task`` gets arrays and parameters, never a napari object. A generator
        task reports progress by yielding ``("total", n)`` once and then
        ``("step", 1)`` per unit of work; Cancel takes effect at its next
        yield. ``on_result`` may be a generator: the base then runs it one
        step per turn of the event loop (a layer per step), and the tool
        stays :attr:`running` until it is done. Returns the worker, or
        ``None`` when a run is already going on.
        ``inputs`` are the layers the run depends on: if one is deleted, the
        run stops and nothing is added.
        """
        if self._run is not None:
            self.say(f"{self.title}: already running; Cancel it first")
            return None
        worker = thread_worker(worker_task, start_thread=False, ignore_errors=True)(task, *args, **kwargs)
        run = _Run(worker, description, tuple(inputs), on_result)
        worker.yielded.connect(lambda message: self._on_yielded(run, message))
        worker.returned.connect(lambda result: self._on_returned(run, result))
        worker.errored.connect(lambda exc: self._on_errored(run, exc))
        worker.warned.connect(lambda warning: self._on_warned(run, warning))
        worker.finished.connect(lambda: self._on_finished(run))
        self._run = run
        for widget in self.busy_widgets:
            widget.enabled = False
        self.cancel_button.enabled = True
        self.say(f"{description}...")
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running computation after its current step; nothing is added."""
        self._stop("cancelled; nothing added")

    def _stop(self, reason: str) -> None:
        run = self._run
        if run is None or run.cancelled:
            return
        run.cancelled = True
        run.reason = reason
        run.worker.quit()
        if not self._closed:
            self.cancel_button.enabled = False
            self.say(f"{run.description}: {reason}")

    def _on_layer_removed(self, event: Any) -> None:
        run = self._run
        if run is not None and any(layer is event.value for layer in run.inputs):
            message = f"{event.value.name!r} was removed during {run.description.lower()}; nothing added"
            self._stop(message)
            notifications.show_warning(f"{self.title}: {message}")

    def _on_yielded(self, run: _Run, message: tuple) -> None:
        if run.cancelled:
            return
        kind, value = message
        if kind == "total":
            if run.bar is None:
                run.bar = progress(total=int(value), desc=run.description)
        elif kind == "step" and run.bar is not None:
            run.bar.update(value)
        elif kind == "say":
            self.say(str(value))

    def _on_returned(self, run: _Run, result: Any) -> None:
        if run.cancelled or self._closed:
            return
        try:
            shown = run.on_result(result)
        except Exception as exc:  # noqa: BLE001 - a result napari cannot show must not escape the event loop
            self.fail(exc)
            return
        if isinstance(shown, Iterator):  # a layer per turn of the event loop: the window repaints in between
            run.showing = True
            QTimer.singleShot(0, lambda: self._show_next(run, shown))

    def _show_next(self, run: _Run, shown: Iterator) -> None:
        try:
            if not (run.cancelled or self._closed):
                next(shown)
                QTimer.singleShot(0, lambda: self._show_next(run, shown))
                return
        except StopIteration:
            pass
        except Exception as exc:  # noqa: BLE001
            self.fail(exc)
        run.showing = False
        self._on_finished(run)

    def _on_errored(self, run: _Run, exc: BaseException) -> None:
        if run.cancelled:  # a failure after a stop (e.g. the input vanished) is no news
            return
        self.fail(exc)

    def _on_warned(self, run: _Run, warning: tuple) -> None:
        message, category = warning[0], warning[1]
        text = f"{self.title}: {getattr(category, '__name__', 'warning')}: {message}"
        if run.cancelled or text in run.shown_warnings:
            return
        run.shown_warnings.add(text)
        self.say(text)
        notifications.show_warning(text)

    def _on_finished(self, run: _Run) -> None:
        if run.showing:  # the worker is done; the tool is, once its layers are all shown
            return
        if run.bar is not None:
            run.bar.close()
            run.bar = None
        if self._run is run:
            self._run = None
        if not self._closed:
            for widget in self.busy_widgets:
                widget.enabled = True
            self.cancel_button.enabled = False

    # --- results -----------------------------------------------------------------------------------
    def publish(self, data: Any, **kwargs: Any) -> Any:
        """:func:`publish` into this tool's viewer."""
        return publish(self.viewer, data, **kwargs)

    def shown_frame(self, layer: Any, frame_ndim: int = 2) -> Any:
        """The frame of ``layer`` the viewer shows (:func:`~._layers.shown_frame`)."""
        return _layers.shown_frame(self.viewer, layer, frame_ndim)


def rounded(value: Any, digits: int = 4) -> Any:
    """``value`` rounded for a table cell (``""`` for None)."""
    if value is None:
        return ""
    return round(float(value), digits) if np.isfinite(value) else float(value)


class Latest:
    """Quick background computations for a tool: one at a time, and only the latest request waits.

    For previews that follow sliders or the viewer (no progress bar, no
    Cancel): a request made while one computes replaces any request already
    waiting, so a dragged slider computes its first and its last position,
    never a queue of stale ones. ``on_result`` runs in the GUI thread.
    """

    def __init__(self, tool: Tool) -> None:
        self._tool = tool
        self._worker = None
        self._pending: tuple | None = None

    @property
    def busy(self) -> bool:
        return self._worker is not None or self._pending is not None

    def request(self, task: Callable, *args: Any, on_result: Callable[[Any], Any]) -> None:
        if self._worker is not None:
            self._pending = (task, args, on_result)
            return
        worker = thread_worker(task, start_thread=False, ignore_errors=True)(*args)
        worker.returned.connect(lambda result: self._deliver(on_result, result))
        worker.errored.connect(lambda exc: self._tool.say(f"{self._tool.title} preview: {describe_error(exc)}"))
        worker.finished.connect(self._next)
        self._worker = worker
        worker.start()

    def drop(self) -> None:
        """Forget the waiting request; the running one's result is discarded."""
        self._pending = None
        if self._worker is not None:
            self._worker.returned.disconnect()

    def _deliver(self, on_result: Callable[[Any], Any], result: Any) -> None:
        if self._tool.closed or self._pending is not None:  # a newer request is waiting: this one is stale
            return
        try:
            on_result(result)
        except Exception as exc:  # noqa: BLE001
            self._tool.say(f"{self._tool.title} preview: {describe_error(exc)}")

    def _next(self) -> None:
        self._worker = None
        if self._pending is not None and not self._tool.closed:
            task, args, on_result = self._pending
            self._pending = None
            self.request(task, *args, on_result=on_result)
