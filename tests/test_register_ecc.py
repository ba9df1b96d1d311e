"""ECC image alignment against known synthetic transforms, with OpenCV's findTransformECC as oracle."""

import dask.array as da
import numpy as np
import pytest
from skimage import data

from napari_stacklab.register import ECCError, Transform, ecc, from_points, warp

cv2 = pytest.importorskip("cv2")

SWAP = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]])  # (row, col) <-> OpenCV's (x, y)
CORNERS = np.array([[0, 0], [0, 255], [255, 0], [255, 255.0]])


def _about_centre(linear, shift, centre=128.0):
    m = np.eye(3)
    m[:2, :2] = linear
    m[:2, 2] = shift + centre - linear @ [centre, centre]
    return m


def _corner_error(estimate, truth):
    return float(np.linalg.norm(estimate.apply_points(CORNERS) - truth.apply_points(CORNERS), axis=1).mean())


def _pair(matrix, model="affine", gain=1.0, offset=0.0):
    fixed = data.camera()[::2, ::2].astype(np.float32)
    truth = Transform(model, matrix)
    moving = warp(fixed, truth.inverse(), order=3, mode="nearest") * gain + offset
    return fixed, moving.astype(np.float32), truth


def _opencv(fixed, moving, motion, size):
    warp_matrix = np.eye(size, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-7)
    _, warp_matrix = cv2.findTransformECC(fixed, moving, warp_matrix, motion, criteria, None, 5)
    full = np.vstack([warp_matrix, [0, 0, 1]]) if size == 2 else warp_matrix
    return Transform("affine" if size == 2 else "projective", SWAP @ full.astype(np.float64) @ SWAP)


AFFINE = _about_centre(np.array([[1.03, -0.06], [0.04, 0.99]]), np.array([3.4, -2.7]))


def test_affine_converges_and_beats_opencv():
    fixed, moving, truth = _pair(AFFINE)
    ours = ecc(fixed, moving, model="affine")
    oracle = _opencv(fixed, moving, cv2.MOTION_AFFINE, 2)
    ours_error, oracle_error = _corner_error(ours, truth), _corner_error(oracle, truth)
    assert ours_error <= 0.1
    assert ours_error <= oracle_error + 1e-3, (ours_error, oracle_error)
    assert ours.model == "affine" and ours.score > 0.999


def test_invariant_to_brightness_and_contrast():
    fixed, moving, truth = _pair(AFFINE, gain=0.3, offset=500.0)
    assert _corner_error(ecc(fixed, moving.astype(np.float32)), truth) <= 0.1


@pytest.mark.parametrize(
    "model, matrix",
    [
        ("translation", _about_centre(np.eye(2), np.array([-4.3, 6.1]))),
        ("euclidean", _about_centre(np.array([[np.cos(0.05), -np.sin(0.05)], [np.sin(0.05), np.cos(0.05)]]),
                                    np.array([2.2, 1.5]))),
        ("similarity", _about_centre(1.04 * np.array([[np.cos(-0.04), -np.sin(-0.04)], [np.sin(-0.04),
                                                                                       np.cos(-0.04)]]),
                                     np.array([-1.0, 3.0]))),
    ],
)
def test_constrained_models(model, matrix):
    fixed, moving, truth = _pair(matrix, model)
    estimate = ecc(fixed, moving, model=model)
    assert estimate.model == model
    assert _corner_error(estimate, truth) <= 0.1


def test_homography_close_to_opencv():
    matrix = AFFINE.copy()
    matrix[2, :2] = [6e-5, -4e-5]
    fixed, moving, truth = _pair(matrix, "projective")
    ours = ecc(fixed, moving, model="homography")
    oracle = _opencv(fixed, moving, cv2.MOTION_HOMOGRAPHY, 3)
    assert ours.model == "projective"
    assert _corner_error(ours, truth) <= 0.1
    assert _corner_error(ours, truth) <= 2 * _corner_error(oracle, truth) + 0.01


def test_refine_a_rough_point_alignment_with_a_large_rotation():
    rotation = 0.35  # 20 degrees: too far for ECC from the identity at full resolution
    linear = np.array([[np.cos(rotation), -np.sin(rotation)], [np.sin(rotation), np.cos(rotation)]])
    fixed, moving, truth = _pair(_about_centre(linear, np.array([5.0, -3.0])))
    fixed_pts = np.array([[40.0, 40], [40, 210], [210, 60], [200, 200]])
    clicked = truth.apply_points(fixed_pts) + np.array([[1.5, -1], [-2, 1], [1, 2], [-1, -1.5]])
    rough = from_points(fixed_pts, clicked, model="affine")
    assert _corner_error(rough, truth) > 1
    refined = ecc(fixed, moving, model="affine", initial=rough, levels=1)
    assert _corner_error(refined, truth) <= 0.1


def test_mask_excludes_a_corrupted_region():
    fixed, moving, truth = _pair(AFFINE)
    moving[:90, :90] = 4000.0  # a bright artefact in the moving image
    mask = np.ones(fixed.shape, bool)
    mask[:110, :110] = False
    assert _corner_error(ecc(fixed, moving, mask=mask), truth) <= 0.1


def test_dask_input_is_accepted():
    fixed, moving, truth = _pair(AFFINE)
    estimate = ecc(da.from_array(fixed, chunks=64), da.from_array(moving, chunks=100), model="affine")
    assert _corner_error(estimate, truth) <= 0.1


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"model": "rigid"}, ValueError, "model must be one of"),
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"eps": -1}, ValueError, "eps"),
        ({"levels": 0}, ValueError, "levels"),
        ({"initial": np.eye(3)}, TypeError, "initial"),
        ({"mask": np.ones((5, 5), bool)}, ValueError, "mask"),
    ],
)
def test_invalid_parameters(kwargs, error, words):
    image = np.random.default_rng(0).random((32, 32))
    with pytest.raises(error, match=words):
        ecc(image, image, **kwargs)


def test_divergence_is_reported():
    rng = np.random.default_rng(0)
    with pytest.raises(ECCError):
        ecc(rng.random((64, 64)), np.zeros((64, 64)), model="affine")


@pytest.mark.gpu
def test_gpu_matches_cpu():
    cupy = pytest.importorskip("cupy")
    fixed, moving, truth = _pair(AFFINE)
    on_gpu = ecc(cupy.asarray(fixed), cupy.asarray(moving))
    assert _corner_error(on_gpu, truth) <= 0.1
    np.testing.assert_allclose(on_gpu.matrix, ecc(fixed, moving).matrix, atol=1e-4)
