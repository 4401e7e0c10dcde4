"""`Tables`: the server's open tables, one reader and one writer per name, safe across threads.

Reads never use a table object that follows the newest version directly: each request
gets a read-only view pinned to the newest version at the time it arrives (so one request
sees one version, even while writes land), made under a per-table lock. Views of one table
share its memory-mapped files and its search cache (loaded indexes, filter results,
calibrations: all keyed by immutable files or versions), so a new version costs a
manifest read, not an index load. Writes go through a separate table object, one at a
time per table in this process. Appends are queued and committed together (one version for
the appends that arrive while one commits; :mod:`hybrid.server.group_commit`), each answered
once its rows are durable.

Writers in other processes (other server workers) are seen by the next read: finding the
newest version costs a ``stat`` of the newest known manifest and of the next one, so a
commit answered by any process is read by every request that starts after it. A table
dropped and created again by another process is noticed by its folder's identity and
opened afresh, so nothing cached for the old table is used for the new one.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import pyarrow as pa

from hybrid.commits import Commit
from hybrid.db import Database
from hybrid.embedders import binding
from hybrid.errors import AccessError, TableNotFoundError
from hybrid.scoped import ScopedTable
from hybrid.server.access import current_access
from hybrid.server.audit import AuditLog
from hybrid.server.config import Grant
from hybrid.server.group_commit import GroupCommit
from hybrid.storage.ingest import conform, to_batches
from hybrid.storage.manifest import Manifest
from hybrid.table import Table


@dataclass
class _Entry:
    reader: Table
    writer: Table
    folder: tuple[int, int]
    lock: threading.Lock = field(default_factory=threading.Lock)
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    view: Table | None = None
    manifest: Manifest | None = None


def _identity(path: Path) -> tuple[int, int]:
    """Which folder `path` is (device and inode): a table dropped and created again gets a new one."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def _pinned(base: Table, manifest: Manifest) -> Table:
    """A read-only view of `manifest` sharing `base`'s file and search caches."""
    return base.checkout(manifest.version)


