"""Sphinx configuration for the napari-stacklab documentation."""

import napari_stacklab

project = "napari-stacklab"
author = "napari-stacklab developers"
release = version = napari_stacklab.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
html_static_path = []
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "myst.xref_missing"]

try:
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
except ImportError:  # the docs still build with the default theme
    html_theme = "alabaster"
html_title = "napari-stacklab"


def _write_cli_reference() -> None:
    """Render ``stacklab --help`` and every subcommand's help into _generated/ (docs cannot drift)."""
    import argparse
    from pathlib import Path

    from napari_stacklab.cli import build_parser

    parser = build_parser()
    parts = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts.append(f"\n$ stacklab {name} --help\n{sub.format_help()}")
    out = Path(__file__).parent / "_generated"
    out.mkdir(exist_ok=True)
    (out / "cli_help.txt").write_text("".join(parts), encoding="utf-8")


_write_cli_reference()
