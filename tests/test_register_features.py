"""Automatic alignment from keypoints: known transforms, scikit-image's matcher as oracle, then ECC."""

import dask.array as da
import numpy as np
import pytest
from _register_pairs import about_centre, source_image
from _simcupy import real_gpu_present, simulated_gpu
from skimage import data, feature

from napari_stacklab import _backend
from napari_stacklab.register import DETECTORS, Transform, ecc, from_features, warp
from napari_stacklab.register._features import _detector_image, _keypoints, match

SIZE = 320


@pytest.fixture(params=[False, True], ids=["scikit-image", "opencv"])
def accelerated(request, monkeypatch):
    """Both keypoint detectors: scikit-image's (a default install) and OpenCV's."""
    monkeypatch.setattr(_backend, "OPENCV_ACCELERATION", request.param)
    return request.param
CORNERS = np.array([[0, 0], [0, SIZE - 1], [SIZE - 1, 0], [SIZE - 1, SIZE - 1.0]])


def _known(name, matrix, gain=1.0, offset=0.0):
    source = source_image(name, 512)
    origin = (np.array(source.shape) - SIZE) // 2
    truth = Transform("projective" if matrix[2, :2].any() else "affine", matrix)
    fixed = source[origin[0] : origin[0] + SIZE, origin[1] : origin[1] + SIZE]
    moving = warp(source, Transform.from_shift(origin) @ truth.inverse(), output_shape=(SIZE, SIZE), order=3)
    return fixed, (gain * moving + offset).astype(np.float32), truth


def _error(estimate, truth):
    return float(np.linalg.norm(estimate.apply_points(CORNERS) - truth.apply_points(CORNERS), axis=1).mean())


ANGLE = np.deg2rad(14)
ROTATION = np.array([[np.cos(ANGLE), -np.sin(ANGLE)], [np.sin(ANGLE), np.cos(ANGLE)]])
AFFINE = about_centre(1.07 * ROTATION @ np.array([[1.0, 0.05], [0.0, 1.0]]), np.array([16.0, -21.0]), (SIZE, SIZE))
HOMOGRAPHY = about_centre(0.95 * ROTATION.T, np.array([-12.0, 10.0]), (SIZE, SIZE))
HOMOGRAPHY[2, :2] = [2e-4, -1.5e-4]


@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize("image, model, matrix", [("camera", "affine", AFFINE), ("brick", "projective", HOMOGRAPHY),
                                                 ("astronaut", "projective", HOMOGRAPHY)])
def test_known_transform_within_half_a_pixel_then_ecc_within_five_hundredths(accelerated, detector, image, model,
                                                                             matrix):
    fixed, moving, truth = _known(image, matrix, gain=0.6, offset=30.0)  # other brightness and contrast
    found = from_features(fixed, moving, model=model, detector=detector)
    assert found.model == model and _error(found, truth) <= 0.5
    assert found.metadata["detector"] == detector and found.metadata["inliers"] == int(found.inliers.sum()) >= 20
    refined = ecc(fixed, moving, model=model, initial=found, start=())
    assert refined.metadata["start"] == "initial" and _error(refined, truth) <= 0.05


def test_the_inlier_pairs_travel_with_the_transform(accelerated):
    fixed, moving, truth = _known("camera", AFFINE)
    found = from_features(fixed, moving, model="affine", threshold=1.5)
    pairs_fixed, pairs_moving = found.fixed_points[found.inliers], found.moving_points[found.inliers]
    assert found.fixed_points.shape == found.moving_points.shape == (found.metadata["matches"], 2)
    # every inlier is a true correspondence (to keypoint precision), every outlier is off the fit
    assert np.linalg.norm(truth.apply_points(pairs_fixed) - pairs_moving, axis=1).max() < 2.5
    # (the final least-squares fit on the inliers moves the residuals a little from RANSAC's)
    assert np.mean(found.residuals[found.inliers] < 1.5) > 0.95 and np.all(found.residuals[~found.inliers] > 1.0)
    back = Transform.from_json(found.to_json())
    np.testing.assert_array_equal(back.fixed_points, found.fixed_points)
    np.testing.assert_array_equal(back.inliers, found.inliers)


@pytest.mark.parametrize("detector", DETECTORS)
def test_matching_equals_scikit_image_with_cross_check_and_ratio(accelerated, detector):
    fixed, moving, _ = _known("coins", AFFINE)
    (_, ours_fixed), (_, ours_moving) = (_keypoints(_detector_image(im), detector, 800) for im in (fixed, moving))
    for ratio in (0.6, 0.8, 1.0):
        ours = match(ours_fixed, ours_moving, ratio=ratio)
        oracle = feature.match_descriptors(ours_fixed, ours_moving, cross_check=True, max_ratio=ratio)
        assert len(ours) > 20
        assert {tuple(p) for p in ours} == {tuple(p) for p in oracle}


def test_dask_and_integer_input():
    fixed, moving, truth = _known("camera", AFFINE)
    eager = from_features(fixed, moving)
    lazy = from_features(da.from_array(fixed, chunks=100), da.from_array(moving.astype(np.uint8), chunks=77))
    assert _error(lazy, truth) <= 0.5 and _error(eager, truth) <= 0.5


@pytest.mark.skipif(real_gpu_present(), reason="a real GPU is here")
def test_gpu_images_are_matched_on_the_host(accelerated):
    fixed, moving, _ = _known("camera", AFFINE)
    expected = from_features(fixed, moving)
    with simulated_gpu() as cupy:
        found = from_features(cupy.asarray(fixed), cupy.asarray(moving))
    np.testing.assert_array_equal(found.matrix, expected.matrix)


def test_no_features_is_a_clear_error(accelerated):
    flat = np.full((64, 64), 7.0)
    ramp = np.tile(np.linspace(0, 1, 64), (64, 1))
    with pytest.raises(ValueError, match="constant"):
        from_features(flat, ramp)
    with pytest.raises(ValueError, match="matches between"):
        from_features(ramp, ramp.T)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [({"detector": "surf"}, ValueError, "detector must be one of"),
     ({"model": "polynomial"}, ValueError, "model must be one of"),
     ({"ratio": 0}, ValueError, "ratio"), ({"ratio": 1.5}, ValueError, "ratio"),
     ({"threshold": -1}, ValueError, "threshold"), ({"n_keypoints": 2}, ValueError, "n_keypoints")],
)
def test_invalid_parameters(kwargs, error, words):
    image = np.random.default_rng(0).random((64, 64))
    with pytest.raises(error, match=words):
        from_features(image, image, **kwargs)


def test_unrelated_images_are_refused_though_a_minimal_sample_fits_itself(accelerated):
    """A handful of chance matches between unrelated images always contains a minimal sample that fits
    exactly; from_features wants more agreeing matches than that."""
    fixed = data.camera().astype(np.float32)
    noise = np.random.default_rng(0).random(fixed.shape).astype(np.float32)
    for detector in ("orb", "sift"):
        with pytest.raises(ValueError, match="(agree on one 'affine' transform|matches between)") as info:
            from_features(fixed, noise, detector=detector)
        other = "sift" if detector == "orb" else "orb"
        assert f"try detector='{other}'" in str(info.value)
