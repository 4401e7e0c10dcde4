"""The short paths of a plain query answer exactly as the general paths they skip.

* A query with one branch (vector or text) and nothing after it but a filter builds its rows from
  the branch's list (:mod:`hybrid.query.single`), not by fusing one list and matching each result
  against it: the same rows, scores, ranks, order and schema as the general path, on tables with
  unindexed rows, deletes, updates, pre- and postfilters, offsets, and over older versions.
* ``Snapshot.take`` of a few rows gathers plain-number columns through numpy views of the stored
  chunks across fragments (:mod:`hybrid.storage.numeric`): the values a full read finds, in request
  order; a column added later (nulls in old fragments) or of strings keeps the Arrow path.
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
from hybrid.errors import RowNotFoundError
from hybrid.query import prepared, search, single
from hybrid.storage.numeric import NumericChunks

WORDS = ["apple", "berry", "cherry", "date", "elder", "fig", "grape", "honey"]


def _rows(rng: np.random.Generator, start: int, n: int) -> list[dict]:
    return [
        {
            "id": start + i,
            "cat": int(rng.integers(0, 4)),
            "price": float(rng.random()),
            "text": " ".join(rng.choice(WORDS, size=int(rng.integers(1, 6)))),
            "vector": rng.standard_normal(8).astype(np.float32).tolist(),
        }
        for i in range(n)
    ]


def _both(query: hybrid.Query, monkeypatch: pytest.MonkeyPatch) -> tuple[pa.Table, pa.Table]:
    """The query's rows by the short path, and by the general path (fusion of one list)."""
    fast = query.to_arrow()
    with monkeypatch.context() as m:
        m.setattr(single, "applies", lambda q, branches: False)
        m.setattr(prepared, "plan_of", lambda q, view: None)  # a plain vector query's plan: the same short path
        m.setattr(search, "_plain_vector", lambda q: (None, None))  # and its fast plan (made before, kept)
        general = query.to_arrow()
    return fast, general


def _same(fast: pa.Table, general: pa.Table) -> None:
    assert fast.schema == general.schema
    assert fast.schema.metadata == general.schema.metadata
    assert fast.to_pylist() == general.to_pylist()
    assert fast.equals(general)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**16),
    base=st.integers(12, 60),
    added=st.integers(0, 15),
    deleted=st.integers(0, 3),
    kind=st.sampled_from(["vector", "fts"]),
    where=st.sampled_from([None, "cat = 1", "cat >= 2", "price < 0.5"]),
    prefilter=st.booleans(),
    limit=st.integers(1, 12),
    skip=st.integers(0, 5),
    columns=st.sampled_from([None, ["id"], ["id", "price"], ["text", "cat"], []]),
)
def test_single_branch_rows_equal_the_general_path(
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    base: int,
    added: int,
    deleted: int,
    kind: str,
    where: str | None,
    prefilter: bool,
    limit: int,
    skip: int,
    columns: list[str] | None,
) -> None:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        t = hybrid.connect(tmp).create_table("t", _rows(rng, 0, base))
        t.create_vector_index("vector")
        t.create_fts_index(["text"])
        indexed = t.version
        if added:
            t.add(_rows(rng, base, added))  # unindexed rows: searched exactly beside the indexes
        if deleted:
            t.delete(f"cat = {deleted}")  # dead rows the indexes still hold
        t.update("id = 5", {"price": 0.25})
        vec = rng.standard_normal(8).astype(np.float32)
        q = t.search(vec, query_type="vector") if kind == "vector" else t.search(str(rng.choice(WORDS)))
        q = q.limit(limit).offset(skip)
        if where is not None:
            q = q.where(where, prefilter=prefilter)
        if columns is not None:
            q = q.select(columns)
        _same(*_both(q, monkeypatch))
        old = t.checkout(indexed)  # time travel: the version before the rows were added
        q_old = old.search(vec, query_type="vector") if kind == "vector" else old.search("apple")
        _same(*_both(q_old.limit(limit), monkeypatch))


