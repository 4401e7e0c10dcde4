"""Folding a table's changes into an index without rebuilding it.

An index folder never changes once written, so a merge writes a successor: a copy
of the index (tantivy's segment files hard-linked, hnswlib's graph loaded and saved)
with the rows added since inserted and the rows deleted since removed (tantivy) or
marked deleted (hnswlib). The successor is a new index entry built at the new
version, committed like a rebuild, so time travel keeps every version's own index
and a crash leaves the old entry in place. Inserting the new rows into the existing
graph or segments costs a small share of inserting every row again.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from hybrid.index import ann_build
from hybrid.index.ann_kinds import FLOAT_KIND, CandidateIndex
from hybrid.index.catalog import (
    IndexEntry,
    load_ids,
    load_tombstones,
    masks_of,
    new_index_folder,
    save_ids,
    save_tombstones,
    selected_vectors,
    text_batches,
)
from hybrid.index.coverage import Coverage
from hybrid.index.fts_filters import filter_columns_of
from hybrid.index.fulltext import FullTextIndex
from hybrid.index.sealed import readable
from hybrid.index.vector import VectorIndex
from hybrid.storage.checksums import verify_folder
from hybrid.storage.snapshot import Snapshot

MAX_DELETED_SHARE = 0.2
"""A vector index whose graph would hold more than this share of deleted nodes is rebuilt instead:
deleted nodes still cost graph hops and crowd out live neighbours."""


def wants_rebuild(entry: IndexEntry, cov: Coverage) -> bool:
    """Whether merging `cov` into `entry` would leave too many deleted nodes in its graph."""
    if entry.kind != "vector":
        return False
    if entry.params.get("index_type", FLOAT_KIND) != FLOAT_KIND and entry.rows == 0:
        return True  # a compressed index built empty has nothing trained to add to
    deleted = int(entry.params.get("deleted_nodes", 0)) + len(cov.dead)
    nodes = entry.rows + int(entry.params.get("deleted_nodes", 0)) + len(cov.unindexed)
    return deleted > MAX_DELETED_SHARE * max(nodes, 1)


def merge(
    root: Path,
    snap: Snapshot,
    entry: IndexEntry,
    index: FullTextIndex | VectorIndex | CandidateIndex,
    cov: Coverage,
    threads: int = -1,
) -> tuple[IndexEntry, Path, VectorIndex | None]:
    """Write `entry`'s successor for version `snap` (its rows added and deleted since folded in).

    Returns the new entry, its folder (the caller commits it, or removes the folder on failure) and, for
    an HNSW index, the merged graph already in memory, equal to what loading the new folder would give
    (the caller may keep it rather than load the folder again). `threads`: native threads inserting
    into an HNSW graph (-1: one per core).
    """
    rel, folder = new_index_folder(root)
    verify_folder(root, entry.path, entry.checksums)  # never carry damage into a successor with fresh checksums
    source = readable(root, entry.path)
    indexed = np.asarray(load_ids(source))
    kept = indexed[~np.isin(indexed, cov.dead, assume_unique=True)] if len(cov.dead) else indexed
    masks = masks_of(snap, cov.unindexed)
    params = dict(entry.params)
    loaded = None
    if isinstance(index, VectorIndex):
        column = entry.columns[0]
        parts = list(selected_vectors(snap, column, masks))
        dim = snap.schema.field(column).type.list_size
        ids = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.uint64)
        vectors = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, dim), np.float32)
        add = (ids, vectors)
        loaded, marked = VectorIndex.merged(source, folder, dim, index.metric, index.ef_search, add, cov.dead, threads)
        params["deleted_nodes"] = int(params.get("deleted_nodes", 0)) + marked
        rows = entry.rows + len(ids) - marked
    elif not isinstance(index, FullTextIndex):  # a compressed vector index: add and remove in a copy
        kind = params["index_type"]
        batches = selected_vectors(snap, entry.columns[0], masks)
        new, removed = ann_build.merged(kind, root / entry.path, folder, index.metric, params, batches, cov.dead)
        if kind == "hnsw_int8":  # usearch tombstones removed nodes; faiss drops them from their lists
            params["deleted_nodes"] = int(params.get("deleted_nodes", 0)) + removed
        rows = new.count
    else:
        filters = filter_columns_of(entry, snap)
        columns = list(entry.columns) + [c for c in filters if c not in entry.columns]
        merged = index.merged(
            source / "tantivy", folder / "tantivy", text_batches(snap, columns, masks), cov.dead, filters
        )
        rows = merged.num_docs
    save_ids(folder, np.concatenate([kept, cov.unindexed]))
    # the rows deleted since stay in the copy (tantivy's deleted documents, marked graph nodes) until a
    # rebuild: recorded, so that an erasure finds them (faiss drops them from its lists; listed anyway)
    save_tombstones(folder, np.concatenate([load_tombstones(source), cov.dead]))
    params["merges"] = int(params.get("merges", 0)) + 1
    return replace(entry, path=rel, built_version=snap.manifest.version, rows=rows, params=params), folder, loaded
