"""The plain vector query's fast plan (:mod:`hybrid.query.plain_vector`) and the pooled result tables
it fills (:mod:`hybrid.query.table_pool`).

The fast plan must never change an answer: the rows, scores, ranks, order, column types and schema
metadata equal the general path's on any table, it answers only the queries it can (the others get
None and go to the executor), every result table it hands out keeps its values, and bad vectors get
the errors they got before.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hybrid
from hybrid.errors import VectorError
from hybrid.query import fixed_batch, plain_vector, prepared, search, single
from hybrid.query.table_pool import BATCH, TablePool
from tests.query.vector_paths import apply_steps, shaped

DIM = 8


def _rows(rng: np.random.Generator, start: int, n: int) -> pa.Table:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + n), pa.int64()),
            "price": pa.array(rng.random(n)),
            "small": pa.array(rng.integers(-100, 100, n), pa.int16()),
            "ratio": pa.array(rng.random(n), pa.float32()),
            "text": [f"row {start + i}" for i in range(n)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
        }
    )


def _general(query: hybrid.Query, monkeypatch: pytest.MonkeyPatch) -> pa.Table:
    """`query` by the executor's general path: no fast plan, no prepared plan."""
    with monkeypatch.context() as m:
        m.setattr(search, "_plain_vector", lambda q: (None, None))
        m.setattr(prepared, "plan_of", lambda q, view: None)
        return query.to_arrow()


def _same(fast: pa.Table, general: pa.Table) -> None:
    assert fast.schema == general.schema
    assert [f.type for f in fast.schema] == [f.type for f in general.schema]
    assert fast.schema.metadata == general.schema.metadata
    assert fast.to_pylist() == general.to_pylist()
    assert fast.equals(general)


