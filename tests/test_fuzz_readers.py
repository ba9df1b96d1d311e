"""Fuzzing the readers: mutated valid TIFF and .npy files never crash, hang or allocate wildly.

Hypothesis mutates one of several valid files (plain, deflate, LZW, tiled,
ImageJ and OME TIFFs, C- and Fortran-order .npy) with bit flips, overwritten
bytes and 32-bit words, insertions, deletions and truncations, then reads it
the way napari and scripts do (:func:`_badfiles.check_read`): the napari hook
never raises, ``imread`` returns a readable Image or raises ValueError/OSError
naming the file. Bounded for CI (200 examples, derandomized, ~30 s);
``benchmarks/fuzz_readers.py`` runs the same check for tens of thousands of
examples.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _badfiles as bad
import napari_stacklab as sl

SEEDS = bad.fuzz_seeds()
EDIT = st.tuples(st.sampled_from(bad.MUTATIONS), st.integers(0, 4096), st.integers(0, 2**32 - 1))
_COUNTER = itertools.count()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    """A scratch folder, with the eager cap lowered so a mutated size cannot exhaust memory."""
    saved = sl.io.MAX_EAGER_BYTES
    sl.io.MAX_EAGER_BYTES = 64 * 2**20
    yield tmp_path_factory.mktemp("fuzz")
    sl.io.MAX_EAGER_BYTES = saved


def _fuzz_once(folder, name: str, edits: list) -> str:
    path = folder / f"{next(_COUNTER)}_{name}"
    path.write_bytes(bad.mutate(SEEDS[name], edits))
    with bad.hang_guard(20):
        return bad.check_read(str(path))


@settings(
    max_examples=200,
    deadline=5000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.sampled_from(sorted(SEEDS)), edits=st.lists(EDIT, min_size=1, max_size=4))
def test_mutated_files_never_crash_the_readers(fuzz_dir, name, edits):
    assert _fuzz_once(fuzz_dir, name, edits) in ("ok", "refused")


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_files_read_and_every_truncation_is_clear(fuzz_dir, name):
    """The unmutated seeds read; cutting each one at every 7th byte gives a clear outcome."""
    assert _fuzz_once(fuzz_dir, name, []) == "ok"
    outcomes = {_fuzz_once(fuzz_dir, name, [("truncate", cut, 0)]) for cut in range(0, len(SEEDS[name]), 7)}
    assert "refused" in outcomes


def test_check_read_catches_an_unclear_error(tmp_path, monkeypatch):
    """The harness itself: a reader leaking a bare exception is reported, not accepted."""
    path = tmp_path / "a.npy"
    path.write_bytes(SEEDS["c.npy"])

    def leaky(*args, **kwargs):
        raise KeyError("descr")

    monkeypatch.setattr(sl.io, "imread", leaky)
    with pytest.raises(AssertionError, match="KeyError"):
        bad.check_read(str(path))
