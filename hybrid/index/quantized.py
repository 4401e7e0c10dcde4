"""``hnsw_int8``: a usearch HNSW graph over int8 codes, served memory-mapped from its file.

usearch turns a float in [-1, 1] into ``round(127 x value)``. Embeddings are rarely
spread over that range, so every vector goes through one affine map first, fitted on a
training sample: cosine rows are normalized, then all rows are centred on the sample's
mean and scaled so that the 99.9th percentile of the absolute coordinates maps to 1.
Centring and one common scale keep the order of l2 distances and of inner products with a
query mapped the same way (``q.(x - mu) = q.x - q.mu``, the same shift for every row), so
the graph searches by inner product for cosine and dot and by squared l2 for l2. The
codes only propose candidates: :mod:`hybrid.index.rescore` scores them exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.errors import CorruptionError
from hybrid.index.row_codes import RowCodes
from hybrid.index.vector import SharedLock
from hybrid.storage import npy

GRAPH_FILE = "usearch.i8"
MAP_FILE = "affine.npy"  # row 0: the mean, row 1: the scale (broadcast), row 2: normalize flag


class Affine:
    """The map from stored float vectors to the codes' range."""

    def __init__(self, mean: np.ndarray, scale: float, normalize: bool) -> None:
        self.mean, self.scale, self.normalize = mean.astype(np.float32), float(scale), normalize

    @classmethod
    def fit(cls, sample: np.ndarray, metric: str) -> Affine:
        normalize = metric == "cosine"
        x = _unit(sample) if normalize else sample
        mean = x.mean(axis=0) if len(x) else np.zeros(sample.shape[1], np.float32)
        spread = float(np.quantile(np.abs(x - mean), 0.999)) if len(x) else 1.0
        return cls(mean, 1.0 / spread if spread > 0 else 1.0, normalize)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _unit(x) if self.normalize else np.asarray(x, np.float32)
        return np.clip((x - self.mean) * self.scale, -1.0, 1.0).astype(np.float32)

    def save(self, folder: Path) -> None:
        dim = len(self.mean)
        np.save(folder / MAP_FILE, np.stack([self.mean, np.full(dim, self.scale), np.full(dim, self.normalize)]))

    @classmethod
    def load(cls, folder: Path) -> Affine:
        m = npy.load(folder / MAP_FILE)
        return cls(m[0], float(m[1][0]), bool(m[2][0]))


def _threads(rows: int) -> int:
    """Threads for inserting `rows` rows: one for a small batch (waking a pool costs more than it saves
    on a busy machine), else all cores (usearch's 0)."""
    return 1 if rows < 4_096 else 0


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


class Int8Graph:
    """A usearch int8 HNSW (row ids as keys), opened as a read-only view of its file."""

    label = "HNSW-int8 (usearch)"
    codes: RowCodes | None = None  # none: its own int8 codes rank the candidates it returns (nearest first)

    def __init__(self, index: Any, affine: Affine, metric: str, level: int, path: Path) -> None:
        self._index, self.affine, self.metric, self.level, self.path = index, affine, metric, level, path
        self._lock = SharedLock()  # the search expansion is a property of the shared index
        index.expansion_search = level

    @property
    def count(self) -> int:
        return len(self._index)

    @staticmethod
    def _new(dim: int, metric: str, m: int, ef_construction: int) -> Any:
        from usearch.index import Index

        space = "l2sq" if metric == "l2" else "ip"
        return Index(ndim=dim, metric=space, dtype="i8", connectivity=m, expansion_add=ef_construction)

    @classmethod
    def build(
        cls,
        folder: Path,
        sample: np.ndarray,
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        metric: str,
        params: dict[str, Any],
    ) -> Int8Graph:
        """Fit the map on `sample`, insert the (row ids, vectors) `batches` one by one, save, open as a view."""
        affine = Affine.fit(sample, metric)
        index = cls._new(sample.shape[1], metric, params["m"], params["ef_construction"])
        for ids, vectors in batches:
            index.add(ids.astype(np.uint64), affine(vectors), log=False, threads=_threads(len(ids)))
        folder.mkdir(parents=True, exist_ok=True)
        index.save(str(folder / GRAPH_FILE))
        affine.save(folder)
        return cls.open(folder, metric, params["ef_search"])

    @classmethod
    def open(cls, folder: Path, metric: str, level: int) -> Int8Graph:
        from usearch.index import Index

        path = folder / GRAPH_FILE
        try:
            index = Index.restore(str(path), view=True)
        except Exception as exc:  # usearch raises RuntimeError / ValueError for damaged files
            raise CorruptionError(f"the int8 HNSW file {path} cannot be read ({exc}); rebuild the index") from exc
        if index is None:
            raise CorruptionError(f"the int8 HNSW file {path} is not a usearch index; rebuild the index")
        return cls(index, Affine.load(folder), metric, level, path)

    @classmethod
    def merged(
        cls,
        source: Path,
        folder: Path,
        metric: str,
        level: int,
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        deleted: np.ndarray,
    ) -> tuple[Int8Graph, int]:
        """A copy of the graph in `source` with `batches` inserted and the rows `deleted` removed (usearch
        tombstones them), saved into `folder`. Returns the index and how many rows it removed."""
        from usearch.index import Index

        index = Index.restore(str(source / GRAPH_FILE), view=False)
        if index is None:
            raise CorruptionError(f"the int8 HNSW file {source / GRAPH_FILE} is not a usearch index; rebuild the index")
        affine = Affine.load(source)
        for ids, vectors in batches:
            index.add(ids.astype(np.uint64), affine(vectors), log=False, threads=_threads(len(ids)))
        removed = int(index.remove(deleted.astype(np.uint64))) if len(deleted) else 0
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"{GRAPH_FILE}.part"  # then renamed: `folder` may be `source`, its file mapped by a view
        index.save(str(part))
        os.replace(part, folder / GRAPH_FILE)
        affine.save(folder)
        return cls.open(folder, metric, level), removed

    def candidates(self, q: np.ndarray, n: int, level: int) -> np.ndarray:
        n = min(n, self.count)
        if n <= 0:
            return np.empty(0, np.uint64)
        code = self.affine(q)
        if level == self.level:  # usearch searches with max(its expansion, n) by itself
            with self._lock.shared():
                found = self._index.search(code, n, threads=1)
        else:
            with self._lock.exclusive():
                self._index.expansion_search = level
                try:
                    found = self._index.search(code, n, threads=1)
                finally:
                    self._index.expansion_search = self.level
        return np.asarray(found.keys, dtype=np.uint64)

    def memory(self) -> dict[str, int]:
        size = self.path.stat().st_size
        return {"ram_bytes": 0, "mapped_bytes": size}
