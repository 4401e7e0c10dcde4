"""Prepared plans of plain vector queries (:mod:`hybrid.query.prepared`) and the row reader they use
(:mod:`hybrid.storage.reader`).

A plan is made once per (version, query shape) and must never change an answer: the rows, scores,
ranks, order and schema equal the general path's on any table (unindexed rows, deletes, updates,
compaction, index merges, checkouts), and a write, delete, update, compaction, index build, time
travel or erasure is seen by the next query.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hybrid
from hybrid.errors import RowNotFoundError, VectorError
from hybrid.query import prepared, search
from hybrid.storage.reader import RowReader
from tests.query.vector_paths import apply_steps, shaped

DIM = 8


def _rows(rng: np.random.Generator, start: int, n: int) -> pa.Table:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + n), pa.int64()),
            "price": pa.array(rng.random(n)),
            "text": [f"row {start + i}" for i in range(n)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
        }
    )


def _general(query: hybrid.Query, monkeypatch: pytest.MonkeyPatch) -> pa.Table:
    with monkeypatch.context() as m:
        m.setattr(prepared, "plan_of", lambda q, view: None)
        m.setattr(search, "_plain_vector", lambda q: (None, None))  # the fast plan (kept from an earlier query)
        return query.to_arrow()


def _same(fast: pa.Table, general: pa.Table) -> None:
    assert fast.schema == general.schema
    assert fast.to_pylist() == general.to_pylist()
    assert fast.equals(general)


def _plans(t: hybrid.Table) -> dict:
    return t.indexed_snapshot().cache.stores.get("vector_plans", {})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**16),
    base=st.integers(12, 50),
    steps=st.lists(st.sampled_from(["add", "delete", "update", "compact", "optimize", "reindex"]), max_size=4),
    limit=st.integers(1, 12),
    skip=st.integers(0, 5),
    depth=st.sampled_from([None, 3, 40]),
    ef=st.sampled_from([None, 5, 100]),
    columns=st.sampled_from([None, ["id"], ["id", "price"], ["text", "id"], [], ["_rowid", "price"]]),
)
def test_prepared_rows_equal_the_general_path(
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    base: int,
    steps: list[str],
    limit: int,
    skip: int,
    depth: int | None,
    ef: int | None,
    columns: list[str] | None,
) -> None:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        t = hybrid.connect(tmp).create_table("t", _rows(rng, 0, base))
        t.create_vector_index("vector")
        versions = apply_steps(t, steps, rng, _rows)
        vec = rng.standard_normal(DIM).astype(np.float32)
        for v in (versions[-1], versions[0], versions[len(versions) // 2]):
            view = t if v == t.version else t.checkout(v)
            q = shaped(view.search(vec, query_type="vector"), limit, skip, depth, ef, columns)
            _same(q.to_arrow(), _general(q, monkeypatch))


def test_a_plan_is_made_once_per_version_and_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    t = hybrid.connect(tmp_path).create_table("t", _rows(rng, 0, 40))
    t.create_vector_index("vector")
    made = []
    real = prepared._make
    prepared_make = lambda q, view, column: made.append(view.version) or real(q, view, column)  # noqa: E731
    with pytest.MonkeyPatch.context() as m:
        m.setattr(prepared, "_make", prepared_make)
        for _ in range(3):
            t.search(rng.standard_normal(DIM), query_type="vector").limit(3).select(["id"]).to_arrow()
        assert made == [t.version]
        t.search(rng.standard_normal(DIM), query_type="vector").limit(7).offset(2).select(["id"]).to_arrow()
        assert made == [t.version], "the limit and offset are not part of the shape"
        t.search(rng.standard_normal(DIM), query_type="vector").select(["price"]).to_arrow()
        assert len(made) == 2, "other columns: another plan"
    plan = prepared.plan_of(
        t.search(rng.standard_normal(DIM), query_type="vector").select(["id"]), t.indexed_snapshot()
    )
    assert plan is not None and plan.live == 40


def test_only_plain_vector_queries_over_a_clean_index_have_a_plan(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    t = hybrid.connect(tmp_path).create_table("t", _rows(rng, 0, 30))
    vec = rng.standard_normal(DIM).astype(np.float32)
    q = t.search(vec, query_type="vector")
    assert prepared.plan_of(q, t.indexed_snapshot()) is None, "no index: exact search on the general path"
    t.create_vector_index("vector")
    t.create_fts_index(["text"])
    view = t.indexed_snapshot()
    assert prepared.plan_of(q, view) is not None
    assert prepared.plan_of(t.search(vec), view) is not None  # "auto" with a vector only
    for other in (
        q.where("id > 3"),
        t.search("row").vector(vec),
        q.pin([3]),
        q.decay("price", scale=1.0, origin=0.0),
        q.group_by("id"),
        t.search(vec, query_type="fts"),
    ):
        assert prepared.plan_of(other, view) is None
    t.add(_rows(rng, 100, 3))  # unindexed rows: the general path merges an exact search of them
    assert prepared.plan_of(q, t.indexed_snapshot()) is None
    t.optimize()
    assert prepared.plan_of(q, t.indexed_snapshot()) is not None
    t.delete("id = 4")  # a dead row in the graph: the general path over-fetches past it
    assert prepared.plan_of(q, t.indexed_snapshot()) is None


def test_writes_deletes_time_travel_and_erasure_are_seen_at_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    t = hybrid.connect(tmp_path).create_table("t", _rows(rng, 0, 60))
    t.create_vector_index("vector")
    first = t.version
    vec = rng.standard_normal(DIM).astype(np.float32)

    def ids(table: hybrid.Table) -> list[int]:
        return table.search(vec, query_type="vector").limit(5).select(["id"]).to_arrow().column("id").to_pylist()

    before = ids(t)
    t.add(
        pa.table(
            {
                "id": [999],
                "price": [0.0],
                "text": ["new"],
                "vector": pa.array([vec.tolist()], pa.list_(pa.float32(), DIM)),
            }
        )
    )
    t.optimize()  # into the index: the plain plan applies again, in the new version
    assert prepared.plan_of(t.search(vec, query_type="vector"), t.indexed_snapshot()) is not None
    assert ids(t) == [999, *before[:4]]
    assert ids(t.checkout(first)) == before  # time travel: the old version's own plan
    t.update("id = 999", {"price": 1.0})
    t.optimize()
    assert ids(t)[0] == 999
    t.erase(f"id = {before[0]}")
    assert not _plans(t), "erasure purged every plan (they hold views of the erased files)"
    t.optimize()
    after = ids(t)
    assert before[0] not in after and after[:4] == [999, *before[1:4]]
    t.delete("id = 999")
    t.create_vector_index("vector", replace=True)
    assert 999 not in ids(t)


def test_a_bad_vector_still_gets_the_general_paths_error(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("t", _rows(np.random.default_rng(4), 0, 20))
    t.create_vector_index("vector")
    t.search(np.ones(DIM), query_type="vector").to_arrow()  # the plan exists
    with pytest.raises(VectorError, match="dimension"):
        t.search(np.ones(DIM + 1), query_type="vector").to_arrow()
    with pytest.raises(hybrid.errors.SchemaError):
        t.search(np.ones(DIM), query_type="vector").select(["nope"]).to_arrow()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=3),
    deleted=st.integers(0, 5),
    columns=st.sampled_from([["id"], ["price", "id"], ["text"], [], ["_rowid", "id"]]),
)
def test_row_reader_reads_what_take_reads(seed: int, sizes: list[int], deleted: int, columns: list[str]) -> None:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        t = hybrid.connect(tmp).create_table("t", _rows(rng, 0, sizes[0]))
        for i, n in enumerate(sizes[1:]):
            t.add(_rows(rng, 100 * (i + 1), n))
        if deleted:
            t.delete(f"id % 6 = {deleted}")
        snap = t.snapshot()
        reader = RowReader(snap, columns)
        live = t.to_arrow(with_rowid=True).column("_rowid").to_numpy()
        if len(live):
            picks = rng.choice(live, size=min(12, 3 * len(live)), replace=True).astype(np.uint64)
            assert reader.table(picks).equals(snap.take(picks, columns))
        gone = np.array([10_000], dtype=np.uint64)
        with pytest.raises(RowNotFoundError):
            reader.arrays(gone)
        dead = sorted(set(range(int(live.max()) + 1 if len(live) else 0)) - set(live.tolist()))
        if dead:
            with pytest.raises(RowNotFoundError):
                reader.arrays(np.array([dead[0]], dtype=np.uint64))
