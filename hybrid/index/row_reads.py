"""Reading chosen rows of a matrix stored in a data file without leaving them mapped in the process.

A row read through the table's long-lived memory map stays resident in the serving process: the fault
maps the whole page-cache folio around it (fault-around, 64 KiB), so a few hundred rescoring searches
over a 1,000,000 x 384 table left 0.9-1.3 GB of it mapped (:mod:`hybrid.index.gather`). Here the rows
are copied into the caller's buffer and nothing stays mapped; the page cache keeps the file (outside
the process's RSS).

Two ways, chosen by how many rows one call reads from one stored chunk:

* a few rows (under ``MAP_FROM``): one ``preadv`` per row straight into its row of the buffer (no
  bytes object per row, no join, no second copy: 1.3-1.8 us per row on this machine, against 2.2-3.3
  for ``pread`` + join + copy, ``eval/row_reads.py``);
* many rows (a filter's exact search over thousands): the chunk's byte span is mapped for this call
  alone, the rows are copied out with one ``np.take``, and the map is closed (``munmap``: its pages
  leave the process). Page faults then cost less than a system call per row (0.7-0.9 us per row at
  2,000-20,000 rows against 1.5-1.8 for ``preadv``).
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

from hybrid.errors import CorruptionError

MAP_FROM = 256
"""Rows of one chunk from which a call maps the chunk's span for itself instead of one ``preadv`` per row."""


def opened(path: str | Path) -> int | None:
    """A descriptor of `path` for reading rows (None: it cannot be opened here; the caller maps instead)."""
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


def read_rows(fd: int, at: int, pos: np.ndarray, out: np.ndarray) -> None:
    """Rows `pos` (ascending) of the C-contiguous matrix stored at byte `at` of file `fd`, copied into
    `out` (``len(pos)`` rows of the same width and type); nothing stays mapped afterwards."""
    if not len(pos):
        return
    if len(pos) >= MAP_FROM:
        _mapped_rows(fd, at, pos, out)
        return
    row = out.shape[1] * out.itemsize
    view = out.data.cast("B")  # out is C-contiguous: its bytes, row after row
    for i, where in enumerate((pos * row + at).tolist()):
        if os.preadv(fd, [view[i * row : (i + 1) * row]], where) != row:
            raise CorruptionError("a data file ended early while reading vectors; check the table")


def _mapped_rows(fd: int, at: int, pos: np.ndarray, out: np.ndarray) -> None:
    """`read_rows` through a map of the rows' span made for this call and closed after it."""
    row = out.shape[1] * out.itemsize
    first, last = at + int(pos[0]) * row, at + (int(pos[-1]) + 1) * row
    start = first - first % mmap.ALLOCATIONGRANULARITY
    if last > os.fstat(fd).st_size:
        raise CorruptionError("a data file ended early while reading vectors; check the table")
    m = mmap.mmap(fd, last - start, prot=mmap.PROT_READ, offset=start)
    span: np.ndarray | None = None
    try:
        if hasattr(m, "madvise"):
            m.madvise(mmap.MADV_RANDOM)  # no read-ahead: the rows are scattered
        span = np.frombuffer(m, dtype=out.dtype, count=(last - first) // out.itemsize, offset=first - start)
        np.take(span.reshape(-1, out.shape[1]), pos - pos[0], axis=0, out=out, mode="clip")
    finally:
        span = None  # the map cannot close while a view of it lives
        m.close()
