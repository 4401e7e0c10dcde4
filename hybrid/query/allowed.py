"""The rows a filter allows in one table version: from scalar indexes where they answer, else DuckDB.

Scalar indexes answer for the rows they cover (:mod:`hybrid.query.index_filter`);
rows deleted since an index was built are dropped, and rows added since (which no
index holds yet) are evaluated by DuckDB, so a filter is exact at every version.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from hybrid.index.carried_vectors import Gathered, carried
from hybrid.index.catalog import masks_of
from hybrid.index.coverage import LivePieces, delta, member, row_bitmap, small
from hybrid.index.exact import row_vectors
from hybrid.index.gather import read_row_vectors
from hybrid.index.scalar import MAX_ROWID, ScalarIndex, as_ids, indexable_type
from hybrid.index.view import IndexedSnapshot
from hybrid.query import zones
from hybrid.query.filter import Filter
from hybrid.query.index_filter import answer
from hybrid.query.recent_rows import recent_values
from hybrid.storage.snapshot import Snapshot


@dataclass
class Allowed:
    """Rows a prefilter lets through: sorted row ids, how they were found, and per-fragment masks on demand."""

    ids: np.ndarray
    snap: Snapshot
    how: str = "DuckDB"
    flt: Filter | None = None
    _masks: list[np.ndarray | None] | None = None
    _flags: np.ndarray | None = field(default=None, repr=False)
    _bitmap: np.ndarray | None = field(default=None, repr=False)
    _vectors: dict[tuple[str, bool], Gathered] = field(default_factory=dict, repr=False)
    _among: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def masks(self) -> list[np.ndarray | None]:
        """Per fragment, the mask of its physical rows that are allowed."""
        if self._masks is None:
            self._masks = masks_of(self.snap, self.ids)
        return self._masks

    @property
    def nbytes(self) -> int:
        """Bytes held: the ids, and the masks, flags and gathered vectors once made (what the filter cache counts)."""
        masks = sum(m.nbytes for m in self._masks if m is not None) if self._masks is not None else 0
        vectors = sum(v.nbytes for v in list(self._vectors.values()))
        flags = sum(a.nbytes for a in (self._flags, self._bitmap) if a is not None)
        return int(self.ids.nbytes) + masks + flags + vectors

    def vectors(self, view: IndexedSnapshot, column: str, metric: str, read: bool = False) -> Gathered:
        """The allowed rows' vectors of `column`, gathered into one matrix; kept with this set (so in the
        filter cache, under its byte bound) when they take at most `VECTORS_MAX_BYTES`. `read`: the rows
        are read from the data files, not through the table's map (:func:`read_row_vectors`, for a
        column whose index is compressed: the serving process's memory stays bounded); the same matrix."""
        key = (column, metric != "dot")
        found = self._vectors.get(key)
        if found is None:
            found = (read_row_vectors if read else row_vectors)(view, column, self.ids, metric)
            if found.nbytes <= VECTORS_MAX_BYTES:
                self._vectors[key] = found
        return found

    def carry_vectors(self, view: IndexedSnapshot, earlier: Allowed, removed: np.ndarray, added: np.ndarray) -> None:
        """Take `earlier`'s gathered vectors for this set, which lost the rows `removed` and gained the
        allowed rows `added` since (see :mod:`hybrid.index.carried_vectors`)."""
        for (column, squares), gathered in list(earlier._vectors.items()):
            found = carried(view, column, "cosine" if squares else "dot", gathered, removed, added)
            if found is not None and found.nbytes <= VECTORS_MAX_BYTES:
                self._vectors[(column, squares)] = found

    def among(self, rows: np.ndarray) -> np.ndarray:
        """The allowed ones of the sorted row ids `rows` (a binary search of each in the allowed ids;
        the answers for the last few `rows` arrays asked about are kept: each branch of a search asks
        of its index's unindexed rows, the vector branch twice)."""
        found = self._among.get(id(rows))
        if found is not None and found[0] is rows:
            return found[1]
        picked = rows[member(rows, self.ids)]
        if len(self._among) >= 4:
            self._among.clear()
        self._among[id(rows)] = (rows, picked)
        return picked

    def flags(self, size: int) -> np.ndarray:
        """A boolean array indexed by row id (`size` = the table's next row id)."""
        if self._flags is None:
            flags = np.zeros(max(size, 1), dtype=bool)
            flags[self.ids.astype(np.int64)] = True
            self._flags = flags
        return self._flags

    def bitmap(self, size: int) -> np.ndarray:
        """:meth:`flags` packed eight to a byte, as an IVF index's list scan reads them
        (:func:`hybrid.index.coverage.row_bitmap`)."""
        if self._bitmap is None:
            self._bitmap = row_bitmap(self.flags(size))
        return self._bitmap


