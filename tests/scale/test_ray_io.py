"""hybrid.ray.write / read on a real local Ray cluster: one commit per write, nothing committed
when a worker dies, parallel reads with filters and columns, the embedder on an actor pool."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.embedders.hashing import HashingEmbedder
from hybrid.errors import FilterError, SchemaError, TableExistsError

ray = pytest.importorskip("ray")
hr = pytest.importorskip("hybrid.ray")

pytestmark = pytest.mark.usefixtures("cluster")


def rows(start: int, n: int) -> list[dict[str, object]]:
    words = ["red", "green", "blue", "apple", "pear", "river", "stone", "cloud"]
    return [
        {"id": i, "text": f"{words[i % 8]} {words[(i * 3) % 8]} doc {i}", "grp": i % 4, "score": float(i) / 7}
        for i in range(start, start + n)
    ]


def test_write_commits_once_and_reads_back(tmp_path: Path) -> None:
    ds = ray.data.from_items(rows(0, 400), override_num_blocks=4)
    commit = hr.write(ds, tmp_path, "docs", concurrency=2)
    t = hybrid.connect(tmp_path).open_table("docs")
    assert commit.inserted == 400 and t.version == commit.version == 2  # create + ONE append
    assert [v.operation for v in t.versions()] == ["create", "append"]
    assert sorted(t.to_arrow(["id"])["id"].to_pylist()) == list(range(400))
    report = t.check()
    assert not report.damage and not report.broken_indexes
    # appending again is one more version; ids land once each
    hr.write(ray.data.from_items(rows(400, 100), override_num_blocks=2), f"file://{tmp_path}", "docs")
    assert t.version == 3 and t.count_rows() == 500
    # the index build over a Ray-written table is one call, and search works
    t.create_fts_index(["text"])
    assert t.search("apple", query_type="fts").limit(3).to_arrow().num_rows == 3


def test_read_with_where_columns_and_version(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("docs", rows(0, 300))
    t.add(rows(300, 300))  # two fragments: read by parallel tasks
    t.delete("id % 10 = 0")
    got = hr.read(tmp_path, "docs", columns=["id", "score"], where="grp = 1 AND id < 500").to_arrow_refs()
    table = pa.concat_tables(ray.get(got))
    assert table.column_names == ["id", "score"]
    expected = [r["id"] for r in rows(0, 600) if r["grp"] == 1 and r["id"] < 500 and r["id"] % 10]
    assert sorted(table["id"].to_pylist()) == expected
    old = hr.read(tmp_path, "docs", version=1, with_rowid=True).to_arrow_refs()
    first = pa.concat_tables(ray.get(old))
    assert first.num_rows == 300 and first.column_names[0] == "_rowid"
    with pytest.raises(FilterError):
        hr.read(tmp_path, "docs", where="no_such_column = 1")
    with pytest.raises(SchemaError):
        hr.read(tmp_path, "docs", columns=["nope"])


class DieOn:
    """A map step fused into the write task: its worker process dies outright on the batch holding
    id 1150 while the flag file exists."""

    def __init__(self, flag: Path) -> None:
        self.flag = str(flag)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if os.path.exists(self.flag) and 1150 in batch.column("id").to_pylist():
            os._exit(1)
        return batch


def test_killed_worker_commits_nothing_and_a_retry_succeeds(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("docs", rows(0, 1000))
    before = (t.version, t.count_rows())
    flag = tmp_path / "kill"
    flag.write_text("1")
    ds = ray.data.from_items(rows(1000, 400), override_num_blocks=8).map_batches(
        DieOn(flag), batch_format="pyarrow", max_retries=0
    )
    with pytest.raises(ray.exceptions.RayError):  # the dead worker, as Ray reports it
        hr.write(ds, tmp_path, "docs", ray_remote_args={"max_retries": 0})
    t = hybrid.connect(tmp_path).open_table("docs")
    assert (t.version, t.count_rows()) == before
    report = t.check()
    assert not report.damage and not report.broken_indexes
    # whatever the dead worker or its siblings wrote is referenced by no version, and cleanup removes it
    listed = {f.path for frag in t.snapshot().manifest.fragments for f in frag.files}
    orphans = [p for p in (tmp_path / "docs" / "data").iterdir() if f"data/{p.name}" not in listed]
    flag.unlink()
    commit = hr.write(ds, tmp_path, "docs", ray_remote_args={"max_retries": 0})
    assert commit.version == before[0] + 1 and commit.inserted == 400
    assert sorted(t.to_arrow(["id"])["id"].to_pylist()) == list(range(1400))  # every row once
    stats = t.cleanup(older_than=dt.timedelta(seconds=0))
    assert stats.files_removed >= len(orphans)
    assert all(not p.exists() for p in orphans)
    assert sorted(t.to_arrow(["id"])["id"].to_pylist()) == list(range(1400))


def test_embedding_on_an_actor_pool_matches_the_embedder(tmp_path: Path) -> None:
    emb = HashingEmbedder(dim=32)
    data = rows(0, 300)
    ds = ray.data.from_items(data, override_num_blocks=3)
    hr.write(ds, tmp_path, "docs", mode="create", embedding={"vector": ("text", emb)}, embed_workers=2)
    t = hybrid.connect(tmp_path).open_table("docs")
    got = t.to_arrow(["id", "text", "vector"]).sort_by("id")
    expected = emb.embed_documents(got["text"].to_pylist())
    np.testing.assert_allclose(np.stack(got["vector"].to_numpy(zero_copy_only=False)), expected, rtol=1e-6)
    with pytest.raises(TableExistsError):
        hr.write(ds, tmp_path, "docs", mode="create")
    t.create_vector_index("vector")
    assert t.search("apple red", query_type="vector").limit(5).to_arrow().num_rows == 5
