"""Prepared plans of plain vector queries: what a query's shape fixes in one table version, made once.

A plain vector query (one query vector; no text, filter, reranker, score functions, pins,
grouping, expansion, highlighting or examples) over a vector index that holds every live row and
no deleted one has one plan per (table version, vector column, selected columns, ef): the index
to search with its ef, and the reader of the selected columns of its hits. The plan is made at
the first such query of a version and kept in the table's search cache, keyed by the version: a
write, delete, update, compaction or index build makes a new version (so a new plan), a checkout
reads an older version (its own plan), and erasure purges the cache.

Each query (:func:`answer`, right after the query's one freshness check) then only searches the
graph and builds its table once: over a float HNSW at its own ef, from the hits as Python lists
packed straight into one buffer (:meth:`hybrid.index.vector.VectorIndex.nearest`,
:func:`hybrid.query.single.listed`: after a graph walk every numpy or Arrow call misses the CPU
caches, so the fewer the better), else from numpy (:func:`hybrid.query.single.table`). Either
way the rows, scores, ranks and schema are the general path's
(:func:`hybrid.query.executor._search`: plan, coverage, branch, lone-branch rows), without
re-deriving the plan. Anything else (a table with unindexed or deleted rows or title rows, a search that
cannot fill k, a wrong dimension) is left to the general path, which explains or raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from hybrid import budget
from hybrid.errors import HybridError
from hybrid.index.catalog import vector_column
from hybrid.index.rescore import Rescored, searcher
from hybrid.index.vector import VectorIndex
from hybrid.query import single, title_rows
from hybrid.storage.reader import RowReader

if TYPE_CHECKING:
    from hybrid.index.view import IndexedSnapshot
    from hybrid.query.search import Query

_KEEP = 32
"""Plans kept per table (one per version and query shape in use)."""
_PLANS = "vector_plans"
_ABSENT = object()


@dataclass(frozen=True, eq=False)
class VectorPlan:
    """What a plain vector query of one shape does in one table version."""

    dim: int
    index: VectorIndex | Rescored
    ef: int
    live: int
    """Live rows of the version, every one of them in the index."""
    reader: RowReader


def plain_vector(q: Query) -> tuple[str | None, np.ndarray] | None:
    """(the column asked for, the query vector) of a plain vector query, else None."""
    if (
        len(q.vectors) != 1
        or q.text_query is not None
        or q.filter_sql is not None
        or q.query_type not in ("vector", "auto")
        or q.reranker is not None
        or q.functions
        or q.pinned
        or q.grouping is not None
        or q.expansion is not None
        or q.highlighting is not None
        or q.examples is not None
    ):
        return None
    return q.vectors[0]


def plan_of(q: Query, view: IndexedSnapshot) -> VectorPlan | None:
    """The prepared plan of the plain vector query `q` in `view`'s version, or None (not plain, or no plan)."""
    given = plain_vector(q)
    if given is None:
        return None
    key = (view.snapshot.manifest.version, given[0], q.columns, q.ef)
    plans = view.cache.stores.get(_PLANS)  # a hit read without the cache's lock (one dict read is atomic)
    if plans is not None:
        found = plans.get(key, _ABSENT)
        if found is not _ABSENT:
            return found
    plan: VectorPlan | None = view.remember(_PLANS, key, lambda: _make(q, view, given[0]), _KEEP)
    return plan


def answer(q: Query, view: IndexedSnapshot) -> pa.Table | None:
    """The result of `q` in `view` by its prepared plan when `q` is a plain vector query that has one
    and the plan can answer it; else None (the general path answers, explains or raises)."""
    plan = plan_of(q, view)
    if plan is None:
        return None
    want = q.k + q.skip  # the general path's depth of a lone branch with no reranker or score functions
    return rows(q, plan, q.vectors[0][1], want if q.depth is None else max(q.depth, want))


def _make(q: Query, view: IndexedSnapshot, column: str | None) -> VectorPlan | None:
    snap = view.snapshot
    try:
        col = vector_column(snap, column)
        columns = q.columns if q.columns is not None else tuple(snap.schema.names)
        reader = RowReader(snap, columns)
    except HybridError:  # the general path raises it, with its context
        return None
    entry = next((e for e in view.entries() if e.kind == "vector" and e.columns == (col,)), None)
    if entry is None or title_rows.column(view) is not None:  # the general path leaves title rows out
        return None
    cov = view.coverage(entry)
    if len(cov.unindexed) or len(cov.dead):  # the general path merges the tail or skips the dead rows
        return None
    index = searcher(view, entry)
    return VectorPlan(snap.schema.field(col).type.list_size, index, q.ef or index.ef_search, cov.live, reader)


def rows(q: Query, plan: VectorPlan, vec: np.ndarray, depth: int) -> pa.Table | None:
    """The result rows of `q` by `plan` from the index's nearest `depth`, or None where the general
    path must answer: a vector of another dimension (it raises), a graph walk that could not fill
    the depth (it searches exactly), or equal distances among the nearest `depth` + 1 (it orders
    tied rows by row id, all of them fetched)."""
    if len(vec) != plan.dim:
        return None
    spent = budget.current()  # None without a time budget: no checks to make
    if spent is not None:
        spent.check("the vector branch")
    index = plan.index
    k = min(depth + 1, index.count)  # one more: a row tied with the last is for the general path
    if k > 0 and type(index) is VectorIndex and max(plan.ef, k) == max(index.ef_search, k):
        found = index.nearest(vec, k)  # the hits as Python lists: no numpy call after the walk
        if found is None or len(found[0]) < min(depth, plan.live) or len(set(found[1])) < len(found[1]):
            return None
        if spent is not None:
            spent.check("reading the result rows")
        end = q.skip + q.k
        return single.listed(plan.reader, "vector", found[0][q.skip : end], found[1][q.skip : end], q.skip + 1)
    ids, d = index.search(vec, k, ef=plan.ef)
    if len(ids) < min(depth, plan.live) or (len(d) > 1 and bool(np.any(d[1:] == d[:-1]))):
        return None
    budget.check("reading the result rows")
    end = q.skip + q.k
    ids, d = ids[q.skip : end], d[q.skip : end]
    return single.table(plan.reader, "vector", ids, d, single.rank_values(q.skip + 1, len(ids)))