FILTER_CACHE_BYTES = 64 << 20
"""Bytes of allowed-row sets a table keeps per (version, filter), least recently used going first:
a scoped key sends the same `where` with every request, so its rows are found once per version
(a 1,000-row set of a 100,000-row table holds ~8 KB; its flags, made for HNSW over-fetching, 100 KB)."""
VECTORS_MAX_BYTES = 8 << 20
"""An allowed set keeps its rows' gathered vectors when they take at most this (5,000 384-d rows):
searching them again is one pass over contiguous memory instead of a gather of scattered rows."""
FILTER_CACHE_COUNT = 1_024
"""... and at most this many sets."""


def cached_allowed(view: IndexedSnapshot, flt: Filter) -> Allowed:
    """The rows `flt` allows in `view`, cached per (version, filter text): versions never change."""
    found: Allowed = view.remember(
        "filters",
        (view.version, flt.sql),
        lambda: carried_rows(view, flt),
        keep=FILTER_CACHE_COUNT,
        max_bytes=FILTER_CACHE_BYTES,
    )
    return found


@dataclass
class _Latest:
    """The last version a filter ran on and its rows (what :func:`carried_rows` carries forward)."""

    rows: tuple[LivePieces, Allowed] | None = None

    @property
    def nbytes(self) -> int:
        return self.rows[1].nbytes if self.rows is not None else 0


def allowed_rows(view: IndexedSnapshot, flt: Filter) -> Allowed:
    """The live rows of `view` for which `flt` is TRUE."""
    snap = view.snapshot
    entries = {e.columns[0]: e for e in view.entries() if e.kind == "scalar" and e.columns[0] in flt.columns}
    indexes: dict[str, ScalarIndex] = {}
    for column, entry in entries.items():
        index = view.index(entry)
        assert isinstance(index, ScalarIndex)
        indexes[column] = index
    found = answer(flt.tree, flt.literals, indexes) if indexes else None
    if found is None:
        keep = zones.candidates(view, flt)
        if keep is not None:
            return _in_fragments(view, flt, keep)
        masks = snap.row_masks(flt.mask, flt.columns)
        frags = snap.manifest.fragments
        parts = [snap.rowids(f)[m] if m is not None else snap.rowids(f) for f, m in zip(frags, masks)]
        return Allowed(np.concatenate(parts) if parts else np.empty(0, np.uint64), snap, "DuckDB", flt, masks)
    coverage = [view.coverage(entries[c]) for c in found.columns]
    dead = _union([c.dead for c in coverage])
    unindexed = _union([c.unindexed for c in coverage])
    rows = as_ids(found.rows)
    if len(dead):
        rows = rows[~np.isin(rows, dead, assume_unique=True)]
    how = "scalar index" + ("es" if len(found.columns) > 1 else "") + f" on {', '.join(found.columns)}"
    if not found.exact:
        rows = _check(snap, flt, rows)
        how += ", then DuckDB on those rows"
    if len(unindexed):
        rows = np.union1d(rows, _check(snap, flt, unindexed))
        how += f", DuckDB on {len(unindexed)} rows added since"
    return Allowed(rows, snap, how, flt)


