"""Reading chosen rows of a matrix stored in a data file without leaving them mapped in the process.

A row read through the table's long-lived memory map stays resident in the serving process: the fault
maps the whole page-cache folio around it (fault-around, 64 KiB), so a few hundred rescoring searches
over a 1,000,000 x 384 table left 0.9-1.3 GB of it mapped (:mod:`hybrid.index.gather`). Here the rows
are copied into the caller's buffer and nothing stays mapped; the page cache keeps the file (outside
the process's RSS).

Two ways, chosen by how densely one call's rows lie in their stored chunk:

* sparse rows (rescoring's candidates, a 1% filter): one ``preadv`` per row straight into its row of
  the buffer;
* at least ``MAP_FROM`` rows and on average ``ROWS_PER_FAULT`` or more per ``FAULT_AROUND`` bytes of
  their span (a filter's exact search over several percent of the rows): the span is mapped for this
  call alone, the rows are copied out with one ``np.take``, and the map is closed (``munmap``: its
  pages leave the process). A page fault maps the 64 KiB around it: it costs about what one
  ``preadv`` does, so the map pays off when a fault brings in more than one of the rows.

``python eval/row_reads.py`` (200,000 x 384, CPU per row, load 16-17, two runs): rescoring 160
candidates 4.2 us a row with ``preadv``, 3.7 with ``pread`` + join + copy (within the noise; ``preadv``
1.8 against 2.2-3.3 in a bare loop at load 6), 1.6-1.7 through the long-lived map (whose pages stay
resident); allowed rows at 1% / 3% / 10% of the table (0.4 / 1.3 / 4.3 rows per 64 KiB) 2.8-2.9 /
2.5 / 2.1-2.3 us a row with ``preadv``, 2.7-3.1 / 2.2-2.6 / 1.4-1.6 with a map per call, 0.53 / 0.48
/ 0.42 through the long-lived map.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

from hybrid.errors import CorruptionError

MAP_FROM = 64
"""Fewest rows of one chunk that a call maps for itself (fewer: one ``preadv`` per row) ..."""
FAULT_AROUND = 64 << 10
"""The bytes the kernel maps around a page fault on a file map (fault-around) ..."""
ROWS_PER_FAULT = 2
"""... and how many of the call's rows such a span must hold on average for the call to map them."""


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
    row = out.shape[1] * out.itemsize
    span = (int(pos[-1]) - int(pos[0]) + 1) * row
    if len(pos) >= MAP_FROM and len(pos) * FAULT_AROUND >= ROWS_PER_FAULT * span:
        _mapped_rows(fd, at, pos, out)
        return
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