def test_single_branch_covers_plain_queries_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = hybrid.connect(tmp_path).create_table("t", _rows(rng, 0, 30))
    t.create_fts_index(["text"])
    t.create_vector_index("vector")
    vec = rng.standard_normal(8).astype(np.float32)
    plain = t.search(vec, query_type="vector")
    assert single.applies(plain, [object()])  # type: ignore[list-item]
    assert not single.applies(plain, [object(), object()])  # type: ignore[list-item]
    for changed in (plain.pin([3]), plain.decay("price", scale=1.0, origin=0.0), plain.group_by("cat")):
        assert not single.applies(changed, [object()])  # type: ignore[list-item]
    rows = plain.limit(5).to_arrow()
    assert rows.column("_vector_rank").to_pylist() == [1, 2, 3, 4, 5]
    assert rows.column("_score").to_pylist() == [-d for d in rows.column("_distance").to_pylist()]
    text = t.search("apple", query_type="fts").limit(3).to_arrow()
    assert text.column_names[-3:] == ["_score", "_bm25", "_fts_rank"]


def test_take_of_a_few_rows_across_fragments_matches_a_full_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    t = hybrid.connect(tmp_path).create_table(
        "t", pa.table({"id": pa.array(np.arange(100, dtype=np.int64)), "f": pa.array(rng.random(100))})
    )
    t.add(pa.table({"id": pa.array(np.arange(100, 160, dtype=np.int64)), "f": pa.array(rng.random(60))}))
    t.add(pa.table({"id": pa.array(np.arange(160, 170, dtype=np.int64)), "f": pa.array(rng.random(10))}))
    t.delete("id % 7 = 3")
    t.add_columns({"g": "id * 2"})  # a column stored in new files of every fragment
    snap = t.snapshot()
    assert len(snap.manifest.fragments) >= 3
    full = t.to_arrow(with_rowid=True)
    by_id = {r["_rowid"]: r for r in full.to_pylist()}
    live = np.array(sorted(by_id), dtype=np.uint64)
    for n in (1, 3, 10, 60, 200):
        picks = rng.choice(live, size=n, replace=True)
        for cols in (["id"], ["f", "id"], ["g", "id"], ["id", "g", "f"]):
            got = snap.take(picks, cols)
            assert got.schema == snap.output_schema(cols, with_rowid=True)
            assert got.to_pylist() == [{"_rowid": int(r), **{c: by_id[int(r)][c] for c in cols}} for r in picks]
    dead = next(i for i in range(200) if i not in by_id and i < 170)
    with pytest.raises(RowNotFoundError):
        snap.take(np.array([int(live[0]), dead], dtype=np.uint64), ["id"])
    with pytest.raises(RowNotFoundError):
        snap.take(np.array([10_000], dtype=np.uint64), ["id"])


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=5), picks=st.lists(st.integers(0, 10_000), max_size=80))
def test_numeric_chunks_gather_like_numpy(sizes: list[int], picks: list[int]) -> None:
    total = sum(sizes)
    values = np.arange(total, dtype=np.float32) * 1.5
    bounds = np.cumsum([0, *sizes])
    column = pa.chunked_array([pa.array(values[a:b]) for a, b in zip(bounds[:-1], bounds[1:])], pa.float32())
    views = NumericChunks.of(column)
    assert views is not None and views.length == total
    offsets = np.array([p % total for p in picks] if total else [], dtype=np.int64)
    assert views.gather(offsets).tolist() == values[offsets].tolist()
    assert views.take(offsets).type == pa.float32()
    assert NumericChunks.of(pa.chunked_array([pa.array([1.0, None])])) is None  # nulls: not plain numbers
    assert NumericChunks.of(pa.chunked_array([pa.array(["a"])])) is None


def test_take_across_fragments_keeps_the_output_schema(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("t", [{"id": i, "s": f"row {i}"} for i in range(5)])
    t.add([{"id": i, "s": f"row {i}"} for i in range(5, 9)])
    snap = t.snapshot()
    ids = np.array([7, 1, 6, 0], dtype=np.uint64)  # two fragments, a string column: the Arrow path
    got = snap.take(ids, ["s", "id"])
    assert got.schema == snap.output_schema(["s", "id"], with_rowid=True)
    assert not got.schema.field("_rowid").nullable
    assert got.column("s").to_pylist() == [f"row {i}" for i in ids.tolist()]
