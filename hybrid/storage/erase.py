"""Erasure at the storage level: rewrite every retained version without a set of row ids.

Row ids are the unit. A row id's content never changes (an update gives the new
content a new row id), so "erase these row ids" has one meaning in every version.
The rows to erase are found by :func:`union_snapshot`, a view of every *physical* row
of every fragment any retained version lists (rows deleted in every version included:
their bytes are still in the data files).

:class:`Rewriter` turns each fragment into its erased form:

- every data file of the fragment is rewritten without the erased rows (a new name,
  so a new checksum); a file is rewritten once however many versions and fragments
  share it;
- the surviving rows keep their row ids: a fragment whose survivors are no longer
  contiguous gets a row-id file, so indexes (which refer to row ids) stay valid;
- the deletion file's offsets are renumbered (each offset moves down by the number of
  erased rows before it) and the erased ones dropped;
- a fragment with no row left disappears from the manifest.

Every retained manifest is then rewritten in place (:meth:`VersionLog.overwrite`: a new
file renamed over the old one, so a reader sees the old or the new manifest whole, and
both refer only to files that exist). Old files are deleted only after every manifest
refers to the new ones, so a crash at any point leaves every version readable; the
:class:`Journal` lets a rerun finish the job.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hybrid.storage import blocks, disk, npy
from hybrid.storage.files import DATA_DIR, DELETIONS_DIR, ROWIDS_DIR, FileCache, fsync_dir, write_ids_file
from hybrid.storage.files import write_table_file as _write_table_file
from hybrid.storage.manifest import DataFile, Fragment, Manifest
from hybrid.storage.snapshot import Snapshot
from hybrid.storage.versions import VersionLog

ERASE_DIR = "_erase"
JOURNAL = "journal.json"
ROWIDS = "rowids.npy"

RowidKey = tuple[int | None, str | None, int, int]
IndexMap = Callable[[dict[str, Any]], "dict[str, Any] | None"]
"""Maps an index entry of a manifest to its erased form (None: drop it)."""


def rowid_key(frag: Fragment) -> RowidKey:
    """What a fragment's physical row ids depend on (shared by every fragment over the same rows)."""
    return (frag.rowid_start, frag.rowid_file, frag.physical_rows, frag.rowid_min)


# -- the rows of every retained version -------------------------------------------------------


def distinct_fragments(manifests: Iterable[Manifest]) -> list[Fragment]:
    """Every fragment the manifests list, once per (row ids, data files), deletions cleared."""
    seen: dict[tuple[RowidKey, tuple[str, ...]], Fragment] = {}
    for manifest in manifests:
        for frag in manifest.fragments:
            key = (rowid_key(frag), tuple(f.path for f in frag.files))
            if key not in seen:
                seen[key] = replace(frag, deletion_file=None, deleted_rows=0)
    return list(seen.values())


def union_schema(manifests: Sequence[Manifest]) -> tuple[pa.Schema, tuple[int, ...]]:
    """A schema holding every field any of `manifests` has (newest definition first), by field id.

    Names are made unique (``name__<field id>``) where a dropped column's name was reused.
    """
    fields: dict[int, pa.Field] = {}
    for manifest in sorted(manifests, key=lambda m: -m.version):
        for fid, f in zip(manifest.field_ids, manifest.schema):
            fields.setdefault(fid, f)
    names: set[str] = set()
    out = []
    for fid in sorted(fields):
        f = fields[fid]
        name = f.name if f.name not in names else f"{f.name}__{fid}"
        names.add(name)
        out.append(f.with_name(name))
    return pa.schema(out), tuple(sorted(fields))


def union_snapshot(root: Path, manifests: Sequence[Manifest], cache: FileCache, *, every_field: bool) -> Snapshot:
    """A snapshot whose "rows" are every physical row of every fragment the manifests list.

    With `every_field` its schema holds every field any manifest has (see :func:`union_schema`);
    otherwise the newest manifest's schema (for evaluating a filter written against it).
    A row id may appear more than once (a compaction copies rows into a new fragment).
    """
    newest = max(manifests, key=lambda m: m.version)
    schema, field_ids = union_schema(manifests) if every_field else (newest.schema, newest.field_ids)
    fragments = tuple(distinct_fragments(manifests))
    return Snapshot(root, replace(newest, schema=schema, field_ids=field_ids, fragments=fragments, pages=()), cache)


def rows_matching(snap: Snapshot, predicate: Callable[[pa.Table], np.ndarray], columns: Sequence[str]) -> np.ndarray:
    """Sorted distinct row ids of the physical rows of `snap` that satisfy `predicate`."""
    masks = snap.row_masks(predicate, columns)
    found = [snap.rowids(f)[m] for f, m in zip(snap.manifest.fragments, masks) if m is not None and m.any()]
    return np.unique(np.concatenate(found)) if found else np.empty(0, np.uint64)


