"""Export the steps recorded in a layer: as a recipe YAML file, or as a runnable Python script.

Every layer made by a stacklab operation or tool records how it was made in
``metadata["stacklab"]``; this dock shows that record as a recipe and saves
it, to be replayed headless with ``Recipe.load(path).run(data)`` or
``stacklab run recipe.yaml ...``. *Export as Python script* writes a script
that reads the layer's source file and replays every step with the public
API.

The dock also says how to keep the pixel size when opening and saving TIFFs,
and sets napari-stacklab as napari's reader for ``.tif`` through napari's own
settings (*Preferences > Plugins > File extension readers*).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import FileEdit, Label, PushButton, TextEdit

from .. import catalog
from ..recipe import Recipe
from . import _layers
from ._contrib import NAME
from ._tool import Tool, action, record_of
from .script import layer_script

__all__ = ["RecipeExportWidget", "TIFF_PATTERNS", "prefer_stacklab_reader"]

#: File-name patterns napari's reader preference is set for.
TIFF_PATTERNS = ("*.tif", "*.tiff")
SAVE_HINT = (
    "Saving: in File > Save Selected Layers pick the type 'napari-stacklab Save as TIFF (keeps dtype and "
    "pixel size)'; napari's own TIFF type, listed first, writes 1-pixel spacing."
)


def prefer_stacklab_reader() -> dict:
    """Make napari-stacklab napari's reader for ``.tif``/``.tiff`` (napari's settings); returns the mapping."""
    from napari.settings import get_settings

    readers = get_settings().plugins.extension2reader
    readers.update({pattern: NAME for pattern in TIFF_PATTERNS})
    get_settings().plugins.extension2reader = dict(readers)
    return dict(get_settings().plugins.extension2reader)


def _recipe_problem(steps: list[dict]) -> str | None:
    """Why these recorded steps cannot be a YAML recipe yet (``None`` when they can)."""
    for step in steps:
        if not _registered(step["op"]):
            return (f"the step {step['op']!r} is not a registry operation of this napari-stacklab version (a "
                    "record from another version?), so no recipe or script can replay it")
    return None


class RecipeExportWidget(Tool):
    """Choose a layer, read its recorded steps as YAML, save them as a recipe or a Python script."""

    title = "Export recipe"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.layer = self.chooser("layer", kinds=("image", "labels", "points", "shapes", "surface", "vectors",
                                                   "tracks"), allow_derived=True)
        self.yaml = TextEdit(label="recipe", value="")
        self.yaml.read_only = True
        self.path = FileEdit(label="file", mode="w", filter="*.yaml *.yml *.py")
        self.save_button = PushButton(text="Save recipe...")
        self.script_button = PushButton(text="Export as Python script...")
        self.reader_button = PushButton(text="Open .tif files with napari-stacklab")
        self.reader_button.tooltip = "sets napari's reader preference (Preferences > Plugins > File extension readers)"
        hint = Label(value=SAVE_HINT)
        hint.native.setWordWrap(True)
        self.add(self.layer, self.yaml, self.path, self.save_button, self.script_button, self.reader_button, hint)
        self.layer.changed.connect(self._show)
        self.save_button.changed.connect(lambda *_: self.save())
        self.script_button.changed.connect(lambda *_: self.save_script())
        self.reader_button.changed.connect(lambda *_: self.prefer_reader())
        self.listen(self.viewer.layers.events.moved, self.reset_choices)
        self.listen(self.viewer.layers.events.inserted, self._show)
        self.listen(self.viewer.layers.events.removed, self._show)
        self.reset_choices()
        self.layer.prefer(self.viewer.layers.selection.active)
        self._show()

    def recipe(self) -> Recipe:
        """The recipe recorded in the chosen layer (``ValueError`` when it cannot be one)."""
        layer = self.layer.value
        if layer is None:
            raise ValueError("there is no layer to export")
        problem = _recipe_problem(record_of(layer).get("steps") or [])
        if problem:
            raise ValueError(problem)
        return Recipe.from_metadata(layer.metadata)

    def _show(self, *_: Any) -> None:
        if self.closed:
            return
        layer = self.layer.value
        steps = record_of(layer).get("steps") if layer is not None else None
        self.script_button.enabled = bool(steps)
        try:
            recipe = self.recipe()
        except ValueError as exc:
            self.yaml.value = ""
            self.say(str(exc))
            self.save_button.enabled = False
            return
        self.yaml.value = recipe.to_yaml()
        self.say(f"{len(recipe)} step(s) from layer {record_of(layer).get('source')!r}")
        self.save_button.enabled = True

    @action
    def save(self, path: str | Path | None = None) -> Path | None:
        """Save the recipe to ``path`` (or the file box); asks before replacing a file."""
        recipe = self.recipe()
        path = self._target(path, (".yaml", ".yml"), "Save recipe", "recipe.yaml", "Recipe (*.yaml *.yml)")
        if path is None:
            return None
        try:
            saved = recipe.save(path)
        except FileExistsError:
            if not self._confirm_overwrite(path):
                self.say(f"not saved: {path.name} exists")
                return None
            saved = recipe.save(path, overwrite=True)
        self.say(f"saved {saved}")
        return saved

    def script(self) -> str:
        """The Python script reproducing the chosen layer from its source file."""
        layer = self.layer.value
        if layer is None:
            raise ValueError("there is no layer to export")
        inputs = {other.name: other.metadata["source"] for other in self.viewer.layers
                  if isinstance(other.metadata.get("source"), str) and not record_of(other).get("steps")}
        frame = _layers.spatial_kwargs(layer, layer.ndim)
        return layer_script(layer.metadata, name=layer.name, frame=frame, rgb=bool(getattr(layer, "rgb", False)),
                            inputs=inputs)

    @action
    def save_script(self, path: str | Path | None = None) -> Path | None:
        """Write :meth:`script` to ``path`` (or a file asked for); asks before replacing a file."""
        text = self.script()
        path = self._target(path, (".py",), "Export as Python script", "reproduce_layer.py", "Python (*.py)")
        if path is None:
            return None
        if path.exists() and not self._confirm_overwrite(path):
            self.say(f"not saved: {path.name} exists")
            return None
        path.write_text(text, encoding="utf-8")
        self.say(f"saved {path}: run it with python {path.name} OUTPUT.tif")
        return path

    @action
    def prefer_reader(self) -> dict:
        """Set napari-stacklab as napari's reader for TIFF files."""
        readers = prefer_stacklab_reader()
        self.say("napari now opens .tif/.tiff with napari-stacklab (pixel size and units kept); change it in "
                 "Preferences > Plugins. " + SAVE_HINT)
        return readers

    def _target(self, path: str | Path | None, suffixes: tuple, caption: str, default: str,
                pattern: str) -> Path | None:
        if path is None:
            text = str(self.path.value or "").strip()
            path = Path(text) if text and text != "." and Path(text).suffix in suffixes else None
        path = Path(path) if path is not None else None
        if path is None or path.is_dir():
            path = self._ask_path(caption, default, pattern)
            if path is None:
                return None
        return path if path.suffix in suffixes else path.with_suffix(suffixes[0])

    def _ask_path(self, caption: str, default: str, pattern: str) -> Path | None:
        from qtpy.QtWidgets import QFileDialog

        name, _ = QFileDialog.getSaveFileName(self.native, caption, default, pattern)
        return Path(name) if name else None

    def _confirm_overwrite(self, path: Path) -> bool:
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self.native, "Replace file?", f"{path} exists. Replace it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes


def _registered(name: str) -> bool:
    try:
        catalog.get(name)
    except KeyError:
        return False
    return True
