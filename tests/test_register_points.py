"""Transform algebra, point-based fits (least squares and RANSAC) and warping."""

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data, transform as sktf

from napari_stacklab import register
from napari_stacklab.register import Transform, from_points, warp


def _rotation(deg, scale=1.0, shift=(0.0, 0.0), ndim=2):
    theta = np.deg2rad(deg)
    m = np.eye(ndim + 1)
    m[-3:-1, -3:-1] = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    m[:-1, -1] = shift[:ndim] if len(shift) >= ndim else list(shift) + [0.0] * (ndim - len(shift))
    return m


TRUE = {
    "translation": np.array([[1, 0, 4.5], [0, 1, -7.25], [0, 0, 1]]),
    "euclidean": _rotation(12, 1.0, (3.0, -5.0)),
    "similarity": _rotation(-20, 1.3, (10.0, 2.0)),
    "affine": np.array([[1.1, 0.2, 5.0], [-0.15, 0.9, -3.0], [0, 0, 1]]),
    "projective": np.array([[1.05, 0.1, 5.0], [-0.05, 0.95, -3.0], [4e-4, -3e-4, 1]]),
}


@pytest.fixture
def pairs(rng):
    return rng.uniform(0, 500, size=(40, 2))


@pytest.mark.parametrize("model", list(TRUE))
def test_least_squares_is_exact_on_exact_pairs(model, pairs):
    truth = Transform(model, TRUE[model])
    fit = from_points(pairs, truth.apply_points(pairs), model=model)
    assert fit.model == model
    assert np.abs(fit.residuals).max() <= 1e-6
    np.testing.assert_allclose(fit.matrix, TRUE[model], atol=1e-9)
    assert fit.inliers.all()


def test_polynomial_is_exact_and_invertible(pairs):
    def bend(p):
        r, c = p[:, 0], p[:, 1]
        return np.c_[r + 2e-5 * r * c + 1e-5 * c**2 + 3, c - 2e-5 * r**2 + 0.05 * r - 1]

    fit = from_points(pairs, bend(pairs), model="polynomial", order=2)
    assert fit.residuals.max() <= 1e-6
    back = fit.inverse().apply_points(bend(pairs))
    assert np.abs(back - pairs).max() < 0.05  # the inverse is a fitted polynomial, not exact
    with pytest.raises(ValueError, match="order"):
        from_points(pairs, bend(pairs), model="polynomial", order=4)


def test_similarity_matches_scikit_image(pairs, rng):
    truth = Transform("similarity", TRUE["similarity"])
    noisy = truth.apply_points(pairs) + rng.normal(0, 0.5, pairs.shape)
    ours = from_points(pairs, noisy, model="similarity")
    oracle = sktf.SimilarityTransform.from_estimate(pairs[:, ::-1], noisy[:, ::-1])
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(ours.matrix, swap @ oracle.params @ swap, atol=1e-9)


def test_homography_matches_scikit_image_on_many_noisy_pairs(pairs, rng):
    """The least-squares DLT on a tall system (more pairs than unknowns), as for matched features."""
    many = np.concatenate([pairs, rng.uniform(0, 500, (200, 2))])
    noisy = Transform("projective", TRUE["projective"]).apply_points(many) + rng.normal(0, 0.5, many.shape)
    ours = from_points(many, noisy, model="projective")
    oracle = sktf.ProjectiveTransform.from_estimate(many[:, ::-1], noisy[:, ::-1])
    corners = np.array([[0, 0], [0, 500], [500, 0], [500, 500.0]])
    np.testing.assert_allclose(ours.apply_points(corners), oracle(corners[:, ::-1])[:, ::-1], atol=0.02)


@pytest.mark.parametrize("model", ["euclidean", "similarity", "affine", "projective"])
def test_ransac_ignores_30_percent_outliers(model, pairs, rng):
    truth = Transform(model, TRUE[model])
    moving = truth.apply_points(pairs)
    bad = rng.choice(len(pairs), 12, replace=False)  # 30 %
    moving[bad] += rng.uniform(15, 60, (12, 2)) * rng.choice([-1, 1], (12, 2))
    plain = from_points(pairs, moving, model=model)
    fit = from_points(pairs, moving, model=model, robust=True, threshold=1.0)
    corners = np.array([[0, 0], [0, 500], [500, 0], [500, 500.0]])
    error = np.linalg.norm(fit.apply_points(corners) - truth.apply_points(corners), axis=1).max()
    assert error <= 0.1
    assert set(np.flatnonzero(~fit.inliers)) == set(bad)
    assert (fit.residuals[bad] > 10).all()
    assert np.linalg.norm(plain.apply_points(corners) - truth.apply_points(corners), axis=1).max() > 1


def test_three_d_points(rng):
    pts = rng.uniform(0, 100, (20, 3))
    matrix = np.eye(4)
    matrix[1:3, 1:3] = _rotation(25)[:2, :2]
    matrix[:3, 3] = [2.0, -4.0, 6.5]
    truth = Transform("euclidean", matrix)
    for model in ("translation", "euclidean", "similarity", "affine", "projective"):
        target = truth.apply_points(pts) if model != "translation" else pts + [2.0, -4.0, 6.5]
        fit = from_points(pts, target, model=model)
        assert fit.ndim == 3 and fit.residuals.max() <= 1e-6, model


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"model": "rigid"}, ValueError, "model must be one of"),
        ({"threshold": 0}, ValueError, "threshold"),
        ({"max_trials": 2.5}, TypeError, "max_trials"),
    ],
)
def test_invalid_parameters(kwargs, error, words, pairs):
    with pytest.raises(error, match=words):
        from_points(pairs, pairs, **kwargs)


