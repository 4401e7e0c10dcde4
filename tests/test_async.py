"""The async API (hybrid.aio): parity with the sync classes, real tables, concurrency, cancellation."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import hybrid
import hybrid.aio
from hybrid.aio import AsyncDatabase, AsyncTable
from hybrid.embedders.base import Kind
from hybrid.embedders.hashing import HashingEmbedder

from .conftest import make_rows

SYNC_ON_PURPOSE = {"search"}
"""Sync methods whose async counterpart is sync too: `search` only builds a query (no I/O)."""
PLAIN_PROPERTIES = {"name", "path", "read_only", "upkeep", "encrypted", "uri", "store"}
"""Attributes that need no I/O, so the async classes keep them as plain properties."""


def public_members(cls: type, instance: object | None = None) -> dict[str, Any]:
    """Public methods and properties of `cls`, plus public attributes `instance` sets in __init__."""
    members = {n: inspect.getattr_static(cls, n) for n in dir(cls) if not n.startswith("_")}
    if instance is not None:
        members.update({n: v for n, v in vars(instance).items() if not n.startswith("_")})
    return members


def parity_gaps(sync_cls: type, async_cls: type, instance: object | None = None) -> list[str]:
    """What `async_cls` lacks or gets wrong compared with `sync_cls`: one line per public member."""
    gaps = []
    for name, member in sorted(public_members(sync_cls, instance).items()):
        counterpart = inspect.getattr_static(async_cls, name, None)
        if counterpart is None:
            gaps.append(f"{async_cls.__name__} has no {name}")
        elif name in PLAIN_PROPERTIES:
            if not isinstance(counterpart, property):
                gaps.append(f"{async_cls.__name__}.{name} should be a property")
        elif name in SYNC_ON_PURPOSE:
            continue
        elif not (inspect.iscoroutinefunction(counterpart) or inspect.isasyncgenfunction(counterpart)):
            kind = "property" if isinstance(member, property) else "method"
            gaps.append(f"{async_cls.__name__}.{name} is not async (sync {kind})")
    return gaps


def test_every_public_table_method_has_an_async_counterpart(db: hybrid.Database) -> None:
    assert parity_gaps(hybrid.Table, AsyncTable, db.create_table("t", make_rows(range(2)))) == []


def test_every_public_database_method_has_an_async_counterpart(db: hybrid.Database) -> None:
    assert parity_gaps(hybrid.Database, AsyncDatabase, db) == []


def test_the_parity_check_catches_a_missing_or_sync_method() -> None:
    class Grown(hybrid.Table):
        def brand_new(self) -> int:
            return 1

    class SyncSlip(AsyncTable):
        def count_rows(self, where: str | None = None) -> int:  # type: ignore[override]
            return 0

    known = set(parity_gaps(hybrid.Table, AsyncTable))  # empty unless the test above fails too
    assert set(parity_gaps(Grown, AsyncTable)) - known == {"AsyncTable has no brand_new"}
    slips = {g.replace("SyncSlip", "AsyncTable") for g in parity_gaps(hybrid.Table, SyncSlip)}
    assert slips - known == {"AsyncTable.count_rows is not async (sync method)"}


def test_async_methods_keep_the_sync_signature_and_docs() -> None:
    assert inspect.signature(AsyncTable.merge_insert) == inspect.signature(hybrid.Table.merge_insert)
    assert AsyncTable.add.__doc__ == hybrid.Table.add.__doc__


@pytest.mark.asyncio
async def test_round_trip_on_a_real_table(tmp_path: Path) -> None:
    adb = await hybrid.connect_async(tmp_path / "db", upkeep=None)
    t = await adb.create_table("docs", make_rows(range(10)))
    assert isinstance(t, AsyncTable) and t.name == "docs" and not t.read_only
    assert await adb.table_names() == ["docs"]
    assert (await t.add(make_rows(range(10, 15)))).inserted == 5
    assert await t.count_rows() == 15 and await t.count_rows("id >= 10") == 5
    assert (await t.delete("id < 3")).deleted == 3
    await t.create_fts_index("text")
    assert await t.version() == 4
    hits = await t.search("number 7").select(["id"]).limit(1).ato_list()
    assert hits[0]["id"] == 7
    near = await t.search(make_rows([12])[0]["vector"], query_type="vector").limit(1).ato_arrow()
    assert near["id"].to_pylist() == [12]
    batches = [b async for b in t.scan(["id"], where="id < 6", batch_size=2)]
    assert sorted(pa.Table.from_batches(batches)["id"].to_pylist()) == [3, 4, 5]
    old = await t.checkout(1)
    assert isinstance(old, AsyncTable) and old.read_only and await old.count_rows() == 10
    assert (await t.restore(1)).operation == "restore" and await t.count_rows() == 10
    assert (await t.schema()).field("vector").type == pa.list_(pa.float32(), 4)
    reopened = await adb.open_table("docs")
    assert [v.operation for v in await reopened.versions()][-1] == "restore"
    assert (await adb.sql("select count(*) as n from docs")).to_pylist() == [{"n": 10}]
    await adb.drop_table("docs")
    assert await adb.table_names() == []


@pytest.mark.asyncio
async def test_errors_come_through_unchanged(tmp_path: Path) -> None:
    adb = await hybrid.connect_async(tmp_path, upkeep=None)
    with pytest.raises(hybrid.TableNotFoundError):
        await adb.open_table("missing")
    t = await adb.create_table("t", make_rows(range(3)))
    with pytest.raises(hybrid.SchemaError):
        await t.add([{"id": 1, "vector": [1.0, 2.0]}])  # wrong dimension
    with pytest.raises(hybrid.ReadOnlyError):
        await (await t.checkout(1)).add(make_rows([9]))
    assert await t.count_rows() == 3


@pytest.mark.asyncio
async def test_concurrent_writers_and_readers_lose_nothing(tmp_path: Path) -> None:
    """8 writers append 5 batches each while 16 readers search and count: every row lands once,
    each version holds whole commits, and a reader never sees the row count go down."""
    adb = await hybrid.connect_async(tmp_path, upkeep=None)
    t = await adb.create_table("t", make_rows(range(8)))
    await t.create_fts_index("text")
    await t.create_vector_index()
    writers, batches, per_batch = 8, 5, 4

    async def writer(w: int) -> None:
        for b in range(batches):
            start = 1000 + (w * batches + b) * per_batch
            await t.add(make_rows(range(start, start + per_batch)))

    async def reader(r: int) -> list[int]:
        seen = []
        for _ in range(6):
            query = t.search("document number", query_type="fts") if r % 2 else t.search(make_rows([r])[0]["vector"])
            rows = await query.limit(5).ato_list()
            assert 0 < len(rows) <= 5
            seen.append(await t.count_rows())
        return seen

    _, seen = await asyncio.gather(
        asyncio.gather(*(writer(w) for w in range(writers))), asyncio.gather(*(reader(r) for r in range(16)))
    )
    for counts in seen:
        assert counts == sorted(counts)
        assert all((c - 8) % per_batch == 0 for c in counts)  # whole commits only
    ids = (await t.to_arrow(["id"]))["id"].to_pylist()
    expected = list(range(8)) + list(range(1000, 1000 + writers * batches * per_batch))
    assert sorted(ids) == expected
    assert await t.version() == 3 + writers * batches


class Gate(HashingEmbedder):
    """A hashing embedder whose document embedding waits until the test opens the gate.

    Each gate has its own dimension: the registry shares one instance per (name, config)."""

    dims = itertools.count(23)

    def __init__(self) -> None:
        super().__init__(dim=next(self.dims))
        self.entered = threading.Event()
        self.open = threading.Event()
        self.threads: list[str] = []

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        if kind == "document" and any(t.startswith("slow") for t in texts):
            self.entered.set()
            if not self.open.wait(30):
                raise TimeoutError("the test never opened the gate")
        return super()._encode(texts, kind)


@pytest.mark.asyncio
async def test_a_cancelled_write_finishes_in_its_thread_whole_or_not_at_all(tmp_path: Path) -> None:
    gate = Gate()
    adb = await hybrid.connect_async(tmp_path, upkeep=None)
    t = await adb.create_table("t", [{"id": 0, "text": "first"}], embedding={"vector": ("text", gate)})
    task = asyncio.create_task(t.add([{"id": i, "text": f"slow row {i}"} for i in range(1, 51)]))
    assert await asyncio.to_thread(gate.entered.wait, 10)
    # the write is stuck in its thread, and the event loop still serves other calls
    assert await t.count_rows() == 1 and await t.version() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await t.count_rows() == 1  # nothing half-made while the thread still runs
    gate.open.set()
    for _ in range(200):  # the thread finishes the commit on its own; its result is dropped
        if await t.version() == 2:
            break
        await asyncio.sleep(0.05)
    assert await t.version() == 2
    assert await t.count_rows() == 51 and await t.count_rows("text like 'slow%'") == 50


@pytest.mark.asyncio
async def test_writes_cancelled_at_random_moments_leave_only_whole_batches(tmp_path: Path) -> None:
    adb = await hybrid.connect_async(tmp_path, upkeep=None)
    t = await adb.create_table("t", make_rows(range(5)))
    rng = np.random.default_rng(7)
    tasks = [asyncio.create_task(t.add(make_rows(range(100 + 5 * b, 105 + 5 * b)))) for b in range(24)]
    for task in tasks[::2]:
        await asyncio.sleep(float(rng.uniform(0, 0.02)))
        task.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(d, (hybrid.Commit, asyncio.CancelledError)) for d in done)
    stable, last = 0, -1
    while stable < 3:  # the cancelled calls' threads finish on their own: wait until no version comes
        await asyncio.sleep(0.1)
        version = await t.version()
        stable, last = (stable + 1, last) if version == last else (0, version)
    for info in await t.versions():  # every version ever committed holds whole batches only
        ids = set((await (await t.checkout(info.version)).to_arrow(["id"]))["id"].to_pylist())
        for b in range(24):
            batch = set(range(100 + 5 * b, 105 + 5 * b))
            assert batch <= ids or not batch & ids, (info.version, b)
    finished = [b for b, d in enumerate(done) if isinstance(d, hybrid.Commit)]
    assert len(finished) >= 12 and await t.count_rows() >= 5 + 5 * len(finished)


@pytest.mark.asyncio
async def test_calls_and_searches_run_in_hybrids_small_pool(tmp_path: Path) -> None:
    gate = Gate()
    gate.open.set()
    hybrid.aio.set_threads(2)
    try:
        adb = await hybrid.connect_async(tmp_path, upkeep=None)
        t = await adb.create_table("t", [{"id": 0, "text": "a"}], embedding={"vector": ("text", gate)})
        await t.add([{"id": 1, "text": "b"}])
        await t.search("c").limit(1).ato_list()  # the query embeds "c" in the same pool
        seen = await asyncio.gather(*(hybrid.aio.run_sync(threading.current_thread) for _ in range(16)))
    finally:
        hybrid.aio.set_threads(None)
    assert len(gate.threads) == 3 and all(name.startswith("hybrid-async") for name in gate.threads)
    assert {th.name.split("_")[0] for th in seen} == {"hybrid-async"} and len({th.ident for th in seen}) <= 2
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError):
            hybrid.aio.set_threads(bad)  # type: ignore[arg-type]


FORK_SCRIPT = """
import asyncio, os, sys, threading
import hybrid
from hybrid.aio import AsyncDatabase

