"""ANN curve: recall of the HNSW index against exact search rises with ef_search; clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.errors import HybridError
from hybrid.eval import AnnPoint, ann_curve
from hybrid.table import Table


def vector_table(path: Path, n: int = 2_000, dim: int = 32) -> Table:
    rng = np.random.default_rng(7)
    rows = [{"id": i, "vector": v} for i, v in enumerate(rng.normal(size=(n, dim)).astype(np.float32))]
    return hybrid.connect(path).create_table("vectors", rows)


def test_recall_rises_with_ef(tmp_path: Path) -> None:
    table = vector_table(tmp_path)
    table.create_vector_index("vector")
    queries = np.random.default_rng(8).normal(size=(50, 32))
    curve = ann_curve(table, "vector", queries)
    assert [p.ef for p in curve] == [10, 20, 40, 80, 160, 320]
    assert all(isinstance(p, AnnPoint) and p.k == 10 and 0.0 <= p.recall <= 1.0 for p in curve)
    assert all(0.0 < p.p50_ms <= p.p95_ms for p in curve)
    assert curve[-1].recall >= curve[0].recall
    assert curve[-1].recall >= 0.95


def test_exact_answers_follow_the_index_metric(tmp_path: Path) -> None:
    table = vector_table(tmp_path, n=500)
    table.create_vector_index("vector", metric="l2")
    queries = np.random.default_rng(9).normal(size=(20, 32)) * 3.0
    (point,) = ann_curve(table, "vector", queries, k=5, ef_values=[500])
    assert point.recall == 1.0  # ef >= rows: the graph walk is exhaustive, so it must match exact l2


def test_errors_name_the_problem(tmp_path: Path) -> None:
    table = vector_table(tmp_path, n=50)
    with pytest.raises(HybridError, match="'vector' of table 'vectors' has no vector index"):
        ann_curve(table, "vector", np.zeros((1, 32)))
    table.create_vector_index("vector")
    with pytest.raises(ValueError, match=r"\(n, 32\) array"):
        ann_curve(table, "vector", np.zeros((3, 8)))
    with pytest.raises(ValueError, match="ef_values"):
        ann_curve(table, "vector", np.ones((1, 32)), ef_values=[0])
