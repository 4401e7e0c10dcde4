"""The distance of an unrelated row, which a vector list's steepness is measured against (hybrid/query/unrelated.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.query import executor, unrelated
from hybrid.query.confidence import steepness

DIM = 16


def _rows(n: int, seed: int = 0, common: float = 0.0) -> list[dict]:
    """`n` rows with random vectors, plus `common` times one shared direction (as e5's vectors share one)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=DIM).astype(np.float32)
    shared /= np.linalg.norm(shared)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors += common * shared
    words = ["alpha", "beta", "gamma", "delta", "omega"]
    return [{"id": i, "text": f"{words[i % 5]} row {i}", "vector": vectors[i]} for i in range(n)]


def _cosine_distances(t: hybrid.Table, ids: np.ndarray, q: np.ndarray) -> np.ndarray:
    stored = t.to_arrow()
    by_rowid = dict(zip(range(stored.num_rows), stored.column("vector").to_pylist()))
    m = np.array([by_rowid[int(i)] for i in ids], dtype=np.float64)
    return 1 - (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))


def test_the_distance_is_the_mean_over_the_versions_sample(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("t", _rows(2_000))
    view = t.indexed_snapshot()
    sample = unrelated.sample(view, "vector", "cosine")
    assert len(sample.ids) == unrelated.SAMPLE
    assert len(np.unique(sample.ids)) == unrelated.SAMPLE and (np.diff(sample.ids.astype(np.int64)) > 0).all()
    q = np.random.default_rng(9).normal(size=DIM).astype(np.float32)
    found = unrelated.distance(view, "vector", q, "cosine")
    assert found == pytest.approx(float(np.mean(_cosine_distances(t, sample.ids, q))), abs=1e-5)
    # random directions: an unrelated row lies near cosine distance 1
    assert found == pytest.approx(1.0, abs=0.15)


def test_the_sample_is_the_same_for_a_version_and_holds_live_rows_only(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("t", _rows(1_500))
    first = unrelated.sample(t.indexed_snapshot(), "vector", "cosine").ids
    again = unrelated.sample(hybrid.connect(tmp_path).open_table("t").indexed_snapshot(), "vector", "cosine").ids
    assert np.array_equal(first, again)  # seeded: a reopened table draws the same rows
    t.delete("id < 1000")
    after = unrelated.sample(t.indexed_snapshot(), "vector", "cosine").ids
    assert len(after) >= unrelated.MIN_ROWS and (after >= 1000).all()


def test_rows_without_a_vector_are_not_drawn(tmp_path: Path) -> None:
    rows = _rows(300)
    for r in rows[:200]:
        r["vector"] = None
    t = hybrid.connect(tmp_path).create_table("t", rows)
    ids = unrelated.sample(t.indexed_snapshot(), "vector", "cosine").ids
    assert len(ids) >= unrelated.MIN_ROWS and (ids >= 200).all()


def test_a_small_table_has_no_reference(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("t", _rows(unrelated.MIN_ROWS - 1))
    q = np.ones(DIM, np.float32)
    assert unrelated.distance(t.indexed_snapshot(), "vector", q, "cosine") is None
    t.create_fts_index("text")
    assert "unrelated row" not in t.search("alpha").vector(q, column="vector").explain()


def test_vectors_sharing_a_direction_are_measured_from_where_unrelated_rows_lie(tmp_path: Path) -> None:
    """Like e5's, every distance is small: the hybrid's weights measure the vector list from the distance
    an unrelated row lies at, not from 0."""
    rows = _rows(1_001, common=3.0)
    q = rows.pop()["vector"]  # a question like the rows, none of them its answer
    t = hybrid.connect(tmp_path).create_table("t", rows)
    t.create_fts_index("text")
    view = t.indexed_snapshot()
    far = unrelated.distance(view, "vector", q, "cosine")
    assert far is not None and far < 0.2  # every row is near every other
    hits = t.search(q, vector_column="vector").limit(10).to_arrow().column("_distance").to_numpy()
    assert hits[-1] < far  # the tenth is still nearer than an unrelated row
    from_zero, from_unrelated = steepness(hits, "vector"), steepness(hits, "vector", far)
    assert from_unrelated == pytest.approx((hits[9] - hits[0]) / (far - hits[0]))
    assert from_zero is not None and abs(from_unrelated - from_zero) > 0.05
    fused = t.search("alpha").vector(q, column="vector").limit(10)
    assert f"vector measured against an unrelated row at distance {far:.3f}" in fused.explain()
    branches = executor._plan(fused, view)
    executor._run_branches(fused, view, branches, None, 50)
    assert executor._steepness(view, branches)[0] == pytest.approx(steepness(branches[0].raw, "vector", far))


def test_versions_a_few_writes_apart_draw_the_same_row_ids() -> None:
    first = unrelated.drawn_ids(10_000)
    assert len(first) == unrelated.SAMPLE and len(np.unique(first)) == unrelated.SAMPLE
    assert np.array_equal(first, unrelated.drawn_ids(10_050)) and int(first.max()) < 10_000
    grown = unrelated.drawn_ids(40_000)  # past the next steps of the ladder: drawn again, from more rows
    assert not np.array_equal(first, grown) and int(grown.max()) >= 10_000
    assert np.array_equal(unrelated.drawn_ids(100), np.arange(100))  # a small table: every row id


def test_a_carried_sample_equals_one_made_afresh_for_every_version(tmp_path: Path) -> None:
    """Each drawn row's vector is read once per table object and reused by later (and earlier) versions:
    whatever a table object read before, a version's sample is its own drawn rows that are live."""
    t = hybrid.connect(tmp_path).create_table("t", _rows(3_000))
    versions = [t.version]
    unrelated.sample(t.indexed_snapshot(), "vector", "cosine")  # read at the first version
    drawn = unrelated.drawn_ids(3_000)
    t.delete(f"id IN ({', '.join(str(int(i)) for i in drawn[:40])})")  # 40 drawn rows deleted
    versions.append(t.version)
    t.add(_rows(20, seed=4))
    versions.append(t.version)
    q = np.random.default_rng(2).normal(size=DIM).astype(np.float32)
    for version in reversed(versions):  # the newest first, then back in time on the same caches
        carried = unrelated.sample(t.checkout(version).indexed_snapshot(), "vector", "cosine")
        fresh = unrelated.sample(
            hybrid.connect(tmp_path).open_table("t").checkout(version).indexed_snapshot(), "vector", "cosine"
        )
        assert np.array_equal(carried.ids, fresh.ids) and np.array_equal(carried.matrix, fresh.matrix)
        assert np.allclose(carried.distances(q, "cosine"), fresh.distances(q, "cosine"))
        deleted = version != versions[0]
        assert len(carried.ids) == unrelated.SAMPLE - 40 * deleted


def test_a_writer_makes_the_new_versions_sample_ready_once_hybrid_queries_have_used_one(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("t", _rows(500))
    t.create_fts_index("text")
    t.add(_rows(3, seed=1))
    store = t.indexed_snapshot().cache.stores
    assert not store.get("unrelated_rows")  # no hybrid query yet: nothing made
    t.search("alpha").vector(np.ones(DIM, np.float32), column="vector").limit(3).to_arrow()
    assert (t.version, "vector", "cosine") in store["unrelated_rows"]
    t.add(_rows(2, seed=2))  # the writer's new version: its sample is made before any search
    assert (t.version, "vector", "cosine") in store["unrelated_rows"]
