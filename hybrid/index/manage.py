"""Creating, optimizing and inspecting a table's indexes (the `Table` methods delegate here)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hybrid.errors import HybridError, SchemaError
from hybrid.index.analyzer import Analyzer
from hybrid.index.catalog import (
    IndexEntry,
    check_text_columns,
    entries,
    live_rowids,
    load_ids,
    new_index_folder,
    save_ids,
    selected_vectors,
    text_batches,
    vector_column,
)
from hybrid.index.fulltext import FullTextIndex
from hybrid.index.language import SAMPLE_DOCS, LanguageGuess, detect_language
from hybrid.index.tail_bm25 import average_lengths
from hybrid.index.vector import VectorIndex, check_metric, distances, top_k
from hybrid.storage import transactions as tx
from hybrid.storage.manifest import Manifest
from hybrid.storage.snapshot import Snapshot

if TYPE_CHECKING:
    from hybrid.table import Commit, Table


@dataclass
class Coverage:
    """How an index relates to one table version."""

    dead: np.ndarray  # indexed row ids that are not live in this version (sorted)
    unindexed: np.ndarray  # live row ids the index does not hold (sorted)
    live: int


@dataclass
class SearchCache:
    """Per-`Table` cache of loaded indexes and per-version coverage (indexes never change)."""

    loaded: dict[str, Any] = field(default_factory=dict)
    coverage: dict[tuple[str, int], Coverage] = field(default_factory=dict)
    live: dict[int, np.ndarray] = field(default_factory=dict)
    tails: dict[tuple[str, int], FullTextIndex] = field(default_factory=dict)
    filters: dict[tuple[int, str], Any] = field(default_factory=dict)
    calibrations: dict[tuple[str, ...], Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    making: dict[tuple[int, Any], threading.Lock] = field(default_factory=dict)

    def get(self, key: Any, store: dict[Any, Any], make: Callable[[], Any], keep: int = 8) -> Any:
        """`store[key]`, made by `make()` on a miss. Concurrent misses of one key make it once:
        the others wait for that result (64 clients missing a calibration at once each ran it)."""
        with self.lock:
            if key in store:
                return store[key]
            gate = self.making.setdefault((id(store), key), threading.Lock())
        with gate:
            with self.lock:
                if key in store:
                    return store[key]
            try:
                value = make()
                with self.lock:
                    if len(store) >= keep and key not in store:
                        store.pop(next(iter(store)))
                    store[key] = value
            finally:
                with self.lock:
                    self.making.pop((id(store), key), None)
        return value

    def live_ids(self, snap: Snapshot) -> np.ndarray:
        return self.get(snap.manifest.version, self.live, lambda: live_rowids(snap))

    def coverage_of(self, root: Path, snap: Snapshot, entry: IndexEntry) -> Coverage:
        def make() -> Coverage:
            live = self.live_ids(snap)
            indexed = np.asarray(load_ids(root / entry.path))
            return Coverage(
                dead=np.setdiff1d(indexed, live, assume_unique=True),
                unindexed=np.setdiff1d(live, indexed, assume_unique=True),
                live=len(live),
            )

        return self.get((entry.path, snap.manifest.version), self.coverage, make)

    def index(self, root: Path, snap: Snapshot, entry: IndexEntry) -> FullTextIndex | VectorIndex:
        def make() -> FullTextIndex | VectorIndex:
            folder = root / entry.path
            if entry.kind == "fts":
                return FullTextIndex.open(
                    folder / "tantivy",
                    entry.columns,
                    Analyzer.from_dict(entry.params["analyzer"]),
                    _renamed_weights(entry),
                )
            dim = snap.schema.field(entry.columns[0]).type.list_size
            return VectorIndex.open(folder, dim, entry.params["metric"], entry.params["ef_search"])

        return self.get(entry.path, self.loaded, make, keep=32)


def _commit_index(table: Table, base: Manifest, entry: IndexEntry, replace_existing: bool) -> Commit:
    from hybrid.table import Commit

    def rebase(latest: Manifest) -> Manifest:
        if latest.lineage_epoch != base.lineage_epoch:
            raise tx.conflict("create_index", base, latest, "overwrote or restored the table")
        if any(f not in latest.field_ids for f in entry.field_ids):
            raise tx.conflict("create_index", base, latest, "dropped an indexed column")
        others = tuple(d for d in latest.indexes if d["name"] != entry.name)
        if len(others) != len(latest.indexes) and not replace_existing:
            raise tx.conflict("create_index", base, latest, f"created an index named {entry.name!r}")
        return replace(latest, indexes=others + (entry.to_dict(),))

    new = tx.commit(table._log, base, "create_index", rebase, {"index": entry.name, "rows": entry.rows})
    return Commit(new.version, "create_index")


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


def _renamed_weights(entry: IndexEntry) -> dict[str, int] | None:
    """The BM25F column weights of an index entry, keyed by the columns' current names."""
    stored = entry.params.get("weights")
    if stored is None:
        return None
    return {current: int(stored[str(i)]) for i, current in enumerate(entry.columns)}