def _in_fragments(view: IndexedSnapshot, flt: Filter, keep: list[bool]) -> Allowed:
    """`flt`'s live rows, evaluated only in the fragments `keep` marks (the others are ruled out by their
    columns' ranges, :mod:`hybrid.query.zones`): up to :data:`SMALL_CHECK` rows by scalar indexes built
    on the spot (:func:`_check`), more by DuckDB over those fragments alone."""
    snap = view.snapshot
    frags = snap.manifest.fragments
    kept = [f for f, k in zip(frags, keep) if k]
    ruled_out = f"{len(frags) - len(kept)} of {len(frags)} fragments ruled out by their value ranges"
    if sum(f.live_rows for f in kept) <= SMALL_CHECK:
        live = [snap.rowids(f) if (m := snap.live_mask(f)) is None else snap.rowids(f)[m] for f in kept]
        ids = np.sort(np.concatenate(live)) if live else np.empty(0, np.uint64)
        return Allowed(_check(snap, flt, ids), snap, f"{ruled_out}, checked on {len(ids)} rows", flt)
    masks = snap.row_masks(flt.mask, flt.columns, only=keep)
    parts = [snap.rowids(f)[m] if m is not None else snap.rowids(f) for f, m in zip(frags, masks)]
    ids = np.concatenate(parts) if parts else np.empty(0, np.uint64)
    return Allowed(ids, snap, f"DuckDB ({ruled_out})", flt, masks)


def carried_rows(view: IndexedSnapshot, flt: Filter) -> Allowed:
    """`allowed_rows`, derived from the last version this filter ran on when the two differ by a few rows.

    A table written to while it serves makes a new version per write; the rows a filter allows
    change only by the rows that commit removed (dropped) and added (checked by DuckDB alone).
    """
    pieces = view.live_pieces()
    last: _Latest = view.remember(
        "filters_latest", flt.sql, _Latest, keep=FILTER_CACHE_COUNT, max_bytes=FILTER_CACHE_BYTES
    )
    previous = last.rows
    result = None
    if previous is not None and previous[1].snap.manifest.schema_epoch == view.snapshot.manifest.schema_epoch:
        removed, added = delta(previous[0], pieces)
        if small(removed, added, len(previous[1].ids)):
            ids = previous[1].ids
            if len(removed):
                ids = ids[~member(ids, removed)]
            passed = _check_added(view, flt, added)
            if len(passed):
                ids = _appended(ids, passed)
            how = previous[1].how.split("; ")[0] + f"; carried from an earlier version (+{len(added)} -{len(removed)})"
            result = Allowed(ids, view.snapshot, how, flt)
            result.carry_vectors(view, previous[1], removed, passed)
    if result is None:
        result = allowed_rows(view, flt)
    last.rows = (pieces, result)
    return result


def _appended(ids: np.ndarray, more: np.ndarray) -> np.ndarray:
    """The union of sorted unique row ids `ids` and `more`: a concatenation when `more` lie above
    (appended rows, the common case), else a sorting union."""
    if not len(ids) or int(more[0]) > int(ids[-1]):
        return np.concatenate([np.asarray(ids, dtype=np.uint64), np.asarray(more, dtype=np.uint64)])
    return np.union1d(ids, more).astype(np.uint64)


