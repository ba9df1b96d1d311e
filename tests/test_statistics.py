"""Global statistics computed once: ranges, the lazy two-pass histogram, percentiles."""

import dask
import dask.array as da
import numpy as np
import pytest
from dask.callbacks import Callback

from napari_stacklab.statistics import clear_cache, histogram, stack_percentiles, stack_range, value_range


class _Passes(Callback):
    """Counts the graphs dask computes (each is one pass over the data)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def _start(self, dsk):
        self.count += 1


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Every test counts its own passes: statistics cached by an earlier test of the same data are forgotten."""
    clear_cache()


@pytest.fixture
def counts_stack(rng):
    return rng.poisson(40, (3, 50, 60)).astype(np.uint16)


def test_value_range_ignores_non_finite_values(rng):
    image = rng.normal(size=(20, 20))
    image[3, 4], image[5, 6], image[7, 8] = np.nan, np.inf, -np.inf
    finite = image[np.isfinite(image)]
    assert value_range(image) == (finite.min(), finite.max())
    assert value_range(da.from_array(image, chunks=7)) == (finite.min(), finite.max())
    low, high = value_range(np.full((2, 2), np.nan))
    assert np.isnan(low) and np.isnan(high)
    assert stack_range(np.full((2, 2), np.nan)) == 0.0
    assert stack_range(np.array([[True, False]])) == 1.0


def test_integer_histogram_has_one_bin_per_level_like_numpy(counts_stack):
    lazy = da.from_array(counts_stack, chunks=(1, 17, 23))
    with _Passes() as passes:
        found = histogram(lazy, levels=True)
    assert passes.count == 1, "one count per possible value gives the range and the histogram"
    low, high = int(counts_stack.min()), int(counts_stack.max())
    expected, _ = np.histogram(counts_stack, bins=high - low + 1, range=(low - 0.5, high + 0.5))
    np.testing.assert_array_equal(found.counts, expected)
    np.testing.assert_array_equal(found.centers, np.arange(low, high + 1))
    eager = histogram(counts_stack, levels=True)
    np.testing.assert_array_equal(eager.counts, found.counts)


def test_float_histogram_spans_the_range_in_equal_bins(rng):
    image = rng.normal(10, 2, (40, 40))
    found = histogram(da.from_array(image, chunks=13), bins=32)
    expected, edges = np.histogram(image, bins=32, range=(image.min(), image.max()))
    np.testing.assert_array_equal(found.counts, expected)
    np.testing.assert_allclose(found.centers, (edges[:-1] + edges[1:]) / 2)
    assert found.counts.sum() == image.size and not found.constant


def test_constant_and_empty_histograms():
    found = histogram(da.full((4, 5), 7.0, chunks=2))
    assert found.constant and found.centers.tolist() == [7.0] and found.counts.tolist() == [20]
    with pytest.raises(ValueError, match="no finite values"):
        histogram(np.full((3, 3), np.nan))


@pytest.mark.parametrize("q", [[0, 100], [1, 50, 99.5], [37.2]])
def test_lazy_percentiles_agree_with_numpy_to_one_bin(rng, q):
    image = rng.gamma(2.0, 100.0, (4, 64, 64))
    eager = stack_percentiles(image, q)
    np.testing.assert_array_equal(eager, np.percentile(image, q))
    lazy = stack_percentiles(da.from_array(image, chunks=(1, 30, 64)), q)
    bin_width = (image.max() - image.min()) / 65536
    np.testing.assert_allclose(lazy, eager, atol=bin_width)


def test_percentiles_of_one_plane_and_of_a_constant_stack(rng):
    image = rng.random((3, 8, 8))
    np.testing.assert_array_equal(stack_percentiles(image, [25], plane=-1), np.percentile(image[2], [25]))
    lazy = da.full((2, 8, 8), 3.0, chunks=4)
    np.testing.assert_array_equal(stack_percentiles(lazy, [1, 99]), [3.0, 3.0])


def test_lazy_percentiles_read_a_16_bit_stack_once_and_a_float_stack_twice(counts_stack, rng):
    """Never the stack loaded whole, never more passes: <= 16-bit integers once, floats twice (range, counts)."""
    lazy = da.from_array(counts_stack, chunks=(1, 50, 60))
    with dask.config.set(scheduler="sync"), _Passes() as passes:
        found = stack_percentiles(lazy, [50])
    assert passes.count == 1
    np.testing.assert_allclose(found, np.percentile(counts_stack, [50]), atol=np.ptp(counts_stack) / 65536)
    floats = da.from_array(rng.random((3, 20, 20)), chunks=(1, 20, 20))
    with dask.config.set(scheduler="sync"), _Passes() as passes:
        stack_percentiles(floats, [50])
    assert passes.count == 2


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "uint16", "int16", ">i2"])
@pytest.mark.parametrize("levels", [True, False])
def test_one_read_histograms_equal_numpy_for_every_small_integer_dtype(rng, dtype, levels):
    info = np.iinfo(np.dtype(dtype).newbyteorder("=")) if dtype != "bool" else None
    low, high = (0, 2) if info is None else (max(info.min, -3000), min(info.max, 3000))
    image = rng.integers(low, high, (3, 40, 30)).astype(dtype)
    image.flat[5] = low  # the extremes are there
    lazy = da.from_array(image, chunks=(2, 17, 30))
    with dask.config.set(scheduler="sync"), _Passes() as passes:
        found = histogram(lazy, bins=37, levels=levels)
    assert passes.count == 1
    eager = histogram(image, bins=37, levels=levels)
    np.testing.assert_array_equal(found.counts, eager.counts)
    np.testing.assert_array_equal(found.centers, eager.centers)
    assert value_range(lazy) == value_range(image) == (float(image.min()), float(image.max()))


def test_statistics_of_a_lazy_stack_are_cached_by_its_graph(counts_stack, rng):
    lazy = da.from_array(counts_stack, chunks=(1, 50, 60))
    histogram(lazy, levels=True)
    with dask.config.set(scheduler="sync"), _Passes() as passes:
        again = histogram(lazy, levels=True)
        same_values = histogram(da.from_array(counts_stack, chunks=(1, 50, 60)), bins=64)  # same name, other bins
        stack_range(lazy)
    assert passes.count == 0
    assert again.counts.sum() == same_values.counts.sum() == counts_stack.size
    changed = lazy + 1  # another graph, other values: computed afresh
    with dask.config.set(scheduler="sync"), _Passes() as passes:
        assert value_range(changed) == (counts_stack.min() + 1.0, counts_stack.max() + 1.0)
    assert passes.count == 1
    floats = da.from_array(rng.random((2, 9, 9)), chunks=(1, 9, 9))
    histogram(floats, bins=10)
    with dask.config.set(scheduler="sync"), _Passes() as passes:
        histogram(floats, bins=10)
    assert passes.count == 0
