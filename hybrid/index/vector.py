"""Vector search: an hnswlib HNSW index (labels are `_rowid`s) and exact numpy search.

Distances follow hnswlib's definitions in both, so exact and approximate
results are comparable: cosine = 1 - cos(a, b); l2 = squared Euclidean
distance; dot = 1 - a·b. Smaller is closer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import hnswlib
import numpy as np

from hybrid.index import hnsw_file

Metric = Literal["cosine", "l2", "dot"]
_SPACE: dict[str, str] = {"cosine": "cosine", "l2": "l2", "dot": "ip"}
_U64, _F32 = np.dtype(np.uint64), np.dtype(np.float32)
INDEX_FILE = "hnsw.bin"


def check_metric(metric: str) -> None:
    if metric not in _SPACE:
        raise ValueError(f"unknown metric {metric!r}: use 'cosine', 'l2' or 'dot'")


def distances(matrix: np.ndarray, q: np.ndarray, metric: str, norms: np.ndarray | None = None) -> np.ndarray:
    """Exact distances from `q` to every row of `matrix` (hnswlib's definitions)."""
    dots = matrix @ q
    if metric == "dot":
        return 1.0 - dots
    if metric == "cosine":
        norms = np.linalg.norm(matrix, axis=1) if norms is None else norms
        qn = float(np.linalg.norm(q)) or 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = dots / (norms * qn)
        return 1.0 - np.nan_to_num(cos, nan=0.0)
    norms_sq = np.einsum("ij,ij->i", matrix, matrix) if norms is None else norms * norms
    return norms_sq - 2.0 * dots + float(q @ q)


def top_k(ids: np.ndarray, dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` smallest distances, sorted, ties by row id: of the rows tied with the `k`-th, those of the
    smallest ids, so the first rows of a deeper search are the rows of a shallower one."""
    if len(dist) > k > 0:
        split = np.argpartition(dist, k)  # the k nearest first, then the (k+1)-th
        part = split[:k]
        edge = dist[part].max()
        if dist[split[k]] == edge:  # rows tied with the k-th lie past the cut: keep the smallest ids
            below = np.flatnonzero(dist < edge)
            tied = np.flatnonzero(dist == edge)
            part = np.concatenate([below, tied[np.argsort(ids[tied], kind="stable")][: k - len(below)]])
        ids, dist = ids[part], dist[part]
    elif k <= 0:
        return ids[:0], dist[:0]
    order = np.lexsort((ids, dist))
    return ids[order], dist[order]


BUILD_THREADS = -1
"""hnswlib's insertion threads when building (-1: one per core; with more than one the graph, and so its
recall, differs a little from build to build)."""


class SharedLock:
    """Many holders of `shared()` at once, or one holder of `exclusive()`; phase-fair.

    Neither side can starve the other: a reader that arrives while a writer waits lets the
    writer go first, and readers waiting when a writer leaves all enter before the next
    writer. (Without this a thread taking `exclusive()` in a loop kept every reader out.)

    >>> lock = SharedLock()
    >>> with lock.shared(), lock.shared():
    ...     pass
    >>> with lock.exclusive():
    ...     pass
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        """The condition's lock, entered directly (``with self._mutex``: a C-level call, where entering the
        condition is a Python one; a query's search enters it twice)."""
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writer = False
        self._readers_waiting = 0
        self._writers_waiting = 0
        self._readers_turn = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        self.acquire_shared()
        try:
            yield
        finally:
            self.release_shared()

    def acquire_shared(self) -> None:
        """Enter as a reader (what :meth:`shared` does, without a context manager: a query's
        search pays it on every call)."""
        with self._mutex:
            if not self._writer and not self._writers_waiting:  # the usual case: no writer about
                self._readers += 1
                return
            self._readers_waiting += 1
            try:
                while self._writer or (self._writers_waiting and not self._readers_turn):
                    self._cond.wait()
            finally:
                self._readers_waiting -= 1
            self._readers += 1
            if not self._readers_waiting:
                self._readers_turn = False

    def release_shared(self) -> None:
        with self._mutex:
            self._readers -= 1
            if not self._readers and self._writers_waiting:  # only a waiting writer waits for readers
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._mutex:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers or (self._readers_turn and self._readers_waiting):
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._mutex:
                self._writer = False
                self._readers_turn = self._readers_waiting > 0
                self._cond.notify_all()


class VectorIndex:
    """A loaded HNSW index. Searches may run concurrently; the index is never modified once loaded."""

    label = "HNSW"
    """How query explanations name this kind of index."""

    def __init__(self, hnsw: hnswlib.Index, metric: str, ef_search: int) -> None:
        self._hnsw = hnsw
        self.metric = metric
        self.ef_search = ef_search
        self._lock = SharedLock()
        hnsw.set_ef(ef_search)
        self._count = int(hnsw.get_current_count())  # the graph is complete before it gets here

    @property
    def count(self) -> int:
        return self._count

    @classmethod
    def build(
        cls, path: Path, ids: np.ndarray, vectors: np.ndarray, metric: str, m: int, ef_construction: int, ef_search: int
    ) -> VectorIndex:
        """Build over (row ids, vectors) and save into the folder `path`."""
        check_metric(metric)
        hnsw = hnswlib.Index(space=_SPACE[metric], dim=int(vectors.shape[1]))
        hnsw.init_index(max_elements=max(1, len(ids)), ef_construction=ef_construction, M=m, random_seed=100)
        if len(ids):
            hnsw.add_items(vectors, ids.astype(np.uint64), num_threads=BUILD_THREADS)
        path.mkdir(parents=True, exist_ok=True)
        hnsw_file.save(hnsw, path / INDEX_FILE)  # the same bytes, without save_index's long GIL hold
        return cls(hnsw, metric, ef_search)

    @classmethod
    def merged(
        cls,
        source: Path,
        path: Path,
        dim: int,
        metric: str,
        ef_search: int,
        add: tuple[np.ndarray, np.ndarray],
        deleted: np.ndarray,
        threads: int = -1,
    ) -> tuple[VectorIndex, int]:
        """A copy of the index saved in `source`, saved into the new folder `path`, with the (row ids,
        vectors) of `add` inserted into the graph and the rows `deleted` marked deleted (hnswlib skips
        them in every search; the graph keeps them as waypoints). Costs reading and writing the index
        file plus one insertion per added row, instead of inserting every row again. Returns the index
        and how many nodes were marked deleted (a deleted row that had no vector has no node). `threads`:
        hnswlib's insertion threads (-1: one per core)."""
        ids, vectors = add
        hnsw = hnsw_file.load(source / INDEX_FILE, _SPACE[metric], dim, ef_search, extra=len(ids))  # room for `add`
        if len(ids):
            hnsw.add_items(vectors, ids.astype(np.uint64), num_threads=threads)
        marked = 0
        for label in deleted.tolist():
            with contextlib.suppress(RuntimeError):  # a covered row that had no vector, so no node
                hnsw.mark_deleted(int(label))
                marked += 1
        path.mkdir(parents=True, exist_ok=True)
        hnsw_file.save(hnsw, path / INDEX_FILE)  # the same bytes, without save_index's long GIL hold
        return cls(hnsw, metric, ef_search), marked

    @classmethod
    def open(cls, path: Path, dim: int, metric: str, ef_search: int) -> VectorIndex:
        """The index saved in the folder `path` (read without holding the GIL long: :mod:`hybrid.index.hnsw_file`)."""
        return cls(hnsw_file.load(path / INDEX_FILE, _SPACE[metric], dim, ef_search), metric, ef_search)

    def search(self, q: np.ndarray, k: int, *, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-`k` (row ids, distances) over every indexed row (filters are applied by the
        caller, which over-fetches: :mod:`hybrid.index.overfetch`).

        Returns fewer than `k` when the graph walk cannot find them; callers fall back to exact
        search then.
        """
        k = min(k, self.count)
        if k <= 0:
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        ef = max(ef or self.ef_search, k)
        try:
            if ef == max(self.ef_search, k):  # hnswlib searches with max(its ef, k) by itself
                self._lock.acquire_shared()
                try:
                    labels, dist = self._hnsw.knn_query(q, k=k, num_threads=1)
                finally:
                    self._lock.release_shared()
            else:  # ef is a property of the shared index: change it with no other search running
                with self._lock.exclusive():
                    self._hnsw.set_ef(ef)
                    try:
                        labels, dist = self._hnsw.knn_query(q, k=k, num_threads=1)
                    finally:
                        self._hnsw.set_ef(self.ef_search)
        except RuntimeError:  # hnswlib could not fill k results
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        ids, d = labels[0], dist[0]  # hnswlib's own dtypes: no astype call (paid per query)
        return ids if ids.dtype is _U64 else ids.astype(np.uint64), d if d.dtype is _F32 else d.astype(np.float32)

    def nearest(self, q: np.ndarray, k: int) -> tuple[list[int], list[float]] | None:
        """The nearest `k` (1 <= k <= :attr:`count`) at the index's own ef as Python lists (row ids,
        distances), or None when the walk cannot fill k (the caller then searches exactly).

        :meth:`search` for a caller that wants a few values in Python: one ``tolist`` per array,
        where indexing and slicing hnswlib's arrays costs a numpy call each, slow once the graph walk
        has pushed numpy's code out of the CPU caches."""
        lock = self._lock
        lock.acquire_shared()
        try:
            labels, dist = self._hnsw.knn_query(q, k=k, num_threads=1)
        except RuntimeError:  # hnswlib could not fill k results
            return None
        finally:
            lock.release_shared()
        return labels.tolist()[0], dist.tolist()[0]
