"""Reading ``.npy`` / ``.npz`` files from several threads at once.

numpy parses each array's header with ``ast.literal_eval``. On CPython 3.11 the compiler keeps its
recursion bookkeeping in state shared by every thread, so two threads compiling at once can fail with
``SystemError: AST constructor recursion depth mismatch``: the search branches run in parallel threads
and each may open an index file at the same moment. Every load here holds one lock; loads happen
when an index is opened, not per query, so nothing waits on it in steady state.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import numpy as np

_LOCK = threading.Lock()


def load(path: Path, mmap_mode: Literal["r"] | None = None) -> np.ndarray:
    """The array in the ``.npy`` file at `path` (memory-mapped read-only with ``mmap_mode="r"``)."""
    with _LOCK:
        return np.load(path, mmap_mode=mmap_mode)


def load_members(path: Path) -> dict[str, np.ndarray]:
    """Every array in the ``.npz`` file at `path`, by name (read whole)."""
    with _LOCK, np.load(path) as archive:
        return {name: archive[name] for name in archive.files}
