"""Retrieval runs: a configuration executed query by query through the public search API."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hybrid.embedders.base import Embedder
from hybrid.eval.collection import Collection
from hybrid.eval.metrics import Run
from hybrid.query.fusion import Fusion
from hybrid.rerankers.base import Reranker

if TYPE_CHECKING:
    from hybrid.db import Database
    from hybrid.table import Table

Mode = Literal["fts", "vector", "hybrid"]
_embed_costs: dict[int, tuple[Embedder, dict[str, float]]] = {}
"""Per embedder, the measured time to embed each query text the first time (runs share the cache).

Keyed by identity, holding the embedder itself so that its id is never reused by another one
(embedders need not be hashable)."""


@dataclass(frozen=True)
class RunConfig:
    """One retrieval setup: which branches, fusion, candidate depth, reranker.

    `fts_index` names the full-text index (analyzer) to use, `vector_column`
    the embedding column (its bound embedder embeds the query).
    """

    name: str
    mode: Mode
    fts_index: str | None = None
    vector_column: str | None = None
    fusion: Fusion | None = None
    depth: int | None = None
    reranker: Reranker | None = None
    ef_search: int | None = None
    weights: str | Mapping[str, float] = "auto"
    """Branch weights: "auto" (the library default), "equal", or a mapping (see ``Query.weights``)."""
    group_by: str | None = None
    """Group the hits by this column (a chunk table's document id): the run lists the k best groups."""
    group_score: str = "max"
    """How a group is scored (``Query.group_by``'s `score`): "max", "sum", "max_mean" or "max_mean_len"."""
    group_fuse: str = "rows"
    """A grouped hybrid run fuses the branches' rows then groups ("rows") or their group lists ("groups")."""


@dataclass
class RunResult:
    """What a run returned and how long each query took."""

    config: RunConfig
    run: Run
    latency_ms: list[float] = field(default_factory=list)
    """Per query, embedding the query included."""
    embed_ms: list[float] = field(default_factory=list)
    """Per query, the part spent embedding the query (0 for full-text runs)."""

    def latency(self, include_embedding: bool = True) -> dict[str, float]:
        """p50 / p95 / p99 / mean latency in ms."""
        x = np.asarray(self.latency_ms) - (0 if include_embedding else np.asarray(self.embed_ms))
        if not len(x):
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0}
        p50, p95, p99 = np.percentile(x, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(x.mean())}


def build_table(
    db: Database,
    collection: Collection,
    *,
    embedders: Mapping[str, Embedder] | None = None,
    fts: Mapping[str, Mapping[str, Any]] | None = None,
    name: str | None = None,
    vector_index: bool = False,
) -> Table:
    """A table of the collection's documents with one bound vector column per embedder
    (``{"vec_minilm": SentenceTransformerEmbedder()}``) and one full-text index per
    analyzer setting (``{"bm25": {"stem": True}}``), all over the `content` column."""
    embedders = dict(embedders or {})
    first = dict(list(embedders.items())[:1])
    table = db.create_table(
        name or collection.name,
        collection.documents(),
        mode="overwrite",
        embedding={col: ("content", e) for col, e in first.items()},
    )
    for col, e in list(embedders.items())[1:]:
        table.add_columns({col: ("content", e)})
    for index_name, options in (fts or {"bm25": {}}).items():
        table.create_fts_index("content", name=index_name, replace=True, **options)
    if vector_index:
        for col in embedders:
            table.create_vector_index(col, replace=True)
    return table


def execute(
    table: Table,
    config: RunConfig,
    queries: Mapping[str, str],
    *,
    k: int = 100,
    progress: bool | None = None,
    ignore_identical_ids: bool = False,
    embed_costs: Mapping[str, float] | None = None,
) -> RunResult:
    """Run every query; scores in the run encode our rank order (k, k-1, ...), so ties never reorder.

    `embed_costs`: per query text, in ms, what embedding it cost where that was measured before the run
    (the questions embedded in batches, :mod:`hybrid.eval.query_vectors`); it stands as the
    embedding part of that query's latency, the search finding the vector in the embedder's cache.
    """
    from tqdm.auto import tqdm

    bound = table.embeddings
    column = config.vector_column or (next(iter(bound)) if len(bound) == 1 else None)
    embedder = bound[column][1] if config.mode != "fts" and column in bound else None
    costs = _embed_costs.setdefault(id(embedder), (embedder, {}))[1] if embedder is not None else {}
    if embedder is not None and embed_costs:
        costs.update(embed_costs)
    result = RunResult(config, {})
    for qid, text in tqdm(
        queries.items(), desc=config.name, unit="query", disable=None if progress is None else not progress
    ):
        start = time.perf_counter()
        if embedder is not None:
            embedder.embed_query(text)  # the search below finds it in the cache
        embed_ms = (time.perf_counter() - start) * 1e3
        if embedder is not None:  # a cache hit of an earlier run costs what the first embedding did
            embed_ms = costs.setdefault(text, embed_ms)
        searched = time.perf_counter()
        q = table.search(text, query_type=config.mode, vector_column=config.vector_column, fts_index=config.fts_index)
        if config.fusion is not None:
            q = q.fuse(config.fusion)
        if config.depth is not None:
            q = q.candidates(config.depth)
        if config.reranker is not None:
            q = q.rerank(config.reranker)
        if config.ef_search is not None:
            q = q.ef_search(config.ef_search)
        if config.mode == "hybrid":
            q = q.weights(config.weights)  # type: ignore[arg-type]
        if config.group_by is not None:
            q = q.group_by(config.group_by, score=config.group_score, fuse=config.group_fuse)  # type: ignore[arg-type]
        ids = q.limit(k + int(ignore_identical_ids)).select(["doc_id"]).to_arrow()["doc_id"].to_pylist()
        ids = list(dict.fromkeys(ids))  # chunks of one document: it counts once, at its best rank
        done = time.perf_counter()
        if ignore_identical_ids:
            ids = [d for d in ids if d != qid][:k]
        result.run[qid] = {d: float(len(ids) - rank) for rank, d in enumerate(ids)}
        result.latency_ms.append((done - searched) * 1e3 + embed_ms)
        result.embed_ms.append(embed_ms)
    return result
