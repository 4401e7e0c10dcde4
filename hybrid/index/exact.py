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
from functools import partial

import numpy as np
import pyarrow as pa

from hybrid.index.vector import top_k
from hybrid.index.view import IndexedSnapshot

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
    best_ids: list[np.ndarray] = []
    best_d: list[np.ndarray] = []
    for frag, mask in zip(snap.manifest.fragments, masks):
        if frag.live_rows == 0 or (mask is not None and not mask.any()):
            continue
        col = snap.read_fragment(frag, [column]).column(0)
        source = next(f.path for f in frag.files if field_id in f.field_ids)
        rowids = snap.rowids(frag)
        start = 0
        for chunk_no, chunk in enumerate(col.chunks):
            n = len(chunk)
            keep = None if mask is None else mask[start : start + n]
            if chunk.null_count:
                valid = ~chunk.is_null().to_numpy(zero_copy_only=False)
                keep = valid if keep is None else keep & valid
            positions = None if keep is None else np.flatnonzero(keep)
            if positions is None or len(positions):
                matrix = _matrix(chunk)
                squares = None
                if metric != "dot":
                    key = (source, field_id, chunk_no)
                    squares = view.remember("vector_norms", key, partial(_squared_norms, matrix), keep=4_096)
                d = _distances(matrix, positions, q, metric, squares)
                ids = rowids[start : start + n] if positions is None else rowids[start + positions]
                ids, d = top_k(ids, d, k)
                best_ids.append(ids)
                best_d.append(d)
            start += n
    if not best_ids:
        return np.empty(0, np.uint64), np.empty(0, np.float32)
    return top_k(np.concatenate(best_ids), np.concatenate(best_d).astype(np.float32), k)


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


def _distances(
    matrix: np.ndarray, positions: np.ndarray | None, q: np.ndarray, metric: str, squares: np.ndarray | None
) -> np.ndarray:
    dots = _dots(matrix, positions, q).astype(np.float64)
    if metric == "dot":
        return (1.0 - dots).astype(np.float32)
    assert squares is not None
    rows = squares if positions is None else squares[positions]
    q_square = float(np.dot(q.astype(np.float64), q.astype(np.float64)))
    if metric == "cosine":  # one square root of the product: an identical vector gives exactly 0
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = dots / np.sqrt(rows * q_square)
        return (1.0 - np.nan_to_num(cos, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.float32)
    return (rows - 2.0 * dots + q_square).astype(np.float32)
