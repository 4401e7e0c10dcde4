"""`Table.erase`: remove rows from the newest version and from every retained version, and prove it.

A delete hides rows from the newest version; every earlier version, its index
folders and the process's caches still hold them. An erasure, by contrast:

1. finds the row ids whose row matches the filter in *any* retained version (every
   physical row of every fragment, rows deleted long ago included), and writes a
   journal (the row ids and the filter with its literals redacted, never content);
2. rebuilds every index folder that holds one of them (:mod:`hybrid.index.erase`);
3. rewrites every data file that holds one, and every manifest of every retained
   version to refer to the rewritten files and folders (:mod:`hybrid.storage.erase`);
4. commits a version "erase" recording how many rows, the redacted filter and who;
5. deletes every file no retained version refers to (the old files, and any stray
   file of an aborted write), and purges this process's caches;
6. with ``verify=True``, scans every byte of every file of the table for the erased
   values (:mod:`hybrid.storage.scan`) and checks that no index folder and no version
   lists an erased row id.

A crash at any step leaves every version readable (old files go only after every
manifest refers to the new ones); the next ``erase`` (or ``hybrid erase --resume``)
finishes the journal first.
"""

from __future__ import annotations

import getpass
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hybrid.embedders import binding
from hybrid.errors import HybridError
from hybrid.index import manage, sealed
from hybrid.index.ann_kinds import FLOAT_KIND
from hybrid.index.cache import SearchCache
from hybrid.index.catalog import IndexEntry, load_ids
from hybrid.index.erase import hnsw_labels, holds_any, rebuild_without, stored_vector_forms
from hybrid.index.sealed import readable
from hybrid.query.filter import compile_filter, shape_of
from hybrid.storage import pages
from hybrid.storage import transactions as tx
from hybrid.storage.erase import (
    Journal,
    Rewriter,
    remove_unreferenced,
    rewrite_versions,
    rows_matching,
    table_files,
    union_snapshot,
)
from hybrid.storage.files import FileCache
from hybrid.storage.ingest import is_vector_type
from hybrid.storage.manifest import Manifest
from hybrid.storage.scan import PatternSet, scan_files
from hybrid.storage.snapshot import Snapshot
from hybrid.storage.versions import VersionLog

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Leak:
    """An erased value (or row id) still found after an erasure."""

    path: str
    """Relative to the table folder."""
    what: str
    """Which value: ``column`` and the kind of bytes (never the value itself)."""
    offset: int = -1


