"""Random access into multi-chunk columns: the same rows, in request order, as pyarrow's own take."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.storage.snapshot import take_rows


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=5),
    picks=st.lists(st.integers(0, 10_000), max_size=30),
)
def test_take_rows_matches_pyarrow_on_chunked_columns(sizes: list[int], picks: list[int]) -> None:
    total = sum(sizes)
    values = pa.array([f"value {i}" if i % 7 else None for i in range(total)], pa.string())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    text = pa.chunked_array([values.slice(int(a), n) for a, n in zip(starts, sizes, strict=True)], pa.string())
    table = pa.table({"text": text, "n": pa.chunked_array([pa.array(np.arange(total, dtype=np.int64))])})
    offsets = np.array([p % total for p in picks] if total else [], dtype=np.int64)
    got = take_rows(table, offsets)
    assert got.to_pylist() == table.take(pa.array(offsets, pa.int64())).to_pylist()
    assert got.schema == table.schema