NUMERIC = [["id"], ["id", "price"], ["small", "ratio", "id"], [], ["_rowid", "price"], ["price", "id"]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**16),
    base=st.integers(12, 60),
    steps=st.lists(st.sampled_from(["add", "delete", "update", "compact", "reindex"]), max_size=3),
    limit=st.integers(1, 15),
    skip=st.integers(0, 5),
    depth=st.sampled_from([None, 3, 40]),
    ef=st.sampled_from([None, 5, 100]),
    columns=st.sampled_from([*NUMERIC, None, ["text", "id"]]),
)
def test_fast_rows_equal_the_general_path(
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
        apply_steps(t, steps, rng, _rows)
        for _ in range(3):  # a plan made, then used
            vec = rng.standard_normal(DIM).astype(np.float32)
            q = shaped(t.search(vec, query_type="vector"), limit, skip, depth, ef, columns)
            _same(q.to_arrow(), _general(q, monkeypatch))


def test_the_fast_plan_answers_plain_queries_over_a_clean_index_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    t = hybrid.connect(tmp_path).create_table("t", _rows(rng, 0, 40))
    vec = rng.standard_normal(DIM).astype(np.float32)
    q = t.search(vec, query_type="vector").limit(5).select(["id", "price"])
    assert plain_vector.answer(q) is None, "no index: exact search"
    t.create_vector_index("vector")
    t.create_fts_index(["text"])
    assert plain_vector.answer(q) is not None
    assert plain_vector.answer(t.search(vec).limit(5).select(["id"])) is not None  # "auto", a vector only
    assert plain_vector.answer(q.offset(3).candidates(30)) is not None
    for other in (
        q.where("id > 3"),
        q.select(["text"]),  # not a plain number
        t.search(vec, query_type="vector"),  # every column: text, vector
        q.limit(41),  # more than the table holds
        q.ef_search(7),  # another ef than the index's
        t.search("row").vector(vec).select(["id"]),
        q.pin([3]),
        q.rerank(None),
        q.decay("price", scale=1.0, origin=0.0),
        q.group_by("id"),
        t.search(vec, query_type="fts").select(["id"]),
    ):
        assert plain_vector.answer(other) is None
    with hybrid.time_budget(10.0):
        assert plain_vector.answer(q) is None, "a time budget: the executor checks it at each stage"
    t.add(_rows(rng, 100, 3))
    assert plain_vector.answer(q) is None, "rows the index misses"
    t.compact()  # one fragment again (the fast plan reads one fragment's mapped columns)
    t.create_vector_index("vector", replace=True)
    assert plain_vector.answer(q) is not None
    t.delete("id = 7")
    assert plain_vector.answer(q) is None, "a deleted row the index holds"


def test_each_result_keeps_its_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    t = hybrid.connect(tmp_path).create_table("t", _rows(rng, 0, 200))
    t.create_vector_index("vector")
    vecs = rng.standard_normal((3 * BATCH, DIM)).astype(np.float32)
    results = [t.search(v, query_type="vector").limit(4).select(["id", "small"]).to_arrow() for v in vecs]
    assert len({id(r) for r in results}) == len(results)
    for v, r in zip(vecs, results):  # each one still holds its own query's rows after the later queries
        expected = t.search(v, query_type="vector").limit(4).select(["id", "small"]).to_arrow()
        assert r.to_pylist() == expected.to_pylist()
        assert r["_vector_rank"].to_pylist() == [1, 2, 3, 4]


def test_bad_vectors_get_the_errors_they_got(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    t = hybrid.connect(tmp_path).create_table("t", _rows(rng, 0, 30))
    t.create_vector_index("vector")
    t.search(rng.standard_normal(DIM), query_type="vector").limit(3).select(["id"]).to_arrow()  # a plan made
    with pytest.raises(VectorError, match="dimension"):
        t.search(np.ones(DIM + 1, np.float32), query_type="vector").limit(3).select(["id"]).to_arrow()
    for bad in (np.nan, np.inf, -np.inf):
        vec = np.ones(DIM, np.float32)
        vec[2] = bad
        with pytest.raises(VectorError, match="NaN or inf"):
            t.search(vec, query_type="vector")


def test_a_pool_fills_only_the_written_columns() -> None:
    schema = pa.schema([("a", pa.uint64()), ("b", pa.float32()), ("c", pa.int32())])
    layout = fixed_batch.layout(schema, 3)
    assert layout is not None
    pool = TablePool(layout, 3, ["Q", "f", "i"], [struct.pack("3i", 7, 8, 9)])
    tables = []
    for i in range(BATCH + 2):  # past one refill
        table, buf = pool.take()
        pool.pack_into(buf, pool.at, i, i + 1, i + 2, 0.5, 1.5, float(i))
        tables.append(table)
    for i, table in enumerate(tables):
        assert table.schema == schema
        assert table.to_pydict() == {"a": [i, i + 1, i + 2], "b": [0.5, 1.5, float(i)], "c": [7, 8, 9]}
    with pytest.raises(ValueError, match="fixed bytes"):
        TablePool(layout, 3, ["Q", "f", "i"], [b"\0" * 8])
    with pytest.raises(ValueError, match="column formats"):
        TablePool(layout, 3, ["Q", "f"], [])


def test_the_result_layout_is_the_listed_tables(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    t = hybrid.connect(tmp_path).create_table("t", _rows(rng, 0, 30))
    reader = single.row_reader(t.indexed_snapshot(), ("id", "ratio"))
    layout = single.result_layout(reader.schema, "vector", 4)
    assert layout is not None
    listed = single.listed(reader, "vector", [3, 1, 2, 0], [0.25, 0.5, 0.75, 1.0], 1)
    assert layout.schema == listed.schema
    assert single.result_layout(single.row_reader(t.indexed_snapshot(), ("text",)).schema, "vector", 4) is None


def test_a_declined_query_checks_freshness_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor answers a query the fast path declined from the version the fast path read: a
    second check could see another version (and, on an object store, fetch the manifest again)."""
    rng = np.random.default_rng(4)
    t = hybrid.connect(tmp_path).create_table("t", _rows(rng, 0, 40))  # no index: the fast path declines
    checks: list[int] = []
    real = type(t).indexed_snapshot
    monkeypatch.setattr(type(t), "indexed_snapshot", lambda self: checks.append(1) or real(self))
    vec = rng.standard_normal(DIM).astype(np.float32)
    q = t.search(vec, query_type="vector").limit(3).select(["id"])
    assert plain_vector.attempt(q)[0] is None
    checks.clear()
    assert q.to_arrow().num_rows == 3 and len(checks) == 1
