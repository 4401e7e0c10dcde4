"""What every reranker shares: finding the text column, scoring the rows that have text,
and adding `_relevance_score` with the rows sorted best first."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

from hybrid.errors import SchemaError
from hybrid.rerankers.base import RELEVANCE

LOWEST = float("-inf")
"""The score of a row with nothing to score (a null text, or a blank one for embedding rerankers)."""

DEFAULT_TEXT = "text"


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def text_column(table: pa.Table, column: str | None = None) -> str:
    """The column a reranker reads: `column` if given, else ``"text"`` if present, else the only
    string column whose name does not start with ``_``. Raises :class:`SchemaError` otherwise."""
    schema = table.schema
    if column is not None:
        if column not in schema.names:
            raise SchemaError(f"text column {column!r} is not among the candidates' columns {schema.names}")
        if not _is_string(schema.field(column).type):
            raise SchemaError(f"column {column!r} holds {schema.field(column).type}, not text")
        return column
    if DEFAULT_TEXT in schema.names and _is_string(schema.field(DEFAULT_TEXT).type):
        return DEFAULT_TEXT
    strings = [f.name for f in schema if _is_string(f.type) and not f.name.startswith("_")]
    if len(strings) == 1:
        return strings[0]
    found = f"several text columns {strings}" if strings else "no text column"
    raise SchemaError(f"cannot tell which column to rerank on: {found} among {schema.names}; pass column=")


def column_texts(table: pa.Table, column: str) -> list[str | None]:
    """The column's values as Python strings (None for nulls)."""
    return [None if v is None else str(v) for v in table.column(column).to_pylist()]


def score_present(
    texts: Sequence[str | None], score: Callable[[list[str]], np.ndarray], *, skip_blank: bool = False
) -> np.ndarray:
    """Call `score` on the texts that are not null (nor blank, with `skip_blank`) and return one
    float64 score per text, :data:`LOWEST` for the others."""
    keep: list[int] = []
    present: list[str] = []
    for i, t in enumerate(texts):
        if t is not None and not (skip_blank and not t.strip()):
            keep.append(i)
            present.append(t)
    out = np.full(len(texts), LOWEST, dtype=np.float64)
    if keep:
        out[keep] = np.asarray(score(present), dtype=np.float64).reshape(-1)
    return out


def with_scores(table: pa.Table, scores: Sequence[float] | np.ndarray) -> pa.Table:
    """`table` with `_relevance_score` (float64) appended, or replaced, and its rows sorted by it,
    highest first; ties keep their order (NaN sorts last)."""
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(values) != table.num_rows:
        raise ValueError(f"{len(values)} scores for {table.num_rows} rows")
    column = pa.array(values, pa.float64())
    if RELEVANCE in table.column_names:
        table = table.set_column(table.column_names.index(RELEVANCE), RELEVANCE, column)
    else:
        table = table.append_column(RELEVANCE, column)
    order = np.argsort(-np.nan_to_num(values, nan=LOWEST), kind="stable")
    return table.take(pa.array(order, pa.int64()))


def check_query(query: object) -> str:
    if not isinstance(query, str):
        raise TypeError(f"the query to rerank for must be a string, got {type(query).__name__}")
    return query


def check_column(column: object) -> str | None:
    if column is not None and not (isinstance(column, str) and column):
        raise TypeError(f"column must be a column name or None, got {column!r}")
    return column


class TextReranker(ABC):
    """Base of the rerankers that score each candidate's text against the query.

    Subclasses implement `_score(query, texts)`; rows whose text is null (or blank when
    `skip_blank`) are not passed and get :data:`LOWEST`. `columns` names the text column so
    the executor fetches it even when the query selects other columns.
    """

    skip_blank = False

    def __init__(self, column: str | None = None) -> None:
        self.column = check_column(column)

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the executor should fetch for this reranker (when the table has them)."""
        return (self.column or DEFAULT_TEXT,)

    def rerank(self, query: str, candidates: pa.Table) -> pa.Table:
        """The candidates with `_relevance_score` added, best first."""
        query = check_query(query)
        if not isinstance(candidates, pa.Table):
            raise TypeError(f"candidates must be a pyarrow Table, got {type(candidates).__name__}")
        texts = column_texts(candidates, text_column(candidates, self.column))
        if not texts:
            return with_scores(candidates, [])
        scores = score_present(texts, lambda present: self._score(query, present), skip_blank=self.skip_blank)
        return with_scores(candidates, scores)

    @abstractmethod
    def _score(self, query: str, texts: list[str]) -> np.ndarray:
        """One score per text, higher is more relevant."""
