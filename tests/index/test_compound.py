"""Query-time compound splitting (hybrid/index/compound.py): an unknown German or Dutch word made of
two index terms, joined directly or by a linking element, finds the text that uses the parts."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.index.analyzer import Analyzer
from hybrid.index.backoff import WEIGHT
from hybrid.index.compound import SHORTEST, split
from hybrid.index.fulltext import FullTextIndex
from hybrid.query.text import Match

FILLER = [f"Zeile Nummer {i} über nichts Besonderes" for i in range(12)]


def _index(texts: list[str], analyzer: Analyzer) -> FullTextIndex:
    ids = np.arange(len(texts), dtype=np.uint64)
    return FullTextIndex.build(None, ["text"], analyzer, [(ids, {"text": texts})])


def _top(index: FullTextIndex, query: str) -> list[int]:
    compiled = index.compile(Match(query))
    return [] if compiled is None else [int(i) for i in index.search(compiled, 5)[0]]


# (language, the document using the parts, a shorter decoy with the first part only, which the prefix
# back-off alone ranks first, the compound asked)
CASES = [
    ("de", "Die Regierung des Bundes tagte in Berlin.", "Der Bund tagte.", "Bundesregierung"),
    ("de", "Das Licht der Sonne erreicht die Erde.", "Die Sonne ging unter.", "Sonnenlicht"),
    ("de", "Der Markt für Arbeit wuchs im Jahr 2015.", "Die Arbeit ruhte.", "Arbeitsmarkt"),
    ("nl", "De regering van het land viel in mei.", "Het land bloeide.", "landsregering"),
]


@pytest.mark.parametrize(("language", "document", "decoy", "query"), CASES)
def test_an_unknown_compound_finds_the_text_with_both_parts(
    language: str, document: str, decoy: str, query: str
) -> None:
    index = _index([decoy, document, *FILLER], Analyzer(language))
    assert _top(index, query)[:1] == [1]
    terms = dict(index.match_terms(query))
    assert len(terms) == 3 and all(w == WEIGHT for t, w in terms.items() if t not in Analyzer(language).terms(query))


def test_both_parts_are_asked_where_the_back_off_asked_the_head_alone() -> None:
    """Version 5's back-off gave "bund" alone (the longest known prefix); the split adds what a
    Bundesregierung is, a Regierung."""
    index = _index(["Die Regierung tagte.", "Die Regierung des Bundes tagte.", *FILLER], Analyzer("de"))
    assert index.match_terms("Bundesregierung") == (("bundesregier", 1), ("bund", WEIGHT), ("regier", WEIGHT))


def test_known_words_other_languages_numbers_and_short_parts_are_never_split() -> None:
    terms = {"bund", "regier", "haus", "arzt", "ab12"}.__contains__
    stems: dict[str, str] = {}
    assert split("bundesregier", terms, stems.get, "ru") is None  # not a compounding language
    assert split("hausarzt", terms, stems.get, "de") == ("haus", "arzt")
    assert split("abcregier", terms, stems.get, "de") is None  # head "abc" is too short
    assert split("ab12haus", terms, stems.get, "de") is None  # a code, matched whole
    assert split("hausarz", terms, stems.get, "de") is None  # "arz" is shorter than SHORTEST
    assert SHORTEST == 4
    index = _index(["Der Hausarzt kam.", "Das Haus und der Arzt.", *FILLER], Analyzer("de"))
    assert index.match_terms("Hausarzt") == (("hausarzt", 1),)  # a word the index knows stays whole
