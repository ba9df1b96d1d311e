"""Every operation of every family, by name: what widgets, recipes, the CLI and the manifest list.

This module imports every operation family, so it sits above them: the
families declare their operations with :mod:`napari_stacklab.registry` and
know nothing of each other or of this list.
"""

from __future__ import annotations

from . import (
    _mosaic,
    denoise,
    equalize,
    filters,
    matting,
    measure,
    morphology,
    phase,
    preprocess,
    register,
    registry,
    segment,
    stem,
)

__all__ = ["FAMILIES", "get", "operations"]

#: The operation families, in menu order.
FAMILIES = {
    "filters": filters,
    "segment": segment,
    "stem": stem,
    "morphology": morphology,
    "measure": measure,
    "denoise": denoise,
    "phase": phase,
    "register": register,
    "preprocess": preprocess,
    "equalize": equalize,
    "matting": matting,
    "stitch": _mosaic,  # the composite behind napari_stacklab.stitch, which exports the same functions
}


def get(name: str) -> registry.Operation:
    """The operation called ``name`` (raises ``KeyError`` listing the known names)."""
    try:
        return registry.declared()[name]
    except KeyError:
        raise KeyError(f"no operation named {name!r}; known operations: {sorted(registry.declared())}") from None


def operations() -> list[registry.Operation]:
    """Every operation: by family (in :data:`FAMILIES` order), then in the order its module exports them.

    The order does not depend on which modules happened to be imported first,
    so the generated manifest and menus are stable. Operations declared
    outside the families (by a test, a script) come last, in declaration order.
    """
    found: dict[str, registry.Operation] = {}
    for family, module in FAMILIES.items():
        for public in (getattr(module, name) for name in module.__all__):
            op = getattr(public, "operation", None)
            if isinstance(op, registry.Operation) and op.family == family:
                found.setdefault(op.name, op)
    for name, op in registry.declared().items():
        found.setdefault(name, op)
    return list(found.values())