@dataclass(frozen=True)
class Verification:
    """What the proof step of :meth:`Table.erase` scanned and found."""

    files_scanned: int
    bytes_scanned: int
    values_searched: int
    """Byte sequences of erased values looked for (strings, binary values, vectors as stored)."""
    values_not_searched: int
    """Erased values under 4 bytes (or numbers): too short to tell from chance bytes."""
    values_still_retained: int
    """Erased values that surviving rows also hold (the same string in another row): not searched."""
    indexes_checked: int
    leaks: tuple[Leak, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.leaks


@dataclass(frozen=True)
class EraseReport:
    """What :meth:`Table.erase` did."""

    version: int
    """The version the erasure committed."""
    erased_rows: int
    """Distinct row ids erased (from any retained version)."""
    live_rows_erased: int
    """Of those, rows live in the newest version before the erasure."""
    versions_rewritten: tuple[int, ...]
    files_rewritten: int
    indexes_rebuilt: int
    files_removed: int
    bytes_removed: int
    seconds: float
    verification: Verification | None = None
    resumed: tuple[int, ...] = field(default=())
    """Versions committed by unfinished erasures this call finished first."""
    feedback_rows_erased: int = 0
    """Judgments of the erased rows erased from ``<table>__feedback`` (their queries may name the person)."""


def redact(where: str) -> str:
    """`where` with every literal replaced by ``?`` (what the version log keeps of an erasure's filter)."""
    shaped = shape_of(where)
    if shaped is None:
        return f"<filter of {len(where)} characters, not recorded>"
    return (
        "".join("?" if ch == "\x00" else ch for ch in shaped[0])
        .replace("?s", "?")
        .replace("?i", "?")
        .replace("?f", "?")
    )


def erase(table: manage.Writable, where: str | None, *, by: str | None = None, verify: bool = False) -> EraseReport:
    """Erase the rows matching `where` from every retained version (None: only finish an unfinished one)."""
    started = time.perf_counter()
    table.write_base("erase")  # a read-only checkout refuses here
    resumed = []
    pending = Journal.pending(table.root)
    if pending is not None:
        logger.warning("finishing the unfinished erasure %s of %s first", pending[0].id, table.name)
        resumed.append(_carry_out(table, *pending)[0])
    if where is None:
        if not resumed:
            raise HybridError(f"table {table.name} has no unfinished erasure; give a filter to erase rows")
        return EraseReport(resumed[0], 0, 0, (), 0, 0, 0, 0, time.perf_counter() - started, resumed=tuple(resumed))
    if not isinstance(where, str) or not where.strip():
        raise HybridError('erase needs a where expression naming the rows to erase (e.g. "user_id = 42")')
    manifests = [table.log.load(v) for v in table.log.list_versions()]
    base = manifests[-1]
    flt = compile_filter(where, base.schema)
    erased = rows_matching(union_snapshot(table.root, manifests, table.files, every_field=False), flt.mask, flt.columns)
    live = int(Snapshot(table.root, base, table.files).locate(erased)[2].sum())
    patterns = _erased_values(table.root, manifests, table.files, erased) if verify else None
    journal = Journal.start(table.root, redact(where), by or _who(), base.version, erased, live)
    version, changed, rewritten, rebuilt, removed = _carry_out(table, journal, erased)
    report = EraseReport(
        version, len(erased), live, changed, rewritten, rebuilt, removed[0], removed[1], 0.0, resumed=tuple(resumed)
    )
    if patterns is not None:
        report = replace(report, verification=verify_erased(table.root, table.log, erased, *patterns))
    report = replace(report, feedback_rows_erased=_erase_feedback(table.root, erased, by))
    return replace(report, seconds=time.perf_counter() - started)


def _erase_feedback(root: Path, erased: np.ndarray, by: str | None) -> int:
    """Erase the judgments given on `erased` rows from the table's feedback table, when it has one."""
    from hybrid.db import Database
    from hybrid.feedback.store import feedback_table_name
    from hybrid.storage import crypto

    name = feedback_table_name(root.name)
    if not len(erased) or not VersionLog(root.parent / name).exists():
        return 0
    db = Database(root.parent, upkeep=None, encryption_key=crypto.cipher_for(root))
    ids = ", ".join(str(int(i)) for i in erased)
    return db.open_table(name).erase(f"row IN ({ids})", by=by).erased_rows


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _carry_out(
    table: manage.Writable, journal: Journal, erased: np.ndarray
) -> tuple[int, tuple[int, ...], int, int, tuple[int, int]]:
    """Steps 2-5 for `journal`; idempotent. Returns (erase version, versions rewritten, data files
    rewritten, index folders rebuilt, (files, bytes) removed)."""
    root, log = table.root, table.log
    manifests = [log.load(v) for v in log.list_versions()]
    union = union_snapshot(root, manifests, table.files, every_field=True)
    rewriter = Rewriter(root, table.files, erased)
    rebuilt: dict[str, dict[str, Any] | None] = {}

    def index_map(d: dict[str, Any]) -> dict[str, Any] | None:
        path = d["path"]
        if path not in rebuilt:
            entry = IndexEntry.from_dict(d)
            if any(f not in union.manifest.field_ids for f in entry.field_ids):
                rebuilt[path] = None  # its column is in no retained version any more: unusable, dropped
            elif not holds_any(root, entry, erased):
                rebuilt[path] = d
            else:
                rebuilt[path] = rebuild_without(root, union, entry, erased).to_dict()
        new = rebuilt[path]
        if new is None or new is d:
            return new
        return {**d, **{k: new[k] for k in ("path", "rows", "params", "checksums")}}

    changed = rewrite_versions(root, log, rewriter, index_map, log.list_versions())
    version = journal.committed_version or _find_commit(log, journal)
    if version is None:
        details = {
            "erase_id": journal.id,
            "erased": len(erased),
            "where": journal.where,
            "by": journal.by,
            "erased_live": journal.erased_live,
            "versions_rewritten": len(changed),
        }
        base = log.load_latest()

        def rebase(latest: Manifest) -> Manifest:
            return rewriter.manifest(latest, index_map)

        rewriter.sync()
        version = tx.commit(log, base, "erase", rebase, details).version
        journal.committed_version = version
        journal.save(root)
    # versions another writer published meanwhile (built on a manifest read before its rewrite)
    changed += rewrite_versions(root, log, rewriter, index_map, [v for v in log.list_versions() if v > version])
    removed = remove_unreferenced(root, log)
    purge_caches(table.files, table.cache, log.load_latest())
    journal.finish(root)
    indexes = sum(1 for path, d in rebuilt.items() if d is not None and d["path"] != path)
    return version, tuple(sorted(set(changed))), len(rewriter.data), indexes, removed


def _find_commit(log: Any, journal: Journal) -> int | None:
    """The version an earlier run of `journal` committed before it could record it (a crash), or None."""
    for v in log.list_versions():
        if v > journal.base_version:
            m = log.load(v)
            if m.operation == "erase" and m.details.get("erase_id") == journal.id:
                return int(v)
    return None


def purge_caches(files: FileCache, cache: SearchCache, latest: Manifest) -> None:
    """Forget every mapped file, loaded index, tail log and cached embedding this process holds for
    the table: they may hold erased rows."""
    FileCache.purge_root(files.root)
    sealed.purge(files.root)
    SearchCache.purge_all()
    pages.clear_cache()
    for b in binding.read(latest.metadata):
        try:
            clear = getattr(getattr(b.embedder, "cache", None), "clear", None)
        except Exception:  # an embedder that cannot load here holds no cache either
            continue
        if clear is not None:
            clear()


# -- the proof --------------------------------------------------------------------------------


ValueForms = dict[bytes, str]


def _erased_values(
    root: Path, manifests: Sequence[Manifest], files: FileCache, erased: np.ndarray
) -> tuple[ValueForms, int, int]:
    """The byte forms of the erased rows' values ({bytes: description}), how many values were too short
    to search, and how many surviving rows also hold (read before the erasure; kept in memory only)."""
    union = union_snapshot(root, manifests, files, every_field=True)
    metrics = {str(i): d.get("params", {}).get("metric", "") for m in manifests for i, d in enumerate(m.indexes)}
    masks = [np.isin(union.rowids(frag), erased) for frag in union.manifest.fragments]  # every copy of a row
    forms: ValueForms = {}
    short = 0
    surviving: set[bytes] = set()
    for name in union.schema.names:
        column_type = union.schema.field(name).type
        for frag, mask in zip(union.manifest.fragments, masks):
            values = union.read_fragment(frag, [name]).column(0)
            if mask.any():
                gone = values.filter(pa.array(mask))
                if is_vector_type(column_type):
                    matrix = _matrix(gone)
                    for raw in stored_vector_forms(matrix, metrics):
                        forms.setdefault(raw, f"{name} (vector)")
                else:
                    for raw in _value_bytes(gone):
                        if len(raw) < 4:
                            short += 1
                        else:
                            forms.setdefault(raw, f"{name} ({column_type})")
            kept = values.filter(pa.array(~mask))
            if is_vector_type(column_type):
                surviving.update(r.tobytes() for r in _matrix(kept))
            else:
                surviving.update(_value_bytes(kept))
    retained = sum(1 for raw in forms if raw in surviving)
    return {raw: what for raw, what in forms.items() if raw not in surviving}, short, retained


def _matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = arr.filter(arr.is_valid())
    dim = arr.type.list_size
    flat = valid.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return flat.reshape(-1, dim) if dim else flat.reshape(0, 0)


def _value_bytes(column: pa.ChunkedArray | pa.Array) -> Iterable[bytes]:
    """The bytes of every string and binary value of a column (list elements included); numbers are not searched."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        arr = arr.flatten()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        for v in arr.to_pylist():
            if v is not None:
                yield v.encode()
    elif pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        for v in arr.to_pylist():
            if v is not None:
                yield bytes(v)


def verify_erased(
    root: Path, log: Any, erased: np.ndarray, forms: ValueForms, short: int, retained: int
) -> Verification:
    """Scan every file of the table for `forms`, and every index folder and version for `erased` row ids."""
    order = list(forms)
    patterns = PatternSet(order)
    hits, files, scanned = scan_files(table_files(root), patterns)
    leaks = [Leak(h.path.relative_to(root).as_posix(), forms[order[h.pattern]], h.offset) for h in hits]
    checked = 0
    for v in log.list_versions():
        manifest = log.load(v)
        snap = Snapshot(root, manifest, FileCache(root))
        for frag in manifest.fragments:
            if np.isin(snap.rowids(frag), erased).any():
                leaks.append(Leak(f"_versions/{v}.json", f"fragment {frag.id} lists an erased row id"))
        for d in manifest.indexes:
            entry = IndexEntry.from_dict(d)
            checked += 1
            if np.isin(np.asarray(load_ids(readable(root, entry.path))), erased).any():
                leaks.append(Leak(entry.path, f"index {entry.name} lists an erased row id"))
            graph = entry.kind == "vector" and entry.params.get("index_type", FLOAT_KIND) == FLOAT_KIND
            if graph and (root / entry.path).is_dir():  # hnswlib's own labels; compressed kinds: their row ids above
                fid = entry.field_ids[0]
                dim = (
                    manifest.schema.field(manifest.field_ids.index(fid)).type.list_size
                    if fid in manifest.field_ids
                    else 0
                )
                if dim and np.isin(hnsw_labels(readable(root, entry.path), dim, entry.params["metric"]), erased).any():
                    leaks.append(Leak(entry.path, f"index {entry.name}'s graph holds an erased row id"))
    unique = {(leak.path, leak.what, leak.offset) for leak in leaks}
    return Verification(
        files, scanned, patterns.searched, short + patterns.too_short, retained, checked,
        tuple(Leak(p, w, o) for p, w, o in sorted(unique)),
    )  # fmt: skip
