"""``ivf_pq`` / ``ivf_rabitq``: a faiss inverted file whose codes stay on disk (memory-mapped).

The vectors are partitioned by k-means (``partitions`` lists, default about sqrt(rows),
as LanceDB does) trained on a sample; each row is stored in its nearest list as a
compressed code: product quantization (``ivf_pq``; by default one byte per eight
dimensions) or RaBitQ (``ivf_rabitq``; one bit per dimension). A search scans the
``nprobe`` lists nearest the query, proposing candidates that
:mod:`hybrid.index.rescore` scores exactly. The file is opened with faiss's
``IO_FLAG_MMAP_IFC`` (zero-copy: the lists are paged in from disk as they are scanned; faiss's
older ``IO_FLAG_MMAP`` path measured 6x slower per search here), and only the centroids and
codebooks are held in RAM. Cosine vectors are normalized and searched by l2 distance (the
same order as cosine for unit vectors); l2 and dot keep their own metric.

Tables too small to train 256 codebook entries per sub-vector (under about 10,000 rows)
get smaller codebooks; under 624 training rows, 8-bit scalar codes.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.errors import CorruptionError
from hybrid.index.row_codes import RowCodes

INDEX_FILE = "ivf.faiss"
POINTS_PER_CENTROID = 39
"""faiss's k-means wants at least this many training rows per centroid."""
PQ_ROUNDS = 10
PQ_POINTS = 64
"""k-means rounds and training rows per centroid for the PQ codebooks (candidates are rescored anyway)."""


def _faiss() -> Any:
    if "faiss" not in sys.modules:  # OpenMP threads that sleep while waiting, unless the user chose:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning ones made a small build 30x slower
    import faiss  # on a busy 2-core machine (8.5 s against 0.28 s in one thread, 0.10 s passive in two)

    return faiss


def default_partitions(rows: int) -> int:
    """About sqrt(rows) lists (LanceDB's default), at least one."""
    return max(1, round(math.sqrt(max(rows, 1))))


