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

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from hybrid.storage.numeric import NumericChunks, as_arrow
from hybrid.storage.snapshot import ROWID, Snapshot

_UINT64 = pa.uint64()
_max = np.maximum.reduce  # ndarray.max without its Python wrapper (paid per query)


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

    def arrays(self, rowids: np.ndarray) -> list[pa.Array]:
        """The columns' values at `rowids` (uint64, live rows of the snapshot), in request order;
        raises :class:`hybrid.errors.RowNotFoundError` for a row id that is not live."""
        views, live = self._views, self._live
        if views is not None and len(rowids) and rowids.dtype == np.uint64:
            offsets = rowids - np.uint64(self._start) if self._start else rowids  # below the start: wraps past the end
            if int(_max(offsets)) < self._rows and (live is None or live[offsets].all()):
                return [as_arrow(v.gather(offsets), t) for v, t in views]
        return self.snapshot.take(rowids, self.columns).columns[1:]  # raises for the rows not there

    def table_arrays(self, rowids: np.ndarray) -> list[pa.Array] | list[pa.ChunkedArray]:
        """The columns of :meth:`table` (of :attr:`schema`): ``_rowid`` and the columns' values."""
        return [as_arrow(rowids, _UINT64), *self.arrays(rowids)]

    def table(self, rowids: np.ndarray) -> pa.Table:
        """``snap.take(rowids, columns)``: ``_rowid`` and the columns."""
        return pa.Table.from_arrays(self.table_arrays(rowids), schema=self.schema)
