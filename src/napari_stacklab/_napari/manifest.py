"""Build ``napari.yaml`` from the operation registry and ``_contrib``.

npe2 reads the manifest statically, so it is generated, committed, and kept
in step by a test that compares the file with :func:`build_manifest`::

    python -m napari_stacklab._napari.manifest          # rewrite napari.yaml
    python -m napari_stacklab._napari.manifest --check  # exit 1 if out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .. import catalog, registry
from . import _contrib

MANIFEST_PATH = Path(__file__).resolve().parents[3] / "napari.yaml"


def widget_factory_name(op_name: str) -> str:
    """Name of the module-level factory in ``_napari.widgets`` for an operation."""
    return f"make_{op_name}_widget"


def _command(entry_id: str, python_name: str, title: str) -> dict:
    return {"id": f"{_contrib.NAME}.{entry_id}", "python_name": python_name, "title": title}


#: Submenu labels of the operation families.
FAMILY_LABELS = {
    "filters": "Filters", "segment": "Segmentation", "stem": "4D-STEM", "morphology": "Morphology",
    "measure": "Measurements", "denoise": "Denoising", "phase": "Phase", "register": "Registration",
    "preprocess": "Preprocessing", "equalize": "Equalize", "matting": "Matting",
}
#: A family gets its own submenu in a napari menu shared with other families once it has this many entries.
SUBMENU_MIN = 3


def _menu_groups(entries: list[tuple]) -> tuple[list[dict], dict]:
    """Submenus and menu items: within a napari menu that several families share, one submenu per family.

    ``entries`` are ``(command id, menu id, family or None)``; tools (family
    ``None``) stay at the top of their napari menu, as do families with few
    entries there and families alone in their menu.
    """
    by_menu: dict[str, list[tuple]] = {}
    for command, menu, family in entries:
        if menu:
            by_menu.setdefault(menu, []).append((command, family))
    submenus, menus = [], {}
    for menu, items in by_menu.items():
        families = [f for f in dict.fromkeys(f for _, f in items) if f is not None]
        counts = {f: sum(1 for _, g in items if g == f) for f in families}
        grouped = {f for f in families if len(families) > 1 and counts[f] >= SUBMENU_MIN}
        top = menus.setdefault(menu, [])
        for family in families:
            if family in grouped:
                submenu = f"{_contrib.NAME}.{menu.rsplit('/', 1)[-1]}.{family}"
                submenus.append({"id": submenu, "label": FAMILY_LABELS.get(family, family.capitalize())})
                top.append({"submenu": submenu})
                menus[submenu] = [{"command": c} for c, f in items if f == family]
        top.extend({"command": c} for c, f in items if f not in grouped)
    return submenus, menus


def build_manifest() -> dict:
    commands, widgets, entries = [], [], []
    for reader in _contrib.READERS:
        commands.append(_command(reader["id"], reader["python_name"], reader["title"]))
    for writer in _contrib.WRITERS:
        commands.append(_command(writer["id"], writer["python_name"], writer["title"]))
    for sample in _contrib.SAMPLES:
        commands.append(_command(sample["id"], sample["python_name"], sample["display_name"]))

    widget_entries = [
        (op.name, _contrib.OPERATION_TOOLS.get(op.name,
                                               f"{_contrib.PACKAGE}._napari.widgets:{widget_factory_name(op.name)}"),
         op.title, op.menu_id, op.family)
        for op in catalog.operations()
    ] + [
        (tool["id"], tool["python_name"], tool["title"], registry.MENUS.get(tool["menu"], tool["menu"]), None)
        for tool in _contrib.TOOLS
    ]
    for entry_id, python_name, title, menu, family in widget_entries:
        command = _command(entry_id, python_name, title)
        commands.append(command)
        widgets.append({"command": command["id"], "display_name": title})
        entries.append((command["id"], menu, family))
    submenus, menus = _menu_groups(entries)

    return {
        "name": _contrib.NAME,
        "display_name": "napari-stacklab",
        "contributions": {
            "commands": commands,
            "readers": [
                {
                    "command": f"{_contrib.NAME}.{r['id']}",
                    "filename_patterns": r["filename_patterns"],
                    "accepts_directories": r["accepts_directories"],
                }
                for r in _contrib.READERS
            ],
            "writers": [
                {
                    "command": f"{_contrib.NAME}.{w['id']}",
                    "layer_types": w["layer_types"],
                    "filename_extensions": w["filename_extensions"],
                }
                for w in _contrib.WRITERS
            ],
            "sample_data": [
                {"command": f"{_contrib.NAME}.{s['id']}", "key": s["key"], "display_name": s["display_name"]}
                for s in _contrib.SAMPLES
            ],
            "widgets": widgets,
            "submenus": submenus,
            "menus": menus,
        },
    }


def render() -> str:
    header = "# Generated by `python -m napari_stacklab._napari.manifest`; edit the registry or _contrib.py.\n"
    return header + yaml.safe_dump(build_manifest(), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if napari.yaml is out of date")
    parser.add_argument("--path", type=Path, default=MANIFEST_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is out of date; run python -m napari_stacklab._napari.manifest", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