def create_fts_index(
    table: Table,
    columns: list[str],
    analyzer: Analyzer | Callable[[str], Analyzer],
    name: str,
    replace_existing: bool,
    weights: dict[str, int] | None = None,
    bm25: tuple[float, float] = (1.2, 0.75),
) -> Commit:
    """Build and commit a full-text index; `analyzer` may be a function of the language, which is
    then detected from a sample of the columns (``language="auto"``); `bm25` = (k1, b)."""
    base = table._write_base("create_fts_index")
    snap = Snapshot(table.path, base, table._cache)
    if not columns:
        raise SchemaError("create_fts_index needs at least one column")
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
    rel, folder = new_index_folder(table.path)
    try:
        index = FullTextIndex.build(folder / "tantivy", columns, analyzer, text_batches(snap, columns), weights)
        save_ids(folder, table._search.live_ids(snap))
        empty: dict[str, list[str | None]] = {c: [] for c in columns}
        sample = next(text_batches(snap, columns), (None, empty))[1]
        params: dict[str, Any] = {"analyzer": analyzer.to_dict(), "avg_len": average_lengths(index, sample)}
        params["k1"], params["b"] = bm25
        if weights is not None and len(columns) > 1:
            params["weights"] = {str(i): weights[c] for i, c in enumerate(columns)}  # by position: renames follow
        if detected:
            params["language_detection"] = detected
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
CONFIDENCE_Z = 1.645  # one-sided 95% normal bound on the mean recall of the tuning sample


def tune_ef(
    index: VectorIndex, ids: np.ndarray, vectors: np.ndarray, target: float, k: int = 10, sample: int = 200
) -> tuple[int, float]:
    """Smallest ef_search whose recall@k on a sample of the table's own vectors reaches `target`.

    "Reaches" means with confidence, not on average: the one-sided 95% lower
    bound of the sample's mean recall (mean - 1.645 standard errors over the
    sampled queries) must be at least `target`, so that queries the sample did
    not contain see the target too. Returns the ef and the sample's mean recall.
    Each sampled vector is left out of its own results (it is always found, at
    distance 0, which would overstate the recall that any other query sees).
    """
    rng = np.random.default_rng(0)
    picks = rng.choice(len(vectors), size=min(sample, len(vectors)), replace=False)
    queries, selves = vectors[picks], ids[picks].tolist()
    norms = np.linalg.norm(vectors, axis=1)

    def others(found: np.ndarray, self_id: int) -> set[int]:
        return set([i for i in found.tolist() if i != self_id][:k])

    truth = [
        others(top_k(ids, distances(vectors, q, index.metric, norms), k + 1)[0], s) for q, s in zip(queries, selves)
    ]
    recall = 0.0
    for ef in EF_LADDER:
        per_query = np.array(
            [
                len(t & others(index.search(q, k + 1, ef=ef)[0], s)) / max(1, len(t))
                for q, s, t in zip(queries, selves, truth)
            ]
        )
        recall = float(per_query.mean())
        margin = CONFIDENCE_Z * float(per_query.std(ddof=1)) / np.sqrt(len(per_query)) if len(per_query) > 1 else 0.0
        if recall - margin >= target:
            return ef, recall
    return ef, recall


