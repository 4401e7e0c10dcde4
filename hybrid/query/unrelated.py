"""How far an unrelated row lies from a query vector: what a vector list's steepness is measured against.

A branch's steepness for a query (:mod:`hybrid.query.confidence`) is how far its tenth result
falls behind its first, as a share of the way from the first to a row that has nothing to do
with the query. For BM25 that row scores 0 (it shares no term). For vectors it depends on the
model: MiniLM puts an unrelated passage at a cosine distance of about 0.95 from a question, the
multilingual e5 at about 0.25 (its vectors share one common direction). Measured from distance 0,
e5's lists looked flatter than MiniLM's for the same separation, and the "auto" weights gave its
dense branch less say than they meant to (``eval/results/unrelated_ab_s39.md``: XQuAD-R de, es, ru).

The reference is measured instead: the mean distance from the query to a fixed sample of the
table's rows (nearly every row is unrelated to any one question): :data:`SAMPLE` row ids drawn at
random, seeded, so a version always answers alike, and the same for versions a few writes apart,
whose samples then differ only by the rows deleted in between (each drawn row's vector is read once
per table object). A query costs one product of that small matrix with its vector.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache, partial

import numpy as np

from hybrid.index.coverage import member
from hybrid.index.exact import RowVectors
from hybrid.index.gather import read_row_vectors
from hybrid.index.view import IndexedSnapshot

SAMPLE = 256
"""Row ids drawn; the mean distance of those live with a vector stands for an unrelated row's."""
MIN_ROWS = 32
"""Fewer live rows with a vector than this: no reference (the list is measured from distance 0)."""
SEED = 0
LADDER = 4
"""Steps per doubling of the row ids drawn from: the draw stays the same while a table grows by 19%."""


def sample(view: IndexedSnapshot, column: str, metric: str) -> RowVectors:
    """The version's sample: the drawn row ids (:func:`drawn_ids`) live in it with a vector (kept with the version)."""
    make = partial(_live, view, column, metric)
    return view.remember("unrelated_rows", (view.version, column, metric), make, keep=16)


def prepare_samples(view: IndexedSnapshot) -> None:
    """Make `view`'s samples of the vector columns this table object's hybrid queries measured lately
    (none when it has made none), so that the first search of a version its own write made finds them
    ready (:mod:`hybrid.query.after_write`)."""
    store = view.cache.stores.get("unrelated_rows")
    if not store:
        return
    for column, metric in dict.fromkeys((c, m) for v, c, m in reversed(list(store)) if v != view.version):
        if column in view.schema.names:
            sample(view, column, metric)


def drawn_ids(next_rowid: int) -> np.ndarray:
    """:data:`SAMPLE` row ids drawn at random (seeded, sorted) below the largest step of a ladder of
    :data:`LADDER` steps per doubling that is at most `next_rowid` (every id when there are fewer):
    versions a few writes apart draw the same ids, so each one's sample costs a liveness check, not
    a read of its rows. The newest rows (above the step) are not drawn until the table grows past
    the next one; they are as typical of the table as any."""
    if next_rowid <= SAMPLE:
        return np.arange(next_rowid, dtype=np.uint64)
    return _drawn_below(max(SAMPLE, int(2 ** (math.floor(math.log2(next_rowid) * LADDER) / LADDER))))


@lru_cache(maxsize=64)
def _drawn_below(end: int) -> np.ndarray:
    ids = np.sort(np.random.default_rng(SEED).choice(end, SAMPLE, replace=False)).astype(np.uint64)
    ids.flags.writeable = False
    return ids


class _Read:
    """The drawn rows' vectors read so far, sorted by row id (a row's vector never changes, and
    erasure clears the caches), and the ids read that had no vector."""

    def __init__(self, dim: int) -> None:
        self.lock = threading.Lock()
        self.ids = np.empty(0, np.uint64)
        self.matrix = np.empty((0, dim), np.float32)
        self.squares: np.ndarray | None = np.empty(0, np.float64)
        self.absent = np.empty(0, np.uint64)

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.matrix.nbytes + self.absent.nbytes)

    def add(self, asked: np.ndarray, found: RowVectors) -> None:
        """Keep `found` (the rows of `asked` that have a vector) and the ids of `asked` without one."""
        ids = np.concatenate([self.ids, found.ids])
        order = np.argsort(ids, kind="stable")
        self.ids, self.matrix = ids[order], np.concatenate([self.matrix, found.matrix])[order]
        if self.squares is not None and found.squares is not None:
            self.squares = np.concatenate([self.squares, found.squares])[order]
        else:
            self.squares = None
        self.absent = np.union1d(self.absent, np.setdiff1d(asked, found.ids)).astype(np.uint64)


def _live(view: IndexedSnapshot, column: str, metric: str) -> RowVectors:
    """The drawn rows live in `view` with a vector; those not read for an earlier version read now (one
    by one, not through the table's map: a table served from a compressed index stays unread)."""
    snap = view.snapshot
    ids = drawn_ids(int(snap.manifest.next_rowid))
    ids = ids[snap.locate(ids)[2]]
    dim = snap.schema.field(column).type.list_size
    read: _Read = view.remember(
        "unrelated_read", (snap.manifest.field_id(column), metric), partial(_Read, dim), keep=16
    )
    with read.lock:
        held = member(ids, read.ids)
        if not held.all():
            missing = ids[~held & ~member(ids, read.absent)]
            if len(missing):
                read.add(missing, read_row_vectors(view, column, missing, metric))
                held = member(ids, read.ids)
        at = np.searchsorted(read.ids, ids[held])
        squares = None if read.squares is None else read.squares[at]
        return RowVectors(read.ids[at], read.matrix[at], squares, (0, len(at)))


def mean_distance(rows: RowVectors, vector: np.ndarray, metric: str) -> float | None:
    """The mean distance from `vector` to `rows`; None for fewer than :data:`MIN_ROWS` rows."""
    if len(rows.ids) < MIN_ROWS:
        return None
    return float(np.mean(rows.distances(vector, metric), dtype=np.float64))


def distance(view: IndexedSnapshot, column: str, vector: np.ndarray, metric: str) -> float | None:
    """How far an unrelated row of `view` lies from `vector` (None: too few rows to say)."""
    return mean_distance(sample(view, column, metric), vector, metric)
