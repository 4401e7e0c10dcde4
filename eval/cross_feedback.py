"""Issue-23 candidate, measured and not shipped: cross-script feedback, a question in another
script than the text index asked of the text branch in the corpus's own words, taken from the
passages the vector branch found.

English questions over XQuAD-R zh: the hybrid with it 0.6740 against 0.7431 for the default
hybrid (= dense alone; -0.0691, p 0.0001, 600 of 1190 questions changed,
``eval/results/lang_mechanisms_l23f_cross.md``). The terms of the top passages are mostly the
passages' own topic (a Super Bowl paragraph's "拦截", "掉球"), so BM25 over them re-ranks the
topic's sentences by how much of it they repeat, not by the answer the question asks for.

An English question over Chinese sentences shares no word with them; the cross-script rule
(:func:`hybrid.query.confidence.vocabulary`) then gives the text branch no say, and the hybrid is
the vector branch alone. Pseudo-relevance feedback (Rocchio; Elasticsearch's more_like_this
over the top hits) lets BM25 take part again: the `PASSAGES` best vector hits' most distinctive
terms (their count times BM25's idf, :func:`hybrid.query.like.distinctive`, at most `TERMS`)
become the text branch's query, and that branch is fused like any text branch of a query in the
index's language (its weight the calibrated one times its list's steepness). A question in the
index's script never gets here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from hybrid.index.fulltext import COMBINED_FIELD, FullTextIndex
from hybrid.query.like import MAX_TERMS, distinctive

PASSAGES = 3
"""Vector hits read for their terms: the usual depth of pseudo-relevance feedback."""
TERMS = MAX_TERMS
"""Terms kept, as ``like()`` and Elasticsearch's more_like_this keep."""


def feedback_words(index: FullTextIndex, passages: Sequence[str], k: int = TERMS) -> list[str]:
    """The `k` most distinctive terms of `passages` for `index`, each as a word that analyses back to it
    (the word as written where it gives one term; the term itself inside an unspaced run)."""
    counts: Counter[str] = Counter()
    surface: dict[str, str] = {}
    for text in passages:
        for word in text.split():
            terms = index.analyzer.terms(word)
            for term in terms:
                counts[term] += 1
                surface.setdefault(term, word if len(terms) == 1 else term)
    searcher = index.searcher
    fields = [COMBINED_FIELD] if index.weights is not None else index.fields
    doc_freq = {t: max(searcher.doc_freq(f, t) for f in fields) for t in counts}
    return [surface[t] for t in distinctive(counts, doc_freq, index.num_docs, k)]
