"""Transforms travel: JSON files, point coordinates, label images, other channels, 3-D point pairs with scale."""

import json

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import transform as sktransform

from napari_stacklab.register import Transform, apply_drift, from_points, warp, warp_points

AFFINE = Transform("affine", [[0.97, -0.12, 6.5], [0.1, 1.03, -4.25], [0, 0, 1]])


def _rotation(axis_angle):
    """3-D rotation matrix from a rotation vector (Rodrigues)."""
    theta = np.linalg.norm(axis_angle)
    k = np.asarray(axis_angle) / theta
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * cross + (1 - np.cos(theta)) * cross @ cross


# -- JSON ----------------------------------------------------------------------
def test_json_round_trip_through_a_file_and_a_dict(tmp_path):
    fixed = np.array([[10.0, 10], [10, 50], [60, 30], [40, 80], [70, 70]])
    moving = AFFINE.apply_points(fixed)
    moving[4] += 9  # an outlier
    t = from_points(fixed, moving, model="affine", robust=True)
    t.metadata["note"] = np.float32(0.5)  # NumPy values in metadata are saved as plain numbers
    path = tmp_path / "moving_to_fixed.json"
    t.to_json(path)
    saved = json.loads(path.read_text())
    assert saved["stacklab_transform"] == 1 and saved["model"] == "affine"
    for back in (Transform.from_json(path), Transform.from_json(str(path)), Transform.from_dict(t.to_dict())):
        np.testing.assert_array_equal(back.matrix, t.matrix)
        np.testing.assert_array_equal(back.inliers, [True, True, True, True, False])
        np.testing.assert_array_equal(back.moving_points, moving)
        assert back.residuals.shape == (5,) and back.metadata["note"] == 0.5


def test_json_errors_name_the_problem(tmp_path):
    with pytest.raises(TypeError, match="dict"):
        Transform.from_dict([1, 2])
    with pytest.raises(ValueError, match="no 'matrix'"):
        Transform.from_dict({"model": "affine"})
    with pytest.raises(ValueError, match="newer"):
        Transform.from_dict({**AFFINE.to_dict(), "stacklab_transform": 99})
    with pytest.raises(ValueError):
        Transform.from_json("{not json")
    with pytest.raises(FileNotFoundError):
        Transform.from_json(tmp_path / "missing.json")


# -- points and shapes ---------------------------------------------------------
def _blob_image(points, shape):
    image = np.zeros(shape, np.float32)
    for r, c in points:
        image[int(round(r)), int(round(c))] = 1.0
    return ndi.gaussian_filter(image, 1.5)


def _peaks(image, near):
    """Intensity centroids of ``image`` in 13-pixel windows (4 sigma of a blob) around ``near``."""
    out = []
    for r, c in np.round(near).astype(int):
        window = image[r - 6 : r + 7, c - 6 : c + 7]
        rows, cols = np.mgrid[r - 6 : r + 7, c - 6 : c + 7]
        out.append([(rows * window).sum() / window.sum(), (cols * window).sum() / window.sum()])
    return np.array(out)


def test_points_go_where_warp_puts_the_image():
    """Oracle: blobs drawn at the points, resampled with ``warp``; the blob centres are the moved points."""
    points = np.array([[40.0, 50], [90, 120], [150, 70], [60, 160]])
    moving = _blob_image(points, (200, 200))
    registered = warp(moving, AFFINE, order=3)
    moved = warp_points(points, AFFINE)
    np.testing.assert_allclose(_peaks(registered, moved), moved, atol=0.05)


