"""A filter's gathered vectors carried from version to version by the commits' delta.

Each write makes a new version; the allowed set of a filter at the new version takes the
last version's gathered matrix (rows no longer allowed masked out) plus the rows allowed
since. The oracle: a fresh gather of the same version's allowed rows, and a search from a
cold cache, after every step of appends (with and without vectors) and deletes (of old
rows and of rows added since the gather).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.index.carried_vectors import CarriedVectors
from hybrid.index.exact import RowVectors, row_vectors
from hybrid.index.view import IndexedSnapshot
from hybrid.query import allowed as allowed_mod
from hybrid.query.allowed import cached_allowed
from hybrid.query.filter import compile_filter

DIM = 12
WHERE = "tenant IN ('a', 'b')"


def _rows(start: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    ids = np.arange(start, start + n)
    mask = pa.array([(i % 13) == 5 for i in ids])  # some rows without a vector
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "tenant": pa.array(["abcd"[i % 4] for i in ids]),
            "text": [f"row {i} word{i % 7}" for i in ids],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), DIM, mask=mask),
        }
    )


@pytest.fixture
def table(tmp_path: Path) -> hybrid.Table:
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("docs", _rows(0, 2_000, 1))
    t.create_fts_index(["text"])
    t.create_vector_index("vector", metric="cosine")
    return t


def _fresh(view: IndexedSnapshot, metric: str) -> RowVectors:
    flt = compile_filter(WHERE, view.schema)
    return row_vectors(view, "vector", allowed_mod.allowed_rows(view, flt).ids, metric)


@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_carried_vectors_answer_as_a_fresh_gather_after_every_write(table: hybrid.Table, metric: str) -> None:
    rng = np.random.default_rng(3)
    next_id, added = 10_000, []
    carried_seen = 0
    for step in range(40):
        view = table.indexed_snapshot()
        flt = compile_filter(WHERE, view.schema)
        gathered = cached_allowed(view, flt).vectors(view, "vector", metric)
        carried_seen += isinstance(gathered, CarriedVectors)
        fresh = _fresh(view, metric)
        np.testing.assert_array_equal(gathered.ids, fresh.ids)
        for _ in range(3):
            q = rng.standard_normal(DIM).astype(np.float32)
            got, want = gathered.search(q, metric, 10), fresh.search(q, metric, 10)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-6)
        roll = step % 4
        if roll in (0, 1):  # an append of 1-3 rows
            n = int(rng.integers(1, 4))
            table.add(_rows(next_id, n, 100 + step))
            added += range(next_id, next_id + n)
            next_id += n
        elif roll == 2 and added:  # a row added since the gather
            table.delete(f"id = {added.pop(int(rng.integers(len(added))))}")
        else:  # an old row, allowed by the filter
            table.delete(f"id = {int(rng.integers(0, 500)) * 4}")
    assert carried_seen >= 30, "the versions after the first carried the gathered vectors"


def test_a_restore_or_a_big_delete_gathers_afresh(table: hybrid.Table) -> None:
    q = np.random.default_rng(4).standard_normal(DIM).astype(np.float32)
    first = table.search(q).where(WHERE).limit(5).to_arrow().column("id").to_pylist()
    before = table.version
    table.delete(f"id = {first[0]}")
    assert first[0] not in table.search(q).where(WHERE).limit(5).to_arrow().column("id").to_pylist()
    table.restore(before)  # the deleted row is live again, below the carried matrix's ids
    view = table.indexed_snapshot()
    gathered = cached_allowed(view, compile_filter(WHERE, view.schema)).vectors(view, "vector", "cosine")
    assert not isinstance(gathered, CarriedVectors)
    assert table.search(q).where(WHERE).limit(5).to_arrow().column("id").to_pylist() == first
    table.delete("id < 1000 AND tenant = 'a'")  # a quarter of the allowed rows at once
    view = table.indexed_snapshot()
    gathered = cached_allowed(view, compile_filter(WHERE, view.schema)).vectors(view, "vector", "cosine")
    assert not isinstance(gathered, CarriedVectors)
    np.testing.assert_array_equal(gathered.ids, _fresh(view, "cosine").ids)


def test_searches_between_writes_match_a_cold_cache(table: hybrid.Table, tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    for step in range(12):
        table.add(_rows(20_000 + 3 * step, 3, 200 + step))
        if step % 3 == 2:
            table.delete(f"id = {20_000 + 3 * step - 2}")
        q = rng.standard_normal(DIM).astype(np.float32)
        warm = table.search(q).where(WHERE).limit(10).to_arrow()
        cold = hybrid.connect(tmp_path / "db", upkeep=None).open_table("docs").search(q).where(WHERE).limit(10)
        assert warm.column("_rowid").to_pylist() == cold.to_arrow().column("_rowid").to_pylist()
