"""Writing new fragments, compacting old ones, and removing unreachable files."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from hybrid.storage import blocks, checksums, disk, flushes, remote
from hybrid.storage.files import DATA_DIR, DELETIONS_DIR, INDEXES_DIR, ROWIDS_DIR, write_ids_file
from hybrid.storage.manifest import DataFile, Fragment, Manifest
from hybrid.storage.pages import PAGES_DIR
from hybrid.storage.snapshot import ROWID, Snapshot
from hybrid.storage.versions import VersionLog

MAX_ROWS_PER_FILE = 1 << 20
REWRITE_BATCH = 1 << 16
"""Rows per record batch of a fragment rewritten by compaction."""
PIECE_ROWS = 65_536
"""Most rows per record batch written: larger input batches are sliced."""
MIN_BATCH_ROWS = 1_024
"""Input batches with fewer rows are joined until they hold this many (:func:`coalesced`)."""


def write_fragments(
    root: Path,
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    field_ids: Sequence[int],
    max_rows: int = MAX_ROWS_PER_FILE,
) -> list[Fragment]:
    """Stream batches into new data files of at most `max_rows` rows each.

    The fragments get their ids and row ids when committed. If a batch fails
    (e.g. validation raises), the files written so far are removed and the
    error propagates, so a failed write leaves nothing behind. The files and
    their folder are synced once all are written, or with the manifest that
    lists them inside :func:`hybrid.storage.flushes.together`.
    """
    fragments: list[Fragment] = []
    written: list[Path] = []
    writer: pa.ipc.RecordBatchFileWriter | None = None
    handle = None
    rows = 0
    rel = ""

    sink: checksums.HashingSink | None = None
    physical = schema
    unsynced: list[Path] = []  # an encrypted file is synced when closed

    def close() -> None:
        nonlocal writer, handle
        if writer is not None and handle is not None and sink is not None:
            writer.close()
            handle.close()
            named = checksums.publish_named(root, rel, sink.digest())
            written[-1] = root / named
            if not isinstance(handle, disk.Sealed):
                unsynced.append(root / named)
            fragments.append(Fragment(id=-1, files=(DataFile(named, tuple(field_ids)),), physical_rows=rows))
        writer, handle = None, None

    try:
        (root / DATA_DIR).mkdir(parents=True, exist_ok=True)
        for batch in coalesced(batches):
            start = 0
            while start < batch.num_rows:
                piece = batch.slice(start, min(max_rows - rows if writer is not None else max_rows, PIECE_ROWS))
                if writer is None:
                    rel = f"{DATA_DIR}/{os.urandom(16).hex()}.arrow"
                    written.append(root / rel)
                    handle = disk.open_new(root / rel)  # spans loop iterations; closed in close()
                    sink = checksums.HashingSink(handle)
                    physical = blocks.plan(schema, piece)  # long text in compressed blocks
                    writer = pa.ipc.new_file(sink, physical)
                    rows = 0
                writer.write_batch(blocks.encode_batch(piece, physical))
                rows += piece.num_rows
                start += piece.num_rows
                if rows >= max_rows:
                    close()
        close()
    except BaseException:
        if handle is not None:
            handle.close()
        for path in written:
            path.unlink(missing_ok=True)
        raise
    for path in unsynced:
        flushes.sync_file(path)
    flushes.sync_folder(root / DATA_DIR)
    return fragments


def coalesced(batches: Iterable[pa.RecordBatch], rows: int = MIN_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The same rows, in the same order, with each run of small batches joined into one.

    A data file of many tiny record batches (a table concatenated from one-row tables, a stream of
    single rows) reads and searches several times slower than the same rows in one batch, so batches
    under `rows` rows are held until `rows` rows are together; a batch of `rows` rows or more passes as
    it is (a layout chosen by the writer, e.g. for ranged reads from object storage, is kept).
    """
    held: list[pa.RecordBatch] = []
    count = 0

    def joined() -> Iterator[pa.RecordBatch]:
        nonlocal held, count
        if len(held) == 1:
            yield held[0]
        elif held:
            yield from pa.Table.from_batches(held).combine_chunks().to_batches()
        held, count = [], 0

    for batch in batches:
        if batch.num_rows >= rows:
            yield from joined()
            yield batch
            continue
        held.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield from joined()
    yield from joined()


@dataclass(frozen=True)
class CompactionRun:
    """Consecutive fragments to rewrite into one (or drop, when no row is live)."""

    fragment_ids: tuple[int, ...]
    new: Fragment | None


def plan_compaction(manifest: Manifest, target_rows: int) -> list[list[Fragment]]:
    """Group consecutive small or deletion-bearing fragments into runs of <= `target_rows` live rows."""
    runs: list[list[Fragment]] = []
    current: list[Fragment] = []
    live = 0

    def flush() -> None:
        nonlocal current, live
        if len(current) > 1 or (current and (current[0].deleted_rows or len(current[0].files) > 1)):
            runs.append(current)
        current, live = [], 0

    for frag in manifest.fragments:
        wants = frag.live_rows < target_rows // 2 or frag.deleted_rows > 0 or len(frag.files) > 1
        if not wants or live + frag.live_rows > target_rows:
            flush()
        if wants:
            current.append(frag)
            live += frag.live_rows
    flush()
    return runs