def test_points_with_leading_axes_and_world_units():
    """(t, z, y, x) napari coordinates in micrometres: only y, x move, through the pixel grid of each layer."""
    points = np.array([[0, 3, 40.0, 50], [2, 1, 90, 120]])
    scale_moving = np.array([1.0, 2.0, 0.5, 0.5])
    scale_fixed = np.array([1.0, 2.0, 0.25, 0.25])
    world = points * scale_moving
    moved = warp_points(world, AFFINE, scale_moving=scale_moving, scale_fixed=scale_fixed)
    np.testing.assert_array_equal(moved[:, :2], world[:, :2])
    expected = AFFINE.inverse().apply_points(points[:, 2:]) * scale_fixed[2:]
    np.testing.assert_allclose(moved[:, 2:], expected, atol=1e-12)
    shifted = warp_points(world, AFFINE, scale_moving=scale_moving, translate_moving=[0, 0, 10.0, -5.0])
    np.testing.assert_allclose(shifted[:, 2:], AFFINE.inverse().apply_points((world[:, 2:] - [10, -5]) / 0.5) * 0.5
                               + [10, -5], atol=1e-12)


def test_shapes_vertices_move_shape_by_shape():
    shapes = [np.array([[10.0, 10], [10, 40], [30, 25]]), np.array([[5.0, 5, 60], [5, 20, 60], [5, 20, 90]])]
    rigid = Transform.from_shift([3.0, -4.0])
    moved = warp_points(shapes, rigid)
    assert isinstance(moved, list) and [m.shape for m in moved] == [(3, 2), (3, 3)]
    np.testing.assert_allclose(moved[0], shapes[0] - [3, -4])
    np.testing.assert_allclose(moved[1], shapes[1] - [0, 3, -4])


def test_per_frame_drift_moves_points_as_apply_drift_moves_the_frames():
    """A blob drifting by ``shifts``, tracked as (t, row, col) points: both come back to where it started."""
    shifts = np.array([[0.0, 0.0], [2.5, -1.25], [-3.75, 4.0]])
    start = np.array([30.0, 40.0])
    blob = _blob_image([start], (80, 80))
    stack = np.stack([ndi.shift(blob, s, order=3) for s in shifts])  # frame t shows the blob at start + s
    tracked = np.c_[np.arange(3), start + shifts]
    corrected = apply_drift(stack, shifts=shifts)
    moved = warp_points(tracked, [Transform.from_shift(s) for s in shifts])
    np.testing.assert_allclose(moved, np.c_[np.arange(3), [start] * 3], atol=1e-12)
    for frame, (_, r, c) in zip(corrected, moved):
        np.testing.assert_allclose(_peaks(frame, [[r, c]])[0], [r, c], atol=0.05)


def test_points_errors():
    with pytest.raises(ValueError, match="frame indices"):
        warp_points(np.array([[5, 1.0, 1.0]]), [Transform.identity()] * 3)
    with pytest.raises(ValueError, match="shape"):
        warp_points(np.array([[1.0, 2.0]]), [Transform.identity()] * 3)
    with pytest.raises(ValueError, match="finite"):
        warp_points(np.array([[np.nan, 2.0]]), AFFINE)
    with pytest.raises(ValueError, match="scale"):
        warp_points(np.array([[1.0, 2.0]]), AFFINE, scale_moving=[0, 1])
    with pytest.raises(TypeError, match="Transform"):
        warp_points(np.array([[1.0, 2.0]]), np.eye(3))


# -- labels and channels -------------------------------------------------------
def test_labels_stay_integer_and_match_scikit_image_nearest():
    labels = np.zeros((120, 140), np.uint16)
    labels[20:50, 30:70] = 3
    labels[60:100, 80:120] = 513
    out = warp(labels, AFFINE, order=0)
    assert out.dtype == np.uint16 and set(np.unique(out)) <= {0, 3, 513}
    oracle = sktransform.warp(labels, AFFINE.matrix[[1, 0, 2]][:, [1, 0, 2]], order=0, preserve_range=True)
    assert np.mean(out != oracle.astype(np.uint16)) < 0.002  # ties at exactly half pixels may round apart
    lazy = warp(da.from_array(np.stack([labels, labels]), chunks=(1, 60, 70)), AFFINE, order=0)
    assert isinstance(lazy, da.Array) and lazy.dtype == np.uint16
    np.testing.assert_array_equal(lazy.compute()[1], out)


