"""Scalar indexes: which rows hold which value of one column, as compressed bitmaps.

Three kinds, one file layout (``keys.arrow``, ``bitmaps.bin``, ``offsets.npy``):

* ``bitmap``: one roaring bitmap (pyroaring, CRoaring) of row ids per distinct
  value. Equality and IN are a lookup; a range is the union of the bitmaps of
  the keys inside it. For low-cardinality columns (tenants, categories, flags).
* ``btree``: the rows in value order (``ids_by_value``) with the start of each
  distinct value, plus one bitmap per block of ``BLOCK`` consecutive rows in that
  order. A range is the union of the whole blocks inside it and the two partial
  edges. For high-cardinality columns (dates, prices, user ids).
* ``label_list``: for list columns, one bitmap per distinct element: the rows
  whose list contains it (``list_contains(tags, 'x')``).

NULL rows (and NULL lists) are kept in their own bitmap, so the filter layer can
apply SQL's three-valued logic. Keys sort as DuckDB compares them: numbers by
value with NaN above every number, strings by code point (= UTF-8 byte order).
Row ids must fit in 32 bits (roaring's fast form); larger ids are refused at build.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyroaring import BitMap

from hybrid.errors import SchemaError
from hybrid.storage import npy

ScalarKind = Literal["bitmap", "btree", "label_list"]
BLOCK = 4_096
"""Rows per precomputed block bitmap of a btree index."""
AUTO_BITMAP_MAX_KEYS = 1_024
"""kind="auto" picks a bitmap index up to this many distinct values, a btree above."""
MAX_ROWID = 2**32 - 1

_KEYS, _BITMAPS, _OFFSETS, _LAYOUT = "keys.arrow", "bitmaps.bin", "offsets.npy", "layout.npz"


def indexable_type(t: pa.DataType) -> bool:
    """Whether a column of type `t` can hold a scalar index (labels: a list of such values)."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _plain(t.value_type)
    return _plain(t)


def _plain(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_boolean(t)
    )


def is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t))


def choose_kind(kind: str, column_type: pa.DataType, distinct: int) -> ScalarKind:
    """The kind to build: "auto" is label_list for lists, bitmap up to AUTO_BITMAP_MAX_KEYS keys, else btree."""
    if kind not in ("auto", "bitmap", "btree", "label_list"):
        raise ValueError(f"kind must be 'auto', 'bitmap', 'btree' or 'label_list', got {kind!r}")
    if is_list(column_type):
        if kind not in ("auto", "label_list"):
            raise SchemaError(f"a list column takes a label_list index, not {kind!r}")
        return "label_list"
    if kind == "label_list":
        raise SchemaError(f"a label_list index needs a list column, got {column_type}")
    if kind == "auto":
        return "bitmap" if distinct <= AUTO_BITMAP_MAX_KEYS else "btree"
    return kind  # type: ignore[return-value]


def _to_bitmap(ids: np.ndarray) -> BitMap:
    return BitMap(ids.astype(np.uint32, copy=False))


def as_ids(bitmap: BitMap) -> np.ndarray:
    """Sorted uint64 row ids of a bitmap."""
    return np.frombuffer(bitmap.to_array(), dtype=np.uint32).astype(np.uint64)


def _sortable(values: pa.Array) -> np.ndarray:
    """Non-null values as a numpy array that sorts like DuckDB compares (strings as objects)."""
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return np.asarray(values.to_pylist(), dtype=object)
    return values.to_numpy(zero_copy_only=False)


