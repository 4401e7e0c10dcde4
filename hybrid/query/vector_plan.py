"""How a filtered vector branch searches: exactly over the allowed rows, or HNSW then keep the allowed.

Both ways cost time in proportion to the vectors they touch:

* **exact** reads every allowed vector once (a gather, then one BLAS product):
  ``EXACT_COST x allowed``;
* **HNSW, over-fetched** walks the graph for the ``fetch`` nearest rows of the
  whole table and keeps the allowed ones. If the allowed rows are spread like the
  rest, ``k`` of them sit among the nearest ``k x live / allowed``; ``fetch`` adds
  a margin of three standard deviations (:mod:`hybrid.index.overfetch`), and a
  search that still finds fewer is repeated with four times the depth, then,
  past ``MAX_FETCH``, walks the graph with the filter itself. Its cost is ``HNSW_COST x max(ef, fetch)``
  (hnswlib visits a few times ef nodes per search).

The branch picks the cheaper. Both constants are in the same unit (the time to
compare one stored vector with the query); their ratio is what matters and was
measured on this machine with ``python eval/filter_crossover.py`` (see
``eval/results/filter_crossover.md``): the crossover lies where
``allowed x allowed = HNSW_COST / EXACT_COST x (k + 3 sqrt(k)) x live``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hybrid.index.overfetch import overfetch_depth

EXACT_COST = 1.0
"""Relative cost of one allowed row in exact search (gather + distance)."""
HNSW_COST = 10.0
"""Relative cost of one unit of HNSW search depth (max(ef, fetch)) (measured)."""
MAX_FETCH = 4_096
"""Deepest over-fetch before walking the graph with the filter instead."""


@dataclass(frozen=True)
class VectorPlan:
    """`exact`, or HNSW with `fetch` nearest rows then keep the allowed ones."""

    exact: bool
    fetch: int
    exact_cost: float
    hnsw_cost: float


def plan_filtered(allowed: int, live: int, k: int, ef: int) -> VectorPlan:
    """The cheaper way to find the `k` nearest of `allowed` rows among `live` indexed rows."""
    fetch = expected_fetch(allowed, live, k)
    exact_cost = EXACT_COST * allowed
    hnsw_cost = HNSW_COST * max(ef, fetch) if fetch <= MAX_FETCH else math.inf
    return VectorPlan(exact_cost <= hnsw_cost, fetch, exact_cost, hnsw_cost)


def expected_fetch(allowed: int, live: int, k: int) -> int:
    """How many of the nearest rows to fetch for `k` allowed ones, with the margin."""
    return overfetch_depth(allowed, k, live)
