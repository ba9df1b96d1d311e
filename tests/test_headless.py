"""The headless API must not drag in a GUI (or dask/CuPy) just by being imported."""

import subprocess
import sys

HEAVY = ("napari", "magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "dask", "cupy", "vispy")


def _modules_after(code: str) -> set:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_pulls_in_no_gui_dask_or_cupy():
    loaded = _modules_after("import napari_stacklab")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_operations_on_numpy_pull_in_no_gui():
    loaded = _modules_after(
        "import numpy as np, napari_stacklab as sl\n"
        "from napari_stacklab import catalog\n"
        "catalog.operations()\n"
        "sl.filters.gaussian(np.zeros((8, 8)), sigma=1)\n"
        "sl.Recipe(steps=[{'op': 'median', 'params': {}}]).run(np.zeros((2, 8, 8)))"
    )
    gui = set(HEAVY) - {"dask"}
    assert not loaded & gui, loaded & gui


def test_no_gui_imports_outside_napari_folder():
    import pathlib
    import re

    import napari_stacklab

    root = pathlib.Path(napari_stacklab.__file__).parent
    pattern = re.compile(r"^\s*(import|from)\s+(napari|magicgui|qtpy|PyQt5|PyQt6|PySide2|PySide6)\b", re.M)
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "_napari" not in path.parts and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