def test_invalid_point_sets(pairs):
    with pytest.raises(ValueError, match="at least 3 point pairs"):
        from_points(pairs[:2], pairs[:2], model="affine")
    with pytest.raises(ValueError, match="moving_points"):
        from_points(pairs, pairs[:5])
    with pytest.raises(ValueError, match="fixed_points"):
        from_points(pairs[:, :1], pairs[:, :1])


def test_transform_algebra_and_json(tmp_path):
    a = Transform("similarity", TRUE["similarity"])
    b = Transform("affine", TRUE["affine"])
    pts = np.array([[1.0, 2.0], [30.0, -4.0]])
    np.testing.assert_allclose((a @ b).apply_points(pts), a.apply_points(b.apply_points(pts)))
    assert (a @ b).model == "affine"
    np.testing.assert_allclose(a.inverse().apply_points(a.apply_points(pts)), pts, atol=1e-12)
    fit = from_points(pts.repeat(2, 0) + [[0, 0], [5, 1], [9, 9], [3, -7]], b.apply_points(pts.repeat(2, 0)
                      + [[0, 0], [5, 1], [9, 9], [3, -7]]), model="affine", robust=True)
    path = tmp_path / "t.json"
    fit.to_json(path)
    loaded = Transform.from_json(path)
    np.testing.assert_array_equal(loaded.matrix, fit.matrix)
    np.testing.assert_array_equal(loaded.inliers, fit.inliers)
    assert loaded.model == "affine" and loaded.score == fit.score
    assert Transform.from_json(fit.to_json()).to_dict() == fit.to_dict()
    with pytest.raises(ValueError, match="model must be one of"):
        Transform("rigid", np.eye(3))


def test_napari_affine_overlays_moving_on_fixed():
    t = Transform("affine", TRUE["affine"])
    scale_f, scale_m = (0.5, 0.25), (2.0, 3.0)
    translate_m = (10.0, -4.0)
    affine = t.to_napari_affine(scale_f, scale_m, translate_moving=translate_m)
    fixed_px = np.array([[3.0, 7.0], [40.0, 12.5]])
    moving_px = t.apply_points(fixed_px)
    moving_world = np.c_[translate_m + moving_px * scale_m, np.ones(2)] @ affine.T
    np.testing.assert_allclose(moving_world[:, :2], fixed_px * scale_f, atol=1e-12)
    with pytest.raises(ValueError, match="not affine"):
        Transform("projective", TRUE["projective"]).to_napari_affine()
    approx = Transform("projective", TRUE["projective"]).affine_approximation((64, 64))
    assert approx.model == "affine"


def test_warp_matches_scipy_and_keeps_label_dtype():
    image = data.camera()[:200, :180]
    t = Transform("affine", TRUE["affine"])
    out = warp(image, t, output_shape=(150, 160), order=1)
    oracle = ndi.affine_transform(image.astype(np.float32), TRUE["affine"], output_shape=(150, 160), order=1)
    assert out.dtype == np.float32 and out.shape == (150, 160)
    np.testing.assert_allclose(out, oracle, atol=1e-3)
    labels = (image > 100).astype(np.int32) * 7
    warped_labels = warp(labels, t, order=0)
    assert warped_labels.dtype == np.int32 and set(np.unique(warped_labels)) <= {0, 7}


def test_warp_projective_and_polynomial_resample_through_points():
    image = data.camera()[::4, ::4].astype(np.float64)
    proj = Transform("projective", TRUE["projective"])
    out = warp(image, proj, order=1)
    point = np.array([40.0, 30.0])
    expected = ndi.map_coordinates(image, proj.apply_points(point)[:, None], order=1)[0]
    assert out.dtype == np.float64 and out[40, 30] == pytest.approx(expected)


def test_warp_lazy_stack_with_per_frame_transforms_equals_eager_loop(camera_stack):
    transforms = [Transform.from_shift((0.5 * i, -1.25 * i)) for i in range(4)]
    transforms[2] = Transform("similarity", _rotation(5, 1.1, (2.0, 3.0)))
    eager = warp(camera_stack, transforms)
    loop = np.stack([warp(frame, t) for frame, t in zip(camera_stack, transforms)])
    np.testing.assert_allclose(eager, loop)
    lazy = warp(da.from_array(camera_stack, chunks=(3, 50, 47)), transforms)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), loop, atol=1e-5)
    shared = warp(da.from_array(camera_stack, chunks=(1, 33, 60)), transforms[2], output_shape=(80, 100))
    assert shared.shape == (4, 80, 100)
    np.testing.assert_allclose(shared.compute(), [warp(f, transforms[2], output_shape=(80, 100)) for f in camera_stack],
                               atol=1e-5)
    with pytest.raises(ValueError, match="transform"):
        warp(camera_stack, transforms[:3])
    with pytest.raises(ValueError, match="order"):
        warp(camera_stack, transforms[0], order=7)


def test_public_api_names():
    for name in ("ecc", "from_points", "drift", "warp", "apply_drift", "phase_correlation", "similarity_map"):
        assert callable(getattr(register, name))