def rewrite_run(root: Path, snap: Snapshot, run: Sequence[Fragment]) -> CompactionRun:
    """Write the live rows of `run` (all current columns, row ids kept) as one fragment."""
    schema = snap.schema
    pieces = []
    for frag in run:
        table = snap.read_fragment(frag, schema.names, with_rowid=True)
        mask = snap.live_mask(frag)
        pieces.append(table if mask is None else table.filter(pa.array(mask)))
    merged = pa.concat_tables(pieces) if pieces else None
    ids = tuple(f.id for f in run)
    if merged is None or merged.num_rows == 0:
        return CompactionRun(ids, None)
    rowids = merged.column(ROWID).to_numpy()
    data = merged.drop_columns([ROWID]).cast(schema)
    # whole record batches of up to REWRITE_BATCH rows, not one per merged piece: reads and takes over
    # a file of a thousand one-row batches pay per batch
    batches = (
        b
        for s in range(0, data.num_rows, REWRITE_BATCH)
        for b in data.slice(s, REWRITE_BATCH).combine_chunks().to_batches()
    )
    [frag] = write_fragments(root, batches, schema, snap.manifest.field_ids, max_rows=1 << 62)
    lo, hi = int(rowids[0]), int(rowids[-1])
    if hi - lo + 1 == len(rowids):
        return CompactionRun(ids, frag.with_rowid_start(lo))
    path = write_ids_file(root, ROWIDS_DIR, rowids)
    flushes.sync_folder(root / ROWIDS_DIR)
    return CompactionRun(
        ids,
        Fragment(
            id=-1, files=frag.files, physical_rows=frag.physical_rows, rowid_file=path, rowid_min=lo, rowid_max=hi
        ),
    )


@dataclass(frozen=True)
class CleanupStats:
    """What `Table.cleanup` removed."""

    versions_removed: int
    """Versions (manifests) deleted."""
    files_removed: int
    """Data, deletion, row-id and page files, index folders and leftover temporary files deleted."""
    bytes_removed: int
    """Every byte deleted, the manifests of the removed versions included."""


def cleanup(root: Path, log: VersionLog, older_than_s: float, keep: Callable[[int], bool]) -> CleanupStats:
    """Remove versions older than the cutoff (never the newest or kept ones) and unreachable files.

    A file (data, deletion, row-id file, fragment page or index folder) goes when no
    remaining version lists it and it is older than the cutoff too (so that files of a
    commit still in flight stay). ``bytes_removed`` counts everything deleted: those files,
    the removed versions' manifests and leftover temporary files of unfinished publishes.
    """
    cutoff = time.time() - older_than_s
    versions = log.list_versions()
    if not versions:
        return CleanupStats(0, 0, 0)
    newest = versions[-1]
    log.mark_cleanup()
    referenced: set[str] = set()
    removed_versions = bytes_ = 0
    for v in versions:
        manifest = log.load(v)
        if v == newest or keep(v) or manifest.timestamp >= cutoff:
            referenced.update(manifest.file_paths())
            referenced.update(manifest.page_paths())
        else:
            bytes_ += log.remove(v)
            removed_versions += 1
    log.mark_cleanup()
    store = remote.lookup(root)
    if store is not None:  # the store's objects are the table; the mirror only caches them
        files, swept = store.sweep(root, referenced, cutoff)
        return CleanupStats(removed_versions, files, bytes_ + swept)
    files = 0
    for sub in (DATA_DIR, DELETIONS_DIR, ROWIDS_DIR, PAGES_DIR):
        folder = root / sub
        if not folder.is_dir():
            continue
        for name in os.listdir(folder):
            rel = f"{sub}/{name}"
            path = folder / name
            stat = path.stat()
            if rel not in referenced and stat.st_mtime < cutoff:
                path.unlink(missing_ok=True)
                files += 1
                bytes_ += stat.st_size
    index_root = root / INDEXES_DIR
    if index_root.is_dir():
        for folder in index_root.iterdir():
            rel = f"{INDEXES_DIR}/{folder.name}"
            if rel not in referenced and folder.stat().st_mtime < cutoff:
                size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                shutil.rmtree(folder, ignore_errors=True)
                files += 1
                bytes_ += size
    for tmp in log.dir.glob(".tmp-*"):
        stat = tmp.stat()
        if stat.st_mtime < cutoff:
            tmp.unlink(missing_ok=True)
            files += 1
            bytes_ += stat.st_size
    return CleanupStats(removed_versions, files, bytes_)


def scatter_live(values: pa.Table, live: np.ndarray | None, physical_rows: int) -> pa.Table:
    """Spread values computed for live rows back to physical positions (nulls where deleted)."""
    if live is None:
        return values
    index = np.full(physical_rows, -1, dtype=np.int64)
    index[np.flatnonzero(live)] = np.arange(int(live.sum()))
    indices = pa.array(index, mask=index < 0)
    return values.take(indices)
