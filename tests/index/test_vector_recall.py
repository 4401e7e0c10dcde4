"""HNSW recall@10 against exact numpy search, for cosine, l2 and dot, and ef_search tuning.

Distances as documented in ``hybrid/index/vector.py``: cosine = 1 - cos(a, b),
l2 = squared Euclidean distance, dot = 1 - a.b; smaller is closer. The exact
references are computed here with numpy, independently of the library.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import hybrid

N, DIM, CLUSTERS = 20_000, 64, 50
N_QUERIES, K = 200, 10
COLUMNS = {"cosine": "v_cos", "l2": "v_l2", "dot": "v_dot"}


def clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    labels = rng.integers(0, clusters, size=n)
    spread = rng.uniform(0.2, 0.5, size=(clusters, 1))
    return (centers[labels] + spread[labels] * rng.normal(size=(n, dim))).astype(np.float32)


def perturbed(data: np.ndarray, n: int, seed: int, noise: float = 0.15) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = data[rng.choice(len(data), size=n, replace=False)]
    return (picks + noise * rng.normal(size=picks.shape)).astype(np.float32)


def exact_top_k(data: np.ndarray, queries: np.ndarray, metric: str, k: int = K) -> np.ndarray:
    """Row positions of the k nearest rows per query, by the metric's exact definition."""
    d = data.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "cosine":
        dist = 1.0 - (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (d / np.linalg.norm(d, axis=1, keepdims=True)).T
    elif metric == "l2":
        dist = (q * q).sum(1)[:, None] - 2.0 * q @ d.T + (d * d).sum(1)[None, :]
    else:
        dist = 1.0 - q @ d.T
    part = np.argpartition(dist, k, axis=1)[:, :k]
    return part


def recall(table: hybrid.Table, column: str, queries: np.ndarray, truth: np.ndarray) -> float:
    hits = 0
    for q, t in zip(queries, truth):
        got = table.search(q, vector_column=column).select(["id"]).limit(K).to_arrow().column("id").to_pylist()
        assert len(got) == K
        hits += len(set(got) & set(t.tolist()))
    return hits / (K * len(queries))


def _vectors(a: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(a.ravel(), pa.float32()), a.shape[1])


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return clustered(N, DIM, CLUSTERS, seed=7)


@pytest.fixture(scope="module")
def table(data: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> hybrid.Table:
    """One table, one vector column per metric (the same vectors), each with a default HNSW index."""
    db = hybrid.connect(tmp_path_factory.mktemp("vectors") / "db")
    cols = {"id": pa.array(np.arange(N, dtype=np.int64))}
    cols.update({c: _vectors(data) for c in COLUMNS.values()})
    t = db.create_table("vectors", pa.table(cols))
    for metric, column in COLUMNS.items():
        t.create_vector_index(column, metric=metric)
    return t


@pytest.fixture(scope="module")
def default_version(table: hybrid.Table) -> int:
    """The version holding the default indexes (later tests may replace the cosine one)."""
    return table.version


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_default_index_recall(metric: str, data: np.ndarray, table: hybrid.Table, default_version: int) -> None:
    view = table.checkout(default_version)
    stats = {s["name"]: s for s in view.index_stats()}[f"vector:{COLUMNS[metric]}"]
    assert stats["metric"] == metric and stats["indexed_rows"] == N
    queries = perturbed(data, N_QUERIES, seed=11)
    r = recall(view, COLUMNS[metric], queries, exact_top_k(data, queries, metric))
    print(f"\n{metric}: recall@{K} = {r:.4f} (defaults: m=16, ef_construction=200, ef_search={stats['ef_search']})")
    assert r >= 0.95, f"{metric} recall@{K} {r:.4f} < 0.95"


def test_target_recall_tunes_ef_search(data: np.ndarray, table: hybrid.Table, default_version: int) -> None:
    table.create_vector_index(COLUMNS["cosine"], target_recall=0.98, replace=True)
    stats = {s["name"]: s for s in table.index_stats()}["vector:v_cos"]
    assert stats["target_recall"] == 0.98
    assert isinstance(stats["ef_search"], int) and stats["ef_search"] >= K
    assert stats["measured_recall"] >= 0.98, stats
    queries = perturbed(data, N_QUERIES, seed=23)  # fresh queries, not the tuning sample
    r = recall(table, COLUMNS["cosine"], queries, exact_top_k(data, queries, "cosine"))
    print(
        f"\ncosine tuned: ef_search={stats['ef_search']}, measured_recall (build sample) = "
        f"{stats['measured_recall']}, recall@{K} on fresh queries = {r:.4f}"
    )
    assert r >= 0.97, f"tuned recall@{K} {r:.4f} < 0.97 (ef_search={stats['ef_search']})"
    # the tuned ef_search persists: a new table object opened from disk uses it
    reopened = hybrid.connect(table.path.parent).open_table(table.name)
    assert {s["name"]: s for s in reopened.index_stats()}["vector:v_cos"]["ef_search"] == stats["ef_search"]
