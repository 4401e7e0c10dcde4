"""Immutable files of a table: Arrow IPC data files, row-id and deletion files.

Files are written once under a fresh uuid name, flushed to disk, and only then
referenced by a manifest. They are read through memory maps, so random access
touches only the pages of the requested rows (blobs included).
"""

from __future__ import annotations

import itertools
import mmap
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from hybrid.errors import CorruptionError
from hybrid.storage import blocks, checksums, crypto, decoded, disk, flushes, remote
from hybrid.storage.numeric import NumericChunks
from hybrid.storage.ranged import RangedTable

DATA_DIR = "data"
DELETIONS_DIR = "deletions"
ROWIDS_DIR = "rowids"
INDEXES_DIR = "indexes"
BATCH_ROWS = 65_536


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so a new file name survives a power cut."""
    disk.current().sync_dir(path)


def write_table_file(root: Path, subdir: str, batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> tuple[str, int]:
    """Write batches to a new IPC file under `root/subdir`; return (relative path, rows).

    The name carries the checksum of the bytes (:mod:`hybrid.storage.checksums`); the file is synced now or,
    inside :func:`hybrid.storage.flushes.together`, with the manifest that lists it; the caller syncs the folder.
    """
    rel = f"{subdir}/{uuid.uuid4().hex}.arrow"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    pieces = (b.slice(s, BATCH_ROWS) for b in batches for s in range(0, b.num_rows, BATCH_ROWS))
    first = next(pieces, None)
    physical = blocks.plan(schema, first)  # long text in compressed blocks
    with disk.open_new(path) as fh:
        sink = checksums.HashingSink(fh)
        with pa.ipc.new_file(sink, physical) as writer:
            for piece in pieces if first is None else itertools.chain([first], pieces):
                writer.write_batch(blocks.encode_batch(piece, physical))
                rows += piece.num_rows
    named = checksums.publish_named(root, rel, sink.digest())
    if not isinstance(fh, disk.Sealed):  # an encrypted file is synced when closed
        flushes.sync_file(root / named)
    return named, rows


def write_ids_file(root: Path, subdir: str, ids: np.ndarray) -> str:
    """Write a sorted uint64 id array (deleted offsets or row ids) to a new file."""
    arr = pa.array(np.ascontiguousarray(ids, dtype=np.uint64))
    batch = pa.record_batch([arr], names=["id"])
    rel, _ = write_table_file(root, subdir, [batch], batch.schema)
    return rel


class FileCache:
    """Memory-mapped, zero-copy views of immutable files, shared by snapshots of one table."""

    _live: weakref.WeakSet[FileCache] = weakref.WeakSet()
    """Every cache of this process (an erasure purges those of its table)."""

    def __init__(self, root: Path, capacity: int = 4096) -> None:
        self._root = root
        FileCache._live.add(self)
        self._capacity = capacity
        self._tables: OrderedDict[str, pa.Table] = OrderedDict()
        self._ids: OrderedDict[str, np.ndarray] = OrderedDict()
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._verified: set[str] = set()
        self._numeric: dict[tuple[str, int], NumericChunks | None] = {}
        self._blocks: dict[tuple[str, int], blocks.BlockColumn] = {}
        self._lock = threading.Lock()
        self.remote = remote.lookup(root)
        """The object store the table's folder mirrors (None: a local table)."""
        self._ranged: OrderedDict[str, RangedTable] = OrderedDict()
        self._spans: dict[str, tuple[int, int]] = {}
        self._maps: dict[str, mmap.mmap] = {}  # the maps of `_spans`, to release pages of (:meth:`release`)

    @property
    def root(self) -> Path:
        return self._root

    def clear(self) -> None:
        """Forget every mapped file and the ids and masks read from them."""
        with self._lock:
            decoded.DECODED.drop({column.token for column in self._blocks.values()})
            self._tables.clear()
            self._numeric.clear()
            self._blocks.clear()
            self._ids.clear()
            self._masks.clear()
            self._verified.clear()
            self._ranged.clear()
            self._spans.clear()
            self._maps.clear()

    @classmethod
    def purge_root(cls, root: Path) -> None:
        """Clear every cache of this process that reads the table at `root`, and every decoded block
        (:mod:`hybrid.storage.decoded`: a column read before and still held elsewhere may have kept some)."""
        for cache in list(cls._live):
            if cache._root == root:
                cache.clear()
        decoded.DECODED.clear()

    def table(self, rel: str, random_access: bool = False) -> pa.Table:
        """The whole file as a zero-copy table over a memory map.

        With `random_access` the map is advised MADV_RANDOM, so touching one row
        does not make the kernel read ahead megabytes around it (what `take`
        wants); the default map reads ahead, which is what scans want.
        """
        key = f"{rel}#random" if random_access else rel
        with self._lock:
            hit = self._tables.get(key)
            if hit is not None:
                self._tables.move_to_end(key)
                return hit
        try:
            with disk.current().open_read(self._root / rel) as fh:
                mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise CorruptionError(f"{rel} of table {self._root.name} is missing", rel, "missing") from None
        except ValueError:  # mmap refuses an empty file: no data file of a table is empty
            raise CorruptionError(f"{rel} of table {self._root.name} is empty", rel, "unreadable") from None
        if mapped[: len(crypto.MAGIC)] == crypto.MAGIC:  # encrypted: a decrypted copy in memory, not a map
            plain = crypto.decode(self._root / rel, memoryview(mapped), rel)
            mapped.close()
            self._verify(rel, plain)
            buffer = pa.py_buffer(plain)
        else:
            if self._verify(rel, mapped) and hasattr(mapped, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                # the checksum read every page through the map (releasing them block by block as it went):
                # this process's resident memory holds only what it reads afterwards, not the whole file
                mapped.madvise(mmap.MADV_DONTNEED)
            if random_access and hasattr(mapped, "madvise") and hasattr(mmap, "MADV_RANDOM"):
                mapped.madvise(mmap.MADV_RANDOM)
            buffer = pa.py_buffer(mapped)
        table = pa.ipc.open_file(pa.BufferReader(buffer)).read_all()
        with self._lock:
            self._tables[key] = table
            if mapped.closed:
                self._spans.pop(key, None)
                self._maps.pop(key, None)
            else:
                self._spans[key] = (buffer.address, buffer.size)
                self._maps[key] = mapped
            if len(self._tables) > self._capacity:
                dropped, _ = self._tables.popitem(last=False)
                self._numeric = {k: v for k, v in self._numeric.items() if k[0] != dropped}
                decoded.DECODED.drop({v.token for k, v in self._blocks.items() if k[0] == dropped})
                self._blocks = {k: v for k, v in self._blocks.items() if k[0] != dropped}
                self._spans.pop(dropped, None)
                self._maps.pop(dropped, None)
        return table

    def release(self, address: int, size: int) -> bool:
        """Drop this process's mapping of the whole pages among the `size` bytes at `address`, where they lie
        in a cached data file's map (``MADV_DONTNEED``: the pages stay in the page cache and are mapped
        again if read again, with the same bytes). What a pass over a whole file (an index build's
        batches) calls behind itself, so that the file does not accumulate in its resident memory. False
        (nothing done) when the bytes are not in a map (a decrypted copy, a converted column)."""
        page = mmap.PAGESIZE
        with self._lock:
            for key, (start, length) in self._spans.items():
                if start <= address and address + size <= start + length:
                    mapped = self._maps.get(key)
                    first = -(-(address - start) // page) * page  # whole pages inside the bytes only
                    last = (address - start + size) // page * page
                    if mapped is None or mapped.closed or last <= first or not hasattr(mmap, "MADV_DONTNEED"):
                        return False
                    mapped.madvise(mmap.MADV_DONTNEED, first, last - first)
                    return True
        return False

    def file_offset(self, rel: str, address: int, size: int, random_access: bool = False) -> int | None:
        """Where in data file `rel` the `size` bytes at `address` of its table (:meth:`table`) lie, or None when
        they are not the file's own bytes (a decrypted copy, a converted column) or it is not mapped now."""
        with self._lock:
            span = self._spans.get(f"{rel}#random" if random_access else rel)
        if span is None or not (span[0] <= address and address + size <= span[0] + span[1]):
            return None
        return address - span[0]

    def numeric(self, rel: str, position: int) -> NumericChunks | None:
        """Numpy views of column `position` of data file `rel` (mapped for random access), or None when
        that column is not plain numbers; made once per file and column (see :mod:`hybrid.storage.numeric`)."""
        key = (f"{rel}#random", position)
        try:
            return self._numeric[key]
        except KeyError:
            pass
        table = self.table(rel, random_access=True)
        views = NumericChunks.of(table.column(position))
        with self._lock:
            if key[0] in self._tables:  # not evicted meanwhile: the views live as long as the map is cached
                self._numeric[key] = views
        return views

    def blocks(self, rel: str, position: int, random_access: bool = False) -> blocks.BlockColumn | None:
        """Column `position` of data file `rel` when it is stored in compressed blocks (:mod:`hybrid.storage.blocks`),
        else None; made once per file and column."""
        key = (f"{rel}#random" if random_access else rel, position)
        found = self._blocks.get(key)
        if found is not None:
            return found
        table = self.table(rel, random_access)
        field = table.schema.field(position)
        if not blocks.encoded(field):
            return None
        found = blocks.BlockColumn(table.column(position), field)
        with self._lock:
            if key[0] in self._tables:  # not evicted meanwhile: it holds views of the cached map
                self._blocks[key] = found
        return found

    def take_columns(self, rel: str, columns: list[int], offsets: np.ndarray) -> list[pa.ChunkedArray] | None:
        """Columns (by position in the file) at `offsets` of a data file that is only on the object store,
        read with ranged requests; None when the file is local (a local read through the map is cheaper)."""
        if self.remote is None or (self._root / rel).exists():
            return None
        with self._lock:
            ranged = self._ranged.get(rel)
        if ranged is None:
            try:
                ranged = RangedTable(self.remote, self.remote.key(self._root / rel))
            except FileNotFoundError:
                raise CorruptionError(f"{rel} of table {self._root.name} is missing", rel, "missing") from None
            with self._lock:
                self._ranged[rel] = ranged
                if len(self._ranged) > self._capacity:
                    self._ranged.popitem(last=False)
        return ranged.take(columns, offsets)

    def _verify(self, rel: str, mapped: mmap.mmap | bytes | bytearray | memoryview) -> bool:
        """Check a file against the checksum in its name, once per process (it never changes); True when
        this call read it."""
        if rel in self._verified:
            return False
        checksums.verify_named(self._root, rel, mapped if isinstance(mapped, mmap.mmap) else memoryview(mapped))
        with self._lock:
            self._verified.add(rel)
        return True

    def ids(self, rel: str) -> np.ndarray:
        with self._lock:
            hit = self._ids.get(rel)
            if hit is not None:
                return hit
        column = self.table(rel).column(0)
        ids = (
            column.to_numpy()
            if column.num_chunks == 1
            else np.concatenate([c.to_numpy() for c in column.chunks])
            if column.num_chunks
            else np.empty(0, np.uint64)
        )
        with self._lock:
            self._ids[rel] = ids
            if len(self._ids) > self._capacity:
                self._ids.popitem(last=False)
        return ids

    def live_mask(self, deletion_rel: str, physical_rows: int) -> np.ndarray:
        """Read-only mask of the rows a deletion file leaves live, built once per file.

        Deletion files are immutable, so every version that shares one shares its mask
        (a write elsewhere in the table does not rebuild it).
        """
        with self._lock:
            hit = self._masks.get(deletion_rel)
            if hit is not None:
                return hit
        mask = np.ones(physical_rows, dtype=bool)
        mask[self.ids(deletion_rel).astype(np.int64)] = False
        mask.flags.writeable = False
        with self._lock:
            self._masks[deletion_rel] = mask
            if len(self._masks) > self._capacity:
                self._masks.popitem(last=False)
        return mask
