import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_stacklab.lift import map_frames, reduce_frames


def loop(func, data, **kw):
    out = np.empty(data.shape, dtype=func(data[(0,) * (data.ndim - 2)], **kw).dtype)
    for idx in np.ndindex(*data.shape[:-2]):
        out[idx] = func(data[idx], **kw)
    return out


@pytest.fixture
def stack(rng):
    return rng.random((3, 2, 37, 41)).astype(np.float32)


def test_eager_equals_loop(stack):
    out = map_frames(ndi.gaussian_filter, stack, sigma=1.5)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, loop(ndi.gaussian_filter, stack, sigma=1.5))


def test_single_frame_is_direct_call(stack):
    frame = stack[0, 0]
    np.testing.assert_array_equal(map_frames(ndi.median_filter, frame, size=3), ndi.median_filter(frame, size=3))


@pytest.mark.parametrize("chunks", [(1, 1, 37, 41), (2, 1, 10, 17), (3, 2, 7, 41)])
def test_dask_with_halo_equals_loop_even_when_chunks_split_frames(stack, chunks):
    lazy = da.from_array(stack, chunks=chunks)
    out = map_frames(ndi.gaussian_filter, lazy, sigma=1.5, depth=7, dtype=np.float32)
    assert isinstance(out, da.Array)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.compute(), loop(ndi.gaussian_filter, stack, sigma=1.5), rtol=0, atol=1e-6)


def test_dask_without_halo_keeps_frames_whole(stack):
    lazy = da.from_array(stack, chunks=(2, 1, 10, 17))
    out = map_frames(ndi.median_filter, lazy, size=5, dtype=np.float32)
    assert out.chunks[-2:] == ((37,), (41,))
    np.testing.assert_array_equal(out.compute(), loop(ndi.median_filter, stack, size=5))


def test_nothing_is_computed_while_building(stack):
    calls = []

    def spy(frame):
        calls.append(frame.shape)
        return frame * 2

    lazy = da.from_array(stack, chunks=(1, 1, 37, 41))
    out = map_frames(spy, lazy, dtype=np.float32)
    assert calls == []
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(out[1, 0].compute(), stack[1, 0] * 2)
    assert calls == [(37, 41)]  # only the one frame that was asked for


def test_dtype_probe_runs_on_zeros_not_data(stack):
    seen = []

    def spy(frame):
        seen.append(float(np.abs(frame).sum()))
        return frame.astype(np.float64)

    out = map_frames(spy, da.from_array(stack, chunks=(1, 1, 37, 41)))
    assert out.dtype == np.float64 and seen == [0.0]


def test_frame_axes_other_than_last(rng):
    data = rng.random((20, 3, 24))  # (y, channel, x): channel is a batch axis
    out = map_frames(ndi.gaussian_filter, data, frame_axes=(0, 2), sigma=1)
    for c in range(3):
        np.testing.assert_allclose(out[:, c, :], ndi.gaussian_filter(data[:, c, :], sigma=1))
    lazy = map_frames(ndi.gaussian_filter, da.from_array(data, chunks=(7, 1, 24)), frame_axes=(0, 2), sigma=1, depth=4)
    np.testing.assert_allclose(lazy.compute(), out, atol=1e-12)


