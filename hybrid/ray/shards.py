"""Sharded search: a table split into row-id ranges, each shard's indexes held by a Ray actor.

A query goes to every shard at once; each answers its own top k per branch (vector distances
as they are, BM25 rescored with the statistics of all shards together, :mod:`hybrid.ray.global_bm25`),
the driver keeps the global top k of each branch, fuses them exactly as one table does
(the same fusion, the same "auto" branch weights) and reranks the fused rows. Filters run on
each shard, before its top k. So a sharded table returns the rows and scores of the unsharded
one: exactly for text and exact vector search, and for HNSW as closely as the graphs agree.

Shards are row-id ranges of equal row counts, not hashes: a range is a contiguous run of the
source's fragments (each shard reads only its own files, no shuffle) and rows appended later
have higher row ids, so they form new shards without moving old rows. Shards are a frozen copy
of one source version (``shards.json`` records it); build them again to follow the source.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import ray

from hybrid.embedders import binding
from hybrid.errors import HybridError, QueryError, SchemaError, VectorError
from hybrid.index.analyzer import Analyzer
from hybrid.index.cache import renamed_weights
from hybrid.index.fts_filters import filter_columns_of
from hybrid.index.fulltext import COMBINED_FIELD, field_names
from hybrid.index.language import is_foreign
from hybrid.query import confidence
from hybrid.query.executor import Branch, candidate_pool
from hybrid.query.fusion import Fusion, default_fusion, fusion_window
from hybrid.query.result_columns import with_result_columns
from hybrid.query.search import as_vector, is_vector_like, selected
from hybrid.ray import global_bm25 as g
from hybrid.ray.shard_server import SOURCE_ROWID, ShardServer, build_shard
from hybrid.rerankers.base import RELEVANCE, Reranker, check_reranked
from hybrid.storage.ingest import is_vector_type
from hybrid.table import Table

logger = logging.getLogger(__name__)

SHARDS_FILE = "shards.json"
MAX_CACHED_TERMS = 1_000_000
"""Global document counts kept per (index, field, term) before the cache starts again."""


def _index_specs(table: Table) -> list[dict[str, Any]]:
    """How to build each of the source's indexes again on a shard (same analysis and settings)."""
    view = table.indexed_snapshot()
    specs: list[dict[str, Any]] = []
    for e in view.entries():
        spec: dict[str, Any] = {"kind": e.kind, "name": e.name, "columns": list(e.columns)}
        if e.kind == "fts":
            spec.update(
                analyzer=e.params["analyzer"],
                weights=renamed_weights(e),
                k1=e.params.get("k1", 1.2),
                b=e.params.get("b", 0.75),
                filter_columns=list(filter_columns_of(e, view.snapshot)),
                positions=bool(e.params.get("positions", True)),
            )
        elif e.kind == "vector":
            spec.update({k: e.params[k] for k in ("metric", "m", "ef_construction", "ef_search")})
        else:
            spec["index_type"] = e.params["index_type"]
        specs.append(spec)
    return specs


def _calibration(table: Table) -> dict[str, float] | None:
    """The source table's "auto" fusion calibration (bound vector column + one text index), if it has one."""
    from hybrid.query import executor

    view = table.indexed_snapshot()
    bound = binding.read(view.snapshot.manifest.metadata)
    fts = [e for e in view.entries() if e.kind == "fts"]
    if len(bound) != 1 or len(fts) != 1:
        return None
    q = table.search("calibration", query_type="hybrid")
    branches = executor._plan(q, view)
    cal = executor._calibration(q, view, branches)
    return dict(cal.weights) if cal is not None else None


