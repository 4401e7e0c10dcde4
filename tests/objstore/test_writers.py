"""Several writers on one S3 table: every committed row is there once, conflicts are clean.

The writers are separate processes (started with ``spawn``: nothing of this process's threads is
inherited), each with its own cache folder, as on separate machines; they meet only on the store,
through moto's server over HTTP.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import hybrid
from tests.objstore.conftest import options
from tests.storage.test_concurrent_writers import after_read, assert_raced, content, rows

WRITERS = 3
COMMITS = 4
ROWS_PER_COMMIT = 5


def writer(endpoint: str, bucket: str, cache: str, who: int, queue: Any, start: Any) -> None:
    """Append COMMITS batches of rows with ids unique to this writer; report each acknowledged commit."""
    try:
        db = hybrid.connect(f"s3://{bucket}/db", storage_options=options(endpoint, Path(cache)), upkeep=None)
        table = db.open_table("shared")
        _ = table.version
        start.wait(timeout=60)  # every writer ready: they commit at once
        for c in range(COMMITS):
            ids = [f"w{who}-c{c}-r{r}" for r in range(ROWS_PER_COMMIT)]
            commit = table.add([{"id": i, "val": who, "tok": f"w{who}"} for i in ids])
            queue.put(("commit", who, commit.version, ids))
        assert db.store is not None
        queue.put(("done", who, db.store.requests().get("refused_creates", 0), []))
    except BaseException:
        queue.put(("error", who, 0, [traceback.format_exc()]))


def test_writer_processes_never_lose_a_commit(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    db = hybrid.connect(f"s3://{bucket}/db", storage_options=options(s3_endpoint, tmp_path / "c0"), upkeep=None)
    db.create_table("shared", rows([f"init{k}" for k in range(3)]))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start = ctx.Barrier(WRITERS)
    procs = [
        ctx.Process(target=writer, args=(s3_endpoint, bucket, str(tmp_path / f"c{w + 1}"), w, queue, start))
        for w in range(WRITERS)
    ]
    for p in procs:
        p.start()
    acked: dict[int, list[str]] = {}
    done = refused = 0
    while done < WRITERS:
        kind, who, version, ids = queue.get(timeout=120)
        assert kind != "error", ids[0]
        if kind == "done":
            done += 1
            refused += version  # the writer's conditional puts the store refused (it lost a race and retried)
        else:
            assert version not in acked, f"two writers were told they committed version {version}"
            acked[version] = ids
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(acked) == WRITERS * COMMITS, f"{refused} lost races"

    table = db.open_table("shared")
    assert table.version == 1 + WRITERS * COMMITS
    found = Counter(table.to_arrow(["id"]).column("id").to_pylist())
    assert all(n == 1 for n in found.values()), [i for i, n in found.items() if n > 1]
    expected = {f"init{k}" for k in range(3)} | {i for ids in acked.values() for i in ids}
    assert set(found) == expected
    for version, ids in acked.items():  # each acknowledged version holds its rows, and rows of no later commit
        seen = set(table.checkout(version).to_arrow(["id"]).column("id").to_pylist())
        assert set(ids) <= seen
        assert not any(set(later) & seen for v, later in acked.items() if v > version)


def test_conflicting_update_raises_the_local_error(
    s3_endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def connect(cache: str) -> hybrid.Database:
        return hybrid.connect(f"s3://{bucket}/db", storage_options=options(s3_endpoint, tmp_path / cache), upkeep=None)

    connect("setup").create_table("shared", rows([f"r{k}" for k in range(10)]))
    a, b = connect("a").open_table("shared"), connect("b").open_table("shared")

    seen = after_read(monkeypatch, lambda: a.update("id = 'r3'", values={"val": 1, "tok": "A"}))
    with pytest.raises(hybrid.CommitConflictError):
        b.update("id = 'r3'", values={"val": 2, "tok": "B"})
    assert_raced(seen, 1)
    assert [v.version for v in b.versions()] == [1, 2]
    assert content(b)["r3"] == (1, "A")
    assert content(connect("fresh").open_table("shared"))["r3"] == (1, "A")
    retry = b.update("id = 'r3'", values={"val": 2, "tok": "B"})  # on top of A's version it goes through
    assert retry.version == 3 and content(connect("fresh2").open_table("shared"))["r3"] == (2, "B")
