"""NanoRankerReranker: nanoranker's model, scores kept per row and unnormalised."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest

from hybrid.rerankers import NanoRankerReranker

nanoranker = pytest.importorskip("nanoranker")


def rows(texts: Sequence[str | None]) -> pa.Table:
    return pa.table({"_rowid": pa.array(range(len(texts)), pa.uint64()), "text": pa.array(texts, pa.string())})


EN = [
    "Paris is the capital of France.",
    "Bananas are yellow and rich in potassium.",
    "The Eiffel Tower was completed in 1889.",
    "Quarterly earnings beat analyst expectations.",
]
ZH = ["巴黎是法国的首都。", "香蕉是黄色的，富含钾。", "股市今天大幅下跌。"]


def test_scores_equal_nanoranker_rank_unnormalised() -> None:
    query = "what is the capital of France"
    out = NanoRankerReranker().rerank(query, rows(EN))
    expected = dict(nanoranker.rank(query, EN, top_n=len(EN), normalize_scores=False))
    got = dict(zip(out["text"].to_pylist(), out["_relevance_score"].to_pylist()))
    assert got.keys() == expected.keys()
    for text, score in expected.items():
        assert got[text] == pytest.approx(score, rel=1e-5, abs=1e-6)
    assert np.all(np.diff(out["_relevance_score"].to_numpy()) <= 0)


def test_relevant_outranks_unrelated_in_english_and_chinese() -> None:
    r = NanoRankerReranker()
    en = r.rerank("what is the capital of France", rows(EN))
    assert en["text"][0].as_py() == EN[0]
    zh = r.rerank("法国的首都是哪里", rows(ZH))
    assert zh["text"][0].as_py() == ZH[0]
    assert zh["_relevance_score"][0].as_py() > zh["_relevance_score"][2].as_py()


def test_duplicates_and_nulls_keep_their_rows() -> None:
    texts = [EN[1], EN[0], None, EN[0]]
    out = NanoRankerReranker().rerank("capital of France", rows(texts))
    assert out.num_rows == 4
    assert out["_rowid"].to_pylist()[:2] == [1, 3]  # both copies, best first, in candidate order
    s = out["_relevance_score"].to_pylist()
    assert s[0] == s[1] and s[3] == float("-inf") and out["_rowid"][3].as_py() == 2


def test_column_argument() -> None:
    table = pa.table({"_rowid": [0, 1], "title": ["Paris, capital of France", "Banana bread"], "body": ["x", "y"]})
    out = NanoRankerReranker(column="title").rerank("capital of France", table)
    assert out["_rowid"].to_pylist() == [0, 1]
