"""Shared by the property tests that compare a vector query's shortcut with the general path: the
random writes a table goes through, and the query shape under test."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import numpy as np
import pyarrow as pa

import hybrid

Rows: TypeAlias = Callable[[np.random.Generator, int, int], pa.Table]
"""``rows(rng, start, n)``: `n` new rows with ids from `start`."""


def apply_steps(t: hybrid.Table, steps: list[str], rng: np.random.Generator, rows: Rows) -> list[int]:
    """Apply `steps` (add, delete, update, compact, optimize, reindex) to `t`; the versions, first to last.
    Added rows come from ``rows(rng, start, n)``; they are rows the vector index does not hold yet."""
    versions = [t.version]
    for i, step in enumerate(steps):
        if step == "add":
            t.add(rows(rng, 1000 * (i + 1), int(rng.integers(1, 8))))
        elif step == "delete":
            t.delete(f"id % 5 = {i}")
        elif step == "update":
            t.update(f"id % 7 = {i}", {"price": 0.5})
        elif step == "compact":
            t.compact()
        elif step == "optimize":
            t.optimize()
        else:
            t.create_vector_index("vector", replace=True)
        versions.append(t.version)
    return versions


def shaped(
    q: hybrid.Query, limit: int, skip: int, depth: int | None, ef: int | None, columns: list[str] | None
) -> hybrid.Query:
    """`q` with the limit, offset and, where given, candidates, HNSW ef and selected columns."""
    q = q.limit(limit).offset(skip)
    q = q.candidates(depth) if depth is not None else q
    q = q.ef_search(ef) if ef is not None else q
    return q.select(columns) if columns is not None else q
