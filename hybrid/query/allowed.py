"""The rows a filter allows in one table version: from scalar indexes where they answer, else DuckDB.

Scalar indexes answer for the rows they cover (:mod:`hybrid.query.index_filter`);
rows deleted since an index was built are dropped, and rows added since (which no
index holds yet) are evaluated by DuckDB, so a filter is exact at every version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from hybrid.index.catalog import masks_of
from hybrid.index.scalar import ScalarIndex, as_ids
from hybrid.index.view import IndexedSnapshot
from hybrid.query.filter import Filter
from hybrid.query.index_filter import answer
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

    @property
    def masks(self) -> list[np.ndarray | None]:
        """Per fragment, the mask of its physical rows that are allowed."""
        if self._masks is None:
            self._masks = masks_of(self.snap, self.ids)
        return self._masks

    def flags(self, size: int) -> np.ndarray:
        """A boolean array indexed by row id (`size` = the table's next row id)."""
        if self._flags is None:
            flags = np.zeros(max(size, 1), dtype=bool)
            flags[self.ids.astype(np.int64)] = True
            self._flags = flags
        return self._flags


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


def _union(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    if not parts:
        return np.empty(0, np.uint64)
    return np.asarray(parts[0], dtype=np.uint64) if len(parts) == 1 else np.unique(np.concatenate(parts))


def _check(snap: Snapshot, flt: Filter, ids: np.ndarray) -> np.ndarray:
    """The ids among live `ids` for which DuckDB finds `flt` TRUE."""
    if len(ids) == 0:
        return np.empty(0, np.uint64)
    rows = snap.take(ids, list(flt.columns))
    table = rows.drop_columns([rows.column_names[0]]) if flt.columns else pa.table({"_n": pa.nulls(len(ids))})
    return np.asarray(ids, dtype=np.uint64)[flt.mask(table)]
