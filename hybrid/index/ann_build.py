"""Building, opening, merging and tuning the compressed vector index kinds (:mod:`hybrid.index.ann_kinds`).

Builds read the table in batches of ``batch_rows`` (:func:`hybrid.index.rescore.vector_batches`)
and train on a random sample of at most ``TRAIN_ROWS`` rows, so their memory is bounded by
those two settings and the index itself, never by the table's size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.index.ann_kinds import CandidateIndex, require
from hybrid.index.ivf import IvfIndex
from hybrid.index.rescore import (
    Rescored,
    candidate_count,
    exact_neighbours,
    read_count,
    sample_vectors,
    vector_batches,
    vectors_of,
)
from hybrid.index.row_codes import FOUR_BIT_READS, RowCodes, coded, merged_codes
from hybrid.index.tuning import holds_out, off_table, others, reaches_both, tuning_sample
from hybrid.index.view import IndexedSnapshot

LEVELS: dict[str, tuple[int, ...]] = {
    "hnsw_int8": (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512),
    "ivf_pq": (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256),
    "ivf_rabitq": (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256),
}
"""The search depths `target_recall` tries per kind: ef (HNSW) or nprobe (IVF)."""
RESCORES: dict[str, tuple[float, ...]] = {"hnsw_int8": (2, 4, 8), "ivf_pq": (4, 8, 16, 32), "ivf_rabitq": (4, 8, 16)}
"""The rescore factors `target_recall` tries per kind."""
READS: tuple[float, ...] = (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24)
"""The read factors `target_recall` tries (those below the rescore factor; the rescore factor reads all)."""


def level_name(kind: str) -> str:
    """The params key of a kind's search depth."""
    return "ef_search" if kind.startswith("hnsw") else "nprobe"


def build(
    kind: str,
    folder: Path,
    view: IndexedSnapshot,
    column: str,
    metric: str,
    params: dict[str, Any],
    batch_rows: int,
    held: np.ndarray | None = None,
) -> CandidateIndex:
    """Build a compressed index of `column`'s live vectors in `view` into `folder` (params are completed),
    leaving out (and not training on) the rows `held`."""
    from hybrid.index.rescore import TRAIN_ROWS

    require(kind)
    sample_ids, sample = sample_vectors(view.snapshot, column, TRAIN_ROWS)
    batches = vector_batches(view.snapshot, column, batch_rows)
    if held is not None and len(held):
        sample = sample[~np.isin(sample_ids, held)]
        batches = ((ids[keep], vectors[keep]) for ids, vectors in batches for keep in [~np.isin(ids, held)])
    if kind != "hnsw_int8" and params.get("partitions") is None:
        from hybrid.index.ivf import default_partitions

        params["partitions"] = default_partitions(view.cache.live_ids(view.snapshot).size)
    return build_from(kind, folder, sample, batches, metric, params)


def build_tuned(
    kind: str,
    folder: Path,
    view: IndexedSnapshot,
    column: str,
    metric: str,
    params: dict[str, Any],
    batch_rows: int,
    target: float,
) -> CandidateIndex:
    """:func:`build`, with the search depth and rescore factor tuned to `target` recall@10 (written into
    `params` with the measured recall and the tuning's seconds).

    The tuning rows (:func:`hybrid.index.tuning.tuning_sample` of the live rows) are held out of the
    build, tuned on as new queries against their exact neighbours among the rows the index holds, and
    then added to it (:func:`merged`), as for the float HNSW: a row that is in the index is found with
    its neighbours more easily than a new query's are. Tables under ``HELD_OUT_FROM`` rows tune on
    their own rows, each left out of its own results.
    """
    live = view.cache.live_ids(view.snapshot)
    picks = tuning_sample(len(live))
    selves, queries = vectors_of(view.snapshot, column, live[np.sort(picks)])  # rows with no vector drop out
    held_out = holds_out(len(live), selves)
    index = build(kind, folder, view, column, metric, params, batch_rows, selves if held_out else None)
    if index.count:
        started = time.perf_counter()
        searcher = Rescored(view, column, index, params["rescore"])
        level, factor, reads, recall, bits = tune(kind, searcher, target, queries, selves, held_out)
        params[level_name(kind)], params["rescore"], params["reads"] = level, factor, reads
        if index.codes is not None:
            params["code_bits"] = bits
            if bits == 4:  # the tuner kept the narrower codes: the 8-bit file is replaced by them
                index.codes = searcher.index.codes = None  # not held while the file is rewritten
                RowCodes.narrow_files(folder)
                index.codes = None if held_out else RowCodes.open(folder, metric)  # held out: the merge opens them
        params.update(target_recall=target, measured_recall=round(recall, 4))
        params["tuning_seconds"] = round(time.perf_counter() - started, 1)
    if held_out:
        index.codes = None  # the merge reads the codes file and opens its successor: not held three times
        index, _ = merged(kind, folder, folder, metric, params, [(selves, queries)], np.empty(0, np.uint64))
    return index


