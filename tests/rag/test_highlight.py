"""Highlights: `.highlight()` marks matched words with offsets into the stored text (English, stems, Chinese)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.errors import SchemaError
from hybrid.index.analyzer import Analyzer
from hybrid.ingest import snippets
from hybrid.query import highlight

ENGLISH = [
    "The indexes were rebuilt overnight.\n\n  Indexing   twice is slow.",
    "Vacuum reclaims storage; the planner uses statistics.",
    "Nothing relevant lives here at all.",
]


def marked_words(hit: dict[str, Any], column: str = "text") -> list[str]:
    return [hit[column][s["start"] : s["end"]] for s in hit["_highlight_spans"]]


@pytest.fixture
def english(tmp_path: Path) -> hybrid.Table:
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table(
        "en", [{"id": i, "text": x} for i, x in enumerate(ENGLISH)], embedding={"vector": ("text", HashingEmbedder(16))}
    )
    t.create_fts_index("text")
    return t


def test_offsets_point_at_the_matched_words_in_the_stored_text(english: hybrid.Table) -> None:
    hit = english.search("vacuum storage", query_type="fts").highlight().to_list()[0]
    assert marked_words(hit) == ["Vacuum", "storage"]
    assert hit["_highlight"] == "<em>Vacuum</em> reclaims <em>storage</em>; the planner uses statistics."
    assert hit["_highlight_window"] == {"start": 0, "end": len(hit["text"])}


def test_stemmed_forms_are_marked_and_stop_words_are_not(english: hybrid.Table) -> None:
    hit = english.search("the index", query_type="fts").highlight(pre="[", post="]").to_list()[0]
    assert hit["id"] == 0
    assert marked_words(hit) == ["indexes", "Indexing"]  # offsets survive the blank line and runs of spaces
    assert "[The]" not in hit["_highlight"] and "[indexes]" in hit["_highlight"]


def test_hybrid_and_vector_hits_carry_highlights_too(english: hybrid.Table) -> None:
    for query_type in ("hybrid", "vector"):
        hits = english.search("planner statistics", query_type=query_type).highlight().to_list()
        by_id = {h["id"]: h for h in hits}
        assert marked_words(by_id[1]) == ["planner", "statistics"]
        assert by_id[2]["_highlight_spans"] == [] and by_id[2]["_highlight"] == ENGLISH[2]


def test_a_long_text_gets_a_window_around_its_matches(tmp_path: Path) -> None:
    long = "filler words " * 60 + "the rotation of signing keys happens monthly " + "more filler " * 60
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("l", [{"text": long}])
    t.create_fts_index("text")
    hit = t.search("rotate keys").highlight(width=80).to_list()[0]
    window = hit["_highlight_window"]
    assert window["end"] - window["start"] <= 80
    assert hit["_highlight"].startswith("…") and hit["_highlight"].endswith("…")
    assert marked_words(hit) == ["rotation", "keys"]
    assert all(window["start"] <= s["start"] and s["end"] <= window["end"] for s in hit["_highlight_spans"])
    assert (
        hit["_highlight"].removeprefix("…").removesuffix("…").replace("<em>", "").replace("</em>", "")
        == (long[window["start"] : window["end"]])
    )


@pytest.mark.parametrize("tokenizer", ["jieba", "default"])
def test_chinese_matches_are_runs_of_the_querys_terms(tmp_path: Path, tokenizer: str) -> None:
    pytest.importorskip("jieba")
    texts = ["我们正在研究机器学习的新方法。", "今天天气很好，我们去公园散步。"]
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("zh", [{"text": x} for x in texts])
    t.create_fts_index("text", tokenizer=tokenizer, language="zh")
    hit = t.search("机器学习", query_type="fts").highlight().to_list()[0]
    assert hit["text"] == texts[0]
    assert marked_words(hit) == ["机器学习"]
    assert hit["_highlight"] == "我们正在研究<em>机器学习</em>的新方法。"


def test_mixed_scripts_keep_offsets(tmp_path: Path) -> None:
    text = "用 Python 实现机器学习 pipelines"
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("m", [{"text": text}])
    t.create_fts_index("text", language="multi")
    hit = t.search("python 机器学习").highlight().to_list()[0]
    assert marked_words(hit) == ["Python", "机器学习"]


def test_the_cli_snippets_share_the_matcher() -> None:
    assert snippets.TermMatcher is highlight.TermMatcher
    s = snippets.snippet("Building   indexes\nconcurrently.", "index concurrently")
    assert s.text == "Building indexes concurrently." and [s.text[a:b] for a, b in s.spans] == [
        "indexes",
        "concurrently",
    ]


def test_bad_highlight_input_says_what_was_wrong(english: hybrid.Table) -> None:
    with pytest.raises(ValueError, match="width must be an integer >= 10"):
        english.search("index").highlight(width=3)
    with pytest.raises(SchemaError, match="no column 'body'"):
        english.search("index").highlight(column="body").to_list()
    with pytest.raises(SchemaError, match="does not hold text"):
        english.search("index").highlight(column="id").to_list()
    with pytest.raises(ValueError, match="highlight needs a plain text query"):
        english.search([0.1] * 16, query_type="vector").highlight().to_list()


def test_a_row_without_text_gets_null_highlights_beside_marked_ones(tmp_path: Path) -> None:
    rows = [
        {"id": 0, "text": "vacuum one", "note": "Vacuum reclaims storage."},
        {"id": 1, "text": "vacuum two", "note": None},
        {"id": 2, "text": "vacuum three", "note": "More vacuum."},
    ]
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("n", rows)
    t.create_fts_index("text")
    hits = {h["id"]: h for h in t.search("vacuum", query_type="fts").highlight(column="note").to_list()}
    assert set(hits) == {0, 1, 2}
    assert hits[1]["_highlight"] is None and hits[1]["_highlight_spans"] is None
    assert hits[1]["_highlight_window"] is None
    assert marked_words(hits[0], "note") == ["Vacuum"] and marked_words(hits[2], "note") == ["vacuum"]
    assert hits[2]["_highlight_window"] == {"start": 0, "end": len("More vacuum.")}


_WORDS = ["index", "indexes", "Indexing", "w1", "w12", "w1_2", "x", "vacuum", "the", "12", "_", "a"]
_GAPS = [" ", "  ", ".", ", ", "\n", "-", "'", "/", ""]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(_WORDS), st.sampled_from(_GAPS)), max_size=12).map(
            lambda parts: "".join(w + g for w, g in parts)
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["index", "w1 vacuum", "w12 x", "12 the index", "a w1_2"]),
)
def test_texts_looked_up_together_get_the_spans_each_gets_alone(texts: list[str], query: str) -> None:
    """The batched path (all texts' words at once, matches found between spaces) marks exactly what
    the one-text path marks: words touching punctuation, text starts and ends, words inside words."""
    m = highlight.TermMatcher(query)
    assert m.spans_many(texts) == [m.spans(t) for t in texts]


@pytest.mark.parametrize("query", ["create index", "os.path.join --dry-run", "w1_2 x-ray", "it's 12:30, Indexing!", ""])
def test_an_ascii_query_gets_the_terms_of_its_word_characters(query: str) -> None:
    """ASCII queries skip the unspaced-script handling: their terms are still those of every \\w+ run."""
    m = highlight.TermMatcher(query)
    assert m.query_terms == frozenset(t for w in re.findall(r"\w+", query) for t in m.terms(w))
    assert m.unspaced_terms == ()


def test_the_window_holds_the_most_distinct_terms_when_matches_spread(tmp_path: Path) -> None:
    """Matches beyond one window: the window with both query words wins over the one with repeats."""
    text = "alpha alpha alpha " + "x " * 150 + "alpha then beta here " + "y " * 150
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("w", [{"text": text}])
    t.create_fts_index("text")
    hit = t.search("alpha beta").highlight(width=60).to_list()[0]
    window = hit["_highlight_window"]
    shown = [
        text[s["start"] : s["end"]]
        for s in hit["_highlight_spans"]
        if window["start"] <= s["start"] and s["end"] <= window["end"]
    ]
    assert shown == ["alpha", "beta"]
    assert marked_words(hit) == ["alpha"] * 4 + ["beta"]


def test_highlight_columns_keep_one_type_with_and_without_null_texts(tmp_path: Path) -> None:
    rows = [{"text": "vacuum one", "note": n} for n in ("Vacuum here.", None)]
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("n", rows)
    t.create_fts_index("text")
    for column in ("text", "note"):  # every text present; one of them null
        schema = t.search("vacuum", query_type="fts").highlight(column=column).to_arrow().schema
        assert schema.field("_highlight_window").type == highlight.SPAN
        assert schema.field("_highlight_spans").type == pa.list_(highlight.SPAN)
        assert schema.field("_highlight").type == pa.string()


def test_a_text_looked_at_before_gets_a_later_querys_words_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A text whose words were looked up once is remembered (its words are not split and looked up
    again), yet a later query marks every word giving one of its terms, stemmed forms included."""
    monkeypatch.setattr(highlight, "_caches", {})
    texts = ["Building indexes concurrently avoids locking.", "Vacuuming reclaims storage; indexes bloat."]
    first = highlight.TermMatcher("locking")
    assert [[t[a:b] for a, b in s] for t, s in zip(texts, first.spans_many(texts))] == [["locking"], []]
    assert first._cache.texts == {hash(t) for t in texts}
    later = highlight.TermMatcher("index vacuum")
    found = later.spans_many(texts)
    assert [[t[a:b] for a, b in s] for t, s in zip(texts, found)] == [["indexes"], ["Vacuuming", "indexes"]]
    assert found == [later.spans(t) for t in texts]


def test_the_word_and_text_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bound the memory starts afresh (words and texts together), and marks stay the same."""
    monkeypatch.setattr(highlight, "_caches", {})
    monkeypatch.setattr(highlight, "_CACHE_TEXTS", 2)
    texts = [f"Indexes number {i} and w{i} indexing." for i in range(4)]
    m = highlight.TermMatcher("index")
    expected = [[(0, 7), (len(t) - 9, len(t) - 1)] for t in texts]
    for _ in range(3):
        assert highlight.TermMatcher("index").spans_many(texts) == expected
        assert m.spans_many(texts[:1]) == expected[:1]
    assert len(highlight._cache_for(m.analyzer).texts) <= 4


_STEMS = ["index", "indexes", "Indexing", "INDEXED", "vacuum", "Vacuumed", "w1", "w12", "w1_2", "12", "the", "os"]
_FREE_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_", min_size=1, max_size=9)
_SEPARATORS = [" ", "  ", ".", ", ", "\n", "-", "'", "/", "\t", ". "]


def _reference(text: str, query: str) -> list[tuple[int, int]]:
    """The plain definition, with no memory of words or texts: every \\w+ run of an ASCII text whose
    analysed terms meet the query's."""
    analyzer = Analyzer()
    wanted = {t for w in re.findall(r"\w+", query) for t in analyzer.terms(w)}
    return [m.span() for m in re.finditer(r"\w+", text) if wanted & set(analyzer.terms(m.group()))]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(st.one_of(st.sampled_from(_STEMS), _FREE_WORDS), st.sampled_from(_SEPARATORS)), max_size=15
        ).map(lambda parts: "".join(w + g for w, g in parts)),
        min_size=1,
        max_size=8,
    ),
    st.lists(st.one_of(st.sampled_from(_STEMS), _FREE_WORDS), min_size=1, max_size=4).map(" ".join),
    st.booleans(),
)
def test_the_batched_matcher_marks_what_the_plain_definition_marks(texts: list[str], query: str, seen: bool) -> None:
    """First-seen or remembered texts, stemmed forms, case, punctuation, repeats touching and words
    never seen before: the batch matcher (substring search for the known matching words) marks exactly
    the \\w+ runs whose terms meet the query's, and what the one-text path marks."""
    m = highlight.TermMatcher(query)
    if seen:  # the texts remembered from another query's look at them
        highlight.TermMatcher("unrelated").spans_many(texts)
    found = m.spans_many(texts)
    assert found == [_reference(t, query) for t in texts]
    assert found == [m.spans(t) for t in texts]


