"""`MMRReranker`: maximal marginal relevance, trading relevance for diversity among the candidates."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hybrid.errors import SchemaError, VectorError
from hybrid.rerankers.bi_encoder import TextVectors, check_embedder, unit_rows
from hybrid.rerankers.scoring import (
    DEFAULT_TEXT,
    LOWEST,
    check_column,
    check_query,
    column_texts,
    text_column,
    with_scores,
)


def mmr_order(query: np.ndarray, docs: np.ndarray, lambda_: float) -> np.ndarray:
    """Indices of `docs` in greedy MMR order for `query` (all vectors unit length).

    The first pick is the most relevant document; each next pick maximises
    ``lambda_ * cos(query, d) - (1 - lambda_) * max(cos(d, s) for s already picked)``.
    Ties go to the earlier document.
    """
    n = len(docs)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    relevance = docs @ query
    similarity = docs @ docs.T
    order = [int(np.argmax(relevance))]
    closest = similarity[:, order[0]].copy()
    left = np.ones(n, dtype=bool)
    left[order[0]] = False
    while left.any():
        value = np.where(left, lambda_ * relevance - (1.0 - lambda_) * closest, -np.inf)
        pick = int(np.argmax(value))
        order.append(pick)
        left[pick] = False
        closest = np.maximum(closest, similarity[:, pick])
    return np.asarray(order, dtype=np.int64)


class MMRReranker:
    """Reorders the candidates by maximal marginal relevance (Carbonell & Goldstein, 1998).

    Relevance is the cosine between the embedded query and a candidate's vector; diversity
    penalises a candidate by its highest cosine to the candidates already picked. Each step
    picks the candidate maximising ``lambda_ * relevance - (1 - lambda_) * max_similarity``
    (the first pick is the most relevant one): ``lambda_=1`` is pure relevance, lower values
    favour variety, e.g. to keep near-duplicate chunks out of a RAG context.

    `embedder` embeds the query. Candidate vectors come from `vector_column` when the candidates
    have it (it is declared in `columns`, so the search fetches it), and must then come from the
    same model; rows without one get their text (`column`, default ``"text"`` or the only text
    column) embedded. A row with neither a vector nor a text scores lowest.

    `_relevance_score` is the pick order as a strictly decreasing number: ``n`` for the first
    of ``n`` scored rows, down to ``1`` for the last (MMR values themselves need not decrease).

    Example:
        >>> import pyarrow as pa
        >>> from hybrid.embedders import HashingEmbedder
        >>> rows = pa.table({"_rowid": [0, 1, 2], "text": ["red apple pie", "red apple pie recipe", "apple tree"]})
        >>> MMRReranker(HashingEmbedder(dim=64), lambda_=0.3).rerank("red apple", rows)["_rowid"].to_pylist()
        [0, 2, 1]
    """

    def __init__(
        self,
        embedder: TextVectors,
        *,
        lambda_: float = 0.5,
        vector_column: str = "vector",
        column: str | None = None,
    ) -> None:
        self.embedder = check_embedder(embedder)
        if isinstance(lambda_, bool) or not isinstance(lambda_, (int, float)):
            raise TypeError(f"lambda_ must be a number in [0, 1], got {lambda_!r}")
        if not 0.0 <= float(lambda_) <= 1.0:
            raise ValueError(f"lambda_ must be in [0, 1], got {lambda_!r}")
        if not (isinstance(vector_column, str) and vector_column):
            raise TypeError(f"vector_column must be a column name, got {vector_column!r}")
        self.lambda_ = float(lambda_)
        self.vector_column = vector_column
        self.column = check_column(column)

    def __repr__(self) -> str:
        return f"MMRReranker({self.embedder!r}, lambda_={self.lambda_}, vector_column={self.vector_column!r})"

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the executor should fetch for this reranker (when the table has them)."""
        return (self.vector_column, self.column or DEFAULT_TEXT)

    def rerank(self, query: str, candidates: pa.Table) -> pa.Table:
        """The candidates with `_relevance_score` added, in MMR order."""
        query = check_query(query)
        if not isinstance(candidates, pa.Table):
            raise TypeError(f"candidates must be a pyarrow Table, got {type(candidates).__name__}")
        if candidates.num_rows == 0:
            return with_scores(candidates, [])
        q = unit_rows(self.embedder.embed_query(query))[0]
        vectors = self._vectors(candidates, len(q))
        scored = np.asarray([i for i, v in enumerate(vectors) if v is not None], dtype=np.int64)
        scores = np.full(candidates.num_rows, LOWEST, dtype=np.float64)
        if len(scored):
            docs = unit_rows(np.stack([v for v in vectors if v is not None]))
            order = mmr_order(q, docs, self.lambda_)
            scores[scored[order]] = np.arange(len(order), 0, -1, dtype=np.float64)
        return with_scores(candidates, scores)

    def _vectors(self, candidates: pa.Table, dim: int) -> list[np.ndarray | None]:
        """One vector per row (None where there is neither a vector nor a text)."""
        vectors: list[np.ndarray | None] = [None] * candidates.num_rows
        if self.vector_column in candidates.column_names:
            kind = candidates.schema.field(self.vector_column).type
            if not (pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)):
                raise SchemaError(f"column {self.vector_column!r} holds {kind}, not vectors")
            for i, v in enumerate(candidates.column(self.vector_column).to_pylist()):
                if v is not None:
                    vec = np.asarray(v, dtype=np.float64)
                    if vec.shape != (dim,):
                        raise VectorError(
                            f"column {self.vector_column!r} holds {len(vec)}-d vectors but the embedder gives "
                            f"{dim}-d query vectors: MMR needs the model that made the column"
                        )
                    vectors[i] = vec
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            texts = column_texts(candidates, text_column(candidates, self.column))
            rows: list[int] = []
            present: list[str] = []
            for i in missing:
                text = texts[i]
                if text is not None and text.strip():
                    rows.append(i)
                    present.append(text)
            if rows:
                for i, vec in zip(rows, self.embedder.embed_documents(present)):
                    vectors[i] = np.asarray(vec, dtype=np.float64)
        return vectors
