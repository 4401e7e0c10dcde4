"""How an index relates to a table version, carried from one version to the next by the commit's delta.

An index holds the rows live when it was built. A later version has rows the
index lacks (`unindexed`: appended since) and rows it holds that are gone
(`dead`: deleted or updated since). Computing both from scratch compares every
row id of the table with every row id of the index, per version; a table that
is written to all day would pay that after every commit. Versions differ by a
few fragments, so the coverage of a new version is derived from the last one
computed: rows of fragments that appeared are added, rows of fragments that
disappeared (or lost rows to deletes) are removed, and only those few ids are
looked up in the index's sorted id list.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np

from hybrid.storage.manifest import Fragment

FragmentKey = tuple[Hashable, ...]
LivePieces = dict[FragmentKey, np.ndarray]
"""A version's live row ids, per fragment state (fragment id, row ids source, deletion file)."""

FULL_RECOMPUTE_SHARE = 8
"""A delta touching more than 1/8 of the live rows is recomputed from scratch (compaction, a big delete)."""


@dataclass
class Coverage:
    """How an index relates to one table version."""

    dead: np.ndarray  # indexed row ids that are not live in this version (sorted)
    unindexed: np.ndarray  # live row ids the index does not hold (sorted)
    live: int
    _flags: np.ndarray | None = field(default=None, repr=False, compare=False)
    _bitmap: np.ndarray | None = field(default=None, repr=False, compare=False)

    def alive_flags(self, size: int) -> np.ndarray:
        """Read-only flags by row id (`size` of them): False for the index's dead rows, made once per
        version (a coverage is kept per index and version), not per search."""
        flags = self._flags
        if flags is None or len(flags) != size:
            flags = np.ones(size, dtype=bool)
            flags[self.dead.astype(np.int64)] = False
            flags.flags.writeable = False
            self._flags = flags
        return flags

    def alive_bitmap(self, size: int) -> np.ndarray:
        """:meth:`alive_flags` packed eight to a byte, as an IVF index's list scan reads them
        (:func:`row_bitmap`), made once per version."""
        flags = self.alive_flags(size)
        if self._bitmap is None or len(self._bitmap) != (size + 7) // 8:
            self._bitmap = row_bitmap(flags)
        return self._bitmap


def row_bitmap(flags: np.ndarray) -> np.ndarray:
    """Boolean flags indexed by row id as the bitmap an IVF index's list scan reads (faiss's
    ``IDSelectorBitmap``): bit ``i % 8`` of byte ``i // 8`` for row ``i``.

    >>> row_bitmap(np.array([True, False, False, True, False, False, False, False, True])).tolist()
    [9, 1]
    """
    return np.packbits(np.asarray(flags, bool), bitorder="little")


def fragment_key(frag: Fragment) -> FragmentKey:
    """What a fragment's live row ids depend on: its id, where its row ids come from, its deletions."""
    return (frag.id, frag.rowid_start, frag.rowid_file, frag.physical_rows, frag.deletion_file)


def member(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Mask of `ids` that occur in the sorted array `sorted_ids` (binary search: O(len(ids) log n))."""
    if len(ids) == 0 or len(sorted_ids) == 0:
        return np.zeros(len(ids), dtype=bool)
    at = np.searchsorted(sorted_ids, ids)
    inside = at < len(sorted_ids)
    found = np.zeros(len(ids), dtype=bool)
    found[inside] = sorted_ids[at[inside]] == ids[inside]
    return found


def compute(indexed: np.ndarray, live: np.ndarray) -> Coverage:
    """Coverage from scratch: compare every live row id with every indexed one."""
    return Coverage(
        dead=np.setdiff1d(indexed, live, assume_unique=True),
        unindexed=np.setdiff1d(live, indexed, assume_unique=True),
        live=len(live),
    )


def delta(old: LivePieces, new: LivePieces) -> tuple[np.ndarray, np.ndarray]:
    """(removed, added): sorted row ids live in `old` but not `new`, and the reverse."""
    old_by_id = {key[0]: key for key in old}
    removed: list[np.ndarray] = []
    added: list[np.ndarray] = []
    for key, ids in new.items():
        if key in old:
            continue
        before = old_by_id.get(key[0])
        if before is not None and before not in new:  # the same fragment, with other deletions
            removed.append(np.setdiff1d(old[before], ids, assume_unique=True))
            added.append(np.setdiff1d(ids, old[before], assume_unique=True))
        else:
            added.append(ids)
    new_ids = {key[0] for key in new}
    removed.extend(ids for key, ids in old.items() if key not in new and key[0] not in new_ids)
    gone = np.sort(np.concatenate(removed)) if removed else np.empty(0, np.uint64)
    came = np.sort(np.concatenate(added)) if added else np.empty(0, np.uint64)
    if len(gone) and len(came):  # rows that moved between fragments (compaction) stay live
        gone, came = np.setdiff1d(gone, came, assume_unique=True), np.setdiff1d(came, gone, assume_unique=True)
    return gone.astype(np.uint64), came.astype(np.uint64)


def carry(previous: Coverage, indexed: np.ndarray, removed: np.ndarray, added: np.ndarray) -> Coverage:
    """The coverage of a version that differs from `previous`'s by `removed` and `added` live rows."""
    added_held = member(added, indexed)
    removed_held = member(removed, indexed)
    unindexed = previous.unindexed
    if len(removed):
        unindexed = unindexed[~member(unindexed, removed)]
    if (~added_held).any():
        unindexed = np.union1d(unindexed, added[~added_held]).astype(np.uint64)
    dead = previous.dead
    if added_held.any():  # rows that came back (a restore): held by the index and live again
        dead = dead[~member(dead, added[added_held])]
    if removed_held.any():
        dead = np.union1d(dead, removed[removed_held]).astype(np.uint64)
    return Coverage(dead=dead, unindexed=unindexed, live=previous.live - len(removed) + len(added))


def small(removed: np.ndarray, added: np.ndarray, live: int) -> bool:
    """Whether a delta is small enough to carry rather than recompute."""
    return len(removed) + len(added) <= max(1_024, live // FULL_RECOMPUTE_SHARE)
