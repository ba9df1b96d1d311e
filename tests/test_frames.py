"""Frames: modes, the pixel size along frame axes, the frame shown, whole-frame chunks."""

import numpy as np
import pytest

from napari_stacklab.frames import (
    MODES,
    check_connectivity,
    frame_at,
    frame_chunks,
    frame_ndim_for,
    frame_spacing,
    mode_ndim,
)


def test_modes_and_their_frame_dimensionality():
    assert MODES == ("2d", "3d")
    assert [mode_ndim(mode) for mode in MODES] == [2, 3]
    assert mode_ndim("3d", footprint="disk") == 3  # usable as an operation's frame rule
    with pytest.raises(ValueError, match="mode must be one of"):
        mode_ndim("4d")
    assert frame_ndim_for(np.zeros((2, 3, 4)), "3d") == 3
    with pytest.raises(ValueError, match="mode='3d' needs an image with at least 3 axes"):
        frame_ndim_for(np.zeros((3, 4)), "3d")


@pytest.mark.parametrize(
    "spacing, frame_ndim, expected",
    [(None, 2, None), (0.5, 2, (0.5, 0.5)), ((0.3, 0.2), 2, (0.3, 0.2)), ((9.0, 1.0, 0.3, 0.2), 3, (1.0, 0.3, 0.2)),
     ([2, 1], 2, (2.0, 1.0))],
)
def test_frame_spacing_takes_the_frame_axes(spacing, frame_ndim, expected):
    assert frame_spacing(spacing, frame_ndim) == expected


def test_frame_spacing_and_connectivity_refuse_too_few_values():
    with pytest.raises(ValueError, match="spacing must give at least 3 values"):
        frame_spacing((1.0, 1.0), 3)
    check_connectivity(None, 2)
    check_connectivity(3, 3)
    with pytest.raises(ValueError, match="connectivity must be between 1 and 2"):
        check_connectivity(3, 2)


def test_frame_at_counts_frames_in_c_order():
    stack = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(frame_at(stack, 5), stack[1, 2])
    np.testing.assert_array_equal(frame_at(stack, -1), stack[1, 2])
    np.testing.assert_array_equal(frame_at(stack, 1, frame_ndim=3), stack[1])
    plane = stack[0, 0]
    assert frame_at(stack, None) is stack and frame_at(plane, 3) is plane  # a single frame is its own frame
    with pytest.raises(ValueError, match="plane must index one of the 6 frames"):
        frame_at(stack, 6)


def test_frame_chunks_keep_frames_whole():
    assert frame_chunks(5, 3) == {0: "auto", 1: "auto", 2: -1, 3: -1, 4: -1}
    assert frame_chunks(2, 3) == {0: -1, 1: -1}
