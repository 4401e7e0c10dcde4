"""The same operations on a table in S3 (moto over HTTP) and in a local folder give the same results.

Each scenario runs once on a local folder and once on ``s3://<bucket>/db``; then a second
connection with an empty cache folder (another machine) reads the S3 table back, so every result
it gives came from the store.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hybrid
from tests.conftest import make_rows
from tests.objstore.conftest import options

DIM = 8


def _query_vector(i: int) -> list[float]:
    return np.random.default_rng(10_000 + i).random(DIM, dtype=np.float32).tolist()


def searches(table: hybrid.Table) -> dict[str, Any]:
    """Text, vector, hybrid and filtered searches, rounded so that two runs compare exactly."""

    def rows(q: Any) -> list[tuple[Any, ...]]:
        out = q.limit(8).to_arrow()
        score = next(c for c in ("_score", "_relevance_score", "_distance") if c in out.column_names)
        return [(r["id"], round(float(r[score]), 5)) for r in out.select(["id", score]).to_pylist()]

    return {
        "text": rows(table.search("document number 42", query_type="fts")),
        "vector": rows(table.search(_query_vector(1), query_type="vector")),
        "hybrid": rows(table.search(query_type="hybrid").text("number 7").vector(_query_vector(2))),
        "filtered": rows(table.search(_query_vector(3), query_type="vector").where("lang = 'de' AND year > 2010")),
        "count": table.count_rows(),
        "take": table.take([0, 5, 17, 4]).select(["id", "text", "year"]).to_pylist(),
    }


def scenario(db: hybrid.Database) -> dict[str, Any]:
    """Create, index, search, delete, update, time travel, optimize, cleanup: what each step shows."""
    out: dict[str, Any] = {}
    table = db.create_table("docs", make_rows(range(400), dim=DIM))
    table.create_fts_index("text")
    table.create_vector_index("vector", metric="l2")
    table.create_scalar_index("year")
    out["indexed"] = searches(table)
    table.add(make_rows(range(400, 480), dim=DIM))
    table.delete("id % 10 = 3")
    table.update("id = 42", values={"text": "document number 42 revised", "year": 2030})
    out["changed"] = searches(table)
    out["v2"] = searches(table.checkout(2))
    table.tag("before-optimize")
    out["optimized_commits"] = len(table.optimize())
    out["optimized"] = searches(table)
    stats = table.cleanup(older_than=dt.timedelta(0))
    out["cleanup_versions"] = stats.versions_removed
    out["after_cleanup"] = searches(table)
    out["tagged"] = searches(table.checkout("before-optimize"))
    out["versions"] = [v.version for v in table.versions()]
    return out


def test_s3_table_gives_the_results_of_a_local_table(
    s3_db: hybrid.Database, s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    local = scenario(hybrid.connect(tmp_path / "local", upkeep=None))
    remote = scenario(s3_db)
    assert local["indexed"]["text"] and local["indexed"]["vector"] and local["indexed"]["filtered"]
    assert local["cleanup_versions"] > 0, "cleanup removed nothing: the scenario does not test it"
    assert remote == local

    # Another machine: an empty cache folder, everything read from the store.
    other = hybrid.connect(f"s3://{bucket}/db", storage_options=options(s3_endpoint, tmp_path / "other"))
    assert other.table_names() == ["docs"]
    table = other.open_table("docs")
    assert searches(table) == local["after_cleanup"]
    assert searches(table.checkout("before-optimize")) == local["tagged"]
    assert [v.version for v in table.versions()] == local["versions"]
    assert other.store is not None and other.store.requests()["get"] > 0


def test_cleanup_deletes_unreferenced_objects_from_the_store(s3_db: hybrid.Database) -> None:
    table = s3_db.create_table("docs", make_rows(range(50), dim=DIM))
    table.create_fts_index("text")
    table.add(make_rows(range(50, 60), dim=DIM))
    table.compact()
    store = s3_db.store
    assert store is not None
    before = {o["path"] for o in store.objects("docs")}
    stats = table.cleanup(older_than=dt.timedelta(0))
    after = {o["path"] for o in store.objects("docs")}
    assert stats.versions_removed == 3 and stats.files_removed > 0
    assert after < before
    assert all("/_versions/" not in k or k.endswith("/4.json") for k in after)
    # what is left is exactly what the newest version needs
    reread = hybrid.connect(f"{store.uri}", storage_options={**store.options, "cache_dir": str(store.mirror) + "-2"})
    assert reread.open_table("docs").count_rows() == 60


def test_drop_table_removes_every_object(s3_db: hybrid.Database) -> None:
    s3_db.create_table("gone", make_rows(range(10), dim=DIM))
    s3_db.create_table("kept", make_rows(range(10), dim=DIM))
    s3_db.drop_table("gone")
    assert s3_db.table_names() == ["kept"]
    assert s3_db.store is not None and s3_db.store.objects("gone") == []
    with pytest.raises(hybrid.TableNotFoundError):
        s3_db.open_table("gone")


def test_memory_and_file_uris(tmp_path: Path) -> None:
    mem = hybrid.connect("memory://", storage_options={"cache_dir": str(tmp_path / "cache")}, upkeep=None)
    mem.create_table("docs", make_rows(range(30), dim=DIM)).create_fts_index("text")
    assert mem.open_table("docs").search("document number 7", query_type="fts").limit(1).to_list()[0]["id"] == 7
    assert mem.store is not None and mem.store.requests()["put"] > 0
    folder = hybrid.connect(f"file://{tmp_path / 'plain'}", upkeep=None)
    folder.create_table("docs", make_rows(range(3), dim=DIM))
    assert folder.store is None and (tmp_path / "plain" / "docs" / "_versions" / "1.json").exists()


def test_a_table_dropped_and_created_again_elsewhere_is_read_anew(
    s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    def connect(cache: str) -> hybrid.Database:
        return hybrid.connect(f"s3://{bucket}/db", storage_options=options(s3_endpoint, tmp_path / cache), upkeep=None)

    a, b = connect("a"), connect("b")
    a.create_table("docs", make_rows(range(10), dim=DIM))
    assert b.open_table("docs").count_rows() == 10  # b's cache now holds version 1 of the first table
    a.drop_table("docs")
    a.create_table("docs", make_rows(range(100, 105), dim=DIM))
    assert sorted(b.open_table("docs").to_arrow(["id"])["id"].to_pylist()) == list(range(100, 105))


def test_upkeep_and_erasure_on_s3(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    """Background upkeep commits through the store; an erasure leaves the erased value in no object."""
    uri = f"s3://{bucket}/db"
    db = hybrid.connect(uri, storage_options=options(s3_endpoint, tmp_path / "a"))  # default upkeep: on
    rows = [{"id": i, "text": "secret-7f3a" if i == 7 else f"note {i}"} for i in range(40)]
    table = db.create_table("docs", rows)
    for k in range(12):  # small appends: upkeep compacts them in the background
        table.add([{"id": 100 + k, "text": f"later {k}"}])
    table.wait_for_upkeep()
    assert "compact" in [v.operation for v in table.versions()]
    report = table.erase("id = 7")
    assert report.erased_rows == 1
    store = db.store
    assert store is not None
    for obj in store.objects("docs"):
        data = store.get(obj["path"])
        assert data is not None and b"secret-7f3a" not in data, obj["path"]
    other = hybrid.connect(uri, storage_options=options(s3_endpoint, tmp_path / "b"), upkeep=None).open_table("docs")
    assert other.count_rows() == 51
    for v in other.versions():
        assert 7 not in other.checkout(v.version).to_arrow(["id"])["id"].to_pylist()
