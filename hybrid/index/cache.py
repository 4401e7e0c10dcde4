"""Per-table caches of what never changes: loaded indexes, and per-version coverage and live ids.

Index folders and table versions are immutable, so every entry stays valid for
as long as it is kept; the caches only bound how many are kept.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybrid import budget
from hybrid.index import ann_build
from hybrid.index.analyzer import Analyzer
from hybrid.index.ann_kinds import FLOAT_KIND, CandidateIndex
from hybrid.index.catalog import IndexEntry, load_ids
from hybrid.index.coverage import Coverage, LivePieces, carry, compute, delta, fragment_key, small
from hybrid.index.fts_filters import field_name
from hybrid.index.fulltext import FullTextIndex
from hybrid.index.scalar import ScalarIndex
from hybrid.index.sealed import readable
from hybrid.index.vector import VectorIndex
from hybrid.storage.checksums import verify_folder
from hybrid.storage.snapshot import Snapshot

__all__ = ["Coverage", "LoadedIndex", "SearchCache", "renamed_weights"]
LoadedIndex = FullTextIndex | VectorIndex | ScalarIndex | CandidateIndex
_ABSENT = object()


@dataclass(eq=False)
class SearchCache:
    """Per-`Table` cache of loaded indexes and per-version coverage (indexes never change)."""

    loaded: dict[str, Any] = field(default_factory=dict)
    coverage: dict[tuple[str, int], Coverage] = field(default_factory=dict)
    live: dict[int, np.ndarray] = field(default_factory=dict)
    pieces: dict[int, LivePieces] = field(default_factory=dict)  # version -> live row ids per fragment state
    latest_coverage: dict[str, tuple[LivePieces, Coverage]] = field(default_factory=dict)  # per index path
    stores: dict[str, dict[Any, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    making: dict[tuple[int, Any], threading.Lock] = field(default_factory=dict)
    sizes: dict[int, _Sizes] = field(default_factory=dict)  # id(store) -> bytes of a byte-bounded store
    last_view: Any = None  # the IndexedSnapshot made last (hybrid.index.view.IndexedSnapshot.of)

    def __post_init__(self) -> None:
        _live.add(self)

    def clear(self) -> None:
        """Forget every loaded index, coverage, tail log and remembered value."""
        with self.lock:
            for store in (self.loaded, self.coverage, self.live, self.pieces, self.latest_coverage, self.stores):
                store.clear()
            self.sizes.clear()
            self.last_view = None

    @staticmethod
    def purge_all() -> None:
        """Clear every search cache of this process (after an erasure: they may hold erased rows)."""
        for cache in list(_live):
            cache.clear()

    def get(
        self,
        key: Any,
        store: dict[Any, Any],
        make: Callable[[], Any],
        keep: int = 8,
        max_bytes: int | None = None,
    ) -> Any:
        """`store[key]`, made by `make()` on a miss. Concurrent misses of one key make it once:
        the others wait for that result (64 clients missing a calibration at once each ran it).

        With `max_bytes` the store is least-recently-used and also bounded by the values'
        ``nbytes``, measured when a value is added and again at the next call after it was last
        returned (so parts its user grew lazily count from then on); the store's total is kept
        up to date, not summed per call (a table written to all day adds entries per version);
        without, the oldest entry goes first once `keep` are held.
        """
        with self.lock:
            if max_bytes is not None:
                self._sizes(store).remeasure(store)
            if key in store:
                if max_bytes is None:
                    return store[key]
                value = store.pop(key)  # least recently used: move to the end
                store[key] = value
                self._sizes(store).last = key
                return value
            gate = self.making.setdefault((id(store), key), threading.Lock())
        left = budget.remaining()  # a waiter stops waiting at its time budget; the maker goes on for the others
        if not gate.acquire(timeout=-1 if left is None else max(left, 0.0)):
            raise budget.exceeded("waiting for another search to build a shared cache entry")
        try:
            with self.lock:
                if key in store:
                    return store[key]
            try:
                value = make()
                with self.lock:
                    sizes = self._sizes(store) if max_bytes is not None else None
                    if len(store) >= keep and key not in store:
                        dropped = next(iter(store))
                        store.pop(dropped)
                        if sizes is not None:
                            sizes.forget(dropped)
                    store[key] = value
                    if sizes is not None and max_bytes is not None:
                        sizes.note(key, value)
                        sizes.trim(store, max_bytes, key)
            finally:
                with self.lock:
                    self.making.pop((id(store), key), None)
        finally:
            gate.release()
        return value

    def _sizes(self, store: dict[Any, Any]) -> _Sizes:
        """The byte accounting of `store` (under `self.lock`)."""
        found = self.sizes.get(id(store))
        if found is None:
            found = self.sizes[id(store)] = _Sizes()
            for k, v in store.items():
                found.note(k, v)
        return found

    def remember(
        self, namespace: str, key: Any, make: Callable[[], Any], keep: int = 8, max_bytes: int | None = None
    ) -> Any:
        """`get` in a store named by the caller (filters, calibrations, tail indexes...)."""
        store = self.stores.get(namespace)
        if store is not None and max_bytes is None:  # a hit without the lock (one dict read is atomic)
            found = store.get(key, _ABSENT)
            if found is not _ABSENT:
                return found
        with self.lock:
            store = self.stores.setdefault(namespace, {})
        return self.get(key, store, make, keep, max_bytes)

    def live_pieces(self, snap: Snapshot) -> LivePieces:
        """Live row ids per fragment of `snap`; a fragment unchanged since an earlier version is not reread."""

        def make() -> LivePieces:
            known: LivePieces = {}
            for earlier in self.pieces.values():
                known.update(earlier)
            out: LivePieces = {}
            for frag in snap.manifest.fragments:
                key = fragment_key(frag)
                ids = known.get(key)
                if ids is None:
                    ids = snap.rowids(frag)
                    mask = snap.live_mask(frag)
                    ids = ids if mask is None else ids[mask]
                out[key] = ids
            return out

        found: LivePieces = self.get(snap.manifest.version, self.pieces, make, keep=LIVE_VERSIONS)
        return found

    def live_ids(self, snap: Snapshot) -> np.ndarray:
        """Sorted row ids of every live row of `snap`."""

        def make() -> np.ndarray:
            parts = list(self.live_pieces(snap).values())
            return np.concatenate(parts) if parts else np.empty(0, np.uint64)

        found: np.ndarray = self.get(snap.manifest.version, self.live, make)
        return found

    def indexed_ids(self, root: Path, entry: IndexEntry) -> np.ndarray:
        """The sorted row ids `entry` holds (read once: index folders never change)."""

        def make() -> np.ndarray:
            self.verified(root, entry)
            return np.array(load_ids(readable(root, entry.path)))

        found: np.ndarray = self.get((entry.path, "ids"), self.loaded, make, 64)
        return found

    def verified(self, root: Path, entry: IndexEntry) -> None:
        """Check the files of `entry`'s folder against its checksums, once per cache (they never change)."""
        self.get((entry.path, "verified"), self.loaded, lambda: verify_folder(root, entry.path, entry.checksums), 64)

    def coverage_of(self, root: Path, snap: Snapshot, entry: IndexEntry) -> Coverage:
        """`entry`'s coverage of `snap`, carried from the last version computed when the two differ a little."""

        def make() -> Coverage:
            pieces = self.live_pieces(snap)
            indexed = self.indexed_ids(root, entry)
            with self.lock:
                last = self.latest_coverage.get(entry.path)
            cov = None
            if last is not None:
                removed, added = delta(last[0], pieces)
                if small(removed, added, last[1].live):
                    cov = carry(last[1], indexed, removed, added)
            if cov is None:
                cov = compute(indexed, self.live_ids(snap))
            with self.lock:
                self.latest_coverage[entry.path] = (pieces, cov)
            return cov

        found: Coverage = self.get((entry.path, snap.manifest.version), self.coverage, make, keep=4 * LIVE_VERSIONS)
        return found

    def index(self, root: Path, snap: Snapshot, entry: IndexEntry) -> LoadedIndex:
        def make() -> LoadedIndex:
            self.verified(root, entry)
            folder = readable(root, entry.path)
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
            kind = entry.params.get("index_type", FLOAT_KIND)
            if kind != FLOAT_KIND:
                return ann_build.open_index(kind, folder, entry.params["metric"], entry.params)
            dim = snap.schema.field(entry.columns[0]).type.list_size
            return VectorIndex.open(folder, dim, entry.params["metric"], entry.params["ef_search"])

        return self.get(entry.path, self.loaded, make, keep=64)


