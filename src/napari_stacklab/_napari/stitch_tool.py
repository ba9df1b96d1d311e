"""Stitch overlapping tiles into a mosaic, see how far to trust each seam, exclude a pair, fuse.

The tiles are image layers placed by their ``translate`` (as a slide scanner's
tiles opened one by one), or are loaded from a folder of a grid scan, a CSV of
positions or OME stage metadata with the :mod:`napari_stacklab.stitch`
readers, which adds them as such layers (lazily). "Register tiles" measures
every overlap and places all tiles at once in a worker, with a progress bar
and Cancel. The tool then shows:

- ``"<name> seams"``: one line per neighbouring pair, across its overlap,
  coloured by the pair's residual after the global solve (the legend in the
  dock gives the scale), grey where the pair was rejected, magenta where you
  excluded it;
- ``"<name> outlines"``: where every tile was placed, yellow when registered,
  red when it kept its stage position (no trusted link to the other tiles);
- the pairs table (measured shift, confidence, residual, status) and the
  summary line.

Clicking a row or a seam selects the pair; "Exclude pair" leaves it out and
solves again from the same measurements (nothing is measured again). "Fuse
mosaic" adds ``"<name> mosaic"``: a lazy image computed chunk by chunk when
shown, with the tiles' pixel size, units and axis names, placed where the
stage puts it, recording how it was made. "Save mosaic..." writes it to
OME-Zarr (multiscale) or TIFF, chunk by chunk, and never replaces a file
without asking.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, PushButton, Select, SpinBox
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QImage, QPixmap
from qtpy.QtWidgets import QAbstractItemView, QFileDialog, QMessageBox, QSizePolicy, QTableWidget, QTableWidgetItem, \
    QTabWidget

from .. import __version__
from .._mosaic._layout import EXCLUDED, KEPT
from ..stitch import BLENDS, ORDERS, Layout, Tiles, csv_tiles, grid_positions, grid_tiles, mosaic_geometry, \
    mosaic_image, ome_tiles, register_tiles_stepwise, tiles_from_translates, write_mosaic
from . import _layers
from ._tool import LayerFilter, Tool, action
from .table import fit_table

__all__ = ["StitchTool", "SOURCES", "LAYERS", "STACK", "GRID", "CSV", "OME", "COLUMNS", "load_tiles",
           "register_task", "solve_task", "fuse_task", "write_task", "seam_colours", "residual_limit"]

#: Where the tiles come from: layers in the viewer (each placed by its translate, or one stack of a grid scan),
#: or files read with the stitch readers.
SOURCES = ("tile layers", "stack layer (grid)", "folder or pattern (grid)", "CSV of positions", "OME stage positions")
LAYERS, STACK, GRID, CSV, OME = SOURCES
#: The pairs table: what tells whether to trust a seam first, the measured stage error last (header, tooltip).
HEADERS = {
    "pair": "the two tiles",
    "resid. px": "distance (pixels) between the pair's measured shift and the solved positions",
    "conf.": "correlation of the two tiles over their overlap at the measured shift (-1 to 1)",
    "status": "kept, or why the pair was left out of the solve",
    "dy px": "measured minus nominal displacement along y: the stage's error on this pair (pixels)",
    "dx px": "measured minus nominal displacement along x (pixels)",
}
COLUMNS = list(HEADERS)
#: Colours of the seams and outlines (the residual colormap, then fixed colours a user can name). A residual
#: of 0 takes the colormap at RESIDUAL_RANGE[0] (blue, visible on a dark image), the top of the scale at [1].
RESIDUAL_COLORMAP = "turbo"
RESIDUAL_RANGE = (0.12, 1.0)
REJECTED_COLOUR = "#9e9e9e"
EXCLUDED_COLOUR = "#ff40ff"
REGISTERED_COLOUR = "#ffd54f"
STAGE_COLOUR = "#ff5252"
#: Interpolation of the sub-pixel part of each tile's position (the ``order`` of :func:`fuse`).
INTERPOLATIONS = {"linear": 1, "cubic": 3, "whole pixels": 0}
#: Pairs measured per worker step (a progress step and a point where Cancel takes effect).
BATCH = 4
#: More tiles than this are not shown as one layer each; the command line and the Python API take any number.
MAX_TILE_LAYERS = 256


# --- worker tasks (arrays and parameters in, no napari object) -----------------------------------
def load_tiles(source: str, path: str, grid: dict, stack: dict | None = None) -> dict:
    """Read a tile set (lazily: headers only) and a contrast range for showing it.

    ``stack`` (for :data:`STACK`) holds a stack layer's ``data`` (``(n_tiles, ..., M, N)``), ``scale``,
    ``units``, ``axis_labels`` and ``name``; the other sources read ``path`` with the stitch readers.
    """
    if source == STACK:
        data = stack["data"]
        positions, _ = grid_positions(int(data.shape[0]), tile_shape=tuple(data.shape[-2:]), **grid)
        tiles = Tiles(data, positions, scale=stack["scale"][1:], units=stack["units"][1:],
                      axis_labels=stack["axis_labels"][1:],
                      names=[f"{stack['name']} [{k}]" for k in range(int(data.shape[0]))],
                      metadata={"source": stack["name"], "positions": "grid", **grid})
    else:
        path = path.strip()
        if not path:
            raise ValueError("give the tiles' folder, pattern or file in 'path'")
        if source == GRID:
            tiles = grid_tiles(path, **grid)
        elif source == CSV:
            tiles = csv_tiles(path)
        else:
            tiles = ome_tiles(path)
    if len(tiles) > MAX_TILE_LAYERS:
        raise ValueError(f"{len(tiles)} tiles are too many to show as layers (at most {MAX_TILE_LAYERS}); "
                         "stitch them with `stacklab stitch` or napari_stacklab.stitch and open the mosaic")
    plane = np.asarray(tiles.plane()[0], dtype=np.float32)
    low, high = np.percentile(plane, (0.5, 99.5)) if plane.size else (0.0, 1.0)
    offset = tuple(stack["translate"][1:]) if stack is not None else (0.0,) * len(tiles.shape)
    return {"tiles": tiles, "contrast_limits": (float(low), float(high) if high > low else float(low) + 1.0),
            "offset": offset}


def register_task(tiles: Tiles, params: dict):
    """Measure every pair and solve, :data:`BATCH` pairs per progress step; returns the Layout."""
    steps = register_tiles_stepwise(tiles, batch=BATCH, **params)
    measured, started = 0, False
    try:
        while True:
            done, total = next(steps)
            if not started:
                yield ("total", total)
                started = True
            yield ("step", done - measured)
            measured = done
    except StopIteration as end:
        return end.value
    finally:
        steps.close()  # a cancelled run stops measuring here


def solve_task(layout: Layout, params: dict) -> Layout:
    """Solve again from the same measurements (fast: nothing is measured)."""
    return layout.solve(**params)


def fuse_task(layout: Layout, params: dict, name: str) -> Any:
    """The lazy mosaic (an Image); a median flat field is estimated here, once."""
    return mosaic_image(layout, name=name, **params)


def write_task(path: str, image: Any, overwrite: bool, stop: threading.Event) -> str:
    """Write the mosaic chunk by chunk; setting ``stop`` ends the write and leaves no output behind."""
    import dask
    from dask.callbacks import Callback

    class _Stop(Callback):
        def _posttask(self, *_: Any) -> None:
            if stop.is_set():
                raise InterruptedError("the write was cancelled")

    def compute(tasks: list) -> Any:
        with _Stop():
            return dask.compute(*tasks)

    return str(write_mosaic(path, image, overwrite=overwrite, compute=compute))


# --- colours -----------------------------------------------------------------------------------------
def residual_limit(residuals: Any) -> float:
    """The top of the residual colour scale: the largest residual rounded up to 1, 2 or 5 times a power of ten."""
    residuals = np.asarray(residuals, dtype=float)
    largest = float(residuals.max()) if residuals.size else 0.0
    largest = max(largest, 0.01)
    power = 10.0 ** np.floor(np.log10(largest))
    for step in (1.0, 2.0, 5.0, 10.0):
        if largest <= step * power * (1 + 1e-9):
            return float(step * power)
    return float(10 * power)


def seam_colours(layout: Layout, excluded: set, limit: float) -> np.ndarray:
    """RGBA per pair: the residual colormap (0 to ``limit`` px) for kept pairs, fixed colours for the others."""
    from napari.utils.colormaps import ensure_colormap
    from napari.utils.colormaps.standardize_color import transform_color

    colours = np.empty((len(layout.pairs), 4), dtype=np.float32)
    kept = layout.kept
    if kept.any():
        colours[kept] = ensure_colormap(RESIDUAL_COLORMAP).map(_on_scale(layout.residual[kept] / limit))
    for k, (i, j) in enumerate(layout.pairs.index.tolist()):
        if not kept[k]:
            colours[k] = transform_color(EXCLUDED_COLOUR if (i, j) in excluded else REJECTED_COLOUR)[0]
    return colours


def _on_scale(fraction: Any) -> np.ndarray:
    """Colormap positions of residuals given as fractions of the top of the scale."""
    low, high = RESIDUAL_RANGE
    return low + (high - low) * np.clip(np.asarray(fraction, dtype=float), 0.0, 1.0)


def _legend_pixmap(width: int = 150, height: int = 12) -> QPixmap:
    from napari.utils.colormaps import ensure_colormap

    ramp = ensure_colormap(RESIDUAL_COLORMAP).map(_on_scale(np.linspace(0.0, 1.0, width)))
    rgb = np.ascontiguousarray(np.repeat((ramp[None, :, :3] * 255).astype(np.uint8), height, axis=0))
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


def _cell(value: float, digits: int) -> str:
    """A table cell: the number with ``digits`` decimals, blank where nothing was measured."""
    return "" if not np.isfinite(value) else f"{value:.{digits}f}"


def _swatch(colour: str, text: str) -> Label:
    label = Label(value=f'<span style="color:{colour}; font-size:14pt">&#9644;</span> {text}')
    return label


# --- the tool --------------------------------------------------------------------------------------
class StitchTool(Tool):
    """Tiles -> registration with a quality report -> exclude pairs, re-solve -> lazy mosaic -> file."""

    title = "Stitch tiles"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.source = ComboBox(label="tiles from", choices=list(SOURCES), value=LAYERS)
        self.stack = self.chooser("stack", accept=lambda layer: layer.ndim >= 3 and not getattr(layer, "rgb", False))
        self.stack.tooltip = "a layer of shape (n_tiles, [C or Z,] Y, X) holding a grid scan's tiles in order"
        self._tile_filter = LayerFilter(self.viewer, accept=lambda layer: not getattr(layer, "rgb", False))
        self.layers = Select(label="tile layers", choices=self._tile_filter.choices)
        self.layers.native.setMaximumHeight(110)
        self.layers.tooltip = "the tile layers, each placed by its translate (as a stage put it)"
        self.path = LineEdit(label="path")
        self.path.tooltip = "a folder or pattern of tiles (grid), a CSV file (file, y, x) or an OME-TIFF/OME-Zarr"
        self.browse_button = PushButton(text="Browse...")
        self.rows = SpinBox(label="rows", value=2, min=1, max=1000)
        self.cols = SpinBox(label="cols", value=2, min=1, max=1000)
        self.order = ComboBox(label="order", choices=list(ORDERS), value="row-major")
        self.overlap = FloatSpinBox(label="overlap", value=0.1, min=0.0, max=0.9, step=0.05)
        self.load_button = PushButton(text="Load tiles as layers")
        self.margin = SpinBox(label="search margin (px)", value=0, min=0, max=100_000)
        self.margin.tooltip = "the largest stage error searched, in pixels; 0: a tenth of the tile"
        self.refine = CheckBox(text="refine with ECC", value=True)
        self.min_confidence = FloatSpinBox(label="min confidence", value=0.6, min=-1.0, max=1.0, step=0.05)
        self.max_residual = FloatSpinBox(label="max residual (px)", value=2.0, min=0.01, max=1000.0, step=0.5)
        self.register_button = PushButton(text="Register tiles")
        self.summary = Label(value="")
        self.legend_bar = Label(value="")
        self.legend_bar.native.setPixmap(_legend_pixmap())
        self.legend_low, self.legend_high = Label(value="0"), Label(value="")
        self.table = QTableWidget(0, len(COLUMNS))
        table = self.table
        table.setHorizontalHeaderLabels(COLUMNS)
        for column, tip in enumerate(HEADERS.values()):
            table.horizontalHeaderItem(column).setToolTip(tip)
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        fit_table(table)
        self.exclude_button = PushButton(text="Exclude pair")
        self.exclude_button.tooltip = "leave the selected pair out (or take it back) and solve again, without measuring"
        self.resolve_button = PushButton(text="Re-solve")
        self.resolve_button.tooltip = "solve again with the thresholds above, from the same measurements"
        self.report_button = PushButton(text="Save report...")
        self.report_button.tooltip = ("write the pairs table and the solved positions as CSV (the positions read back "
                                      "with csv_tiles and `stacklab stitch --positions`)")
        self.blend = ComboBox(label="blend", choices=list(BLENDS), value="linear")
        self.interpolation = ComboBox(label="interpolation", choices=list(INTERPOLATIONS), value="linear")
        self.flatfield = ComboBox(label="flat field", choices=["none", "median"], value="none")
        self.fuse_button = PushButton(text="Fuse mosaic")
        self.save_button = PushButton(text="Save mosaic...")
        self.mosaic_info = Label(value="No mosaic yet: register the tiles, then Fuse.")
        for label in (self.summary, self.mosaic_info):  # long lines wrap to the dock's width, never widen it
            label.native.setWordWrap(True)
            label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        def box(*widgets: Any, labels: bool = True, horizontal: bool = False) -> Container:
            group = Container(layout="horizontal" if horizontal else "vertical", labels=labels, widgets=list(widgets))
            group.margins = (0, 0, 0, 0)
            return group

        self.path.native.setPlaceholderText("folder, pattern, CSV or OME file")
        self.path_row = box(self.path, self.browse_button, labels=False, horizontal=True)
        self.grid_rows = [box(self.rows, self.cols, horizontal=True), box(self.order, self.overlap, horizontal=True)]
        legend = box(Label(value="residual"), self.legend_low, self.legend_bar, self.legend_high, labels=False,
                     horizontal=True)
        swatches = box(_swatch(REJECTED_COLOUR, "rejected"), _swatch(EXCLUDED_COLOUR, "excluded"),
                       _swatch(STAGE_COLOUR, "tile at stage"), labels=False, horizontal=True)
        pages = {
            "Tiles": box(box(self.source, self.layers, self.stack), self.path_row, *self.grid_rows, self.load_button,
                         box(self.margin, self.min_confidence, self.max_residual), self.refine,
                         self.register_button, labels=False),
            "Pairs": box(self.summary, legend, swatches,
                         box(self.exclude_button, self.resolve_button, self.report_button, labels=False,
                             horizontal=True), labels=False),
            "Mosaic": box(box(self.blend, self.interpolation, self.flatfield),
                          box(self.fuse_button, self.save_button, labels=False, horizontal=True), self.mosaic_info,
                          labels=False),
        }
        self.tabs = QTabWidget()
        for title, page in pages.items():
            page.margins = (4, 4, 4, 4)
            if title == "Pairs":
                page.native.layout().addWidget(table, 1)  # the table takes the rest of the dock's height
            else:
                page.native.layout().addStretch(1)
            self.tabs.addTab(page.native, title)
        self._pages = pages  # the magicgui containers behind the tabs
        self.add_plot(self.tabs)
        self.busy_widgets = [self.load_button, self.register_button, self.exclude_button, self.resolve_button,
                             self.report_button, self.fuse_button, self.save_button]

        self.tile_layers: list = []
        self.solved: Layout | None = None
        self.excluded: set[tuple[int, int]] = set()
        self.selected: int | None = None
        self.mosaic: Any = None  # the fused Image behind the mosaic layer
        self._mosaic_text = ""
        self.mosaic_layer: Any = None
        self.seams_layer: Any = None
        self.outlines_layer: Any = None
        self._stop_write: threading.Event | None = None
        self._pick = self._seam_click  # one bound method, so that it can be removed from the layer again

        self.source.changed.connect(lambda *_: self._show_source_controls())
        self.browse_button.changed.connect(lambda *_: self.browse())
        self.load_button.changed.connect(lambda *_: self.load())
        self.register_button.changed.connect(lambda *_: self.register())
        self.exclude_button.changed.connect(lambda *_: self.toggle_pair())
        self.resolve_button.changed.connect(lambda *_: self.resolve())
        self.fuse_button.changed.connect(lambda *_: self.fuse())
        self.save_button.changed.connect(lambda *_: self.save_mosaic())
        self.report_button.changed.connect(lambda *_: self.save_report())
        table.itemSelectionChanged.connect(self._row_selected)
        self.listen(self.viewer.layers.events.removed, self._forget_removed)
        self._show_source_controls()
        self.reset_choices()
        self.say("Choose the tile layers (each placed by its translate) or load tiles from files, then Register.")

    def reset_choices(self, *_: Any) -> None:
        super().reset_choices()
        if not self.closed:  # the controls live on the tabs' pages, not in the body
            for page in getattr(self, "_pages", {}).values():
                page.reset_choices()

    # --- inputs ----------------------------------------------------------------------------------
    def _show_source_controls(self) -> None:
        source = self.source.value
        self.layers.visible = source == LAYERS
        self.stack.visible = source == STACK
        self.path_row.visible = source in (GRID, CSV, OME)
        self.load_button.visible = source != LAYERS
        for widget in self.grid_rows:
            widget.visible = source in (STACK, GRID)

    def _grid(self) -> dict:
        return {"rows": int(self.rows.value), "cols": int(self.cols.value), "order": self.order.value,
                "overlap": float(self.overlap.value)}

    @action
    def browse(self) -> None:
        """Ask for the tiles' folder (a grid) or file (CSV, OME) with a file dialog."""
        if self.source.value == GRID:
            path = QFileDialog.getExistingDirectory(self.native, "Folder of tiles")
        else:
            path, _ = QFileDialog.getOpenFileName(self.native, "Tile positions")
        if path:
            self.path.value = path

    @action
    def load(self) -> Any:
        """Read the tiles (in a worker) and add each as a lazy layer placed by its stage or grid position."""
        source = self.source.value
        if source == LAYERS:
            raise ValueError("the tiles are layers already: choose them under 'tile layers'")
        stack, inputs = None, ()
        if source == STACK:
            layer = self.stack.value
            if layer is None:
                raise ValueError("choose the stack layer that holds the tiles")
            stack = {"data": _layers.source_data(layer), "scale": tuple(float(s) for s in layer.scale),
                     "translate": tuple(float(t) for t in layer.translate),
                     "units": tuple(str(u) for u in layer.units), "axis_labels": tuple(layer.axis_labels),
                     "name": layer.name}
            what, inputs = repr(layer.name), (layer,)
        elif not self.path.value.strip():
            raise ValueError("give the tiles' folder, pattern or file in 'path'")
        else:
            what = repr(self.path.value.strip())
        return self.launch(load_tiles, source, self.path.value, self._grid(), stack, on_result=self._show_loaded,
                           description=f"Reading tiles from {what}", inputs=inputs)

    def _show_loaded(self, loaded: dict):
        """Add a layer per tile (one per turn of the event loop), then choose them as the tiles."""
        tiles: Tiles = loaded["tiles"]
        files = tiles.metadata.get("files") or [None] * len(tiles)
        lead = len(tiles.leading_shape)
        offset = np.asarray(loaded["offset"], dtype=float)
        added = []
        for k, (data, name) in enumerate(zip(tiles.data, tiles.names)):
            translate = tuple(offset + np.r_[np.zeros(lead), tiles.positions[k] * np.asarray(tiles.pixel_size)])
            metadata = {"source": str(files[k])} if files[k] is not None else {}
            added.append(self.viewer.add_image(
                data, name=name, scale=tiles.scale, translate=translate, units=tiles.units,
                axis_labels=tiles.axis_labels, contrast_limits=loaded["contrast_limits"], metadata=metadata,
                blending="translucent_no_depth",
            ))
            yield
        self.source.value = LAYERS
        self.reset_choices()
        self.layers.value = added
        self._show_outlines(tiles, tiles.positions, None)
        self.say(f"Loaded {len(tiles)} tiles ({tiles.metadata.get('positions')} positions). Register them next.")

    def chosen_tiles(self) -> tuple[Tiles, list]:
        """The chosen tile layers as :class:`Tiles` (positions from their translates); raises a clear error."""
        layers = [layer for layer in self.layers.value if layer in self.viewer.layers]
        if not layers:
            raise ValueError("no tiles: choose the tile layers (or load tiles from files)")
        if len(layers) < 2:
            raise ValueError(f"stitching needs at least two tiles; only {layers[0].name!r} is chosen")
        data = [_layers.source_data(layer) for layer in layers]
        first = layers[0]
        for layer, array in zip(layers[1:], data[1:]):
            if tuple(array.shape) != tuple(data[0].shape) or np.dtype(array.dtype) != np.dtype(data[0].dtype):
                raise ValueError(
                    f"the tiles must share one shape and dtype: {layer.name!r} is {tuple(array.shape)} "
                    f"{np.dtype(array.dtype)}, {first.name!r} is {tuple(data[0].shape)} {np.dtype(data[0].dtype)}"
                )
            if not np.allclose(layer.scale, first.scale):
                raise ValueError(f"the tiles must share one pixel size: {layer.name!r} has scale "
                                 f"{tuple(map(float, layer.scale))}, {first.name!r} {tuple(map(float, first.scale))}")
        if data[0].ndim < 2 or min(data[0].shape[-2:]) < 8:
            raise ValueError(f"tiles of shape {tuple(data[0].shape)} are too small to register (at least 8 x 8)")
        units = tuple(str(u) for u in first.units)
        tiles = tiles_from_translates(data, np.array([layer.translate for layer in layers], dtype=float),
                                      scale=tuple(first.scale), units=units, axis_labels=tuple(first.axis_labels),
                                      names=[layer.name for layer in layers])
        files = [layer.metadata.get("source") for layer in layers]
        if all(isinstance(f, str) for f in files):
            tiles.metadata["files"] = files
        return tiles, layers

    def _registration_params(self, tiles: Tiles, first: Any) -> dict:
        plane = _layers.shown_index(self.viewer, first) if tiles.leading_shape else None
        return {"plane": plane, "margin": int(self.margin.value) or None, "refine": bool(self.refine.value),
                "min_confidence": float(self.min_confidence.value), "max_residual": float(self.max_residual.value)}

    # --- registration ----------------------------------------------------------------------------
    @action
    def register(self) -> Any:
        """Measure every overlap and place all tiles (in a worker, with progress and Cancel)."""
        tiles, layers = self.chosen_tiles()
        params = self._registration_params(tiles, layers[0])
        return self.launch(register_task, tiles, params, on_result=lambda layout: self._registered(layout, layers),
                           description=f"Registering {len(tiles)} tiles", inputs=layers)

    def _registered(self, layout: Layout, layers: list) -> None:
        self.tile_layers, self.excluded = layers, set()
        self.show_layout(layout)
        self.tabs.setCurrentIndex(1)
        if self.seams_layer is not None:
            self.viewer.layers.selection.active = self.seams_layer

    @action
    def resolve(self) -> Any:
        """Solve again from the measurements: the thresholds above and the excluded pairs (in a worker)."""
        if self.solved is None:
            raise ValueError("register the tiles first")
        params = {"exclude": sorted(self.excluded), "min_confidence": float(self.min_confidence.value),
                  "max_residual": float(self.max_residual.value)}
        return self.launch(solve_task, self.solved, params, on_result=self.show_layout,
                           description="Solving again", inputs=self.tile_layers)

    @action
    def toggle_pair(self, pair: int | None = None) -> Any:
        """Exclude the selected pair (or take an excluded one back) and solve again."""
        if self.solved is None:
            raise ValueError("register the tiles first")
        if self.running:  # the exclusions must stay those of the solve shown
            raise ValueError("a computation is running; wait for it or Cancel it first")
        k = self.selected if pair is None else int(pair)
        if k is None or not 0 <= k < len(self.solved.pairs):
            raise ValueError("select a pair first: click its row in the table or its seam in the viewer")
        i, j = (int(v) for v in self.solved.pairs.index[k])
        self.excluded.symmetric_difference_update({(i, j)})
        return self.resolve()

    def show_layout(self, layout: Layout) -> None:
        """Show a solved layout: seams, outlines, table, legend, summary."""
        self.solved = layout
        table = layout.table()
        limit = residual_limit(layout.residual[layout.kept])
        self._show_seams(layout, limit)
        self._show_outlines(layout.tiles, layout.positions, layout.fallback)
        self.legend_high.value = f"{limit:g} px"
        rows = []
        for k in range(len(layout.pairs)):
            shift = (table["shift_y"][k], table["shift_x"][k])
            rows.append([f"{table['name_i'][k]} - {table['name_j'][k]}", _cell(table["residual"][k], 3),
                         _cell(table["confidence"][k], 3), table["status"][k], _cell(shift[0], 2),
                         _cell(shift[1], 2)])
        native = self.table
        native.blockSignals(True)
        native.clearContents()
        native.setRowCount(len(rows))
        for k, (cells, status) in enumerate(zip(rows, layout.status)):
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if COLUMNS[column] not in ("pair", "status"):  # numbers
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if status != KEPT:
                    item.setForeground(QColor(EXCLUDED_COLOUR if status == EXCLUDED else REJECTED_COLOUR))
                native.setItem(k, column, item)
        native.blockSignals(False)
        fit_table(native)
        self.summary.value = layout.summary()
        stale = ""
        if self.mosaic_layer is not None:
            stale = " The mosaic shows the previous solve: Fuse again."
            self.mosaic_info.value = f"{self._mosaic_text}\nStale: the pairs were solved again; Fuse to update it."
        self.say(f"Solved: {int(layout.kept.sum())} of {len(layout.pairs)} pairs kept.{stale}")
        if self.selected is not None and self.selected < len(layout.pairs):
            self.select_pair(self.selected)

    def _frame(self, tiles: Tiles, origin: np.ndarray) -> dict:
        """Physical frame of 2-D layers in mosaic pixels whose first pixel is the stage-frame pixel ``origin``."""
        return {"scale": tuple(tiles.pixel_size), "translate": tuple(float(o * s) for o, s in
                                                                     zip(origin, tiles.pixel_size)),
                "units": tuple(tiles.spatial_units), "axis_labels": tuple(tiles.axis_labels[-2:]),
                "rotate": np.eye(2), "shear": np.eye(2), "affine": np.eye(3)}

    def _source_layer(self) -> Any:
        layers = [layer for layer in (self.tile_layers or self.layers.value) if layer in self.viewer.layers]
        return layers[0] if layers else None

    def _show_seams(self, layout: Layout, limit: float) -> None:
        source = self._source_layer()
        if source is None:
            return
        seams = layout.seams()
        width = max(2.0, 0.025 * min(layout.tiles.tile_shape))
        features = {"pair": np.arange(len(layout.pairs)), "residual": seams["residual"],
                    "confidence": seams["confidence"], "status": np.asarray(seams["status"], dtype=object)}
        colours = seam_colours(layout, self.excluded, limit)
        name = f"{self.base_name()} seams"
        self.seams_layer = self.publish(list(seams["lines"]), source=source, name=name, kind="shapes", role="seams",
                                        frame=self._frame(layout.tiles, layout.origin), shape_type="line",
                                        edge_width=width, edge_color=colours if len(colours) else "white",
                                        features=features, opacity=1.0)
        layer = self.seams_layer
        if len(colours):
            layer.edge_color = colours
        if self._pick not in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.append(self._pick)

    def _show_outlines(self, tiles: Tiles, positions: np.ndarray, fallback: Any) -> None:
        source = self._source_layer()
        if source is None:
            return
        origin, _ = mosaic_geometry(positions, tiles.tile_shape)
        M, N = tiles.tile_shape
        corners = positions - origin
        outlines = [np.array([[y, x], [y, x + N], [y + M, x + N], [y + M, x]]) for y, x in corners]
        placed = np.zeros(len(tiles), bool) if fallback is None else np.asarray(fallback, bool)
        colours = [STAGE_COLOUR if stage else REGISTERED_COLOUR for stage in placed]
        self.outlines_layer = self.publish(
            outlines, source=source, name=f"{self.base_name()} outlines", kind="shapes", role="outlines",
            frame=self._frame(tiles, origin), shape_type="rectangle", edge_width=max(1.0, 0.006 * min(M, N)),
            edge_color=colours, face_color="transparent", features={"tile": list(tiles.names)},
            text={"string": "{tile}", "color": REGISTERED_COLOUR, "size": 9, "anchor": "upper_left"},
        )
        self.outlines_layer.edge_color = colours

    def base_name(self) -> str:
        """The name the tool's layers start with: what the tile names share, else ``"tiles"``."""
        names = [layer.name for layer in (self.tile_layers or self.layers.value)]
        common = os.path.commonprefix(names).rstrip(" _-[(.0123456789") if len(names) > 1 else ""
        return common or "tiles"

    # --- choosing a pair -------------------------------------------------------------------------
    def _row_selected(self) -> None:
        rows = {index.row() for index in self.table.selectedIndexes()}
        if len(rows) == 1:
            self.select_pair(rows.pop(), from_table=True)

    def select_pair(self, k: int, from_table: bool = False) -> None:
        """Select pair ``k``: its row, its seam, and what is known about it in the status line."""
        if self.solved is None or not 0 <= k < len(self.solved.pairs):
            return
        self.selected = int(k)
        if not from_table:
            native = self.table
            native.blockSignals(True)
            native.selectRow(k)
            native.blockSignals(False)
        layer = self.seams_layer
        if layer is not None and layer in self.viewer.layers and k < len(layer.data):
            layer.selected_data = {k}
        table = self.solved.table()
        i, j = self.solved.pairs.index[k]
        excluded = (int(i), int(j)) in self.excluded
        self.exclude_button.text = "Include pair" if excluded else "Exclude pair"
        self.say(f"{table['name_i'][k]} - {table['name_j'][k]}: shift ({table['shift_y'][k]:.2f}, "
                 f"{table['shift_x'][k]:.2f}) px, confidence {table['confidence'][k]:.3f}, residual "
                 f"{table['residual'][k]:.3f} px, {table['status'][k]}.")

    def pick_seam(self, world: Any) -> int | None:
        """The pair whose seam lies nearest the world point ``world`` (within its overlap), selected; or None."""
        layer = self.seams_layer
        if self.solved is None or layer is None or layer not in self.viewer.layers or not len(layer.data):
            return None
        point = np.asarray(layer.world_to_data(world), dtype=float)[-2:]
        lines = np.asarray([np.asarray(line)[:, -2:] for line in layer.data], dtype=float)
        start, direction = lines[:, 0], lines[:, 1] - lines[:, 0]
        length = np.maximum((direction**2).sum(axis=1), 1e-12)
        t = np.clip(((point - start) * direction).sum(axis=1) / length, 0.0, 1.0)
        distance = np.linalg.norm(start + t[:, None] * direction - point, axis=1)
        overlap = np.asarray(self.solved.seams()["rectangles"])
        half_width = np.maximum((overlap.max(axis=1) - overlap.min(axis=1)).min(axis=1) / 2, layer.edge_width)
        k = int(np.argmin(distance))
        if distance[k] > half_width[k]:
            return None
        self.select_pair(k)
        return k

    def _seam_click(self, layer: Any, event: Any):
        """A click (not a drag) on the seams layer selects the nearest seam."""
        if event.type != "mouse_press":
            return
        position = tuple(event.position)
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = True
            yield
        if not dragged:
            self._guarded_pick(position)

    @action
    def _guarded_pick(self, position: tuple) -> None:
        self.pick_seam(position)

    @action
    def save_report(self, path: str | None = None) -> tuple | None:
        """Write the pairs table to ``path`` and the solved positions next to it (``*_positions.csv``).

        Asks for the path when none is given, and before replacing either file.
        """
        if self.solved is None:
            raise ValueError("register the tiles first")
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self.native, "Save the pairs table", f"{self.base_name()}_pairs.csv",
                                                  "CSV (*.csv)", options=QFileDialog.Option.DontConfirmOverwrite)
        if not path:
            self.say("Save report: no path given; nothing written")
            return None
        pairs = Path(path) if str(path).lower().endswith(".csv") else Path(f"{path}.csv")
        positions = pairs.with_name(f"{pairs.stem.removesuffix('_pairs')}_positions.csv")
        existing = [str(p) for p in (pairs, positions) if p.exists()]
        if existing and not self.confirm(f"{' and '.join(existing)} exist(s). Replace?"):
            self.say("Save report: nothing written")
            return None
        written = self.solved.to_csv(pairs), self.solved.positions_to_csv(positions)
        self.say(f"Wrote the pairs to {written[0]} and the positions to {written[1]}")
        return written

    # --- fusion and writing ------------------------------------------------------------------------
    def _fuse_params(self) -> dict:
        return {"blend": self.blend.value, "order": INTERPOLATIONS[self.interpolation.value],
                "flatfield": None if self.flatfield.value == "none" else self.flatfield.value}

    @action
    def fuse(self) -> Any:
        """Add the lazy mosaic of the current solve as ``"<name> mosaic"`` (built in a worker)."""
        if self.solved is None:
            raise ValueError("register the tiles first")
        name = f"{self.base_name()} mosaic"
        params = self._fuse_params()
        layout, layers = self.solved, list(self.tile_layers)
        return self.launch(fuse_task, layout, params, name,
                           on_result=lambda image: self._show_mosaic(image, layout, layers, params),
                           description="Fusing the mosaic", inputs=layers)

    def _show_mosaic(self, image: Any, layout: Layout, layers: list, params: dict) -> None:
        source = layers[0]
        step = {"op": "stitch", "params": {
            "tiles": [layer.name for layer in layers],
            **{k: v for k, v in layout.settings.items() if k != "exclude"},
            "exclude": [list(pair) for pair in layout.settings.get("exclude", [])],
            **params,
        }, "result": {"summary": layout.summary(), "positions": layout.positions.round(4).tolist()}}
        frame = {"scale": tuple(image.scale), "translate": tuple(image.translate),
                 "units": tuple(image.units), "axis_labels": tuple(image.axis_labels),
                 "rotate": np.eye(image.ndim), "shear": np.eye(image.ndim), "affine": np.eye(image.ndim + 1)}
        contrast = tuple(source.contrast_limits)
        layer = self.publish(image.data, source=source, name=image.name, steps=[step], frame=frame,
                             colormap=source.colormap.name, contrast_limits=contrast)
        metadata = {key: value for key, value in dict(layer.metadata).items() if key not in ("source", "series")}
        metadata.update({key: value for key, value in image.metadata.items() if key != "source"})
        metadata["stacklab"]["version"] = __version__
        layer.metadata = metadata
        overlays = [other for other in (self.seams_layer, self.outlines_layer) if other in self.viewer.layers]
        if overlays:  # the seams and outlines stay visible on top of the mosaic
            lowest, index = min(self.viewer.layers.index(other) for other in overlays), self.viewer.layers.index(layer)
            if index > lowest:
                self.viewer.layers.move(index, lowest)
        self.mosaic, self.mosaic_layer = image, layer
        size = " x ".join(f"{n * s:.4g}" for n, s in zip(image.shape[-2:], image.scale[-2:]))
        self._mosaic_text = (
            f"{image.name!r}: {' x '.join(map(str, image.shape))} pixels ({size} {image.units[-1]}), "
            f"{np.dtype(image.dtype).name}, blend {params['blend']}, computed chunk by chunk when shown or saved. "
            f"Solve: {layout.summary()}"
        )
        self.mosaic_info.value = self._mosaic_text
        self.say(f"Fused {image.name!r}. Save mosaic... writes it to OME-Zarr (multiscale) or TIFF.")

    def ask_path(self) -> str:
        """Ask where to write the mosaic ('' when the user cancels)."""
        path, _ = QFileDialog.getSaveFileName(
            self.native, "Save mosaic", f"{self.base_name()}_mosaic.zarr",
            "OME-Zarr (*.zarr *.ome.zarr);;TIFF (*.tif *.tiff)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        return path

    def confirm(self, text: str) -> bool:
        """Ask a yes/no question (default: no)."""
        answer = QMessageBox.question(self.native, self.title, text, QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    @action
    def save_mosaic(self, path: str | None = None) -> Any:
        """Write the fused mosaic (asks for a path, and before replacing anything) in a worker."""
        if self.mosaic is None or self.mosaic_layer not in self.viewer.layers:
            raise ValueError("fuse the mosaic first")
        path = self.ask_path() if path is None else str(path)
        if not path:
            self.say("Save mosaic: no path given; nothing written")
            return None
        if not path.lower().endswith((".zarr", ".tif", ".tiff")):
            raise ValueError(f"write the mosaic to a .zarr folder or a .tif file, got {path!r}")
        overwrite = False
        if os.path.lexists(path):
            if not self.confirm(f"{path} exists. Replace it?"):
                self.say(f"Save mosaic: {path} exists; nothing written")
                return None
            overwrite = True
        self._stop_write = threading.Event()
        image = self.mosaic
        image.metadata.setdefault("stacklab", dict(self.mosaic_layer.metadata.get("stacklab", {})))
        return self.launch(write_task, path, image, overwrite, self._stop_write,
                           on_result=lambda written: self.say(f"Wrote the mosaic to {written}"),
                           description=f"Writing the mosaic to {path}")

    def cancel(self) -> None:
        if self._stop_write is not None:
            self._stop_write.set()
        super().cancel()

    # --- housekeeping ------------------------------------------------------------------------------
    def _forget_removed(self, event: Any) -> None:
        # ``==``, not ``is``: napari hands a plugin's tool proxies of its layers, one per access
        layer = event.value
        if layer == self.seams_layer:
            self.seams_layer = None
        if layer == self.outlines_layer:
            self.outlines_layer = None
        if layer == self.mosaic_layer:
            self.mosaic_layer, self.mosaic = None, None
        if any(layer == tile for tile in self.tile_layers):  # the solve no longer matches the layers
            self.solved, self.tile_layers, self.selected = None, [], None
            if not self.running:
                self.say(f"{layer.name!r} was removed: register the tiles again")

    def on_close(self) -> None:
        if self._stop_write is not None:
            self._stop_write.set()
        layer = self.seams_layer
        if layer is not None and self._pick in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.remove(self._pick)
