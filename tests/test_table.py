"""Table reads and writes, versions, time travel, compaction and cleanup."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from tests.conftest import make_rows


def ids(table: hybrid.Table, where: str | None = None) -> list[int]:
    return sorted(table.to_arrow(["id"], where).column("id").to_pylist())


def test_create_infers_vector_column(docs: hybrid.Table) -> None:
    assert docs.schema.field("vector").type == pa.list_(pa.float32(), 4)
    assert docs.count_rows() == 20
    assert docs.version == 1


def test_accepts_arrow_pandas_polars_readers_and_dicts(db: hybrid.Database) -> None:
    import pandas as pd
    import polars as pl

    t = db.create_table("t", pa.table({"id": [0], "x": ["a"]}))
    t.add(pd.DataFrame({"id": [1, 2], "x": ["b", "c"]}))
    t.add(pl.DataFrame({"id": [3], "x": ["d"]}))
    t.add(pa.RecordBatchReader.from_batches(t.schema, pa.table({"id": [4], "x": ["e"]}).to_batches()))
    t.add({"id": [5], "x": ["f"]})
    t.add([{"id": 6, "x": "g"}])
    assert ids(t) == list(range(7))
    assert t.to_pandas()["x"].tolist() == list("abcdefg")
    assert t.to_polars()["id"].to_list() == list(range(7))


def test_rowids_are_stable_and_never_reused(docs: hybrid.Table) -> None:
    first = docs.to_arrow(["id"], with_rowid=True)
    assert first.column("_rowid").to_pylist() == list(range(20))
    docs.delete("id >= 15")
    docs.compact()
    docs.add(make_rows([100]))
    new = docs.to_arrow(["id"], "id = 100", with_rowid=True).column("_rowid")[0].as_py()
    assert new == 20  # not 15..19 of the deleted rows
    after = dict(zip(*docs.to_arrow(["_rowid", "id"], with_rowid=True).to_pydict().values()))
    assert all(after[r] == r for r in range(15))  # compaction kept row ids


def test_update_values_and_sql(docs: hybrid.Table) -> None:
    c = docs.update("id < 3", {"lang": "fr"})
    assert (c.updated, c.inserted, c.deleted) == (3, 0, 0)
    docs.update("id = 5", values_sql={"year": "year + 100", "text": "upper(text)"})
    row = docs.to_arrow(where="id = 5").to_pylist()[0]
    assert row["year"] == 2105 and row["text"] == "DOCUMENT NUMBER 5"
    assert ids(docs, "lang = 'fr'") == [0, 1, 2]
    assert docs.count_rows() == 20


def test_update_vector_validates(docs: hybrid.Table) -> None:
    docs.update("id = 1", {"vector": [1.0, 2.0, 3.0, 4.0]})
    assert docs.to_arrow(["vector"], "id = 1").column(0)[0].as_py() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(hybrid.VectorError, match="length 3"):
        docs.update("id = 1", {"vector": [1.0, 2.0, 3.0]})


def test_merge_insert_upserts_and_deletes_unmatched(docs: hybrid.Table) -> None:
    source = [{"id": 1, "text": "changed"}, {"id": 50, "text": "new"}]
    c = docs.merge_insert(source, on="id")
    assert (c.updated, c.inserted) == (1, 1)
    row = docs.to_arrow(where="id = 1").to_pylist()[0]
    assert row["text"] == "changed" and row["lang"] == "de"  # omitted columns keep their values
    assert docs.count_rows() == 21
    c = docs.merge_insert([{"id": 2, "text": "only"}], on="id", when_not_matched_by_source="delete")
    assert ids(docs) == [2] and c.deleted == 20


def test_merge_insert_ignore_modes(docs: hybrid.Table) -> None:
    docs.merge_insert([{"id": 1, "text": "x"}, {"id": 99, "text": "y"}], on="id", when_matched="ignore")
    assert docs.to_arrow(["text"], "id = 1").column(0)[0].as_py() == "document number 1"
    assert 99 in ids(docs)
    docs.merge_insert([{"id": 2, "text": "x"}, {"id": 98, "text": "y"}], on="id", when_not_matched="ignore")
    assert 98 not in ids(docs)
    assert docs.to_arrow(["text"], "id = 2").column(0)[0].as_py() == "x"


def test_merge_insert_on_two_keys(db: hybrid.Database) -> None:
    t = db.create_table("t", [{"a": 1, "b": "x", "v": 1}, {"a": 1, "b": "y", "v": 2}])
    t.merge_insert([{"a": 1, "b": "y", "v": 20}, {"a": 2, "b": "y", "v": 3}], on=["a", "b"])
    assert sorted(t.to_arrow().to_pylist(), key=lambda r: (r["a"], r["b"])) == [
        {"a": 1, "b": "x", "v": 1},
        {"a": 1, "b": "y", "v": 20},
        {"a": 2, "b": "y", "v": 3},
    ]


def test_scan_streams_batches_with_filter(docs: hybrid.Table) -> None:
    docs.add(make_rows(range(20, 40)))
    batches = list(docs.scan(["id", "year"], where="lang = 'en'", batch_size=4))
    assert all(b.num_rows <= 4 for b in batches)
    assert all(b.schema.names == ["id", "year"] for b in batches)
    got = sorted(i for b in batches for i in b.column("id").to_pylist())
    assert got == list(range(0, 40, 2))


def test_versions_checkout_restore(docs: hybrid.Table) -> None:
    docs.add(make_rows([20]))
    docs.delete("id < 10")
    history = docs.versions()
    assert [(v.version, v.operation, v.num_rows) for v in history] == [
        (1, "create", 20),
        (2, "append", 21),
        (3, "delete", 11),
    ]
    assert history[0].timestamp <= history[-1].timestamp
    old = docs.checkout(2)
    assert old.read_only and old.count_rows() == 21 and ids(old) == list(range(21))
    with pytest.raises(hybrid.ReadOnlyError, match="read-only checkout of version 2"):
        old.add(make_rows([99]))
    docs.restore(1)
    assert docs.version == 4 and ids(docs) == list(range(20))
    assert ids(docs.checkout(3)) == list(range(10, 21))  # history is kept
    with pytest.raises(hybrid.VersionNotFoundError, match="version 42 does not exist"):
        docs.checkout(42)


def test_restore_never_reuses_rowids(docs: hybrid.Table) -> None:
    docs.add(make_rows([20, 21]))  # row ids 20, 21
    docs.restore(1)
    docs.add(make_rows([22]))
    assert docs.to_arrow(["id"], "id = 22", with_rowid=True).column("_rowid")[0].as_py() == 22


def test_compact_merges_fragments_and_purges_deletions(docs: hybrid.Table) -> None:
    for i in range(20, 30):
        docs.add(make_rows([i]))
    docs.delete("id % 3 = 0")
    before = docs.to_arrow(with_rowid=True).sort_by("_rowid")
    assert len(docs.snapshot().manifest.fragments) == 11
    docs.compact()
    manifest = docs.snapshot().manifest
    assert len(manifest.fragments) == 1 and manifest.fragments[0].deleted_rows == 0
    assert docs.to_arrow(with_rowid=True).sort_by("_rowid").equals(before)
    assert docs.take([1, 29]).column("id").to_pylist() == [1, 29]


def test_cleanup_removes_unreachable_files_only(docs: hybrid.Table) -> None:
    for i in range(20, 25):
        docs.add(make_rows([i]))
    docs.delete("id < 5")
    docs.compact()
    content = docs.to_arrow(with_rowid=True)
    kept = docs.cleanup(older_than=dt.timedelta(days=1))
    assert kept.files_removed == 0 and kept.versions_removed == 0
    stats = docs.cleanup(older_than=dt.timedelta(0))
    assert stats.versions_removed == 7 and stats.files_removed > 0 and stats.bytes_removed > 0
    assert [v.version for v in docs.versions()] == [8]
    assert docs.to_arrow(with_rowid=True).equals(content)
    on_disk = {p.relative_to(docs.path).as_posix() for p in docs.path.rglob("*.arrow")}
    assert on_disk == set(docs.snapshot().manifest.file_paths())


def test_empty_table_from_schema(db: hybrid.Database) -> None:
    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), 3)), ("blob", pa.large_binary())])
    t = db.create_table("empty", schema=schema)
    assert t.count_rows() == 0 and t.to_arrow().schema == schema
    t.add([{"id": 1, "vector": [1, 2, 3], "blob": b"\x00\x01"}])
    assert t.to_arrow().to_pylist() == [{"id": 1, "vector": [1.0, 2.0, 3.0], "blob": b"\x00\x01"}]


def test_several_vector_columns(db: hybrid.Database) -> None:
    rows = [{"id": i, "title_vec": [float(i)] * 2, "body_vec": [float(i)] * 8} for i in range(5)]
    t = db.create_table("multi", rows)
    assert t.schema.field("title_vec").type == pa.list_(pa.float32(), 2)
    assert t.schema.field("body_vec").type == pa.list_(pa.float32(), 8)
    v = t.take([3], ["body_vec"]).column("body_vec").to_numpy(zero_copy_only=False)[0]
    np.testing.assert_array_equal(v, np.full(8, 3.0, dtype=np.float32))


def test_tags_name_versions_and_survive_cleanup(docs: hybrid.Table) -> None:
    docs.tag("original")
    docs.delete("id < 10")
    docs.add(make_rows([99]))
    assert docs.tags() == {"original": 1}
    assert ids(docs.checkout("original")) == list(range(20))
    with pytest.raises(hybrid.HybridError, match="already exists"):
        docs.tag("original", 2)
    docs.cleanup(older_than=dt.timedelta(0))
    assert [v.version for v in docs.versions()] == [1, 3]
    assert ids(docs.checkout("original")) == list(range(20))
    docs.restore("original")
    assert ids(docs) == list(range(20))
    docs.delete_tag("original")
    with pytest.raises(hybrid.VersionNotFoundError, match="no tag"):
        docs.checkout("original")


def test_parquet_import_and_export(db: hybrid.Database, tmp_path: Path) -> None:
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1, 2], "text": ["a", "b"]}), tmp_path / "in.parquet")
    t = db.create_table("pq", ds.dataset(tmp_path / "in.parquet"))
    pq.write_table(t.to_arrow(), tmp_path / "out.parquet")
    assert pq.read_table(tmp_path / "out.parquet").to_pylist() == [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}]


def test_rows_may_bring_columns_the_first_row_lacks(db: hybrid.Database) -> None:
    t = db.create_table("sparse", [{"id": 1}, {"id": 2, "note": "kept"}])
    assert t.to_arrow().to_pylist() == [{"id": 1, "note": None}, {"id": 2, "note": "kept"}]
    t.add([{"id": 3}, {"id": 4, "note": "also kept"}])
    assert t.to_arrow(columns=["note"])["note"].to_pylist()[-1] == "also kept"


def test_take_and_search_without_columns(docs: hybrid.Table) -> None:
    assert docs.take([3, 1], columns=[]).to_pylist() == [{"_rowid": 3}, {"_rowid": 1}]


def test_threads_sharing_a_table_read_while_it_grows(db: hybrid.Database) -> None:
    """Readers on one Table object never see a version that does not exist yet, nor go back in time."""
    import threading

    table = db.create_table("shared", make_rows(range(5)))
    reader = db.open_table("shared")
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        last = 0
        try:
            while not done.is_set():
                version = reader.version
                assert version >= last
                last = version
                assert reader.checkout(version).count_rows() == 5 + (version - 1)
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised by the test
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(6)]
    for th in threads:
        th.start()
    for i in range(40):
        table.add(make_rows([100 + i]))
    done.set()
    for th in threads:
        th.join()
    assert not errors, errors[0]
    assert reader.version == 41
