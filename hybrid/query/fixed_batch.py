"""A small result table of fixed-width columns built from one buffer: one Arrow call, not one per column.

A query's k result rows, when every column is a plain number (``_rowid``, numeric columns, ``_score``,
the raw score and the rank), form an Arrow IPC record batch message whose header (the flatbuffer
metadata: the row count, each buffer's offset and length) depends only on the schema and k. The
header is made once per (schema, rows) shape by serializing a template batch, and checked: a batch
read back from the header and a test body must equal the batch built column by column, or the shape
is not used. Each result then joins the header and the columns' bytes (each padded to 8 bytes, as
the IPC format lays buffers out) and reads the message without copying: one native call, where
building each column with ``Array.from_buffers`` and the batch from them costs a call and a check
per column (~1 us each, paid on every query).
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

_KEEP = 256
_layouts: dict[tuple[int, int], tuple[pa.Schema, Layout | None]] = {}
_lock = threading.Lock()
_join = b"".join
_py_buffer = pa.py_buffer
_read = pa.ipc.read_record_batch
_from_batches = pa.Table.from_batches


class Layout:
    """The IPC header of one (schema, rows) shape and the padding after each column's bytes."""

    __slots__ = ("head", "pads", "schema")

    def __init__(self, schema: pa.Schema, head: bytes, pads: tuple[bytes, ...]) -> None:
        self.schema = schema
        self.head = head
        self.pads = pads

    def table(self, columns: list[bytes]) -> pa.Table:
        """The table of `columns`: per field, the bytes of its `rows` values (the field's own type,
        native byte order)."""
        parts = [self.head]
        for c, pad in zip(columns, self.pads, strict=True):
            parts.append(c)
            if pad:
                parts.append(pad)
        return _from_batches([_read(_py_buffer(_join(parts)), self.schema)])


def layout(schema: pa.Schema, rows: int) -> Layout | None:
    """The layout of `rows` rows of `schema` (made once per schema object and row count), or None when
    a column is not a plain number (nulls need a validity buffer; strings, lists... are not fixed width)."""
    key = (id(schema), rows)
    found = _layouts.get(key)
    if found is not None and found[0] is schema:
        return found[1]
    made = _make(schema, rows)
    with _lock:
        if len(_layouts) >= _KEEP:
            _layouts.clear()
        _layouts[key] = (schema, made)
    return made


def _make(schema: pa.Schema, rows: int) -> Layout | None:
    types = schema.types
    if rows <= 0 or not all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
        return None
    dtypes = [np.dtype(t.to_pandas_dtype()) for t in types]
    if any(not d.isnative or d.itemsize * 8 != t.bit_width for d, t in zip(dtypes, types)):
        return None
    message = pa.RecordBatch.from_arrays([pa.array(np.zeros(rows, d), t) for d, t in zip(dtypes, types)], schema=schema)
    serialized = message.serialize()
    body = pa.ipc.read_message(serialized).body.size
    head = serialized.to_pybytes()[: serialized.size - body]
    pads = tuple(b"\0" * (-(rows * d.itemsize) % 8) for d in dtypes)
    made = Layout(schema, head, pads)
    # the check: distinct values in every column read back exactly as built column by column
    test = [(np.arange(rows) % 100 + 1 + i).astype(d) for i, d in enumerate(dtypes)]
    expected = pa.RecordBatch.from_arrays([pa.array(c, t) for c, t in zip(test, types)], schema=schema)
    try:
        got = made.table([c.tobytes() for c in test])
    except (pa.ArrowException, ValueError):
        return None
    if not (got.schema.equals(schema, check_metadata=True) and got.to_batches()[0].equals(expected)):
        return None
    return made
