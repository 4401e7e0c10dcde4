"""What `target_recall` tunes on, for every vector index kind: a seeded sample of the table's rows held
out of the index while it is tuned, and a one-sided confidence bound on the sample's mean recall.

A row that is in the index is a poor stand-in for a new query: in an HNSW graph it is a node linked to
its own neighbours, so the walk finds them more easily than it finds a new query's (at 100,000 x 384 the
float HNSW tuned on its own nodes chose ef 16 and new queries saw recall@10 0.944 against 0.95 asked;
held out, ef 24 and 0.970). So the sampled rows are left out of the build, the index is tuned with them
as queries against the exact neighbours among the rows it holds, and then they are added to it.
"""

from __future__ import annotations

import math

import numpy as np

HELD_OUT_FROM = 20
"""Tables of at least this many rows tune on rows held out of the index (fewer: on its own rows)."""
SAMPLE = 200
"""Rows that tune a vector index (at most a tenth of the table when they are held out)."""
CONFIDENCE_Z = 1.645
"""One-sided 95% normal bound on the mean recall of the tuning sample."""


def tuning_sample(rows: int, sample: int = SAMPLE) -> np.ndarray:
    """Positions (among `rows` rows) of the rows that tune the index: `sample` of them, at most a tenth of
    a table of `HELD_OUT_FROM` rows or more (they are held out of the index while it is tuned), seeded so
    that a rebuild tunes alike."""
    size = min(sample, rows // 10 if rows >= HELD_OUT_FROM else rows)
    return np.random.default_rng(0).choice(rows, size=size, replace=False)


def holds_out(rows: int, picks: np.ndarray) -> bool:
    """Whether the tuning rows `picks` of a table of `rows` rows are held out of the index."""
    return rows >= HELD_OUT_FROM and len(picks) > 0


def reaches(per_query: np.ndarray, target: float) -> tuple[bool, float]:
    """Whether the per-query recalls reach `target` with confidence (the one-sided 95% lower bound of
    their mean, mean - 1.645 standard errors, is at least `target`), and their mean."""
    recall = float(per_query.mean()) if len(per_query) else 0.0
    margin = CONFIDENCE_Z * float(per_query.std(ddof=1)) / math.sqrt(len(per_query)) if len(per_query) > 1 else 0.0
    return recall - margin >= target, recall


def others(found: np.ndarray, self_id: int, k: int) -> set[int]:
    """The first `k` of `found` other than the query's own row `self_id` (always found when it is indexed)."""
    return set([i for i in found.tolist() if i != self_id][:k])