def shard(
    table: Table, num_shards: int, path: str | Path | None = None, *, replace_existing: bool = False
) -> ShardedTable:
    """Split `table` (its current version) into `num_shards` row-id ranges of equal size, each an
    indexed table under `path` (default: ``<table>.shards`` beside it), built by parallel Ray tasks;
    return the :class:`ShardedTable` serving them."""
    if not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"num_shards must be a whole number >= 1, got {num_shards!r}")
    dest = Path(path) if path is not None else table.path.parent / f"{table.name}.shards"
    if dest.exists():
        if not replace_existing:
            raise HybridError(f"{dest} exists; pass replace_existing=True to build the shards again")
        shutil.rmtree(dest)
    live = table.indexed_snapshot().live_ids()
    if len(live) < num_shards:
        raise HybridError(f"{table.name} has {len(live)} rows, too few for {num_shards} shards")
    version = table.version
    pieces = np.array_split(live, num_shards)
    end = int(table.snapshot().manifest.next_rowid)
    ranges = [(int(p[0]), int(pieces[i + 1][0]) if i + 1 < num_shards else end) for i, p in enumerate(pieces)]
    specs = _index_specs(table)
    dest.mkdir(parents=True)
    try:
        build = ray.remote(build_shard)
        roots = [str(dest / f"shard-{i:04d}") for i in range(num_shards)]
        counts = ray.get(
            [build.remote(str(table.path), version, lo, hi, root, specs) for (lo, hi), root in zip(ranges, roots)]
        )
        meta = {
            "source": table.name,
            "version": version,
            "ranges": ranges,
            "rows": counts,
            "specs": specs,
            "columns": list(table.schema.names),
            "vector_columns": {f.name: f.type.list_size for f in table.schema if is_vector_type(f.type)},
            "metadata": dict(table.snapshot().manifest.metadata),
            "calibration": _calibration(table),
        }
        (dest / SHARDS_FILE).write_text(json.dumps(meta, indent=1))
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return ShardedTable(dest)