_live: weakref.WeakSet[SearchCache] = weakref.WeakSet()

LIVE_VERSIONS = 16
"""Versions whose live row ids per fragment (and, per index, coverage) are kept: a server written to
several times a second runs searches pinned to several recent versions at once, and a version evicted
while its searches run is worked out again by each (its arrays are mostly shared with its neighbours')."""


def _nbytes(value: Any) -> int:
    return int(getattr(value, "nbytes", 0))


@dataclass
class _Sizes:
    """The bytes of each value of one byte-bounded store and their total, kept as entries come and go."""

    each: dict[Any, int] = field(default_factory=dict)
    total: int = 0
    last: Any = None  # the key last returned: its user may have grown it since

    def note(self, key: Any, value: Any) -> None:
        self.forget(key)
        self.each[key] = size = _nbytes(value)
        self.total += size
        self.last = key

    def forget(self, key: Any) -> None:
        self.total -= self.each.pop(key, 0)

    def remeasure(self, store: dict[Any, Any]) -> None:
        """Measure again the value last returned (lazily grown parts count from now on)."""
        key, self.last = self.last, None
        if key is not None and key in store:
            self.note(key, store[key])
            self.last = None

    def trim(self, store: dict[Any, Any], max_bytes: int, newest: Any) -> None:
        """Drop the least recently used entries of `store` until they fit `max_bytes` (the newest
        entry stays, even alone over the bound: it is in use)."""
        while self.total > max_bytes and len(store) > 1 and (oldest := next(iter(store))) != newest:
            store.pop(oldest)
            self.forget(oldest)


def renamed_weights(entry: IndexEntry) -> dict[str, int] | None:
    """The BM25F column weights of an index entry, keyed by the columns' current names."""
    stored = entry.params.get("weights")
    if stored is None:
        return None
    return {current: int(stored[str(i)]) for i, current in enumerate(entry.columns)}
