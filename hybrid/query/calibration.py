"""Branch weights for the default hybrid query, from a self-retrieval check on the table's own text.

Hybrid search is only a safe default if it never does much worse than its
best branch. Fusion with equal weights fails when one branch cannot read the
collection (an English-only embedder on Chinese, Russian or Hindi text: fusion
then throws away most of what BM25 found). Per-query signals are too noisy to
catch that, but the collection itself can tell: take short spans of sampled
documents as pseudo-queries and see how often each branch finds the document
the span came from. A branch that finds its source far less often than the
other one gets a small weight: ``weight = (hit_rate / best_hit_rate) ** POWER``.
No relevance judgments are involved; the check runs once per (text index,
vector column, embedder) and is cached.

What it cannot see: the style of the questions. Probes cut from documents
(contiguous spans, held-out sentences, titles against their bodies, halves of a
sentence) all rate full text and dense alike on a collection whose questions
paraphrase their answers, so that case is left to the per-query weight
(:mod:`hybrid.query.confidence`: a branch whose list is flat for a query has
little say) and to the default fusion leaning to the vector branch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

SAMPLE = 128
"""Pseudo-queries per calibration (64 gave hit rates that moved by up to 0.2 between seeds)."""
POWER = 2.0
"""How sharply a weaker branch is down-weighted (hit-rate ratio 0.9 -> 0.81, 0.5 -> 0.25)."""
TOP = 10
"""A branch "finds" the source document when it is in this many results."""
MIN_ROWS = 50
"""Smaller tables are not calibrated (equal weights)."""


@dataclass(frozen=True)
class Calibration:
    """Self-retrieval hit rates of each branch and the weights derived from them."""

    hit_rates: dict[str, float]
    weights: dict[str, float]
    queries: int

    def describe(self) -> str:
        parts = [f"{b} {self.weights[b]:.2f} (finds {round(self.hit_rates[b] * self.queries)})" for b in self.weights]
        return f"weights {', '.join(parts)} of {self.queries} pseudo-queries"


def pseudo_query(text: str, rng: np.random.Generator) -> str:
    """A contiguous quarter of `text`: words when it has spaces, else characters (Chinese, Japanese).

    >>> pseudo_query("one two three four five six seven eight nine ten", np.random.default_rng(0))
    'six seven eight nine ten'
    """
    words = text.split()
    if len(words) >= 8:
        n = max(5, len(words) // 4)
        start = int(rng.integers(0, len(words) - n + 1))
        return " ".join(words[start : start + n])
    n = max(6, len(text) // 4)
    start = int(rng.integers(0, max(1, len(text) - n + 1)))
    return text[start : start + n]


def weights_from(hit_rates: dict[str, float], power: float = POWER) -> dict[str, float]:
    """``(hit / best) ** power`` per branch; equal weights when no branch found anything.

    >>> weights_from({"vector": 0.45, "fts": 0.9})
    {'vector': 0.25, 'fts': 1.0}
    """
    best = max(hit_rates.values(), default=0.0)
    if best <= 0:
        return {b: 1.0 for b in hit_rates}
    return {b: (h / best) ** power for b, h in hit_rates.items()}


def calibrate(
    rowids: np.ndarray,
    texts: Sequence[str],
    searches: dict[str, Callable[[list[str]], list[np.ndarray]]],
    seed: int = 0,
) -> Calibration:
    """Hit rates of each branch's search (batch of query texts -> row ids per query) on pseudo-queries
    cut from `texts` (the documents with row ids `rowids`)."""
    rng = np.random.default_rng(seed)
    queries, sources = [], []
    for rowid, text in zip(rowids, texts):
        if text and text.strip():
            queries.append(pseudo_query(text.strip(), rng))
            sources.append(int(rowid))
    hits: dict[str, float] = {}
    for branch, search in searches.items():
        found = search(queries) if queries else []
        found_source = [src in set(ids[:TOP].tolist()) for src, ids in zip(sources, found)]
        hits[branch] = float(np.mean(found_source)) if found_source else 0.0
    return Calibration(hits, weights_from(hits), len(queries))
