"""Rebuilding index folders without erased rows (the index half of :mod:`hybrid.storage.erase`).

Marking rows deleted is not erasure: tantivy keeps a deleted document's terms and
postings in its segment files until a merge, and hnswlib keeps a deleted node's
vector in its graph. So every index folder that holds an erased row id is rebuilt
from scratch into a new folder, from the rows it held minus the erased ones, with
the settings recorded in its entry. The rows' content comes from a union snapshot
(every physical row of every retained version); a row id the folder held that no
retained fragment has any more is dead in every version that uses the folder, so it
is left out too. The new entry keeps the name, kind, columns and built version, so
every version that used the old folder reads the new one the same way.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
import pyarrow as pa

from hybrid.index import ann_build
from hybrid.index.analyzer import Analyzer
from hybrid.index.ann_kinds import FLOAT_KIND
from hybrid.index.catalog import (
    IndexEntry,
    load_ids,
    load_tombstones,
    new_index_folder,
    save_ids,
    selected_vectors,
    text_batches,
)
from hybrid.index.fts_filters import filter_columns_of
from hybrid.index.fulltext import FullTextIndex
from hybrid.index.rescore import TRAIN_ROWS
from hybrid.index.scalar import ScalarIndex, is_list
from hybrid.index.sealed import readable, seal
from hybrid.index.tail import average_lengths, average_pieces
from hybrid.index.vector import _SPACE, INDEX_FILE, VectorIndex
from hybrid.storage import checksums
from hybrid.storage.erase import first_occurrence_masks
from hybrid.storage.snapshot import Snapshot


def holds_any(root: Path, entry: IndexEntry, erased: np.ndarray) -> bool:
    """Whether the index folder of `entry` holds one of the sorted row ids `erased`: among the rows it
    indexes, or among the deleted rows a merge left in it (:func:`hybrid.index.catalog.load_tombstones`)."""
    folder = readable(root, entry.path)
    ids = np.concatenate([np.asarray(load_ids(folder)), load_tombstones(folder)])
    return bool(len(erased)) and bool(np.isin(ids, erased).any())


def rebuild_without(root: Path, union: Snapshot, entry: IndexEntry, erased: np.ndarray) -> IndexEntry:
    """A new folder for `entry` holding its rows minus `erased` (and minus rows no fragment has); the new entry.

    `union` is a snapshot of every physical row of every retained version, with every field (by field id).
    """
    checksums.verify_folder(root, entry.path, entry.checksums)
    held = np.asarray(load_ids(readable(root, entry.path)))
    wanted = np.setdiff1d(held, erased)
    masks = first_occurrence_masks(union, wanted)
    present = _present(union, masks)
    names = [union.schema.names[union.manifest.field_ids.index(f)] for f in entry.field_ids]
    rel, folder = new_index_folder(root)
    try:
        params = dict(entry.params)
        if entry.kind == "fts":
            rows = _fts(folder, union, entry, names, masks, params)
        elif entry.kind == "vector":
            rows = _vector(folder, union, names[0], masks, params)
        else:
            rows = _scalar(folder, union, names[0], masks, params)
        params.pop("deleted_nodes", None)
        params.pop("merges", None)
        save_ids(folder, present)
        seal(folder)
        digests = checksums.folder_digests(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return replace(entry, path=rel, rows=rows, params=params, checksums=digests)


def _present(union: Snapshot, masks: Sequence[np.ndarray | None]) -> np.ndarray:
    parts = [union.rowids(f)[m] for f, m in zip(union.manifest.fragments, masks) if m is not None and m.any()]
    return np.sort(np.concatenate(parts)) if parts else np.empty(0, np.uint64)


def _fts(
    folder: Path,
    union: Snapshot,
    entry: IndexEntry,
    names: list[str],
    masks: list[np.ndarray | None],
    params: dict[str, Any],
) -> int:
    filters = filter_columns_of(entry, union)
    columns = names + [c for c in filters if c not in names]
    weights = params.get("weights")
    by_name = {names[int(i)]: int(w) for i, w in weights.items()} if weights else None
    analyzer = Analyzer.from_dict(params["analyzer"])
    positions = bool(params.get("positions", True))  # indexes from before the option had positions
    batches = text_batches(union, columns, masks)
    index = FullTextIndex.build(folder / "tantivy", names, analyzer, batches, by_name, filters, positions)
    empty: dict[str, list[str | None]] = {c: [] for c in names}
    sample = next(text_batches(union, names, masks), (None, empty))[1]
    lengths = average_lengths(index, sample)
    old_keys = list(params.get("avg_len", {}))
    params["avg_len"] = {old_keys[i] if i < len(old_keys) else c: lengths[c] for i, c in enumerate(names)}
    if index.piece_fields:
        pieces = average_pieces(index, sample)
        params["avg_pieces"] = {old_keys[i] if i < len(old_keys) else c: pieces[c] for i, c in enumerate(names)}
    return index.num_docs


def _vector(folder: Path, union: Snapshot, column: str, masks: list[np.ndarray | None], params: dict[str, Any]) -> int:
    parts = list(selected_vectors(union, column, masks))
    dim = union.schema.field(column).type.list_size
    ids = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.uint64)
    vectors = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, dim), np.float32)
    kind = params.get("index_type", FLOAT_KIND)
    if kind != FLOAT_KIND:  # the same compressed kind, trained on a sample of the rows kept
        pick = np.random.default_rng(0).permutation(len(ids))[:TRAIN_ROWS]
        ann_build.build_from(kind, folder, vectors[np.sort(pick)], iter([(ids, vectors)]), params["metric"], params)
        return len(ids)
    VectorIndex.build(
        folder, ids, vectors, params["metric"], params["m"], params["ef_construction"], params["ef_search"]
    )
    return len(ids)


def _scalar(folder: Path, union: Snapshot, column: str, masks: list[np.ndarray | None], params: dict[str, Any]) -> int:
    pieces = []
    for frag, mask in zip(union.manifest.fragments, masks):
        if mask is None or not mask.any():
            continue
        pieces.append(union.read_fragment(frag, [column], with_rowid=True).filter(pa.array(mask)))
    column_type = union.schema.field(column).type
    table = pa.concat_tables(pieces) if pieces else union.output_schema([column], True).empty_table()
    ids = table.column(0).to_numpy()
    index = ScalarIndex.build(ids, table.column(1).combine_chunks(), params.get("index_type", "auto"))
    params.update(distinct_values=len(index.keys), null_rows=len(index.nulls))
    index.save(folder, column_type.value_type if is_list(column_type) else column_type)
    return len(ids)


def stored_vector_forms(vectors: np.ndarray, metrics: Mapping[str, str]) -> Iterator[bytes]:
    """The bytes each vector is stored as: as given (data files, l2 / dot graphs) and as hnswlib's
    cosine space stores it (normalised by hnswlib's own code, so the bytes match exactly)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    for row in vectors:
        yield row.tobytes()
    if "cosine" in metrics.values() and len(vectors):
        hnsw = hnswlib.Index(space=_SPACE["cosine"], dim=int(vectors.shape[1]))
        hnsw.init_index(max_elements=len(vectors), ef_construction=10, M=4)
        hnsw.add_items(vectors, np.arange(len(vectors)), num_threads=1)
        for row in np.asarray(hnsw.get_items(np.arange(len(vectors)), return_type="numpy"), dtype=np.float32):
            yield row.tobytes()


def hnsw_labels(path: Path, dim: int, metric: str) -> np.ndarray:
    """Every label a saved hnswlib graph holds, deleted-marked ones included."""
    hnsw = hnswlib.Index(space=_SPACE[metric], dim=dim)
    hnsw.load_index(str(path / INDEX_FILE))
    return np.asarray(hnsw.get_ids_list(), dtype=np.uint64)
