"""Fusion of ranked lists: Reciprocal Rank Fusion, linear over normalised scores, DBSF.

Fusion functions see only row ids and scores (higher is better), never tables.

>>> ids = lambda *x: np.array(x, dtype=np.uint64)
>>> r = RRF(k=60).fuse([Ranked(ids(1, 2, 3), np.array([3.0, 2.0, 1.0])), Ranked(ids(3, 1), np.array([0.9, 0.1]))])
>>> r[0].tolist(), [round(float(s), 5) for s in r[1]]
([1, 3, 2], [0.03252, 0.03227, 0.01613])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

DEFAULT_ALPHA = 0.7
"""The vector branch's share in the default fusion (see :func:`default_fusion`)."""


@dataclass(frozen=True)
class Ranked:
    """One branch's result: row ids best first, their scores (higher is better), and a weight."""

    ids: np.ndarray
    scores: np.ndarray
    weight: float = 1.0
    window: int | None = None
    """Only the first `window` results count toward the fused score (None: all of them). A query's
    branches are searched deeper for a later page (a larger limit or offset); with a fixed window
    those deeper results change no fused score, so the first results, and every page, are the same
    however deep the branches went (:data:`WINDOW`)."""

    def counted(self) -> int:
        """How many of the results count toward the fused score."""
        return len(self.ids) if self.window is None else min(self.window, len(self.ids))


WINDOW = 50
"""A hybrid query's fusion window when it does not set one with ``candidates()``: the depth every branch
of a query for up to 25 rows is searched to."""


def fusion_window(candidates: int | None) -> int:
    """The fusion window of a query that asked for `candidates` per branch (None: not asked)."""
    return WINDOW if candidates is None else candidates


def counted_rows(lists: Sequence[np.ndarray], windows: Sequence[int]) -> np.ndarray:
    """The row ids a fusion counts: the first `windows[i]` of each of `lists`, sorted, once each (what a
    reranker rescores, and the rows a group may take after its best, the same on every page)."""
    if not lists:
        return np.empty(0, np.uint64)
    return np.unique(np.concatenate([np.asarray(ids[:w], np.uint64) for ids, w in zip(lists, windows)]))


class Fusion(Protocol):
    """Combines several ranked lists into one; returns (ids, fused scores) best first. Count only each
    list's first :meth:`Ranked.counted` results in the scores, so that the pages of a query agree."""

    def fuse(self, results: Sequence[Ranked]) -> tuple[np.ndarray, np.ndarray]: ...


