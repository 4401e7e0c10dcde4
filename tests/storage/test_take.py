"""Random access by row id across many fragments, and lazy blob reads."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import hybrid
from tests.conftest import make_rows


def test_take_spread_over_many_fragments_in_request_order(db: hybrid.Database) -> None:
    t = db.create_table("t", make_rows(range(50)))
    for start in range(50, 1000, 50):
        t.add(make_rows(range(start, start + 50)))
    t.delete("id % 7 = 0")
    t.compact(target_rows=120)  # mix of contiguous and explicit row-id fragments
    t.add(make_rows(range(1000, 1010)))
    assert len(t.snapshot().manifest.fragments) > 5
    live = t.to_arrow(["id"], with_rowid=True)
    by_rowid = dict(zip(live.column("_rowid").to_pylist(), live.column("id").to_pylist()))
    rng = np.random.default_rng(7)
    wanted = rng.choice(np.array(sorted(by_rowid)), size=300, replace=True)
    got = t.take(wanted, ["id", "vector"])
    assert got.column("_rowid").to_pylist() == wanted.tolist()
    assert got.column("id").to_pylist() == [by_rowid[r] for r in wanted.tolist()]
    expected_vectors = [make_rows([by_rowid[r]])[0]["vector"] for r in wanted.tolist()]
    np.testing.assert_allclose(np.array(got.column("vector").to_pylist()), np.array(expected_vectors), rtol=1e-6)


def test_take_empty_and_single(docs: hybrid.Table) -> None:
    empty = docs.take([])
    assert empty.num_rows == 0 and empty.schema.names == ["_rowid", *docs.schema.names]
    assert docs.take(np.array([5], dtype=np.uint64), ["text"]).to_pylist() == [
        {"_rowid": 5, "text": "document number 5"}
    ]


def test_take_of_one_blob_does_not_read_the_others(db: hybrid.Database) -> None:
    blob_size, n = 4 << 20, 24  # 96 MiB of blobs
    rng = np.random.default_rng(0)
    blobs = [rng.integers(0, 255, blob_size, dtype=np.uint8).tobytes() for _ in range(n)]
    schema = pa.schema([("id", pa.int64()), ("blob", pa.large_binary())])
    t = db.create_table("blobs", pa.table({"id": list(range(n)), "blob": blobs}, schema=schema))
    del blobs
    reopened = db.open_table("blobs")
    before = pa.total_allocated_bytes()
    row = reopened.take([17])
    allocated = pa.total_allocated_bytes() - before
    assert row.column("id")[0].as_py() == 17
    expected = np.random.default_rng(0)
    for _ in range(17):
        expected.integers(0, 255, blob_size, dtype=np.uint8)
    assert row.column("blob")[0].as_py() == expected.integers(0, 255, blob_size, dtype=np.uint8).tobytes()
    assert allocated < 2 * blob_size, f"take of one row allocated {allocated} bytes"
    assert t.count_rows() == n
