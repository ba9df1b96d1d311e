"""napari.yaml is generated from the registry and ``_contrib``, and stays in step with both."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys

import pytest
import yaml

from napari_stacklab import catalog
from napari_stacklab._napari import _contrib, manifest, widgets

ID = f"{_contrib.NAME}."


@pytest.fixture(scope="module")
def committed():
    return yaml.safe_load(manifest.MANIFEST_PATH.read_text(encoding="utf-8"))


def test_committed_manifest_is_the_generated_one():
    text = manifest.MANIFEST_PATH.read_text(encoding="utf-8")
    assert text == manifest.render(), (
        "napari.yaml is out of date with the registry; run `python -m napari_stacklab._napari.manifest`"
    )
    assert manifest.main(["--check"]) == 0


def test_check_flags_a_stale_manifest(tmp_path, capsys):
    stale = tmp_path / "napari.yaml"
    stale.write_text(manifest.render().replace("widgets:", "widgets: []\n  old:", 1), encoding="utf-8")
    assert manifest.main(["--check", "--path", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert manifest.main(["--path", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == manifest.render()


def test_package_ships_the_manifest():
    import napari_stacklab

    from importlib.resources import files

    shipped = files(napari_stacklab).joinpath("napari.yaml").read_text(encoding="utf-8")
    assert shipped == manifest.MANIFEST_PATH.read_text(encoding="utf-8")


@pytest.mark.skipif(shutil.which("npe2") is None, reason="npe2 command line not installed")
def test_npe2_validate_passes():
    done = subprocess.run(
        ["npe2", "validate", str(manifest.MANIFEST_PATH)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in done.stdout


def test_every_operation_has_command_widget_and_menu_and_nothing_else(committed):
    contributions = committed["contributions"]
    commands = {c["id"]: c for c in contributions["commands"]}
    widget_entries = {w["command"]: w["display_name"] for w in contributions["widgets"]}
    menu_entries = {
        item["command"]: menu for menu, items in contributions["menus"].items() for item in items
    }
    ops = catalog.operations()
    for op in ops:
        command = commands[ID + op.name]
        assert command["python_name"] == f"napari_stacklab._napari.widgets:make_{op.name}_widget"
        assert command["title"] == op.title
        assert widget_entries[ID + op.name] == op.title
        assert menu_entries[ID + op.name] == op.menu_id
    contrib_ids = {
        ID + entry["id"]
        for entry in (*_contrib.READERS, *_contrib.WRITERS, *_contrib.SAMPLES, *_contrib.TOOLS)
    }
    assert set(commands) == {ID + op.name for op in ops} | contrib_ids
    assert set(widget_entries) == {ID + op.name for op in ops} | {ID + t["id"] for t in _contrib.TOOLS}
    tool_menus = {ID + t["id"] for t in _contrib.TOOLS if t["menu"]}
    assert set(menu_entries) == {ID + op.name for op in ops} | tool_menus
    titles = [w["display_name"] for w in contributions["widgets"]]
    assert len(titles) == len(set(titles)), "two widgets share a display name"
    assert all(menu.startswith("napari/layers/") for menu in contributions["menus"])


def test_every_operation_widget_entry_point_takes_the_viewer():
    """napari passes the viewer to a dock widget only through a ``napari_viewer`` parameter."""
    for op in catalog.operations():
        factory = getattr(widgets, manifest.widget_factory_name(op.name))
        assert issubclass(factory, widgets.OperationWidget)
        assert "napari_viewer" in inspect.signature(factory.__init__).parameters
        assert getattr(widgets, manifest.widget_factory_name(op.name)) is factory  # one class per op
    with pytest.raises(AttributeError):
        widgets.make_no_such_operation_widget


def test_manifest_modules_do_not_import_qt():
    code = (
        "import sys; import napari_stacklab._napari.manifest as m; m.build_manifest(); "
        "print(any(k.startswith(('napari.', 'qtpy', 'PyQt5', 'magicgui')) for k in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
