"""How much of the question the text branch's best hit accounts for: the text branch's per-query confidence.

BM25 ranks first the row whose matched terms weigh most, whether or not it holds the question's
telling words. When its first hit holds every rare word of the question, the text branch has found
what the question names; when it holds only some (the question paraphrases its answer, or its
telling words come inflected or compounded differently in the text), that first place is a partial
match, and on such questions the dense branch is right more often. The default hybrid query
multiplies the text branch's fusion weight by this coverage: the share of the question's term
weight (BM25's own IDF, over the query's distinct terms) that the first hit's text holds.

No constant sets its scale: it is 1 when the first hit holds every query term and falls with the
weight of the terms it lacks. Measured in ``eval/results/coverage_l23i.md`` (XQuAD-R own-language
questions and the English collections).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np

from hybrid.index.fulltext import COMBINED_FIELD, FullTextIndex
from hybrid.index.language import foreign_reason
from hybrid.index.text_query import Match
from hybrid.index.view import IndexedSnapshot

if TYPE_CHECKING:
    from hybrid.query.executor import Branch


def idf(doc_freq: int, num_docs: int) -> float:
    """BM25's inverse document frequency (tantivy's and Lucene's form).

    >>> round(idf(1, 100), 3), round(idf(50, 100), 3)
    (4.2, 0.693)
    """
    return math.log(1.0 + (num_docs - doc_freq + 0.5) / (doc_freq + 0.5))


def share(weighted: Sequence[tuple[str, float]], held: Collection[str]) -> float | None:
    """The share of the total weight of `weighted` (term, weight) whose terms are in `held`; None without weight.

    >>> share([("rotate", 3.0), ("key", 1.0)], {"key", "api"})
    0.25
    """
    total = sum(w for _, w in weighted)
    if total <= 0:
        return None
    return sum(w for t, w in weighted if t in held) / total


def query_weights(index: FullTextIndex, text: str) -> list[tuple[str, float]]:
    """The distinct index terms of the query `text`, each with its IDF in `index` (a term no document
    holds weighs most: no hit can hold it)."""
    fields = [COMBINED_FIELD] if index.weights is not None else index.fields
    searcher, n = index.searcher, index.num_docs
    terms = dict.fromkeys(index.analyzer.terms(text))
    return [(t, idf(max(searcher.doc_freq(f, t) for f in fields), n)) for t in terms]


def top_hit_coverage(index: FullTextIndex, query: str, hit_text: str) -> float | None:
    """The share of the query's term weight that `hit_text` (the text branch's first hit) holds, in
    [0, 1]; None when the query has no index terms."""
    return share(query_weights(index, query), set(index.analyzer.terms(hit_text)))


def text_coverage(view: IndexedSnapshot, b: Branch) -> float | None:
    """For a text branch with a plain query (`Match`) and at least one hit: :func:`top_hit_coverage` of
    its first hit's text (the indexed columns, read from `view`); None for other branches and queries."""
    if b.kind != "fts" or b.entry is None or not isinstance(b.text, Match) or not len(b.ids):
        return None
    index = view.index(b.entry)
    assert isinstance(index, FullTextIndex)
    row = view.snapshot.take(np.asarray(b.ids[:1], np.uint64), list(b.entry.columns)).to_pylist()[0]
    text = " ".join(str(row[c]) for c in b.entry.columns if row[c])
    return top_hit_coverage(index, b.text.text, text)


def known_share(view: IndexedSnapshot, b: Branch) -> tuple[float | None, str | None]:
    """For a text branch whose plain query is confidently in another language than its index: the
    share of the query's terms the index knows, and why the query counts as foreign
    (:func:`hybrid.index.language.foreign_reason`; only the "auto" weights ask, so other queries skip
    the language check); (None, None) otherwise."""
    if b.kind != "fts" or b.entry is None or not isinstance(b.text, Match):
        return None, None
    index = view.index(b.entry)
    assert isinstance(index, FullTextIndex)
    reason = foreign_reason(b.text.text, index.analyzer.language, index.doc_share)
    if reason is None:
        return None, None
    return index.known_share(b.text), reason