def test_another_channel_is_resampled_lazily_with_the_same_transform():
    rng = np.random.default_rng(0)
    channels = rng.random((3, 64, 80)).astype(np.float32)
    lazy = warp(da.from_array(channels, chunks=(1, 32, 40)), AFFINE)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), np.stack([warp(c, AFFINE) for c in channels]), atol=1e-6)


# -- 3-D point pairs -------------------------------------------------------------
def test_3d_point_pairs_with_anisotropic_voxels_give_a_true_rigid_motion():
    """affinder issues 72/80: z steps of 2 um, 0.5 um pixels. The rigid fit is made in micrometres."""
    rng = np.random.default_rng(4)
    scale_fixed, scale_moving = np.array([2.0, 0.5, 0.5]), np.array([1.0, 0.5, 0.5])
    rotation = _rotation([0.2, -0.1, 0.3])
    physical = rng.uniform(0, 50, (8, 3))
    moved_physical = physical @ rotation.T + [3.0, -2.0, 5.0]
    fixed_px, moving_px = physical / scale_fixed, moved_physical / scale_moving
    t = from_points(fixed_px, moving_px, model="euclidean", scale_fixed=scale_fixed, scale_moving=scale_moving)
    np.testing.assert_allclose(t.apply_points(fixed_px), moving_px, atol=1e-9)
    linear_physical = np.diag(scale_moving) @ t.matrix[:3, :3] @ np.diag(1 / scale_fixed)
    np.testing.assert_allclose(linear_physical @ linear_physical.T, np.eye(3), atol=1e-9)
    assert t.residuals.max() < 1e-9 and t.metadata["scale"]["fixed"] == scale_fixed.tolist()
    # the same pairs fitted in pixels cannot be rigid: the voxels are not cubes
    assert from_points(fixed_px, moving_px, model="euclidean").residuals.max() > 1
    # napari's affine for the moving layer puts it on the fixed layer in world coordinates
    napari_affine = t.to_napari_affine(scale_fixed, scale_moving)
    world_moving = np.c_[moving_px * scale_moving, np.ones(8)] @ napari_affine.T
    np.testing.assert_allclose(world_moving[:, :3], physical, atol=1e-9)


def test_3d_robust_fit_threshold_is_in_the_moving_units():
    rng = np.random.default_rng(5)
    scale = np.array([4.0, 1.0, 1.0])
    fixed_px = rng.uniform(0, 40, (12, 3))
    moving_px = fixed_px + [0.5, 2.0, -1.0]
    moving_px[3] += [1.0, 0, 0]  # one plane off: 4 units away in z
    t = from_points(fixed_px, moving_px, model="translation", robust=True, threshold=2.0, scale_fixed=scale,
                    scale_moving=scale)
    assert not t.inliers[3] and t.inliers.sum() == 11
    assert t.residuals[3] == pytest.approx(4.0, abs=0.01)


# -- the recipe operations apply_transform and apply_drift ---------------------------------------------------
def test_apply_transform_is_warp_with_the_transform_written_as_a_dict():
    from napari_stacklab import catalog
    from napari_stacklab.register import apply_transform

    image = np.random.default_rng(0).random((3, 60, 70)).astype(np.float32)
    as_dict = json.loads(AFFINE.to_json())  # what a JSON file or a recipe holds
    out = apply_transform(image, transform=as_dict, output_shape=(50, 64))
    np.testing.assert_array_equal(out, warp(image, AFFINE, output_shape=(50, 64)))
    assert out.dtype == np.float32 and catalog.get("apply_transform").menu_id == "napari/layers/register"
    # scipy as the oracle
    np.testing.assert_allclose(out[1], ndi.affine_transform(image[1], AFFINE.matrix, output_shape=(50, 64), order=1),
                               atol=1e-5)
    lazy = apply_transform(da.from_array(image, chunks=(1, 30, 35)), transform=as_dict)
    assert isinstance(lazy, da.Array) and lazy.chunks[0] == (1, 1, 1)
    np.testing.assert_allclose(lazy.compute(), warp(image, AFFINE), atol=1e-6)
    labels = (image * 5).astype(np.uint16)
    nearest = apply_transform(labels, transform=as_dict, order=0)
    assert nearest.dtype == np.uint16 and set(np.unique(nearest)) <= set(np.unique(labels))
    # a 3-D transform makes 3-D frames
    volume = np.random.default_rng(1).random((2, 6, 20, 20)).astype(np.float32)
    shift = Transform.from_shift([1.0, -2.0, 0.5])
    np.testing.assert_allclose(apply_transform(volume, transform=shift.to_dict()), warp(volume, shift), atol=1e-6)