def build_from(
    kind: str,
    folder: Path,
    sample: np.ndarray,
    batches: Iterator[tuple[np.ndarray, np.ndarray]],
    metric: str,
    params: dict[str, Any],
) -> CandidateIndex:
    """Build a compressed index of kind `kind` in `folder`: trained on `sample`, fed (row ids, vectors) `batches`."""
    require(kind)
    if kind == "hnsw_int8":
        from hybrid.index.quantized import Int8Graph

        return Int8Graph.build(folder, sample, batches, metric, params)
    from hybrid.index.ivf import IvfIndex

    index = IvfIndex.build(folder, sample, coded(folder, sample, batches, metric), metric, params, kind)
    index.codes = RowCodes.open(folder, metric)
    return index


def open_index(kind: str, folder: Path, metric: str, params: dict[str, Any]) -> CandidateIndex:
    require(kind)
    level = int(params[level_name(kind)])
    if kind == "hnsw_int8":
        from hybrid.index.quantized import Int8Graph

        return Int8Graph.open(folder, metric, level)
    from hybrid.index.ivf import IvfIndex

    index = IvfIndex.open(folder, metric, level, kind)
    index.codes = RowCodes.open(folder, metric)
    return index


def merged(
    kind: str,
    source: Path,
    folder: Path,
    metric: str,
    params: dict[str, Any],
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    deleted: np.ndarray,
) -> tuple[CandidateIndex, int]:
    """A successor of the index in `source` with `batches` added and `deleted` removed (see each kind)."""
    require(kind)
    level = int(params[level_name(kind)])
    if kind == "hnsw_int8":
        from hybrid.index.quantized import Int8Graph

        return Int8Graph.merged(source, folder, metric, level, batches, deleted)
    from hybrid.index.ivf import IvfIndex

    batches = merged_codes(source, folder, metric, batches, deleted)
    index, removed = IvfIndex.merged(source, folder, metric, level, kind, batches, deleted)
    index.codes = RowCodes.open(folder, metric)
    return index, removed


