"""Building, opening, merging and tuning the compressed vector index kinds (:mod:`hybrid.index.ann_kinds`).

Builds read the table in batches of ``batch_rows`` (:func:`hybrid.index.rescore.vector_batches`)
and train on a random sample of at most ``TRAIN_ROWS`` rows, so their memory is bounded by
those two settings and the index itself, never by the table's size.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.index.ann_kinds import CandidateIndex, require
from hybrid.index.rescore import Rescored, exact_neighbours, sample_vectors, vector_batches, vectors_of
from hybrid.index.tuning import holds_out, others, reaches, tuning_sample
from hybrid.index.view import IndexedSnapshot

LEVELS: dict[str, tuple[int, ...]] = {
    "hnsw_int8": (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512),
    "ivf_pq": (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256),
    "ivf_rabitq": (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256),
}
"""The search depths `target_recall` tries per kind: ef (HNSW) or nprobe (IVF)."""
RESCORES: dict[str, tuple[float, ...]] = {"hnsw_int8": (2, 4, 8), "ivf_pq": (4, 8, 16, 32), "ivf_rabitq": (4, 8, 16)}
"""The rescore factors `target_recall` tries per kind."""


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
        level, factor, recall = tune(kind, searcher, target, queries, selves, held_out)
        params[level_name(kind)], params["rescore"] = level, factor
        params.update(target_recall=target, measured_recall=round(recall, 4))
        params["tuning_seconds"] = round(time.perf_counter() - started, 1)
    if held_out:
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

    return IvfIndex.build(folder, sample, batches, metric, params, kind)


def open_index(kind: str, folder: Path, metric: str, params: dict[str, Any]) -> CandidateIndex:
    require(kind)
    level = int(params[level_name(kind)])
    if kind == "hnsw_int8":
        from hybrid.index.quantized import Int8Graph

        return Int8Graph.open(folder, metric, level)
    from hybrid.index.ivf import IvfIndex

    return IvfIndex.open(folder, metric, level, kind)


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

    return IvfIndex.merged(source, folder, metric, level, kind, batches, deleted)


def tune(
    kind: str, searcher: Rescored, target: float, queries: np.ndarray, selves: np.ndarray, held_out: bool, k: int = 10
) -> tuple[int, float, float]:
    """The fastest (depth, rescore) whose recall@k for `queries` (the vectors of the rows `selves`) reaches
    `target` against their exact neighbours among the rows the index holds.

    As for the float HNSW (:func:`hybrid.index.manage.tune_ef`), "reaches" means the one-sided 95% lower
    bound of the sample's mean recall (:func:`hybrid.index.tuning.reaches`). The rows `selves` are
    `held_out` of the index (see :func:`build_tuned`) or, in a small table, in it and each left out of
    its own results. For each rescore factor the smallest passing depth is found by bisection (recall grows
    with depth); of those, the one with the lowest measured time per query wins. Returns (depth,
    rescore, the sample's mean recall); when nothing reaches the target, the best setting tried.
    """
    view, column = searcher.view, searcher.column
    own = selves.tolist()
    held = selves if held_out else None  # the truth is among the rows the index holds
    neighbours = exact_neighbours(view.snapshot, column, queries, searcher.metric, k + 1, exclude=held)
    truth = [others(found, s, k) for found, s in zip(neighbours, own)]
    depth = k if held_out else k + 1  # as deep as a query for k asks (rescore x k candidates), plus its own row
    levels = LEVELS[kind]
    lists = getattr(searcher.index, "lists", None)
    if lists is not None:  # an IVF index: scanning more lists than it has changes nothing
        levels = tuple(v for v in levels if v < lists) + (lists,)
    tried: dict[tuple[int, float], tuple[bool, float, float]] = {}

    def measure(level: int, rescore: float) -> tuple[bool, float, float]:
        start = time.perf_counter()
        found = [searcher.search(q, depth, ef=level, rescore=rescore)[0] for q in queries]
        seconds = time.perf_counter() - start
        per_query = np.array([len(t & others(f, s, k)) / max(1, len(t)) for f, s, t in zip(found, own, truth)])
        tried[(level, rescore)] = (*reaches(per_query, target), seconds)
        return tried[(level, rescore)]

    passing: list[tuple[float, int, float, float]] = []
    for rescore in RESCORES[kind]:
        if not measure(levels[-1], rescore)[0]:
            continue
        lo, hi = 0, len(levels) - 1  # levels[hi] passes
        while lo < hi:
            mid = (lo + hi) // 2
            if measure(levels[mid], rescore)[0]:
                hi = mid
            else:
                lo = mid + 1
        _, recall, seconds = tried[(levels[hi], rescore)]
        passing.append((seconds, levels[hi], rescore, recall))
    if not passing:
        (level, rescore), (_, recall, _) = max(tried.items(), key=lambda item: item[1][1])
        return level, rescore, recall
    _, level, rescore, recall = min(passing)
    return level, rescore, recall
