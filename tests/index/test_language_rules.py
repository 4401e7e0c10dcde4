"""Version 3's per-language rules (Hindi normalisation and stemming; Russian ё), on real
tantivy indexes: a word is found by its variant, distinct words stay apart, and reopened tables and
indexes built by version 2 keep the analysis they were built with."""

from __future__ import annotations

import pytest

import hybrid
from hybrid.index.analyzer import CURRENT_VERSION, Analyzer

FILLER = [f"filler row number {i} about nothing in particular" for i in range(12)]

# (the document's word, a variant in the query): version 3 gives both the same term
HINDI_VARIANTS = [
    ("हिन्दी", "हिंदी"),  # nasal half letter / anusvara
    ("फ़िल्म", "फिल्म"),  # nukta
    ("हँसना", "हंसना"),  # chandrabindu / anusvara
    ("लड़कियों", "लड़की"),  # oblique plural / singular
    ("किताबें", "किताब"),  # plural / singular
    ("खेलता", "खेलते"),  # verb forms
    ("ज़िले", "\u091c\u093c\u093f\u0932\u0947".replace("\u091c\u093c", "\u095b")),  # nukta combining / precomposed
]


def _table(db: hybrid.Database, texts: list[str], language: str) -> hybrid.Table:
    t = db.create_table("t", [{"id": i, "text": s} for i, s in enumerate([*texts, *FILLER])])
    t.create_fts_index("text", language=language)
    return t


def _ids(t: hybrid.Table, query: str) -> list[int]:
    return [h["id"] for h in t.search(query, query_type="fts").to_list()]


@pytest.mark.parametrize(("word", "variant"), HINDI_VARIANTS)
def test_a_hindi_word_is_found_by_its_variant_both_ways(db: hybrid.Database, word: str, variant: str) -> None:
    t = _table(db, [f"यह {word} है", f"यह {variant} था"], "hi")
    assert _ids(t, variant) == _ids(t, word) and sorted(_ids(t, word)) == [0, 1]
    # version 2 kept the spellings apart: the rule is what finds them
    assert Analyzer("hi", version=2).terms(word) != Analyzer("hi", version=2).terms(variant)


def test_hindi_words_that_differ_in_meaning_stay_apart(db: hybrid.Database) -> None:
    # day / poor (vowel length), place / skin (ष / श are different letters), year / hair (न / ल)
    pairs = [("दिन", "दीन"), ("स्थान", "स्तन"), ("साल", "बाल"), ("कम", "काम")]
    analyzer = Analyzer("hi")
    for a, b in pairs:
        assert analyzer.terms(a) and analyzer.terms(a) != analyzer.terms(b), (a, b)
    words = [w for pair in pairs for w in pair]
    t = _table(db, words, "hi")
    for i, w in enumerate(words):
        assert _ids(t, w) == [i], w


def test_hindi_function_words_stay_searchable_and_stemming_can_be_turned_off() -> None:
    # no stop words for Hindi (they cost the hybrid more than they gave BM25): each word is a term
    assert len(Analyzer("hi").terms("का की के में है और क्या")) == 7
    assert Analyzer("hi", stem=False).terms("किताबें") == ["किताबें"]
    assert Analyzer("hi").terms("किताबें") == ["किताब"]


def test_other_scripts_in_hindi_text_are_left_alone() -> None:
    assert Analyzer("hi").terms("Super Bowl 50 और NFL") == ["super", "bowl", "50", "और", "nfl"]
    assert Analyzer("hi").terms("१९४७ में") == ["१९४७", "में"]  # Devanagari digits are not words to stem


def test_russian_yo_is_written_ye(db: hybrid.Database) -> None:
    t = _table(db, ["Зелёная ёлка стоит в парке", "Зеленая елка стоит в саду"], "ru")
    assert sorted(_ids(t, "ёлка")) == [0, 1] and sorted(_ids(t, "елка")) == [0, 1]
    # the stemmer folded ё already; the stop words (all, still) and unstemmed terms did not
    assert Analyzer("ru").terms("всё ещё") == [] != Analyzer("ru", version=2).terms("всё ещё")
    assert Analyzer("ru", stem=False).terms("ёлка") == ["елка"] != Analyzer("ru", stem=False, version=2).terms("ёлка")
    # other Cyrillic letters are not merged: е and э, и and й stay distinct words
    assert Analyzer("ru").terms("мэр") != Analyzer("ru").terms("мер")
    assert Analyzer("ru").terms("мой") != Analyzer("ru").terms("мои")


SAMPLES = {
    "en": "The committee's report on os.path.join, café prices and naïve users",
    "de": "Die Häuser der Straßenbahngesellschaft wurden 1901 gebaut",
    "es": "La canción más famosa de la región",
    "vi": "Đội bóng đã thắng trận đấu cuối cùng của mùa giải",
    "zh": "东京的图书馆里有很多日本语的书",
    "th": "ภาษาไทยเขียนติดกันโดยไม่มีช่องว่างระหว่างคำ",
    "multi": "हिन्दी में क़िले और Ёлка",
}


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_languages_without_a_new_rule_analyse_as_version_2_did(language: str) -> None:
    assert Analyzer(language).terms(SAMPLES[language]) == Analyzer(language, version=2).terms(SAMPLES[language])


def test_reopening_keeps_the_analysis_and_a_version_2_index_keeps_its_own(db: hybrid.Database) -> None:
    t = _table(db, ["हिन्दी फ़िल्मों की कहानियाँ"], "hi")
    stats = next(s for s in t.index_stats() if s["kind"] == "fts")
    assert stats["analyzer"]["version"] == CURRENT_VERSION and stats["analyzer"]["language"] == "hi"
    reopened = hybrid.connect(db.path).open_table("t")
    assert _ids(reopened, "हिंदी फिल्म") == [0]
    # an index built before version 3 stored version 2, and is read back as version 2
    old = Analyzer.from_dict({**stats["analyzer"], "version": 2})
    assert old.terms("हिंदी फिल्म") == ["हिंदी", "फिल्म"] and old.terms("हिन्दी") == ["हिन्दी"]