def test_frame_shape_change(stack):
    def bin2(frame):
        return frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2].reshape(
            frame.shape[0] // 2, 2, frame.shape[1] // 2, 2).sum(axis=(1, 3))

    eager = map_frames(bin2, stack)
    lazy = map_frames(bin2, da.from_array(stack, chunks=(1, 1, 20, 20)), frame_shape=(18, 20), dtype=np.float32)
    assert eager.shape == lazy.shape == (3, 2, 18, 20)
    np.testing.assert_allclose(lazy.compute(), eager, rtol=1e-6)


def test_frame_shape_with_halo_is_refused(stack):
    with pytest.raises(ValueError, match="frame_shape"):
        map_frames(np.copy, da.from_array(stack), frame_shape=(3, 3), depth=1, dtype=np.float32)


def test_bad_arguments(stack):
    with pytest.raises(ValueError, match="frame_ndim"):
        map_frames(np.copy, stack[0, 0, 0])
    with pytest.raises(ValueError, match="frame_axes"):
        map_frames(np.copy, stack, frame_axes=(0, 0))
    with pytest.raises(ValueError, match="out of range"):
        map_frames(np.copy, stack, frame_axes=(0, 9))
    with pytest.raises(TypeError, match="array"):
        map_frames(np.copy, [[1, 2], [3, 4]])


@pytest.mark.parametrize("lazy", [False, True])
def test_reduce_frames_scalar_and_vector(stack, lazy):
    data = da.from_array(stack, chunks=(2, 1, 37, 41)) if lazy else stack
    sums = reduce_frames(np.sum, data)
    centre = reduce_frames(lambda f: np.array(ndi.center_of_mass(f)), data, out_shape=(2,))
    if lazy:
        assert isinstance(sums, da.Array) and isinstance(centre, da.Array)
        sums, centre = sums.compute(), centre.compute()
    np.testing.assert_allclose(sums, stack.sum(axis=(-2, -1)), rtol=1e-5)
    assert centre.shape == (3, 2, 2)
    np.testing.assert_allclose(centre[1, 1], ndi.center_of_mass(stack[1, 1]))


def test_reduce_single_frame(stack):
    assert reduce_frames(np.max, stack[0, 0]).shape == ()
    assert float(reduce_frames(np.max, da.from_array(stack[0, 0])).compute()) == stack[0, 0].max()


def test_reduce_vectorized_block(stack):
    mask = np.zeros(stack.shape[-2:]); mask[10:20, 10:20] = 1
    lazy = da.from_array(stack, chunks=(1, 2, 37, 41))
    out = reduce_frames(lambda block: np.tensordot(block, mask, axes=2), lazy, vectorized=True)
    np.testing.assert_allclose(out.compute(), (stack * mask).sum(axis=(-2, -1)), rtol=1e-5)


def test_halo_larger_than_the_frame_keeps_frames_whole(stack):
    lazy = da.from_array(stack, chunks=(1, 1, 10, 10))
    out = map_frames(ndi.uniform_filter, lazy, size=31, depth=100, dtype=np.float32)
    np.testing.assert_allclose(out.compute(), loop(ndi.uniform_filter, stack, size=31), atol=1e-6)


@pytest.mark.parametrize("depth", [None, 2])
def test_map_frames_per_frame_arrays_follow_their_frame_and_chunks(depth):
    rng = np.random.default_rng(0)
    stack, masks = rng.random((3, 20, 24)), rng.random((3, 20, 24)) > 0.5

    def fill(frame, mask, size):
        return np.where(mask, ndi.uniform_filter(frame, size, mode="reflect"), frame)

    expected = np.stack([fill(f, m, 3) for f, m in zip(stack, masks)])
    np.testing.assert_array_equal(map_frames(fill, stack, per_frame={"mask": masks}, size=3), expected)
    chunks = (1, 10, 12) if depth else (2, 20, 24)
    lazy = map_frames(fill, da.from_array(stack, chunks=chunks), per_frame={"mask": da.from_array(masks, chunks=(3, 5, 24))},
                      depth=depth, dtype=float, size=3)
    np.testing.assert_allclose(lazy.compute(), expected)
    with pytest.raises(ValueError, match="mask given frame by frame must have the shape of the data"):
        map_frames(fill, stack, per_frame={"mask": masks[0]}, size=3)


@pytest.mark.parametrize("lazy", [False, True])
def test_kernels_may_drop_or_add_frame_axes(stack, lazy):
    """One value per frame (a reduction) and parts stacked before the frame (a new axis), eager or lazy."""
    data = da.from_array(stack, chunks=(2, 1, 7, 9)) if lazy else stack
    sums = map_frames(lambda f: f.sum(axis=(-2, -1)), data, frame_shape=(), dtype=stack.dtype, vectorized=True)
    assert sums.shape == stack.shape[:2]
    np.testing.assert_allclose(np.asarray(sums), stack.sum(axis=(-2, -1)), rtol=1e-5)
    both = map_frames(lambda f: np.stack([f, -f]), data, frame_shape=(2,) + stack.shape[2:], dtype=stack.dtype)
    assert both.shape == stack.shape[:2] + (2,) + stack.shape[2:]
    np.testing.assert_array_equal(np.asarray(both)[:, :, 1], -stack)


def test_dropping_frame_axes_needs_them_last(stack):
    with pytest.raises(ValueError, match="frame axes last"):
        map_frames(lambda f: f.sum(), stack, frame_axes=(0, 1), frame_shape=())


def test_a_halo_on_whole_frame_chunks_needs_no_overlap_between_chunks(stack):
    """Chunks holding whole frames: the kernel pads its own frame, so no halo is exchanged (one task per chunk)."""
    lazy = da.from_array(stack, chunks=(2, 1, 37, 41))
    out = map_frames(ndi.gaussian_filter, lazy, sigma=1.5, depth=7, dtype=np.float32)
    assert len(out.__dask_graph__().layers) == 2  # the input and one task per chunk: no overlap, no trim
    np.testing.assert_array_equal(out.compute(), loop(ndi.gaussian_filter, stack, sigma=1.5))


def test_large_batch_chunks_are_split_for_the_cores_and_small_ones_left_alone(rng, monkeypatch):
    from napari_stacklab import lift

    monkeypatch.setattr(lift, "TASK_BYTES", 3 * 16 * 20 * 4)  # three float32 frames of 16 x 20
    stack = rng.random((4, 5, 16, 20)).astype(np.float32)
    split = map_frames(ndi.gaussian_filter, da.from_array(stack, chunks=(4, 5, 16, 20)), sigma=1, depth=4)
    assert split.chunks[:2] == ((1, 1, 1, 1), (3, 2))
    np.testing.assert_array_equal(split.compute(), loop(ndi.gaussian_filter, stack, sigma=1))
    small = map_frames(ndi.gaussian_filter, da.from_array(stack, chunks=(1, 2, 16, 20)), sigma=1)
    assert small.chunks[:2] == ((1, 1, 1, 1), (2, 2, 1))


class _Source:
    """A frame source over an array in memory that records the groups it is asked to read."""

    def __init__(self, values):
        self.values, self.shape, self.dtype, self.ndim, self.groups = values, values.shape, values.dtype, values.ndim, []

    def __dask_tokenize__(self):
        return ("_Source", id(self))

    def __getitem__(self, key):
        return self.values[key]

    def read_groups(self, key, buffer):
        frames = self.values[key].reshape((-1, *buffer.shape[1:]))
        for start in range(0, len(frames), len(buffer)):
            group = buffer[: len(frames[start : start + len(buffer)])]
            group[...] = frames[start : start + len(group)]
            self.groups.append(len(group))
            yield group


@pytest.mark.parametrize("vectorized", [True, False])
def test_reductions_of_a_frame_source_read_it_in_small_groups_and_equal_the_loop(rng, vectorized, monkeypatch):
    from napari_stacklab import frames, lift

    monkeypatch.setattr(lift, "TILE_BYTES", 2 * 16 * 20 * 2)  # groups of two frames
    monkeypatch.setattr(lift, "REDUCE_TASK_BYTES", 4 * 16 * 20 * 2)  # tasks of four frames
    values = rng.integers(0, 1000, (3, 5, 16, 20)).astype(np.uint16)
    source = _Source(values)
    lazy = da.from_array(source, chunks=(1, 5, 16, 20), asarray=True)
    frames.register_frame_source(lazy.name, source)
    func = (lambda b: b.astype(np.float64).sum(axis=(-2, -1))[..., None] * [1, 2]) if vectorized else \
        (lambda f: np.array([f.sum(), 2 * f.sum()], np.float64))
    out = reduce_frames(func, lazy, out_shape=(2,), vectorized=vectorized)
    assert any(str(name).startswith("reduce-frames") for name in out.__dask_graph__().layers)
    expected = values.astype(np.float64).sum(axis=(-2, -1))[..., None] * [1, 2]
    np.testing.assert_array_equal(out.compute(), expected)
    assert out.chunks[:2] == ((1, 1, 1), (4, 1))  # tasks sized for the read, not the input's chunks
    assert sum(source.groups) == 15 and max(source.groups) == 2  # every frame once, two at a time
    # a kernel keeping most of the frame is no reduction: dask's chunks as usual
    halved = map_frames(lambda f: f[::2], lazy, frame_shape=(8, 20), dtype=np.uint16)
    assert not any(str(name).startswith("reduce-frames") for name in halved.__dask_graph__().layers)
    np.testing.assert_array_equal(halved.compute(), values[..., ::2, :])
