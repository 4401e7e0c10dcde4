"""Exact distances from a query to a few hundred rows picked by id: what rescoring a compressed index's
candidates costs (:mod:`hybrid.index.rescore`).

The rows are located by id, sorted by (fragment, offset) so that each stored chunk's rows are one
slice, copied chunk by chunk into one buffer, and compared with the query in one matrix product.
Python work is per chunk touched, not per row, and there is one BLAS call and one distance formula per
search (gathering chunk by chunk and computing distances per chunk made a deep rescore of an int8 HNSW
spend most of its time in numpy call overhead).

The rows are read at their place in the data file (:mod:`hybrid.index.row_reads`), not through the
table's memory map: a fault on the map makes the kernel map the whole page-cache folio around the row
(fault-around, 64 KiB) into the process, so at 1,000,000 x 384 a few hundred searches of 160
candidates left 0.9-1.3 GB of the table resident in the serving process. Read, the rows are copied
into this search's buffer and nothing stays mapped (the page cache keeps them, outside the process's
RSS). At 100,000 x 384 (``ivf_pq``, 40 candidates) that took the process after 220 searches from 331
to 185 MB, for about 3.5 us of CPU per row read (0.1-0.2 ms per search). Files that are not plain
local Arrow (an encrypted table's decrypted copy, a converted column) are read through the map.

Squared norms (cosine, l2) are computed in float64 for the gathered rows alone (one ``einsum``, exact
search's formula: a batched 1 x d @ d x 1 product per row cost 2.5 us a row), not read from norms
cached per stored chunk as exact search does: computing a chunk's norms reads every vector in it, so
the first searches of a process serving a compressed index would read (and map into its resident
memory) the whole table's vectors. Rescoring reads only the candidates' rows. The distance formulas
are those of exact search (:func:`hybrid.index.exact.distances_from_dots`); the distances agree
with it to float32 rounding.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from functools import partial

import numpy as np

from hybrid.index.exact import BLOCK, RowVectors, _matrix, _squared_norms, distances_from_dots
from hybrid.index.row_reads import opened, read_rows
from hybrid.index.view import IndexedSnapshot
from hybrid.storage.manifest import Fragment
from hybrid.storage.snapshot import Snapshot

READ_ROWS = True
"""Read rescored rows from the data file (copied, never mapped) where the data file allows; False: through
the table's memory map (the pages faulted in stay in the process's resident memory)."""
HELD_FILES = 64
"""At most this many data files are held open for reading rows (a descriptor kept with the file's cached
`Stored`, closed when that is dropped); past that, each search opens and closes the file itself, which
costs an ``open`` and a ``close`` per search (about 20 us of a 0.5 ms rescored search)."""
_held = [0]
_held_lock = threading.Lock()


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
    if frag_idx[0] == frag_idx[-1]:  # one fragment (most tables' rows lie in a few large ones)
        edges = [0, len(ids)]
    else:
        edges = np.concatenate([[0], np.flatnonzero(np.diff(frag_idx)) + 1, [len(ids)]]).tolist()
    for lo, hi in zip(edges[:-1], edges[1:]):
        frag = snap.manifest.fragments[int(frag_idx[lo])]
        source = next(f.path for f in reversed(frag.files) if field_id in f.field_ids)  # as Snapshot reads it
        stored = _stored(view, frag, column, source, field_id)
        # the sorted rows of chunk c: bounds[c]:bounds[c+1]
        bounds = (np.searchsorted(offsets[lo:hi], stored.starts) + lo).tolist()
        fd, own = stored.descriptor() if READ_ROWS else (None, False)
        try:
            for chunk_no, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
                if a == b:
                    continue
                chunk, valid = stored.chunks[chunk_no]
                pos = offsets[a:b] - stored.starts[chunk_no]
                at = stored.file_offsets[chunk_no]
                if fd is not None and at is not None:
                    read_rows(fd, at, pos, matrix[a:b])
                else:
                    np.take(chunk, pos, axis=0, out=matrix[a:b], mode="clip")  # pos is in range: no checked copy
                if valid is not None:  # a null vector: no distance (its row slot holds zeros)
                    if has_vector is None:
                        has_vector = np.ones(len(ids), dtype=bool)
                    has_vector[a:b] = valid[pos]
        finally:
            if own and fd is not None:
                os.close(fd)
    if has_vector is not None:
        ids, matrix = ids[has_vector], matrix[has_vector]
    dots = matrix @ q
    squares = None if metric == "dot" else _squared_norms(matrix)  # float64, as exact search's cached norms
    wide = q.astype(np.float64)
    return ids.astype(np.uint64, copy=False), distances_from_dots(dots, squares, float(wide @ wide), metric)


@dataclass
class Stored:
    """One data file's vector column: per stored chunk its zero-copy matrix and validity (None: no nulls),
    the chunk starts, and where each chunk's matrix lies in the file (None: not the file's own bytes)."""

    chunks: list[tuple[np.ndarray, np.ndarray | None]]
    starts: np.ndarray
    file_offsets: list[int | None]
    path: str | None  # the data file, to read from (None: no chunk is the file's own bytes)
    fd: int | None = None  # the data file held open (see `HELD_FILES`), closed when this is dropped

    def descriptor(self) -> tuple[int | None, bool]:
        """A descriptor of the data file to read rows from (None: read through the map) and whether the
        caller must close it (it is held here once `HELD_FILES` allows, else opened for this call)."""
        if self.fd is not None or self.path is None:
            return self.fd, False
        with _held_lock:
            if self.fd is None and _held[0] < HELD_FILES:
                fd = opened(self.path)
                if fd is None:
                    return None, False
                self.fd = fd
                _held[0] += 1
                weakref.finalize(self, _release, fd)
            if self.fd is not None:
                return self.fd, False
        return opened(self.path), True


def _release(fd: int) -> None:
    os.close(fd)
    with _held_lock:
        _held[0] -= 1


def _stored(view: IndexedSnapshot, frag: Fragment, column: str, source: str, field_id: int) -> Stored:
    """`Stored` of `column` in data file `source` of `frag`, made once per file."""
    found: Stored = view.remember(
        "vector_chunks_random",
        (source, field_id),
        partial(_random_chunks, view.snapshot, frag, column, source),
        keep=4_096,
    )
    return found


def read_row_vectors(view: IndexedSnapshot, column: str, ids: np.ndarray, metric: str) -> RowVectors:
    """:func:`hybrid.index.exact.row_vectors` (the same rows, blocks and distances), the rows read with
    :func:`hybrid.index.row_reads.read_rows` instead of through the table's map, and their squared norms
    computed from the rows read rather than cached per stored chunk (which reads every row of it): what
    a filter's exact search over a compressed index's table reads, so that its memory stays bounded.
    Rows in files that are not plain local Arrow are read through the map, as :func:`gathered` does."""
    snap = view.snapshot
    field_id = snap.manifest.field_id(column)
    frag_idx, offsets, live = snap.locate(ids)
    if not live.all():
        ids, frag_idx, offsets = ids[live], frag_idx[live], offsets[live]
    matrix = np.empty((len(ids), snap.schema.field(column).type.list_size), dtype=np.float32)
    kept: list[np.ndarray] = []
    cuts = [0]
    edges = np.concatenate([[0], np.flatnonzero(np.diff(frag_idx)) + 1, [len(ids)]]).tolist()
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo == hi:
            continue
        frag = snap.manifest.fragments[int(frag_idx[lo])]
        source = next(f.path for f in reversed(frag.files) if field_id in f.field_ids)
        stored = _stored(view, frag, column, source, field_id)
        bounds = (np.searchsorted(offsets[lo:hi], stored.starts) + lo).tolist()
        fd, own = stored.descriptor()
        try:
            for chunk_no, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
                chunk, valid = stored.chunks[chunk_no]
                pos, rows = offsets[a:b] - stored.starts[chunk_no], ids[a:b]
                if valid is not None:
                    pos, rows = pos[valid[pos]], rows[valid[pos]]
                at, place = cuts[-1], stored.file_offsets[chunk_no]
                if fd is not None and place is not None:
                    read_rows(fd, place, pos, matrix[at : at + len(pos)])
                else:
                    np.take(chunk, pos, axis=0, out=matrix[at : at + len(pos)], mode="clip")
                cuts += [min(s + BLOCK, len(pos)) + at for s in range(0, len(pos), BLOCK)]  # exact_search's blocks
                kept.append(rows)
        finally:
            if own and fd is not None:
                os.close(fd)
    n = cuts[-1]
    matrix = matrix[:n] if n == len(matrix) else matrix[:n].copy()
    return RowVectors(
        np.asarray(np.concatenate(kept) if kept else np.empty(0), dtype=np.uint64),
        matrix,
        None if metric == "dot" else _squared_norms(matrix),
        tuple(cuts),
    )


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
    path = str(snap.root / source) if any(a is not None for a in at) else None
    return Stored(chunks, np.cumsum([0] + [len(c) for c in col.chunks]), at, path)
