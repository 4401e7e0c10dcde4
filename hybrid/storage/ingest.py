"""Turning user data into record batches that fit a table's schema.

Accepted inputs: pyarrow Tables, RecordBatches, RecordBatchReaders and
datasets (``pyarrow.dataset.dataset("docs.parquet")``), pandas
and polars DataFrames, lists of dicts, dicts of columns, and iterables of
record batches. Every batch is checked before anything is committed: unknown
or missing columns, unsafe casts, nulls in non-nullable columns, vectors of
the wrong length, and NaN / inf in vectors all raise, naming the column.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybrid.errors import SchemaError, VectorError

RESERVED_COLUMNS = frozenset(
    {"_rowid", "_score", "_distance", "_bm25", "_vector_rank", "_fts_rank", "_relevance_score"}
)
"""Names `hybrid` adds to results; user columns may not use them."""


def is_vector_type(t: pa.DataType) -> bool:
    """True for `fixed_size_list<float32>[dim]`, the type of embedding columns."""
    return pa.types.is_fixed_size_list(t) and pa.types.is_float32(t.value_type)


def to_batches(data: Any) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The schema and a stream of record batches of any accepted input."""
    if isinstance(data, pa.Table):
        return data.schema, iter(data.to_batches())
    if isinstance(data, pa.RecordBatch):
        return data.schema, iter([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    if isinstance(data, dict):
        return _single(pa.table(data))
    if isinstance(data, list):
        if not data:
            raise SchemaError("no rows given: the list is empty")
        if not all(isinstance(row, dict) for row in data):
            raise SchemaError("a list of rows must hold dicts (column name -> value)")
        # pyarrow takes the columns from the first row only: name every key, in order of appearance
        keys = list(dict.fromkeys(k for row in data for k in row))
        return _single(pa.Table.from_pydict({k: [row.get(k) for row in data] for k in keys}))
    if type(data).__module__.startswith("pyarrow._dataset"):  # a pyarrow.dataset.Dataset (e.g. Parquet files)
        return data.schema, iter(data.to_batches())
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return _single(pa.Table.from_pandas(data, preserve_index=False))
    if module == "polars":
        return _single(data.to_arrow())
    if isinstance(data, Iterable):
        batches = iter(data)
        first = next(batches, None)
        if not isinstance(first, pa.RecordBatch):
            raise SchemaError("an iterable of data must yield pyarrow RecordBatches")
        return first.schema, _chain(first, batches)
    raise SchemaError(
        f"unsupported data type {type(data).__name__}: pass a pyarrow Table/RecordBatchReader, "
        "a pandas or polars DataFrame, a list of dicts or a dict of columns"
    )


def _single(table: pa.Table) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    return table.schema, iter(table.to_batches())


def _chain(first: pa.RecordBatch, rest: Iterator[Any]) -> Iterator[pa.RecordBatch]:
    yield first
    for batch in rest:
        if not isinstance(batch, pa.RecordBatch):
            raise SchemaError("an iterable of data must yield pyarrow RecordBatches")
        yield batch


def infer_schema(schema: pa.Schema, sample: pa.RecordBatch | None) -> pa.Schema:
    """The table schema for data: float lists of one length become vector columns."""
    fields = []
    for i, field in enumerate(schema):
        check_column_name(field.name)
        t = field.type
        if _is_float_list(t) and sample is not None:
            dim = _uniform_length(sample.column(i))
            if dim:
                t = pa.list_(pa.float32(), dim)
        elif pa.types.is_fixed_size_list(t) and pa.types.is_floating(t.value_type):
            t = pa.list_(pa.float32(), t.list_size)
        elif pa.types.is_null(t):
            raise SchemaError(f"column {field.name!r} holds only nulls, so its type is unknown: pass a schema")
        fields.append(pa.field(field.name, t, nullable=field.nullable, metadata=field.metadata))
    if len(set(schema.names)) != len(schema.names):
        raise SchemaError(f"duplicate column names in {schema.names}")
    return pa.schema(fields, metadata=schema.metadata)


def check_column_name(name: str) -> None:
    if not name or not isinstance(name, str):
        raise SchemaError(f"column names must be non-empty strings, got {name!r}")
    if name in RESERVED_COLUMNS:
        raise SchemaError(f"column name {name!r} is reserved for results; rename the column")


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Reorder, cast and validate `batch` to `schema`, or raise naming the problem."""
    extra = [n for n in batch.schema.names if schema.get_field_index(n) < 0]
    if extra:
        raise SchemaError(
            f"column(s) {extra} are not in the table; it has: {', '.join(schema.names)} "
            "(use add_columns to extend the schema)"
        )
    columns = []
    for field in schema:
        if field.name in batch.schema.names:
            column = _conform_column(batch.column(field.name), field)
        elif field.nullable:
            column = pa.nulls(batch.num_rows, type=field.type)
        else:
            raise SchemaError(f"column {field.name!r} is required (not nullable) but missing")
        if not field.nullable and column.null_count:
            raise SchemaError(f"column {field.name!r} is not nullable but holds {column.null_count} null(s)")
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _conform_column(column: pa.Array, field: pa.Field) -> pa.Array:
    if is_vector_type(field.type):
        return conform_vectors(column, field.name, field.type.list_size)
    if column.type == field.type:
        return column
    try:
        return column.cast(field.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(
            f"column {field.name!r}: cannot convert {column.type} to the table's {field.type} ({exc})"
        ) from None


def conform_vectors(column: pa.Array, name: str, dim: int) -> pa.Array:
    """Cast a column of vectors to fixed_size_list<float32>[dim], checking length and finiteness."""
    t = column.type
    if pa.types.is_null(t):  # every value is None (e.g. a list of dicts with vector=None)
        return pa.nulls(len(column), pa.list_(pa.float32(), dim))
    if pa.types.is_fixed_size_list(t):
        if t.list_size != dim:
            raise VectorError(f"column {name!r}: vectors have dimension {t.list_size}, the table expects {dim}")
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        bad = np.flatnonzero(valid & (lengths != dim))
        if bad.size:
            raise VectorError(
                f"column {name!r}: row {int(bad[0])} has a vector of length {int(lengths[bad[0]])}, "
                f"the table expects {dim} ({bad.size} row(s) wrong)"
            )
        if not (
            pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type) or pa.types.is_null(t.value_type)
        ):
            raise VectorError(f"column {name!r}: vectors must hold numbers, got {t.value_type}")
        column = pa.FixedSizeListArray.from_arrays(
            _list_values(column, dim).cast(pa.float32()), dim, mask=column.is_null() if column.null_count else None
        )
    else:
        raise VectorError(f"column {name!r}: expected vectors (lists of {dim} floats), got {t}")
    if column.type.value_type != pa.float32():
        column = column.cast(pa.list_(pa.float32(), dim))
    check_finite(column, name)
    return column


def _list_values(column: pa.Array, dim: int) -> pa.Array:
    """Flat values of a list column, with `dim` zeros standing in for each null entry."""
    if column.null_count == 0:
        return column.flatten()
    filled = pc.fill_null(column, pa.scalar([0.0] * dim, type=pa.list_(pa.float64())).cast(column.type))
    return filled.flatten()


def check_finite(column: pa.Array, name: str) -> None:
    """Raise VectorError if a non-null vector holds NaN or inf."""
    if len(column) == 0:
        return
    values = column.values.slice(column.offset * column.type.list_size, len(column) * column.type.list_size)
    flat = values.to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size)
    bad_rows = ~np.isfinite(flat).all(axis=1)
    if column.null_count:
        bad_rows &= ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if bad_rows.any():
        row = int(np.flatnonzero(bad_rows)[0])
        raise VectorError(
            f"column {name!r}: row {row} holds NaN or inf ({int(bad_rows.sum())} row(s)); vectors must be finite"
        )


def _is_float_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_floating(t.value_type)


def _uniform_length(column: pa.Array) -> int:
    lengths = pc.list_value_length(column).drop_null()
    if len(lengths) == 0:
        return 0
    lo, hi = pc.min_max(lengths).values()
    return int(lo.as_py()) if lo == hi and lo.as_py() > 0 else 0