def tune(
    kind: str, searcher: Rescored, target: float, queries: np.ndarray, selves: np.ndarray, held_out: bool, k: int = 10
) -> tuple[int, float, float, float, int]:
    """The fastest (depth, rescore, reads) whose recall@k for `queries` (the vectors of the rows `selves`)
    and for their off-table probes (:func:`hybrid.index.tuning.off_table`) reaches `target` against their
    exact neighbours among the rows the index holds.

    As for the float HNSW (:func:`hybrid.index.manage.tune_ef`), "reaches" means the one-sided 95% lower
    bound of the sample's mean recall, for the rows and for the probes
    (:func:`hybrid.index.tuning.reaches_both`). The rows `selves` are
    `held_out` of the index (see :func:`build_tuned`) or, in a small table, in it and each left out of
    its own results. For each rescore factor the smallest passing depth is found (recall grows with depth:
    up from the shallowest depth through positions 1, 2, 4, 8, ... of its levels until one passes, then by
    bisection below it), every candidate read; then the fewest reads (``reads x k`` candidates, best first
    by the index's finer codes, read as floats) that still reach the target, computed from the same
    searches; of those settings, the one with the lowest measured time per query wins. Last, where the
    index ranks by 8-bit row codes, the same searches are ranked by those codes narrowed to 4 bits
    (:meth:`hybrid.index.row_codes.RowCodes.narrowed_view`): their fewest passing reads at that depth and
    rescore factor, if at most ``FOUR_BIT_READS`` times the 8-bit codes' reads, replace them and the codes
    kept are 4-bit (half the RAM). Returns (depth, rescore, reads, the lower of the rows' and the probes'
    mean recalls at them, the code bits); when nothing reaches the target, the best setting tried, every
    candidate read, 8-bit codes.

    A setting's recall is counted from the candidates it reads, without reading them: a true neighbour
    that is read is always returned (at most k - 1 rows, plus the query's own row when it is indexed, are
    nearer), so the search returns it. For an IVF index one search per query and depth serves every
    rescore factor: at one nprobe its nearest n candidates are the first n of its nearest m > n (a factor
    whose candidates need more lists than the depth gives searches on its own, as a search would). The
    factors are tried from the largest down, and a factor stops climbing (is not a candidate) once the
    index's search alone at its last depth took at least as long as the fastest passing setting's whole
    searches: a deeper search of it could not be faster (so a factor that cannot reach the target costs no
    scan of every list once another one has passed).
    """
    view, column, metric = searcher.view, searcher.column, searcher.metric
    held = selves if held_out else None  # the truth is among the rows the index holds
    neighbours = exact_neighbours(view.snapshot, column, queries, metric, k + 1, exclude=held)
    nearest = [next((i for i in found.tolist() if i != s), s) for found, s in zip(neighbours, selves.tolist())]
    near_ids, near_vectors = vectors_of(view.snapshot, column, np.array(nearest, np.uint64))
    at = {i: n for n, i in enumerate(near_ids.tolist())}
    probes = off_table(queries, near_vectors[[at[i] for i in nearest]], metric)
    neighbours += exact_neighbours(view.snapshot, column, probes, metric, k + 1, exclude=held)
    queries = np.concatenate([queries, probes])
    own = selves.tolist() * 2  # a probe is left out of nothing but its source row's place, as the row is
    truth = [others(found, s, k) for found, s in zip(neighbours, own)]
    rows = len(selves)
    depth = k if held_out else k + 1  # as deep as a query for k asks (rescore x k candidates), plus its own row
    levels = LEVELS[kind]
    ivf = searcher.index if isinstance(searcher.index, IvfIndex) else None
    if ivf is not None:  # scanning more lists than the index has changes nothing
        levels = tuple(v for v in levels if v < ivf.lists) + (ivf.lists,)
    tried: dict[tuple[int, float], dict[float, tuple[bool, float]]] = {}
    searched: dict[tuple[int, float], float] = {}  # seconds the index's own searches took for all the queries
    Recalls = dict[float, dict[float, list[float]]]  # per rescore factor, per read factor: per query

    def measure(level: int, factors: tuple[float, ...], codes: RowCodes | None) -> Recalls:
        """Per rescore factor in `factors`, per read factor up to it (and itself: every candidate), the
        per-query recalls; the candidates ranked by `codes` (none: in the index's order)."""
        per: Recalls = {f: {r: [] for r in (*[r for r in READS if r < f], f)} for f in factors}
        counts = {f: candidate_count(depth, f) for f in factors}
        indexed = searcher.index.count
        spent = dict.fromkeys(factors, 0.0)
        for q, t in zip(queries, truth):
            start = time.perf_counter()
            first = None if ivf is None else ivf.candidates(q, max(counts.values()), level, widen=False)
            shared = time.perf_counter() - start
            for f, per_read in per.items():
                n = counts[f]
                found = first[:n] if first is not None and len(first) >= min(n, indexed) else None
                spent[f] += shared
                if found is None:
                    start = time.perf_counter()
                    found = searcher.index.candidates(q, n, level)
                    spent[f] += time.perf_counter() - start
                ranked = found if codes is None or len(found) <= depth else codes.ranked(q, found)
                for r, recalls in per_read.items():
                    read = set(ranked[: read_count(depth, r, len(ranked))].tolist())
                    recalls.append(len(t & read) / max(1, len(t)))
        if codes is searcher.index.codes:
            searched.update({(level, f): spent[f] for f in factors})
        return per

    def judged(per_read: dict[float, list[float]]) -> dict[float, tuple[bool, float]]:
        return {r: reaches_both(np.array(v[:rows]), np.array(v[rows:]), target) for r, v in per_read.items()}

    def passes(level: int, rescore: float) -> bool:
        if (level, rescore) not in tried:  # an IVF depth measures every factor not yet measured there at once
            factors = tuple(f for f in RESCORES[kind] if (level, f) not in tried) if ivf is not None else (rescore,)
            for f, per_read in measure(level, factors, searcher.index.codes).items():
                tried[(level, f)] = judged(per_read)
        return tried[(level, rescore)][rescore][0]

    passing: list[tuple[float, int, float, float, float]] = []
    for rescore in sorted(RESCORES[kind], reverse=True):  # the most candidates first: they pass shallowest
        below, at_most = -1, 0  # levels[below] fails; find a passing one above it
        while not passes(levels[at_most], rescore) and at_most < len(levels) - 1:
            if searched[(levels[at_most], rescore)] >= min((p[0] for p in passing), default=math.inf):
                break  # the index's search alone already took as long as a passing setting's whole searches
            below, at_most = at_most, min(len(levels) - 1, 2 * at_most + 1)
        if not passes(levels[at_most], rescore):
            continue
        lo, hi = below + 1, at_most  # levels[hi] passes
        while lo < hi:
            mid = (lo + hi) // 2
            if passes(levels[mid], rescore):
                hi = mid
            else:
                lo = mid + 1
        reads, (_, recall) = next((r, v) for r, v in tried[(levels[hi], rescore)].items() if v[0])
        start = time.perf_counter()
        for q in queries:
            searcher.search(q, depth, ef=levels[hi], rescore=rescore, reads=reads)
        passing.append((time.perf_counter() - start, levels[hi], rescore, reads, recall))
    if not passing:
        (level, rescore), by_read = max(tried.items(), key=lambda item: item[1][item[0][1]][1])
        return level, rescore, rescore, by_read[rescore][1], 8
    _, level, rescore, reads, recall = min(passing)
    codes = searcher.index.codes
    if codes is not None and codes.bits == 8 and codes.count:
        narrowed = judged(measure(level, (rescore,), codes.narrowed_view())[rescore])
        narrow = next(((r, v[1]) for r, v in narrowed.items() if v[0]), None)
        if narrow is not None and narrow[0] <= FOUR_BIT_READS * reads:
            return level, rescore, narrow[0], narrow[1], 4
    return level, rescore, reads, recall, 8
