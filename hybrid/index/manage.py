"""Creating, optimizing and inspecting a table's indexes (the `Table` methods delegate here).

The functions take a :class:`Writable` (the few parts of a table that building and
committing an index needs) and return the manifests they committed; the table facade
turns those into `Commit` records. Nothing here imports the facade.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.errors import HybridError, SchemaError
from hybrid.index import ann_build, sealed
from hybrid.index.analyzer import Analyzer
from hybrid.index.ann_kinds import DEFAULT_RESCORE, FLOAT_KIND, available_memory, check_kind, choose_kind
from hybrid.index.ann_kinds import installed as kind_installed
from hybrid.index.ann_kinds import require as require_kind
from hybrid.index.cache import SearchCache, renamed_weights
from hybrid.index.catalog import (
    IndexEntry,
    check_text_columns,
    entries,
    new_index_folder,
    save_ids,
    selected_vectors,
    text_batches,
    vector_column,
)
from hybrid.index.fts_filters import Kind, field_name, filter_columns_of, filter_kind
from hybrid.index.fulltext import FullTextIndex
from hybrid.index.language import SAMPLE_DOCS, LanguageGuess, detect_language
from hybrid.index.merge import merge, wants_rebuild
from hybrid.index.rescore import BATCH_ROWS
from hybrid.index.scalar import ScalarIndex, indexable_type, is_list
from hybrid.index.tail import average_lengths, average_pieces
from hybrid.index.tuning import holds_out, off_table, others, reaches_both, tuning_sample
from hybrid.index.vector import VectorIndex, check_metric, distances, top_k
from hybrid.index.view import IndexedSnapshot
from hybrid.storage import checksums
from hybrid.storage import transactions as tx
from hybrid.storage.files import FileCache
from hybrid.storage.manifest import Manifest
from hybrid.storage.snapshot import Snapshot
from hybrid.storage.versions import VersionLog

logger = logging.getLogger(__name__)
DEFAULT_NPROBE = 20
"""Lists an IVF index scans by default (LanceDB's default too)."""


def all_installed() -> bool:
    """Whether every compressed kind's package is installed (``kind="auto"`` may pick any of them)."""
    return kind_installed("hnsw_int8") and kind_installed("ivf_pq")


@dataclass(frozen=True)
class Writable:
    """What index upkeep needs of a table: its folder, version log, file and index caches,
    and the newest manifest to write on (which refuses read-only checkouts)."""

    name: str
    root: Path
    log: VersionLog
    files: FileCache
    cache: SearchCache
    write_base: Callable[[str], Manifest]
    current: Callable[[], Manifest]

    def view(self) -> IndexedSnapshot:
        """The version this table object reads, with its indexes."""
        return IndexedSnapshot(self.name, self.root, Snapshot(self.root, self.current(), self.files), self.cache)


def _commit_index(
    table: Writable, base: Manifest, entry: IndexEntry, replace_existing: bool, operation: str = "create_index"
) -> Manifest:
    sealed.seal(table.root / entry.path)  # encrypted at rest under an encrypted database
    entry = replace(entry, checksums=checksums.folder_digests(table.root / entry.path))

    def rebase(latest: Manifest) -> Manifest:
        if latest.lineage_epoch != base.lineage_epoch:
            raise tx.conflict(operation, base, latest, "overwrote or restored the table")
        if any(f not in latest.field_ids for f in entry.field_ids):
            raise tx.conflict(operation, base, latest, "dropped an indexed column")
        others = tuple(d for d in latest.indexes if d["name"] != entry.name)
        if len(others) != len(latest.indexes) and not replace_existing:
            raise tx.conflict(operation, base, latest, f"created an index named {entry.name!r}")
        return replace(latest, indexes=others + (entry.to_dict(),))

    return tx.commit(table.log, base, operation, rebase, {"index": entry.name, "rows": entry.rows})


def _check_name(snap: Snapshot, name: str, replace_existing: bool) -> None:
    if not replace_existing and any(e.name == name for e in entries(snap)):
        raise HybridError(f"index {name!r} already exists; pass replace=True to rebuild it")


def language_of(snap: Snapshot, columns: list[str]) -> LanguageGuess:
    """The detected language of the first `SAMPLE_DOCS` rows' text in `columns`."""
    texts: list[str | None] = []
    for ids, batch in text_batches(snap, columns):
        texts.extend(" ".join(str(batch[c][i]) for c in columns if batch[c][i]) for i in range(len(ids)))
        if len(texts) >= SAMPLE_DOCS:
            break
    return detect_language(texts[:SAMPLE_DOCS])


def create_fts_index(
    table: Writable,
    columns: list[str],
    analyzer: Analyzer | Callable[[str], Analyzer],
    name: str,
    replace_existing: bool,
    weights: dict[str, int] | None = None,
    bm25: tuple[float, float] = (1.2, 0.75),
    filter_columns: Sequence[str] | None = None,
    positions: bool = True,
) -> Manifest:
    """Build and commit a full-text index; `analyzer` may be a function of the language, which is
    then detected from a sample of the columns (``language="auto"``); `bm25` = (k1, b).
    `filter_columns` are stored beside the text for filters to run inside tantivy
    (:mod:`hybrid.index.fts_filters`); None: the columns that have a scalar index."""
    base = table.write_base("create_fts_index")
    snap = Snapshot(table.root, base, table.files)
    if not columns:
        raise SchemaError("create_fts_index needs at least one column")
    if not isinstance(positions, bool):
        raise TypeError(f"positions must be True or False, got {positions!r}")
    check_text_columns(snap, columns)
    _check_name(snap, name, replace_existing)
    if weights is not None:
        unknown = sorted(set(weights) - set(columns))
        if unknown:
            raise SchemaError(f"weights name columns that are not indexed: {unknown}; indexed: {columns}")
        bad = {c: w for c, w in weights.items() if not (isinstance(w, int) and 1 <= w <= 16)}
        if bad:
            raise ValueError(f"BM25F weights are whole numbers from 1 to 16 (repeats of the column's text), got {bad}")
        weights = {c: int(weights.get(c, 1)) for c in columns}
    detected: dict[str, Any] = {}
    if callable(analyzer):
        guess = language_of(snap, columns)
        analyzer, detected = analyzer(guess.language), guess.to_dict()
    filters = _filter_fields(snap, columns, filter_columns)
    rel, folder = new_index_folder(table.root)
    try:
        batches = text_batches(snap, [*columns, *[c for c in filters if c not in columns]])
        index = FullTextIndex.build(folder / "tantivy", columns, analyzer, batches, weights, filters, positions)
        save_ids(folder, table.cache.live_ids(snap))
        empty: dict[str, list[str | None]] = {c: [] for c in columns}
        sample = next(text_batches(snap, columns), (None, empty))[1]
        params: dict[str, Any] = {"analyzer": analyzer.to_dict(), "avg_len": average_lengths(index, sample)}
        if index.piece_fields:
            params["avg_pieces"] = average_pieces(index, sample)
        params["k1"], params["b"] = bm25
        params["positions"] = positions
        if weights is not None and len(columns) > 1:
            params["weights"] = {str(i): weights[c] for i, c in enumerate(columns)}  # by position: renames follow
        if detected:
            params["language_detection"] = detected
        if filters:
            params["filter_fields"] = {str(base.field_id(c)): kind for c, (_, kind) in filters.items()}
        entry = IndexEntry(
            name,
            "fts",
            tuple(columns),
            tuple(base.field_id(c) for c in columns),
            rel,
            base.version,
            index.num_docs,
            params,
        )
        return _commit_index(table, base, entry, replace_existing)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _filter_fields(
    snap: Snapshot, text_columns: Sequence[str], wanted: Sequence[str] | None
) -> dict[str, tuple[str, Kind]]:
    """column -> (tantivy field, kind) of the filter columns a full-text index stores."""
    if wanted is None:
        wanted = [e.columns[0] for e in entries(snap) if e.kind == "scalar"]
        wanted = [c for c in wanted if filter_kind(snap.schema.field(c).type) is not None]
    snap.check_columns(list(wanted))
    out: dict[str, tuple[str, Kind]] = {}
    for column in wanted:
        kind = filter_kind(snap.schema.field(column).type)
        if kind is None:
            raise SchemaError(
                f"filter column {column!r} is {snap.schema.field(column).type}; full-text filter columns are "
                "integers, booleans or strings"
            )
        out[column] = (field_name(snap.manifest.field_id(column)), kind)
    return out


def all_vectors(snap: Snapshot, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(row ids, vectors) of every live row with a non-null vector (a copy)."""
    ids, mats = [], []
    for chunk_ids, matrix in selected_vectors(snap, column, snap.row_masks()):
        ids.append(chunk_ids)
        mats.append(matrix)
    if not ids:
        dim = snap.schema.field(column).type.list_size
        return np.empty(0, np.uint64), np.empty((0, dim), np.float32)
    return np.concatenate(ids), np.concatenate(mats)


EF_LADDER = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def tune_ef(
    index: VectorIndex, ids: np.ndarray, vectors: np.ndarray, target: float, picks: np.ndarray, held_out: bool
) -> tuple[int, float]:
    """Smallest ef_search whose recall@k on a sample of the table's own vectors reaches `target`.

    "Reaches" means with confidence, not on average: the one-sided 95% lower
    bound of the sample's mean recall (mean - 1.645 standard errors over the
    sampled queries) must be at least `target`, so that queries the sample did
    not contain see the target too, for the sampled rows and for their off-table probes
    (:func:`hybrid.index.tuning.off_table`: queries are not rows). Returns the ef and the lower of the
    two mean recalls.
    Each sampled vector is left out of its own results (it is always found, at
    distance 0, which would overstate the recall that any other query sees).
    The sample `picks` is :func:`tuning_sample`'s. With `held_out`, `index` does not
    hold those rows yet and the truth is among the rows it holds (see
    :func:`_build_float`): a row that is a node of the graph is linked to its own
    neighbours, so the walk finds them more easily than a new query's.
    """
    k = 10
    queries, selves = vectors[picks], ids[picks].tolist()
    if held_out:
        in_graph = np.ones(len(ids), dtype=bool)
        in_graph[picks] = False
        ids, vectors = ids[in_graph], vectors[in_graph]
    norms = np.linalg.norm(vectors, axis=1)
    near = [top_k(ids, distances(vectors, q, index.metric, norms), k + 1)[0] for q in queries]
    position = {i: n for n, i in enumerate(ids.tolist())}
    nearest = [next((i for i in found.tolist() if i != s), s) for found, s in zip(near, selves)]
    probes = off_table(queries, vectors[[position[i] for i in nearest]], index.metric)
    near += [top_k(ids, distances(vectors, q, index.metric, norms), k + 1)[0] for q in probes]
    queries, selves = np.concatenate([queries, probes]), selves * 2
    truth = [others(found, s, k) for found, s in zip(near, selves)]
    rows = len(probes)
    recall = 0.0
    for ef in EF_LADDER:
        per_query = np.array([
            len(t & others(index.search(q, k + 1, ef=ef)[0], s, k)) / max(1, len(t))
            for q, s, t in zip(queries, selves, truth)
        ])  # fmt: skip
        passed, recall = reaches_both(per_query[:rows], per_query[rows:], target)
        if passed:
            return ef, recall
    return ef, recall


def create_vector_index(
    table: Writable,
    column: str | None,
    *,
    metric: str,
    m: int,
    ef_construction: int,
    ef_search: int | None,
    target_recall: float | None,
    name: str | None,
    replace_existing: bool,
    kind: str = "hnsw",
    rescore: float | None = None,
    nprobe: int | None = None,
    partitions: int | None = None,
    batch_rows: int = BATCH_ROWS,
    reads: float | None = None,
) -> Manifest:
    """Build and commit a vector index of one of :data:`hybrid.index.ann_kinds.KINDS` (or ``"auto"``);
    `reads` (a rebuild keeps its tuned value): candidates per hit read as floats, None: all of them."""
    base = table.write_base("create_vector_index")
    snap = Snapshot(table.root, base, table.files)
    column = vector_column(snap, column)
    check_metric(metric)
    check_kind(kind, metric)
    if m < 2 or ef_construction < 1:
        raise ValueError(f"m must be >= 2 and ef_construction >= 1, got m={m}, ef_construction={ef_construction}")
    if target_recall is not None and not 0 < target_recall <= 1:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    if (rescore is not None and rescore < 1) or (nprobe is not None and nprobe < 1) or batch_rows < 1:
        raise ValueError(f"rescore, nprobe and batch_rows must be >= 1, got {rescore}, {nprobe}, {batch_rows}")
    if partitions is not None and partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    auto: dict[str, Any] = {}
    if kind == "auto":
        rows = len(table.cache.live_ids(snap))
        dim = snap.schema.field(column).type.list_size
        choice = choose_kind(rows, dim, m, available_memory(), all_installed())
        kind, auto = choice.kind, choice.to_dict()
        logger.info("vector index on %s: kind='auto' picked %r (%s)", column, kind, choice.reason)
    require_kind(kind)
    name = name or f"vector:{column}"
    _check_name(snap, name, replace_existing)
    rel, folder = new_index_folder(table.root)
    try:
        if kind == FLOAT_KIND:
            params, rows = _build_float(folder, snap, column, metric, m, ef_construction, ef_search, target_recall)
        else:
            view = IndexedSnapshot(table.name, table.root, snap, table.cache)
            params = {"metric": metric, "rescore": float(rescore or DEFAULT_RESCORE[kind]), "batch_rows": batch_rows}
            if reads is not None:
                params["reads"] = float(reads)
            if kind == "hnsw_int8":
                params.update(m=m, ef_construction=ef_construction, ef_search=ef_search or 64)
            else:
                params.update(partitions=partitions, nprobe=nprobe or DEFAULT_NPROBE)
            if target_recall is None:
                rows = ann_build.build(kind, folder, view, column, metric, params, batch_rows).count
            else:
                rows = ann_build.build_tuned(
                    kind, folder, view, column, metric, params, batch_rows, target_recall
                ).count
        params = {"index_type": kind, **params, **({"auto": auto} if auto else {})}
        save_ids(folder, table.cache.live_ids(snap))  # rows without a vector are covered too
        entry = IndexEntry(name, "vector", (column,), (base.field_id(column),), rel, base.version, rows, params)
        return _commit_index(table, base, entry, replace_existing)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _build_float(
    folder: Path,
    snap: Snapshot,
    column: str,
    metric: str,
    m: int,
    ef_construction: int,
    ef_search: int | None,
    target_recall: float | None,
) -> tuple[dict[str, Any], int]:
    """Build the float hnswlib index; its params and row count."""
    ids, vectors = all_vectors(snap, column)
    ef = ef_search or 64
    picks = tuning_sample(len(ids)) if target_recall is not None else np.empty(0, np.int64)
    held_out = holds_out(len(ids), picks)
    graph = np.ones(len(ids), dtype=bool)
    if held_out:
        graph[picks] = False  # the tuning queries join the graph after the tuning: new to it, as real queries are
    index = VectorIndex.build(folder, ids[graph], vectors[graph], metric, m, ef_construction, ef)
    params: dict[str, Any] = {"metric": metric, "m": m, "ef_construction": ef_construction, "ef_search": ef}
    if target_recall is not None and len(picks):
        started = time.perf_counter()
        ef, recall = tune_ef(index, ids, vectors, target_recall, picks, held_out)
        params.update(ef_search=ef, target_recall=target_recall, measured_recall=round(recall, 4))
        params["tuning_seconds"] = round(time.perf_counter() - started, 1)
    if held_out:
        added = (ids[picks], vectors[picks])
        VectorIndex.merged(folder, folder, vectors.shape[1], metric, ef, added, np.empty(0, np.uint64))
    return params, len(ids)


def create_scalar_index(table: Writable, column: str, kind: str, name: str | None, replace_existing: bool) -> Manifest:
    """Build and commit a scalar index (bitmap, btree or label_list; "auto" chooses) of one column."""
    base = table.write_base("create_scalar_index")
    snap = Snapshot(table.root, base, table.files)
    snap.check_columns([column])
    column_type = snap.schema.field(column).type
    if not indexable_type(column_type):
        raise SchemaError(
            f"a scalar index needs a number, string or boolean column (or a list of them); {column!r} is {column_type}"
        )
    name = name or f"scalar:{column}"
    _check_name(snap, name, replace_existing)
    rel, folder = new_index_folder(table.root)
    try:
        rows = snap.to_arrow([column], with_rowid=True)
        ids = rows.column(0).to_numpy()
        index = ScalarIndex.build(ids, rows.column(1).combine_chunks(), kind)
        value_type = column_type.value_type if is_list(column_type) else column_type
        index.save(folder, value_type)
        save_ids(folder, ids)
        params = {"index_type": index.kind, "distinct_values": len(index.keys), "null_rows": len(index.nulls)}
        entry = IndexEntry(name, "scalar", (column,), (base.field_id(column),), rel, base.version, len(ids), params)
        return _commit_index(table, base, entry, replace_existing)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def optimize(table: Writable, rebuild: bool = False) -> list[Manifest]:
    """Fold rows added or deleted since each index was built into it, from the newest version.

    Full-text and vector indexes are merged (:mod:`hybrid.index.merge`): the new rows are
    inserted into a copy of the index and the deleted ones removed or marked. With `rebuild`
    they (and any index that was merged before) are built from scratch instead, as is a graph
    that would hold too many deleted nodes; scalar indexes (cheap to build) are always rebuilt.
    """
    view = table.view()
    commits = []
    for entry in view.entries():
        cov = view.coverage(entry)
        if len(cov.dead) or len(cov.unindexed) or (rebuild and entry.params.get("merges")):
            commits.append(optimize_index(table, entry, wants_rebuild(entry, cov) or rebuild))
    return commits


def optimize_index(table: Writable, entry: IndexEntry, rebuild: bool = False, threads: int = -1) -> Manifest:
    """Merge the newest version's changes into `entry` (or rebuild it: always for scalar indexes); a merge
    into an HNSW graph inserts with `threads` native threads (-1: one per core)."""
    if entry.kind != "scalar" and not rebuild:
        return _merge_index(table, entry, threads)
    if entry.kind == "fts":
        analyzer = Analyzer.from_dict(entry.params["analyzer"])  # the same analysis and weights as the build
        weights = renamed_weights(entry)
        bm25 = (float(entry.params.get("k1", 1.2)), float(entry.params.get("b", 0.75)))
        filters = list(filter_columns_of(entry, table.view().snapshot))
        positions = bool(entry.params.get("positions", True))  # indexes from before the option had them
        columns = list(entry.columns)
        return create_fts_index(table, columns, analyzer, entry.name, True, weights, bm25, filters, positions)
    if entry.kind == "scalar":
        kind = entry.params["index_type"]
        return create_scalar_index(table, entry.columns[0], kind, entry.name, replace_existing=True)
    p = entry.params
    return create_vector_index(
        table,
        entry.columns[0],
        metric=p["metric"],
        m=p.get("m", 16),
        ef_construction=p.get("ef_construction", 200),
        ef_search=p.get("ef_search"),
        target_recall=None,
        name=entry.name,
        replace_existing=True,
        kind=p.get("index_type", FLOAT_KIND),
        rescore=p.get("rescore"),
        nprobe=p.get("nprobe"),
        batch_rows=p.get("batch_rows", BATCH_ROWS),
        reads=p.get("reads"),
    )


def _merge_index(table: Writable, entry: IndexEntry, threads: int) -> Manifest:
    """Commit `entry`'s successor with the newest version's changes folded in."""
    base = table.write_base("optimize")
    view = IndexedSnapshot(table.name, table.root, Snapshot(table.root, base, table.files), table.cache)
    current = next((e for e in view.entries() if e.name == entry.name), None)
    if current is None:
        raise HybridError(f"index {entry.name!r} was dropped while optimizing")
    index = view.index(current)
    assert not isinstance(index, ScalarIndex)
    successor, folder, loaded = merge(table.root, view.snapshot, current, index, view.coverage(current), threads)
    try:
        committed = _commit_index(table, base, successor, replace_existing=True, operation="merge_index")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if loaded is not None:  # searches use the merged graph at once instead of loading its folder again
        table.cache.get(successor.path, table.cache.loaded, lambda: loaded, keep=64)
    return committed


def index_stats(table: Writable) -> list[dict[str, Any]]:
    """Per index: name, kind, columns, rows indexed / dead / unindexed, the version built from, params."""
    view = table.view()
    out = []
    for entry in view.entries():
        cov = view.coverage(entry)
        out.append({
            "name": entry.name, "kind": entry.kind, "columns": list(entry.columns),
            "indexed_rows": entry.rows, "live_indexed_rows": entry.rows - len(cov.dead),
            "dead_rows": len(cov.dead), "unindexed_rows": len(cov.unindexed),
            "built_version": entry.built_version, "table_version": view.version,
            **{k: v for k, v in entry.params.items() if k not in ("analyzer", "avg_len", "avg_pieces")},
            **({"analyzer": entry.params["analyzer"]} if "analyzer" in entry.params else {}),
            **index_bytes(view, entry),
        })  # fmt: skip
    return out


def index_bytes(view: IndexedSnapshot, entry: IndexEntry) -> dict[str, int]:
    """disk_bytes (the index folder), ram_bytes (read into memory when loaded) and mapped_bytes (memory-mapped
    from disk: in RAM only while the OS caches them). Compressed vector kinds also read the table's float
    vectors (memory-mapped) to rescore their candidates; those are the table's own bytes, not counted here."""
    folder = view.root / entry.path
    disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    if entry.kind == "fts":
        return {"disk_bytes": disk, "ram_bytes": 0, "mapped_bytes": disk}  # tantivy memory-maps its segments
    index = view.index(entry)
    if isinstance(index, (VectorIndex, ScalarIndex, FullTextIndex)):
        return {"disk_bytes": disk, "ram_bytes": disk, "mapped_bytes": 0}
    return {"disk_bytes": disk, **index.memory()}


def drop_index(table: Writable, name: str) -> Manifest:
    base = table.write_base("drop_index")
    if not any(d["name"] == name for d in base.indexes):
        raise HybridError(f"no index named {name!r}; indexes: {[d['name'] for d in base.indexes]}")

    def rebase(latest: Manifest) -> Manifest:
        return replace(latest, indexes=tuple(d for d in latest.indexes if d["name"] != name))

    return tx.commit(table.log, base, "drop_index", rebase, {"index": name})
