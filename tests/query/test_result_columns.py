"""The result columns of fused rows (:mod:`hybrid.query.result_columns`), and that a query sees at once
what another writer committed (the per-query freshness check of :meth:`hybrid.storage.versions.VersionLog.load_latest`).

The result columns are checked against a plain reference (each row's rank looked up by a linear
scan of the branch's list), for random branch lists that share some rows, miss others, repeat none
or are empty, short (compared all at once) or long (matched through a sort).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hybrid
from hybrid.query import result_columns
from hybrid.query.fusion import RRF


@dataclass
class _Branch:
    kind: str
    column: str
    ids: np.ndarray
    raw: np.ndarray


def _reference(rows: pa.Table, ids: np.ndarray, scores: np.ndarray, branches: list[_Branch]) -> pa.Table:
    out = rows.append_column(pa.field("_score", pa.float64()), pa.array(scores.astype(np.float64)))
    first_vector = True
    for b in branches:
        listed = b.ids.tolist()
        place = [listed.index(x) if x in listed else None for x in ids.tolist()]
        raw = [None if p is None else float(b.raw[p]) for p in place]
        rank = [None if p is None else p + 1 for p in place]
        if b.kind == "vector":
            suffix = "" if first_vector else f"_{b.column}"
            first_vector = False
            names = (f"_distance{suffix}", f"_vector_rank{suffix}")
        else:
            names = ("_bm25", "_fts_rank")
        out = out.append_column(pa.field(names[0], pa.float32()), pa.array(raw, pa.float32()))
        out = out.append_column(pa.field(names[1], pa.int32()), pa.array(rank, pa.int32()))
    return out


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(0, 30),
    kinds=st.lists(st.sampled_from(["vector", "fts"]), min_size=1, max_size=3),
    lengths=st.lists(st.sampled_from([0, 1, 5, 50, 4_000]), min_size=3, max_size=3),
    chunked=st.booleans(),
)
def test_result_columns_equal_the_reference(
    seed: int, n_rows: int, kinds: list[str], lengths: list[int], chunked: bool
) -> None:
    rng = np.random.default_rng(seed)
    universe = rng.choice(20_000, size=5_000, replace=False).astype(np.uint64)
    ids = rng.choice(universe, size=n_rows, replace=False)
    branches = []
    for i, kind in enumerate(kinds):
        listed = rng.choice(universe, size=lengths[i], replace=False)
        listed[: min(len(listed), n_rows // 2)] = ids[: min(len(listed), n_rows // 2)]  # some rows in this list
        rng.shuffle(listed)
        branches.append(_Branch(kind, f"v{i}", listed, rng.random(len(listed)).astype(np.float32)))
    scores = rng.random(n_rows)
    rows = pa.table({"_rowid": pa.array(ids, pa.uint64()), "id": pa.array(ids.astype(np.int64) * 3)})
    if chunked and n_rows > 1:
        rows = pa.concat_tables([rows.slice(0, 1), rows.slice(1)])
    got = result_columns.with_result_columns(rows, ids, scores, branches)  # type: ignore[arg-type]
    want = _reference(rows, ids, scores, branches)
    assert got.schema == want.schema
    assert got.to_pylist() == want.to_pylist()
    columns = [c.combine_chunks() for c in rows.columns]
    one_batch = result_columns.result_table(rows.schema, columns, ids, scores, branches)  # type: ignore[arg-type]
    assert one_batch.equals(want.combine_chunks())


def test_places_take_the_first_place_of_a_repeated_row() -> None:
    listed = np.array([7, 3, 7, 9], np.uint64)
    rows = np.array([7, 9, 4], np.uint64)
    at, found = result_columns.places(listed, rows)
    assert at.tolist()[:2] == [0, 3] and found.tolist() == [True, True, False]
    long = np.concatenate([listed, np.arange(100, 100 + result_columns.BROADCAST, dtype=np.uint64)])
    at, found = result_columns.places(long, rows)  # matched through a sort
    assert at.tolist()[:2] == [0, 3] and found.tolist() == [True, True, False]


def _docs(start: int, n: int, rng: np.random.Generator) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + n), pa.int64()),
            "text": [f"word{i % 7} row{start + i}" for i in range(n)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(rng.standard_normal(n * 4).astype(np.float32)), 4),
        }
    )


@pytest.mark.parametrize("kind", ["vector", "text", "hybrid"])
def test_a_commit_by_another_writer_is_seen_by_the_next_query(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(5)
    reader = hybrid.connect(tmp_path).create_table("t", _docs(0, 40, rng))
    reader.create_fts_index("text")
    reader.create_vector_index("vector")
    writer = hybrid.connect(tmp_path).open_table("t")  # another table object: its own version log and caches
    vec = np.ones(4, np.float32) * 5

    def ids() -> list[int]:
        if kind == "vector":
            q = reader.search(vec, query_type="vector")
        elif kind == "text":
            q = reader.search("row999", query_type="fts")
        else:
            q = reader.search("row999").vector(vec).fuse(RRF(60))
        return q.limit(3).select(["id"]).to_arrow().column("id").to_pylist()

    for _ in range(3):  # the reader's manifest and plans are cached
        assert 999 not in ids()
    new = _docs(999, 1, rng).set_column(2, "vector", pa.FixedSizeListArray.from_arrays(pa.array(vec), 4))
    writer.add(new)
    assert ids()[0] == 999
    writer.delete("id = 999")
    assert 999 not in ids()
