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
from hybrid.index.rescore import Rescored, exact_neighbours, sample_vectors, vector_batches
from hybrid.index.view import IndexedSnapshot

LEVELS: dict[str, tuple[int, ...]] = {
    "hnsw_int8": (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512),
    "ivf_pq": (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256),
    "ivf_rabitq": (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256),
}
"""The search depths `target_recall` tries per kind: ef (HNSW) or nprobe (IVF)."""
RESCORES: dict[str, tuple[float, ...]] = {"hnsw_int8": (2, 4, 8), "ivf_pq": (4, 8, 16, 32), "ivf_rabitq": (4, 8, 16)}
"""The rescore factors `target_recall` tries per kind."""
CONFIDENCE_Z = 1.645


def level_name(kind: str) -> str:
    """The params key of a kind's search depth."""
    return "ef_search" if kind.startswith("hnsw") else "nprobe"


def build(
    kind: str, folder: Path, view: IndexedSnapshot, column: str, metric: str, params: dict[str, Any], batch_rows: int
) -> CandidateIndex:
    """Build a compressed index of `column`'s live vectors in `view` into `folder` (params are completed)."""
    from hybrid.index.rescore import TRAIN_ROWS

    require(kind)
    _, sample = sample_vectors(view.snapshot, column, TRAIN_ROWS)
    if kind != "hnsw_int8" and params.get("partitions") is None:
        from hybrid.index.ivf import default_partitions

        params["partitions"] = default_partitions(view.cache.live_ids(view.snapshot).size)
    return build_from(kind, folder, sample, vector_batches(view.snapshot, column, batch_rows), metric, params)


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


def tune(kind: str, searcher: Rescored, target: float, k: int = 10, sample: int = 200) -> tuple[int, float, float]:
    """The fastest (depth, rescore) whose recall@k on a sample of the table's own vectors reaches `target`.

    As for the float HNSW (:func:`hybrid.index.manage.tune_ef`), "reaches" means the one-sided 95%
    lower bound of the sample's mean recall, and each sampled vector is left out of its own results.
    For each rescore factor the smallest passing depth is found by bisection (recall grows with
    depth); of those, the one with the lowest measured time per query wins. Returns (depth, rescore,
    the sample's mean recall); when nothing reaches the target, the best setting tried.
    """
    view, column = searcher.view, searcher.column
    ids, queries = sample_vectors(view.snapshot, column, 2 * sample, seed=1)
    ids, queries = ids[:sample], queries[:sample]
    selves = ids.tolist()
    neighbours = exact_neighbours(view.snapshot, column, queries, searcher.metric, k + 1)
    truth = [set([i for i in found.tolist() if i != s][:k]) for found, s in zip(neighbours, selves)]
    levels = LEVELS[kind]
    lists = getattr(searcher.index, "lists", None)
    if lists is not None:  # an IVF index: scanning more lists than it has changes nothing
        levels = tuple(v for v in levels if v < lists) + (lists,)
    tried: dict[tuple[int, float], tuple[bool, float, float]] = {}

    def measure(level: int, rescore: float) -> tuple[bool, float, float]:
        start = time.perf_counter()
        found = [searcher.search(q, k + 1, ef=level, rescore=rescore)[0] for q in queries]
        seconds = time.perf_counter() - start
        per_query = np.array([
            len(t & set([i for i in f.tolist() if i != s][:k])) / max(1, len(t))
            for f, s, t in zip(found, selves, truth)
        ])  # fmt: skip
        recall = float(per_query.mean())
        margin = CONFIDENCE_Z * float(per_query.std(ddof=1)) / math.sqrt(len(per_query)) if len(per_query) > 1 else 0
        tried[(level, rescore)] = (recall - margin >= target, recall, seconds)
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
