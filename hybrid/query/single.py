"""The result rows of a query with one branch (vector or text) and no reranker, score functions, pins,
grouping or expansion: the branch's own list is the ranking.

Nothing is fused, and each result's branch rank is its place in that list, so the rows are the
branch's hits (less those the postfilter or the query's examples drop) from `offset` to
`offset + limit`, read once, with `_score` (minus the distance, or the BM25 score), the raw score
and the rank beside them: the same table :func:`hybrid.query.result_columns.result_table` builds
after fusion, without matching every result against every branch.
"""

from __future__ import annotations

import functools
import struct
import threading
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from hybrid.query import fixed_batch
from hybrid.storage.numeric import as_arrow
from hybrid.storage.reader import RowReader

if TYPE_CHECKING:
    from hybrid.index.view import IndexedSnapshot
    from hybrid.query.executor import Branch
    from hybrid.query.search import Query

_UINT64, _FLOAT64, _FLOAT32, _INT32 = pa.uint64(), pa.float64(), pa.float32(), pa.int32()
_F32 = np.dtype(np.float32)
_SCORE = pa.field("_score", pa.float64())
_RESULT_FIELDS = {
    "vector": (_SCORE, pa.field("_distance", pa.float32()), pa.field("_vector_rank", pa.int32())),
    "fts": (_SCORE, pa.field("_bm25", pa.float32()), pa.field("_fts_rank", pa.int32())),
}
_schemas: dict[tuple[int, str], tuple[pa.Schema, pa.Schema]] = {}
_lock = threading.Lock()
_KEEP_SCHEMAS = 256
_shapes: dict[tuple[int, str, int], tuple[pa.Schema, fixed_batch.Layout | None]] = {}
_ranks: dict[tuple[int, int], np.ndarray] = {}
_KEEP_RANKS = 256


def applies(q: Query, branches: list[Branch]) -> bool:
    """Whether `q`'s rows are its single branch's list as it stands (grouped queries never get here)."""
    return (
        len(branches) == 1
        and q.reranker is None
        and not q.functions
        and not q.pinned
        and q.expansion is None
        and q.grouping is None
    )


def rows(q: Query, view: IndexedSnapshot, b: Branch, keep: np.ndarray | None) -> pa.Table:
    """The result rows of the branch `b` that ran alone; `keep` marks which of its hits may be results."""
    end = q.skip + q.k
    if keep is None:  # the list as it stands: slices, ranks from offset + 1
        ids, raw = b.ids[q.skip : end], b.raw[q.skip : end]
        ranks = rank_values(q.skip + 1, len(ids))
    else:
        at = np.flatnonzero(keep)[q.skip : end]
        ids, raw = b.ids[at], b.raw[at]
        ranks = (at + 1).astype(np.int32)
    return table(row_reader(view, q.columns), "vector" if b.kind == "vector" else "fts", ids, raw, ranks)


def table(reader: RowReader, kind: str, ids: np.ndarray, raw: np.ndarray, ranks: np.ndarray) -> pa.Table:
    """The rows `ids` read by `reader`, with `_score` (minus the distance for a `kind` "vector" branch,
    else the BM25 score), the raw score `raw` and the branch ranks `ranks` (int32) beside them: one
    table built from numpy, or from one buffer when every column is a plain number
    (:mod:`hybrid.query.fixed_batch`).

    A query's few rows are packed in Python there: after a graph search has filled the CPU caches,
    each numpy or Arrow call's dispatch misses them (~10 us where it takes ~1 us warm), the
    interpreter's own code far less."""
    n = len(ids)
    if raw.dtype is not _F32:  # (a float32 array's dtype is numpy's one float32 dtype object)
        raw = raw.astype(np.float32)
    schema = _result_schema(reader.schema, kind)
    packed = reader.packed(ids)  # None unless every column is plain numbers in the common layout
    if packed is not None:
        shape = fixed_batch.layout(schema, n)
        if shape is not None:
            scores = raw.tolist()  # float32 to float64 is exact, as numpy's cast
            score = _doubles(n).pack(*([-x for x in scores] if kind == "vector" else scores))
            return shape.table([ids.tobytes(), *packed, score, raw.tobytes(), ranks.tobytes()])
    if not raw.flags.c_contiguous:
        raw = np.ascontiguousarray(raw)
    score_array = np.negative(raw, dtype=np.float64) if kind == "vector" else raw.astype(np.float64)
    read = reader.arrays(ids)
    arrays = [as_arrow(ids, _UINT64), *read, _own(score_array, _FLOAT64), _own(raw, _FLOAT32), as_arrow(ranks, _INT32)]
    if pa.ChunkedArray in map(type, read):  # read through Snapshot.take
        return pa.Table.from_arrays(arrays, schema=schema)
    # one record batch made into a table: Table.from_arrays wraps and checks each column on its own
    return pa.Table.from_batches([pa.RecordBatch.from_arrays(arrays, schema=schema)])


