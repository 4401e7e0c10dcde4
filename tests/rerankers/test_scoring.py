"""The behaviour every text reranker shares: which column it reads, nulls, empty input, sorting."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from hybrid.errors import SchemaError
from hybrid.rerankers import CallableReranker
from hybrid.rerankers.scoring import LOWEST, text_column, with_scores


def by_length(query: str, texts: list[str]) -> list[float]:
    return [float(len(t)) for t in texts]


def test_text_column_prefers_explicit_then_text_then_the_only_string_column() -> None:
    both = pa.table({"_rowid": [0], "body": ["b"], "text": ["t"], "_hidden": ["h"]})
    assert text_column(both, "body") == "body"
    assert text_column(both) == "text"
    only = pa.table(
        {"_rowid": [0], "id": [1], "body": ["b"], "_note": ["n"], "lang": pa.array(["en"], pa.large_string())}
    )
    with pytest.raises(SchemaError, match=r"several text columns \['body', 'lang'\]"):
        text_column(only)
    assert text_column(only.drop_columns(["lang"])) == "body"
    assert text_column(pa.table({"x": pa.array(["a"], pa.large_string())})) == "x"


def test_text_column_errors_name_the_columns() -> None:
    table = pa.table({"_rowid": [0], "id": [1], "_bm25": [1.0]})
    with pytest.raises(SchemaError, match=r"no text column among \['_rowid', 'id', '_bm25'\]; pass column="):
        text_column(table)
    with pytest.raises(SchemaError, match=r"'body' is not among the candidates' columns \['_rowid', 'id', '_bm25'\]"):
        text_column(table, "body")
    with pytest.raises(SchemaError, match="'id' holds int64, not text"):
        text_column(table, "id")


def test_with_scores_appends_float64_and_sorts_stably() -> None:
    table = pa.table({"_rowid": [10, 11, 12, 13], "text": ["a", "b", "c", "d"]})
    out = with_scores(table, [1, 3, 1, 3])
    assert out.schema.field("_relevance_score").type == pa.float64()
    assert out["_rowid"].to_pylist() == [11, 13, 10, 12]  # ties keep the candidates' order
    again = with_scores(out, [0.0, 0.5, 2.0, 1.0])  # replaces, does not add a second column
    assert again.column_names == ["_rowid", "text", "_relevance_score"]
    assert again["_rowid"].to_pylist() == [10, 12, 13, 11]
    with pytest.raises(ValueError, match="2 scores for 4 rows"):
        with_scores(table, [1.0, 2.0])


def test_null_text_scores_lowest_and_is_never_passed() -> None:
    seen: list[list[str]] = []

    def score(query: str, texts: list[str]) -> list[float]:
        seen.append(texts)
        return [-float(len(t)) for t in texts]

    table = pa.table({"_rowid": [0, 1, 2, 3], "text": ["long text", None, "", "mid"]})
    out = CallableReranker(score).rerank("q", table)
    assert seen == [["long text", "", "mid"]]  # an empty (non-null) text is still scored
    assert out["_rowid"].to_pylist() == [2, 3, 0, 1]
    assert out["_relevance_score"].to_pylist() == [0.0, -3.0, -9.0, LOWEST]
    assert math.isinf(LOWEST) and LOWEST < 0


def test_all_nulls_and_empty_candidates() -> None:
    calls: list[int] = []

    def score(query: str, texts: list[str]) -> list[float]:
        calls.append(len(texts))
        return [0.0] * len(texts)

    r = CallableReranker(score)
    nulls = r.rerank("q", pa.table({"_rowid": [0, 1], "text": pa.array([None, None], pa.string())}))
    assert nulls["_relevance_score"].to_pylist() == [LOWEST, LOWEST]
    empty = pa.table(
        {"_rowid": pa.array([], pa.uint64()), "text": pa.array([], pa.string()), "_score": pa.array([], pa.float64())}
    )
    out = r.rerank("q", empty)
    assert out.num_rows == 0 and calls == []
    assert out.column_names == ["_rowid", "text", "_score", "_relevance_score"]
    assert out.schema.field("_relevance_score").type == pa.float64()


def test_other_columns_are_kept_row_by_row() -> None:
    table = pa.table(
        {
            "_rowid": pa.array([5, 6, 7], pa.uint64()),
            "text": ["bb", "a", "ccc"],
            "_score": [0.3, 0.2, 0.1],
            "_distance": pa.array([0.5, None, 0.1], pa.float32()),
            "_bm25": pa.array([None, 2.0, 1.0], pa.float32()),
            "vector": pa.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], pa.list_(pa.float32(), 2)),
        }
    )
    out = CallableReranker(by_length).rerank("q", table)
    assert out.column_names == [*table.column_names, "_relevance_score"]
    assert out.schema.remove(out.schema.get_field_index("_relevance_score")) == table.schema
    before = {r["_rowid"]: r for r in table.to_pylist()}
    for row in out.to_pylist():
        score = row.pop("_relevance_score")
        assert row == before[row["_rowid"]] and score == len(row["text"])
    assert np.all(np.diff(out["_relevance_score"].to_numpy()) <= 0)


def test_column_argument_and_declared_columns() -> None:
    table = pa.table({"_rowid": [0, 1], "text": ["zz", "a"], "title": ["a", "zzz"]})
    assert CallableReranker(by_length, column="title").rerank("q", table)["_rowid"].to_pylist() == [1, 0]
    assert CallableReranker(by_length).rerank("q", table)["_rowid"].to_pylist() == [0, 1]
    assert CallableReranker(by_length, column="title").columns == ("title",)
    assert CallableReranker(by_length).columns == ("text",)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="column must be a column name"):
        CallableReranker(by_length, column=3)  # type: ignore[arg-type]
    r = CallableReranker(by_length)
    with pytest.raises(TypeError, match="query to rerank for must be a string"):
        r.rerank(None, pa.table({"text": ["a"]}))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="candidates must be a pyarrow Table"):
        r.rerank("q", [{"text": "a"}])
