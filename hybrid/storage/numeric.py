"""Numpy views of a stored column of plain numbers, for taking a few of its values.

A column of integers or floats without nulls is, chunk by chunk, a numpy view of the mapped
file. Gathering a few values through these views (made once per file and column, kept by
:class:`hybrid.storage.files.FileCache`) costs no Arrow kernel call (~10 us of dispatch each) and
no per-fragment table assembly: what the take of a query's k result rows pays.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

SCALAR_GATHER_ROWS = 48
"""Up to this many values are gathered one by one in Python (cheaper than numpy's per-call setup
for a handful); more are gathered with vectorised numpy."""


def plain_numbers(column: pa.ChunkedArray | pa.Array) -> bool:
    """Whether `column` is integers or floats without nulls (its chunks are plain numpy views)."""
    t = column.type
    return (pa.types.is_integer(t) or pa.types.is_floating(t)) and column.null_count == 0


@dataclass(frozen=True)
class NumericChunks:
    """A column of plain numbers as numpy views of its chunks, and where each chunk starts."""

    chunks: tuple[np.ndarray, ...]
    starts: tuple[int, ...]
    type: pa.DataType
    length: int
    stride: int = 0
    """The length of every chunk but the last, when they share one and the last is no longer (value
    `o` is then at ``chunks[o // stride][o % stride]``: no search for its chunk); else 0."""

    @classmethod
    def of(cls, column: pa.ChunkedArray | pa.Array) -> NumericChunks | None:
        """The views of `column`, or None when it is not plain numbers (nulls, strings, lists...)."""
        if not plain_numbers(column):
            return None
        arrays = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        chunks = tuple(a.to_numpy(zero_copy_only=True) for a in arrays if len(a))
        starts, at = [], 0
        for c in chunks:
            starts.append(at)
            at += len(c)
        if not chunks:
            chunks, starts = (np.empty(0, column.type.to_pandas_dtype()),), [0]
        first = len(chunks[0])
        uniform = all(len(c) == first for c in chunks[:-1]) and len(chunks[-1]) <= first
        return cls(chunks, tuple(starts), column.type, at, first if uniform and len(chunks) > 1 else 0)

    def gather(self, offsets: np.ndarray) -> np.ndarray:
        """The values at `offsets` (each in 0..length-1), in that order, as a new numpy array."""
        if len(self.chunks) == 1:
            return self.chunks[0][offsets]
        out = np.empty(len(offsets), dtype=self.chunks[0].dtype)
        chunks, starts = self.chunks, self.starts
        if len(offsets) <= SCALAR_GATHER_ROWS:
            stride = self.stride
            if stride:
                for j, o in enumerate(offsets.tolist()):
                    out[j] = chunks[o // stride][o % stride]
                return out
            for j, o in enumerate(offsets.tolist()):
                c = bisect_right(starts, o) - 1
                out[j] = chunks[c][o - starts[c]]
            return out
        begin = np.asarray(starts, dtype=np.int64)
        which = np.searchsorted(begin, offsets, side="right") - 1
        local = np.asarray(offsets, dtype=np.int64) - begin[which]
        for c in np.unique(which).tolist():
            sel = which == c
            out[sel] = chunks[c][local[sel]]
        return out

    def take(self, offsets: np.ndarray) -> pa.Array:
        """The values at `offsets` as an Arrow array of the column's type."""
        return as_arrow(self.gather(offsets), self.type)


def as_arrow(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """`values` (numbers of `type_`'s numpy dtype) as an Arrow array without nulls, sharing their memory.

    A contiguous array becomes the Arrow array's data buffer directly, which skips the checks
    ``pa.array`` runs on every numpy input (about a microsecond, paid per result column per query).
    """
    if (
        values.ndim == 1
        and values.dtype.kind in "iuf"
        and values.flags.c_contiguous
        and values.dtype.isnative
        and values.dtype.itemsize * 8 == type_.bit_width
    ):
        return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(values)])
    return pa.array(values, type=type_)
