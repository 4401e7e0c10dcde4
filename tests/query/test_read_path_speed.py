"""The read path's shortcuts answer exactly as the general paths they skip.

* ``take_rows`` gathers plain-number columns through numpy views of their chunks: the same
  values, types, order and schema as pyarrow's own take, for every numeric type, one chunk or
  several, with repeated and unsorted offsets; columns with nulls keep the Arrow path.
* ``Snapshot.take`` builds its result with the output schema (``_rowid`` not nullable) without
  casting every column.
* The byte-bounded cache (the filter cache) counts a value that grew after it was handed out
  (gathered vectors, masks) at the next call, without measuring every entry per call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hybrid
from hybrid.errors import RowNotFoundError
from hybrid.index.cache import SearchCache
from hybrid.storage.snapshot import take_rows

NUMERIC = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32(), pa.uint64()]
NUMERIC += [pa.float16(), pa.float32(), pa.float64()]


def _chunked(values: np.ndarray, sizes: list[int], type_: pa.DataType) -> pa.ChunkedArray:
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    return pa.chunked_array([pa.array(values[a : a + n], type_) for a, n in zip(starts, sizes, strict=True)], type_)


@settings(max_examples=150, deadline=None)
@given(
    type_no=st.integers(0, len(NUMERIC) - 1),
    sizes=st.lists(st.integers(0, 30), min_size=1, max_size=4),
    picks=st.lists(st.integers(0, 10_000), max_size=25),
    with_null=st.booleans(),
)
def test_numeric_take_matches_pyarrow(type_no: int, sizes: list[int], picks: list[int], with_null: bool) -> None:
    type_ = NUMERIC[type_no]
    total = sum(sizes)
    values = (np.arange(total) % 100).astype(type_.to_pandas_dtype())
    column = _chunked(values, sizes, type_)
    if with_null and total:  # a column with a null takes the Arrow path
        column = pa.chunked_array([pa.array([None], type_), *column.chunks], type_)
        total += 1
    table = pa.table({"n": column, "m": pa.chunked_array([pa.array(np.arange(total, dtype=np.int64))])})
    offsets = np.array([p % total for p in picks] if total else [], dtype=np.int64)
    got = take_rows(table, offsets)
    want = table.take(pa.array(offsets, pa.int64()))
    assert got.schema == table.schema
    assert got.to_pylist() == want.to_pylist()


def test_take_keeps_the_output_schema_and_request_order(tmp_path: Path) -> None:
    n = 70_000  # more than one stored record batch (65,536 rows): a multi-chunk file
    rng = np.random.default_rng(3)
    data = pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "score": pa.array(rng.random(n).astype(np.float32)),
            "label": pa.array([f"row {i}" for i in range(n)]),
        }
    )
    t = hybrid.connect(tmp_path).create_table("t", data)
    snap = t.snapshot()
    assert snap.read_fragment(snap.manifest.fragments[0], ["id"]).column(0).num_chunks > 1
    ids = np.array([69_999, 3, 65_536, 3, 40_000, 65_535], dtype=np.uint64)
    got = snap.take(ids, ["id", "score"])
    assert got.schema == snap.output_schema(["id", "score"], with_rowid=True)
    assert not got.schema.field("_rowid").nullable
    assert got.column("_rowid").to_pylist() == ids.tolist()
    assert got.column("id").to_pylist() == ids.astype(np.int64).tolist()
    assert got.column("score").to_pylist() == data.column("score").take(pa.array(ids.astype(np.int64))).to_pylist()
    mixed = snap.take(ids, ["label", "id"])  # a string column alongside: the Arrow path, same answer
    assert mixed.column("label").to_pylist() == [f"row {i}" for i in ids.tolist()]
    with pytest.raises(RowNotFoundError):
        snap.take(np.array([n + 5], dtype=np.uint64), ["id"])


class _Growing:
    """A cached value that grows after it is handed out, like an allowed set's gathered vectors."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


def test_a_value_grown_after_it_was_handed_out_counts_at_the_next_call() -> None:
    cache = SearchCache()
    first = cache.remember("filters", "a", lambda: _Growing(10), keep=100, max_bytes=100)
    first.nbytes = 90  # grown by its user (vectors gathered) after the call
    cache.remember("filters", "b", lambda: _Growing(20), keep=100, max_bytes=100)
    assert list(cache.stores["filters"]) == ["b"]  # 90 + 20 > 100: the grown, older one went
    cache.remember("filters", "c", lambda: _Growing(30), keep=100, max_bytes=100)
    assert list(cache.stores["filters"]) == ["b", "c"]  # 50 bytes: both stay
    assert set(cache.sizes[id(cache.stores["filters"])].each) == {"b", "c"}  # no size kept for a dropped key
    cache.clear()
    assert not cache.sizes
