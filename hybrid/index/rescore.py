"""Exact rescoring of a compressed index's candidates, and reading a table's vectors in bounded batches.

A compressed index (:mod:`hybrid.index.ann_kinds`) only proposes candidate row ids:
``rescore x k`` of them for the first ``RESCORE_DEPTH`` hits and one more per hit past
those (:func:`candidate_count`). Their exact distances are computed from the float
vectors stored in the table (memory-mapped Arrow files, gathered by row id in one pass
by :func:`gathered`, with the formulas of exact search), so every returned distance is
exact and the order among the candidates is the exact order. Candidates that are not
live in the version searched (deleted since the build) get an infinite distance and sort
last; the query path skips them as it skips any dead row.

:class:`Rescored` looks like the float HNSW index to the query path (``count``,
``ef_search``, ``search(q, k, ef=)``), so filters, over-fetching, dead rows and rows
added since the build work the same for every kind.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np

from hybrid.index.ann_kinds import CandidateIndex, FilteringIndex
from hybrid.index.catalog import IndexEntry, selected_vectors
from hybrid.index.gather import gathered
from hybrid.index.vector import VectorIndex, top_k
from hybrid.index.view import IndexedSnapshot
from hybrid.storage.snapshot import Snapshot

BATCH_ROWS = 65_536
"""Rows read and inserted at a time while building a compressed index (the build's memory bound)."""
MAX_CANDIDATES = 4_096
"""At most this many candidates are rescored per search."""
RESCORE_DEPTH = 50
"""Hits oversampled by the full rescore factor; each hit past these adds one candidate. A deep search
is a filter's over-fetch (the k allowed among the nearest few hundred) or a fusion list, not a deep
exact ranking: at 100,000 x 384 (int8 HNSW, rescore 4) the over-fetch of a 10% filter (195 hits) with
345 candidates kept recall@195 0.9999 and the filtered recall@10 1.000, as 780 did, at 1.86 ms of CPU
against 2.46 (the graph walks ef = candidates deep; ``eval/rescore_cost.py``)."""


def candidate_count(k: int, rescore: float) -> int:
    """Candidates to rescore for `k` hits: ``rescore x k`` up to ``RESCORE_DEPTH`` hits, one per hit past."""
    head = min(k, RESCORE_DEPTH)
    return max(k, min(math.ceil(head * rescore) + (k - head), MAX_CANDIDATES))


def read_count(k: int, reads: float | None, candidates: int) -> int:
    """Candidates whose float vectors are read for `k` hits: the first ``reads x k`` in the index's finer
    order (its row codes, or the order it returned them in), counted as :func:`candidate_count` counts;
    all of them when `reads` is None (an index tuned before the read count existed)."""
    return candidates if reads is None else min(candidates, candidate_count(k, reads))


TRAIN_ROWS = 100_000
"""At most this many rows train a compressed index's quantizer (a random sample)."""


@dataclass
class Rescored:
    """A compressed index bound to one table version, searching with exact rescoring."""

    view: IndexedSnapshot
    column: str
    index: CandidateIndex
    rescore: float
    reads: float | None = None  # candidates read as floats per hit (None: all of them)

    @property
    def count(self) -> int:
        return self.index.count

    @property
    def metric(self) -> str:
        return self.index.metric

    @property
    def ef_search(self) -> int:
        return self.index.level

    @property
    def label(self) -> str:
        if self.reads is None:
            return f"{self.index.label}, rescored {self.rescore:g}x exactly"
        codes = self.index.codes
        by = f"{codes.bits}-bit row codes" if codes is not None else "its codes"
        return f"{self.index.label}, {self.rescore:g}x candidates ranked by {by}, best {self.reads:g}x rescored exactly"

    def search(
        self,
        q: np.ndarray,
        k: int,
        *,
        ef: int | None = None,
        rescore: float | None = None,
        reads: float | None = None,
        among: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top-`k` (row ids, distances) among the best ``reads x k`` of the index's ``rescore x k``
        candidates (ranked by the index's finer codes; every returned distance is exact). `among`: only
        the rows set in this bitmap (:func:`hybrid.index.coverage.row_bitmap`; an index that `filters_inside`)."""
        k = min(k, self.count)
        if k <= 0:
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        found = self.ranked(q, k, ef, rescore, among)
        found = found[: read_count(k, reads or self.reads, len(found))]
        return rescored(self.view, self.column, q, self.metric, found, k)

    @property
    def lists(self) -> int:
        """The lists of an IVF index (1 for an index without lists)."""
        return int(getattr(self.index, "lists", 1))

    @property
    def list_rows(self) -> float:
        """Rows per list of an IVF index (its rows over its lists)."""
        return self.count / self.lists

    @property
    def filters_inside(self) -> bool:
        """Whether the index skips rows a filter does not allow inside its own scan (IVF kinds)."""
        return bool(getattr(self.index, "filters_inside", False))

    def ranked(
        self,
        q: np.ndarray,
        k: int,
        ef: int | None = None,
        rescore: float | None = None,
        among: np.ndarray | None = None,
    ) -> np.ndarray:
        """The index's ``rescore x k`` candidates for `k` hits, nearest first by its finest codes."""
        n, level = candidate_count(k, rescore or self.rescore), ef or self.index.level
        if among is None:
            found = self.index.candidates(q, n, level)
        else:  # only an index that `filters_inside` is given a filter's bitmap
            found = cast("FilteringIndex", self.index).candidates(q, n, level, among=among)
        codes = self.index.codes
        return found if codes is None or len(found) <= k else codes.ranked(q, found)


def rescored(
    view: IndexedSnapshot, column: str, q: np.ndarray, metric: str, candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest of `candidates` by exact distance; candidates not live in `view` sort last (inf)."""
    if len(candidates) == 0:
        return np.empty(0, np.uint64), np.empty(0, np.float32)
    ids, d = top_k(*gathered(view, column, candidates, q, metric), len(candidates))
    if len(ids) < len(candidates):  # dead rows: kept (at inf) so that callers see how deep the index went
        gone = np.setdiff1d(candidates, ids)
        ids = np.concatenate([ids, gone])
        d = np.concatenate([d, np.full(len(gone), np.inf, np.float32)])
    return ids[:k], d[:k]


def vector_batches(snap: Snapshot, column: str, rows: int = BATCH_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(row ids, vectors) of every live row with a vector, `rows` at a time (copies of that size at most).

    The pages of the table's map that a batch was copied from are released once it is made
    (:meth:`hybrid.storage.files.FileCache.release`): a build's pass over the whole table would otherwise
    leave all of it mapped in the process (1.48 GB of its peak RSS at 1,000,000 x 384)."""
    ids: list[np.ndarray] = []
    mats: list[np.ndarray] = []
    held = 0
    for chunk_ids, matrix in selected_vectors(snap, column, snap.row_masks()):
        s = 0
        while s < len(chunk_ids):
            take = min(rows - held, len(chunk_ids) - s)
            ids.append(chunk_ids[s : s + take])
            mats.append(matrix[s : s + take])
            held, s = held + take, s + take
            if held == rows:
                yield _batch(snap, ids, mats)
                ids, mats, held = [], [], 0
    if ids:
        yield _batch(snap, ids, mats)


def _batch(snap: Snapshot, ids: list[np.ndarray], mats: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The parts joined (copied), then the parts' pages released where they are views of a file's map."""
    batch = np.concatenate(ids), np.concatenate(mats)
    for m in mats:
        if m.size and m.flags.c_contiguous:
            snap.cache.release(int(m.__array_interface__["data"][0]), int(m.nbytes))
    return batch


def sample_vectors(snap: Snapshot, column: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """About `n` random live rows with a vector (row ids, vectors): each row is kept with one probability."""
    rng = np.random.default_rng(seed)
    total = sum(f.live_rows for f in snap.manifest.fragments)
    p = min(1.0, n / max(total, 1))
    masks: list[np.ndarray | None] = []
    for frag, live in zip(snap.manifest.fragments, snap.row_masks()):
        pick = rng.random(frag.physical_rows) < p
        masks.append(pick if live is None else pick & live)
    parts = list(selected_vectors(snap, column, masks))
    dim = snap.schema.field(column).type.list_size
    if not parts:
        return np.empty(0, np.uint64), np.empty((0, dim), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.float32, copy=False)


def exact_neighbours(
    snap: Snapshot,
    column: str,
    queries: np.ndarray,
    metric: str,
    k: int,
    rows: int = BATCH_ROWS,
    exclude: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Per query, the row ids of its exact `k` nearest live rows, not counting the rows `exclude`: one pass
    over the table in batches, each batch compared with every query in one matrix product (hnswlib's
    distances, as :func:`hybrid.index.vector.distances`); ties by row id."""
    q = np.asarray(queries, dtype=np.float32).reshape(len(queries), -1)
    best_ids = np.empty((len(q), 0), np.uint64)
    best_d = np.empty((len(q), 0), np.float32)
    if metric == "cosine":  # unit queries once, not a division of every (row, query) distance
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        q = np.divide(q, norms, out=np.zeros_like(q), where=norms > 0)
    q_squares = np.einsum("ij,ij->i", q, q)
    for ids, vectors in vector_batches(snap, column, rows):
        d = _distance_matrix(vectors, q, q_squares, metric)  # (queries, batch rows): each query's row contiguous
        if exclude is not None:
            d[:, np.isin(ids, exclude)] = np.inf
        kk = min(k, len(ids))
        if len(ids) > kk:
            near = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        else:
            near = np.broadcast_to(np.arange(len(ids)), (len(q), kk))
        all_d = np.concatenate([best_d, np.take_along_axis(d, near, 1)], axis=1)
        all_ids = np.concatenate([best_ids, ids[near]], axis=1)
        order = np.lexsort((all_ids, all_d))[:, :k]  # per query (last axis): by distance, then row id
        best_d, best_ids = np.take_along_axis(all_d, order, 1), np.take_along_axis(all_ids, order, 1)
    return [found[np.isfinite(d)] for found, d in zip(best_ids, best_d)]


def vectors_of(snap: Snapshot, column: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row ids, vectors) of those of the rows `ids` that are live and have a vector, in storage order."""
    frag_idx, offsets, live = snap.locate(np.asarray(ids, dtype=np.uint64))
    chosen = [np.zeros(f.physical_rows, dtype=bool) for f in snap.manifest.fragments]
    for fi, off in zip(frag_idx[live].tolist(), offsets[live].tolist()):
        chosen[fi][off] = True
    parts = list(selected_vectors(snap, column, list[np.ndarray | None](chosen)))
    if not parts:
        return np.empty(0, np.uint64), np.empty((0, snap.schema.field(column).type.list_size), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.float32)


def _distance_matrix(vectors: np.ndarray, q: np.ndarray, q_squares: np.ndarray, metric: str) -> np.ndarray:
    """(queries, rows) distances, worked in place on the one product (cosine: `q` are unit vectors, zero ones
    and zero rows at distance 1; at 200,000 x 384 and 400 queries the old (rows, queries) form with a
    division and a NaN pass per cell took about 6x the matrix product's time)."""
    d = q @ vectors.T
    if metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
        d *= np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)[None, :]
    if metric == "l2":
        d *= -2.0
        d += np.einsum("ij,ij->i", vectors, vectors)[None, :]
        d += q_squares[:, None]
        return d
    np.subtract(1.0, d, out=d)
    return d


def searcher(view: IndexedSnapshot, entry: IndexEntry) -> VectorIndex | Rescored:
    """What the query path searches for the vector index `entry` in `view`: the float HNSW itself, or a
    compressed index bound to `view` for exact rescoring."""
    index = view.index(entry)
    if isinstance(index, VectorIndex):
        return index
    from hybrid.index.fulltext import FullTextIndex
    from hybrid.index.scalar import ScalarIndex

    if isinstance(index, (FullTextIndex, ScalarIndex)):
        raise TypeError(f"index {entry.name!r} is not a vector index")
    reads = entry.params.get("reads")
    return Rescored(
        view, entry.columns[0], index, float(entry.params.get("rescore", 4)), None if reads is None else float(reads)
    )