def first_occurrence_masks(snap: Snapshot, wanted: np.ndarray) -> list[np.ndarray | None]:
    """Per fragment of a union snapshot, the rows whose id is in sorted `wanted`, each id once."""
    taken = np.zeros(len(wanted), dtype=bool)
    masks: list[np.ndarray | None] = []
    for frag in snap.manifest.fragments:
        ids = snap.rowids(frag)
        pos = np.searchsorted(wanted, ids)
        pos_ok = pos < len(wanted)
        hit = np.zeros(len(ids), dtype=bool)
        hit[pos_ok] = wanted[pos[pos_ok]] == ids[pos_ok]
        hit[hit] &= ~taken[pos[hit]]
        if hit.any():
            taken[pos[hit]] = True
        masks.append(hit)
    return masks


# -- rewriting fragments and manifests -------------------------------------------------------


@dataclass
class Rewriter:
    """Rewrites fragments without the row ids `erased` (sorted), each file once."""

    root: Path
    cache: FileCache
    erased: np.ndarray
    data: dict[str, str | None] = field(default_factory=dict)
    """Old data file -> its rewrite (None: no row left)."""
    rowids: dict[RowidKey, tuple[int | None, str | None, int, int]] = field(default_factory=dict)
    deletions: dict[tuple[str, RowidKey], str | None] = field(default_factory=dict)
    masks: dict[RowidKey, np.ndarray | None] = field(default_factory=dict)
    replaced: set[str] = field(default_factory=set)
    """Every old file a rewrite replaced (deleted once no manifest refers to it)."""
    written: list[str] = field(default_factory=list)

    def erased_mask(self, frag: Fragment) -> np.ndarray | None:
        """Physical rows of `frag` to erase, or None when it holds none."""
        key = rowid_key(frag)
        if key in self.masks:
            return self.masks[key]
        mask = None
        if len(self.erased) and frag.physical_rows and frag.rowid_min <= int(self.erased[-1]):
            ids = Snapshot(self.root, _EMPTY, self.cache).rowids(frag)
            pos = np.minimum(np.searchsorted(self.erased, ids), len(self.erased) - 1)
            hit = self.erased[pos] == ids
            mask = hit if hit.any() else None
        self.masks[key] = mask
        return mask

    def fragment(self, frag: Fragment) -> Fragment | None:
        """`frag` without the erased rows (itself when it holds none; None when no row is left)."""
        mask = self.erased_mask(frag)
        if mask is None:
            return frag
        keep = ~mask
        if not keep.any():
            self.replaced.update(frag.file_paths())
            return None
        files = tuple(DataFile(self._data_file(f.path, keep), f.field_ids) for f in frag.files)
        start, rowid_file, lo, hi = self._rowids(frag, keep)
        deletion, deleted = self._deletions(frag, mask)
        return replace(
            frag,
            files=files,
            physical_rows=int(keep.sum()),
            rowid_start=start,
            rowid_file=rowid_file,
            rowid_min=lo,
            rowid_max=hi,
            deletion_file=deletion,
            deleted_rows=deleted,
        )

    def _data_file(self, rel: str, keep: np.ndarray) -> str:
        done = self.data.get(rel)
        if done is not None:
            return done
        table = blocks.decode_table(self.cache.table(rel)).filter(pa.array(keep)).combine_chunks()
        new, _ = _write_table_file(self.root, DATA_DIR, table.to_batches(), table.schema)
        self.data[rel] = new
        self.replaced.add(rel)
        self.written.append(new)
        return new

    def _rowids(self, frag: Fragment, keep: np.ndarray) -> tuple[int | None, str | None, int, int]:
        key = rowid_key(frag)
        if key not in self.rowids:
            ids = Snapshot(self.root, _EMPTY, self.cache).rowids(frag)[keep]
            lo, hi = int(ids[0]), int(ids[-1])
            if hi - lo + 1 == len(ids):
                self.rowids[key] = (lo, None, lo, hi)
            else:
                rel = write_ids_file(self.root, ROWIDS_DIR, ids)
                self.written.append(rel)
                self.rowids[key] = (None, rel, lo, hi)
            if frag.rowid_file:
                self.replaced.add(frag.rowid_file)
        return self.rowids[key]

    def _deletions(self, frag: Fragment, mask: np.ndarray) -> tuple[str | None, int]:
        if frag.deletion_file is None:
            return None, 0
        key = (frag.deletion_file, rowid_key(frag))
        if key not in self.deletions:
            offsets = self.cache.ids(frag.deletion_file).astype(np.int64)
            survivors = offsets[~mask[offsets]]
            before = np.cumsum(mask) - mask  # erased rows before each position
            renumbered = (survivors - before[survivors]).astype(np.uint64)
            rel = write_ids_file(self.root, DELETIONS_DIR, renumbered) if len(renumbered) else None
            if rel is not None:
                self.written.append(rel)
            self.deletions[key] = rel
            self.replaced.add(frag.deletion_file)
        rel = self.deletions[key]
        return rel, (0 if rel is None else len(self.cache.ids(rel)))

    def manifest(self, manifest: Manifest, index_map: IndexMap) -> Manifest:
        """`manifest` with every fragment rewritten and every index entry mapped by `index_map` (None: dropped)."""
        fragments = tuple(f for f in (self.fragment(frag) for frag in manifest.fragments) if f is not None)
        indexes = tuple(e for e in (index_map(d) for d in manifest.indexes) if e is not None)
        return replace(manifest, fragments=fragments, indexes=indexes)

    def sync(self) -> None:
        """Make the names of every file written so far durable."""
        for sub in {w.split("/", 1)[0] for w in self.written}:
            fsync_dir(self.root / sub)


