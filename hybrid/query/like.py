"""More like this: search by example rows, fused like any hybrid query.

``.like(rowids, unlike=...)`` turns examples into a query (what Elasticsearch's
``more_like_this``, Qdrant's recommend and Milvus' search by primary key do):

* **vector**: the mean of the examples' unit vectors; with `unlike` rows, ``2 * liked - unliked``
  (the liked mean pushed away from the unliked one);
* **text**: the examples' most distinctive terms, by tf-idf (their count in the examples times
  ``ln(1 + (N - df + 0.5) / (df + 0.5))`` from the full-text index), at most `max_terms`, as a
  plain BM25 query of the words that give them;

both branches are fused by the query's fusion as any hybrid query, and the examples (liked
and unliked) never appear in the results.

>>> distinctive({"vacuum": 3, "the": 1, "table": 2}, {"vacuum": 1, "the": 90, "table": 40}, 100, 2)
['vacuum', 'table']
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hybrid.errors import HybridError, SchemaError
from hybrid.index.catalog import vector_column
from hybrid.index.fulltext import COMBINED_FIELD, FullTextIndex
from hybrid.query.pinning import check_rowids
from hybrid.query.text import Match

if TYPE_CHECKING:
    from hybrid.index.catalog import IndexEntry
    from hybrid.index.view import IndexedSnapshot
    from hybrid.query.search import Query

MAX_TERMS = 25
"""Terms kept from the examples, as Elasticsearch's more_like_this keeps by default."""
_WORD_CHUNK = 2_000
"""Words of each example read for its terms."""


@dataclass(frozen=True)
class Like:
    """The example rows (`rowids`), rows to steer away from (`unlike`) and how many terms to keep."""

    rowids: tuple[int, ...]
    unlike: tuple[int, ...] = ()
    max_terms: int = MAX_TERMS

    @staticmethod
    def make(rowids: Sequence[int], unlike: Sequence[int] | None, max_terms: int) -> Like:
        liked = check_rowids(rowids)
        if not liked:
            raise ValueError("like needs at least one example row id")
        disliked = check_rowids(unlike or ())
        both = set(liked) & set(disliked)
        if both:
            raise ValueError(f"like: rows {sorted(both)} are both liked and unliked")
        if isinstance(max_terms, bool) or not isinstance(max_terms, int) or max_terms < 1:
            raise ValueError(f"like: max_terms must be an integer >= 1, got {max_terms!r}")
        return Like(liked, disliked, max_terms)

    @property
    def excluded(self) -> tuple[int, ...]:
        return self.rowids + self.unlike


def distinctive(counts: Mapping[str, int], doc_freq: Mapping[str, int], n_docs: int, k: int) -> list[str]:
    """The `k` terms with the highest count x idf (ties: the more frequent, then alphabetical)."""
    n = max(n_docs, 1)

    def weight(t: str) -> float:
        df = doc_freq.get(t, 0)
        return counts[t] * math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    known = [t for t in counts if doc_freq.get(t, 0) > 0]
    return sorted(known, key=lambda t: (-weight(t), -counts[t], t))[:k]


def resolve(q: Query, view: IndexedSnapshot, fts: IndexEntry | None) -> Query:
    """`q` with its query made from the examples: a text query of their distinctive words (when the
    table has a full-text index) and their mean vector (when it has a vector column)."""
    assert q.examples is not None
    snap = view.snapshot
    want_text = q.query_type in ("auto", "fts", "hybrid") and fts is not None
    want_vector = q.query_type in ("auto", "vector", "hybrid") and any(
        getattr(f.type, "list_size", None) for f in snap.schema if _is_vector(f.type)
    )
    changes: dict[str, object] = {}
    if want_vector:
        column = vector_column(snap, q.vector_column)
        liked = _mean(_vectors(view, column, q.examples.rowids))
        vec = liked if not q.examples.unlike else 2 * liked - _mean(_vectors(view, column, q.examples.unlike))
        changes["vectors"] = ((column, vec.astype(np.float32)),)
    if want_text:
        assert fts is not None
        words = _words(view, fts, q.examples.rowids, q.examples.max_terms)
        if words:
            changes["text_query"] = Match(" ".join(words))
    if not changes:
        raise HybridError("like() needs a full-text index or a vector column to search with")
    if "vectors" in changes and "text_query" in changes and q.query_type == "auto":
        changes["query_type"] = "hybrid"
    return q._with(**changes)


def _is_vector(t: object) -> bool:
    import pyarrow as pa

    return isinstance(t, pa.FixedSizeListType) and pa.types.is_floating(t.value_type)


def _vectors(view: IndexedSnapshot, column: str, rowids: Sequence[int]) -> np.ndarray:
    rows = view.snapshot.take(np.asarray(rowids, np.uint64), [column]).column(column).combine_chunks()
    if rows.null_count:
        raise SchemaError(f"like: an example row has no vector in {column!r}")
    dim = rows.type.list_size
    flat = rows.values.slice(rows.offset * dim, len(rows) * dim).to_numpy(zero_copy_only=False)
    return np.asarray(flat, np.float64).reshape(len(rows), dim)


def _mean(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    return np.asarray(unit.mean(axis=0))


def _words(view: IndexedSnapshot, fts: IndexEntry, rowids: Sequence[int], k: int) -> list[str]:
    """One word of the examples' text for each of their `k` most distinctive terms."""
    index = view.index(fts)
    assert isinstance(index, FullTextIndex)
    table = view.snapshot.take(np.asarray(rowids, np.uint64), list(fts.columns))
    counts: Counter[str] = Counter()
    surface: dict[str, str] = {}
    for column in fts.columns:
        for text in table.column(column).to_pylist():
            for word in str(text or "").split()[:_WORD_CHUNK]:
                for term in index.analyzer.terms(word):
                    counts[term] += 1
                    surface.setdefault(term, word)
    searcher = index.searcher
    fields = [COMBINED_FIELD] if index.weights is not None else index.fields
    doc_freq = {}
    for t in counts:
        try:
            doc_freq[t] = max(searcher.doc_freq(f, t) for f in fields)
        except ValueError:
            doc_freq[t] = 0
    return [surface[t] for t in distinctive(counts, doc_freq, index.num_docs, k)]