@dataclass
class ScalarIndex:
    """A loaded scalar index of one column (see the module docstring for the kinds)."""

    kind: ScalarKind
    keys: np.ndarray  # sorted distinct non-null values (labels for label_list)
    bitmaps: list[BitMap]  # bitmap/label_list: per key; btree: per block of ids_by_value
    nulls: BitMap
    indexed: BitMap  # every row id the index covers
    ids_by_value: np.ndarray | None = None  # btree only
    starts: np.ndarray | None = None  # btree only: start of each key in ids_by_value, plus the end

    # -- building and storing -------------------------------------------------------

    @staticmethod
    def build(ids: np.ndarray, column: pa.Array, kind: str = "auto") -> ScalarIndex:
        """Index `column`'s values of the rows `ids` (same length, any order)."""
        if len(ids) and int(ids.max()) > MAX_ROWID:
            raise SchemaError(f"scalar indexes need row ids below 2**32; this table has {int(ids.max())}")
        ids = np.asarray(ids, dtype=np.uint64)
        indexed = _to_bitmap(ids)
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        nulls = _to_bitmap(ids[~valid])
        if is_list(column.type):
            return ScalarIndex._labels(ids[valid], column.filter(pa.array(valid)), nulls, indexed)
        keys, rows, starts = _grouped(_sortable(column.filter(pa.array(valid))), ids[valid])
        chosen = choose_kind(kind, column.type, len(keys))
        if chosen == "bitmap":
            bitmaps = [_to_bitmap(rows[starts[i] : starts[i + 1]]) for i in range(len(keys))]
            return ScalarIndex("bitmap", keys, bitmaps, nulls, indexed)
        blocks = [_to_bitmap(rows[s : s + BLOCK]) for s in range(0, len(rows), BLOCK)]
        return ScalarIndex("btree", keys, blocks, nulls, indexed, rows, starts)

    @staticmethod
    def _labels(ids: np.ndarray, lists: pa.Array, nulls: BitMap, indexed: BitMap) -> ScalarIndex:
        lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
        owners = np.repeat(ids, lengths)
        flat = pc.list_flatten(lists)
        keep = flat.is_valid().to_numpy(zero_copy_only=False)
        labels, owners, starts = _grouped(_sortable(flat.filter(pa.array(keep))), owners[keep])
        bitmaps = [_to_bitmap(owners[starts[i] : starts[i + 1]]) for i in range(len(labels))]
        return ScalarIndex("label_list", labels, bitmaps, nulls, indexed)

    def save(self, folder: Path, value_type: pa.DataType) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        keys = pa.array(self.keys.tolist(), type=value_type)
        with pa.OSFile(str(folder / _KEYS), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("key", keys.type)])) as w:
            w.write_table(pa.table({"key": keys}))
        blobs = [b.serialize() for b in (self.nulls, self.indexed, *self.bitmaps)]
        np.save(folder / _OFFSETS, np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64))
        (folder / _BITMAPS).write_bytes(b"".join(blobs))
        layout: dict[str, Any] = {"kind": np.array(self.kind)}
        if self.ids_by_value is not None and self.starts is not None:
            layout.update(ids_by_value=self.ids_by_value, starts=self.starts)
        np.savez(folder / _LAYOUT, **layout)

    @staticmethod
    def open(folder: Path) -> ScalarIndex:
        with pa.memory_map(str(folder / _KEYS)) as source:
            keys = pa.ipc.open_file(source).read_all().column(0).combine_chunks()
        offsets = npy.load(folder / _OFFSETS)
        blob = (folder / _BITMAPS).read_bytes()
        bitmaps = [BitMap.deserialize(blob[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
        layout = npy.load_members(folder / _LAYOUT)
        kind = str(layout["kind"])
        ids_by_value = layout.get("ids_by_value", None)
        starts = layout.get("starts", None)
        return ScalarIndex(kind, _sortable(keys), bitmaps[2:], bitmaps[0], bitmaps[1], ids_by_value, starts)  # type: ignore[arg-type]

    # -- lookups ---------------------------------------------------------------------

    def rows_of_keys(self, lo: int, hi: int) -> BitMap:
        """Rows whose value is one of keys[lo:hi] (key positions)."""
        if hi <= lo:
            return BitMap()
        if self.kind != "btree":
            return BitMap.union(*self.bitmaps[lo:hi]) if hi - lo > 1 else self.bitmaps[lo].copy()
        assert self.starts is not None and self.ids_by_value is not None
        a, b = int(self.starts[lo]), int(self.starts[hi])
        first_full, last_full = -(-a // BLOCK), b // BLOCK  # blocks entirely inside [a, b)
        if first_full >= last_full:
            return _to_bitmap(self.ids_by_value[a:b])
        parts = self.bitmaps[first_full:last_full]
        edges = np.concatenate([self.ids_by_value[a : first_full * BLOCK], self.ids_by_value[last_full * BLOCK : b]])
        out = BitMap.union(*parts) if len(parts) > 1 else parts[0].copy()
        if len(edges):
            out |= _to_bitmap(edges)
        return out

    def position(self, value: Any, right: bool) -> int:
        """Where `value` would go among the keys (bisect left, or right with `right`)."""
        kind = self.keys.dtype.kind
        if kind in "iu":
            info = np.iinfo(self.keys.dtype)
            if value > info.max:
                return len(self.keys)
            if value < info.min:
                return 0
            if value != math.floor(value):  # no integer equals it: both sides fall before its ceiling
                value, right = math.ceil(value), False
            value = int(value)
        elif kind == "f":
            value = self.keys.dtype.type(float(value))  # DuckDB casts the literal to the column's type
        return int(np.searchsorted(self.keys, value, side="right" if right else "left"))

    def equal(self, value: Any) -> BitMap:
        lo = self.position(value, right=False)
        hi = self.position(value, right=True)
        return self.rows_of_keys(lo, hi)

    def between(self, lo: Any, lo_inclusive: bool, hi: Any, hi_inclusive: bool) -> BitMap:
        """Rows with lo < value < hi (bounds inclusive as asked; None = unbounded)."""
        start = 0 if lo is None else self.position(lo, right=not lo_inclusive)
        end = len(self.keys) if hi is None else self.position(hi, right=hi_inclusive)
        return self.rows_of_keys(start, end)

    def non_null(self) -> BitMap:
        return self.indexed - self.nulls


def _grouped(values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct values sorted, rows in value order, start of each value's rows plus the end)."""
    order = np.argsort(values, kind="stable")
    values, rows = values[order], rows[order]
    first = np.ones(len(values), dtype=bool)
    if len(values) > 1:
        first[1:] = _differs(values[1:], values[:-1])
    return values[first], rows, np.append(np.flatnonzero(first), len(values))


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise a != b, with NaN equal to NaN (DuckDB: NaN = NaN is true)."""
    out = np.asarray(a != b, dtype=bool)
    if a.dtype.kind == "f":
        out &= ~(np.isnan(a) & np.isnan(b))
    return out
