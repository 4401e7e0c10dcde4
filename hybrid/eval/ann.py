"""ANN quality: recall@k of a table's HNSW index against exact search, and its latency, across ef_search."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybrid.errors import HybridError
from hybrid.index.vector import distances, top_k

if TYPE_CHECKING:
    from hybrid.table import Table

DEFAULT_EF = (10, 20, 40, 80, 160, 320)


@dataclass(frozen=True)
class AnnPoint:
    """One point of the curve: ef_search, mean recall@k over the queries, per-query latency percentiles."""

    ef: int
    recall: float
    p50_ms: float
    p95_ms: float
    k: int = 10


def _vector_index(table: Table, column: str) -> dict[str, Any]:
    stats = table.index_stats()
    for entry in stats:
        if entry["kind"] == "vector" and entry["columns"] == [column]:
            return entry
    names = [f"{e['name']} ({e['kind']} on {e['columns']})" for e in stats]
    raise HybridError(
        f"column {column!r} of table {table.name!r} has no vector index (indexes: {names or 'none'}); "
        f"create one with table.create_vector_index({column!r})"
    )


def _light_column(schema: pa.Schema, column: str) -> str:
    """A cheap column to fetch with each hit (a query must select one): the first fixed-width scalar."""
    for f in schema:
        if f.name != column and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)):
            return f.name
    return column


def exact_top_k(table: Table, column: str, queries: np.ndarray, k: int, metric: str) -> list[set[int]]:
    """The row ids of each query's exact `k` nearest rows (hnswlib's distance definitions)."""
    data = table.to_arrow([column], with_rowid=True).filter(pc.is_valid(pc.field(column)))
    ids = data.column("_rowid").to_numpy()
    dim = data.schema.field(column).type.list_size
    matrix = data.column(column).combine_chunks().flatten().to_numpy().reshape(-1, dim).astype(np.float32)
    norms = np.linalg.norm(matrix, axis=1) if metric == "cosine" else None
    return [set(top_k(ids, distances(matrix, q, metric, norms), k)[0].tolist()) for q in queries]


def ann_curve(
    table: Table,
    column: str,
    queries: np.ndarray,
    *,
    k: int = 10,
    ef_values: Sequence[int] = DEFAULT_EF,
) -> list[AnnPoint]:
    """Recall@k of ``table.search(vector).ef_search(ef)`` against exact search, and its latency, per ef.

    `queries` is an (n, dim) array. Each query runs through the public search
    API and is timed alone (one untimed warm-up query loads the index first);
    recall@k = |ANN top-k ∩ exact top-k| / k, averaged over the queries (over
    fewer than k when the column holds fewer than k vectors).

    Example:
        >>> import hybrid, tempfile, numpy as np
        >>> rng = np.random.default_rng(0)
        >>> t = hybrid.connect(tempfile.mkdtemp()).create_table("v", [{"vector": v} for v in rng.random((200, 8))])
        >>> _ = t.create_vector_index("vector")
        >>> [p.recall for p in ann_curve(t, "vector", rng.random((5, 8)), k=5, ef_values=[200])]
        [1.0]
    """
    entry = _vector_index(table, column)
    q = np.asarray(queries, dtype=np.float32)
    dim = table.schema.field(column).type.list_size
    if q.ndim != 2 or q.shape[0] == 0 or q.shape[1] != dim:
        raise ValueError(f"queries must be a non-empty (n, {dim}) array for column {column!r}, got shape {q.shape}")
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    bad = [ef for ef in ef_values if not isinstance(ef, (int, np.integer)) or ef <= 0]
    if bad or not ef_values:
        raise ValueError(f"ef_values must be positive integers, got {list(ef_values)!r}")
    exact = exact_top_k(table, column, q, k, entry["metric"])
    select = [_light_column(table.schema, column)]

    def search(vec: np.ndarray, ef: int) -> list[int]:
        query = table.search(vec, query_type="vector", vector_column=column).ef_search(ef).limit(k).select(select)
        return query.to_arrow().column("_rowid").to_pylist()

    search(q[0], int(ef_values[0]))  # warm-up: loads the index and the files
    points = []
    for ef in ef_values:
        recalls, times = [], []
        for vec, truth in zip(q, exact):
            start = time.perf_counter()
            found = search(vec, int(ef))
            times.append((time.perf_counter() - start) * 1e3)
            recalls.append(len(truth.intersection(found)) / len(truth) if truth else 1.0)
        p50, p95 = np.percentile(times, [50, 95])
        points.append(AnnPoint(int(ef), float(np.mean(recalls)), float(p50), float(p95), k))
    return points
