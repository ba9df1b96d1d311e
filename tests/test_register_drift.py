"""Phase correlation, drift correction, stack alignment and the similarity heatmap."""

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data
from skimage.registration import phase_cross_correlation

from napari_stacklab import catalog
from napari_stacklab.register import (
    Transform,
    align_stack,
    apply_drift,
    drift,
    drift_correct,
    phase_correlation,
    similarity_map,
    similarity_score,
    stack_transforms,
    warp,
)


@pytest.fixture(scope="module")
def drifting():
    """Six 192x192 frames cut from camera at known sub-pixel drift (frame t shows reference content at +d[t])."""
    rng = np.random.default_rng(7)
    big = data.camera().astype(np.float32)
    d = np.cumsum(rng.normal(0, 1.5, (6, 2)), axis=0)
    d[0] = 0
    centre = np.array([150.0, 170.0])
    frames = np.stack([warp(big, Transform.from_shift(centre - s), output_shape=(192, 192), order=3) for s in d])
    frames += rng.normal(0, 2, frames.shape).astype(np.float32)
    return frames, d


def test_phase_correlation_matches_scikit_image(drifting):
    frames, _ = drifting
    for frame in frames[1:]:
        ours = phase_correlation(frames[0], frame, upsample=50, window="none")
        oracle, _, _ = phase_cross_correlation(frames[0], frame, upsample_factor=50)
        np.testing.assert_allclose(ours.shift, -oracle, atol=1e-6)
        assert 0 < ours.score <= 1


def test_phase_correlation_circular_shift_is_exact():
    cam = data.camera().astype(np.float64)
    moving = np.real(np.fft.ifft2(ndi.fourier_shift(np.fft.fft2(cam), (3.4, -1.7))))
    shift = phase_correlation(cam, moving, upsample=100, window="none").shift
    np.testing.assert_allclose(shift, [3.4, -1.7], atol=0.01)


@pytest.mark.parametrize("reference", ["first", "previous"])
def test_drift_within_five_hundredths_of_a_pixel(drifting, reference):
    frames, truth = drifting
    shifts = drift(frames, reference=reference, upsample=20)
    assert shifts.shape == (6, 2) and shifts.dtype == np.float64
    assert np.abs(shifts - truth).max() <= 0.05


def test_ecc_refinement_removes_the_bias_of_phase_correlation(drifting):
    frames, truth = drifting
    plain = drift(frames, refine=False, upsample=100)
    refined = drift(frames, upsample=100)
    assert np.abs(refined - truth).max() <= 0.05
    assert np.abs(refined - truth).mean() < 0.5 * np.abs(plain - truth).mean()


def test_frames_that_match_nothing_are_named():
    rng = np.random.default_rng(0)
    base = data.camera()[::2, ::2].astype(np.float32)
    stack = np.stack([base, np.roll(base, 3, axis=0), np.zeros_like(base), rng.random(base.shape, np.float32)])
    with pytest.raises(ValueError, match=r"drift: 2 frame\(s\) do not match the first frame.*: 2 \(none\), 3 \("):
        drift(stack)
    with pytest.raises(ValueError, match=r"2 frame\(s\)"):
        drift(stack, refine=False)
    assert phase_correlation(base, np.roll(base, 3, axis=0)).metadata["peak_to_noise"] > 10
    assert phase_correlation(base, stack[3]).metadata["peak_to_noise"] < 3


def test_noisy_fluorescence_drift_is_found():
    """Few photons on smooth blobs: a low phase-correlation peak, yet the right shift (dataset oracle)."""
    import napari_stacklab as sl

    img = sl.datasets.timelapse(frames=6, size=96)
    shifts = drift(img.data)
    assert np.abs(shifts - img.metadata["true_shifts"]).max() <= 0.05


def test_drift_against_the_mean_frame(drifting):
    frames, truth = drifting
    shifts = drift(frames, reference="mean")
    relative = shifts - shifts[0]
    assert np.abs(relative - truth).max() <= 0.05


def test_lazy_drift_equals_eager_and_correction_stays_lazy(drifting):
    frames, truth = drifting
    lazy = da.from_array(frames, chunks=(4, 100, 70))
    np.testing.assert_allclose(drift(lazy), drift(frames), atol=1e-9)
    corrected = apply_drift(lazy, shifts=drift(frames))
    assert isinstance(corrected, da.Array) and corrected.dtype == np.float32
    # after correction every frame matches the first one inside the common field of view
    out = corrected.compute()
    core = (slice(20, -20), slice(20, -20))
    for before, after in zip(frames[1:], out[1:]):
        assert similarity_score(after[core], out[0][core]) > 0.995
        assert similarity_score(after[core], out[0][core]) > similarity_score(before[core], frames[0][core])


def test_shifts_apply_to_another_channel(drifting):
    frames, truth = drifting
    other = (frames[:, None] * np.array([1.0, 0.5])[None, :, None, None]).astype(np.float32)  # (T, C, M, N)
    corrected = apply_drift(other, shifts=drift(frames))
    np.testing.assert_allclose(corrected[:, 0], apply_drift(frames, shifts=drift(frames)), atol=1e-4)
    np.testing.assert_allclose(corrected[:, 1], 0.5 * corrected[:, 0], atol=1e-3)
    with pytest.raises(ValueError, match="shifts"):
        apply_drift(other, shifts=np.zeros((3, 2)))


