"""Exact vector search over chosen rows of one table version, with no large temporary arrays.

The selected rows' vectors are gathered block by block (``BLOCK`` rows at a time)
into one reused per-thread buffer and multiplied with the query by BLAS, so a
search over a few thousand scattered rows touches each vector once and allocates
nothing the size of the selection (fresh multi-megabyte arrays cost more in page
faults than the arithmetic). Squared row norms, which cosine and l2 need, are
computed once per stored chunk (in float64) and cached: the files never change.

Distances are hnswlib's (:mod:`hybrid.index.vector`): cosine = 1 - cos,
l2 = squared Euclidean, dot = 1 - a.b.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa

from hybrid.index.vector import top_k
from hybrid.index.view import IndexedSnapshot
from hybrid.storage.manifest import Fragment
from hybrid.storage.snapshot import Snapshot

BLOCK = 1_024
"""Rows gathered per block."""
_local = threading.local()


def exact_search(
    view: IndexedSnapshot, column: str, q: np.ndarray, metric: str, k: int, masks: list[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest (row ids, distances) among the rows `masks` select (None = every live row)."""
    snap = view.snapshot
    field_id = snap.manifest.field_id(column)
    q = np.ascontiguousarray(q, dtype=np.float32)
    q_square = float(np.dot(q.astype(np.float64), q.astype(np.float64)))
    best_ids: list[np.ndarray] = []
    best_d: list[np.ndarray] = []
    for frag, mask in zip(snap.manifest.fragments, masks):
        if frag.live_rows == 0 or (mask is not None and not mask.any()):
            continue
        col = snap.read_fragment(frag, [column]).column(0)
        source = next(f.path for f in frag.files if field_id in f.field_ids)
        rowids = snap.rowids(frag)
        dots: list[np.ndarray] = []
        squares: list[np.ndarray] = []
        ids: list[np.ndarray] = []
        start = 0
        for chunk_no, chunk in enumerate(col.chunks):  # one distance pass per fragment, not per chunk
            n = len(chunk)
            keep = None if mask is None else mask[start : start + n]
            if chunk.null_count:
                valid = ~chunk.is_null().to_numpy(zero_copy_only=False)
                keep = valid if keep is None else keep & valid
            positions = None if keep is None else np.flatnonzero(keep)
            if positions is None or len(positions):
                matrix = _matrix(chunk)
                dots.append(_dots(matrix, positions, q))
                if metric != "dot":
                    key = (source, field_id, chunk_no)
                    whole = view.remember("vector_norms", key, partial(_squared_norms, matrix), keep=4_096)
                    squares.append(whole if positions is None else whole[positions])
                ids.append(rowids[start : start + n] if positions is None else rowids[start + positions])
            start += n
        if ids:
            d = distances_from_dots(_join(dots), _join(squares) if squares else None, q_square, metric)
            found = top_k(_join(ids), d, k)
            best_ids.append(found[0])
            best_d.append(found[1])
    if not best_ids:
        return np.empty(0, np.uint64), np.empty(0, np.float32)
    if len(best_ids) == 1:
        return best_ids[0], best_d[0]
    return top_k(np.concatenate(best_ids), np.concatenate(best_d), k)


