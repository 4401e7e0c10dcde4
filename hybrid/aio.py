"""The async API: :class:`AsyncDatabase` and :class:`AsyncTable`, from :func:`hybrid.connect_async`.

There is one implementation. Every async method runs the sync method of the same name
(:class:`hybrid.Database`, :class:`hybrid.Table`) in a worker thread of one small pool
(:func:`set_threads`), so an event loop keeps serving while a write commits, an index
builds or a search runs. Tantivy, hnswlib, Arrow and DuckDB release the GIL while they work.

Cancellation: cancelling a coroutine that awaits a method raises ``CancelledError`` in it
at once, but the worker thread cannot be interrupted; it runs the call to its end and the
result is dropped. A write therefore either commits whole (a new version, as if it had not
been cancelled) or, if it failed or lost a race, leaves the table as it was: commits are
atomic, so no reader ever sees half of one. Await :meth:`AsyncTable.version` or
:meth:`AsyncTable.versions` to learn whether a cancelled write landed.

Example:
    >>> import asyncio, hybrid, tempfile
    >>> async def main() -> list[int]:
    ...     db = await hybrid.connect_async(tempfile.mkdtemp())
    ...     t = await db.create_table("docs", [{"id": 1, "text": "rotate keys"}])
    ...     await t.add([{"id": 2, "text": "bake bread"}])
    ...     await t.create_fts_index("text")
    ...     return [r["id"] for r in await t.search("bread").limit(1).ato_list()]
    >>> asyncio.run(main())
    [2]
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import numpy as np
import pyarrow as pa

from hybrid.db import Database
from hybrid.index.upkeep import DEFAULT_UPKEEP, Upkeep
from hybrid.storage.crypto import KeySource
from hybrid.table import Table

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hybrid.embedders.base import Embedder
    from hybrid.feedback.store import FeedbackLog
    from hybrid.query.chunk_layout import ChunkLayout
    from hybrid.query.search import Query, QueryType
    from hybrid.query.text import TextQuery
    from hybrid.storage.remote import Remote

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["AsyncDatabase", "AsyncTable", "connect_async", "default_threads", "run_sync", "set_threads"]


_POOL_LOCK = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_threads: int | None = None


def default_threads() -> int:
    """Worker threads of the async API's pool unless :func:`set_threads` says otherwise:
    the cores, at most 4 (``HYBRID_ASYNC_THREADS`` overrides it)."""
    env = os.environ.get("HYBRID_ASYNC_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else min(4, os.cpu_count() or 1)


def set_threads(n: int | None) -> None:
    """Size the thread pool that every async call of hybrid runs in (None: :func:`default_threads`).

    The pool is small on purpose: tantivy, hnswlib and Arrow release the GIL in their searches,
    but the Python around them does not, and each extra thread that wants the GIL can keep the
    event loop waiting for another 5 ms switch interval (``eval/results/async_load_before.md``,
    2 cores, 64 searches and 8 writers at once, 5 runs each: with 2 threads the loop's p99 stall
    was 9-16 ms and its longest 29-74 ms; with asyncio's default 6, 12-27 ms and 22-201 ms,
    for about 1.15x the searches per second). Calls already running finish in the old pool.
    """
    global _pool, _threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
        raise ValueError(f"threads must be a positive integer or None, got {n!r}")
    with _POOL_LOCK:
        old, _pool, _threads = _pool, None, n
    if old is not None:
        old.shutdown(wait=False)


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist here, so start a new pool."""
    global _pool, _POOL_LOCK
    _POOL_LOCK, _pool = threading.Lock(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _POOL_LOCK:
        if _pool is None:
            _pool = ThreadPoolExecutor(_threads or default_threads(), thread_name_prefix="hybrid-async")
        return _pool


async def run_sync(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``fn(*args, **kwargs)`` in hybrid's worker pool (see :func:`set_threads`), with the
    caller's context variables.

    Cancelling the awaiting coroutine does not stop `fn`: it finishes in its thread and its
    result (or error) is dropped.
    """
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)


class _Async:
    """What the two async classes share: how a call reaches a worker thread."""

    async def _run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await run_sync(fn, *args, **kwargs)


def _delegate(
    method: Callable[Concatenate[Any, P], R],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """An async method that runs the sync `method` on the wrapped object (``self._sync``) in a thread."""

    @functools.wraps(method)
    async def call(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._run(method, self._sync, *args, **kwargs)

    return call


def _delegate_table(
    method: Callable[Concatenate[Any, P], Table],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, AsyncTable]]:
    """As :func:`_delegate`, for sync methods that return a `Table`: the result is an `AsyncTable`."""

    @functools.wraps(method)
    async def call(self: Any, *args: P.args, **kwargs: P.kwargs) -> AsyncTable:
        return AsyncTable(await self._run(method, self._sync, *args, **kwargs))

    return call


class AsyncTable(_Async):
    """A :class:`hybrid.Table` for asyncio code: each method awaits the sync one run in a thread.

    ``name``, ``path`` and ``read_only`` are plain properties (no I/O). ``version``,
    ``schema`` and ``embeddings`` read the newest version, so they are async methods here.
    :meth:`search` builds a query without I/O and returns the ordinary
    :class:`hybrid.query.search.Query`; run it with ``await query.ato_list()`` or
    ``await query.ato_arrow()``. :meth:`scan` is an async iterator of record batches.
    """

    def __init__(self, table: Table) -> None:
        if not isinstance(table, Table):
            raise TypeError(f"AsyncTable wraps a hybrid.Table, got {type(table).__name__}")
        self._sync = table

    def __repr__(self) -> str:
        return f"AsyncTable({self._sync.name!r})"

    @property
    def sync(self) -> Table:
        """The sync :class:`hybrid.Table` this object runs its methods on."""
        return self._sync

    @property
    def name(self) -> str:
        return self._sync.name

    @property
    def path(self) -> Path:
        return self._sync.path

    @property
    def read_only(self) -> bool:
        return self._sync.read_only

    async def version(self) -> int:
        """:attr:`hybrid.Table.version`: the version this table reads (the newest unless checked out)."""
        return await self._run(lambda: self._sync.version)

    async def feedback(self) -> FeedbackLog:
        """:attr:`hybrid.Table.feedback`: the table's feedback log (its methods are sync)."""
        return await self._run(lambda: self._sync.feedback)

    async def schema(self) -> pa.Schema:
        """:attr:`hybrid.Table.schema` of the version this table reads."""
        return await self._run(lambda: self._sync.schema)

    async def chunking(self) -> ChunkLayout | None:
        """:attr:`hybrid.Table.chunking`: the declared chunk layout, or None."""
        return await self._run(lambda: self._sync.chunking)

    async def embeddings(self) -> dict[str, tuple[str, Embedder]]:
        """:attr:`hybrid.Table.embeddings`: the bound vector columns, ``{vector_column: (text_column, embedder)}``."""
        return await self._run(lambda: self._sync.embeddings)

    def search(
        self,
        query: str | TextQuery | Sequence[float] | np.ndarray | None = None,
        *,
        query_type: QueryType = "auto",
        vector_column: str | None = None,
        fts_columns: Sequence[str] | None = None,
        fts_index: str | None = None,
    ) -> Query:
        """:meth:`hybrid.Table.search`: a query builder (no I/O until ``await q.ato_list()`` / ``ato_arrow()``)."""
        return self._sync.search(
            query, query_type=query_type, vector_column=vector_column, fts_columns=fts_columns, fts_index=fts_index
        )

    async def scan(
        self,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        batch_size: int = 65_536,
        *,
        with_rowid: bool = False,
    ) -> AsyncIterator[pa.RecordBatch]:
        """:meth:`hybrid.Table.scan` as an async iterator: each batch is read in a worker thread."""
        batches = await self._run(self._sync.scan, columns, where, batch_size, with_rowid=with_rowid)
        done = object()
        while (batch := await self._run(next, batches, done)) is not done:
            yield batch

    snapshot = _delegate(Table.snapshot)
    indexed_snapshot = _delegate(Table.indexed_snapshot)
    run_upkeep = _delegate(Table.run_upkeep)
    wait_for_upkeep = _delegate(Table.wait_for_upkeep)
    count_rows = _delegate(Table.count_rows)
    to_arrow = _delegate(Table.to_arrow)
    to_pandas = _delegate(Table.to_pandas)
    to_polars = _delegate(Table.to_polars)
    take = _delegate(Table.take)
    add = _delegate(Table.add)
    delete = _delegate(Table.delete)
    update = _delegate(Table.update)
    merge_insert = _delegate(Table.merge_insert)
    add_columns = _delegate(Table.add_columns)
    drop_columns = _delegate(Table.drop_columns)
    rename_column = _delegate(Table.rename_column)
    compact = _delegate(Table.compact)
    cleanup = _delegate(Table.cleanup)
    erase = _delegate(Table.erase)
    add_feedback = _delegate(Table.add_feedback)
    tune = _delegate(Table.tune)
    tune_runs = _delegate(Table.tune_runs)
    use_tuned = _delegate(Table.use_tuned)
    create_fts_index = _delegate(Table.create_fts_index)
    create_vector_index = _delegate(Table.create_vector_index)
    create_scalar_index = _delegate(Table.create_scalar_index)
    index_stats = _delegate(Table.index_stats)
    optimize = _delegate(Table.optimize)
    drop_index = _delegate(Table.drop_index)
    versions = _delegate(Table.versions)
    checkout = _delegate_table(Table.checkout)
    checkout_latest = _delegate_table(Table.checkout_latest)
    tag = _delegate(Table.tag)
    delete_tag = _delegate(Table.delete_tag)
    tags = _delegate(Table.tags)
    restore = _delegate(Table.restore)
    set_chunking = _delegate(Table.set_chunking)
    check = _delegate(Table.check)
    repair = _delegate(Table.repair)


class AsyncDatabase(_Async):
    """A :class:`hybrid.Database` for asyncio code; tables come back as :class:`AsyncTable`."""

    def __init__(self, database: Database) -> None:
        if not isinstance(database, Database):
            raise TypeError(f"AsyncDatabase wraps a hybrid.Database, got {type(database).__name__}")
        self._sync = database

    def __repr__(self) -> str:
        return f"AsyncDatabase({str(self._sync.path)!r})"

    @property
    def sync(self) -> Database:
        """The sync :class:`hybrid.Database` this object runs its methods on."""
        return self._sync

    @property
    def path(self) -> Path:
        return self._sync.path

    @property
    def encrypted(self) -> bool:
        """Whether the database's files are encrypted at rest."""
        return self._sync.encrypted

    @property
    def upkeep(self) -> Upkeep | None:
        """Automatic upkeep of the tables this object opens (see :class:`hybrid.Upkeep`)."""
        return self._sync.upkeep

    @property
    def uri(self) -> str:
        """Where the database lives: its folder, or an object-store URI."""
        return self._sync.uri

    @property
    def store(self) -> Remote | None:
        """The object store holding the database (None: a local folder)."""
        return self._sync.store

    table_names = _delegate(Database.table_names)
    open_table = _delegate_table(Database.open_table)
    create_table = _delegate_table(Database.create_table)
    drop_table = _delegate(Database.drop_table)
    sql = _delegate(Database.sql)
    rotate_key = _delegate(Database.rotate_key)
    scoped = _delegate(Database.scoped)  # the scoped view itself is sync (hybrid.ScopedDatabase)


async def connect_async(
    path: str | Path,
    *,
    upkeep: Upkeep | None = DEFAULT_UPKEEP,
    encryption_key: KeySource | None = None,
    previous_key: KeySource | None = None,
) -> AsyncDatabase:
    """Open (creating if needed) the database in the folder `path`, for asyncio code.

    The same as :func:`hybrid.connect` (`upkeep` and the keys likewise), with async methods that
    run in hybrid's small worker pool (see :func:`set_threads`).
    """
    database = await run_sync(Database, path, upkeep, encryption_key=encryption_key, previous_key=previous_key)
    return AsyncDatabase(database)