def _union(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    if not parts:
        return np.empty(0, np.uint64)
    return np.asarray(parts[0], dtype=np.uint64) if len(parts) == 1 else np.unique(np.concatenate(parts))


SMALL_CHECK = 256
"""Up to this many rows are checked through scalar indexes built on the spot (a DuckDB query costs ~1 ms)."""


def _check_added(view: IndexedSnapshot, flt: Filter, ids: np.ndarray) -> np.ndarray:
    """`_check` of the sorted row ids a filter's carry added, their filter columns read and indexed once
    per (version, columns) for every filter carried to this version (:class:`AddedRows`)."""
    if not len(ids) or len(ids) > SMALL_CHECK or not flt.columns or int(ids.max()) > MAX_ROWID:
        return _check(view.snapshot, flt, ids)
    ids64 = np.asarray(ids, dtype=np.uint64)
    added: AddedRows = view.remember("added_rows", (view.version, flt.columns), AddedRows, keep=64)
    held, rows, indexes = added.covering(view, flt, ids64)
    found = answer(flt.tree, flt.literals, indexes) if indexes is not None else None
    if found is not None and found.exact:
        passed = as_ids(found.rows)
        return passed if len(held) == len(ids64) else passed[member(passed, ids64)]
    if len(held) != len(ids64):
        rows = rows.take(pa.array(np.searchsorted(held, ids64)))
    return _by_duckdb(flt, ids64, rows)


class AddedRows:
    """The rows that filters carried to one version checked, with their filter columns and scalar indexes.

    Filters on the same columns are carried to a version from the versions each last ran on; the rows
    each checks are those added since, so an older start's rows hold a newer one's. The indexes are
    built over the largest set asked about so far (grown to the union when a set is not inside it, up
    to :data:`SMALL_CHECK` rows), and each filter answers over them and keeps its own rows: a version
    whose searches carry eight filters builds one set of indexes, not eight.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: tuple[np.ndarray, pa.Table, dict[str, ScalarIndex] | None] | None = None

    @property
    def nbytes(self) -> int:
        return 0 if self._held is None else int(self._held[0].nbytes + self._held[1].nbytes)

    def covering(
        self, view: IndexedSnapshot, flt: Filter, ids: np.ndarray
    ) -> tuple[np.ndarray, pa.Table, dict[str, ScalarIndex] | None]:
        """(held row ids, their rows, their indexes) for rows holding every one of the sorted `ids`."""
        with self._lock:
            held = self._held
            if held is not None and member(ids, held[0]).all():
                return held
            wanted = ids if held is None else np.union1d(held[0], ids).astype(np.uint64)
            if len(wanted) > SMALL_CHECK:
                wanted = ids  # answered alone; the held set stays for the filters it serves
            rows, indexes = _indexed(view, flt, wanted)
            if wanted is not ids or held is None:
                self._held = (wanted, rows, indexes)
            return wanted, rows, indexes


def _indexed(view: IndexedSnapshot, flt: Filter, ids: np.ndarray) -> tuple[pa.Table, dict[str, ScalarIndex] | None]:
    """The rows `ids` with `flt`'s columns (`_rowid` first; their values read once per table object, see
    :mod:`hybrid.query.recent_rows`), and scalar indexes of those columns over them (None when a column's
    type has none)."""
    columns = {c: recent_values(view, c, ids) for c in flt.columns}
    rows = pa.table({"_rowid": pa.array(ids, pa.uint64()), **columns})
    if not all(indexable_type(v.type) for v in columns.values()):
        return rows, None
    return rows, {c: ScalarIndex.build(ids, v) for c, v in columns.items()}


def _check(snap: Snapshot, flt: Filter, ids: np.ndarray) -> np.ndarray:
    """The ids among live `ids` for which `flt` is TRUE (DuckDB's answer)."""
    if len(ids) == 0:
        return np.empty(0, np.uint64)
    rows = snap.take(ids, list(flt.columns))
    if len(ids) <= SMALL_CHECK and flt.columns and int(ids.max()) <= MAX_ROWID:
        types = [rows.schema.field(c).type for c in flt.columns]
        if all(indexable_type(t) for t in types):  # the same three-valued logic as over stored indexes
            ids64 = np.asarray(ids, dtype=np.uint64)
            indexes = {c: ScalarIndex.build(ids64, rows.column(c).combine_chunks()) for c in flt.columns}
            found = answer(flt.tree, flt.literals, indexes)
            if found is not None and found.exact:
                return as_ids(found.rows)
    return _by_duckdb(flt, ids, rows)


def _by_duckdb(flt: Filter, ids: np.ndarray, rows: pa.Table) -> np.ndarray:
    """The ids among `ids` for which `flt` is TRUE, by DuckDB over `rows` (those rows, `_rowid` first)."""
    table = rows.drop_columns([rows.column_names[0]]) if flt.columns else pa.table({"_n": pa.nulls(len(ids))})
    return np.asarray(ids, dtype=np.uint64)[flt.mask(table)]
