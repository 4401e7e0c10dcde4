"""Exact distances from a query to a few hundred rows picked by id: what rescoring a compressed index's
candidates costs (:mod:`hybrid.index.rescore`).

The rows are located by id, sorted by (fragment, offset) so that each stored chunk's rows are one
slice, copied chunk by chunk into one buffer, and compared with the query in one matrix product.
Python work is per chunk touched, not per row, and there is one BLAS call and one distance formula per
search (gathering chunk by chunk and computing distances per chunk made a deep rescore of an int8 HNSW
spend most of its time in numpy call overhead).

The rows are read with ``pread`` at their place in the data file (one call per row), not through the
table's memory map: a fault on the map makes the kernel map the whole page-cache folio around the row
(fault-around, 64 KiB) into the process, so at 1,000,000 x 384 a few hundred searches of 160
candidates left 0.9-1.3 GB of the table resident in the serving process. Read, the rows are copied
into this search's buffer and nothing stays mapped (the page cache keeps them, outside the process's
RSS). At 100,000 x 384 (``ivf_pq``, 40 candidates) that took the process after 220 searches from 331
to 185 MB, for about 3.5 us of CPU per row read (0.1-0.2 ms per search). Files that are not plain
local Arrow (an encrypted table's decrypted copy, a converted column) are read through the map.

Squared norms (cosine, l2) are computed in float64 for the gathered rows alone, not read from norms
cached per stored chunk as exact search does: computing a chunk's norms reads every vector in it, so
the first searches of a process serving a compressed index would read (and map into its resident
memory) the whole table's vectors. Rescoring reads only the candidates' rows. The distance formulas
are those of exact search (:func:`hybrid.index.exact.distances_from_dots`); the distances agree
with it to float32 rounding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from hybrid.errors import CorruptionError
from hybrid.index.exact import _matrix, distances_from_dots
from hybrid.index.view import IndexedSnapshot
from hybrid.storage.manifest import Fragment
from hybrid.storage.snapshot import Snapshot

READ_ROWS = True
"""Read rescored rows with ``pread`` (copied, never mapped) where the data file allows; False: through
the table's memory map (the pages faulted in stay in the process's resident memory)."""


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
        source = next(f.path for f in reversed(frag.files) if field_id in f.field_ids)  # as Snapshot reads it
        stored: Stored = view.remember(
            "vector_chunks_random", (source, field_id), partial(_random_chunks, snap, frag, column, source), keep=4_096
        )
        bounds = (
            np.searchsorted(offsets[lo:hi], stored.starts) + lo
        )  # the sorted rows of chunk c: bounds[c]:bounds[c+1]
        fd = _opened(snap.root / source) if READ_ROWS and any(a is not None for a in stored.file_offsets) else None
        try:
            for chunk_no in np.flatnonzero(np.diff(bounds)).tolist():
                a, b = int(bounds[chunk_no]), int(bounds[chunk_no + 1])
                chunk, valid = stored.chunks[chunk_no]
                pos = offsets[a:b] - stored.starts[chunk_no]
                at = stored.file_offsets[chunk_no]
                if fd is not None and at is not None:
                    _pread_rows(fd, at, pos, matrix[a:b])
                else:
                    np.take(chunk, pos, axis=0, out=matrix[a:b], mode="clip")  # pos is in range: no checked copy
                if valid is not None:  # a null vector: no distance (its row slot holds zeros)
                    if has_vector is None:
                        has_vector = np.ones(len(ids), dtype=bool)
                    has_vector[a:b] = valid[pos]
        finally:
            if fd is not None:
                os.close(fd)
    if has_vector is not None:
        ids, matrix = ids[has_vector], matrix[has_vector]
    dots = matrix @ q
    squares = None
    if metric != "dot":
        wide = matrix.astype(np.float64)
        squares = (wide[:, None, :] @ wide[:, :, None]).ravel()  # per row, float64: a batched BLAS product
    q_square = float(np.dot(q.astype(np.float64), q.astype(np.float64)))
    return ids.astype(np.uint64, copy=False), distances_from_dots(dots, squares, q_square, metric)


def _pread_rows(fd: int, at: int, pos: np.ndarray, out: np.ndarray) -> None:
    """Rows `pos` of the matrix stored at byte `at` of file `fd`, read into `out` (one ``pread`` per row)."""
    row = out.shape[1] * out.itemsize
    data = b"".join([os.pread(fd, row, o) for o in (pos * row + at).tolist()])
    if len(data) != row * len(pos):
        raise CorruptionError("a data file ended early while reading vectors for rescoring; check the table")
    out[:] = np.frombuffer(data, dtype=out.dtype).reshape(out.shape)


def _opened(path: Path) -> int | None:
    """A descriptor of `path` for ``pread`` (None: it cannot be opened here; the map is read instead)."""
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


@dataclass
class Stored:
    """One data file's vector column: per stored chunk its zero-copy matrix and validity (None: no nulls),
    the chunk starts, and where each chunk's matrix lies in the file (None: not the file's own bytes)."""

    chunks: list[tuple[np.ndarray, np.ndarray | None]]
    starts: np.ndarray
    file_offsets: list[int | None]


def _random_chunks(snap: Snapshot, frag: Fragment, column: str, source: str) -> Stored:
    """`column` of `frag` (stored in data file `source`) read through a map advised for random access (no
    read-ahead around each row), with each chunk's place in the file."""
    col = snap.read_fragment(frag, [column], random_access=True).column(0)
    chunks = [(_matrix(c), ~c.is_null().to_numpy(zero_copy_only=False) if c.null_count else None) for c in col.chunks]
    at = [
        None if m.dtype != np.float32 or not m.flags.c_contiguous else
        snap.cache.file_offset(source, m.__array_interface__["data"][0], m.nbytes, random_access=True)
        for m, _ in chunks
    ]  # fmt: skip
    return Stored(chunks, np.cumsum([0] + [len(c) for c in col.chunks]), at)