def test_drift_correct_operation_is_registered_and_lazy(drifting):
    frames, _ = drifting
    op = catalog.get("drift_correct")
    assert op.menu_id == "napari/layers/register" and not op.lifted
    lazy = drift_correct(da.from_array(frames, chunks=(2, 192, 192)), reference="previous")
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), drift_correct(frames, reference="previous"), atol=1e-4)
    with pytest.raises(ValueError, match="reference must be one of"):
        drift_correct(frames, reference="last")
    with pytest.raises(ValueError, match="upsample"):
        drift_correct(frames, upsample=0)


def test_align_stack_recovers_rotations():
    base = data.camera()[::2, ::2].astype(np.float32)
    truths = [Transform.identity()] + [
        Transform("euclidean", _rigid(angle, (1.5 * k, -k))) for k, angle in enumerate((0.02, -0.03, 0.04), 1)
    ]
    stack = np.stack([warp(base, t.inverse(), order=3, mode="nearest") for t in truths])
    estimated = stack_transforms(stack, model="euclidean")
    corners = np.array([[0, 0], [0, 255], [255, 0], [255, 255.0]])
    for est, true in zip(estimated, truths):
        assert np.linalg.norm(est.apply_points(corners) - true.apply_points(corners), axis=1).mean() <= 0.1
    chained = stack_transforms(stack, model="euclidean", reference="previous")
    for est, true in zip(chained, truths):
        assert np.linalg.norm(est.apply_points(corners) - true.apply_points(corners), axis=1).mean() <= 0.1
    aligned = align_stack(da.from_array(stack, chunks=(1, 128, 128)), model="euclidean")
    assert isinstance(aligned, da.Array)
    core = (slice(30, -30), slice(30, -30))
    for frame in aligned.compute():
        assert similarity_score(frame[core], base[core]) > 0.995


def test_align_stack_from_features_recovers_large_rotations():
    """Frames turned by up to 25 degrees: matched keypoints, then ECC."""
    base = data.camera()[::2, ::2].astype(np.float32)
    centre = np.array([127.5, 127.5])
    truths = [Transform.identity()]
    for k, angle in enumerate((0.3, -0.45), 1):
        m = _rigid(angle, (0, 0))
        m[:2, 2] = centre - m[:2, :2] @ centre + [2.0 * k, -3.0 * k]
        truths.append(Transform("euclidean", m))
    stack = np.stack([warp(base, t.inverse(), order=3, mode="nearest") for t in truths])
    corners = np.array([[0, 0], [0, 255], [255, 0], [255, 255.0]])
    found = stack_transforms(stack, model="euclidean", method="features")
    for est, true in zip(found, truths):
        assert np.linalg.norm(est.apply_points(corners) - true.apply_points(corners), axis=1).mean() <= 0.1
    assert found[1].metadata["method"] == "features"
    aligned = align_stack(stack, model="euclidean", method="features")
    core = (slice(60, -60), slice(60, -60))
    assert similarity_score(aligned[2][core], base[core]) > 0.99
    with pytest.raises(ValueError, match="method must be one of"):
        stack_transforms(stack, method="sift")


def _rigid(angle, shift):
    m = np.eye(3)
    m[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    m[:2, 2] = shift
    return m


def test_similarity_map_against_a_direct_window_computation():
    rng = np.random.default_rng(3)
    ref = data.camera()[100:160, 200:260].astype(np.float64)
    image = ref + rng.normal(0, 10, ref.shape)
    image[30:, 30:] = rng.normal(100, 30, (30, 30))  # unrelated content in one quadrant
    heat = similarity_map(image, reference=ref, window=7)
    assert heat.dtype == np.float64 and heat.shape == ref.shape
    for r, c in [(10, 10), (20, 45), (45, 45), (3, 50)]:
        a, b = image[r - 3 : r + 4, c - 3 : c + 4], ref[r - 3 : r + 4, c - 3 : c + 4]
        expected = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        assert heat[r, c] == pytest.approx(expected, abs=1e-9)
    assert heat[:25, :25].mean() > 0.6 and abs(heat[35:, 35:].mean()) < 0.2


def test_similarity_map_dask_with_split_frames_equals_eager(camera_stack):
    ref = camera_stack[0]
    stack = camera_stack + np.random.default_rng(1).normal(0, 10, camera_stack.shape).astype(np.float32)
    eager = similarity_map(stack, reference=ref, window=9)
    assert eager.dtype == np.float32
    loop = np.stack([similarity_map(frame, reference=ref, window=9) for frame in stack])
    np.testing.assert_allclose(eager, loop, atol=1e-6)
    lazy = similarity_map(da.from_array(stack, chunks=(3, 37, 50)), reference=ref, window=9)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), loop, atol=1e-5)
    with pytest.raises(ValueError, match="window"):
        similarity_map(stack, reference=ref, window=1)
    with pytest.raises(ValueError, match="reference"):
        similarity_map(stack, reference=ref[:10])


def test_similarity_score():
    cam = data.camera().astype(float)
    assert similarity_score(-cam, cam) == pytest.approx(-1)
    mask = np.zeros(cam.shape, bool)
    mask[:100] = True
    other = cam.copy()
    other[200:] = 0
    assert similarity_score(other, cam, mask=mask) == pytest.approx(1)
    assert similarity_score(other, cam) < 0.9
