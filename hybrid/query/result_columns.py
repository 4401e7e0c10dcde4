"""The result columns of fused rows: ``_score``, and per branch its raw score and rank.

The result rows are the fused list's; each branch found some of them. Beside the selected columns a
result holds ``_score`` and, per branch, the raw score (``_distance`` or ``_bm25``) and 1-based rank
(``_vector_rank`` or ``_fts_rank``) of each row in that branch's list, null where the branch did not
find the row. A later vector branch's columns are suffixed by its column name.

A branch's list is a query's depth long (50 by default) and the rows are k, so each row's place in the
list is found by comparing every row with every listed id at once (one numpy call; a sort past
BROADCAST pairs). The columns stay numpy until one record batch is built; a branch's two columns
share one validity bitmap, and the schema of the added columns is made once per (selected columns,
branches) shape.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from hybrid.query.executor import Branch

BROADCAST = 1 << 16
"""Up to this many (row, listed id) pairs are compared all at once; more are matched through a sort."""

_FLOAT64, _FLOAT32, _INT32 = pa.float64(), pa.float32(), pa.int32()
_schemas: dict[tuple[int, tuple[str, ...]], tuple[pa.Schema, pa.Schema]] = {}
_lock = threading.Lock()
_KEEP_SCHEMAS = 256


def with_result_columns(rows: pa.Table, ids: np.ndarray, scores: np.ndarray, branches: Sequence[Branch]) -> pa.Table:
    """`rows` (the rows `ids`, in order) plus ``_score`` (`scores`) and each branch's raw score and rank."""
    return result_table(rows.schema, list(rows.columns), ids, scores, branches)


def result_table(
    schema: pa.Schema,
    columns: list[pa.Array] | list[pa.ChunkedArray],
    ids: np.ndarray,
    scores: np.ndarray,
    branches: Sequence[Branch],
) -> pa.Table:
    """The table of `columns` (of `schema`: the rows `ids`, in order) and the result columns: one
    record batch when every column is one array."""
    n = len(ids)
    arrays: list[pa.Array | pa.ChunkedArray] = list(columns)
    arrays.append(_own(np.array(scores, dtype=np.float64), _FLOAT64))
    names: list[str] = ["_score"]
    first_vector = True
    for b in branches:
        at, found = places(b.ids, ids)
        raw = b.raw[at].astype(np.float32) if len(b.raw) else np.zeros(n, np.float32)
        rank = (at + 1).astype(np.int32)
        hits = int(np.count_nonzero(found))
        if hits == n:
            arrays += [_own(raw, _FLOAT32), _own(rank, _INT32)]
        else:  # one validity bitmap for both columns
            valid = pa.py_buffer(np.packbits(found, bitorder="little"))
            arrays += [
                pa.Array.from_buffers(_FLOAT32, n, [valid, pa.py_buffer(raw)], null_count=n - hits),
                pa.Array.from_buffers(_INT32, n, [valid, pa.py_buffer(rank)], null_count=n - hits),
            ]
        if b.kind == "vector":
            suffix = "" if first_vector else f"_{b.column}"
            first_vector = False
            names += [f"_distance{suffix}", f"_vector_rank{suffix}"]
        else:
            names += ["_bm25", "_fts_rank"]
    full = _schema(schema, tuple(names))
    if pa.ChunkedArray in map(type, arrays):
        return pa.Table.from_arrays(arrays, schema=full)
    return pa.Table.from_batches([pa.RecordBatch.from_arrays(arrays, schema=full)])


def places(listed: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the place in `listed` of each of `ids`, its first if listed twice, 0 where not listed; whether
    it is listed)."""
    if len(listed) == 0:
        return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
    if len(listed) * len(ids) <= BROADCAST:
        same = listed == ids[:, None]  # row by listed id
        return same.argmax(axis=1), same.any(axis=1)
    order = np.argsort(listed, kind="stable")
    ordered = listed[order]
    at = np.minimum(np.searchsorted(ordered, ids), len(listed) - 1)
    found = ordered[at] == ids
    return np.where(found, order[at], 0), found


def _own(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """`values` (a new contiguous array of `type_`'s own dtype) as an Arrow array sharing its memory."""
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(values)])


def _schema(base: pa.Schema, added: tuple[str, ...]) -> pa.Schema:
    """`base` and the result columns `added` (made once per `base` object and names)."""
    key = (id(base), added)
    found = _schemas.get(key)
    if found is not None and found[0] is base:
        return found[1]
    fields = [_FIELDS.get(n) or pa.field(n, _TYPES[n.split("_")[1]]) for n in added]
    schema = pa.schema([*base, *fields], metadata=base.metadata)
    with _lock:
        if len(_schemas) >= _KEEP_SCHEMAS:
            _schemas.clear()
        _schemas[key] = (base, schema)
    return schema


_TYPES = {"score": _FLOAT64, "distance": _FLOAT32, "bm25": _FLOAT32, "vector": _INT32, "fts": _INT32}
"""The type of each result column by the word after its leading underscore."""
_FIELDS = {
    n: pa.field(n, _TYPES[n.split("_")[1]]) for n in ("_score", "_distance", "_vector_rank", "_bm25", "_fts_rank")
}