def create_vector_index(
    table: Table,
    column: str | None,
    *,
    metric: str,
    m: int,
    ef_construction: int,
    ef_search: int | None,
    target_recall: float | None,
    name: str | None,
    replace_existing: bool,
) -> Commit:
    base = table._write_base("create_vector_index")
    snap = Snapshot(table.path, base, table._cache)
    column = vector_column(snap, column)
    check_metric(metric)
    if m < 2 or ef_construction < 1:
        raise ValueError(f"m must be >= 2 and ef_construction >= 1, got m={m}, ef_construction={ef_construction}")
    if target_recall is not None and not 0 < target_recall <= 1:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    name = name or f"vector:{column}"
    _check_name(snap, name, replace_existing)
    rel, folder = new_index_folder(table.path)
    try:
        ids, vectors = all_vectors(snap, column)
        ef = ef_search or 64
        index = VectorIndex.build(folder, ids, vectors, metric, m, ef_construction, ef)
        params: dict[str, Any] = {"metric": metric, "m": m, "ef_construction": ef_construction, "ef_search": ef}
        if target_recall is not None and len(ids):
            ef, recall = tune_ef(index, ids, vectors, target_recall)
            params.update(ef_search=ef, target_recall=target_recall, measured_recall=round(recall, 4))
        save_ids(folder, table._search.live_ids(snap))  # rows without a vector are covered too
        entry = IndexEntry(name, "vector", (column,), (base.field_id(column),), rel, base.version, len(ids), params)
        return _commit_index(table, base, entry, replace_existing)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def optimize(table: Table) -> list[Commit]:
    """Rebuild every index that has dead or unindexed rows, from the newest version."""
    snap = table.snapshot()
    commits = []
    for entry in entries(snap):
        cov = table._search.coverage_of(table.path, snap, entry)
        if len(cov.dead) == 0 and len(cov.unindexed) == 0:
            continue
        if entry.kind == "fts":
            analyzer = Analyzer.from_dict(entry.params["analyzer"])  # the same analysis and weights as the build
            weights = _renamed_weights(entry)
            commits.append(create_fts_index(table, list(entry.columns), analyzer, entry.name, True, weights))
        else:
            p = entry.params
            commits.append(
                create_vector_index(
                    table,
                    entry.columns[0],
                    metric=p["metric"],
                    m=p["m"],
                    ef_construction=p["ef_construction"],
                    ef_search=p["ef_search"],
                    target_recall=None,
                    name=entry.name,
                    replace_existing=True,
                )
            )
    return commits


def index_stats(table: Table) -> list[dict[str, Any]]:
    """Per index: name, kind, columns, rows indexed / dead / unindexed, the version built from, params."""
    snap = table.snapshot()
    out = []
    for entry in entries(snap):
        cov = table._search.coverage_of(table.path, snap, entry)
        out.append({
            "name": entry.name, "kind": entry.kind, "columns": list(entry.columns),
            "indexed_rows": entry.rows, "live_indexed_rows": entry.rows - len(cov.dead),
            "dead_rows": len(cov.dead), "unindexed_rows": len(cov.unindexed),
            "built_version": entry.built_version, "table_version": snap.manifest.version,
            **{k: v for k, v in entry.params.items() if k not in ("analyzer", "avg_len")},
            **({"analyzer": entry.params["analyzer"]} if "analyzer" in entry.params else {}),
        })  # fmt: skip
    return out


def drop_index(table: Table, name: str) -> Commit:
    from hybrid.table import Commit

    base = table._write_base("drop_index")
    if not any(d["name"] == name for d in base.indexes):
        raise HybridError(f"no index named {name!r}; indexes: {[d['name'] for d in base.indexes]}")

    def rebase(latest: Manifest) -> Manifest:
        return replace(latest, indexes=tuple(d for d in latest.indexes if d["name"] != name))

    new = tx.commit(table._log, base, "drop_index", rebase, {"index": name})
    return Commit(new.version, "drop_index")