class Tables:
    """Open tables of one database folder, by name."""

    def __init__(self, path: str | Path, audit: AuditLog | None = None) -> None:
        self.db = Database(path)
        self.audit = audit or AuditLog()
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.group = GroupCommit(self.commit_appends)
        """Where :meth:`append` queues validated rows (create_app sets its window and bounds from the config)."""

    def names(self) -> list[str]:
        """The tables the current request's key has a grant for."""
        access = current_access()
        return [n for n in self.db.table_names() if access.grant_for(n) is not None]

    def _missing(self, name: str) -> TableNotFoundError:
        return TableNotFoundError(f"no table named {name!r}")

    def granted(self, name: str, *, creating: bool = False) -> Grant:
        """The current key's grant for table `name`, allowing the route's role. A table no grant names
        is answered as missing (so its existence is not revealed); creating one is refused."""
        access = current_access()
        try:
            grant = access.check(name)
        except AccessError as exc:
            self.audit.denied(name, 403, "the grant's role is too low")
            raise exc from None
        if grant is None:
            self.audit.denied(name, 403 if creating else 404, "no grant names this table")
            if creating:
                raise AccessError(f"the API key has no grant for a table named {name!r}")
            raise self._missing(name)
        return grant

    def scoped(self, table: Table) -> Table | ScopedTable:
        """`table` as the current key may see it: bounded by its grant's row scope, vectors withheld
        unless granted (the table itself when neither applies)."""
        grant = self.granted(table.name)
        if grant.where is None and grant.sees_vectors:
            return table
        return ScopedTable(table, grant.where, vectors=grant.sees_vectors)

    def _entry(self, name: str) -> _Entry:
        self.granted(name)
        return self._open(name)

    def _open(self, name: str) -> _Entry:
        """The entry of `name`, opened if need be (no grant check: callers have made it)."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                return entry
        if name not in self.db:
            raise self._missing(name)
        try:
            folder = _identity(self.db.path / name)
        except FileNotFoundError:
            raise self._missing(name) from None
        try:
            reader = self.db.open_table(name)  # the writer shares its caches: one copy of each index per process
        except TableNotFoundError:  # dropped meanwhile; the library's message would list the other tables
            raise self._missing(name) from None
        fresh = _Entry(reader=reader, writer=reader.checkout_latest(), folder=folder)
        with self._lock:
            return self._entries.setdefault(name, fresh)

    def read(self, name: str) -> Table:
        """A read-only view of the newest version of table `name`."""
        for _ in range(3):  # a table recreated by another process is opened again (once, unless it races)
            entry = self._entry(name)
            with entry.lock:
                try:
                    manifest = entry.reader.snapshot().manifest
                    if entry.view is not None and entry.manifest is manifest:  # the log returns one object per version
                        return entry.view
                    recreated = self._recreated(name, entry)
                except (FileNotFoundError, LookupError):
                    self._forget(name, entry)
                    raise self._missing(name) from None
                if not recreated:
                    entry.view, entry.manifest = _pinned(entry.reader, manifest), manifest
                    return entry.view
            self._forget(name, entry)
        raise self._missing(name)

    @contextmanager
    def reading(self, name: str) -> Iterator[Table | ScopedTable]:
        """A view of the newest version of `name` as the current key may see it (:meth:`scoped`); a table
        dropped while it is read is a TableNotFoundError."""
        view = self.read(name)
        try:
            yield self.scoped(view)
        except AccessError:
            self.audit.denied(name, 403, "outside the grant's row scope or vectors")
            raise
        except FileNotFoundError:
            if name in self.db:
                raise
            raise self._missing(name) from None

    @contextmanager
    def _held(self, name: str, entry: _Entry) -> Iterator[_Entry]:
        """`entry` (opened again if its table was recreated) with its write lock held."""
        if self._recreated(name, entry):
            self._forget(name, entry)
            entry = self._open(name)
        with entry.write_lock:
            if name not in self.db:
                self._forget(name, entry)
                raise self._missing(name)
            yield entry

    @contextmanager
    def write(self, name: str) -> Iterator[Table]:
        """The writable table `name`, held by this thread until the block ends."""
        with self._held(name, self._entry(name)) as entry:
            before = entry.writer.version
            try:
                yield entry.writer
            except BaseException as exc:
                if isinstance(exc, AccessError):
                    self.audit.denied(name, 403, "outside the grant's row scope")
                self.audit.record(name, before, _version_or_none(entry.writer), exc)
                raise
            self.audit.record(name, before, entry.writer.version)

    def prepare_append(self, name: str, rows: Any) -> pa.Table:
        """`rows` checked as the current key may add them to `name` (grant, row scope) and made ready to
        commit (bound vector columns embedded, columns conformed to the schema); nothing is written."""
        entry = self._entry(name)
        writable = self.scoped(entry.writer)
        if isinstance(writable, ScopedTable):
            try:
                rows = writable.checked_rows(rows)
            except AccessError:
                self.audit.denied(name, 403, "outside the grant's row scope")
                raise
        with entry.lock:  # the reader is shared by every request thread
            manifest = entry.reader.snapshot().manifest
        _, batches = to_batches(rows)
        filled = binding.fill_batches(batches, binding.read(manifest.metadata))
        return pa.Table.from_batches([conform(b, manifest.schema) for b in filled], schema=manifest.schema)

    def commit_appends(self, name: str, parts: list[pa.Table]) -> tuple[int | None, Commit]:
        """Append the prepared `parts` to `name` as one version: (the version before, the commit)."""
        with self._held(name, self._open(name)) as entry:
            before = _version_or_none(entry.writer)
            return before, entry.writer.add(parts[0] if len(parts) == 1 else pa.concat_tables(parts))

    async def append(self, name: str, rows: Any) -> Commit:
        """Append `rows` to `name` through the group commit, answered once they are durable: the commit
        names the version holding them (maybe shared with other requests) and this request's row count."""
        self.granted(name)  # a refusal is audited as such, not as a failed write
        try:
            prepared = await anyio.to_thread.run_sync(self.prepare_append, name, rows)
            done = await asyncio.wrap_future(self.group.submit(name, prepared))
        except TableNotFoundError:
            raise
        except BaseException as exc:
            entry = self._entries.get(name)
            version = _version_or_none(entry.writer) if entry is not None else None
            self.audit.record(name, version, version, exc)
            raise
        self.audit.record(name, done.before, done.commit.version)
        return done.commit

    def create(self, name: str, rows: Any, embedding: Any = None) -> Table:
        """Create table `name` from `rows` (TableExistsError if it exists) and return a view of it."""
        self.granted(name, creating=True)
        try:
            self.db.create_table(name, rows, embedding=embedding)
        except BaseException as exc:
            self.audit.record(name, None, None, exc)
            raise
        view = self.read(name)
        self.audit.record(name, None, view.version)
        return view

    def drop(self, name: str) -> None:
        """Delete table `name` and every version; waits for writes in progress on it."""
        entry = self._entry(name)
        with entry.write_lock:
            before = _version_or_none(entry.writer)
            self.db.drop_table(name)
            self._forget(name, entry)
            self.audit.record(name, before, None)

    def _recreated(self, name: str, entry: _Entry) -> bool:
        """Whether the folder of `name` is no longer the one `entry` opened (dropped, maybe created again)."""
        try:
            return _identity(self.db.path / name) != entry.folder
        except FileNotFoundError:
            return True

    def _forget(self, name: str, entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(name) is entry:
                del self._entries[name]


def _version_or_none(table: Table) -> int | None:
    try:
        return table.version
    except (OSError, LookupError):  # the table is gone or unreadable: the error itself is what matters
        return None
