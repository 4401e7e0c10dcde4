"""The result columns of fused rows: ``_score``, and per branch its raw score and rank.

The result rows are the fused list's; each branch found some of them. Beside the selected columns a
result holds ``_score`` and, per branch, the raw score (``_distance`` or ``_bm25``) and 1-based rank
(``_vector_rank`` or ``_fts_rank``) of each row in that branch's list, null where the branch did not
find the row. A later vector branch's columns are suffixed by its column name.

A branch's list is a query's depth long (50 by default), so each row's place in it is looked up in a
dict of the list; longer lists are matched with a sort. The columns stay numpy until one record batch
is built, and the schema of the added columns is made once per (selected columns, branches) shape.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from hybrid.storage.numeric import as_arrow

if TYPE_CHECKING:
    from hybrid.query.executor import Branch

DICT_MATCH = 512
"""Branch lists up to this long are matched through a dict (a sort costs a dozen numpy calls)."""

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
    arrays: list[pa.Array | pa.ChunkedArray] = list(columns)
    arrays.append(as_arrow(np.ascontiguousarray(scores, dtype=np.float64), _FLOAT64))
    names: list[str] = ["_score"]
    first_vector = True
    for b in branches:
        at = positions(b.ids, ids)
        found: np.ndarray | None = at >= 0
        if found is not None and found.all():
            found = None
        raw = b.raw[at].astype(np.float32) if len(b.raw) else np.zeros(len(ids), np.float32)
        arrays += [_masked(raw, found, _FLOAT32), _masked((at + 1).astype(np.int32), found, _INT32)]
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


def positions(listed: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The place in `listed` of each of `ids` (its first, if listed twice), -1 where it is not listed (int64)."""
    n = len(listed)
    if n == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    if n <= DICT_MATCH:
        where = dict(zip(listed.tolist()[::-1], range(n - 1, -1, -1)))  # the first place wins
        get = where.get
        return np.array([get(x, -1) for x in ids.tolist()], dtype=np.int64)
    order = np.argsort(listed, kind="stable")
    ordered = listed[order]
    at = np.minimum(np.searchsorted(ordered, ids), n - 1)
    return np.where(ordered[at] == ids, order[at], -1)


def _masked(values: np.ndarray, found: np.ndarray | None, type_: pa.DataType) -> pa.Array:
    """`values` (a new contiguous array of `type_`'s width) as an Arrow array of `type_`, null where not
    `found` (None: every value is there)."""
    if found is None:
        return as_arrow(values, type_)
    valid = pa.py_buffer(np.packbits(found, bitorder="little"))
    nulls = len(found) - int(np.count_nonzero(found))
    return pa.Array.from_buffers(type_, len(values), [valid, pa.py_buffer(values)], null_count=nulls)


def _schema(base: pa.Schema, added: tuple[str, ...]) -> pa.Schema:
    """`base` and the result columns `added` (made once per `base` object and names)."""
    key = (id(base), added)
    found = _schemas.get(key)
    if found is not None and found[0] is base:
        return found[1]
    fields = [pa.field(n, _TYPES[n.split("_")[1]]) for n in added]
    schema = pa.schema([*base, *fields], metadata=base.metadata)
    with _lock:
        if len(_schemas) >= _KEEP_SCHEMAS:
            _schemas.clear()
        _schemas[key] = (base, schema)
    return schema


_TYPES = {"score": _FLOAT64, "distance": _FLOAT32, "bm25": _FLOAT32, "vector": _INT32, "fts": _INT32}
"""The type of each result column by the word after its leading underscore."""
