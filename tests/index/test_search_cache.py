"""The per-table search cache makes each value once, even when many threads miss it together."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from hybrid.index.cache import SearchCache


def test_concurrent_misses_make_the_value_once() -> None:
    cache = SearchCache()
    calls: list[int] = []
    start = threading.Barrier(16)

    def make() -> object:
        calls.append(1)
        time.sleep(0.05)  # long enough for every other thread to miss too
        return object()

    def get(_: int) -> object:
        start.wait()
        return cache.remember("calibrations", "calibration", make)

    with ThreadPoolExecutor(16) as pool:
        values = list(pool.map(get, range(16)))
    assert len(calls) == 1
    assert all(v is values[0] for v in values)
    assert not cache.making  # no gate left behind


def test_a_failed_make_leaves_no_gate_and_is_retried() -> None:
    cache = SearchCache()

    def fail() -> object:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.remember("tails", "k", fail)
    assert not cache.making and "k" not in cache.stores["tails"]
    assert cache.remember("tails", "k", lambda: 7) == 7


def test_oldest_entry_is_evicted_past_keep() -> None:
    cache = SearchCache()
    for i in range(5):
        cache.get(i, cache.live, lambda i=i: i, keep=3)
    assert list(cache.live) == [2, 3, 4]
