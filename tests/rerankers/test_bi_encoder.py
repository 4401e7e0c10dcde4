"""BiEncoderReranker: cosine between the embedded query and the embedded texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hybrid.embedders import HashingEmbedder
from hybrid.rerankers import BiEncoderReranker
from hybrid.rerankers.scoring import LOWEST

TEXTS = ["red apple pie", "green apple", "blue sky over the sea", "apple apple red", "the red sea"]


def table(texts: Sequence[str | None]) -> pa.Table:
    return pa.table({"_rowid": pa.array(range(len(texts)), pa.uint64()), "text": pa.array(texts, pa.string())})


def test_hashing_scores_equal_a_numpy_cosine() -> None:
    e = HashingEmbedder(dim=32)
    out = BiEncoderReranker(e).rerank("red apple", table(TEXTS))
    q = e.embed_query("red apple").astype(np.float64)
    docs = e.embed_documents(TEXTS).astype(np.float64)
    expected = docs @ q / (np.linalg.norm(docs, axis=1) * np.linalg.norm(q))
    got = dict(zip(out["_rowid"].to_pylist(), out["_relevance_score"].to_pylist()))
    np.testing.assert_allclose([got[i] for i in range(len(TEXTS))], expected, rtol=1e-6)
    assert out["_rowid"].to_pylist() == list(np.argsort(-expected, kind="stable"))


def test_vectors_are_normalised_before_the_dot_product() -> None:
    class Unnormalised:
        name = "unnormalised"
        dim = 2

        def embed_query(self, text: str) -> np.ndarray:
            return np.array([10.0, 0.0], np.float32)

        def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
            return np.array([[100.0, 100.0], [0.5, 0.0], [0.0, 0.0]], np.float32)

        def to_config(self) -> dict[str, Any]:
            return {}

    out = BiEncoderReranker(Unnormalised()).rerank("q", table(["a", "b", "c"]))
    assert out["_rowid"].to_pylist() == [1, 0, 2]
    np.testing.assert_allclose(out["_relevance_score"].to_pylist(), [1.0, np.sqrt(0.5), 0.0], rtol=1e-6)


def test_null_and_blank_texts_score_lowest() -> None:
    out = BiEncoderReranker(HashingEmbedder(dim=32)).rerank("apple", table([None, "  ", "apple", "sky"]))
    assert out["_rowid"].to_pylist()[:2] == [2, 3]
    assert out["_relevance_score"].to_pylist()[2:] == [LOWEST, LOWEST]


def test_minilm_ranks_a_paraphrase_above_unrelated_text(minilm: Any) -> None:
    texts = [
        "Stock prices dropped sharply after the central bank raised rates.",
        "The feline was sleeping on the rug.",
        "Mount Everest is the highest mountain on Earth.",
    ]
    out = BiEncoderReranker(minilm).rerank("a cat napping on a carpet", table(texts))
    assert out["_rowid"].to_pylist()[0] == 1
    scores = out["_relevance_score"].to_numpy()
    assert scores[0] > scores[1] + 0.2 and -1.0 <= scores.min() <= scores.max() <= 1.0


def test_rejects_what_is_not_an_embedder() -> None:
    with pytest.raises(TypeError, match="embedder must have embed_query and embed_documents"):
        BiEncoderReranker("all-MiniLM-L6-v2")  # type: ignore[arg-type]
