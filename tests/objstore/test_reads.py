"""Reads from S3: take() by ranged requests bounded by the file layout; index folders cached with a size limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.storage.ranged import RangedTable
from tests.objstore.conftest import options

BATCH = 1_024  # batches of this size or more are written as they come (hybrid.storage.writer.coalesced)
BATCHES = 20
DIM = 16


def table_data(batches: int = BATCHES) -> pa.Table:
    """`batches` record batches of 1,024 rows (one data file when written at once)."""
    rng = np.random.default_rng(0)
    n = BATCH * batches
    vectors = rng.random((n, DIM), dtype=np.float32)
    data = pa.table(
        {
            "id": pa.array(np.arange(n)),
            "text": pa.array([f"row {i} " + "lorem ipsum " * 8 for i in range(n)]),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
        }
    )
    return pa.Table.from_batches(data.to_batches(max_chunksize=BATCH))


def buffers(type_: pa.DataType) -> int:
    """Buffers an IPC record batch stores for one column of `type_` (children included)."""
    return len(pa.array([], type=type_).buffers())


def test_take_reads_only_the_batches_and_columns_it_needs(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    uri = f"s3://{bucket}/db"
    hybrid.connect(uri, storage_options=options(s3_endpoint, tmp_path / "writer"), upkeep=None).create_table(
        "docs", table_data()
    )
    db = hybrid.connect(uri, storage_options=options(s3_endpoint, tmp_path / "reader"), upkeep=None)
    store = db.store
    assert store is not None
    table = db.open_table("docs")
    assert table.version == 1  # the manifest is read (one get) before the count starts
    (data_file,) = [o for o in store.objects("docs/data")]
    ranged = RangedTable(store, data_file["path"])
    assert ranged.num_batches == BATCHES  # the layout the bound below is derived from

    rng = np.random.default_rng(1)
    wanted = np.sort(rng.choice(np.arange(3 * BATCH, 5 * BATCH), 100, replace=False))  # batches 3 and 4
    before = store.requests()
    got = table.take(wanted.tolist())
    used = {k: v - before.get(k, 0) for k, v in store.requests().items()}

    touched = 2
    schema = table.schema
    per_batch = 1 + sum(buffers(schema.field(c).type) for c in ("id", "text", "vector"))  # header + buffers
    bound = 1 + BATCHES + touched * per_batch  # footer, each batch's header once, the touched batches' buffers
    assert 0 < used["range"] <= bound, (used, bound)
    assert used.get("get", 0) == 0, "take() downloaded a whole file"
    assert used["bytes_read"] < data_file["size"] / 4, (used["bytes_read"], data_file["size"])
    assert got["id"].to_pylist() == wanted.tolist()
    expected = table_data().take(pa.array(wanted))
    assert got.select(["text", "vector"]).equals(expected.select(["text", "vector"]))

    # the footer and batch lengths are kept: the next take pays only for the buffers of its batch
    before = store.requests()
    one = table.take([7 * BATCH + 5], columns=["id"])
    used = {k: v - before.get(k, 0) for k, v in store.requests().items()}
    assert one["id"].to_pylist() == [7 * BATCH + 5]
    assert used["range"] <= 1 + buffers(pa.int64()), used


def test_index_folders_are_cached_within_the_size_limit(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    uri = f"s3://{bucket}/db"
    writer = hybrid.connect(uri, storage_options=options(s3_endpoint, tmp_path / "writer"), upkeep=None)
    source = writer.create_table("docs", table_data(3))
    source.create_fts_index("text")
    source.create_vector_index("vector", metric="l2")
    query = np.random.default_rng(5).random(DIM, dtype=np.float32)
    text_hits = source.search("row 1234", query_type="fts").limit(3).to_arrow()["id"].to_pylist()
    vector_hits = source.search(query, query_type="vector").limit(3).to_arrow()["id"].to_pylist()

    limit = 64 * 1024  # smaller than the two index folders together
    opts = options(s3_endpoint, tmp_path / "reader", cache_size=limit)
    table = hybrid.connect(uri, storage_options=opts, upkeep=None).open_table("docs")
    store = table_store = hybrid.connect(uri, storage_options=opts).store
    assert store is not None and table_store is store  # one store (and cache) per URI and options
    assert table.search("row 1234", query_type="fts").limit(3).to_arrow()["id"].to_pylist() == text_hits
    assert table.search(query, query_type="vector").limit(3).to_arrow()["id"].to_pylist() == vector_hits
    mirror_indexes = [p for p in (store.mirror / "docs" / "indexes").iterdir()]
    assert len(mirror_indexes) == 1, "the least recently used index folder was not evicted"
    assert store.cached_bytes() <= max(limit, sum(f.stat().st_size for f in mirror_indexes[0].rglob("*")))

    # evicted, then needed by a new reader: fetched again, same results
    gets = store.requests()["get"]
    again = hybrid.connect(uri, storage_options=opts, upkeep=None).open_table("docs")
    assert again.search("row 1234", query_type="fts").limit(3).to_arrow()["id"].to_pylist() == text_hits
    assert store.requests()["get"] > gets


@pytest.mark.parametrize("columns", [["id"], ["id", "text", "vector"]])
def test_take_after_delete_matches_local(s3_endpoint: str, bucket: str, tmp_path: Path, columns: list[str]) -> None:
    local = hybrid.connect(tmp_path / "local", upkeep=None).create_table("docs", table_data())
    s3 = hybrid.connect(f"s3://{bucket}/db", storage_options=options(s3_endpoint, tmp_path / "w"), upkeep=None)
    s3.create_table("docs", table_data())
    for t in (local,):
        t.delete("id % 7 = 0")
    s3.open_table("docs").delete("id % 7 = 0")
    reader = hybrid.connect(f"s3://{bucket}/db", storage_options=options(s3_endpoint, tmp_path / "r"))
    ids = [1, 19_998, 8, 4_000, 2]
    assert reader.open_table("docs").take(ids, columns=columns).equals(local.take(ids, columns=columns))


def test_read_consistency_interval(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    """A reader may reuse its listing of versions for a while; its own writes still commit on top of the newest."""
    uri = f"s3://{bucket}/db"
    writer = hybrid.connect(uri, storage_options=options(s3_endpoint, tmp_path / "w"), upkeep=None)
    writer.create_table("docs", table_data(1))
    opts = options(s3_endpoint, tmp_path / "r", read_consistency_interval=3600)
    reader = hybrid.connect(uri, storage_options=opts, upkeep=None).open_table("docs")
    assert reader.count_rows() == BATCH
    store = reader_store = hybrid.connect(uri, storage_options=opts).store
    assert store is not None
    lists = store.requests()["list"]
    assert reader.count_rows() == BATCH and store.requests()["list"] == lists  # the listing was reused
    writer.open_table("docs").delete("id < 10")  # version 2, unseen by the reader for now
    assert reader.count_rows() == BATCH
    commit = reader.delete(f"id >= {BATCH - 10}")  # publishing version 2 fails, the listing is refreshed: 3 wins
    assert commit.version == 3 and reader_store is store
    assert reader.count_rows() == BATCH - 20


def test_take_of_text_in_compressed_blocks_by_ranged_reads(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    from hybrid.storage import blocks

    n = 5_000
    data = pa.table(
        {"id": np.arange(n), "text": [f"row {i} " + "lorem ipsum dolor " * (10 + i % 30) for i in range(n)]}
    )
    data = pa.Table.from_batches(data.to_batches(max_chunksize=BATCH))
    uri = f"s3://{bucket}/db"
    hybrid.connect(uri, storage_options=options(s3_endpoint, tmp_path / "w"), upkeep=None).create_table("docs", data)
    db = hybrid.connect(uri, storage_options=options(s3_endpoint, tmp_path / "r"), upkeep=None)
    assert db.store is not None
    (data_file,) = [o for o in db.store.objects("docs/data")]
    ranged = RangedTable(db.store, data_file["path"])
    assert blocks.encoded(ranged.schema.field("text"))  # long text: stored in blocks
    ids = [4_999, 0, 1_000, 999, 2_500, 7, 2_500]
    table = db.open_table("docs")
    assert table.version == 1  # the manifest is read (one get) before the count starts
    before = db.store.requests()
    got = table.take(ids, columns=["text"])
    assert db.store.requests().get("get", 0) == before.get("get", 0), "take() downloaded a whole file"
    assert got.column("text").to_pylist() == [data.column("text")[i].as_py() for i in ids]
