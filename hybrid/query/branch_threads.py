"""Whether a query's branches run on the search pool's threads at once, or inline one after the other.

A branch on another thread overlaps the first (hnswlib and tantivy release the GIL in their
searches) but costs a hand-off: the worker has to wake and be scheduled, and the branches' Python
work still takes turns on the GIL. Measured with ``eval/branch_threads.py`` (100k-row benchmark
table, a hybrid RRF query, the two ways interleaved in one process): on a machine loaded far past
its 2 cores the median query took 2.6x longer on threads than inline, and on a quiet 2-core machine
the search benchmark's hybrid p50 on threads was no lower than its vector and text p50 summed.
So by default ("auto") the branches run on threads only when a core is idle to take one: when the
1-minute load average (read at most once a second) is below the usable cores minus one.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Literal

Mode = Literal["auto", "threads", "inline"]

_mode: Mode = "auto"
_lock = threading.Lock()
_checked = -1.0
_idle = True
RECHECK_SECONDS = 1.0


def set_mode(mode: Mode) -> None:
    """Run a query's branches on threads ("threads"), one after the other ("inline"), or by the
    machine's load ("auto", the default)."""
    global _mode, _checked
    if mode not in ("auto", "threads", "inline"):
        raise ValueError(f"branch thread mode must be 'auto', 'threads' or 'inline', got {mode!r}")
    _mode, _checked = mode, -1.0


def on_threads() -> bool:
    """Whether the branches of the query starting now run on threads of their own."""
    if _mode != "auto":
        return _mode == "threads"
    global _checked, _idle
    now = time.monotonic()
    if now - _checked >= RECHECK_SECONDS:
        with _lock:
            _checked, _idle = now, _idle_core()
    return _idle


def _idle_core() -> bool:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average here: threads, as before
        return True
    return load < cores - 1
