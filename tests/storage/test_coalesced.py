"""Small input batches are joined before they are written: a data file of many tiny record batches
reads and searches several times slower than the same rows in one batch."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import hybrid
from hybrid.storage.writer import coalesced


def _batches_in_data_files(root: Path) -> list[int]:
    return sorted(pa.ipc.open_file(str(p)).num_record_batches for p in (root / "data").glob("*.arrow"))


def _one_row_tables(n: int, start: int = 0) -> pa.Table:
    return pa.concat_tables(
        pa.table({"id": [i], "text": [f"row {i}"], "vector": pa.array([[float(i), 1.0]], pa.list_(pa.float32(), 2))})
        for i in range(start, start + n)
    )


def test_a_table_of_many_one_row_chunks_is_written_as_one_batch(tmp_path: Path) -> None:
    data = _one_row_tables(300)
    assert data.column("id").num_chunks == 300
    t = hybrid.connect(tmp_path).create_table("docs", data)
    assert _batches_in_data_files(tmp_path / "docs") == [1]
    assert t.to_arrow(["id", "text"]).to_pydict() == {"id": list(range(300)), "text": [f"row {i}" for i in range(300)]}


def test_an_add_of_a_reader_of_small_batches_is_written_as_one_batch(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("docs", _one_row_tables(1))
    more = _one_row_tables(50, start=1)
    t.add(pa.RecordBatchReader.from_batches(more.schema, more.to_batches()))
    assert _batches_in_data_files(tmp_path / "docs") == [1, 1]
    assert t.to_arrow(["id"]).column("id").to_pylist() == list(range(51))
    assert t.search([10.0, 1.0], query_type="vector").limit(1).to_list()[0]["id"] == 10


def test_coalesced_keeps_order_joins_runs_of_small_batches_and_passes_large_ones() -> None:
    def batch(lo: int, n: int) -> pa.RecordBatch:
        return pa.record_batch({"x": list(range(lo, lo + n))})

    big = batch(10, 8)
    out = list(coalesced([batch(0, 3), batch(3, 3), batch(6, 4), big, batch(18, 1), batch(19, 2)], rows=8))
    assert [b.num_rows for b in out] == [10, 8, 3]
    assert out[1] is big  # a batch of `rows` rows or more is not copied
    assert [v for b in out for v in b.column(0).to_pylist()] == list(range(21))


def test_a_failed_batch_midway_leaves_the_table_as_it_was(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("docs", _one_row_tables(3))
    before = sorted(p.name for p in (tmp_path / "docs" / "data").iterdir())
    good = _one_row_tables(5, start=3).to_batches()
    nan = pa.array([[float("nan"), 1.0]], pa.list_(pa.float32(), 2))
    bad = pa.record_batch({"id": [99], "text": ["x"], "vector": nan})
    with pytest.raises(hybrid.errors.VectorError):
        t.add(iter([*good, bad]))
    assert sorted(p.name for p in (tmp_path / "docs" / "data").iterdir()) == before
    assert t.count_rows() == 3
