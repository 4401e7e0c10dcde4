"""BM25 for rows added since the full-text index was built, on the index's own statistics.

Scoring those rows in a separate small index would give them that index's
IDF (a term in 1 of 3 new rows looks rare), so fresh rows would rank
inconsistently. Instead, plain term queries (`Match`) over the unindexed rows
are scored here with the BM25 formula and the index's k1 and b (tantivy's
1.2 and 0.75 unless the index says otherwise) using the main index's document
count, document frequencies and average field length, plus the new rows' own
counts. A BM25F index is scored on its combined field: each column's term
counts and length times the column's weight. Tantivy quantizes field lengths, so scores
agree with an index rebuilt by `optimize()` to within a few percent.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from hybrid.index.fulltext import COMBINED_FIELD, FullTextIndex

K1, B = 1.2, 0.75
"""tantivy's BM25 parameters (fixed in tantivy)."""


def score_tail(
    index: FullTextIndex,
    avg_len: Mapping[str, float],
    query_text: str,
    boosts: Mapping[str, float] | None,
    rowids: np.ndarray,
    texts: Mapping[str, Sequence[str | None]],
    k: int,
    k1: float = K1,
    b: float = B,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` (row ids, BM25 with `k1` and `b`) among the given unindexed rows for a `Match` query."""
    counts = Counter(index.analyzer.terms(query_text))
    if not counts or len(rowids) == 0:
        return np.empty(0, np.uint64), np.empty(0, np.float32)
    searcher = index.searcher
    n_docs = index.num_docs + len(rowids)
    scores = np.zeros(len(rowids), dtype=np.float64)
    for field, boost, docs, avg in _scored_fields(index, avg_len, boosts, texts):
        lengths = np.array([sum(d.values()) for d in docs], dtype=np.float64)
        norm = k1 * (1 - b + b * lengths / max(avg, 1e-9))
        for term, q_count in counts.items():
            tf = np.array([d.get(term, 0) for d in docs], dtype=np.float64)
            df = int(searcher.doc_freq(field, term)) + int((tf > 0).sum())
            if df == 0:
                continue
            idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
            scores += q_count * boost * idf * tf * (k1 + 1) / (tf + norm)
    hit = scores > 0
    ids, s = rowids[hit], scores[hit]
    order = np.lexsort((ids, -s))[:k]
    return ids[order].astype(np.uint64), s[order].astype(np.float32)


def _scored_fields(
    index: FullTextIndex,
    avg_len: Mapping[str, float],
    boosts: Mapping[str, float] | None,
    texts: Mapping[str, Sequence[str | None]],
) -> list[tuple[str, float, list[Counter[str]], float]]:
    """(tantivy field, boost, term counts per row, average length) for each field the query scores."""
    per_column = {c: [Counter(index.analyzer.terms(t)) if t else Counter() for t in texts[c]] for c in index.columns}
    if index.weights is not None and not boosts:
        combined: list[Counter[str]] = [Counter() for _ in range(len(next(iter(per_column.values()))))]
        for column, docs in per_column.items():
            w = index.weights.get(column, 1)
            for total, d in zip(combined, docs):
                total.update({t: n * w for t, n in d.items()})
        avg = sum(index.weights.get(c, 1) * avg_len.get(c, 1.0) for c in index.columns)
        return [(COMBINED_FIELD, 1.0, combined, avg)]
    return [
        (f, float((boosts or {}).get(c, 1.0)), per_column[c], avg_len.get(c, 1.0))
        for f, c in zip(index.fields, index.columns)
    ]


def average_lengths(index: FullTextIndex, texts: Mapping[str, Sequence[str | None]]) -> dict[str, float]:
    """Average analysed length per column over a sample of documents."""
    out = {}
    for column in index.columns:
        values = texts[column]
        out[column] = float(np.mean([len(index.analyzer.terms(t)) if t else 0 for t in values])) if values else 1.0
    return out