@pytest.mark.parametrize(
    "params, error, words",
    [({"transform": {"model": "affine"}}, ValueError, "transform must be the dictionary"),
     ({"transform": "affine"}, TypeError, "transform must be of type dict"),
     ({"transform": AFFINE.to_dict(), "output_shape": (10,)}, ValueError, "output_shape must give 2 sizes"),
     ({"transform": AFFINE.to_dict(), "output_shape": (10, 0)}, ValueError, "output_shape must be >= 1"),
     ({"transform": AFFINE.to_dict(), "order": 6}, ValueError, "order must be <= 5"),
     ({"transform": AFFINE.to_dict(), "mode": "edge"}, ValueError, "mode must be one of"),
     ({}, TypeError, "missing required parameter 'transform'")],
)
def test_apply_transform_errors_name_the_parameter(params, error, words):
    from napari_stacklab.register import apply_transform

    with pytest.raises(error, match=words):
        apply_transform(np.zeros((20, 20), np.float32), **params)


def test_apply_drift_takes_shifts_as_an_array_or_a_list_of_pairs():
    stack = np.random.default_rng(2).random((3, 40, 50)).astype(np.float32)
    shifts = np.array([[0.0, 0.0], [1.5, -2.0], [-0.25, 3.0]])
    expected = np.stack([ndi.shift(frame, -s, order=1) for frame, s in zip(stack, shifts)])
    for given in (shifts, shifts.tolist()):
        np.testing.assert_allclose(apply_drift(stack, shifts=given), expected, atol=1e-5)
    with pytest.raises(ValueError, match="every row must hold 2 numbers"):
        apply_drift(stack, shifts=[[0, 0, 0]] * 3)
    with pytest.raises(TypeError, match="shifts must be a list of rows"):
        apply_drift(stack, shifts=[0, 1, 2])
    with pytest.raises(ValueError, match="shifts must be finite"):
        apply_drift(stack, shifts=[[0, 0], [np.nan, 0], [0, 0]])
    with pytest.raises(ValueError, match="shifts has 2 rows but the stack has 3 frames"):
        apply_drift(stack, shifts=shifts[:2])
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        apply_drift(stack[0], shifts=shifts)


def test_recorded_transform_and_shifts_replay_from_yaml():
    import napari_stacklab as sl

    stack = np.random.default_rng(3).random((3, 40, 50)).astype(np.float32)
    shifts = [[0.0, 0.0], [1.0, -2.0], [0.5, 0.5]]
    recipe = sl.Recipe(steps=[{"op": "apply_drift", "params": {"shifts": shifts}},
                              {"op": "apply_transform", "params": {"transform": AFFINE.to_dict(),
                                                                   "output_shape": [30, 40], "order": 1}}])
    replayed = sl.Recipe.from_yaml(recipe.to_yaml()).run(da.from_array(stack, chunks=(1, 40, 50)))
    expected = warp(apply_drift(stack, shifts=shifts), AFFINE, output_shape=(30, 40))
    np.testing.assert_allclose(replayed.compute(), expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"recipe step 0 \('apply_drift'\): shifts"):
        sl.Recipe(steps=[{"op": "apply_drift", "params": {"shifts": "0, 1"}}])
