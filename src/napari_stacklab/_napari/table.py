"""Dock widget for a measurement table: the table, a plot of its columns, Save CSV.

Operations whose output is a ``"table"`` (a dict of equally long 1-D
columns) are shown here; the same table is attached to a Labels input layer
as its ``features``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import _backend
from .plot import ColumnPlot

__all__ = ["TableWidget", "as_frame"]

_HISTOGRAM = "(histogram)"


def as_frame(table: Any) -> pd.DataFrame:
    """A DataFrame from a dict of 1-D columns (NumPy, CuPy or computed dask arrays) or a DataFrame."""
    if isinstance(table, pd.DataFrame):
        return table
    columns = {str(k): np.asarray(_backend.materialize(v)) for k, v in dict(table).items()}
    lengths = {len(v) for v in columns.values() if v.ndim == 1}
    if len(lengths) > 1 or any(v.ndim != 1 for v in columns.values()):
        raise ValueError("a table must be a mapping of equally long 1-D columns")
    return pd.DataFrame(columns)


def fit_table(table: Any) -> None:
    """Make a Qt table fit its dock: columns the user can resize, the last one stretching, scrolling."""
    from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QSizePolicy

    header = table.horizontalHeader()
    table.resizeColumnsToContents()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    for column in range(table.columnCount()):
        header.resizeSection(column, min(header.sectionSize(column), 160))
    table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    table.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
    table.setMinimumHeight(120)


class TableWidget(QWidget):
    """A table with a column plot and a "Save CSV..." button.

    Parameters
    ----------
    table : dict of 1-D arrays or DataFrame
        The measurement table.
    title : str
        Shown above the table; also the default CSV file name.
    """

    #: Docks of stacklab share one tab group (see _tool.tabify_with_stacklab_docks).
    stacklab_dock = True

    def __init__(self, table: Any, title: str = "table", parent: Any = None) -> None:
        super().__init__(parent)
        self.title = title
        self.alive = True
        self.destroyed.connect(self._mark_dead)
        self.table_view = QTableWidget()
        self.x_column = QComboBox()
        self.y_column = QComboBox()
        self.save_button = QPushButton("Save CSV...")
        self.plot = ColumnPlot(self)

        controls = QHBoxLayout()
        for label, widget in (("x", self.x_column), ("y", self.y_column)):
            controls.addWidget(QLabel(label))
            controls.addWidget(widget)
        controls.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        heading = QLabel(title)
        heading.setWordWrap(True)
        layout.addWidget(heading)
        layout.addWidget(self.table_view)
        layout.addLayout(controls)
        layout.addWidget(self.plot)

        self.x_column.currentTextChanged.connect(self.update_plot)
        self.y_column.currentTextChanged.connect(self.update_plot)
        self.save_button.clicked.connect(self._save_dialog)
        self.frame = pd.DataFrame()
        self.set_table(table)

    def _mark_dead(self, *_: Any) -> None:
        self.alive = False

    def set_table(self, table: Any) -> None:
        """Show a new table (keeps the chosen plot columns when they still exist)."""
        self.frame = as_frame(table)
        frame = self.frame
        self.table_view.clear()
        self.table_view.setRowCount(len(frame))
        self.table_view.setColumnCount(len(frame.columns))
        self.table_view.setHorizontalHeaderLabels([str(c) for c in frame.columns])
        for j, column in enumerate(frame.columns):
            for i, value in enumerate(frame[column].to_numpy()):
                text = f"{value:.6g}" if isinstance(value, (float, np.floating)) else str(value)
                self.table_view.setItem(i, j, QTableWidgetItem(text))
        fit_table(self.table_view)
        numeric = [str(c) for c in frame.columns if np.issubdtype(frame[c].dtype, np.number)]
        x, y = self.x_column.currentText(), self.y_column.currentText()
        for combo, items, keep in ((self.x_column, numeric, x), (self.y_column, [_HISTOGRAM, *numeric], y)):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(items)
            if keep in items:
                combo.setCurrentText(keep)
            combo.blockSignals(False)
        if self.x_column.count() > 1 and not x:
            self.x_column.setCurrentIndex(1 if self.frame.columns[0] in ("label", "index") else 0)
        self.update_plot()

    def update_plot(self, *_: Any) -> None:
        """Histogram of the x column, or scatter of y against x."""
        x, y = self.x_column.currentText(), self.y_column.currentText()
        if not x:
            return
        if y in ("", _HISTOGRAM):
            self.plot.histogram(self.frame[x].to_numpy(), x)
        else:
            self.plot.scatter(self.frame[x].to_numpy(), self.frame[y].to_numpy(), x, y)

    def save_csv(self, path: str) -> None:
        """Write the table as CSV (one row per measured object)."""
        self.frame.to_csv(path, index=False)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save table as CSV", f"{self.title}.csv", "CSV (*.csv)")
        if path:
            self.save_csv(path)
