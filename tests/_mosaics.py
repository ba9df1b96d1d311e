"""Helpers shared by the stitching tests (headless and napari)."""

from __future__ import annotations

import numpy as np


def group_errors(layout, truth):
    """Per tile, the position error after removing its linked group's common offset (the gauge)."""
    errors = np.zeros(len(truth))
    for g in np.unique(layout.groups):
        members = layout.groups == g
        offset = np.median((layout.positions - truth)[members], axis=0)
        errors[members] = np.abs(layout.positions - truth - offset)[members].max(axis=1)
    return errors
