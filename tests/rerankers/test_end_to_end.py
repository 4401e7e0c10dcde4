"""Rerankers through the public search API: the executor fetches what they read, keeps the
branch columns, sorts by `_relevance_score` and applies limit / offset afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.rerankers import (
    BiEncoderReranker,
    CallableReranker,
    CrossEncoderReranker,
    MMRReranker,
    NanoRankerReranker,
    Reranker,
)

QUERY = "Paris France"


class QueryOnly:
    """Embeds queries with a hashing embedder and records any document embedding."""

    name = "query-only"

    def __init__(self) -> None:
        self.inner = HashingEmbedder(dim=64)
        self.documents: list[str] = []

    @property
    def dim(self) -> int:
        return 64

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.documents += list(texts)
        return self.inner.embed_documents(texts)

    def to_config(self) -> dict[str, Any]:
        return {}


def candidates(table: hybrid.Table) -> pa.Table:
    """Every candidate the search fuses (the table has 8 rows, the pool is deeper)."""
    return table.search(QUERY).limit(50).to_arrow()


def check_reranked_search(table: hybrid.Table, reranker: Reranker, offset: int = 0) -> list[dict[str, Any]]:
    got = table.search(QUERY).rerank(reranker).offset(offset).limit(3).select(["id"]).to_list()
    pool = candidates(table)
    expected = reranker.rerank(QUERY, pool).slice(offset, 3)  # the same reranker on the full candidates
    assert [r["_rowid"] for r in got] == expected["_rowid"].to_pylist()
    assert [r["_relevance_score"] for r in got] == pytest.approx(expected["_relevance_score"].to_pylist())
    assert len(got) == 3
    assert set(got[0]) == {
        "_rowid",
        "id",
        "_score",
        "_distance",
        "_vector_rank",
        "_bm25",
        "_fts_rank",
        "_relevance_score",
        "_fused_score",
    }
    scores = [r["_relevance_score"] for r in got]
    assert scores == sorted(scores, reverse=True)
    assert [r["_score"] for r in got] == scores  # the final score is the reranker's
    by_rowid = {r["_rowid"]: r for r in pool.to_pylist()}
    for row in got:  # a subset of the candidates, with their branch columns untouched
        source = by_rowid[row["_rowid"]]
        for name in ("id", "_distance", "_vector_rank", "_bm25", "_fts_rank"):
            assert row[name] == source[name]
        assert row["_fused_score"] == pytest.approx(source["_score"])  # the score before reranking
    assert any(r["_bm25"] is not None for r in got)
    return got


def test_callable_sees_the_text_it_is_not_asked_to_return(search_table: hybrid.Table) -> None:
    seen: list[list[str]] = []

    def shortest(query: str, texts: list[str]) -> list[float]:
        seen.append(texts)
        return [-float(len(t)) for t in texts]

    got = check_reranked_search(search_table, CallableReranker(shortest))
    texts = {r["id"]: r["text"] for r in search_table.to_arrow().to_pylist()}
    assert seen[0] and set(seen[0]) <= set(texts.values())
    assert [r["id"] for r in got] == sorted(texts, key=lambda i: len(texts[i]))[:3]


def test_offset_applies_after_reranking(search_table: hybrid.Table) -> None:
    r = CallableReranker(lambda q, texts: [float(len(t)) for t in texts])
    first = check_reranked_search(search_table, r)
    second = check_reranked_search(search_table, r, offset=1)
    assert [x["_rowid"] for x in second[:2]] == [x["_rowid"] for x in first[1:]]


def test_cross_encoder(search_table: hybrid.Table, cross_encoder_dirs: dict[str, Path]) -> None:
    check_reranked_search(search_table, CrossEncoderReranker(cross_encoder_dirs["sigmoid"]))


def test_bi_encoder(search_table: hybrid.Table) -> None:
    check_reranked_search(search_table, BiEncoderReranker(HashingEmbedder(dim=64)))


def test_mmr_reads_the_vector_column_without_returning_it(search_table: hybrid.Table) -> None:
    embedder = QueryOnly()
    got = check_reranked_search(search_table, MMRReranker(embedder, lambda_=0.5))
    assert embedder.documents == []  # the stored vectors were fetched and used
    assert "vector" not in got[0]


def test_nanoranker(search_table: hybrid.Table) -> None:
    pytest.importorskip("nanoranker")
    got = check_reranked_search(search_table, NanoRankerReranker())
    assert got[0]["id"] == 1  # "Paris is the capital and largest city of France."


def test_full_rows_without_select(search_table: hybrid.Table) -> None:
    got = search_table.search(QUERY).rerank(BiEncoderReranker(HashingEmbedder(dim=64))).limit(2).to_list()
    assert {"text", "topic", "vector", "_relevance_score", "_bm25"} <= set(got[0])
