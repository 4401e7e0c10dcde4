"""MMRReranker: greedy maximal marginal relevance over the candidates."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from hybrid.embedders import HashingEmbedder
from hybrid.errors import SchemaError, VectorError
from hybrid.rerankers import BiEncoderReranker, MMRReranker
from hybrid.rerankers.mmr import mmr_order
from hybrid.rerankers.scoring import LOWEST

from .conftest import FixedEmbedder


def unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def angled_rows() -> pa.Table:
    """Three documents at 10, 20 and -40 degrees from a query at 0 degrees."""
    return pa.table(
        {
            "_rowid": pa.array([0, 1, 2], pa.uint64()),
            "text": ["a", "b", "c"],
            "vector": pa.array([unit(10), unit(20), unit(-40)], pa.list_(pa.float32(), 2)),
        }
    )


@pytest.mark.parametrize(("lambda_", "expected"), [(1.0, [0, 1, 2]), (0.7, [0, 1, 2]), (0.5, [0, 2, 1])])
def test_hand_computed_three_documents(lambda_: float, expected: list[int]) -> None:
    # relevance: cos 10 = .985, cos 20 = .940, cos 40 = .766; a is picked first.
    # then b: lambda*.940 - (1-lambda)*cos 10 (.985); c: lambda*.766 - (1-lambda)*cos 50 (.643)
    #   lambda=.7: b .3624 > c .3434;  lambda=.5: b -.0226 < c .0616
    b = lambda_ * math.cos(math.radians(20)) - (1 - lambda_) * math.cos(math.radians(10))
    c = lambda_ * math.cos(math.radians(40)) - (1 - lambda_) * math.cos(math.radians(50))
    assert (b > c) == (expected[1] == 1)
    embedder = FixedEmbedder({"q": unit(0)})
    out = MMRReranker(embedder, lambda_=lambda_).rerank("q", angled_rows())
    assert out["_rowid"].to_pylist() == expected
    assert out["_relevance_score"].to_pylist() == [3.0, 2.0, 1.0]
    assert embedder.documents_embedded == []  # the vectors came from the column


def test_lambda_one_is_the_bi_encoder_order() -> None:
    e = HashingEmbedder(dim=32)
    texts = ["red apple pie", "green apple", "blue sky over the sea", "apple apple red", "the red sea", "red red"]
    rows = pa.table({"_rowid": pa.array(range(len(texts)), pa.uint64()), "text": texts})
    mmr = MMRReranker(e, lambda_=1.0).rerank("red apple", rows)
    bi = BiEncoderReranker(e).rerank("red apple", rows)
    assert mmr["_rowid"].to_pylist() == bi["_rowid"].to_pylist()
    assert mmr["_relevance_score"].to_pylist() == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]


def test_a_distinct_document_overtakes_a_near_duplicate() -> None:
    e = HashingEmbedder(dim=256)
    texts = [
        "how to bake sourdough bread at home",
        "how to bake sourdough bread at home easily",
        "bread history in ancient egypt",
    ]
    rows = pa.table({"_rowid": pa.array([0, 1, 2], pa.uint64()), "text": texts})
    query = "bake sourdough bread"
    assert BiEncoderReranker(e).rerank(query, rows)["_rowid"].to_pylist() == [0, 1, 2]
    assert MMRReranker(e, lambda_=0.3).rerank(query, rows)["_rowid"].to_pylist() == [0, 2, 1]


def test_rows_without_vectors_are_embedded_from_text_and_rows_without_either_come_last() -> None:
    embedder = FixedEmbedder({"q": unit(0), "c text": unit(-40)})
    rows = pa.table(
        {
            "_rowid": pa.array([0, 1, 2, 3], pa.uint64()),
            "text": pa.array(["a", "b", "c text", None], pa.string()),
            "vector": pa.array([unit(10), unit(20), None, None], pa.list_(pa.float32(), 2)),
        }
    )
    out = MMRReranker(embedder, lambda_=0.5).rerank("q", rows)
    assert embedder.documents_embedded == ["c text"]
    assert out["_rowid"].to_pylist() == [0, 2, 1, 3]
    assert out["_relevance_score"].to_pylist() == [3.0, 2.0, 1.0, LOWEST]


def test_without_a_vector_column_texts_are_embedded() -> None:
    embedder = FixedEmbedder({"q": unit(0), "a": unit(10), "b": unit(20), "c": unit(-40)})
    rows = angled_rows().drop_columns(["vector"])
    out = MMRReranker(embedder, lambda_=0.5).rerank("q", rows)
    assert out["_rowid"].to_pylist() == [0, 2, 1]
    assert sorted(embedder.documents_embedded) == ["a", "b", "c"]


def test_scores_strictly_decrease_in_pick_order() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    rows = pa.table(
        {"_rowid": pa.array(range(30), pa.uint64()), "vector": pa.array(list(vectors), pa.list_(pa.float32(), 8))}
    )
    q = rng.normal(size=8)
    out = MMRReranker(FixedEmbedder({"q": q}), lambda_=0.4).rerank("q", rows)
    scores = out["_relevance_score"].to_numpy()
    assert np.all(np.diff(scores) < 0) and scores[0] == 30 and scores[-1] == 1
    unit_vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = mmr_order(q / np.linalg.norm(q), unit_vectors.astype(np.float64), 0.4)
    assert out["_rowid"].to_pylist() == expected.tolist()
    assert expected[0] == int(np.argmax(unit_vectors @ q))


def test_lambda_zero_starts_with_the_most_relevant() -> None:
    out = MMRReranker(FixedEmbedder({"q": unit(0)}), lambda_=0).rerank("q", angled_rows())
    assert out["_rowid"].to_pylist()[0] == 0


def test_declared_columns_and_empty_candidates() -> None:
    r = MMRReranker(HashingEmbedder(dim=8), vector_column="emb", column="body")
    assert r.columns == ("emb", "body")
    assert MMRReranker(HashingEmbedder(dim=8)).columns == ("vector", "text")
    empty = angled_rows().slice(0, 0)
    out = r.rerank("q", empty)
    assert out.num_rows == 0 and "_relevance_score" in out.column_names


def test_vector_problems_are_reported() -> None:
    with pytest.raises(VectorError, match="'vector' holds 2-d vectors but the embedder gives 3-d query vectors"):
        MMRReranker(FixedEmbedder({"q": [1.0, 0.0, 0.0]})).rerank("q", angled_rows())
    rows = pa.table({"_rowid": [0], "vector": ["not a vector"], "text": ["a"]})
    with pytest.raises(SchemaError, match="'vector' holds string, not vectors"):
        MMRReranker(FixedEmbedder({"q": unit(0)})).rerank("q", rows)


@pytest.mark.parametrize("lambda_", [-0.1, 1.5, float("nan")])
def test_lambda_must_be_in_the_unit_interval(lambda_: float) -> None:
    with pytest.raises(ValueError, match=r"lambda_ must be in \[0, 1\]"):
        MMRReranker(HashingEmbedder(), lambda_=lambda_)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="lambda_ must be a number"):
        MMRReranker(HashingEmbedder(), lambda_="0.5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="embedder must have embed_query"):
        MMRReranker(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="vector_column must be a column name"):
        MMRReranker(HashingEmbedder(), vector_column="")
