"""Text analysis per language and script, on real tantivy indexes of real tables."""

from __future__ import annotations

import math
from collections import Counter

import pytest

import hybrid
from hybrid.index.analyzer import STEMMERS, STOP_WORD_LANGUAGES, Analyzer
from hybrid.index.language import detect_language

FILLER = [f"filler row number {i} about nothing in particular" for i in range(12)]

# (inflected form in the query, the form in the document): Snowball gives both one stem
INFLECTIONS = {
    "en": ("connections", "connection"), "de": ("Häusern", "Haus"), "fr": ("chanteuses", "chanteuse"),
    "es": ("casas", "casa"), "it": ("gatti", "gatto"), "pt": ("livros", "livro"), "nl": ("boeken", "boek"),
    "sv": ("bilarna", "bil"), "no": ("bilene", "bil"), "da": ("bilerne", "bil"), "fi": ("taloissa", "talo"),
    "ru": ("книгами", "книга"), "hu": ("házakban", "ház"), "ro": ("orașul", "oraș"), "tr": ("kitaplar", "kitap"),
    "ar": ("الكتاب", "كتاب"), "el": ("ανθρώπων", "άνθρωπος"), "ta": ("வீடுகள்", "வீடு"),
}  # fmt: skip
STOP_WORDS = {
    "en": "which", "de": "und", "fr": "les", "es": "los", "it": "gli", "pt": "uma", "nl": "het", "sv": "och",
    "no": "og", "da": "og", "fi": "olla", "ru": "и", "hu": "hogy",
}  # fmt: skip


def test_every_stemming_language_is_covered() -> None:
    assert set(INFLECTIONS) == set(STEMMERS)
    assert set(STOP_WORDS) == set(STOP_WORD_LANGUAGES)


@pytest.mark.parametrize("language", sorted(INFLECTIONS))
def test_inflected_query_finds_the_base_form(db: hybrid.Database, language: str) -> None:
    inflected, base = INFLECTIONS[language]
    t = db.create_table("t", [{"id": i, "text": s} for i, s in enumerate([f"{base} zz", *FILLER])])
    t.create_fts_index("text", language=language)
    hits = t.search(inflected, query_type="fts").to_list()
    assert [h["id"] for h in hits] == [0]


@pytest.mark.parametrize("language", sorted(STOP_WORDS))
def test_stop_words_are_not_terms(language: str) -> None:
    analyzer = Analyzer(language=language)
    assert analyzer.terms(STOP_WORDS[language]) == []
    # the same word is an ordinary term when stop words are off
    assert Analyzer(language=language, stop_words=False).terms(STOP_WORDS[language]) != []


SAMPLES = {
    "en": "The committee published its annual report on water quality in the northern districts last week.",
    "de": "Der Ausschuss veröffentlichte letzte Woche seinen Jahresbericht über die Wasserqualität im Norden.",
    "es": "El comité publicó la semana pasada su informe anual sobre la calidad del agua en los distritos.",
    "ru": "Комитет на прошлой неделе опубликовал ежегодный доклад о качестве воды в северных районах.",
    "fr": "Le comité a publié la semaine dernière son rapport annuel sur la qualité de l'eau dans le nord.",
}


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_auto_picks_the_language_records_it_and_keeps_it_after_reopening(db: hybrid.Database, language: str) -> None:
    rows = [{"id": i, "text": f"{SAMPLES[language]} ({i})"} for i in range(8)]
    t = db.create_table("t", rows)
    t.create_fts_index("text")  # language="auto" is the default
    stats = next(s for s in t.index_stats() if s["kind"] == "fts")
    assert stats["analyzer"]["language"] == language
    assert stats["language_detection"]["language"] == language
    assert stats["language_detection"]["shares"][language] >= 0.8
    reopened = hybrid.connect(db.path).open_table("t")
    stats = next(s for s in reopened.index_stats() if s["kind"] == "fts")
    assert stats["analyzer"]["language"] == language


def test_auto_falls_back_to_multi_for_a_mixed_table_and_to_english_for_a_tiny_one() -> None:
    mixed = [" ".join([SAMPLES[lang]] * 4) for lang in ("en", "de", "ru", "es")] * 3  # each document long enough
    assert detect_language(mixed).language == "multi"
    assert detect_language(["keys"]).language == "en"


# one sentence per script; every word of it must be findable alone
SCRIPTS = {
    "th": "ภาษาไทยเขียนติดกันโดยไม่มีช่องว่างระหว่างคำ",
    "hi": "हिन्दी में क़िले और मंदिर की कहानियाँ लिखी गईं",
    "vi": "Đội bóng đã thắng trận đấu cuối cùng của mùa giải",
    "ar": "الطلاب يدرسون اللغة العربية في المكتبة الكبيرة",
    "ru": "Студенты изучают русский язык в большой библиотеке",
    "el": "Οι φοιτητές μελετούν την ελληνική γλώσσα στη βιβλιοθήκη",
    "ja": "東京の図書館で日本語を勉強しています",
}


