"""`VectorIndex.nearest`: the hits of `search` as Python lists (what a plain vector query packs into its
result table), and None where the graph walk cannot fill k (the caller then searches exactly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybrid.index.vector import VectorIndex


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_nearest_is_search_as_lists(tmp_path: Path, metric: str) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    ids = np.arange(1_000, 1_300, dtype=np.uint64)  # row ids that are not positions
    index = VectorIndex.build(tmp_path / "hnsw", ids, vectors, metric, 16, 100, 50)
    for q in rng.standard_normal((20, 16)).astype(np.float32):
        for k in (1, 10, 300):
            found = index.nearest(q, k)
            assert found is not None
            labels, dist = index.search(q, k)
            assert found[0] == labels.tolist() and all(type(x) is int for x in found[0])
            assert found[1] == dist.tolist()  # float32 values, exactly
            assert np.array(found[1], np.float32).tolist() == found[1]


def test_nearest_is_none_when_the_walk_cannot_fill_k(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((40, 8)).astype(np.float32)
    ids = np.arange(40, dtype=np.uint64)
    built = VectorIndex.build(tmp_path / "a", ids, vectors, "l2", 16, 100, 50)
    empty_add = (np.empty(0, np.uint64), np.empty((0, 8), np.float32))
    merged, marked = VectorIndex.merged(tmp_path / "a", tmp_path / "b", 8, "l2", 50, empty_add, ids[5:])
    assert marked == 35
    q = vectors[0]
    assert built.nearest(q, 10) is not None
    assert merged.nearest(q, 10) is None  # 5 live nodes: hnswlib cannot return 10
    five = merged.nearest(q, 5)
    assert five is not None and sorted(five[0]) == [0, 1, 2, 3, 4]
