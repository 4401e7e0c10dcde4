"""Optimistic commits: build the next manifest on top of whatever is newest.

Each write prepares its immutable files against the version it read (the
*base*), then calls :func:`commit` with a `rebase` function that turns the
newest manifest into the next one. If another writer committed in between,
`rebase` decides: appends commute (their row ids are assigned at commit
time), deletes of different rows merge, and anything that would lose or
duplicate a change raises :class:`CommitConflictError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hybrid.errors import CommitConflictError, HybridError
from hybrid.storage import flushes
from hybrid.storage.files import DELETIONS_DIR, FileCache, write_ids_file
from hybrid.storage.manifest import Fragment, Manifest
from hybrid.storage.snapshot import Snapshot
from hybrid.storage.versions import VersionLog
from hybrid.storage.writer import write_fragments

MAX_ATTEMPTS = 200
Rebase = Callable[[Manifest], Manifest]


def commit(
    log: VersionLog, base: Manifest, operation: str, rebase: Rebase, details: dict[str, Any] | None = None
) -> Manifest:
    """Publish `rebase(newest)` as the next version, retrying when another writer wins the race.

    The files `rebase` writes are synced with the manifest, all at once (:func:`flushes.together`)."""
    latest = base
    with flushes.together():
        for attempt in range(MAX_ATTEMPTS):
            if attempt or log.latest_version() != base.version:
                latest = log.load_latest()
            built = rebase(latest)
            new = replace(
                built, version=latest.version + 1, timestamp=time.time(), operation=operation, details=details or {}
            )
            published = log.publish(new)
            if published is not None:
                return published
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
    raise CommitConflictError(f"{operation}: gave up after {MAX_ATTEMPTS} attempts; too many concurrent writers")


def append(log: VersionLog, base: Manifest, batches: Iterable[pa.RecordBatch]) -> tuple[Manifest, int]:
    """Write `batches` (conformed to `base`'s schema) as new fragments and commit them on the newest version;
    returns (the version's manifest, the rows added). The data files are synced with the manifest, at once."""
    with flushes.together():
        fragments = write_fragments(log.root, batches, base.schema, base.field_ids)
        rows = sum(f.physical_rows for f in fragments)

        def rebase(latest: Manifest) -> Manifest:
            require_same_schema("add", base, latest)
            return append_fragments(latest, fragments)

        return commit(log, base, "append", rebase, {"inserted": rows}), rows


def conflict(operation: str, base: Manifest, latest: Manifest, why: str) -> CommitConflictError:
    return CommitConflictError(
        f"{operation} read version {base.version} but version {latest.version} {why}; "
        "nothing was written: reread the table and retry"
    )


def require_same_schema(operation: str, base: Manifest, latest: Manifest) -> None:
    """Conflict if the schema changed or the table was overwritten / restored since `base`."""
    if latest.lineage_epoch != base.lineage_epoch:
        raise conflict(operation, base, latest, "overwrote or restored the table")
    if latest.schema_epoch != base.schema_epoch:
        raise conflict(operation, base, latest, "changed the schema")


def require_unchanged(operation: str, base: Manifest, latest: Manifest) -> None:
    """Conflict if anything at all was committed since `base`."""
    if latest.version != base.version:
        raise conflict(operation, base, latest, "was committed concurrently")


def append_fragments(latest: Manifest, new: Sequence[Fragment]) -> Manifest:
    """`latest` plus `new` fragments, given fresh fragment ids and row ids."""
    next_rowid, next_id = latest.next_rowid, latest.next_fragment_id
    placed = []
    for frag in new:
        placed.append(replace(frag.with_rowid_start(next_rowid), id=next_id))
        next_rowid += frag.physical_rows
        next_id += 1
    return replace(latest, fragments=latest.fragments + tuple(placed), next_rowid=next_rowid, next_fragment_id=next_id)


def apply_deletes(
    root: Path,
    cache: FileCache,
    operation: str,
    base: Manifest,
    latest: Manifest,
    rowids: np.ndarray,
    *,
    tolerate_gone: Callable[[], bool],
) -> tuple[Manifest, int]:
    """Mark `rowids` deleted in `latest`; return the manifest and how many rows were deleted.

    Rows that are no longer live in `latest` are a conflict (the change would
    be lost or duplicated) unless `tolerate_gone()` says a concurrent commit
    only deleted them (deleting a row twice is harmless).
    """
    if len(rowids) == 0:
        return latest, 0
    snap = Snapshot(root, latest, cache)
    frag_idx, offsets, live = snap.locate(rowids)
    if not live.all():
        if not tolerate_gone():
            raise conflict(operation, base, latest, "deleted or updated some of the same rows")
        frag_idx, offsets = frag_idx[live], offsets[live]
    fragments = list(latest.fragments)
    deleted = 0
    for fi in np.unique(frag_idx):
        frag = fragments[fi]
        new_offsets = np.unique(offsets[frag_idx == fi]).astype(np.uint64)
        merged = np.union1d(snap.deleted_offsets(frag), new_offsets)
        deleted += len(merged) - frag.deleted_rows
        path = write_ids_file(root, DELETIONS_DIR, merged)
        fragments[fi] = replace(frag, deletion_file=path, deleted_rows=len(merged))
    flushes.sync_folder(root / DELETIONS_DIR)
    return replace(latest, fragments=tuple(fragments)), deleted


REWRITES_ROWS = frozenset({"update", "merge_insert"})


def only_deleted_since(log: VersionLog, base: Manifest, latest: Manifest) -> bool:
    """True if no commit after `base` up to `latest` rewrote rows (gave them new row ids)."""
    for version in range(base.version + 1, latest.version + 1):
        try:
            if log.load(version).operation in REWRITES_ROWS:
                return False
        except HybridError:  # cleaned up: assume the worst
            return False
    return True


def replace_fragments(
    operation: str, base: Manifest, latest: Manifest, old_ids: Sequence[int], new: Fragment | None
) -> Manifest:
    """Swap the run of fragments `old_ids` (unchanged since `base`) for `new` (None: drop them)."""
    base_by_id = {f.id: f for f in base.fragments}
    positions = [i for i, f in enumerate(latest.fragments) if f.id in set(old_ids)]
    if len(positions) != len(old_ids) or any(
        latest.fragments[i] != base_by_id[latest.fragments[i].id] for i in positions
    ):  # deletions, added columns or an erasure changed them: the run would bring back what they changed
        raise conflict(operation, base, latest, "changed the same fragments")
    kept = [f for i, f in enumerate(latest.fragments) if i not in set(positions)]
    if new is None:
        return replace(latest, fragments=tuple(kept))
    kept.insert(positions[0], replace(new, id=latest.next_fragment_id))
    return replace(latest, fragments=tuple(kept), next_fragment_id=latest.next_fragment_id + 1)
