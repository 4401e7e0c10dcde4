"""Index entries in the manifest, building indexes, and what each one covers.

An index is built from one table version into its own folder
(``indexes/<uuid>/``) and recorded in the manifest by a commit. Its contents
never change, and a row id's content never changes either, so one index
serves every later version: rows deleted or updated since are *dead* (skipped
at search time) and rows added since are *unindexed* (searched exactly or
from a small in-memory index). `optimize()` builds a fresh index of the
current version; `cleanup()` removes folders no kept version refers to.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from hybrid.errors import SchemaError
from hybrid.storage import npy
from hybrid.storage.files import INDEXES_DIR
from hybrid.storage.snapshot import Snapshot

IDS_FILE = "rowids.npy"
IndexKind = Literal["fts", "vector", "scalar"]


@dataclass(frozen=True)
class IndexEntry:
    """One index as recorded in a manifest."""

    name: str
    kind: IndexKind
    columns: tuple[str, ...]
    field_ids: tuple[int, ...]
    path: str
    built_version: int
    rows: int
    params: dict[str, Any] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    """Digest of every file in the folder (:mod:`hybrid.storage.checksums`), checked when the index is loaded."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["columns"], d["field_ids"] = list(self.columns), list(self.field_ids)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> IndexEntry:
        return IndexEntry(**{**d, "columns": tuple(d["columns"]), "field_ids": tuple(d["field_ids"])})


def entries(snap: Snapshot) -> list[IndexEntry]:
    """The indexes usable in this version (their columns still exist, under any name)."""
    out = []
    ids = snap.manifest.field_ids
    for d in snap.manifest.indexes:
        entry = IndexEntry.from_dict(d)
        if all(f in ids for f in entry.field_ids):
            names = tuple(snap.schema.names[ids.index(f)] for f in entry.field_ids)
            out.append(entry if names == entry.columns else IndexEntry(**{**asdict(entry), "columns": names}))
    return out


def new_index_folder(root: Path) -> tuple[str, Path]:
    rel = f"{INDEXES_DIR}/{uuid.uuid4().hex}"
    return rel, root / rel


def masks_of(snap: Snapshot, ids: np.ndarray) -> list[np.ndarray | None]:
    """Per fragment, a mask of the physical rows whose ids are in `ids` (live rows only)."""
    masks: list[np.ndarray | None] = [np.zeros(f.physical_rows, dtype=bool) for f in snap.manifest.fragments]
    if len(ids):
        frag_idx, offsets, live = snap.locate(ids)
        frag_idx, offsets = frag_idx[live], offsets[live]
        for fi in np.unique(frag_idx):
            mask = masks[int(fi)]
            assert mask is not None
            mask[offsets[frag_idx == fi]] = True
    return masks


def save_ids(folder: Path, ids: np.ndarray) -> None:
    np.save(folder / IDS_FILE, np.sort(ids.astype(np.uint64)))


def load_ids(folder: Path) -> np.ndarray:
    return npy.load(folder / IDS_FILE, mmap_mode="r")


TOMBSTONES_FILE = "tombstones.npy"
"""Row ids a merged index folder still holds physically though they are deleted (tantivy's deleted
documents, hnswlib's and usearch's marked nodes keep their terms and vectors until a rebuild)."""


def save_tombstones(folder: Path, ids: np.ndarray) -> None:
    """Record the deleted rows `folder` still holds (nothing is written when there are none)."""
    if len(ids):
        np.save(folder / TOMBSTONES_FILE, np.unique(ids.astype(np.uint64)))


def load_tombstones(folder: Path) -> np.ndarray:
    """The deleted rows an index folder still holds (:func:`save_tombstones`; none for a folder built
    from scratch)."""
    path = folder / TOMBSTONES_FILE
    return np.asarray(npy.load(path)) if path.exists() else np.empty(0, np.uint64)


def text_batches(
    snap: Snapshot,
    columns: list[str],
    masks: list[np.ndarray | None] | None = None,
) -> Iterator[tuple[np.ndarray, dict[str, list[str | None]]]]:
    """(row ids, {column: texts}) per fragment for the rows selected by `masks` (default: live)."""
    masks = snap.row_masks() if masks is None else masks
    for frag, mask in zip(snap.manifest.fragments, masks):
        if frag.live_rows == 0 or (mask is not None and not mask.any()):
            continue
        table = snap.read_fragment(frag, columns, with_rowid=True)
        if mask is not None:
            table = table.filter(pa.array(mask))
        for batch in table.to_batches(max_chunksize=8192):
            yield (batch.column(0).to_numpy(), {c: batch.column(c).to_pylist() for c in columns})


def check_text_columns(snap: Snapshot, columns: list[str]) -> None:
    snap.check_columns(columns)
    for c in columns:
        t = snap.schema.field(c).type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            raise SchemaError(f"full-text index needs string columns; {c!r} is {t}")


def vector_column(snap: Snapshot, column: str | None) -> str:
    """The named vector column, or the table's only one."""
    vectors = snap.vector_columns()
    if column is None:
        if len(vectors) != 1:
            raise SchemaError(f"the table has {len(vectors)} vector columns ({vectors}); name one with vector_column=")
        return vectors[0]
    snap.check_columns([column])
    if column not in vectors:
        raise SchemaError(f"column {column!r} is not a vector column (fixed_size_list<float32>)")
    return column


def selected_vectors(
    snap: Snapshot, column: str, masks: list[np.ndarray | None]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(row ids, vectors) of the rows selected by `masks` that have a vector, chunk by chunk.

    Each stored record batch is a zero-copy (rows x dim) float32 view; only the
    selected rows are gathered, so a selective mask reads little.
    """
    for frag, mask in zip(snap.manifest.fragments, masks):
        if frag.live_rows == 0 or (mask is not None and not mask.any()):
            continue
        col = snap.read_fragment(frag, [column]).column(0)
        dim = col.type.list_size
        rowids = snap.rowids(frag)
        start = 0
        for chunk in col.chunks:
            n = len(chunk)
            keep = None if mask is None else mask[start : start + n]
            if chunk.null_count:
                valid = ~chunk.is_null().to_numpy(zero_copy_only=False)
                keep = valid if keep is None else keep & valid
            if keep is None or keep.any():
                values = chunk.values.slice(chunk.offset * dim, n * dim)
                matrix = values.to_numpy(zero_copy_only=False).reshape(n, dim)
                ids = rowids[start : start + n]
                yield (ids, matrix) if keep is None else (ids[keep], matrix[keep])
            start += n
