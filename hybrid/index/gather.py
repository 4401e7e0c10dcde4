"""Exact distances from a query to a few hundred rows picked by id: what rescoring a compressed index's
candidates costs (:mod:`hybrid.index.rescore`).

The rows are located by id, sorted by (fragment, offset) so that each stored chunk's rows are one
slice, copied chunk by chunk into one buffer, and compared with the query in one matrix product.
Python work is per chunk touched, not per row, and there is one BLAS call and one distance formula per
search (gathering chunk by chunk and computing distances per chunk made a deep rescore of an int8 HNSW
spend most of its time in numpy call overhead).

Squared norms (cosine, l2) are computed in float64 for the gathered rows alone, not read from norms
cached per stored chunk as exact search does: computing a chunk's norms reads every vector in it, so
the first searches of a process serving a compressed index would read (and map into its resident
memory) the whole table's vectors. Rescoring reads only the candidates' rows. The distance formulas
are those of exact search (:func:`hybrid.index.exact.distances_from_dots`); the distances agree
with it to float32 rounding.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from hybrid.index.exact import _matrix, distances_from_dots
from hybrid.index.view import IndexedSnapshot
from hybrid.storage.manifest import Fragment
from hybrid.storage.snapshot import Snapshot


def gathered(
    view: IndexedSnapshot, column: str, ids: np.ndarray, q: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances from `q` to the rows `ids` that are live and have a vector: (their ids, distances),
    in (fragment, offset) order, not sorted by distance."""
    snap = view.snapshot
    field_id = snap.manifest.field_id(column)
    q = np.ascontiguousarray(q, dtype=np.float32)
    frag_idx, offsets, live = snap.locate(ids)
    if not live.all():
        ids, frag_idx, offsets = ids[live], frag_idx[live], offsets[live]
    if not len(ids):
        return np.empty(0, np.uint64), np.empty(0, np.float32)
    order = np.lexsort((offsets, frag_idx))
    ids, frag_idx, offsets = ids[order], frag_idx[order], offsets[order]
    matrix = np.empty((len(ids), len(q)), dtype=np.float32)
    has_vector: np.ndarray | None = None
    edges = np.concatenate([[0], np.flatnonzero(np.diff(frag_idx)) + 1, [len(ids)]]).tolist()
    for lo, hi in zip(edges[:-1], edges[1:]):
        frag = snap.manifest.fragments[int(frag_idx[lo])]
        source = next(f.path for f in frag.files if field_id in f.field_ids)
        chunks, starts = view.remember(
            "vector_chunks_random", (source, field_id), partial(_random_chunks, snap, frag, column), keep=4_096
        )
        bounds = np.searchsorted(offsets[lo:hi], starts) + lo  # the sorted rows of chunk c: bounds[c]:bounds[c+1]
        for chunk_no in np.flatnonzero(np.diff(bounds)).tolist():
            a, b = int(bounds[chunk_no]), int(bounds[chunk_no + 1])
            chunk, valid = chunks[chunk_no]
            pos = offsets[a:b] - starts[chunk_no]
            np.take(chunk, pos, axis=0, out=matrix[a:b], mode="clip")  # pos is in range: no checked copy
            if valid is not None:  # a null vector: no distance (its row slot holds zeros)
                if has_vector is None:
                    has_vector = np.ones(len(ids), dtype=bool)
                has_vector[a:b] = valid[pos]
    if has_vector is not None:
        ids, matrix = ids[has_vector], matrix[has_vector]
    dots = matrix @ q
    squares = None
    if metric != "dot":
        wide = matrix.astype(np.float64)
        squares = (wide[:, None, :] @ wide[:, :, None]).ravel()  # per row, float64: a batched BLAS product
    q_square = float(np.dot(q.astype(np.float64), q.astype(np.float64)))
    return ids.astype(np.uint64, copy=False), distances_from_dots(dots, squares, q_square, metric)


def _random_chunks(
    snap: Snapshot, frag: Fragment, column: str
) -> tuple[list[tuple[np.ndarray, np.ndarray | None]], np.ndarray]:
    """Per stored chunk of `column` in `frag`, read through a map advised for random access (no read-ahead
    around each row): its zero-copy matrix and validity (None: no nulls); and the chunk starts."""
    col = snap.read_fragment(frag, [column], random_access=True).column(0)
    chunks = [(_matrix(c), ~c.is_null().to_numpy(zero_copy_only=False) if c.null_count else None) for c in col.chunks]
    return chunks, np.cumsum([0] + [len(c) for c in col.chunks])
