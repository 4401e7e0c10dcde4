"""How far an unrelated row lies from a query vector: what a vector list's steepness is measured against.

A branch's steepness for a query (:mod:`hybrid.query.confidence`) is how far its tenth result
falls behind its first, as a share of the way from the first to a row that has nothing to do
with the query. For BM25 that row scores 0 (it shares no term). For vectors it depends on the
model: MiniLM puts a random passage at a cosine distance of about 0.95 from a question, the
multilingual e5 at about 0.25 (its vectors share one common direction), so a list measured from
distance 0 looks three times flatter under e5 than it is, and the "auto" weights then give the
dense branch a third of the say they mean to (XQuAD-R de, es, ru: ``eval/results/unrelated_s39.md``).

The reference is measured instead: the mean distance from the query to a fixed sample of the
table's rows (nearly every row is unrelated to any one question). The sample is drawn once per
version and vector column (:data:`SAMPLE` row ids, seeded, so a version always answers alike); a
query costs one product of that small matrix with its vector.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from hybrid.index.exact import RowVectors
from hybrid.index.gather import read_row_vectors
from hybrid.index.view import IndexedSnapshot

SAMPLE = 256
"""Row ids drawn; the mean distance of those live with a vector stands for an unrelated row's."""
MIN_ROWS = 32
"""Fewer live rows with a vector than this: no reference (the list is measured from distance 0)."""
SEED = 0


def sample(view: IndexedSnapshot, column: str, metric: str) -> RowVectors:
    """The version's sample of rows with a vector in `column` (kept with the version)."""
    return view.remember("unrelated_rows", (view.version, column, metric), partial(draw, view, column, metric), keep=16)


def draw(view: IndexedSnapshot, column: str, metric: str) -> RowVectors:
    """The rows with a vector among :data:`SAMPLE` row ids drawn at random (seeded) from the version's
    (a deleted row's id is drawn too, and left out). The rows are read one by one, not through the
    table's map (:func:`hybrid.index.gather.read_row_vectors`): a table served from a compressed index
    never has its whole vector column read or kept resident for this."""
    end = int(view.snapshot.manifest.next_rowid)
    if end <= SAMPLE:
        ids = np.arange(end, dtype=np.uint64)
    else:
        ids = np.sort(np.random.default_rng(SEED).choice(end, SAMPLE, replace=False)).astype(np.uint64)
    return read_row_vectors(view, column, ids, metric)


def mean_distance(rows: RowVectors, vector: np.ndarray, metric: str) -> float | None:
    """The mean distance from `vector` to `rows`; None for fewer than :data:`MIN_ROWS` rows."""
    if len(rows.ids) < MIN_ROWS:
        return None
    return float(np.mean(rows.distances(vector, metric), dtype=np.float64))


def distance(view: IndexedSnapshot, column: str, vector: np.ndarray, metric: str) -> float | None:
    """How far an unrelated row of `view` lies from `vector` (None: too few rows to say)."""
    return mean_distance(sample(view, column, metric), vector, metric)