class ShardedTable:
    """A table split into shards, each served by a Ray actor; search it like the table.

    Open shards built by :func:`shard` with ``ShardedTable(path)``; `actor_options` go to
    every actor (e.g. ``{"num_cpus": 1}`` or a node's resource). ``close()`` stops the actors.
    """

    def __init__(self, path: str | Path, actor_options: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        try:
            self.meta = json.loads((self.path / SHARDS_FILE).read_text())
        except FileNotFoundError:
            raise HybridError(f"{self.path} holds no shards (no {SHARDS_FILE}); build them with shard()") from None
        self.ranges = [tuple(r) for r in self.meta["ranges"]]
        server = ray.remote(ShardServer).options(**{"num_cpus": 0, **dict(actor_options or {})})
        roots = sorted(p for p in self.path.iterdir() if p.is_dir() and p.name.startswith("shard-"))
        self.actors: list[Any] = [server.remote(str(r)) for r in roots]
        ray.get([a.num_rows.remote() for a in self.actors])  # fail here, not at the first query
        self.bindings = binding.read(self.meta["metadata"])
        self.specs: list[dict[str, Any]] = self.meta["specs"]
        self._doc_freq: dict[tuple[str, str, str], int] = {}
        self._stats_base: dict[str, tuple[int, dict[str, int]]] = {}

    def __repr__(self) -> str:
        return f"ShardedTable({self.meta['source']!r}, version={self.meta['version']}, shards={len(self.actors)})"

    @property
    def num_shards(self) -> int:
        return len(self.actors)

    def count_rows(self, where: str | None = None) -> int:
        """Live rows of all shards (matching `where`)."""
        return int(sum(ray.get([a.count.remote(where) for a in self.actors])))

    def text_statistics(self, spec: Mapping[str, Any], text: str) -> g.GlobalStats:
        """The global BM25 statistics of `text`'s terms in full-text index `spec`. Shards never change,
        so a term's counts are asked of the shards once and kept: a query of known terms costs no round."""
        analyzer = Analyzer.from_dict(spec["analyzer"])
        terms = list(dict.fromkeys(analyzer.terms(text)))
        n = len(spec["columns"])
        fields = [COMBINED_FIELD] if spec["weights"] is not None and n > 1 else field_names(spec["columns"])
        keys = [(spec["name"], f, t) for f in fields for t in terms]
        base = self._stats_base.get(spec["name"])
        if base is None or any(k not in self._doc_freq for k in keys):
            found = g.GlobalStats.merge(ray.get([a.text_stats.remote(spec["name"], text, None) for a in self.actors]))
            if len(self._doc_freq) > MAX_CACHED_TERMS:
                self._doc_freq.clear()
            self._doc_freq.update({(spec["name"], f, t): c for (f, t), c in found.doc_freq.items()})
            base = self._stats_base[spec["name"]] = (found.num_docs, found.tokens)
        freq = {(f, t): self._doc_freq[(spec["name"], f, t)] for f in fields for t in terms}
        return g.GlobalStats(base[0], base[1], freq)

    def close(self) -> None:
        """Stop the shard actors."""
        for a in self.actors:
            ray.kill(a)
        self.actors = []

    def search(
        self,
        query: str | Sequence[float] | np.ndarray | None = None,
        *,
        query_type: Literal["auto", "vector", "fts", "hybrid"] = "auto",
        vector_column: str | None = None,
        fts_index: str | None = None,
    ) -> ShardedQuery:
        """Start a search, as :meth:`hybrid.Table.search` (plain text queries; see :class:`ShardedQuery`)."""
        q = ShardedQuery(self, query_type=query_type, vector_column=vector_column, fts_index=fts_index)
        if query is None:
            return q
        return q.vector(query) if is_vector_like(query) else q.text(str(query))  # type: ignore[arg-type]

    def take(self, rowids: np.ndarray, columns: Sequence[str]) -> pa.Table:
        """Rows by (source) row id, in the order given, `_rowid` first."""
        ids = np.asarray(rowids, dtype=np.uint64)
        los = np.array([lo for lo, _ in self.ranges], dtype=np.uint64)
        owner = np.searchsorted(los, ids, side="right") - 1
        parts, positions = [], []
        for s in np.unique(owner).tolist():
            at = np.flatnonzero(owner == s)
            parts.append(self.actors[s].take.remote(ids[at], list(columns)))
            positions.append(at)
        tables = ray.get(parts)
        if not tables:
            return pa.table({"_rowid": pa.array([], pa.uint64())})
        merged = pa.concat_tables(tables)
        order = np.argsort(np.concatenate(positions), kind="stable")
        merged = merged.take(pa.array(order))
        return merged.add_column(0, "_rowid", pa.array(ids, pa.uint64())).drop_columns(
            [c for c in (SOURCE_ROWID,) if c in merged.column_names]
        )


@dataclass(frozen=True, eq=False)
class ShardedQuery:
    """A search over a :class:`ShardedTable`; every method returns a new query, ``to_arrow()`` runs it.

    Supports what a fan-out can answer exactly: plain text (BM25 with global statistics), query
    vectors or text embedded by the table's bound embedder, ``where`` (pushed to every shard),
    ``limit``, ``select``, ``fuse``, ``weights``, ``candidates``, ``ef_search`` and ``rerank``.
    """

    sharded: ShardedTable
    query_type: Literal["auto", "vector", "fts", "hybrid"] = "auto"
    text_query: str | None = None
    vector_value: np.ndarray | None = None
    vector_column: str | None = None
    fts_index: str | None = None
    filter_sql: str | None = None
    columns: tuple[str, ...] | None = None
    k: int = 10
    depth: int | None = None
    fusion: Fusion = field(default_factory=default_fusion)
    branch_weights: Literal["auto", "equal"] | Mapping[str, float] = "auto"
    reranker: Reranker | None = None
    ef: int | None = None

    def text(self, text: str) -> ShardedQuery:
        return replace(self, text_query=text)

    def vector(self, v: Sequence[float] | np.ndarray, column: str | None = None) -> ShardedQuery:
        return replace(self, vector_value=as_vector(v), vector_column=column or self.vector_column)

    def where(self, sql: str) -> ShardedQuery:
        return replace(self, filter_sql=sql)

    def select(self, columns: Sequence[str]) -> ShardedQuery:
        return replace(self, columns=selected(columns))

    def limit(self, k: int) -> ShardedQuery:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"limit must be a positive whole number, got {k!r}")
        return replace(self, k=k)

    def candidates(self, n: int) -> ShardedQuery:
        return replace(self, depth=n)

    def fuse(self, fusion: Fusion) -> ShardedQuery:
        return replace(self, fusion=fusion)

    def weights(self, weights: Literal["auto", "equal"] | Mapping[str, float]) -> ShardedQuery:
        return replace(self, branch_weights=weights)

    def rerank(self, reranker: Reranker) -> ShardedQuery:
        return replace(self, reranker=reranker)

    def ef_search(self, ef: int) -> ShardedQuery:
        return replace(self, ef=ef)

    def to_list(self) -> list[dict[str, Any]]:
        return self.to_arrow().to_pylist()

    def to_arrow(self) -> pa.Table:
        return _execute(self)


# -- running a sharded query ------------------------------------------------------------------