def _accumulate(results: Sequence[Ranked], contributions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's contributions summed, best first. Ties: the best rank at which a list counted the row
    (gave it a nonzero contribution) first, then the best rank in any list (the rows past every window,
    which score 0), then row id. No deeper search of the branches changes this order."""
    if not results or all(len(r.ids) == 0 for r in results):
        return np.empty(0, np.uint64), np.empty(0, np.float64)
    all_ids = np.concatenate([r.ids for r in results]).astype(np.uint64)
    all_scores = np.concatenate(contributions).astype(np.float64)
    unique, inverse = np.unique(all_ids, return_inverse=True)
    fused = np.bincount(inverse, weights=all_scores, minlength=len(unique))  # summed in list order, as add.at
    ranks = np.concatenate([np.arange(len(r.ids), dtype=np.int64) for r in results])
    never = np.iinfo(np.int64).max
    any_rank, counted_rank = np.full(len(unique), never), np.full(len(unique), never)
    np.minimum.at(any_rank, inverse, ranks)
    np.minimum.at(counted_rank, inverse, np.where(all_scores != 0, ranks, never))
    order = np.lexsort((unique, any_rank, counted_rank, -fused))
    return unique[order], fused[order]


def _in_window(r: Ranked, values: np.ndarray) -> np.ndarray:
    """`values` (one per counted result of `r`) as contributions of all its results: 0 past the window."""
    out = np.zeros(len(r.ids), dtype=np.float64)
    out[: len(values)] = values
    return out


@dataclass(frozen=True)
class RRF:
    """Reciprocal Rank Fusion: score = sum over branches of weight / (k + rank), rank from 1.

    The default k is 20, not the customary 60: k = 20 scored a higher nDCG@10 than
    k = 60 on every collection in ``eval/results/fusion_study.md``.
    """

    k: float = 20.0

    def __post_init__(self) -> None:
        if not self.k >= 0:  # also rejects NaN
            raise ValueError(f"RRF k must be >= 0, got {self.k}")

    def fuse(self, results: Sequence[Ranked]) -> tuple[np.ndarray, np.ndarray]:
        ranks = [np.arange(1, r.counted() + 1, dtype=np.float64) for r in results]
        contrib = [_in_window(r, r.weight / (self.k + rank)) for r, rank in zip(results, ranks)]
        return _accumulate(results, contrib)


def default_fusion() -> Fusion:
    """The fusion a hybrid query uses unless told otherwise: ``Linear(alpha=0.7)``.

    Chosen in ``eval/results/fusion_study.md`` over ten collections (English,
    FAQ-style questions, five other languages) by its *worst* case, together with
    the default "auto" branch weights (the table's calibration times each list's
    steepness for the query): it stays within 0.01 of the best fixed fusion on all
    ten. Linear fusion keeps how far apart two results are in each branch, which
    rank fusion throws away; leaning 0.7 to the vector branch keeps paraphrased
    questions (where word overlap misleads full text) near the dense result, while
    the weights take the say away from a branch that cannot read the table's
    language or cannot tell its candidates apart for this query.
    """
    return _DEFAULT


def normalize(scores: np.ndarray, how: Literal["minmax", "zscore"]) -> np.ndarray:
    """Scores mapped to a common scale: [0, 1] by min-max, or standard scores."""
    s = scores.astype(np.float64)
    if len(s) == 0:
        return s
    if how == "minmax":
        lo, hi = float(s.min()), float(s.max())
        return np.ones_like(s) if hi == lo else (s - lo) / (hi - lo)
    if how == "zscore":
        sd = float(s.std())
        return np.zeros_like(s) if sd == 0 else (s - float(s.mean())) / sd
    raise ValueError(f"normalize must be 'minmax' or 'zscore', got {how!r}")


@dataclass(frozen=True)
class Linear:
    """Weighted sum of normalised scores; with two branches, `alpha` weighs the first (vector) one.

    A row missing from a branch contributes nothing from it.
    """

    alpha: float = 0.5
    normalize: Literal["minmax", "zscore"] = "minmax"

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.normalize not in ("minmax", "zscore"):
            raise ValueError(f"normalize must be 'minmax' or 'zscore', got {self.normalize!r}")

    def fuse(self, results: Sequence[Ranked]) -> tuple[np.ndarray, np.ndarray]:
        weights = [self.alpha, 1.0 - self.alpha] if len(results) == 2 else [1.0] * len(results)
        contrib = [
            _in_window(r, w * r.weight * normalize(r.scores[: r.counted()], self.normalize))
            for w, r in zip(weights, results)
        ]
        return _accumulate(results, contrib)


_DEFAULT = Linear(alpha=DEFAULT_ALPHA)  # frozen: every query may share it


@dataclass(frozen=True)
class DBSF:
    """Distribution-Based Score Fusion: each branch scaled by mean ± 3 std to [0, 1], then summed."""

    def fuse(self, results: Sequence[Ranked]) -> tuple[np.ndarray, np.ndarray]:
        contrib = []
        for r in results:
            s = r.scores[: r.counted()].astype(np.float64)
            if len(s) == 0:
                contrib.append(np.zeros(len(r.ids)))
                continue
            mu, sd = float(s.mean()), float(s.std())
            lo, hi = mu - 3 * sd, mu + 3 * sd
            scaled = np.ones_like(s) if hi == lo else np.clip((s - lo) / (hi - lo), 0.0, 1.0)
            contrib.append(_in_window(r, r.weight * scaled))
        return _accumulate(results, contrib)