@pytest.mark.parametrize("language", sorted(SCRIPTS))
def test_every_word_of_a_sentence_is_findable_alone(db: hybrid.Database, language: str) -> None:
    sentence = SCRIPTS[language]
    t = db.create_table("t", [{"id": i, "text": s} for i, s in enumerate([sentence, *FILLER])])
    t.create_fts_index("text")
    analyzer = Analyzer(language="multi")
    words = sentence.split() if " " in sentence else [sentence[i : i + 2] for i in range(0, len(sentence) - 1, 3)]
    for word in words:
        assert analyzer.terms(word), f"{word!r} yields no term"
        hits = t.search(word, query_type="fts").limit(1).to_list()
        assert hits and hits[0]["id"] == 0, f"{language}: {word!r} does not find its sentence"


def test_a_long_unspaced_run_is_indexed_not_dropped(db: hybrid.Database) -> None:
    run = "ก" * 120 + "ข" * 80  # 200 characters, 600 bytes of Thai with no space
    latin = "x" * 90 + "y" * 110  # and a 200-letter Latin "word"
    t = db.create_table("t", [{"id": i, "text": s} for i, s in enumerate([run, latin, *FILLER])])
    t.create_fts_index("text", language="multi")
    assert t.search("กข", query_type="fts").limit(1).to_list()[0]["id"] == 0
    assert t.search("y" * 40, query_type="fts").limit(1).to_list()[0]["id"] == 1
    assert all(len(term) <= 40 for term in Analyzer(language="multi").terms(latin))


def test_vietnamese_tone_marks_keep_words_apart(db: hybrid.Database) -> None:
    words = ["đội", "đối", "đồi", "dời"]  # team, opposite, hill, move: distinct words
    analyzer = Analyzer(language="vi")
    assert len({tuple(analyzer.terms(w)) for w in words}) == len(words)
    t = db.create_table("t", [{"id": i, "text": w} for i, w in enumerate(words)] + [{"id": 9, "text": "x"}])
    t.create_fts_index("text", language="vi")
    for i, w in enumerate(words):
        assert [h["id"] for h in t.search(w, query_type="fts").to_list()] == [i]


def test_hindi_combining_marks_stay_inside_the_word() -> None:
    assert Analyzer(language="hi", version=2).terms("क़िले नमस्ते") == ["क़िले", "नमस्ते"]
    # version 3 folds the nukta (a spelling variant) and keeps every other mark: one term per word
    assert Analyzer(language="hi", stem=False).terms("क़िले नमस्ते") == ["किले", "नमस्ते"]


def test_english_folds_accents_other_languages_keep_them() -> None:
    assert Analyzer(language="en").terms("café") == ["cafe"]
    assert Analyzer(language="fr").terms("café") == ["caf"]  # the French stemmer sees the accent
    assert Analyzer(language="es", ascii_folding=True).terms("canción") == ["cancion"]


def test_identifiers_are_kept_whole_and_in_parts(db: hybrid.Database) -> None:
    assert Analyzer().terms("os.path.join") == ["os", "path", "join", "ospathjoin"]
    assert Analyzer().terms("--dry-run snake_case") == ["dri", "run", "dryrun", "snake", "case", "snakecas"]
    assert Analyzer(identifiers=False).terms("os.path.join") == ["os", "path", "join"]
    docs = [
        "Join the parts of a path with os.path.join.",
        "The os module: path handling, join and split utilities, and more.",
        *FILLER,
    ]
    t = db.create_table("t", [{"id": i, "text": s} for i, s in enumerate(docs)])
    t.create_fts_index("text")
    assert t.search("what does os.path.join do?", query_type="fts").limit(1).to_list()[0]["id"] == 0