def _vector_plan(q: ShardedQuery) -> tuple[str, np.ndarray] | None:
    """(column, query vector) of the vector branch, or None."""
    if q.query_type not in ("auto", "vector", "hybrid"):
        return None
    if q.vector_value is not None:
        cols = list(q.sharded.meta["vector_columns"])
        column = q.vector_column or (cols[0] if len(cols) == 1 else None)
        if column is None or column not in cols:
            raise SchemaError(f"choose the vector column with vector_column=; vector columns: {cols}")
        return column, q.vector_value
    if q.text_query is None or not q.sharded.bindings:
        return None
    bound = {b.column: b for b in q.sharded.bindings}
    if q.vector_column is not None and q.vector_column not in bound:
        raise SchemaError(f"column {q.vector_column!r} has no embedder bound; bound columns: {sorted(bound)}")
    if q.vector_column is None and len(bound) > 1:
        raise SchemaError(f"several vector columns have embedders ({sorted(bound)}); choose with vector_column=")
    target = bound[q.vector_column] if q.vector_column else next(iter(bound.values()))
    return target.column, target.embedder.embed_query(q.text_query)


def _fts_spec(q: ShardedQuery) -> dict[str, Any] | None:
    if q.text_query is None or q.query_type not in ("auto", "fts", "hybrid"):
        return None
    fts = [s for s in q.sharded.specs if s["kind"] == "fts" and (q.fts_index is None or s["name"] == q.fts_index)]
    if len(fts) > 1:
        raise HybridError(f"several full-text indexes ({[s['name'] for s in fts]}); choose with fts_index=")
    if not fts and q.query_type in ("fts", "hybrid"):
        raise HybridError("no full-text index: create one on the source table before sharding")
    return fts[0] if fts else None


def _depth(q: ShardedQuery, n_branches: int) -> int:
    """As one table: k, or max(50, 2k) when fusing or reranking, or the candidates asked for."""
    if q.depth is not None:
        return max(q.depth, q.k)
    return max(50, 2 * q.k) if (n_branches > 1 or q.reranker is not None) else q.k


def _merge(parts: list[tuple[np.ndarray, np.ndarray]], k: int, ascending: bool) -> tuple[np.ndarray, np.ndarray]:
    """The global top `k` of the shards' lists; ties go to the smaller row id, as on one table."""
    ids = np.concatenate([p[0] for p in parts]).astype(np.uint64) if parts else np.empty(0, np.uint64)
    vals = np.concatenate([p[1] for p in parts]).astype(np.float32) if parts else np.empty(0, np.float32)
    order = np.lexsort((ids, vals if ascending else -vals))[:k]
    return ids[order], vals[order]


def _execute(q: ShardedQuery) -> pa.Table:
    if q.query_type not in ("auto", "vector", "fts", "hybrid"):
        raise ValueError(f"query_type must be auto, vector, fts or hybrid, got {q.query_type!r}")
    actors: list[Any] = q.sharded.actors
    if not actors:
        raise HybridError("this sharded table is closed")
    vec = _vector_plan(q)
    fts = _fts_spec(q)
    if vec is None and fts is None:
        raise ValueError("empty query: pass text and/or a query vector")
    if q.query_type == "hybrid" and (vec is None or fts is None):
        raise ValueError("a hybrid query needs both a text query and a query vector (or a bound embedder)")
    n_branches = (vec is not None) + (fts is not None)
    depth = _depth(q, n_branches)
    pending_vec = None
    if vec is not None:  # in flight while the text branch gathers its statistics
        column, v = vec
        dim = q.sharded.meta["vector_columns"][column]
        if len(v) != dim:
            raise VectorError(f"query vector has dimension {len(v)}, column {column!r} holds {dim}")
        pending_vec = [a.vector_search.remote(column, v, depth, q.filter_sql, q.ef) for a in actors]
    branches: list[Branch] = []
    known: tuple[float | None, bool] = (None, False)
    pending_text = None
    if fts is not None:  # the global statistics (a round to the shards for terms not seen before), then
        assert q.text_query is not None  # each shard's exact global top k
        stats = q.sharded.text_statistics(fts, q.text_query)
        pending_text = [
            a.text_search.remote(fts["name"], q.text_query, None, depth, q.filter_sql, stats) for a in actors
        ]
        known = _known_share(q.text_query, fts, stats, _doc_share(q.sharded, fts))
    if vec is not None and pending_vec is not None:  # the order of one table's branches: vector, then text
        ids, d = _merge(ray.get(pending_vec), depth, ascending=True)
        branches.append(Branch("vector", vec[0], None, vector=vec[1], ids=ids, raw=d))
    if fts is not None and pending_text is not None:
        found = ray.get(pending_text)
        ids, s = _merge([(i, sc) for i, sc, _ in found], depth, ascending=False)
        branches.append(Branch("fts", fts["name"], None, ids=ids, raw=s))
        branches[-1].strategy = f"BM25 over {len(actors)} shards, global statistics"
    return _rows(q, branches, known)


