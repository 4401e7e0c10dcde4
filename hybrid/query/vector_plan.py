"""How a filtered vector branch searches: exactly over the allowed rows, or HNSW then keep the allowed.

Both ways cost time in proportion to the vectors they touch:

* **exact** reads every allowed vector once (a gather, then one BLAS product):
  ``EXACT_COST x allowed``;
* **HNSW, over-fetched** walks the graph for the ``fetch`` nearest rows of the
  whole table and keeps the allowed ones. If the allowed rows are spread like the
  rest, ``k`` of them sit among the nearest ``k x live / allowed``; ``fetch`` adds
  a margin of three standard deviations (:mod:`hybrid.index.overfetch`), and a
  search that still finds fewer is repeated with four times the depth, then,
  past ``MAX_FETCH``, walks the graph with the filter itself. Its cost is ``HNSW_COST x depth``
  (hnswlib visits a few times ef nodes per search).

**How deep the walk goes.** Over-fetching only works if the walk really finds the nearest ``fetch``
rows of the whole table, and an HNSW walk of depth ``ef`` finds the rows near the end of its list
less surely the larger the graph (its greedy path grows with log N and so do its misses). At
100,000 rows a walk of ``max(ef, fetch)`` found every allowed top-10 row at 10% and 50%
(``eval/results/filtered_recall_100k.md``); at 1,000,000 it found 93.8% at 10% and 92.8% at 50%
with ef 128 (``eval/results/filtered_recall_1m.md``). So the depth grows by ``DEPTH_PER_DECADE``
of itself for each tenfold of indexed rows past ``REFERENCE_ROWS``::

    depth = max(ef, fetch) x (1 + DEPTH_PER_DECADE x max(0, log10(live / REFERENCE_ROWS)))

and the walk returns its whole list of ``depth`` rows, from which the allowed are kept. At 1,000,000
rows, 1.0 (twice the depth) lifts recall@10 to 0.970 at 10% and 0.962 at 50% (ef 128); 2.0 (three
times) gives 0.970 and 0.972: past twice the depth the graph itself is the limit (M=16 misses some
true neighbours at any depth), not the walk.

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
REFERENCE_ROWS = 100_000
"""Table size at which a walk of max(ef, fetch) held every allowed top-10 row (measured at 10% and 50%)."""
DEPTH_PER_DECADE = 1.0
"""How much deeper (a share of max(ef, fetch)) the walk goes per tenfold rows past REFERENCE_ROWS: the knee
of recall vs depth at 1,000,000 rows (0.5: 0.959, 1.0: 0.970, 2.0: 0.970 at 10%)."""


@dataclass(frozen=True)
class VectorPlan:
    """`exact`, or HNSW returning its `fetch` nearest rows (the walk's depth) then keep the allowed ones."""

    exact: bool
    fetch: int
    exact_cost: float
    hnsw_cost: float


def plan_filtered(allowed: int, live: int, k: int, ef: int) -> VectorPlan:
    """The cheaper way to find the `k` nearest of `allowed` rows among `live` indexed rows.

    >>> plan_filtered(10_000, 100_000, 10, 64).fetch, plan_filtered(100_000, 1_000_000, 10, 64).fetch
    (195, 390)
    """
    fetch = expected_fetch(allowed, live, k)
    depth = walk_depth(fetch, ef, live)
    exact_cost = EXACT_COST * allowed
    hnsw_cost = HNSW_COST * depth if depth <= MAX_FETCH else math.inf
    return VectorPlan(exact_cost <= hnsw_cost, depth, exact_cost, hnsw_cost)


def walk_depth(fetch: int, ef: int, live: int) -> int:
    """How many nearest rows the HNSW walk must return for the nearest `fetch` of `live` rows to be
    found as surely as at REFERENCE_ROWS rows: ``max(ef, fetch)``, deeper by DEPTH_PER_DECADE of itself
    per tenfold rows past REFERENCE_ROWS."""
    decades = max(0.0, math.log10(max(live, 1) / REFERENCE_ROWS))
    return math.ceil(max(ef, fetch) * (1.0 + DEPTH_PER_DECADE * decades))


def expected_fetch(allowed: int, live: int, k: int) -> int:
    """How many of the nearest rows to fetch for `k` allowed ones, with the margin."""
    return overfetch_depth(allowed, k, live)
