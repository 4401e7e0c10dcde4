"""CallableReranker: any fn(query, texts) -> scores, with its output checked."""

from __future__ import annotations

import pyarrow as pa
import pytest

from hybrid.errors import HybridError
from hybrid.rerankers import CallableReranker, Reranker

ROWS = pa.table({"_rowid": pa.array([0, 1, 2], pa.uint64()), "text": ["apple pie", "banana bread", "apple juice"]})


def word_overlap(query: str, texts: list[str]) -> list[float]:
    q = set(query.split())
    return [float(len(q & set(t.split()))) for t in texts]


def test_scores_are_the_functions_and_rows_sorted() -> None:
    r = CallableReranker(word_overlap)
    assert isinstance(r, Reranker)
    out = r.rerank("apple juice", ROWS)
    assert out["_rowid"].to_pylist() == [2, 0, 1]
    assert out["_relevance_score"].to_pylist() == [2.0, 1.0, 0.0]


def test_the_function_gets_the_query_and_texts_in_candidate_order() -> None:
    calls: list[tuple[str, list[str]]] = []

    def spy(query: str, texts: list[str]) -> tuple[float, ...]:
        calls.append((query, texts))
        return tuple(range(len(texts)))  # any sequence of numbers will do

    CallableReranker(spy).rerank("my query", ROWS)
    assert calls == [("my query", ["apple pie", "banana bread", "apple juice"])]


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([1.0, 2.0], r"reranker word_count returned 2 scores for 3 texts"),
        ([1.0, 2.0, 3.0, 4.0], r"returned 4 scores for 3 texts"),
        ([[1.0], [2.0], [3.0]], r"returned 3 scores for 3 texts"),  # not one flat list
        (7.0, r"word_count must return a sequence of numbers, got float"),
        ([1.0, float("nan"), 3.0], r"word_count returned a non-finite score \(nan\) for text #1"),
        ([float("inf"), 1.0, 3.0], r"non-finite score \(inf\) for text #0"),
        (["high", "low", "mid"], r"word_count must return a sequence of numbers, got list"),
        (None, r"word_count must return a sequence of numbers, got NoneType"),
    ],
)
def test_bad_results_raise_naming_the_callable(result: object, message: str) -> None:
    r = CallableReranker(lambda q, texts: result, name="word_count")  # type: ignore[arg-type,return-value]
    with pytest.raises(HybridError, match=message):
        r.rerank("apple", ROWS)


def test_default_name_is_the_functions() -> None:
    def broken(query: str, texts: list[str]) -> list[float]:
        return []

    with pytest.raises(HybridError, match="reranker test_default_name_is_the_functions.<locals>.broken returned 0"):
        CallableReranker(broken).rerank("apple", ROWS)


def test_exceptions_from_the_function_propagate() -> None:
    def fails(query: str, texts: list[str]) -> list[float]:
        raise RuntimeError("service down")

    with pytest.raises(RuntimeError, match="service down"):
        CallableReranker(fails).rerank("apple", ROWS)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(TypeError, match="fn must be callable"):
        CallableReranker("not a function")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a string"):
        CallableReranker(word_overlap, name=3)  # type: ignore[arg-type]
