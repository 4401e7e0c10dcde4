"""The search benchmark's quality measures, against exact answers computed in the run.

* vector: recall@10 vs exact cosine over all docs (over the allowed docs when filtered);
* text: overlap@10 with the floor's tantivy BM25 top-10 ("BM25 overlap";
  filtered: tantivy BM25 restricted to the allowed rows);
* hybrid: overlap@10 with "exact-branch RRF": RRF(k=60) over the exact vector
  top-50 and the exact BM25 top-50 (ties broken by smaller id, like hybrid).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bench.search_data import DEPTH, FILTERS, RRF_K, Corpus, K, Where, filter_for

if TYPE_CHECKING:
    from bench.search_floor import FloorSystem


def rrf_top(lists: list[np.ndarray], top: int, k: int = RRF_K) -> np.ndarray:
    """Ids of the RRF(k) fusion of ranked id lists (best first), ties by smaller id."""
    lists = [np.asarray(x, dtype=np.int64) for x in lists if len(x)]
    if not lists:
        return np.empty(0, np.int64)
    ids = np.concatenate(lists)
    contrib = np.concatenate([1.0 / (k + np.arange(1, len(x) + 1, dtype=np.float64)) for x in lists])
    uniq, inv = np.unique(ids, return_inverse=True)
    score = np.bincount(inv, weights=contrib)
    return uniq[np.lexsort((uniq, -score))[:top]]


def topk_desc(ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k largest scores, best first, ties by smaller id."""
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[part], scores[part]
    return ids[np.lexsort((ids, -scores))]


def overlap(got: np.ndarray | None, truth: np.ndarray, k: int = K) -> float | None:
    if got is None:
        return None
    t = set(np.asarray(truth)[:k].tolist())
    if not t:
        return 1.0 if len(got) == 0 else 0.0
    return len(t & set(np.asarray(got)[:k].tolist())) / len(t)


def ground_truth(
    corpus: Corpus, floor: FloorSystem, qtext: list[str], qvec: np.ndarray, mode: str
) -> dict[Any, dict[str, Any]]:
    """Per filter and query: exact vector top-50 (numpy cosine over the allowed rows), exact BM25
    top-50 (tantivy restricted to the allowed rows) and exact-branch RRF top-10."""
    x = corpus.vectors
    cat = corpus.category
    allowed_cache: dict[tuple[int, int], np.ndarray] = {}

    def allowed_of(w: Where) -> np.ndarray:
        key = (w.lo, w.hi)
        if key not in allowed_cache:
            allowed_cache[key] = np.flatnonzero((cat >= w.lo) & (cat < w.hi)).astype(np.int64)
        return allowed_cache[key]

    all_ids = np.arange(len(x), dtype=np.int64)
    truth: dict[Any, dict[str, Any]] = {p: {"vector": [], "text": [], "hybrid": [], "allowed": []} for p in FILTERS}
    for start in range(0, len(qvec), 32):
        sims = qvec[start : start + 32] @ x.T
        for j, row in enumerate(sims):
            i = start + j
            for p in FILTERS:
                w = filter_for(p, i, mode)
                ids = all_ids if w is None else allowed_of(w)
                truth[p]["vector"].append(topk_desc(ids, row if w is None else row[ids], DEPTH))
                truth[p]["allowed"].append(len(ids))
    for i, q in enumerate(qtext):
        for p in FILTERS:
            w = filter_for(p, i, mode)
            query = floor.compile(q)
            if query is None:
                truth[p]["text"].append(np.empty(0, np.int64))
                continue
            if w is not None:
                query = floor.restricted(query, allowed_of(w))
            truth[p]["text"].append(floor.top_ids(query, DEPTH))
    for p in FILTERS:
        t = truth[p]
        t["hybrid"] = [rrf_top([v, b], K) for v, b in zip(t["vector"], t["text"], strict=True)]
    return truth
