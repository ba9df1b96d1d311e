"""Export the steps recorded in a layer as a recipe YAML file.

Every layer made by a stacklab operation records how it was made in
``metadata["stacklab"]``; this dock widget shows that record as a recipe and
saves it, to be replayed headless with ``Recipe.load(path).run(data)`` or
``stacklab run recipe.yaml ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton, TextEdit
from napari.utils import notifications

from ..recipe import PROVENANCE_KEY, Recipe

__all__ = ["RecipeExportWidget"]


class RecipeExportWidget(Container):
    """Choose a layer, read its recorded steps as YAML, save them as a recipe file."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.layer = ComboBox(label="layer", choices=self._choices)
        self.yaml = TextEdit(label="recipe", value="")
        self.yaml.read_only = True
        self.path = FileEdit(label="file", mode="w", filter="*.yaml *.yml")
        self.save_button = PushButton(text="Save recipe...")
        self.status = Label(value="")
        self.extend([self.layer, self.yaml, self.path, self.save_button, self.status])
        self.layer.changed.connect(self._show)
        self.save_button.changed.connect(lambda *_: self.save())
        for event in ("inserted", "removed", "moved"):
            getattr(self.viewer.layers.events, event).connect(self._layers_changed)
        self.native.destroyed.connect(self._disconnect)
        self.reset_choices()
        active = self.viewer.layers.selection.active
        if active is not None and active in self.viewer.layers:
            self.layer.value = active
        self._show()

    def _choices(self, *_: Any) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self.viewer.layers]

    def _layers_changed(self, *_: Any) -> None:
        self.reset_choices()
        self._show()

    def _disconnect(self, *_: Any) -> None:
        for event in ("inserted", "removed", "moved"):
            getattr(self.viewer.layers.events, event).disconnect(self._layers_changed)

    def recipe(self) -> Recipe:
        """The recipe recorded in the chosen layer (``ValueError`` when it records none)."""
        layer = self.layer.value
        if layer is None:
            raise ValueError("there is no layer to export")
        return Recipe.from_metadata(layer.metadata)

    def _show(self, *_: Any) -> None:
        try:
            recipe = self.recipe()
        except ValueError as exc:
            self.yaml.value = ""
            self.status.value = str(exc)
            self.save_button.enabled = False
            return
        record = self.layer.value.metadata[PROVENANCE_KEY]
        self.yaml.value = recipe.to_yaml()
        self.status.value = f"{len(recipe)} step(s) from layer {record.get('source')!r}"
        self.save_button.enabled = True

    def save(self, path: str | Path | None = None) -> Path | None:
        """Save the recipe to ``path`` (or the file box); asks before replacing a file."""
        path = Path(path) if path is not None else Path(self.path.value)
        if not str(path) or path == Path(".") or path.is_dir():
            path = self._ask_path()
            if path is None:
                return None
        if path.suffix not in (".yaml", ".yml"):
            path = path.with_suffix(".yaml")
        try:
            recipe = self.recipe()
            try:
                saved = recipe.save(path)
            except FileExistsError:
                if not self._confirm_overwrite(path):
                    self.status.value = f"not saved: {path.name} exists"
                    return None
                saved = recipe.save(path, overwrite=True)
        except (OSError, ValueError) as exc:
            self.status.value = f"not saved: {exc}"
            notifications.show_error(f"Recipe not saved: {exc}")
            return None
        self.status.value = f"saved {saved}"
        return saved

    def _ask_path(self) -> Path | None:
        from qtpy.QtWidgets import QFileDialog

        name, _ = QFileDialog.getSaveFileName(self.native, "Save recipe", "recipe.yaml", "Recipe (*.yaml *.yml)")
        return Path(name) if name else None

    def _confirm_overwrite(self, path: Path) -> bool:
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self.native, "Replace recipe?", f"{path} exists. Replace it?",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No,
        )
        return answer == QMessageBox.Yes
