"""Reading one table version: scans, random access by row id, fragment reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from hybrid.errors import RowNotFoundError, SchemaError
from hybrid.storage.blocks import BlockColumn
from hybrid.storage.files import FileCache
from hybrid.storage.ingest import is_vector_type
from hybrid.storage.manifest import Fragment, Manifest
from hybrid.storage.numeric import NumericChunks, as_arrow, plain_numbers

ROWID = "_rowid"
RowPredicate = Callable[[pa.Table], np.ndarray]
"""Given a table of the predicate's columns, return a boolean keep-mask."""


class Snapshot:
    """A consistent, read-only view of one manifest."""

    def __init__(self, root: Path, manifest: Manifest, cache: FileCache, previous: Snapshot | None = None) -> None:
        """`previous`: a snapshot of an earlier version of the same table, whose schema-derived values
        (output schemas, vector columns) this one shares when the schema is unchanged: each version's
        manifest parses its own schema, and a search right after a write would rebuild them."""
        self.root = root
        self.manifest = manifest
        self.cache = cache
        self._first_ids: np.ndarray | None = None  # each fragment's smallest row id, made at the first locate
        self._schemas: dict[tuple[tuple[str, ...], bool], pa.Schema] = {}  # output schemas made so far
        self._sources: dict[tuple[int, str], tuple[str, int] | None] = {}  # (fragment, column) -> (file, position)
        self._vector_columns: list[str] | None = None
        if previous is not None and _same_schema(previous.manifest, manifest):
            self._schemas = previous._schemas  # depend on the schema only (dict writes are atomic)
            self._vector_columns = previous._vector_columns

    @property
    def schema(self) -> pa.Schema:
        return self.manifest.schema

    def _mins(self) -> np.ndarray:
        """Each fragment's smallest row id, made at the first locate: a commit's snapshot, which never
        locates a row, does not pay for it (one entry per fragment: a thousand on a table written row by
        row with upkeep off)."""
        if self._first_ids is None:
            self._first_ids = np.array([f.rowid_min for f in self.manifest.fragments], dtype=np.uint64)
        return self._first_ids

    def vector_columns(self) -> list[str]:
        """Names of the vector columns (fixed-size lists of floats), in schema order."""
        if self._vector_columns is None:
            self._vector_columns = [f.name for f in self.schema if is_vector_type(f.type)]
        return self._vector_columns

    def check_columns(self, columns: Sequence[str]) -> None:
        unknown = [c for c in columns if c != ROWID and self.schema.get_field_index(c) < 0]
        if unknown:
            raise SchemaError(f"unknown column(s) {unknown}; the table has: {', '.join(self.schema.names)}")

    # -- per-fragment building blocks -------------------------------------------------

    def rowids(self, frag: Fragment) -> np.ndarray:
        if frag.rowid_start is not None:
            return np.arange(frag.rowid_start, frag.rowid_start + frag.physical_rows, dtype=np.uint64)
        assert frag.rowid_file is not None  # manifest invariant, not user input
        return self.cache.ids(frag.rowid_file)

    def deleted_offsets(self, frag: Fragment) -> np.ndarray:
        if frag.deletion_file is None:
            return np.empty(0, dtype=np.uint64)
        return self.cache.ids(frag.deletion_file)

    def live_mask(self, frag: Fragment) -> np.ndarray | None:
        """Read-only boolean mask of live physical rows, or None when nothing is deleted."""
        if frag.deleted_rows == 0 or frag.deletion_file is None:
            return None
        return self.cache.live_mask(frag.deletion_file, frag.physical_rows)

    def read_fragment(
        self,
        frag: Fragment,
        columns: Sequence[str],
        with_rowid: bool = False,
        random_access: bool = False,
        rows: tuple[int, int] | None = None,
    ) -> pa.Table:
        """The physical rows of `frag` (all, or those in ``range(*rows)``) for `columns` (zero-copy where
        stored; see FileCache.table; text in compressed blocks is decompressed, only for `rows`)."""
        start, stop = rows if rows is not None else (0, frag.physical_rows)
        arrays: list[pa.ChunkedArray | pa.Array] = []
        names: list[str] = []
        if with_rowid:
            arrays.append(pa.array(self.rowids(frag)[start:stop], type=pa.uint64()))
            names.append(ROWID)
        for name in columns:
            arrays.append(self._column(frag, name, random_access, rows))
            names.append(name)
        if not arrays:
            return pa.table({"__empty": pa.nulls(stop - start)}).drop_columns(["__empty"])
        return pa.Table.from_arrays(arrays, names=names)

    def _column(
        self, frag: Fragment, name: str, random_access: bool = False, rows: tuple[int, int] | None = None
    ) -> pa.ChunkedArray | pa.Array:
        index = self.schema.get_field_index(name)
        field = self.schema.field(index)
        field_id = self.manifest.field_ids[index]
        for data_file in reversed(frag.files):
            if field_id in data_file.field_ids:
                position = data_file.field_ids.index(field_id)
                stored = self.cache.blocks(data_file.path, position, random_access)
                if stored is not None:  # compressed blocks: those of the rows decoded
                    column = stored.decode(*rows) if rows is not None else stored.decode()
                else:
                    column = self.cache.table(data_file.path, random_access).column(position)
                    column = column if rows is None else column.slice(rows[0], rows[1] - rows[0])
                return column if column.type == field.type else column.cast(field.type)
        return pa.nulls(frag.physical_rows if rows is None else rows[1] - rows[0], type=field.type)

    def _stored_blocks(self, frag: Fragment, name: str, random_access: bool = True) -> BlockColumn | None:
        """Column `name` of `frag` when its data file holds it in compressed blocks, else None."""
        field_id = self.manifest.field_ids[self.schema.get_field_index(name)]
        source = next((f for f in reversed(frag.files) if field_id in f.field_ids), None)
        if source is None:
            return None
        return self.cache.blocks(source.path, source.field_ids.index(field_id), random_access)

    # -- whole-version reads ----------------------------------------------------------

    def output_schema(self, columns: Sequence[str], with_rowid: bool) -> pa.Schema:
        key = (tuple(columns), with_rowid)
        found = self._schemas.get(key)
        if found is None:
            fields = [self.schema.field(c) for c in columns]
            if with_rowid:
                fields.insert(0, pa.field(ROWID, pa.uint64(), nullable=False))
            found = pa.schema(fields)
            if len(self._schemas) < 64:
                self._schemas[key] = found
        return found

    def scan(
        self,
        columns: Sequence[str] | None = None,
        *,
        with_rowid: bool = False,
        batch_size: int = 65_536,
        predicate: RowPredicate | None = None,
        predicate_columns: Sequence[str] = (),
    ) -> Iterator[pa.RecordBatch]:
        """Stream live rows fragment by fragment, `batch_size` physical rows at a time."""
        cols = list(self.schema.names if columns is None else columns)
        self.check_columns(cols)
        cols = [c for c in cols if c != ROWID]
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        out_schema = self.output_schema(cols, with_rowid)
        masks = self.row_masks(predicate, predicate_columns)
        for frag, mask in zip(self.manifest.fragments, masks):
            if frag.live_rows == 0 or (mask is not None and not mask.any()):
                continue
            # text in compressed blocks is decompressed piece by piece, so a scan holds one piece's, not the file's
            pieces = frag.physical_rows > batch_size and any(self._stored_blocks(frag, c, False) for c in cols)
            table = None if pieces else self.read_fragment(frag, cols, with_rowid)
            for start in range(0, frag.physical_rows, batch_size):
                stop = min(start + batch_size, frag.physical_rows)
                piece = (
                    table.slice(start, stop - start)
                    if table is not None
                    else self.read_fragment(frag, cols, with_rowid, rows=(start, stop))
                )
                if mask is not None:
                    piece = piece.filter(pa.array(mask[start : start + batch_size]))
                for batch in piece.to_batches():
                    if batch.num_rows:
                        yield pa.RecordBatch.from_arrays(batch.columns, schema=out_schema)

    def row_masks(
        self,
        predicate: RowPredicate | None = None,
        predicate_columns: Sequence[str] = (),
        only: Sequence[bool] | None = None,
    ) -> list[np.ndarray | None]:
        """Per fragment, the mask of physical rows that are live and satisfy `predicate`.

        None stands for "every row". The predicate runs once over all fragments
        (a zero-copy concatenation), not once per fragment. `only` (with a predicate):
        per fragment, whether to evaluate it; the others are not read and match no row.
        """
        masks = [self.live_mask(frag) for frag in self.manifest.fragments]
        if predicate is None:
            return masks
        read = [bool(f.live_rows) and (only is None or only[i]) for i, f in enumerate(self.manifest.fragments)]
        # with_rowid keeps the row count even when the predicate reads no column (e.g. "true")
        pieces = [
            self.read_fragment(f, predicate_columns, with_rowid=True)
            for f, r in zip(self.manifest.fragments, read)
            if r
        ]
        if not pieces:
            return (
                [np.zeros(f.physical_rows, dtype=bool) for f in self.manifest.fragments] if only is not None else masks
            )
        keep = predicate(pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0])
        start = 0
        for i, frag in enumerate(self.manifest.fragments):
            if read[i]:
                part = keep[start : start + frag.physical_rows]
                start += frag.physical_rows
                live = masks[i]
                masks[i] = part if live is None else part & live
            else:
                masks[i] = np.zeros(frag.physical_rows, dtype=bool)
        return masks

    def count(self, predicate: RowPredicate | None = None, predicate_columns: Sequence[str] = ()) -> int:
        """Number of live rows, optionally only those for which `predicate` holds."""
        if predicate is None:
            return self.manifest.num_rows
        masks = self.row_masks(predicate, predicate_columns)
        return sum(f.physical_rows if m is None else int(m.sum()) for f, m in zip(self.manifest.fragments, masks))

    def to_arrow(
        self,
        columns: Sequence[str] | None = None,
        *,
        with_rowid: bool = False,
        predicate: RowPredicate | None = None,
        predicate_columns: Sequence[str] = (),
    ) -> pa.Table:
        cols = list(self.schema.names if columns is None else columns)
        self.check_columns(cols)
        cols = [c for c in cols if c != ROWID]
        batches = self.scan(
            cols, with_rowid=with_rowid, batch_size=1 << 30, predicate=predicate, predicate_columns=predicate_columns
        )
        return pa.Table.from_batches(batches, schema=self.output_schema(cols, with_rowid))

    # -- random access ----------------------------------------------------------------

    def locate(self, rowids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Map row ids to (fragment index, physical offset, live?) arrays."""
        frags = self.manifest.fragments
        if len(frags) == 1 and frags[0].rowid_start is not None:  # one fragment of consecutive ids
            return self._locate_one(frags[0], frags[0].rowid_start, rowids)
        mins = self._mins()
        frag_idx = np.searchsorted(mins, rowids, side="right").astype(np.int64) - 1
        offsets = np.zeros(len(rowids), dtype=np.int64)
        live = np.zeros(len(rowids), dtype=bool)
        if len(rowids) == 0 or len(mins) == 0:
            return frag_idx, offsets, live
        single = frag_idx[0] == frag_idx[-1] and bool((frag_idx == frag_idx[0]).all())
        for fi in [frag_idx[0]] if single else np.unique(frag_idx):
            if fi < 0:
                continue
            sel = slice(None) if single else np.nonzero(frag_idx == fi)[0]
            frag = self.manifest.fragments[fi]
            wanted = rowids[sel]
            if frag.rowid_start is not None:
                off = wanted.astype(np.int64) - frag.rowid_start
                ok = off < frag.physical_rows
            else:
                ids = self.rowids(frag)
                off = np.searchsorted(ids, wanted).astype(np.int64)
                ok = off < len(ids)
                ok[ok] = ids[off[ok]] == wanted[ok]
            mask = self.live_mask(frag)
            if mask is not None:
                ok[ok] = mask[off[ok]]
            offsets[sel] = np.where(ok, off, 0)
            live[sel] = ok
        return frag_idx, offsets, live

    def _locate_one(self, frag: Fragment, start: int, rowids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`locate` in a version of one fragment whose row ids are consecutive from `start`."""
        ids = rowids.astype(np.int64)
        offsets = ids - start
        live = (offsets >= 0) & (offsets < frag.physical_rows)
        mask = self.live_mask(frag)
        if mask is not None:
            live[live] = mask[offsets[live]]
        if live.all():
            return np.zeros(len(ids), np.int64), offsets, live
        return np.where(ids >= start, 0, -1).astype(np.int64), np.where(live, offsets, 0), live

    def take(self, rowids: Sequence[int] | np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        """Rows with the given row ids, in request order, `_rowid` first."""
        cols = list(self.schema.names if columns is None else columns)
        self.check_columns(cols)
        cols = [c for c in cols if c != ROWID]
        ids = _as_rowids(rowids)
        frag_idx, offsets, live = self.locate(ids)
        if not live.all():
            missing = ids[~live][:10].tolist()
            raise RowNotFoundError(
                f"{int((~live).sum())} row id(s) are not live rows of version {self.manifest.version}, e.g. {missing}"
            )
        out_schema = self.output_schema(cols, with_rowid=True)
        if len(ids) == 0:
            return out_schema.empty_table()
        if cols and len(ids) <= NUMPY_TAKE_ROWS and self.cache.remote is None:
            gathered = self._take_numeric(cols, frag_idx, offsets)
            if gathered is not None:  # every column plain numbers: gathered through numpy, no table per fragment
                return pa.Table.from_arrays([as_arrow(ids, pa.uint64()), *gathered], schema=out_schema)
        if cols and frag_idx[0] == frag_idx[-1] and (frag_idx == frag_idx[0]).all():  # one fragment: no regrouping
            picked = self._take(self.manifest.fragments[frag_idx[0]], cols, offsets)
            arrays = [pa.array(ids, type=pa.uint64()), *picked.columns]
            if all(a.type == f.type for a, f in zip(arrays, out_schema)):  # no cast, only the fields' flags
                return pa.Table.from_arrays(arrays, schema=out_schema)
            return pa.Table.from_arrays(arrays, names=out_schema.names).cast(out_schema)
        if not cols:  # a table without columns has no length to take from
            return pa.Table.from_arrays([pa.array(ids, type=pa.uint64())], schema=out_schema)
        order = np.argsort(frag_idx, kind="stable")
        bounds = np.flatnonzero(np.diff(frag_idx[order])) + 1
        pieces = []
        for group in np.split(order, bounds):
            frag = self.manifest.fragments[frag_idx[group[0]]]
            pieces.append(self._take(frag, cols, offsets[group]))
        gathered = pa.concat_tables(pieces, promote_options="none").combine_chunks()  # a few rows: cheap
        if np.any(order[1:] < order[:-1]):  # back to request order
            inverse = np.empty(len(order), dtype=np.int64)
            inverse[order] = np.arange(len(order))
            gathered = gathered.take(inverse)
        arrays = [pa.array(ids, type=pa.uint64()), *gathered.columns]
        if all(a.type == f.type for a, f in zip(arrays, out_schema)):  # `_rowid` not nullable, as in one fragment
            return pa.Table.from_arrays(arrays, schema=out_schema)
        return pa.Table.from_arrays(arrays, names=out_schema.names).cast(out_schema)

    def numeric_views(self, fi: int, name: str) -> NumericChunks | None:
        """Numpy views of column `name` in fragment `fi`, or None when it is not stored there as plain
        numbers of the table's type (a column added later, nulls, strings...)."""
        key = (fi, name)
        try:
            source = self._sources[key]
        except KeyError:
            index = self.schema.get_field_index(name)
            field_id = self.manifest.field_ids[index]
            found = next((f for f in reversed(self.manifest.fragments[fi].files) if field_id in f.field_ids), None)
            source = None if found is None else (found.path, found.field_ids.index(field_id))
            self._sources[key] = source
        if source is None:
            return None
        views = self.cache.numeric(*source)
        return views if views is not None and views.type == self.schema.field(name).type else None

    def _take_numeric(self, cols: Sequence[str], frag_idx: np.ndarray, offsets: np.ndarray) -> list[pa.Array] | None:
        """`cols` at (`frag_idx`, `offsets`) when each is plain numbers in every fragment involved (or, in one
        fragment, stored in compressed blocks), else None."""
        first = int(frag_idx[0])
        if len(self.manifest.fragments) == 1 or (frag_idx == first).all():
            out = []
            for name in cols:
                views = self.numeric_views(first, name)
                if views is not None:
                    out.append(views.take(offsets))
                    continue
                stored = self._stored_blocks(self.manifest.fragments[first], name)  # text: only its blocks read
                if stored is None or stored.type != self.schema.field(name).type:
                    return None
                out.append(stored.take(offsets))
            return out
        frags = np.unique(frag_idx).tolist()
        picks = [(fi, frag_idx == fi) for fi in frags]
        arrays = []
        for name in cols:
            parts = [(self.numeric_views(fi, name), sel) for fi, sel in picks]
            if any(views is None for views, _ in parts):
                return None
            values = np.empty(len(offsets), dtype=self.schema.field(name).type.to_pandas_dtype())
            for views, sel in parts:
                assert views is not None
                values[sel] = views.gather(offsets[sel])
            arrays.append(as_arrow(values, self.schema.field(name).type))
        return arrays

    def _take(self, frag: Fragment, cols: Sequence[str], offsets: np.ndarray) -> pa.Table:
        """The rows of `frag` at physical `offsets` for `cols` (on an object store: ranged reads)."""
        if self.cache.remote is not None:
            ranged = self._take_ranged(frag, cols, offsets)
            if ranged is not None:
                return ranged
        stored = {c: b for c in cols if (b := self._stored_blocks(frag, c)) is not None}
        if not stored:
            return take_rows(self.read_fragment(frag, cols, random_access=True), offsets)
        plain = [c for c in cols if c not in stored]  # the rest read as before; blocks: only those touched
        taken = take_rows(self.read_fragment(frag, plain, random_access=True), offsets) if plain else None
        arrays = []
        for name in cols:
            if name in stored:
                column = stored[name].take(offsets)
                field = self.schema.field(name)
                arrays.append(column if column.type == field.type else column.cast(field.type))
            else:
                assert taken is not None
                arrays.append(taken.column(name))
        return pa.Table.from_arrays(arrays, names=list(cols))

    def _take_ranged(self, frag: Fragment, cols: Sequence[str], offsets: np.ndarray) -> pa.Table | None:
        wanted: dict[str, list[tuple[str, int]]] = {}  # data file -> (column, position in the file)
        arrays: dict[str, pa.ChunkedArray | pa.Array] = {}
        for name in cols:
            field = self.schema.field(name)
            field_id = self.manifest.field_ids[self.schema.get_field_index(name)]
            source = next((f for f in reversed(frag.files) if field_id in f.field_ids), None)
            if source is None:
                arrays[name] = pa.nulls(len(offsets), type=field.type)
            else:
                wanted.setdefault(source.path, []).append((name, source.field_ids.index(field_id)))
        for path, picks in wanted.items():
            got = self.cache.take_columns(path, [p for _, p in picks], offsets)
            if got is None:
                return None
            for (name, _), column in zip(picks, got, strict=True):
                field = self.schema.field(name)
                arrays[name] = column if column.type == field.type else column.cast(field.type)
        return pa.Table.from_arrays([arrays[c] for c in cols], names=list(cols))


def take_rows(table: pa.Table, offsets: np.ndarray) -> pa.Table:
    """The rows of `table` at `offsets`, in that order.

    A column stored as several chunks (a file of several record batches) is taken chunk by
    chunk: pyarrow's own take of a chunked string column first concatenates the whole
    column (3.5 ms for ten rows of a 100,000-row column of 300-character strings, against
    0.08 ms chunk by chunk).
    """
    if table.num_columns and len(offsets) <= NUMPY_TAKE_ROWS and all(plain_numbers(c) for c in table.columns):
        return pa.Table.from_arrays([_take_numbers(c, offsets) for c in table.columns], schema=table.schema)
    if all(column.num_chunks == 1 for column in table.columns):
        return table.take(pa.array(offsets))
    return pa.Table.from_arrays([_take_column(c, offsets) for c in table.columns], schema=table.schema)


def _take_numbers(column: pa.ChunkedArray, offsets: np.ndarray) -> pa.Array:
    """A few values of a column of plain numbers, gathered through numpy views of its chunks: no Arrow
    kernel call, whose dispatch (~10 us each) was a third of an unfiltered vector query's own time."""
    views = NumericChunks.of(column)
    assert views is not None, "callers check plain_numbers first"
    return views.take(offsets)


def _take_column(column: pa.ChunkedArray, offsets: np.ndarray) -> pa.Array | pa.ChunkedArray:
    if column.num_chunks <= 1 or len(offsets) == 0:
        return column.take(pa.array(offsets, type=pa.int64()))
    if len(offsets) <= NUMPY_TAKE_ROWS and plain_numbers(column):
        return _take_numbers(column, offsets)
    lengths = np.fromiter((len(c) for c in column.chunks), dtype=np.int64, count=column.num_chunks)
    ends = np.cumsum(lengths)
    which = np.searchsorted(ends, offsets, side="right")
    local = np.asarray(offsets, dtype=np.int64) - (ends - lengths)[which]
    if len(which) and (which == which[0]).all():
        return column.chunk(int(which[0])).take(pa.array(local))
    order = np.argsort(which, kind="stable")
    parts = [column.chunk(int(c)).take(pa.array(local[order][which[order] == c])) for c in np.unique(which[order])]
    gathered = pa.concat_arrays(parts)
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.arange(len(order))
    return gathered.take(pa.array(inverse))


NUMPY_TAKE_ROWS = 4_096
"""Up to this many rows of a numeric column spread over several chunks are gathered with numpy."""


def _as_rowids(rowids: Sequence[int] | np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(rowids, np.ndarray) and rowids.dtype == np.uint64 and rowids.ndim == 1:
        return rowids.copy()  # what the query path passes: nothing to check or convert (a copy, as before)
    if isinstance(rowids, (pa.Array, pa.ChunkedArray)):
        rowids = rowids.to_numpy()
    arr = np.asarray(rowids)
    if arr.ndim != 1:
        raise ValueError(f"row ids must be a 1-d sequence, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"row ids must be integers, got dtype {arr.dtype}")
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise RowNotFoundError(f"row ids are never negative, got {int(arr.min())}")
    return arr.astype(np.uint64)


def _same_schema(a: Manifest, b: Manifest) -> bool:
    """Whether two versions have the same columns (names, types, field ids and metadata)."""
    return a.schema is b.schema or (a.field_ids == b.field_ids and a.schema.equals(b.schema, check_metadata=True))