@pytest.mark.parametrize(
    ("texts", "query"),
    [
        (["机器学习 uses indexes.", "Indexes again"], "index 学习"),  # an unspaced script: one text at a time
        (["机器学习 uses indexes.", "Indexes again"], "index"),
        (["index", "index", "", "index index"], "index"),  # texts that touch at the joins, and an empty one
        (["indexes\0index", "x"], "index"),  # a text holding the join character itself
    ],
)
def test_batch_spans_hold_at_text_edges_and_beside_cjk(texts: list[str], query: str) -> None:
    m = highlight.TermMatcher(query)
    found = m.spans_many(texts)
    assert found == [m.spans(t) for t in texts]
    expected = r"index\w*|学习" if "学习" in query else r"index\w*"
    assert [[t[a:b] for a, b in s] for t, s in zip(texts, found)] == [re.findall(expected, t, re.I) for t in texts]


def test_a_matching_word_too_long_to_pack_still_gets_its_span() -> None:
    """Batch matches pack a word's length in 16 bits; a longer matching word takes the one-text path."""
    texts = ["x " + "a" * 70_000 + " y", "a" * 40]
    m = highlight.TermMatcher("a" * 40)
    assert m.spans_many(texts) == [[(2, 70_002)], [(0, 40)]] == [m.spans(t) for t in texts]
