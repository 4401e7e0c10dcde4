"""Exact distances from a query to a few hundred rows picked by id: what rescoring a compressed index's
candidates costs (:mod:`hybrid.index.rescore`).

The rows are located by id, sorted by (fragment, offset) so that each stored chunk's rows are one
slice, copied chunk by chunk into one buffer, and compared with the query in one matrix product.
Python work is per chunk touched, not per row, and there is one BLAS call and one distance formula per
search (gathering chunk by chunk and computing distances per chunk made a deep rescore of an int8 HNSW
spend most of its time in numpy call overhead).

Squared norms (cosine, l2) are exact search's: computed once per stored chunk in float64 and cached
(computing them for the gathered rows alone, per search, cost more than the rest of the gather).
The distance formulas are those of exact search (:func:`hybrid.index.exact.distances_from_dots`).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from hybrid.index.exact import _chunks, _squared_norms, distances_from_dots
from hybrid.index.view import IndexedSnapshot


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
    squares = None if metric == "dot" else np.empty(len(ids), dtype=np.float64)
    has_vector: np.ndarray | None = None
    edges = np.concatenate([[0], np.flatnonzero(np.diff(frag_idx)) + 1, [len(ids)]]).tolist()
    for lo, hi in zip(edges[:-1], edges[1:]):
        frag = snap.manifest.fragments[int(frag_idx[lo])]
        source = next(f.path for f in frag.files if field_id in f.field_ids)
        chunks, starts = view.remember(
            "vector_chunks", (source, field_id), partial(_chunks, snap, frag, column), keep=4_096
        )
        bounds = np.searchsorted(offsets[lo:hi], starts) + lo  # the sorted rows of chunk c: bounds[c]:bounds[c+1]
        for chunk_no in np.flatnonzero(np.diff(bounds)).tolist():
            a, b = int(bounds[chunk_no]), int(bounds[chunk_no + 1])
            chunk, valid = chunks[chunk_no]
            pos = offsets[a:b] - starts[chunk_no]
            np.take(chunk, pos, axis=0, out=matrix[a:b], mode="clip")  # pos is in range: no checked copy
            if squares is not None:
                key = (source, field_id, chunk_no)
                squares[a:b] = view.remember("vector_norms", key, partial(_squared_norms, chunk), keep=4_096)[pos]
            if valid is not None:  # a null vector: no distance (its row slot holds zeros)
                if has_vector is None:
                    has_vector = np.ones(len(ids), dtype=bool)
                has_vector[a:b] = valid[pos]
    if has_vector is not None:
        ids, matrix = ids[has_vector], matrix[has_vector]
        squares = None if squares is None else squares[has_vector]
    dots = matrix @ q
    q_square = float(np.dot(q.astype(np.float64), q.astype(np.float64)))
    return ids.astype(np.uint64, copy=False), distances_from_dots(dots, squares, q_square, metric)