def _join(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _matrix(chunk: pa.FixedSizeListArray) -> np.ndarray:
    """A zero-copy (rows x dim) float32 view of a stored chunk."""
    dim = chunk.type.list_size
    values = chunk.values.slice(chunk.offset * dim, len(chunk) * dim)
    return values.to_numpy(zero_copy_only=False).reshape(len(chunk), dim)


def _squared_norms(matrix: np.ndarray) -> np.ndarray:
    out = np.empty(len(matrix), dtype=np.float64)
    for s in range(0, len(matrix), 8 * BLOCK):
        block = matrix[s : s + 8 * BLOCK]
        out[s : s + len(block)] = np.einsum("ij,ij->i", block, block, dtype=np.float64)
    return out


def _dots(matrix: np.ndarray, positions: np.ndarray | None, q: np.ndarray) -> np.ndarray:
    if positions is None:
        return np.asarray(matrix @ q, dtype=np.float32)
    out = np.empty(len(positions), dtype=np.float32)
    buf = getattr(_local, "buf", None)
    if buf is None or buf.shape[1] != matrix.shape[1]:
        buf = _local.buf = np.empty((BLOCK, matrix.shape[1]), dtype=np.float32)
    for s in range(0, len(positions), BLOCK):
        p = positions[s : s + BLOCK]
        block = buf[: len(p)]
        np.take(matrix, p, axis=0, out=block, mode="clip")  # "clip": no buffered bounds check; p is valid
        np.matmul(block, q, out=out[s : s + len(p)])
    return out


def distances_from_dots(dots32: np.ndarray, squares: np.ndarray | None, q_square: float, metric: str) -> np.ndarray:
    """Distances from the dot products and the rows' squared norms (float64 arithmetic, float32 out)."""
    dots = dots32.astype(np.float64)
    if metric == "dot":
        return (1.0 - dots).astype(np.float32)
    assert squares is not None
    if metric == "cosine":  # one square root of the product: an identical vector gives exactly 0
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = dots / np.sqrt(squares * q_square)
        if not np.isfinite(cos).all():  # a zero vector (or query) has no direction: cosine 0
            cos[~np.isfinite(cos)] = 0.0
        return (1.0 - cos).astype(np.float32)
    return (squares - 2.0 * dots + q_square).astype(np.float32)


@dataclass(frozen=True)
class RowVectors:
    """Chosen rows' vectors gathered into one contiguous matrix, with their squared norms.

    A search over them is one pass over contiguous memory instead of a gather of scattered
    rows from the stored file (the gather is most of the cost of an exact search over a few
    thousand rows). `cuts` are the blocks :func:`exact_search` multiplies one at a time, kept
    so that both give the same float32 sums.
    """

    ids: np.ndarray
    matrix: np.ndarray
    squares: np.ndarray | None
    cuts: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.matrix.nbytes + (self.squares.nbytes if self.squares is not None else 0))

    def search(self, q: np.ndarray, metric: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest of these rows to `q`: (row ids, distances), nearest first."""
        if not len(self.ids):
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        q = np.ascontiguousarray(q, dtype=np.float32)
        q_square = float(np.dot(q.astype(np.float64), q.astype(np.float64)))
        dots = np.empty(len(self.ids), dtype=np.float32)
        for a, b in zip(self.cuts[:-1], self.cuts[1:]):
            np.matmul(self.matrix[a:b], q, out=dots[a:b])
        return top_k(self.ids, distances_from_dots(dots, self.squares, q_square, metric), k)


def row_vectors(view: IndexedSnapshot, column: str, ids: np.ndarray, metric: str) -> RowVectors:
    """The vectors of the live rows `ids` (sorted row ids) that have one, gathered (see `RowVectors`)."""
    snap = view.snapshot
    field_id = snap.manifest.field_id(column)
    dim = snap.schema.field(column).type.list_size
    frag_idx, offsets, live = snap.locate(ids)
    if not live.all():
        ids, frag_idx, offsets = ids[live], frag_idx[live], offsets[live]
    matrix = np.empty((len(ids), dim), dtype=np.float32)
    squares = np.empty(len(ids), dtype=np.float64) if metric != "dot" else None
    kept: list[np.ndarray] = []
    cuts = [0]
    # sorted ids lie in ascending fragments and, inside one, at ascending offsets: each stored
    # chunk's rows are one slice (no grouping by sort or hash)
    edges = np.concatenate([[0], np.flatnonzero(np.diff(frag_idx)) + 1, [len(ids)]]).tolist()
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo == hi:
            continue
        frag = snap.manifest.fragments[int(frag_idx[lo])]
        source = next(f.path for f in frag.files if field_id in f.field_ids)
        chunks, starts = view.remember(
            "vector_chunks", (source, field_id), partial(_chunks, snap, frag, column), keep=4_096
        )
        bounds = (np.searchsorted(offsets[lo:hi], starts) + lo).tolist()
        for chunk_no, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            chunk, valid = chunks[chunk_no]
            pos, rows = offsets[a:b] - starts[chunk_no], ids[a:b]
            if valid is not None:
                pos, rows = pos[valid[pos]], rows[valid[pos]]
            at = cuts[-1]
            for s in range(0, len(pos), BLOCK):  # the blocks exact_search multiplies
                p = pos[s : s + BLOCK]
                np.take(chunk, p, axis=0, out=matrix[at + s : at + s + len(p)], mode="clip")
                cuts.append(at + s + len(p))
            if squares is not None and len(pos):
                norms = view.remember(
                    "vector_norms", (source, field_id, chunk_no), partial(_squared_norms, chunk), 4_096
                )
                squares[at : at + len(pos)] = norms[pos]
            kept.append(rows)
    n = cuts[-1]
    return RowVectors(
        np.asarray(np.concatenate(kept) if kept else np.empty(0), dtype=np.uint64),
        matrix[:n] if n == len(matrix) else matrix[:n].copy(),
        None if squares is None else squares[:n],
        tuple(cuts),
    )


def exact_search_rows(
    view: IndexedSnapshot, column: str, q: np.ndarray, metric: str, k: int, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`exact_search` over the rows `ids` (sorted row ids): each located by id, not through masks the
    size of the table, so a search over a few allowed rows costs in proportion to them alone; the
    same rows give the same distances as `exact_search`."""
    return row_vectors(view, column, ids, metric).search(q, metric, k)


def _chunks(
    snap: Snapshot, frag: Fragment, column: str
) -> tuple[list[tuple[np.ndarray, np.ndarray | None]], np.ndarray]:
    """Per stored chunk of `column` in `frag`: its zero-copy matrix and validity (None: no nulls); chunk starts."""
    col = snap.read_fragment(frag, [column]).column(0)
    chunks = [(_matrix(c), ~c.is_null().to_numpy(zero_copy_only=False) if c.null_count else None) for c in col.chunks]
    return chunks, np.cumsum([0] + [len(c) for c in col.chunks])
