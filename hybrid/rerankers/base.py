"""The `Reranker` protocol: rescore a query's candidates, adding `_relevance_score`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pyarrow as pa

from hybrid.errors import HybridError

RELEVANCE = "_relevance_score"


@runtime_checkable
class Reranker(Protocol):
    """Takes the query text and the fused candidates (with their columns); returns them with
    a `_relevance_score` column (higher is better). Order and other columns are kept or
    reordered freely; rows must not be invented."""

    def rerank(self, query: str, candidates: pa.Table) -> pa.Table: ...


def check_reranked(before: pa.Table, after: pa.Table, reranker: object) -> pa.Table:
    """Validate a reranker's output contract; raise naming the reranker if it is broken."""
    name = type(reranker).__name__
    if not isinstance(after, pa.Table):
        raise HybridError(f"{name}.rerank must return a pyarrow Table, got {type(after).__name__}")
    if RELEVANCE not in after.column_names:
        raise HybridError(f"{name}.rerank must add a {RELEVANCE!r} column")
    if "_rowid" not in after.column_names or not set(after.column("_rowid").to_pylist()) <= set(
        before.column("_rowid").to_pylist()
    ):
        raise HybridError(f"{name}.rerank returned rows that were not among the candidates")
    return after