def _doc_share(sharded: ShardedTable, spec: Mapping[str, Any]) -> Callable[[str], float | None]:
    """As :meth:`hybrid.index.fulltext.FullTextIndex.doc_share` over every shard: the share of all
    documents that hold a word (the most of its terms, any field); None when the analyzer drops it.
    The words asked about are the question's own, whose counts its statistics already fetched."""
    analyzer = Analyzer.from_dict(spec["analyzer"])

    def share(word: str) -> float | None:
        terms = set(analyzer.terms(word))
        if not terms:
            return None
        stats = sharded.text_statistics(spec, word)
        if not stats.num_docs:
            return None
        return max((n for (_, t), n in stats.doc_freq.items() if t in terms), default=0) / stats.num_docs

    return share


def _known_share(
    text: str, spec: Mapping[str, Any], stats: g.GlobalStats, doc_share: Callable[[str], float | None]
) -> tuple[float | None, bool]:
    """As one table: the share of the query's terms any document holds, when the query is in another
    language than the index (by the same rule, with all shards' document counts), and whether it is
    ((None, False) otherwise)."""
    analyzer = Analyzer.from_dict(spec["analyzer"])
    if not is_foreign(text, analyzer.language, doc_share):
        return None, False
    terms = set(analyzer.terms(text))
    if not terms:
        return None, True
    known = sum(any(n > 0 for (_, t), n in stats.doc_freq.items() if t == term) for term in terms)
    return known / len(terms), True


def _weights(q: ShardedQuery, branches: list[Branch], known: tuple[float | None, bool]) -> list[float]:
    if isinstance(q.branch_weights, Mapping):
        given = q.branch_weights
        return [float(given.get(b.column, given.get(b.kind, 1.0))) for b in branches]
    if q.branch_weights != "auto":
        return [1.0] * len(branches)
    cal = q.sharded.meta.get("calibration")
    steep = confidence.confidences([(b.raw, b.kind) for b in branches])
    out = []
    for b, s in zip(branches, steep):
        vocabulary = confidence.vocabulary(*known) if b.kind == "fts" else 1.0
        out.append((cal[b.kind] if cal else 1.0) * s * vocabulary)
    return out


def _rows(q: ShardedQuery, branches: list[Branch], known: tuple[float | None, bool]) -> pa.Table:
    if len(branches) == 1:
        fused_ids, fused = branches[0].ids, branches[0].ranked().scores.astype(np.float64)
    else:
        weights = _weights(q, branches, known)
        window = fusion_window(q.depth)
        fused_ids, fused = q.fusion.fuse([b.ranked(w, window) for b, w in zip(branches, weights)])
    schema_names = list(q.sharded.meta["columns"])
    columns = list(q.columns) if q.columns is not None else schema_names
    if q.reranker is None:
        pool, scores = fused_ids[: q.k], fused[: q.k]
        taken = q.sharded.take(pool, columns)
        return with_result_columns(taken, pool, scores, branches)
    if q.text_query is None:
        raise QueryError("rerank needs a text query")
    extra = [c for s in q.sharded.specs if s["kind"] == "fts" for c in s["columns"]]
    extra += [b.source for b in q.sharded.bindings]
    extra += [c for c in getattr(q.reranker, "columns", ()) if c in schema_names]
    text_cols = [c for c in dict.fromkeys(extra) if c not in columns]
    n = candidate_pool(q.depth, branches, q.k)  # the candidates one table's reranker sees
    fused_ids, fused = fused_ids[:n], fused[:n]
    rows = with_result_columns(q.sharded.take(fused_ids, columns + text_cols), fused_ids, fused, branches)
    reranked = check_reranked(rows, q.reranker.rerank(q.text_query, rows), q.reranker)
    reranked = reranked.sort_by([(RELEVANCE, "descending")])
    score = reranked.column(RELEVANCE).cast(pa.float64())
    reranked = reranked.append_column("_fused_score", reranked.column("_score"))  # the order before reranking
    rows = reranked.set_column(reranked.column_names.index("_score"), "_score", score)
    if q.columns is not None:
        rows = rows.drop_columns([c for c in text_cols if c in rows.column_names])
    return rows.slice(0, q.k)
