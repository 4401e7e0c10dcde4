"""The shortest path of a plain vector query: freshness check, plan look-up, graph walk, one pack.

A plain vector query (one query vector, nothing else set but its limit, offset, candidates, ef and
selected columns) over a float HNSW index that holds every live row and no deleted one, selecting
only plain-number columns of a table stored as one fragment, needs per query only: the query's one
freshness check (:meth:`hybrid.Table.indexed_snapshot`), the walk, the values of the selected columns
at the hits, and a result table. :func:`answer` is called by the query builder's terminal call before
the executor: it looks up a :class:`FastPlan` made at the first such query of each (table version,
query shape) and kept in the table's search cache (a write, delete, compaction or index build makes
a new version, so a new plan; erasure purges the cache), and the plan walks the graph
(:meth:`hybrid.index.vector.VectorIndex.nearest`, the hits as Python lists), reads the hits' values
through memoryviews of the mapped columns (:attr:`hybrid.storage.reader.RowReader.cells`) and writes
them into a result table made ahead (:mod:`hybrid.query.table_pool`) with one ``pack_into``.

After a walk every numpy or Arrow call and every further Python layer misses the CPU caches the walk
filled, so this path has as few as it can. Its rows, scores, ranks and schema are those of the
prepared plan (:mod:`hybrid.query.prepared`) and so of the general path; anything else (a time
budget, a filter, a table with deleted, unindexed or title rows, strings or lists selected, fewer rows
than the limit, a vector of another dimension, a walk that cannot fill the limit, equal distances
among the nearest rows: the general path orders them by row id) returns None, and
the executor answers, explains or raises as before.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import pyarrow as pa

from hybrid import budget
from hybrid.index.vector import VectorIndex
from hybrid.query import prepared, single
from hybrid.query.limits import current_limits
from hybrid.query.table_pool import TablePool

if TYPE_CHECKING:
    import numpy as np

    from hybrid.index.view import IndexedSnapshot
    from hybrid.query.search import Query

_FIELDS = frozenset(
    {
        "table",
        "query_type",
        "vectors",
        "fts_columns",
        "boosts",
        "prefilter",
        "columns",
        "k",
        "skip",
        "depth",
        "fusion",
        "ef",
        "vector_column",
        "fts_index",
        "branch_weights",
    }
)
"""The query fields a plain vector query may have set (the others change what a vector query returns)."""
_KINDS = frozenset({"vector", "auto"})
_PLANS = "fast_vector_plans"
_KEEP = 32
"""Plans kept per table (one per version and query shape in use)."""
_ABSENT = object()


class FastPlan:
    """A plain vector query of one shape in one table version: the index, the depth of its walk, which
    of the hits are results, and the readers and result tables of their rows."""

    __slots__ = ("at", "cells", "dim", "fetch", "index", "k", "pack_into", "pool", "skip", "start", "tables", "walk")

    def __init__(
        self,
        index: VectorIndex,
        dim: int,
        walk: int,
        skip: int,
        k: int,
        cells: tuple[int, list[tuple[tuple[memoryview, ...], int, str]]],
        pool: TablePool,
    ) -> None:
        self.index = index
        self.dim = dim
        self.walk = walk
        """How many nearest rows the query needs (the general path's depth of a lone vector branch)."""
        self.fetch = min(walk + 1, index.count)
        """... and one more, to see whether the last one ties with the next (then the general path answers)."""
        self.skip = skip
        self.k = k
        self.start, self.cells = cells
        self.pool = pool
        self.at, self.pack_into, self.tables = pool.at, pool.pack_into, pool.tables

    def run(self, vec: np.ndarray) -> pa.Table | None:
        """The result rows for the query vector `vec`, or None where the general path must answer."""
        if len(vec) != self.dim:
            return None  # the general path raises
        found = self.index.nearest(vec, self.fetch)
        if found is None or len(found[0]) < self.walk:  # the general path then searches exactly
            return None
        ids, dist = found
        if len(set(dist)) < len(dist):  # equal distances: the general path orders them by row id
            return None
        skip = self.skip
        ids, dist = ids[skip : skip + self.k], dist[skip : skip + self.k]
        start = self.start
        offsets = [r - start for r in ids] if start else ids
        values: list[float] = list(ids)
        for chunks, stride, _ in self.cells:
            values += [chunks[o // stride][o % stride] for o in offsets]
        values += [-x for x in dist]  # _score: minus the distance (float32 to float64 is exact)
        values += dist
        try:
            table, buf = self.tables.pop()  # (atomic: each table is handed out once)
        except IndexError:
            table, buf = self.pool.take()  # which makes more
        self.pack_into(buf, self.at, *values)
        return table


def answer(q: Query) -> pa.Table | None:
    """The result of `q` by its fast plan when `q` is a plain vector query that has one in the table's
    current version and the plan can answer it; else None (the executor answers, explains or raises)."""
    return attempt(q)[0]


def attempt(q: Query) -> tuple[pa.Table | None, IndexedSnapshot | None]:
    """:func:`answer`, and the table version it read when it checked freshness (None when it declined
    before): the executor answers a declined query from that same version, with no second check."""
    fields = q.__dict__
    if not _FIELDS.issuperset(fields) or q.query_type not in _KINDS:
        return None, None
    vectors = fields.get("vectors")
    if vectors is None or len(vectors) != 1 or budget.current() is not None:
        return None, None  # under a time budget the executor checks it at each stage
    if current_limits().query_seconds is not None:
        return None, None
    view = q.table.indexed_snapshot()  # the one freshness check of the query
    column, vec = vectors[0]
    key = (view.version, column, q.columns, q.ef, q.k, q.skip, q.depth)
    plans = view.cache.stores.get(_PLANS)  # a hit read without the cache's lock (one dict read is atomic)
    plan: FastPlan | None = _ABSENT if plans is None else plans.get(key, _ABSENT)  # type: ignore[assignment]
    if plan is _ABSENT:
        plan = view.remember(_PLANS, key, lambda: make(q, view), _KEEP)
    return (None if plan is None else plan.run(vec)), view


def make(q: Query, view: IndexedSnapshot) -> FastPlan | None:
    """The fast plan of the plain vector query `q` in `view`'s version, or None where it has none."""
    base = prepared.plan_of(q, view)  # the index covers every live row and no dead one, no title rows
    if base is None or type(base.index) is not VectorIndex:
        return None
    index, reader, k, skip = base.index, base.reader, q.k, q.skip
    want = k + skip
    walk = want if q.depth is None else max(q.depth, want)
    if walk > index.count or want > base.live:
        return None  # fewer rows than the walk's depth or the limit: the general path clips them
    if max(base.ef, walk + 1) != max(index.ef_search, walk + 1):
        return None  # another ef than the index's own: searched with it by the general path
    cells = reader.cells
    layout = single.result_layout(reader.schema, "vector", k)
    if cells is None or layout is None:
        return None
    codes = ["Q", *(code for _, _, code in cells[1]), "d", "f", "i"]
    types = layout.schema.types
    if any(struct.calcsize(c) * 8 != t.bit_width for c, t in zip(codes, types, strict=True)):
        return None
    ranks = struct.pack(f"{k}i", *range(skip + 1, want + 1))
    pool = TablePool(layout, k, codes, [ranks])
    return FastPlan(index, base.dim, walk, skip, k, cells, pool)