def listed(reader: RowReader, kind: str, ids: list[int], raw: list[float], first: int) -> pa.Table:
    """:func:`table` of hits given as Python lists (row ids, float32 raw scores as Python floats) ranked
    from `first`: packed straight into the one-buffer table (:mod:`hybrid.query.fixed_batch`) where
    every column is a plain number, so no numpy call comes between the graph walk and the result."""
    n = len(ids)
    taken = reader.schema
    found = _shapes.get((id(taken), kind, n))  # one look-up for the result schema and its layout
    if found is None or found[0] is not taken:
        found = _shape(taken, kind, n)
    shape = found[1]
    packed = None if shape is None else reader.packed_ids(ids)
    if shape is None or packed is None:
        return table(reader, kind, np.array(ids, np.uint64), np.array(raw, np.float32), rank_values(first, n))
    score = _doubles(n).pack(*([-x for x in raw] if kind == "vector" else raw))  # as the float32 -> float64 cast
    return shape.table([_longs(n).pack(*ids), *packed, score, _floats(n).pack(*raw), _rank_bytes(first, n)])


def result_layout(taken: pa.Schema, kind: str, n: int) -> fixed_batch.Layout | None:
    """The one-buffer layout of `n` result rows of a lone `kind` branch whose rows `taken` (a reader's
    schema) describes (the table :func:`listed` builds), or None where a column is not a plain number."""
    found = _shapes.get((id(taken), kind, n))
    return (found if found is not None and found[0] is taken else _shape(taken, kind, n))[1]


def _shape(taken: pa.Schema, kind: str, n: int) -> tuple[pa.Schema, fixed_batch.Layout | None]:
    """(`taken`, the one-buffer layout of `n` result rows of a lone `kind` branch reading it), kept."""
    found = (taken, fixed_batch.layout(_result_schema(taken, kind), n))
    with _lock:
        if len(_shapes) >= _KEEP_SCHEMAS:
            _shapes.clear()
        _shapes[(id(taken), kind, n)] = found
    return found


@functools.lru_cache(maxsize=256)
def _longs(n: int) -> struct.Struct:
    """The packing of `n` native uint64 values."""
    return struct.Struct(f"{n}Q")


@functools.lru_cache(maxsize=256)
def _floats(n: int) -> struct.Struct:
    """The packing of `n` native float32 values (exact for values that are float32 already)."""
    return struct.Struct(f"{n}f")


@functools.lru_cache(maxsize=256)
def _rank_bytes(first: int, n: int) -> bytes:
    """The ranks ``first .. first + n - 1`` as native int32 bytes."""
    return struct.pack(f"{n}i", *range(first, first + n))


@functools.lru_cache(maxsize=256)
def _doubles(n: int) -> struct.Struct:
    """The packing of `n` native float64 values."""
    return struct.Struct(f"{n}d")


def _own(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """`values` (contiguous, of `type_`'s own dtype: :func:`table` makes sure) as an Arrow array sharing its
    memory: :func:`hybrid.storage.numeric.as_arrow` without its checks."""
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(values)])


def rank_values(first: int, n: int) -> np.ndarray:
    """The ranks ``first .. first + n - 1`` as a read-only int32 array (the common ones made once)."""
    key = (first, n)
    found = _ranks.get(key)
    if found is None:
        found = np.arange(first, first + n, dtype=np.int32)
        found.flags.writeable = False
        if first <= _KEEP_RANKS and n <= _KEEP_RANKS and len(_ranks) < _KEEP_RANKS:
            _ranks[key] = found
    return found


def row_reader(view: IndexedSnapshot, columns: tuple[str, ...] | None) -> RowReader:
    """The reader of `columns` (None: every column) in `view`'s version, made once per version and
    kept in the table's search cache (which erasure purges: a reader holds views of mapped files)."""
    key = (view.version, columns)
    found: RowReader = view.remember(
        "row_readers", key, lambda: RowReader(view.snapshot, view.schema.names if columns is None else columns), 32
    )
    return found


READERS_CARRIED = 4
"""A new version gets readers made ahead for at most this many column lists (the latest used)."""


def prepare_readers(view: IndexedSnapshot) -> None:
    """Make `view`'s readers of the column lists this table object read its results with lately (none
    when it has not searched), so that the first search of a version its own write made finds them ready."""
    store = view.cache.stores.get("row_readers")
    if not store:
        return
    recent: list[tuple[str, ...] | None] = []
    for version, columns in reversed(list(store)):  # newest first (kept in the order they were made)
        if version != view.version and columns not in recent:
            recent.append(columns)
            if len(recent) == READERS_CARRIED:
                break
    for columns in recent:
        row_reader(view, columns)


def _result_schema(taken: pa.Schema, kind: str) -> pa.Schema:
    """`taken` and the result columns of a lone `kind` branch (made once per `taken` object: the
    snapshot hands out one output schema object per column list)."""
    key = (id(taken), kind)
    found = _schemas.get(key)
    if found is not None and found[0] is taken:
        return found[1]
    schema = pa.schema([*taken, *_RESULT_FIELDS[kind]], metadata=taken.metadata)
    with _lock:
        if len(_schemas) >= _KEEP_SCHEMAS:
            _schemas.clear()
        _schemas[key] = (taken, schema)
    return schema
