"""`RowReader`: the values of a few rows, packed in Python or gathered with numpy, equal `Snapshot.take`'s.

A 70,000-row table is stored in two chunks per column (65,536 and the rest), so a row's chunk is
found by the stride; columns of every plain number type are read, float16 (which a memoryview
cannot index) through numpy; deleted rows and ids past the end are refused, as `take` refuses them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.storage.numeric import NumericChunks
from hybrid.storage.reader import RowReader

ROWS = 70_000
TYPES = {"i64": pa.int64(), "i32": pa.int32(), "u8": pa.uint8(), "f32": pa.float32(), "f64": pa.float64()}


def _snapshot(root: Path, half: bool):
    rng = np.random.default_rng(7)
    cols = {n: pa.array(rng.integers(0, 200, ROWS).astype(t.to_pandas_dtype()), t) for n, t in TYPES.items()}
    cols["s"] = pa.array([f"r{i}" for i in range(ROWS)])
    if half:  # DuckDB reads no float16, so this table gets no delete
        cols["f16"] = pa.array(rng.random(ROWS).astype(np.float16), pa.float16())
    t = hybrid.connect(root).create_table("t", pa.table(cols))
    if not half:
        t.delete("i64 < 3")  # a deletion mask: its rows must be refused
    return t.snapshot()


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory):
    return _snapshot(Path(tmp_path_factory.mktemp("reader")), half=False)


@pytest.fixture(scope="module")
def snap16(tmp_path_factory: pytest.TempPathFactory):
    return _snapshot(Path(tmp_path_factory.mktemp("reader16")), half=True)


def _expected(snap, ids: np.ndarray, columns: list[str]) -> list[np.ndarray]:
    taken = snap.take(ids, columns)
    return [taken.column(c).to_numpy() for c in columns]


@pytest.mark.parametrize("columns", [["i64"], ["i32", "f64", "u8"], ["f32"], ["f16", "i64"]])
@pytest.mark.parametrize("n", [1, 10, 64, 65, 300])
def test_packed_and_arrays_equal_take(snap, snap16, columns: list[str], n: int) -> None:
    snap = snap16 if "f16" in columns else snap
    reader = RowReader(snap, columns)
    live = np.sort(np.concatenate([snap.rowids(f)[m] if (m := snap.live_mask(f)) is not None else snap.rowids(f)
                                   for f in snap.manifest.fragments]))  # fmt: skip
    rng = np.random.default_rng(n)
    for _ in range(20):
        ids = rng.choice(live, n, replace=False).astype(np.uint64)
        ids[0] = live[-1] if n > 1 else ids[0]  # the last chunk's end
        expected = _expected(snap, ids, columns)
        packed = reader.packed(ids)
        assert packed is not None
        for got, want, c in zip(packed, expected, columns, strict=True):
            dtype = np.dtype(snap.schema.field(c).type.to_pandas_dtype())
            np.testing.assert_array_equal(np.frombuffer(got, dtype), want)
        for got_a, want in zip(reader.arrays(ids), expected, strict=True):
            np.testing.assert_array_equal(got_a.to_numpy(), want)


def test_gone_rows_are_refused(snap) -> None:
    reader = RowReader(snap, ["i64", "i32"])
    dead = [int(r) for f in snap.manifest.fragments for r in snap.rowids(f)[~snap.live_mask(f)]][:3]
    assert dead
    live = int(snap.rowids(snap.manifest.fragments[0])[snap.live_mask(snap.manifest.fragments[0])][0])
    for bad in ([dead[0]], [live, dead[-1]], [ROWS], [live, 2**63]):
        ids = np.array(bad, dtype=np.uint64)
        assert reader.packed(ids) is None
        with pytest.raises(hybrid.errors.RowNotFoundError):
            reader.arrays(ids)


def test_strings_are_not_packed(snap) -> None:
    reader = RowReader(snap, ["s"])
    ids = np.array([5, 6], dtype=np.uint64)
    assert reader.packed(ids) is None
    assert reader.arrays(ids)[0].to_pylist() == ["r5", "r6"]


@pytest.mark.parametrize("sizes", [[4, 4, 3], [4, 4, 4], [4, 2, 4], [5, 4], [3, 5], [1]])
def test_chunk_stride_only_when_uniform(sizes: list[int]) -> None:
    values = np.arange(sum(sizes), dtype=np.int64) * 3
    bounds = np.cumsum([0, *sizes])
    chunked = pa.chunked_array([pa.array(values[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    views = NumericChunks.of(chunked)
    assert views is not None
    uniform = len(sizes) > 1 and all(s == sizes[0] for s in sizes[:-1]) and sizes[-1] <= sizes[0]
    assert views.stride == (sizes[0] if uniform else 0)
    offsets = np.arange(sum(sizes), dtype=np.uint64)[::-1]
    np.testing.assert_array_equal(views.gather(offsets), values[::-1])
