"""Text query forms on a small hand-written table: plain text with punctuation, odd queries,
`Phrase`, `Boolean`, fuzzy `Match`, field boosts and the query-string syntax."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

import hybrid
from hybrid.index.analyzer import Analyzer
from hybrid.query.text import Boolean, Match, Phrase, QueryString


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory) -> hybrid.Table:
    """Hand-written rows for the text query forms, with a two-column (title, body) FTS index."""
    docs = [
        (0, "quick brown fox", "a dog sleeps"),
        (1, "brown quick fox", "the fox jumps"),
        (2, "lazy dog", "quick brown fox jumps over"),
        (3, "nothing here", "colour and color"),
        (4, "zebra", "a striped animal"),
        (5, "apple pie", "baked with apples"),
        (6, "apple", "an apple a day"),
        (7, "banana", "yellow fruit"),
    ] + [(i, f"filler {i}", "filler text words") for i in range(8, 40)]
    rows = [{"id": i, "title": ti, "body": b, "vector": [float(i), 1.0]} for i, ti, b in docs]
    t = hybrid.connect(tmp_path_factory.mktemp("forms")).create_table("forms", rows)
    t.create_fts_index(["title", "body"])
    return t


def ids_of(result: pa.Table, column: str = "id") -> list[Any]:
    return result.column(column).to_pylist()


# -- text query forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["apple &", "-apple", "apple-", "'apple'", '"apple', 'apple"', "(apple", "apple)", "apple^2", "apple~", "+apple",
     "apple*", "\\apple", "apple:", "[apple]", "{apple}", "apple!", "apple AND", "apple NOT", "apple || &&"],
)  # fmt: skip
def test_plain_text_with_punctuation_never_raises(forms: hybrid.Table, text: str) -> None:
    # A plain string is analysed like the indexed text: punctuation is dropped, operators are plain words.
    want = ids_of(forms.search("apple").to_arrow())
    assert want and set(want) == {5, 6}
    got = forms.search(text).to_arrow()
    terms = set(Analyzer().terms(text)) - {"appl"}
    if not terms:
        assert ids_of(got) == want
    else:  # words such as AND / NOT are ordinary (stop) words here
        assert set(want) <= set(ids_of(got))


@pytest.mark.parametrize("text", ["&", "-", '"', '"unbalanced', "unbalanced'", "a & b - c", "((", "\\", "*", ":"])
def test_odd_queries_never_raise(forms: hybrid.Table, text: str) -> None:
    assert forms.search(text).to_arrow().num_rows == 0  # none of these words occurs


def test_phrase(forms: hybrid.Table) -> None:
    assert set(ids_of(forms.search("quick brown fox").to_arrow())) == {0, 1, 2}
    exact_phrase = forms.search(Phrase("quick brown fox")).to_arrow()
    assert set(ids_of(exact_phrase)) == {0, 2}  # row 1 has "brown quick fox"
    assert set(ids_of(forms.search(Phrase("quick fox")).to_arrow())) == {1}
    assert set(ids_of(forms.search(Phrase("quick fox", slop=1)).to_arrow())) == {0, 1, 2}
    assert forms.search(Phrase("fox quick")).to_arrow().num_rows == 0


def test_boolean(forms: hybrid.Table) -> None:
    result = forms.search(Boolean(must=["fox"], should=["jumps"], must_not=[Phrase("lazy dog")])).to_arrow()
    assert ids_of(result) == [1, 0]  # 2 is excluded (title "lazy dog"); 1 has the should-term "jumps"
    assert set(ids_of(forms.search(Boolean(must=["fox", "dog"])).to_arrow())) == {0, 2}  # fox and dog, any column
    both = forms.search(Boolean(must=[Match("fox"), Match("dog")])).to_arrow()
    assert set(ids_of(both)) == {0, 2}
    only_should = forms.search(Boolean(should=["zebra", "banana"])).to_arrow()
    assert set(ids_of(only_should)) == {4, 7}
    assert forms.search(Boolean(must=["fox"], must_not=["fox"])).to_arrow().num_rows == 0
    with pytest.raises(ValueError, match="at least one must or should"):
        forms.search(Boolean(must_not=["fox"]))


def test_match_fuzziness(forms: hybrid.Table) -> None:
    assert forms.search(Match("zxbra")).to_arrow().num_rows == 0
    assert ids_of(forms.search(Match("zxbra", fuzziness=1)).to_arrow()) == [4]
    assert forms.search(Match("zxbrx", fuzziness=1)).to_arrow().num_rows == 0  # two edits away
    assert ids_of(forms.search(Match("zxbrx", fuzziness=2)).to_arrow()) == [4]


def test_field_boosts_change_order(forms: hybrid.Table) -> None:
    # row 2 has "dog" in the title only, row 0 in the body only
    def scores(boosts: dict[str, float] | None) -> dict[int, float]:
        r = forms.search(Match("dog")).text("dog", boosts=boosts).to_arrow()
        return dict(zip(ids_of(r), r.column("_bm25").to_pylist()))

    plain = scores({"title": 1.0, "body": 1.0})  # boosts score column by column (the default is BM25F)
    title = scores({"title": 5.0})
    body = scores({"body": 5.0})
    assert set(plain) == set(title) == set(body) == {0, 2}
    assert title[2] > title[0] and body[0] > body[2]
    assert title[2] == pytest.approx(5 * plain[2], rel=1e-5) and title[0] == pytest.approx(plain[0], rel=1e-5)
    assert body[0] == pytest.approx(5 * plain[0], rel=1e-5) and body[2] == pytest.approx(plain[2], rel=1e-5)
    ordered = forms.search("dog").text("dog", boosts={"title": 5.0}).to_arrow()
    assert ids_of(ordered) == [2, 0]
    assert ids_of(forms.search("dog").text("dog", boosts={"body": 5.0}).to_arrow()) == [0, 2]


def test_query_string(forms: hybrid.Table) -> None:
    assert set(ids_of(forms.search(QueryString("fox AND jumps")).to_arrow())) == {1, 2}
    assert set(ids_of(forms.search(QueryString("fox -jumps")).to_arrow())) == {0}
    assert set(ids_of(forms.search(QueryString('"brown fox"')).to_arrow())) == {0, 2}
    assert set(ids_of(forms.search(QueryString("zebra OR banana")).to_arrow())) == {4, 7}
    assert forms.search(QueryString("fox AND (")).to_arrow().num_rows >= 0  # lenient: never raises


def test_query_string_column_names(forms: hybrid.Table) -> None:
    assert set(ids_of(forms.search(QueryString("title:fox")).to_arrow())) == {0, 1}
    assert set(ids_of(forms.search(QueryString("body:fox")).to_arrow())) == {1, 2}