def default_sub_vectors(dim: int) -> int:
    """The most sub-vectors of at least eight dimensions (four up to 128-d) that divide `dim` evenly:
    48 bytes for 384-d, 8 for 32-d."""
    for m in range(max(1, dim // 8 if dim > 128 else dim // 4), 0, -1):
        if dim % m == 0:
            return m
    return 1


def factory(kind: str, dim: int, train_rows: int, partitions: int, sub_vectors: int | None) -> tuple[str, int]:
    """The faiss factory string and the number of lists for `train_rows` training rows."""
    lists = max(1, min(partitions, train_rows // POINTS_PER_CENTROID))
    if kind == "ivf_rabitq":
        return f"IVF{lists},RaBitQ", lists
    if train_rows < 16 * POINTS_PER_CENTROID:
        return f"IVF{lists},SQ8", lists
    bits = min(8, int(math.log2(train_rows // POINTS_PER_CENTROID)))
    return f"IVF{lists},PQ{sub_vectors or default_sub_vectors(dim)}x{bits}", lists


class IvfIndex:
    """A faiss IVF index over row ids (int64 ids), lists memory-mapped from its file."""

    codes: RowCodes | None = None  # set by hybrid.index.ann_build
    filters_inside = True
    """A filter's allowed rows can be searched inside the list scan (:meth:`candidates`' `among`)."""

    def __init__(self, index: Any, metric: str, level: int, path: Path, kind: str) -> None:
        self._index, self.metric, self.level, self.path = index, metric, level, path
        self._ivf = _faiss().extract_index_ivf(index)
        self.label = "IVF-PQ (faiss)" if kind == "ivf_pq" else "IVF-RaBitQ (faiss)"
        # read once: an index object never changes once opened (a merge opens a new one), and each
        # attribute read through faiss's wrapper costs microseconds on every query
        self._count, self._lists = int(index.ntotal), int(self._ivf.nlist)
        self._params: dict[int, Any] = {}  # search parameters per nprobe, made once (read-only in a search)

    @property
    def count(self) -> int:
        return self._count

    @property
    def lists(self) -> int:
        return self._lists

    @staticmethod
    def prepared(x: np.ndarray, metric: str) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if metric == "cosine":
            norms = np.linalg.norm(x, axis=-1, keepdims=True)
            x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
        return x

    @classmethod
    def build(
        cls,
        folder: Path,
        sample: np.ndarray,
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        metric: str,
        params: dict[str, Any],
        kind: str,
    ) -> IvfIndex:
        """Train on `sample`, add the (row ids, vectors) `batches` one by one, save, open memory-mapped."""
        faiss = _faiss()
        dim = sample.shape[1]
        spec, lists = factory(kind, dim, len(sample), params["partitions"], params.get("sub_vectors"))
        space = faiss.METRIC_INNER_PRODUCT if metric == "dot" else faiss.METRIC_L2  # unit vectors: l2 ranks as cos
        index = faiss.index_factory(dim, spec, space)
        if hasattr(index, "pq"):  # faiss's defaults train 25 rounds on up to 256 rows per code, plus a
            index.do_polysemous_training = False  # polysemous reordering we never use: 20x the time
            index.pq.cp.niter, index.pq.cp.max_points_per_centroid = PQ_ROUNDS, PQ_POINTS
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # training and adding use every core...
        try:
            if len(sample):
                index.train(cls.prepared(sample, metric))
                for ids, vectors in batches:
                    index.add_with_ids(cls.prepared(vectors, metric), ids.astype(np.int64))
        finally:
            faiss.omp_set_num_threads(1)  # ...a search runs in one (queries run in parallel threads already)
        params.update(codes=spec, partitions=lists)
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(index, str(folder / INDEX_FILE))
        return cls.open(folder, metric, params["nprobe"], kind)

    @classmethod
    def open(cls, folder: Path, metric: str, level: int, kind: str) -> IvfIndex:
        faiss = _faiss()
        path = folder / INDEX_FILE
        faiss.omp_set_num_threads(1)  # one query's scan in one thread: measured 0.04 ms against 0.12 ms in two
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
        except RuntimeError as exc:
            raise CorruptionError(f"the IVF index file {path} cannot be read ({exc}); rebuild the index") from exc
        return cls(index, metric, level, path, kind)

    @classmethod
    def merged(
        cls,
        source: Path,
        folder: Path,
        metric: str,
        level: int,
        kind: str,
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        deleted: np.ndarray,
    ) -> tuple[IvfIndex, int]:
        """A copy of the index in `source` with `batches` added to their lists (the centroids and codebooks
        are kept) and the rows `deleted` removed, saved into `folder`. Returns it and the rows removed."""
        faiss = _faiss()
        index = faiss.read_index(str(source / INDEX_FILE))
        for ids, vectors in batches:
            index.add_with_ids(cls.prepared(vectors, metric), ids.astype(np.int64))
        removed = int(index.remove_ids(deleted.astype(np.int64))) if len(deleted) else 0
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"{INDEX_FILE}.part"  # then renamed: `folder` may be `source`, its file mapped by a reader
        faiss.write_index(index, str(part))
        os.replace(part, folder / INDEX_FILE)
        return cls.open(folder, metric, level, kind), removed

    def candidates(
        self, q: np.ndarray, n: int, level: int, widen: bool = True, among: np.ndarray | None = None
    ) -> np.ndarray:
        """Up to `n` row ids from the `level` nearest lists, nearest first by the index's codes (more lists
        while they hold fewer than `n`, unless not `widen`). `among`: only the row ids whose bit is set in
        this bitmap (:func:`hybrid.index.coverage.row_bitmap`) are candidates, the others skipped inside
        the list scan (faiss's ID selector): a filter's rows are found without comparing any other row."""
        n = min(n, self._count)
        if n <= 0:
            return np.empty(0, np.uint64)
        x = self._query(q)
        selector = None
        if among is not None:  # faiss reads `among` through it during each search below (referenced here)
            selector = _faiss().IDSelectorBitmap(8 * len(among), _faiss().swig_ptr(among))
        nprobe = max(1, min(level, self._lists))
        while True:
            if selector is not None:
                params = _faiss().SearchParametersIVF(nprobe=nprobe, sel=selector)
            else:  # made once per nprobe (read-only in a search)
                params = self._params.get(nprobe)
                if params is None:
                    params = self._params[nprobe] = _faiss().SearchParametersIVF(nprobe=nprobe)
            _, labels = self._index.search(x, n, params=params)
            found = labels[0][labels[0] >= 0]
            if len(found) >= n or nprobe >= self._lists or not widen:
                return found.astype(np.uint64)
            nprobe = min(self._lists, 4 * nprobe)

    def _query(self, q: np.ndarray) -> np.ndarray:
        """One query as faiss searches it: a float32 row, of unit length for cosine (a dot product, not
        `prepared`'s batched norm: ~10 us a query)."""
        x = np.ascontiguousarray(q, dtype=np.float32).reshape(1, -1)
        if self.metric == "cosine":
            norm = float(np.sqrt(x[0] @ x[0]))
            x = x / np.float32(norm) if norm > 0 else np.zeros_like(x)
        return x

    def memory(self) -> dict[str, int]:
        size = self.path.stat().st_size
        codes = int(self._ivf.code_size) * self.count + 8 * self.count  # the lists: codes and ids
        held = self.codes.nbytes if self.codes is not None else 0  # the row codes ranking candidates, in RAM
        return {"ram_bytes": max(0, size - codes) + held, "mapped_bytes": min(size, codes)}
