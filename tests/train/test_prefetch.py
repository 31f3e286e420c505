import threading
import time

import numpy as np
import pytest

from raymm.train.prefetch import Prefetcher


def _builder_threads():
    return [t for t in threading.enumerate() if t.name == "raymm-prefetch"]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_batches_come_in_order_with_their_rows(depth):
    built = []

    def build(rows):
        built.append(threading.current_thread().name)
        return rows * 10

    with Prefetcher(range(20), build, depth) as batches:
        out = list(batches)
    assert out == [(i, i * 10) for i in range(20)]
    assert set(built) == ({"MainThread"} if depth == 0 else {"raymm-prefetch"})
    assert not _builder_threads()


def test_the_same_negatives_with_and_without_prefetching():
    """A builder that draws from one generator (as the negative sampler does) gives the same batches
    at every depth: one thread builds them, in the rows' order."""
    def batches(depth):
        rng = np.random.default_rng(0)
        with Prefetcher(range(30), lambda rows: rng.integers(0, 1000, 8) + rows, depth) as it:
            return [b for _, b in it]

    ref = batches(0)
    for depth in (1, 2):
        assert all((a == b).all() for a, b in zip(ref, batches(depth), strict=True))


def test_a_builder_error_is_raised_at_its_batch():
    def build(rows):
        if rows == 3:
            raise ValueError("bad row 3")
        return rows

    seen = []
    with pytest.raises(ValueError, match="bad row 3"):
        with Prefetcher(range(10), build, 2) as batches:
            for rows, _ in batches:
                seen.append(rows)
    assert seen == [0, 1, 2]
    assert not _builder_threads()


def test_leaving_early_stops_the_builder():
    started = []

    def build(rows):
        started.append(rows)
        time.sleep(0.01)
        return rows

    with Prefetcher(range(1000), build, 1) as batches:
        for rows, _ in batches:
            if rows == 2:
                break
    assert not _builder_threads()
    assert len(started) <= 6  # the consumer's 3, one queued, one waiting to be queued, one being built


def test_negative_depth_is_refused():
    with pytest.raises(ValueError, match="depth"):
        Prefetcher([], lambda r: r, -1)
