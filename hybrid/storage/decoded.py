"""Recently decoded text blocks, kept across queries within a byte budget.

A search reads its result rows' text from compressed blocks (:mod:`hybrid.storage.blocks`); decoding
one costs ~25 us, most of a result row's read, and a table's popular passages are read again and
again. Reads by row (:meth:`hybrid.storage.blocks.BlockColumn.take`) keep the blocks they decode here,
least recently used dropped first past :data:`CAPACITY_BYTES` in all; scans do not (they would push
everything else out). Data files never change, so a kept block is never stale: each column of a
mapped file has its own key (:func:`token`, never reused), and when a table's mapped files are
forgotten (:meth:`hybrid.storage.files.FileCache.clear`, as an erasure does) their blocks are dropped
here too, so erased text does not stay in memory.

>>> cache = DecodedBlocks(capacity=100)
>>> cache.put((1, 0), "a", 60); cache.put((1, 1), "b", 60)  # over budget: the older block goes
>>> cache.get((1, 0)) is None, cache.get((1, 1)), cache.size
(True, 'b', 60)
>>> cache.drop({1}); cache.size
0
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Hashable, Set
from typing import Any

CAPACITY_BYTES = 64 << 20
"""Decoded bytes kept in this process (64 MiB: about 8,000 blocks of 8 KB, the text of ~30,000
passages of 250 words)."""

_tokens = itertools.count(1)


def token() -> int:
    """A key for one column of one mapped file, never given out twice in this process."""
    return next(_tokens)


class DecodedBlocks:
    """A least-recently-used map of decoded blocks, keyed ``(column token, block)``, bounded by the
    bytes the caller says each holds; safe to share between threads."""

    def __init__(self, capacity: int = CAPACITY_BYTES) -> None:
        self.capacity = capacity
        self.size = 0
        self._items: OrderedDict[tuple[int, Hashable], tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, Hashable]) -> Any:
        """The block kept under `key`, or None."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: tuple[int, Hashable], value: Any, nbytes: int) -> None:
        """Keep `value` (`nbytes` bytes) under `key`, dropping the least recently used past the budget;
        a block larger than the whole budget is not kept."""
        if nbytes > self.capacity:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size -= old[1]
            self._items[key] = (value, nbytes)
            self.size += nbytes
            while self.size > self.capacity:
                _, (_, dropped) = self._items.popitem(last=False)
                self.size -= dropped

    def drop(self, tokens: Set[int]) -> None:
        """Forget every block of the columns `tokens`."""
        if not tokens:
            return
        with self._lock:
            for key in [k for k in self._items if k[0] in tokens]:
                self.size -= self._items.pop(key)[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.size = 0


DECODED = DecodedBlocks()
"""The process's decoded blocks (``DECODED.capacity = 0`` keeps none)."""
