"""`Tables`: the server's open tables, one reader and one writer per name, safe across threads.

Reads never use a table object that follows the newest version directly: each request
gets a read-only view pinned to the newest version at the time it arrives (so one request
sees one version, even while writes land), made under a per-table lock. Views of one table
share its memory-mapped files and its search cache (loaded indexes, filter results,
calibrations: all keyed by immutable files or versions), so a new version costs a
manifest read, not an index load. Writes go through a separate table object, one at a
time per table; writers in other processes are seen by the next read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybrid.db import Database
from hybrid.errors import TableNotFoundError
from hybrid.storage.manifest import Manifest
from hybrid.table import Table


@dataclass
class _Entry:
    reader: Table
    writer: Table
    lock: threading.Lock = field(default_factory=threading.Lock)
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    view: Table | None = None


def _pinned(base: Table, manifest: Manifest) -> Table:
    """A read-only view of `manifest` sharing `base`'s file and search caches."""
    return base.checkout(manifest.version)


class Tables:
    """Open tables of one database folder, by name."""

    def __init__(self, path: str | Path) -> None:
        self.db = Database(path)
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return self.db.table_names()

    def _missing(self, name: str) -> TableNotFoundError:
        return TableNotFoundError(f"no table named {name!r}")

    def _entry(self, name: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                return entry
        if name not in self.db:
            raise self._missing(name)
        reader = self.db.open_table(name)
        fresh = _Entry(reader=reader, writer=self.db.open_table(name))
        with self._lock:
            return self._entries.setdefault(name, fresh)

    def read(self, name: str) -> Table:
        """A read-only view of the newest version of table `name`."""
        entry = self._entry(name)
        with entry.lock:
            try:
                manifest = entry.reader.snapshot().manifest
            except (FileNotFoundError, LookupError):
                self._forget(name, entry)
                raise self._missing(name) from None
            if entry.view is None or entry.view.version != manifest.version:
                entry.view = _pinned(entry.reader, manifest)
            return entry.view

    @contextmanager
    def reading(self, name: str) -> Iterator[Table]:
        """A view of the newest version of `name`; a table dropped while it is read is a TableNotFoundError."""
        view = self.read(name)
        try:
            yield view
        except FileNotFoundError:
            if name in self.db:
                raise
            raise self._missing(name) from None

    @contextmanager
    def write(self, name: str) -> Iterator[Table]:
        """The writable table `name`, held by this thread until the block ends."""
        entry = self._entry(name)
        with entry.write_lock:
            if name not in self.db:
                self._forget(name, entry)
                raise self._missing(name)
            yield entry.writer

    def create(self, name: str, rows: Any, embedding: Any = None) -> Table:
        """Create table `name` from `rows` (TableExistsError if it exists) and return a view of it."""
        self.db.create_table(name, rows, embedding=embedding)
        return self.read(name)

    def drop(self, name: str) -> None:
        """Delete table `name` and every version; waits for writes in progress on it."""
        entry = self._entry(name)
        with entry.write_lock:
            self.db.drop_table(name)
            self._forget(name, entry)

    def _forget(self, name: str, entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(name) is entry:
                del self._entries[name]
