"""RawArray (raw bytes read with positional reads) against NumPy's own view of the same bytes, and its buffer pool."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_stacklab.io._lazy import BufferPool, RawArray, contiguous_strides

SHAPE = (5, 6, 7)


def _index(draw_shape):
    """A hypothesis strategy of integer/slice keys (with an optional Ellipsis) for ``draw_shape``."""
    def axis(n):
        return st.one_of(
            st.integers(-n, n - 1),
            st.builds(slice, st.one_of(st.none(), st.integers(-n - 2, n + 2)),
                      st.one_of(st.none(), st.integers(-n - 2, n + 2)),
                      st.one_of(st.none(), st.integers(-3, 3).filter(lambda k: k != 0))),
        )

    return st.tuples(*[axis(n) for n in draw_shape]).flatmap(
        lambda key: st.sampled_from([key, key[:1], key[:1] + (Ellipsis,), (Ellipsis,) + key[-1:]])
    )


def _layouts(tmp_path):
    """name -> (RawArray, the same data as NumPy sees it)."""
    rng = np.random.default_rng(5)
    values = rng.integers(0, 60000, SHAPE).astype(">u2")
    layouts = {}
    c_path = tmp_path / "c.bin"
    c_path.write_bytes(b"H" * 17 + values.tobytes() + b"T" * 5)
    layouts["C, odd offset, big-endian"] = (RawArray(c_path, 17, SHAPE, values.dtype), values)
    f_path = tmp_path / "f.bin"
    f_path.write_bytes(b"H" * 8 + values.tobytes(order="F"))
    layouts["Fortran order"] = (RawArray(f_path, 8, SHAPE, values.dtype, order="F"), values)
    record = np.dtype([("header", "S300"), ("frame", "<u2", SHAPE[1:])])
    frames = np.zeros(SHAPE[0], record)
    frames["frame"] = values.astype("<u2")
    frames["header"] = b"x" * 300
    r_path = tmp_path / "records.bin"
    r_path.write_bytes(frames.tobytes())
    strides = (record.itemsize,) + contiguous_strides(SHAPE[1:], 2)
    layouts["frames with headers"] = (RawArray(r_path, 300, SHAPE, "<u2", strides=strides), values.astype("<u2"))
    flipped = (strides[0], -strides[1], strides[2])
    layouts["rows flipped"] = (
        RawArray(r_path, 300 + (SHAPE[1] - 1) * strides[1], SHAPE, "<u2", strides=flipped),
        values.astype("<u2")[:, ::-1, :],
    )
    return layouts


LAYOUTS = ["C, odd offset, big-endian", "Fortran order", "frames with headers", "rows flipped"]


@pytest.mark.parametrize("name", LAYOUTS)
def test_every_layout_reads_what_numpy_sees(tmp_path, name):
    raw, expected = _layouts(tmp_path)[name]
    np.testing.assert_array_equal(raw[...], expected)
    np.testing.assert_array_equal(np.asarray(raw), expected)
    back = pickle.loads(pickle.dumps(raw))
    assert len(pickle.dumps(raw)) < 2000
    np.testing.assert_array_equal(back[2], expected[2])

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(key=_index(SHAPE))
    def check(key):
        try:
            want = expected[key]
        except IndexError:
            with pytest.raises(IndexError):
                raw[key]
            return
        got = raw[key]
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)

    check()


def test_refuses_what_it_cannot_read(tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(bytes(100))
    with pytest.raises(ValueError, match="short.bin.*truncated"):
        RawArray(path, 0, (10, 10), np.uint16)
    with pytest.raises(ValueError, match="before the start"):
        RawArray(path, 4, (3,), np.uint8, strides=(-4,))
    with pytest.raises(ValueError, match="cannot read raw data of dtype"):
        RawArray(path, 0, (2, 2), np.dtype([("a", "u1")]))
    raw = RawArray(path, 0, (10, 5), np.uint16)
    for key in ([0, 1], None, "a", (0, 0, 0)):
        with pytest.raises(IndexError):
            raw[key]


def test_reads_only_the_bytes_asked_for(tmp_path):
    path = tmp_path / "planes.bin"
    path.write_bytes(np.arange(8 * 256 * 256, dtype=np.uint16).tobytes())
    raw = RawArray(path, 0, (8, 256, 256), np.uint16)
    raw[3]
    assert raw.bytes_read == 256 * 256 * 2
    raw[5, :, 7]  # a column: read row by row or as one span, never the whole file
    assert raw.bytes_read < 256 * 256 * 2 * 3


def test_pooled_buffers_come_back_only_when_no_view_uses_them():
    pool = BufferPool(keep_bytes=64 * 2**20)
    size = (BufferPool.MIN_BYTES // 4,)
    first = pool.empty(size, np.float32)
    first_address = first.__array_interface__["data"][0]
    view = first[10:].reshape(-1, 2)[::2]
    del first
    gc.collect()
    second = pool.empty(size, np.float32)
    second_address = second.__array_interface__["data"][0]
    assert second_address != first_address, "a buffer still viewed must not be handed out"
    view[...] = 1
    del view, second
    gc.collect()
    assert pool._kept == 2 * BufferPool.MIN_BYTES
    third = pool.empty(size, np.float32)
    assert third.__array_interface__["data"][0] in (first_address, second_address)
    small = pool.empty((16,), np.uint8)
    assert small.base is None, "small buffers come straight from numpy"


@pytest.mark.parametrize("name", LAYOUTS)
@pytest.mark.parametrize("dtype", ["=u2", "float32"])
@pytest.mark.parametrize("key", [(slice(None),), (slice(1, 4),), (2,), (slice(0, 5, 2),)])
def test_read_groups_yield_the_frames_numpy_sees_group_by_group(tmp_path, name, dtype, key):
    raw, expected = _layouts(tmp_path)[name]
    frames = expected[key].reshape(-1, *SHAPE[1:]) if expected[key].ndim > 2 else expected[key][None]
    buffer = np.empty((2, *SHAPE[1:]), dtype)
    got = [group.copy() for group in raw.read_groups(key, buffer)]
    assert [len(g) for g in got] == [2] * (len(frames) // 2) + [1] * (len(frames) % 2)
    assert all(g.dtype == np.dtype(dtype) for g in got)
    np.testing.assert_array_equal(np.concatenate(got), frames.astype(dtype))


def test_read_groups_refuse_a_file_shortened_since_it_was_opened(tmp_path):
    raw, _ = _layouts(tmp_path)["C, odd offset, big-endian"]
    with open(raw.path, "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(ValueError, match="c.bin"):
        list(raw.read_groups((slice(None),), np.empty((2, *SHAPE[1:]), np.uint16)))
