"""Exact rescoring of compressed-index candidates: the gather by row id and how many candidates a search takes.

The gathered distances are checked against numpy's float64 exact distances (1e-6) over a table of
several fragments and chunks with deleted rows and null vectors; deep searches (past
``RESCORE_DEPTH``, as a filter's over-fetch asks) return exact scores and the exact filtered top 10.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.index.gather import gathered
from hybrid.index.rescore import MAX_CANDIDATES, RESCORE_DEPTH, candidate_count, exact_neighbours
from tests.index.test_vector_recall import clustered, perturbed

pytest.importorskip("usearch")
pytest.importorskip("faiss")

DIM = 24


def _rows(start: int, data: np.ndarray, nulls: frozenset[int] = frozenset()) -> pa.Table:
    n = len(data)
    ids = np.arange(start, start + n, dtype=np.int64)
    mask = np.array([i in nulls for i in range(n)])
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(data.ravel()), DIM, mask=pa.array(mask))
    return pa.table({"id": pa.array(ids), "category": pa.array(ids % 10), "vector": vectors})


def _exact(data: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    d, qq = data.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        return 1.0 - (d @ qq) / (np.linalg.norm(d, axis=1) * np.linalg.norm(qq))
    if metric == "l2":
        return ((d - qq) ** 2).sum(axis=1)
    return 1.0 - d @ qq


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_gathered_distances_are_exact_across_fragments_chunks_deletes_and_nulls(tmp_path: Path, metric: str) -> None:
    data = clustered(3_000, DIM, 8, seed=1)
    db = hybrid.connect(tmp_path, upkeep=None)
    # two fragments, the first stored in three chunks; rows 5 and 1_700 have no vector
    t = db.create_table("t", pa.concat_tables([_rows(0, data[:700], frozenset({5})), _rows(700, data[700:1_400])]))
    t.add(_rows(1_400, data[1_400:], frozenset({300})))
    t.delete("id % 97 = 0")
    rows = t.to_arrow(["id"], with_rowid=True)
    rowid_of = dict(zip(rows.column("id").to_pylist(), rows.column("_rowid").to_pylist()))
    view = t.indexed_snapshot()
    rng = np.random.default_rng(7)
    for _ in range(20):
        picked = rng.choice(3_000, size=400, replace=False)  # some deleted, two null
        live = [int(i) for i in picked if int(i) in rowid_of and int(i) not in (5, 1_700)]
        by_rowid = {rowid_of[i]: i for i in live}
        candidates = np.array([rowid_of.get(int(i), 10**6 + int(i)) for i in picked], dtype=np.uint64)
        q = perturbed(data, 1, seed=int(rng.integers(1 << 30)))[0]
        ids, d = gathered(view, "vector", candidates, q, metric)
        assert sorted(ids.tolist()) == sorted(by_rowid)  # dead, missing and null rows dropped, none twice
        want = _exact(data[[by_rowid[int(r)] for r in ids]], q, metric)
        assert np.allclose(d, want, atol=1e-5 if metric == "l2" else 1e-6), metric


def test_candidate_count_oversamples_the_first_hits_only() -> None:
    assert candidate_count(10, 4) == 40
    assert candidate_count(10, 1.5) == 15
    assert candidate_count(RESCORE_DEPTH, 4) == 4 * RESCORE_DEPTH
    assert candidate_count(RESCORE_DEPTH + 145, 4) == 4 * RESCORE_DEPTH + 145
    assert candidate_count(3, 1) == 3  # never fewer than k
    assert candidate_count(100, 10_000) == MAX_CANDIDATES
    assert candidate_count(MAX_CANDIDATES + 10, 4) == MAX_CANDIDATES + 10


@pytest.mark.parametrize("kind", ["hnsw_int8", "ivf_pq"])
def test_deep_and_filtered_searches_are_exact(tmp_path: Path, kind: str) -> None:
    data = clustered(5_000, DIM, 20, seed=4)
    t = hybrid.connect(tmp_path, upkeep=None).create_table("t", _rows(0, data))
    t.create_vector_index("vector", kind=kind)
    queries = perturbed(data, 30, seed=9)
    k_deep = RESCORE_DEPTH + 70
    deep_hits = filtered_hits = 0
    for i, q in enumerate(queries):
        exact = _exact(data, q, "cosine")
        got = t.search(q, vector_column="vector").select(["id"]).limit(k_deep).to_arrow()
        ids = np.array(got.column("id").to_pylist())
        assert np.allclose(got.column("_distance").to_numpy(), exact[ids], atol=1e-6)  # rescored = exact
        deep_hits += len(set(ids.tolist()) & set(np.argsort(exact, kind="stable")[:k_deep].tolist()))
        lo = i % 8  # a 30% filter: the graph over-fetches 65 (past RESCORE_DEPTH) and keeps the allowed;
        search = t.search(q, vector_column="vector").where(f"category >= {lo} AND category < {lo + 3}")
        search = search.select(["id"]).limit(10)  # IVF skips the others inside its list scan
        plan = search.explain()
        if kind == "hnsw_int8":
            assert "kept the allowed" in plan and int(re.search(r"nearest (\d+)", plan)[1]) > RESCORE_DEPTH, plan
        else:
            assert "the filter applied inside its list scan" in plan, plan
        got = search.to_arrow()
        ids = np.array(got.column("id").to_pylist())
        assert np.allclose(got.column("_distance").to_numpy(), exact[ids], atol=1e-6)
        allowed = np.flatnonzero((np.arange(len(data)) % 10 >= lo) & (np.arange(len(data)) % 10 < lo + 3))
        filtered_hits += len(set(ids.tolist()) & set(allowed[np.argsort(exact[allowed], kind="stable")[:10]].tolist()))
    assert deep_hits / (k_deep * len(queries)) >= 0.95, kind  # measured 0.99+
    assert filtered_hits / (10 * len(queries)) >= 0.97, kind  # measured 1.0


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_exact_neighbours_in_batches_match_numpy(tmp_path: Path, metric: str) -> None:
    data = clustered(2_000, DIM, 8, seed=2)
    t = hybrid.connect(tmp_path, upkeep=None).create_table("t", _rows(0, data))
    t.delete("id % 13 = 0")
    rows = t.to_arrow(["id"], with_rowid=True)
    rowid_of = dict(zip(rows.column("id").to_pylist(), rows.column("_rowid").to_pylist()))
    live = np.array(sorted(rowid_of))
    queries = perturbed(data, 15, seed=3)
    found = exact_neighbours(t.indexed_snapshot().snapshot, "vector", queries, metric, 7, rows=300)
    for q, got in zip(queries, found):
        d = _exact(data[live], q, metric)
        want = [rowid_of[int(i)] for i in live[np.argsort(d, kind="stable")[:7]]]
        assert got.tolist() == want, metric