_EMPTY = Manifest(0, 0.0, "", pa.schema([]), ())
"""A manifest for snapshots used only to read a fragment's row ids."""


def rewrite_versions(
    root: Path,
    log: VersionLog,
    rewriter: Rewriter,
    index_map: IndexMap,
    versions: Iterable[int],
) -> list[int]:
    """Rewrite the manifests of `versions` without the erased rows; the versions actually changed."""
    changed = []
    previous: Manifest | None = None
    for version in versions:
        old = log.load(version)
        new = rewriter.manifest(old, index_map)
        if new.fragments == old.fragments and new.indexes == old.indexes:
            continue
        rewriter.sync()
        previous = log.overwrite(replace(new, pages=previous.pages if previous is not None else old.pages))
        changed.append(version)
    return changed


# -- the journal ---------------------------------------------------------------------------


@dataclass
class Journal:
    """An erasure in progress: what to erase (row ids, never content) and how far it got."""

    id: str
    where: str
    """The filter with its literals redacted."""
    by: str
    started: float
    base_version: int
    erased_live: int
    committed_version: int | None = None

    @staticmethod
    def folder(root: Path) -> Path:
        return root / ERASE_DIR

    @classmethod
    def start(cls, root: Path, where: str, by: str, base_version: int, rowids: np.ndarray, live: int) -> Journal:
        """Record an erasure before it changes anything: `where` already redacted, the row ids to erase."""
        folder = cls.folder(root)
        folder.mkdir(exist_ok=True)
        journal = cls(uuid.uuid4().hex, where, by, time.time(), base_version, live)
        tmp = folder / f".tmp-{journal.id}.npy"
        with disk.current().create(tmp) as fh:
            np.save(fh, np.asarray(rowids, dtype=np.uint64))
            disk.current().sync(fh)
        disk.current().replace(tmp, folder / ROWIDS)
        journal.save(root)
        return journal

    def save(self, root: Path) -> None:
        folder = self.folder(root)
        tmp = folder / f".tmp-{uuid.uuid4().hex}.json"
        disk.write_new(tmp, json.dumps(self.__dict__).encode())
        disk.current().replace(tmp, folder / JOURNAL)
        fsync_dir(folder)

    @classmethod
    def pending(cls, root: Path) -> tuple[Journal, np.ndarray] | None:
        """The unfinished erasure of the table at `root`, with its row ids, or None."""
        folder = cls.folder(root)
        try:
            d = json.loads((folder / JOURNAL).read_text())
        except FileNotFoundError:
            return None
        return cls(**d), npy.load(folder / ROWIDS)

    def finish(self, root: Path) -> None:
        """Remove the journal: the erasure is complete."""
        folder = self.folder(root)
        (folder / JOURNAL).unlink(missing_ok=True)
        (folder / ROWIDS).unlink(missing_ok=True)
        for tmp in folder.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)
        fsync_dir(folder)


def remove_unreferenced(root: Path, log: VersionLog) -> tuple[int, int]:
    """Delete every data, row-id, deletion and page file and index folder no retained version lists,
    whatever its age; returns (files, bytes). No version is removed."""
    from hybrid.storage.writer import cleanup

    stats = cleanup(root, log, -60.0, keep=lambda _version: True)
    return stats.files_removed, stats.bytes_removed


def table_files(root: Path) -> list[Path]:
    """Every regular file under the table folder (what a verification scans)."""
    out: list[Path] = []
    for dirpath, _dirs, names in os.walk(root):
        out.extend(Path(dirpath) / n for n in names)
    return sorted(out)