HOSTILE = [
    "how do I rotate keys?",
    '"unbalanced quote',
    "AND OR NOT ( ) [ ] { } ^ ~ * : \\ /",
    "title:keys -rotate +monthly",
    "x" * 10_000,
    "rotate\x00keys\x07\x1b[31m",
    "ключи 密钥 keys مفتاح",
    "🔑🔑🔑 keys",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_never_raise(db: hybrid.Database, query: str) -> None:
    t = db.create_table("t", [{"id": i, "text": s} for i, s in enumerate(["rotate keys monthly", *FILLER])])
    t.create_fts_index("text")
    t.search(query, query_type="fts").to_list()  # results or none, never an exception


@pytest.mark.parametrize("query", ["the of and", "?!?...", "\x00\x01"])
def test_queries_with_no_terms_return_nothing(db: hybrid.Database, query: str) -> None:
    t = db.create_table("t", [{"id": i, "text": s} for i, s in enumerate(["rotate keys monthly", *FILLER])])
    t.create_fts_index("text", language="en")
    assert t.search(query, query_type="fts").to_list() == []


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_an_empty_query_is_a_clear_error(db: hybrid.Database, query: str) -> None:
    t = db.create_table("t", [{"id": 0, "text": "rotate keys"}])
    t.create_fts_index("text")
    with pytest.raises(ValueError, match="empty"):
        t.search(query, query_type="fts").to_list()


# -- BM25F -------------------------------------------------------------------------------------------

BM25F_DOCS = [
    ("apple pie", "baked with apples and cinnamon"),
    ("banana bread", "apple sauce keeps it moist"),
    ("cherry tart", "sour cherries in a crust"),
    ("plain", "nothing sweet here at all"),
]


def _bm25f(query: list[str], weights: dict[str, int], analyzer: Analyzer) -> list[float]:
    """BM25F by hand: per document, term counts and length summed over fields times their weights."""
    docs = []
    for title, body in BM25F_DOCS:
        counts = Counter({t: n * weights["title"] for t, n in Counter(analyzer.terms(title)).items()})
        for t, n in Counter(analyzer.terms(body)).items():
            counts[t] += n * weights["body"]
        docs.append(counts)
    lengths = [sum(c.values()) for c in docs]
    avg = sum(lengths) / len(lengths)
    out = []
    for counts, length in zip(docs, lengths):
        score = 0.0
        for term in query:
            df = sum(1 for c in docs if c[term])
            if counts[term]:
                idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
                tf = counts[term]
                score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avg))
        out.append(score)
    return out


@pytest.mark.parametrize("weights", [{"title": 1, "body": 1}, {"title": 3, "body": 1}])
def test_bm25f_scores_equal_a_hand_computation(db: hybrid.Database, weights: dict[str, int]) -> None:
    rows = [{"id": i, "title": ti, "body": b} for i, (ti, b) in enumerate(BM25F_DOCS)]
    t = db.create_table("t", rows)
    t.create_fts_index(["title", "body"], language="en", weights=weights)
    analyzer = Analyzer(language="en")
    expected = _bm25f(analyzer.terms("apple"), weights, analyzer)
    got = {h["id"]: h["_bm25"] for h in t.search("apple", query_type="fts").to_list()}
    assert set(got) == {i for i, s in enumerate(expected) if s > 0}
    for i, score in got.items():
        # tantivy stores lengths in one byte (exact below 40 tokens, as here)
        assert score == pytest.approx(expected[i], rel=1e-4)


def test_bm25f_and_per_field_scores_differ_and_rows_added_later_score_alike(db: hybrid.Database) -> None:
    rows = [{"id": i, "title": ti, "body": b} for i, (ti, b) in enumerate(BM25F_DOCS)]
    t = db.create_table("t", rows)
    t.create_fts_index(["title", "body"], language="en", weights={"title": 2})
    fields = db.create_table("f", rows)
    fields.create_fts_index(["title", "body"], language="en", scoring="fields")
    bm25f = {h["id"]: h["_bm25"] for h in t.search("apple", query_type="fts").to_list()}
    summed = {h["id"]: h["_bm25"] for h in fields.search("apple", query_type="fts").to_list()}
    assert bm25f.keys() == summed.keys() and bm25f != summed
    # a row added after the build is scored in the same BM25F field as a rebuilt index scores it
    t.add([{"id": 9, "title": "apple pie", "body": "baked with apples and cinnamon"}])
    fresh = {h["id"]: h["_bm25"] for h in t.search("apple", query_type="fts").to_list()}
    t.optimize()
    rebuilt = {h["id"]: h["_bm25"] for h in t.search("apple", query_type="fts").to_list()}
    assert fresh[9] == pytest.approx(rebuilt[9], rel=0.05)


def test_weights_are_checked(db: hybrid.Database) -> None:
    t = db.create_table("t", [{"id": 0, "title": "a", "body": "b"}])
    with pytest.raises(hybrid.SchemaError, match="not indexed"):
        t.create_fts_index(["title", "body"], weights={"text": 2})
    with pytest.raises(ValueError, match="whole numbers"):
        t.create_fts_index(["title", "body"], weights={"title": 0.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="unknown language"):
        t.create_fts_index(["title"], language="english")


def test_equal_analyzers_share_one_built_tantivy_analyzer() -> None:
    """Building one compiles a Unicode regex holding the GIL (~20 ms): an index opened with the
    analyzer read back from its entry reuses the one built already; different analyzers do not share."""
    stored = Analyzer(language="de").to_dict()
    assert Analyzer.from_dict(stored).tantivy_analyzer is Analyzer.from_dict(stored).tantivy_analyzer
    assert Analyzer(language="de").tantivy_analyzer is not Analyzer(language="fr").tantivy_analyzer
    assert Analyzer.from_dict(stored).terms("Die Häuser") == ["haus"]
