"""Gathered vectors of a filter's rows, carried from one table version to the next by the commit's delta.

A filter's allowed rows are searched exactly in their vectors gathered into one matrix
(:class:`hybrid.index.exact.RowVectors`), kept with the allowed set of one version. A
table written to while it serves makes a version per write, and gathering the same
thousands of scattered rows again after every write costs more than the search. The
allowed set of the next version differs by the commit's few rows, so its vectors are the
last version's matrix (shared, never copied) with the rows no longer allowed masked out,
plus a small matrix of the rows allowed since. Row ids are never reused and a row's
vector never changes, so a carried matrix gives the same distances as a fresh gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybrid.index.coverage import member
from hybrid.index.exact import RowVectors, row_vectors
from hybrid.index.vector import top_k
from hybrid.index.view import IndexedSnapshot

MAX_DROPPED_SHARE = 8
"""A carried matrix whose masked-out rows pass 1/8 of it is gathered afresh."""
MAX_EXTRA_ROWS = 4_096
"""... and so is one whose rows allowed since it was gathered pass this many."""


@dataclass(frozen=True)
class CarriedVectors:
    """A gathered matrix shared with an earlier version, minus `dropped` rows, plus `extra` rows."""

    base: RowVectors
    dropped: np.ndarray | None  # mask over base's rows: no longer allowed (None: none)
    extra: RowVectors  # rows allowed since base was gathered (row ids above all of base's)

    @property
    def ids(self) -> np.ndarray:
        """The row ids searched, sorted."""
        base = self.base.ids if self.dropped is None else self.base.ids[~self.dropped]
        return np.concatenate([base, self.extra.ids]) if len(self.extra.ids) else base

    @property
    def nbytes(self) -> int:
        """Bytes held, the shared base included (the filter cache's bound stays an upper bound)."""
        return self.base.nbytes + self.extra.nbytes + (self.dropped.nbytes if self.dropped is not None else 0)

    def search(self, q: np.ndarray, metric: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest of these rows to `q`: (row ids, distances), nearest first."""
        dropped = self.base.ids[self.dropped] if self.dropped is not None else None
        # the nearest k + |dropped| of the base hold its nearest k that are still allowed
        ids, d = self.base.search(q, metric, k + (len(dropped) if dropped is not None else 0))
        if dropped is not None and len(ids):
            keep = ~member(ids, dropped)
            ids, d = ids[keep], d[keep]
        if len(self.extra.ids):
            extra_ids, extra_d = self.extra.search(q, metric, k)
            ids, d = np.concatenate([ids, extra_ids]), np.concatenate([d, extra_d])
        if not len(ids):
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        return top_k(ids, d, k)


Gathered = RowVectors | CarriedVectors


def carried(
    view: IndexedSnapshot,
    column: str,
    metric: str,
    previous: Gathered,
    removed: np.ndarray,
    added: np.ndarray,
) -> Gathered | None:
    """`previous` (the gathered vectors of an earlier allowed set) for the allowed set of `view` that
    lost the sorted row ids `removed` and gained the sorted row ids `added`; None when gathering
    afresh is the better choice (many rows dropped or added, or added rows below the matrix's ids)."""
    if isinstance(previous, CarriedVectors):
        base, dropped, extra = previous.base, previous.dropped, previous.extra
    else:
        base, dropped, extra = previous, None, RowVectors(np.empty(0, np.uint64), np.empty((0, 0)), None, (0,))
    top = int(base.ids[-1]) if len(base.ids) else -1
    if len(extra.ids):
        top = max(top, int(extra.ids[-1]))
    if len(added) and int(added[0]) <= top:  # not an append (a restore): the order would break
        return None
    if len(removed):
        gone = member(base.ids, removed)
        if gone.any():
            dropped = gone if dropped is None else dropped | gone
    if dropped is not None and int(dropped.sum()) * MAX_DROPPED_SHARE > max(len(base.ids), 1):
        return None
    if len(removed) and len(extra.ids):
        kept = ~member(extra.ids, removed)
        if not kept.all():
            extra = _subset(extra, kept)
    if len(extra.ids) + len(added) > MAX_EXTRA_ROWS:
        return None
    if len(added):
        extra = _joined(extra, row_vectors(view, column, np.asarray(added, dtype=np.uint64), metric))
    return CarriedVectors(base, dropped, extra)


def _subset(rows: RowVectors, keep: np.ndarray) -> RowVectors:
    """The rows of `rows` where `keep` (one block)."""
    squares = rows.squares[keep] if rows.squares is not None else None
    return RowVectors(rows.ids[keep], rows.matrix[keep], squares, (0, int(keep.sum())))


def _joined(a: RowVectors, b: RowVectors) -> RowVectors:
    """`a`'s rows then `b`'s (one block: the few rows allowed since a gather)."""
    if not len(a.ids):
        return b
    squares = None if a.squares is None or b.squares is None else np.concatenate([a.squares, b.squares])
    n = len(a.ids) + len(b.ids)
    return RowVectors(np.concatenate([a.ids, b.ids]), np.concatenate([a.matrix, b.matrix]), squares, (0, n))
