"""target_recall tunes ef_search on rows held out of the graph, then adds them: the index holds every
row, and the tuned recall is what new queries see, not what the graph's own nodes see."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import hybrid
from hybrid.index.tuning import HELD_OUT_FROM, tuning_sample


def _table(tmp_path: Path, n: int, dim: int = 16) -> tuple[hybrid.Table, np.ndarray]:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    db = hybrid.connect(tmp_path)
    t = db.create_table("t", [{"id": i, "v": vectors[i].tolist()} for i in range(n)])
    return t, vectors


def test_the_held_out_rows_join_the_graph_after_tuning(tmp_path: Path) -> None:
    n = 600
    t, vectors = _table(tmp_path, n)
    t.create_vector_index("v", target_recall=0.95)
    stats = t.index_stats()[0]
    assert stats["indexed_rows"] == n and stats["unindexed_rows"] == 0
    assert stats["measured_recall"] >= 0.95 and stats["ef_search"] >= 10
    held = tuning_sample(n)
    assert len(held) == n // 10
    for i in held[:20].tolist():  # each held-out row is a node again: its own vector finds it first
        hit = t.search(vectors[i], query_type="vector").limit(1).to_list()[0]
        assert hit["id"] == i and hit["_distance"] < 1e-5
    assert "HNSW" in t.search(vectors[0], query_type="vector").explain()


def test_small_tables_tune_on_their_own_nodes(tmp_path: Path) -> None:
    n = HELD_OUT_FROM - 1
    t, vectors = _table(tmp_path, n)
    t.create_vector_index("v", target_recall=0.9)
    stats = t.index_stats()[0]
    assert stats["indexed_rows"] == n and stats["target_recall"] == 0.9
    assert len(tuning_sample(n)) == n
    hit = t.search(vectors[3], query_type="vector").limit(1).to_list()[0]
    assert hit["id"] == 3
