"""Per-table caches of what never changes: loaded indexes, and per-version coverage and live ids.

Index folders and table versions are immutable, so every entry stays valid for
as long as it is kept; the caches only bound how many are kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.index.analyzer import Analyzer
from hybrid.index.catalog import IndexEntry, live_rowids, load_ids
from hybrid.index.fts_filters import field_name
from hybrid.index.fulltext import FullTextIndex
from hybrid.index.scalar import ScalarIndex
from hybrid.index.vector import VectorIndex
from hybrid.storage.snapshot import Snapshot


@dataclass
class Coverage:
    """How an index relates to one table version."""

    dead: np.ndarray  # indexed row ids that are not live in this version (sorted)
    unindexed: np.ndarray  # live row ids the index does not hold (sorted)
    live: int


@dataclass
class SearchCache:
    """Per-`Table` cache of loaded indexes and per-version coverage (indexes never change)."""

    loaded: dict[str, Any] = field(default_factory=dict)
    coverage: dict[tuple[str, int], Coverage] = field(default_factory=dict)
    live: dict[int, np.ndarray] = field(default_factory=dict)
    stores: dict[str, dict[Any, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    making: dict[tuple[int, Any], threading.Lock] = field(default_factory=dict)

    def get(self, key: Any, store: dict[Any, Any], make: Callable[[], Any], keep: int = 8) -> Any:
        """`store[key]`, made by `make()` on a miss. Concurrent misses of one key make it once:
        the others wait for that result (64 clients missing a calibration at once each ran it)."""
        with self.lock:
            if key in store:
                return store[key]
            gate = self.making.setdefault((id(store), key), threading.Lock())
        with gate:
            with self.lock:
                if key in store:
                    return store[key]
            try:
                value = make()
                with self.lock:
                    if len(store) >= keep and key not in store:
                        store.pop(next(iter(store)))
                    store[key] = value
            finally:
                with self.lock:
                    self.making.pop((id(store), key), None)
        return value

    def remember(self, namespace: str, key: Any, make: Callable[[], Any], keep: int = 8) -> Any:
        """`get` in a store named by the caller (filters, calibrations, tail indexes...)."""
        with self.lock:
            store = self.stores.setdefault(namespace, {})
        return self.get(key, store, make, keep)

    def live_ids(self, snap: Snapshot) -> np.ndarray:
        return self.get(snap.manifest.version, self.live, lambda: live_rowids(snap))

    def coverage_of(self, root: Path, snap: Snapshot, entry: IndexEntry) -> Coverage:
        def make() -> Coverage:
            live = self.live_ids(snap)
            indexed = np.asarray(load_ids(root / entry.path))
            return Coverage(
                dead=np.setdiff1d(indexed, live, assume_unique=True),
                unindexed=np.setdiff1d(live, indexed, assume_unique=True),
                live=len(live),
            )

        return self.get((entry.path, snap.manifest.version), self.coverage, make)

    def index(self, root: Path, snap: Snapshot, entry: IndexEntry) -> FullTextIndex | VectorIndex | ScalarIndex:
        def make() -> FullTextIndex | VectorIndex | ScalarIndex:
            folder = root / entry.path
            if entry.kind == "scalar":
                return ScalarIndex.open(folder)
            if entry.kind == "fts":
                filters = {field_name(int(f)): kind for f, kind in entry.params.get("filter_fields", {}).items()}
                return FullTextIndex.open(
                    folder / "tantivy",
                    entry.columns,
                    Analyzer.from_dict(entry.params["analyzer"]),
                    renamed_weights(entry),
                    filters,
                )
            dim = snap.schema.field(entry.columns[0]).type.list_size
            return VectorIndex.open(folder, dim, entry.params["metric"], entry.params["ef_search"])

        return self.get(entry.path, self.loaded, make, keep=32)


def renamed_weights(entry: IndexEntry) -> dict[str, int] | None:
    """The BM25F column weights of an index entry, keyed by the columns' current names."""
    stored = entry.params.get("weights")
    if stored is None:
        return None
    return {current: int(stored[str(i)]) for i, current in enumerate(entry.columns)}
