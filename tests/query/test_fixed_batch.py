"""`fixed_batch`: a result table from one buffer equals the one built column by column, for every
plain number type and row count (odd counts pad 1-, 2- and 4-byte columns to 8 bytes), with the
schema's metadata; other columns (strings) get no layout."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from hybrid.query import fixed_batch

_TYPES = [pa.uint64(), pa.int64(), pa.int32(), pa.int16(), pa.uint8(), pa.float16(), pa.float32(), pa.float64()]


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 10, 33, 64])
@pytest.mark.parametrize("start", range(0, len(_TYPES), 2))
def test_table_equals_column_by_column(rows: int, start: int) -> None:
    types = _TYPES[start:] + _TYPES[:start]
    schema = pa.schema([pa.field(f"c{i}", t, nullable=i % 2 == 0) for i, t in enumerate(types)], metadata={"k": "v"})
    shape = fixed_batch.layout(schema, rows)
    assert shape is not None
    rng = np.random.default_rng(rows * 10 + start)
    cols = [rng.integers(0, 120, rows).astype(t.to_pandas_dtype()) for t in types]
    got = shape.table([c.tobytes() for c in cols])
    want = pa.Table.from_batches(
        [pa.RecordBatch.from_arrays([pa.array(c, t) for c, t in zip(cols, types)], schema=schema)]
    )
    assert got.equals(want, check_metadata=True)
    assert fixed_batch.layout(schema, rows) is shape  # made once per shape


def test_other_columns_get_no_layout() -> None:
    assert fixed_batch.layout(pa.schema([("a", pa.int64()), ("s", pa.string())]), 4) is None
    assert fixed_batch.layout(pa.schema([("b", pa.bool_())]), 4) is None