path = sys.argv[1]
hybrid.connect(path, upkeep=None).create_table("t", [{"id": i, "text": "a"} for i in range(3)])
assert asyncio.run(hybrid.aio.run_sync(threading.current_thread)).name.startswith("hybrid-async")
pid = os.fork()
if pid == 0:  # the child: exit 0 only if an async call completes
    try:
        adb = AsyncDatabase(hybrid.connect(path, upkeep=None))

        async def count():
            return await (await adb.open_table("t")).count_rows()

        os._exit(0 if asyncio.run(asyncio.wait_for(count(), 20)) == 3 else 1)
    except BaseException:
        os._exit(2)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_pool_of_its_own(tmp_path: Path) -> None:
    """The parent's pool threads do not exist in a forked child: its calls must not wait for them.

    The parent is a fresh interpreter: forking the test process itself, with every thread the
    suite has started (DuckDB, onnxruntime, tantivy...), is what no program should do.
    """
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_pool_is_small_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYBRID_ASYNC_THREADS", raising=False)
    assert 1 <= hybrid.aio.default_threads() <= 4
    monkeypatch.setenv("HYBRID_ASYNC_THREADS", "7")
    assert hybrid.aio.default_threads() == 7


def test_wrapping_refuses_other_objects(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        AsyncTable(tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AsyncDatabase("db")  # type: ignore[arg-type]
