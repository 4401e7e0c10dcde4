"""hybrid.index.hnsw_file.save writes the very bytes hnswlib's own ``save_index`` writes."""

from __future__ import annotations

from pathlib import Path

import hnswlib
import numpy as np
import pytest

from hybrid.index import hnsw_file

DIM = 16


def _index(space: str, n: int, m: int = 8) -> hnswlib.Index:
    rng = np.random.default_rng(3)
    hnsw = hnswlib.Index(space=space, dim=DIM)
    hnsw.init_index(max_elements=max(1, n), ef_construction=64, M=m, random_seed=100)
    if n:
        hnsw.add_items(rng.random((n, DIM), dtype=np.float32), np.arange(5, 5 + n, dtype=np.uint64), num_threads=1)
    return hnsw


def _both(hnsw: hnswlib.Index, tmp_path: Path) -> tuple[bytes, bytes]:
    ours, theirs = tmp_path / "ours.bin", tmp_path / "theirs.bin"
    hnsw_file.save(hnsw, ours)
    hnsw.save_index(str(theirs))
    return ours.read_bytes(), theirs.read_bytes()


@pytest.mark.parametrize("space", ["cosine", "l2", "ip"])
@pytest.mark.parametrize("n", [0, 1, 500])
def test_save_writes_hnswlibs_bytes(tmp_path: Path, space: str, n: int) -> None:
    ours, theirs = _both(_index(space, n), tmp_path)
    assert ours == theirs and len(ours) > 0


def test_save_after_a_merge_with_room_deletions_and_upper_levels(tmp_path: Path) -> None:
    base = _index("cosine", 800, m=4)  # a small M gives many elements above level 0
    base.save_index(str(tmp_path / "base.bin"))
    merged = hnsw_file.load(tmp_path / "base.bin", "cosine", DIM, 50, extra=300)  # capacity above the count
    rng = np.random.default_rng(4)
    added = rng.random((200, DIM), dtype=np.float32)
    merged.add_items(added, np.arange(10_000, 10_200, dtype=np.uint64), num_threads=1)
    for label in range(5, 105):
        merged.mark_deleted(label)
    assert int(np.count_nonzero(merged.__getstate__()[0]["element_levels"])) > 50
    ours, theirs = _both(merged, tmp_path)
    assert ours == theirs
    again = hnsw_file.load(tmp_path / "ours.bin", "cosine", DIM, 50)  # and it reads back: same answers
    query = rng.random((5, DIM), dtype=np.float32)
    merged.set_ef(50)
    assert np.array_equal(again.knn_query(query, k=10)[0], merged.knn_query(query, k=10)[0])
