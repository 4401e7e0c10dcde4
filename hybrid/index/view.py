"""`IndexedSnapshot`: one table version with its indexes, the seam the query path reads through.

Data flows one way: storage (:class:`Snapshot`) -> index (this view, its
caches) -> query (the executor) -> the table facade. The query layer never
reaches into a table; it asks a table for this view and uses only it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from hybrid.index.cache import Coverage, LoadedIndex, SearchCache
from hybrid.index.catalog import IndexEntry, entries
from hybrid.index.coverage import LivePieces
from hybrid.storage.snapshot import Snapshot

T = TypeVar("T")


@dataclass(frozen=True)
class IndexedSnapshot:
    """A consistent table version (`snapshot`) and cached access to the indexes it records."""

    name: str
    root: Path
    snapshot: Snapshot
    cache: SearchCache

    @classmethod
    def of(cls, root: Path, snapshot: Snapshot, cache: SearchCache) -> IndexedSnapshot:
        """The view of `snapshot` of the table stored at `root` through `cache`: the one made last when
        it is of this snapshot and folder (a query per version need not make its own)."""
        last = cache.last_view
        if last is not None and last.snapshot is snapshot and last.root is root:
            return last
        view = cache.last_view = cls(root.name, root, snapshot, cache)
        return view

    @property
    def version(self) -> int:
        return self.snapshot.manifest.version

    @property
    def schema(self) -> pa.Schema:
        return self.snapshot.schema

    def entries(self) -> list[IndexEntry]:
        """The indexes usable in this version (cached per version)."""
        found: list[IndexEntry] = self.cache.remember("entries", self.version, lambda: entries(self.snapshot), 16)
        return found

    def index(self, entry: IndexEntry) -> LoadedIndex:
        """The loaded index of `entry` (loaded once per table object)."""
        return self.cache.index(self.root, self.snapshot, entry)

    def coverage(self, entry: IndexEntry) -> Coverage:
        """Which live rows `entry` misses and which of its rows are dead in this version."""
        return self.cache.coverage_of(self.root, self.snapshot, entry)

    def live_pieces(self) -> LivePieces:
        """Live row ids per fragment state (what :func:`hybrid.index.coverage.delta` compares)."""
        return self.cache.live_pieces(self.snapshot)

    def live_ids(self) -> np.ndarray:
        """Sorted row ids of every live row of this version."""
        return self.cache.live_ids(self.snapshot)

    def has_loaded(self, entry: IndexEntry) -> bool:
        """Whether this table's cache holds `entry`'s index loaded now (nothing is loaded)."""
        return entry.path in self.cache.loaded

    def keeps(self, namespace: str, key: Any) -> bool:
        """Whether this table's cache holds a value under (`namespace`, `key`) now (nothing is made)."""
        store = self.cache.stores.get(namespace)
        return store is not None and key in store

    def remember(
        self, namespace: str, key: Any, make: Callable[[], T], keep: int = 8, max_bytes: int | None = None
    ) -> T:
        """`make()`'s value, kept in this table's cache under (`namespace`, `key`); concurrent misses make it once.

        Keys must identify everything the value depends on (a version, an index path...): cached
        values never expire except by count (oldest first), or, with `max_bytes`, by count and by the
        values' ``nbytes``, least recently used first.
        """
        value: T = self.cache.remember(namespace, key, make, keep, max_bytes)
        return value
