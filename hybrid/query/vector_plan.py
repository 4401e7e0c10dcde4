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

An IVF index (``ivf_pq``, ``ivf_rabitq``) has a third way, which replaces over-fetching for it:
skipping the rows the filter does not allow inside its list scan (:func:`plan_inside`,
:func:`inside_nprobe`), against exact search over the allowed rows.

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
    """`exact`, or the index: HNSW returning its `fetch` nearest rows (the walk's depth) then keep the
    allowed ones, or an IVF scan passing over about `fetch` rows (:func:`plan_inside`); each way's cost."""

    exact: bool
    fetch: int
    exact_cost: float
    index_cost: float


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


READ_COST = 5.0
"""Relative cost of one allowed row of exact search whose vector is read from the table's file for the
search (an allowed set too large to keep its gathered vectors, ``VECTORS_MAX_BYTES``, of a compressed
index's table): 2.4-2.7 us a row for 10,000 and 100,000 allowed rows of 10,000,000 against 0.5 us for
1,000 kept (``eval/results/ivf_filter_10m_s38.md``, ``ivf_filter_1m_s38_b.md``)."""
CODE_COST = 0.01
"""Relative cost of one row an IVF list scan passes over (its code compared, or skipped by a filter's
bitmap) against one allowed row of exact search whose vector is kept (a float vector compared)."""
INSIDE_FIXED = 800.0
"""What a filtered IVF search costs before its scan, in the same unit (the call, the filter's bitmap,
ranking and rescoring its candidates). With `CODE_COST`, a straight line through the CPU of two
filtered searches of ``eval/results/ivf_filter_1m_s38.md`` (80,000 rows passed over: 0.72 ms;
253,000: 1.49 ms) in units of its exact search over 1,000 kept allowed rows (0.47 us a row)."""
WIDEN_POWER = 0.5
"""How many more lists a filtered IVF search probes: ``nprobe x (live / allowed) ** WIDEN_POWER``.
Measured at 1,000,000 rows (``eval/results/ivf_filter_1m_s38.md``, filters allowing 0.1% to 30%):
recall@10 against exact search over the allowed rows 0.968-0.988 without widening, 0.9915-1.0 with
the fourth root, 0.996-1.0 with the square root, and no better with the full ratio at 2-10x the CPU."""


def inside_nprobe(nprobe: int, allowed: int, live: int, lists: int) -> int:
    """Lists a filtered IVF search probes: the k nearest allowed rows lie among the nearest
    ``k x live / allowed`` rows of all, further from the query than the k nearest, so in more lists
    (though fewer than in proportion: the lists near a query hold its nearest rows as a ball does,
    whose radius grows slower than its rows).

    >>> inside_nprobe(16, 100_000, 10_000_000, 3_162), inside_nprobe(16, 5_000_000, 10_000_000, 3_162)
    (160, 23)
    """
    widened = nprobe * (max(live, 1) / max(allowed, 1)) ** WIDEN_POWER
    return max(1, min(lists, math.ceil(widened)))


def plan_inside(
    allowed: int, live: int, candidates: int, nprobe: int, list_rows: float, kept: bool = False
) -> VectorPlan:
    """Exact over the `allowed` rows (whose gathered vectors the allowed set keeps, if `kept`, else read
    for each search), or an IVF search that skips the rows a filter does not allow inside its list scan
    (:meth:`hybrid.index.ivf.IvfIndex.candidates`): it scans `nprobe` lists (already widened by
    :func:`inside_nprobe`) of about `list_rows` rows, more while they hold fewer than `candidates`
    allowed ones, then rescores the candidates exactly. `fetch` is the rows the scan is expected to
    pass over.

    >>> plan_inside(100_000, 10_000_000, 160, 160, 3_162.0).exact, plan_inside(500, 10_000_000, 160, 16, 3_162.0).exact
    (False, True)
    """
    scanned = min(live, max(nprobe * list_rows, candidates * live / max(allowed, 1)))
    exact_cost = (EXACT_COST if kept else READ_COST) * allowed
    inside_cost = INSIDE_FIXED + CODE_COST * scanned
    return VectorPlan(exact_cost <= inside_cost, math.ceil(scanned), exact_cost, inside_cost)
