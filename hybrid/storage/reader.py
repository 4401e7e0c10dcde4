"""`RowReader`: the selected columns of a few rows of one snapshot, planned once per column list.

A query reads its k result rows by row id. :meth:`hybrid.storage.snapshot.Snapshot.take` works
out, for every call, which fragment holds each row, which file holds each column there and
whether the columns are plain numbers; a reader works that out once for a (snapshot, columns)
pair. In the common layout of a search table (one fragment whose row ids run consecutively from
its first, every selected column plain numbers) a read is then a subtraction and one numpy
gather per column; any other layout reads through ``Snapshot.take``, so the values are the same.
A reader holds views of mapped files: keep it in a cache that erasure purges (the table's
search cache), not on the snapshot.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from hybrid.storage.numeric import NumericChunks, as_arrow
from hybrid.storage.snapshot import ROWID, Snapshot

_UINT64 = pa.uint64()
_max = np.maximum.reduce  # ndarray.max without its Python wrapper (paid per query)
_from_buffers, _py_buffer = pa.Array.from_buffers, pa.py_buffer
_PYTHON_ROWS = 64
"""Up to this many rows are read in Python (their largest id found, their values gathered and packed):
numpy's per-call setup costs more for a few."""


@functools.lru_cache(maxsize=256)
def _struct(n: int, code: str) -> struct.Struct:
    """The packing of `n` native values of the struct format character `code`."""
    return struct.Struct(f"{n}{code}")


def _cells(chunks: Sequence[np.ndarray], stride: int) -> tuple[tuple[memoryview, ...], int, str] | None:
    """A column's chunks as memoryviews (indexing one gives a Python number), the row stride between
    them, and their struct format character; None where a memoryview cannot index them (float16)."""
    views = tuple(c.data for c in chunks)
    code = views[0].format.lstrip("@=<")
    try:
        struct.calcsize(code)
        if len(views[0]):
            views[0][0]
    except (NotImplementedError, struct.error, TypeError):
        return None
    return views, stride, code


class RowReader:
    """Reads `columns` (``_rowid`` left out: the caller has the ids) of live rows of `snap`."""

    def __init__(self, snap: Snapshot, columns: Sequence[str]) -> None:
        snap.check_columns(columns)
        self.snapshot = snap
        self.columns = [c for c in columns if c != ROWID]
        self.schema = snap.output_schema(self.columns, with_rowid=True)
        """The schema of ``snap.take(ids, columns)``: ``_rowid`` and the columns."""
        self._start = 0
        self._rows = 0
        self._views: list[tuple[NumericChunks, pa.DataType]] | None = None
        self._live: np.ndarray | None = None
        self._live_view: memoryview | None = None
        self._cells: list[tuple[tuple[memoryview, ...], int, str]] | None = None
        frags = snap.manifest.fragments
        start = frags[0].rowid_start if len(frags) == 1 else None
        if start is None or snap.cache.remote is not None:
            return  # several fragments, row ids that skip, or ranged reads: Snapshot.take
        frag = frags[0]
        views = [snap.numeric_views(0, c) for c in self.columns]
        if any(v is None for v in views):
            return
        self._start, self._rows = start, frag.physical_rows
        self._live = snap.live_mask(frag)
        self._views = [(v, self.schema.field(c).type) for v, c in zip(views, self.columns) if v is not None]
        cells = [_cells(v.chunks, v.stride or max(1, len(v.chunks[0]))) for v in views if v is not None]
        if all(c is not None for c in cells) and all(len(v.chunks) == 1 or v.stride for v in views if v is not None):
            self._cells = [c for c in cells if c is not None]
        self._live_view = None if self._live is None else self._live.data

    def packed(self, rowids: np.ndarray) -> list[bytes] | None:
        """The columns' values at `rowids` (uint64), each column's as the bytes of its values (native
        order), when every column is plain numbers in the common layout and every row is live; else None
        (:meth:`arrays` reads them, or raises for a row that is not there).

        A few rows are read in Python, through memoryviews of the mapped chunks: after a graph search
        has filled the CPU caches, each numpy call's dispatch misses them (~10 us where it takes ~1 us
        warm), while the interpreter's own code stays cached."""
        if self._views is None or not len(rowids) or rowids.dtype != np.uint64:
            return None
        if self._cells is not None and len(rowids) <= _PYTHON_ROWS:
            return self.packed_ids(rowids.tolist())
        found = self._gathered(rowids)
        return None if found is None else [g.tobytes() for g in found]

    @property
    def cells(self) -> tuple[int, list[tuple[tuple[memoryview, ...], int, str]]] | None:
        """What :meth:`packed_ids` reads, where every column is plain numbers in the common layout: (the
        first row id, per column (its chunks as memoryviews, the rows per chunk, its struct format
        character)); a row's value is ``chunks[o // stride][o % stride]`` at offset ``o = rowid - start``
        (live or not: the caller knows its rows are live). None otherwise."""
        return None if self._cells is None else (self._start, self._cells)

    def packed_ids(self, rowids: list[int]) -> list[bytes] | None:
        """:meth:`packed` of row ids given as a Python list (at most 64 of them), or None where
        :meth:`packed` or :meth:`arrays` must read them (another layout, more rows, a row not live)."""
        cells = self._cells
        n = len(rowids)
        if cells is None or not n or n > _PYTHON_ROWS:
            return None
        start = self._start
        offsets = [r - start for r in rowids] if start else rowids
        if min(offsets) < 0 or max(offsets) >= self._rows:
            return None
        live = self._live_view
        if live is not None and not all([live[o] for o in offsets]):
            return None
        out = []
        for chunks, stride, code in cells:
            out.append(_struct(n, code).pack(*[chunks[o // stride][o % stride] for o in offsets]))
        return out

    def _gathered(self, rowids: np.ndarray) -> list[np.ndarray] | None:
        """:meth:`packed`'s values as new contiguous numpy arrays (any number of rows), or None."""
        views, live = self._views, self._live
        n = len(rowids)
        if views is None or not n or rowids.dtype != np.uint64:
            return None
        offsets = rowids - np.uint64(self._start) if self._start else rowids  # below the start: wraps past the end
        # the largest offset: a Python max of a few values costs a third of numpy's reduction
        top = max(offsets.tolist()) if n <= _PYTHON_ROWS else int(_max(offsets))
        if top >= self._rows or (live is not None and not live[offsets].all()):
            return None
        return [v.gather(offsets) for v, _ in views]

    def arrays(self, rowids: np.ndarray) -> list[pa.Array]:
        """The columns' values at `rowids` (uint64, live rows of the snapshot), in request order;
        raises :class:`hybrid.errors.RowNotFoundError` for a row id that is not live."""
        found = self._gathered(rowids)
        if found is not None and self._views is not None:  # a gather's buffer is the Arrow array's data
            n = len(rowids)
            return [_from_buffers(t, n, [None, _py_buffer(g)]) for g, (_, t) in zip(found, self._views)]
        return self.snapshot.take(rowids, self.columns).columns[1:]  # raises for the rows not there

    def table_arrays(self, rowids: np.ndarray) -> list[pa.Array] | list[pa.ChunkedArray]:
        """The columns of :meth:`table` (of :attr:`schema`): ``_rowid`` and the columns' values."""
        return [as_arrow(rowids, _UINT64), *self.arrays(rowids)]

    def table(self, rowids: np.ndarray) -> pa.Table:
        """``snap.take(rowids, columns)``: ``_rowid`` and the columns."""
        return pa.Table.from_arrays(self.table_arrays(rowids), schema=self.schema)
