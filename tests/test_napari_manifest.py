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


def _menu_parents(contributions: dict) -> dict:
    """``{command: napari menu}``: each command's napari menu, through the plugin's submenus."""
    parent_of = {item["submenu"]: menu for menu, items in contributions["menus"].items()
                 for item in items if "submenu" in item}
    return {item["command"]: parent_of.get(menu, menu) for menu, items in contributions["menus"].items()
            for item in items if "command" in item}


def test_every_operation_has_command_widget_and_menu_and_nothing_else(committed):
    contributions = committed["contributions"]
    commands = {c["id"]: c for c in contributions["commands"]}
    widget_entries = {w["command"]: w["display_name"] for w in contributions["widgets"]}
    menu_entries = _menu_parents(contributions)
    ops = catalog.operations()
    for op in ops:
        command = commands[ID + op.name]
        tool = _contrib.OPERATION_TOOLS.get(op.name)
        assert command["python_name"] == (tool or f"napari_stacklab._napari.widgets:make_{op.name}_widget")
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
    assert all(menu.startswith("napari/layers/") for menu in menu_entries.values())


def test_widget_names_are_unique_and_short():
    """No two entries read alike (the Plugins menu and dock titles show them side by side)."""
    titles = [w["display_name"] for w in manifest.build_manifest()["contributions"]["widgets"]]
    stems = [title.split(" (")[0].strip().lower() for title in titles]
    assert len(stems) == len(set(stems)), sorted(t for t in stems if stems.count(t) > 1)
    assert max(map(len, titles)) <= 45, max(titles, key=len)
    assert sum(title.lower().startswith("drift correction") for title in titles) == 1


def test_layers_menus_are_grouped_by_family_in_submenus(committed):
    contributions = committed["contributions"]
    submenus = {s["id"]: s["label"] for s in contributions["submenus"]}
    menus = contributions["menus"]
    families = {ID + op.name: op.family for op in catalog.operations()}
    for submenu, label in submenus.items():
        members = {families[item["command"]] for item in menus[submenu]}
        assert len(members) == 1 and label == manifest.FAMILY_LABELS[members.pop()]  # one family per submenu
        assert len(menus[submenu]) >= manifest.SUBMENU_MIN
    for menu, items in menus.items():
        assert len(items) <= 30, f"{menu} lists {len(items)} entries"
        grouped = {families[entry["command"]] for sub in items if "submenu" in sub for entry in menus[sub["submenu"]]}
        top = {families.get(item["command"]) for item in items if "command" in item}
        assert not grouped & top, f"{menu}: a family both in a submenu and at the top"
    filter_items = menus["napari/layers/filter"]
    assert {"submenu": f"{ID}filter.filters"} in filter_items and {"command": f"{ID}prepare_image"} in filter_items
    assert menus[f"{ID}filter.filters"][0] == {"command": f"{ID}gaussian"}


def test_napari_builds_the_grouped_layers_menus(make_napari_viewer):
    from app_model.types import SubmenuItem
    from napari._app_model import get_app_model

    make_napari_viewer()
    app = get_app_model()
    filter_menu = app.menus.get_menu("napari/layers/filter")
    labels = {item.title for item in filter_menu if isinstance(item, SubmenuItem)}
    assert {"Filters", "Morphology", "Denoising", "Preprocessing"} <= labels
    filters = [item.command.id for item in app.menus.get_menu(f"{ID}filter.filters")]
    assert f"{ID}gaussian" in filters and f"{ID}bandpass" in filters


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
