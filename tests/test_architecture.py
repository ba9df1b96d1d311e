"""The layering of napari_stacklab, read from the source: every import, at any depth, goes down.

The floors, from the ground up (docs/architecture.md draws them):

    ground      _backend, _validation, frames, statistics,  shared by everything
                costs, neighbourhoods
    lift        map_frames, reduce_frames
    engine      runs one operation: bind, place, resolve, plan, build
    registry    the schema: Param, Operation, @operation, @validated
    families    filters, segment, ... (never each other); _bilateral: one operation two families export
    composites  _mosaic: built from register (the computation behind stitch)
    catalog     every operation of every family
    recipe      steps replayed headless
    io          readers and writers, batch runs, sample datasets
    front ends  _napari (everything that imports napari, magicgui or Qt) and the cli (it launches the demo)

Imports are collected with :mod:`ast` from every module, at module level and
inside functions, and through ``importlib.import_module`` with a literal name,
so that a function-level or by-name import cannot hide a cycle. Imports under
``if TYPE_CHECKING:`` are for readers and are not counted.
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import pytest

import napari_stacklab

ROOT = "napari_stacklab"
SRC = pathlib.Path(napari_stacklab.__file__).parent

#: Floors from the ground up; a module may import its own floor or the ones below.
FLOORS = {
    "ground": ("_backend", "_compiled", "_validation", "_image", "frames", "statistics", "channels", "costs", "neighbourhoods"),
    "lift": ("lift",),
    "engine": ("engine",),
    "registry": ("registry",),
    "families": ("filters", "segment", "measure", "morphology", "denoise", "phase", "register", "stem",
                 "preprocess", "equalize", "matting", "_bilateral"),
    "composites": ("_mosaic",),
    "catalog": ("catalog",),
    "recipe": ("recipe",),
    "io": ("io", "batch", "datasets", "stitch"),
    "front ends": ("_napari", "cli"),
}
LEVEL = {floor: i for i, floor in enumerate(FLOORS)}
#: Operation modules: they never import io, recipes, batch runs, the CLI, the catalogue or napari.
OPS = ("ground", "lift", "engine", "registry", "families", "composites")
#: Family-floor modules every family may import: one declaration exported by two families.
SHARED = {"_bilateral"}
#: The composites and the families each may be built from.
COMPOSITES = {"_mosaic": {"register"}}
GUI = ("napari", "magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy", "superqt")

#: Edges that break a rule today, each with who removes it. A fixed one must leave this list
#: (test_known_violations_still_exist fails until it does).
KNOWN_VIOLATIONS: dict = {}


def _module_name(path: pathlib.Path) -> str:
    parts = (ROOT, *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, target: str | None, level: int) -> str:
    """Absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    if level == 0:
        return target or ""
    package = module if _is_package(module) else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{target}" if target else package


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` for every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node.module, node.level)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in MODULES else base, node.lineno, in_function))
        elif isinstance(node, ast.Call) and _by_name(node):
            found.append((node.args[0].value, node.lineno, True))
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def _by_name(call: ast.Call) -> bool:
    """``importlib.import_module("literal")``."""
    func = call.func
    named = isinstance(func, ast.Attribute) and func.attr == "import_module"
    return named and bool(call.args) and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)


def _unit(module: str) -> str:
    """The top-level piece of the package a module belongs to (``filters`` for ``filters._edges``)."""
    return module.split(".")[1] if module.count(".") else ""


def _floor(module: str) -> str | None:
    unit = _unit(module)
    return next((floor for floor, units in FLOORS.items() if unit in units), None)


def _internal_edges() -> list[tuple[str, str, int, bool]]:
    """Imports between modules of the package, with the packages a submodule import runs."""
    edges = []
    for module in MODULES:
        for target, line, in_function in _imports(module):
            if not target.startswith(ROOT + "."):
                continue
            # importing a.b.c runs a/b/__init__ first
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                name = ".".join(parts[:i])
                if name in MODULES and name != module and not module.startswith(name + "."):
                    edges.append((module, name, line, in_function))
    return edges


EDGES = _internal_edges()


def _breaks(rule) -> list[str]:
    return sorted(
        f"{source}:{line} imports {target}" + (" (inside a function)" if in_function else "")
        for source, target, line, in_function in EDGES
        if rule(source, target) and (source, target) not in KNOWN_VIOLATIONS
    )


def test_every_module_stands_on_a_floor():
    homeless = [name for name in MODULES if name != ROOT and _floor(name) is None]
    assert homeless == [], f"add these modules to a floor in FLOORS and docs/architecture.md: {homeless}"


def test_imports_only_go_down():
    def upward(source: str, target: str) -> bool:
        if ROOT in (source, target):  # the package root: the lazy public namespace and __version__
            return False
        return LEVEL[_floor(target)] > LEVEL[_floor(source)]

    assert _breaks(upward) == []


def test_operations_never_import_io_recipes_batch_cli_catalog_or_napari():
    forbidden = {"io", "recipe", "batch", "cli", "catalog", "_napari", "datasets"}

    def reaches_up(source: str, target: str) -> bool:
        return _floor(source) in OPS and _unit(target) in forbidden

    assert _breaks(reaches_up) == []


def test_families_never_import_each_other():
    family_floor = set(FLOORS["families"]) | set(FLOORS["composites"])

    def sideways(source: str, target: str) -> bool:
        a, b = _unit(source), _unit(target)
        if a == b or a not in family_floor or b not in family_floor or b in SHARED:
            return False
        return b not in COMPOSITES.get(a, set())

    assert _breaks(sideways) == []


def test_only_napari_folder_imports_the_gui():
    offenders = sorted(
        f"{module}:{line} imports {target}"
        for module in MODULES if _unit(module) != "_napari"
        for target, line, _ in _imports(module)
        if target.split(".")[0] in GUI
    )
    assert offenders == []


def test_no_import_cycles_even_inside_functions():
    graph = defaultdict(set)
    for source, target, _, _ in EDGES:
        if (source, target) not in KNOWN_VIOLATIONS and ROOT not in (source, target):
            graph[source].add(target)
    cycles = [sorted(component) for component in _strongly_connected(graph) if len(component) > 1]
    assert cycles == []


def test_modules_are_not_imported_by_computed_names():
    """Only the package root loads submodules by name (its lazy public namespace); nowhere else may a name hide an import."""
    offenders = []
    for module in MODULES:
        if module == ROOT:
            continue
        for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
                name = node.args[0]
                text = name.value if isinstance(name, ast.Constant) else ast.unparse(name)
                if ROOT in text or text.startswith((".", "f'.", 'f".', "__name__", "__package__", "f'{__")):
                    offenders.append(f"{module}:{node.lineno} import_module({text})")
    assert offenders == []


def test_known_violations_still_exist():
    present = {(source, target) for source, target, _, _ in EDGES}
    fixed = sorted(f"{a} -> {b}" for a, b in KNOWN_VIOLATIONS if (a, b) not in present)
    assert fixed == [], f"fixed, so remove from KNOWN_VIOLATIONS: {fixed}"


@pytest.mark.parametrize(
    "source, target, rule",
    [
        ("napari_stacklab.filters._edges", "napari_stacklab.segment", test_families_never_import_each_other),
        ("napari_stacklab.lift", "napari_stacklab.registry", test_imports_only_go_down),
        ("napari_stacklab.morphology", "napari_stacklab.recipe", test_operations_never_import_io_recipes_batch_cli_catalog_or_napari),
        ("napari_stacklab.registry", "napari_stacklab.filters", test_no_import_cycles_even_inside_functions),
    ],
)
def test_a_broken_rule_is_caught(monkeypatch, source, target, rule):
    """Each rule fails when one import breaks it (a function-level one, too)."""
    monkeypatch.setattr(__import__(__name__), "EDGES", EDGES + [(source, target, 1, True)])
    with pytest.raises(AssertionError, match=target.split(".")[-1]):
        rule()


def _strongly_connected(graph: dict) -> list[set]:
    """Tarjan's strongly connected components."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in list(graph):
        if node not in index:
            connect(node)
    return components
