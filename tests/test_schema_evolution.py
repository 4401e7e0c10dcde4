"""add_columns / drop_columns / rename_column never rewrite existing data files."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from tests.conftest import make_rows


def data_files(t: hybrid.Table) -> dict[str, tuple[int, float]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime) for p in (t.path / "data").iterdir()}


def test_add_columns_from_sql(docs: hybrid.Table) -> None:
    docs.add_columns({"year2": "year * 2", "shout": "upper(lang)"})
    row = docs.to_arrow(where="id = 3").to_pylist()[0]
    assert row["year2"] == 4006 and row["shout"] == "DE"


def test_add_columns_from_function_writes_only_the_new_column(docs: hybrid.Table) -> None:
    docs.add(make_rows(range(20, 45)))
    docs.delete("id % 4 = 0")
    before = data_files(docs)

    def embed(batch: pa.RecordBatch) -> pa.Table:
        ids = np.asarray(batch.column("id"), dtype=np.float32)
        return pa.table({"emb": list(np.stack([ids, -ids, ids * 2], axis=1))})

    docs.add_columns(embed, input_columns=["id"], batch_size=7)
    after = data_files(docs)
    assert {k: after[k] for k in before} == before  # old files untouched
    new_files = set(after) - set(before)
    assert len(new_files) == 2  # one per fragment
    new_bytes = sum(after[k][0] for k in new_files)
    live_vector_bytes = docs.count_rows() * 3 * 4
    physical_rows = sum(f.physical_rows for f in docs.snapshot().manifest.fragments)
    assert new_bytes <= physical_rows * 3 * 4 * 1.1 + 4096  # the column itself plus IPC framing
    assert live_vector_bytes > 0
    assert docs.schema.field("emb").type == pa.list_(pa.float32(), 3)
    for row in docs.to_arrow(["id", "emb"]).to_pylist():
        assert row["emb"] == [row["id"], -row["id"], 2 * row["id"]]


def test_add_columns_from_values_in_scan_order_and_by_rowid(docs: hybrid.Table) -> None:
    docs.delete("id < 5")
    order = docs.to_arrow(["id"]).column("id").to_pylist()
    docs.add_columns(pa.table({"neg": [-i for i in order]}))
    docs.add_columns(pa.table({"_rowid": pa.array([7, 9], pa.uint64()), "flag": [True, False]}))
    rows = {r["id"]: r for r in docs.to_arrow().to_pylist()}
    assert all(r["neg"] == -i for i, r in rows.items())
    assert rows[7]["flag"] is True and rows[9]["flag"] is False and rows[8]["flag"] is None


def test_add_null_column_is_metadata_only(docs: hybrid.Table) -> None:
    before = data_files(docs)
    docs.add_columns(pa.field("note", pa.string()))
    assert data_files(docs) == before
    assert docs.to_arrow(["note"]).column(0).null_count == 20
    docs.add([{"id": 99, "note": "hi"}])
    assert docs.to_arrow(["note"], "id = 99").column(0)[0].as_py() == "hi"


def test_drop_and_rename_keep_data_files(docs: hybrid.Table) -> None:
    before = data_files(docs)
    docs.rename_column("text", "body")
    docs.drop_columns(["lang"])
    assert data_files(docs) == before
    assert docs.schema.names == ["id", "body", "year", "vector"]
    assert docs.to_arrow(["body"], "id = 2").column(0)[0].as_py() == "document number 2"
    # a new column with a dropped name is a new column, not the old data
    docs.add_columns(pa.field("lang", pa.string()))
    assert docs.to_arrow(["lang"]).column(0).null_count == 20
    assert "lang" in docs.checkout(1).schema.names  # old versions keep their schema
    assert docs.checkout(1).to_arrow(["lang"], "id = 0").column(0)[0].as_py() == "en"


def test_add_columns_on_checkout_is_refused(docs: hybrid.Table) -> None:
    with pytest.raises(hybrid.ReadOnlyError):
        docs.checkout(1).add_columns({"x": "1"})
    assert os.path.isdir(docs.path)
