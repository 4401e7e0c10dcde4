"""`BiEncoderReranker`: rescore candidates by the cosine between embedded query and texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from hybrid.errors import EmbeddingError
from hybrid.rerankers.scoring import TextReranker


class TextVectors(Protocol):
    """What rerankers need of an embedder: any :class:`hybrid.embedders.Embedder` qualifies."""

    def embed_query(self, text: str) -> np.ndarray: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...


def check_embedder(embedder: object) -> TextVectors:
    """`embedder` if it can embed queries and documents, else TypeError."""
    if not (callable(getattr(embedder, "embed_query", None)) and callable(getattr(embedder, "embed_documents", None))):
        raise TypeError(f"embedder must have embed_query and embed_documents methods, got {type(embedder).__name__}")
    return embedder  # type: ignore[return-value]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of `x` (float64) scaled to unit length; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(1, -1) if x.ndim == 1 else x
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


class BiEncoderReranker(TextReranker):
    """Scores each candidate by the cosine similarity of ``embedder.embed_query(query)`` and
    ``embedder.embed_documents(texts)`` (both normalised first), in [-1, 1].

    Any :class:`hybrid.embedders.Embedder` works, e.g. ``SentenceTransformerEmbedder()``; useful
    when the candidates came from BM25 or from another vector column. Null or blank texts
    (which embedders refuse) score lowest.

    Example:
        >>> import pyarrow as pa
        >>> from hybrid.embedders import HashingEmbedder
        >>> r = BiEncoderReranker(HashingEmbedder(dim=64))
        >>> rows = pa.table({"_rowid": [0, 1], "text": ["blue sky", "red apple"]})
        >>> r.rerank("apple", rows)["text"].to_pylist()
        ['red apple', 'blue sky']
    """

    skip_blank = True

    def __init__(self, embedder: TextVectors, *, column: str | None = None) -> None:
        super().__init__(column)
        self.embedder = check_embedder(embedder)

    def __repr__(self) -> str:
        return f"BiEncoderReranker({self.embedder!r})"

    def _score(self, query: str, texts: list[str]) -> np.ndarray:
        q = unit_rows(self.embedder.embed_query(query))[0]
        docs = unit_rows(self.embedder.embed_documents(texts))
        if docs.shape[1] != q.shape[0]:
            raise EmbeddingError(f"the embedder gave a {q.shape[0]}-d query vector but {docs.shape[1]}-d text vectors")
        return docs @ q
