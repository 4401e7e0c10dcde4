"""Filter columns of the rows written lately, read once per table object and shared by every filter.

A filter carried from the version it last ran on to a newer one (:func:`hybrid.query.allowed.carried_rows`)
checks the rows added in between. With many filters, each last run at a different version, each
carry read its own run of new rows' filter columns from the table's newest fragments: a take over
several small fragments per filtered search of a table written to while it serves. Rows never change
and row ids are never reused, so a row's value read in one version holds in every version where the
row is live: the values read are kept here by row id (per column and schema epoch), and a carry
reads only the rows no earlier one did.
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

from hybrid.index.view import IndexedSnapshot
from hybrid.storage.snapshot import Snapshot

RECENT_ROWS = 65_536
"""Values kept per column, of the highest row ids seen (the newest rows: those later carries ask about)."""


class RecentColumn:
    """Values of one column for some row ids, sorted by row id; grown as rows are asked about."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.ids = np.empty(0, np.uint64)
        self.values: pa.Array | None = None
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes) + (self.values.nbytes if self.values is not None else 0)

    def values_of(self, snap: Snapshot, ids: np.ndarray) -> pa.Array:
        """The column's values of the live row ids `ids` of `snap` (in that order), reading only those
        not known yet."""
        with self._lock:
            at = _positions(self.ids, ids)
            if at is not None:
                assert self.values is not None
                return self.values.take(pa.array(at))
            known, values = self._with(snap, ids)
            found = values.take(pa.array(np.searchsorted(known, ids)))
            keep = slice(max(len(known) - RECENT_ROWS, 0), None)  # the highest row ids: the newest rows
            self.ids, self.values = known[keep], values[keep]
            return found

    def _with(self, snap: Snapshot, ids: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """The known rows and `ids` (those not known read from `snap`), sorted by row id."""
        known = self.ids
        missing = np.unique(ids)
        if len(known):
            at = np.minimum(np.searchsorted(known, missing), len(known) - 1)
            missing = missing[known[at] != missing]
        read = snap.take(missing, [self.column]).column(self.column).combine_chunks()
        merged = np.concatenate([known, missing])
        values = read if self.values is None else pa.concat_arrays([self.values, read.cast(self.values.type)])
        order = np.argsort(merged, kind="stable")
        return merged[order], values.take(pa.array(order))


def _positions(known: np.ndarray, ids: np.ndarray) -> np.ndarray | None:
    """Positions of `ids` in the sorted row ids `known`, or None when some are not there."""
    if not len(known):
        return None if len(ids) else np.empty(0, np.int64)
    at = np.searchsorted(known, ids)
    if (at >= len(known)).any() or not (known[at] == ids).all():
        return None
    return at


def recent_values(view: IndexedSnapshot, column: str, ids: np.ndarray) -> pa.Array:
    """The values of `column` for the live row ids `ids` of `view` (a numpy uint64 array), in that order."""
    epoch = view.snapshot.manifest.schema_epoch
    store: RecentColumn = view.remember("recent_rows", (epoch, column), lambda: RecentColumn(column), keep=64)
    return store.values_of(view.snapshot, np.asarray(ids, dtype=np.uint64))
