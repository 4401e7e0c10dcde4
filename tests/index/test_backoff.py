"""Version 5's prefix back-off: a query term no document holds is searched by its longest known prefix
(hybrid/index/backoff.py); known terms, numbers and codes, and indexes built by version 4 are untouched."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
from hybrid.index.analyzer import CURRENT_VERSION, Analyzer
from hybrid.index.backoff import SHORTEST, WEIGHT, backoff
from hybrid.index.fulltext import FullTextIndex
from hybrid.query.text import Match

FILLER = [f"Zeile Nummer {i} über nichts Besonderes" for i in range(12)]


def _index(texts: list[str], analyzer: Analyzer) -> FullTextIndex:
    ids = np.arange(len(texts), dtype=np.uint64)
    return FullTextIndex.build(None, ["text"], analyzer, [(ids, {"text": texts})])


def _hits(index: FullTextIndex, query: str, k: int = 5) -> tuple[list[int], list[float]]:
    compiled = index.compile(Match(query))
    if compiled is None:
        return [], []
    ids, scores = index.search(compiled, k)
    return [int(i) for i in ids], [float(s) for s in scores]


# (language, document, query): the query word's form is one the corpus never uses, its stem-like prefix is
PAIRS = [
    ("de", "Tesla baute in Colorado einen Turm.", "Teslas"),
    ("ru", "Договор подписали в Варшаве.", "варшавский"),
    ("es", "La electricidad llegó tarde al pueblo.", "electrificación"),
]


@pytest.mark.parametrize(("language", "document", "query"), PAIRS)
def test_an_unknown_form_finds_the_document_by_its_known_prefix(language: str, document: str, query: str) -> None:
    texts = [document, *FILLER]
    assert _hits(_index(texts, Analyzer(language)), query)[0][:1] == [0]
    # version 4 (the same terms indexed) finds nothing: the back-off is what finds it
    old = _index(texts, Analyzer(language, version=4))
    assert _hits(old, query)[0] == []
    assert Analyzer(language).terms(document) == Analyzer(language, version=4).terms(document)


def test_a_backed_off_match_weighs_as_a_whole_word() -> None:
    index = _index(["Tesla baute einen Turm.", *FILLER], Analyzer("de"))
    assert _hits(index, "Teslas")[1] == pytest.approx([s * WEIGHT for s in _hits(index, "Tesla")[1]], rel=1e-6)
    assert index.match_terms("Teslas Turm") == (("teslas", 1), ("turm", 1), ("tesla", WEIGHT))


class _CountingSearcher:
    """A tantivy searcher that counts its document-frequency look-ups."""

    def __init__(self, searcher: object) -> None:
        self.searcher, self.asked = searcher, 0

    def doc_freq(self, field: str, term: str) -> int:
        self.asked += 1
        return self.searcher.doc_freq(field, term)  # type: ignore[attr-defined]


def test_a_texts_match_terms_are_looked_up_once() -> None:
    index = _index(["Tesla baute einen Turm.", *FILLER], Analyzer("de"))
    counting = _CountingSearcher(index.searcher)
    index._searcher = counting  # type: ignore[assignment]
    first = index.match_terms("Teslas Turm")
    asked = counting.asked
    assert asked > 0 and index.match_terms("Teslas Turm") == first == (("teslas", 1), ("turm", 1), ("tesla", WEIGHT))
    assert counting.asked == asked  # the second search of the text (its unindexed rows) asks nothing again
    assert index.match_terms("Turm") == (("turm", 1),) and counting.asked > asked


def test_known_terms_score_exactly_as_before() -> None:
    texts = ["Tesla baute einen Turm in Colorado.", "Ein Turm aus Holz.", *FILLER]
    new, old = _index(texts, Analyzer("de")), _index(texts, Analyzer("de", version=4))
    for query in ("Turm Colorado", "Holz Nummer 3", "Tesla"):
        assert _hits(new, query) == _hits(old, query)


def test_numbers_codes_and_short_words_are_never_backed_off() -> None:
    index = _index(["Modell ZK31 von Tesla.", *FILLER], Analyzer("de"))
    assert _hits(index, "ZK3100")[0] == []  # a code matches whole: ZK3100 is not ZK31
    assert backoff("zk3100", {"zk31"}.__contains__) is None
    assert backoff("teslas", {"tes"}.__contains__) is None  # shorter than SHORTEST
    assert backoff("abcd", {"abc"}.__contains__) is None and SHORTEST == 4
    assert backoff("वारसा", {"वार", "वारस"}.__contains__) == "वारस"  # combining marks are letters' parts


def test_appended_rows_are_scored_with_the_same_back_off(db: hybrid.Database) -> None:
    """Rows not yet in the index (the text tail) see the query the index sees."""
    t = db.create_table("t", [{"id": i, "text": s} for i, s in enumerate(["Tesla baute einen Turm.", *FILLER])])
    t.create_fts_index("text", language="de")
    t.add([{"id": 100, "text": "Tesla und Tesla in Colorado, Tesla."}])
    hits = [h["id"] for h in t.search("Teslas", query_type="fts").limit(3).to_list()]
    assert hits == [100, 0]
    stats = next(s for s in t.index_stats() if s["kind"] == "fts")
    assert stats["analyzer"]["version"] == CURRENT_VERSION == 5
