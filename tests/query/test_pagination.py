"""Pages of a hybrid query agree: offset/limit pages equal one longer result, whatever the fusion
(hybrid/query/fusion.py: each branch's fusion window is fixed, not the depth a page searches to)."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
from hybrid.query.fusion import DBSF, RRF, WINDOW, Fusion, Linear, Ranked

WORDS = ["river", "bank", "loan", "water", "money", "fish", "boat", "rate", "stream", "credit"]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> hybrid.Table:
    rng = np.random.default_rng(11)
    rows = [
        {
            "id": i,
            "doc": f"d{i // 4}",  # four chunks a document
            "text": " ".join(rng.choice(WORDS, 3 + i % 9).tolist()),
            "vector": rng.normal(size=12).astype(np.float32),
        }
        for i in range(600)
    ]
    t = hybrid.connect(tmp_path_factory.mktemp("pages")).create_table("t", rows)
    t.create_fts_index("text")
    return t


def _ids(q: hybrid.Query) -> list[int]:
    return q.select(["id"]).to_arrow().column("id").to_pylist()


@pytest.mark.parametrize("fusion", [None, Linear(alpha=0.5), Linear(normalize="zscore"), RRF(k=20), DBSF()])
def test_pages_equal_one_long_result(table: hybrid.Table, fusion: Fusion | None) -> None:
    vector = np.random.default_rng(3).normal(size=12).astype(np.float32)
    for text in ["river bank", "money rate credit", "fish"]:
        q = table.search(text, query_type="hybrid").vector(vector, column="vector")
        q = q if fusion is None else q.fuse(fusion)
        whole = _ids(q.limit(120))
        pages = [i for p in range(12) for i in _ids(q.offset(10 * p).limit(10))]
        assert pages == whole  # no row twice, none skipped, the same order
        assert whole[:10] == _ids(q.limit(10))  # a long result starts with the short one


@pytest.mark.parametrize("fuse", ["rows", "groups"])
@pytest.mark.parametrize("score", ["max", "sum"])
def test_pages_of_groups_equal_one_long_result(table: hybrid.Table, fuse: str, score: str) -> None:
    vector = np.random.default_rng(5).normal(size=12).astype(np.float32)
    for text in ["river bank", "money credit"]:
        q = table.search(text, query_type="hybrid").vector(vector, column="vector")
        q = q.group_by("doc", fuse=fuse, score=score)  # type: ignore[arg-type]
        docs = lambda x: x.select(["doc"]).to_arrow().column("doc").to_pylist()  # noqa: E731
        whole = docs(q.limit(60))
        pages = [d for p in range(6) for d in docs(q.offset(10 * p).limit(10))]
        assert pages == whole and len(set(pages)) == len(pages)


def test_ties_are_broken_by_the_rank_that_counted_not_by_what_a_deeper_search_found() -> None:
    ids = lambda *x: np.array(x, dtype=np.uint64)  # noqa: E731
    text = Ranked(ids(5, 9, 3), np.array([2.0, 1.0, 1.0]), window=3)  # rows 9 and 3 tie
    shallow = Ranked(ids(1, 2), np.array([0.9, 0.8]), window=2)
    deep = Ranked(ids(1, 2, 7, 3), np.array([0.9, 0.8, 0.7, 0.6]), window=2)  # 3 found past the window
    for vector in (shallow, deep):
        order = RRF(k=1).fuse([vector, text])[0].tolist()
        assert order.index(9) < order.index(3)  # 9 is counted at a better rank than 3


def test_candidates_set_the_window(table: hybrid.Table) -> None:
    vector = np.random.default_rng(4).normal(size=12).astype(np.float32)
    q = table.search("water boat", query_type="hybrid").vector(vector, column="vector").candidates(80)
    pages = [i for p in range(8) for i in _ids(q.offset(20 * p).limit(20))]
    assert pages == _ids(q.limit(160))
    rows = q.limit(160).to_arrow().to_pylist()
    past = [r for r in rows if (r["_vector_rank"] or 999) > 80 and (r["_fts_rank"] or 999) > 80]
    assert past and all(r["_score"] == 0.0 for r in past)  # searched (for the page), not counted
    assert any(r["_score"] > 0 and r["_vector_rank"] and 50 < r["_vector_rank"] <= 80 for r in rows)
    assert WINDOW == 50


def test_results_past_the_window_score_nothing_and_keep_their_rank_order() -> None:
    ids = lambda *x: np.array(x, dtype=np.uint64)  # noqa: E731
    a = Ranked(ids(1, 2, 3, 4), np.array([4.0, 3.0, 2.0, 1.0]), window=2)
    b = Ranked(ids(5, 6, 7, 8), np.array([0.9, 0.8, 0.7, 0.6]), window=2)
    order, scores = Linear(alpha=0.5).fuse([a, b])
    assert order.tolist()[:2] == [1, 5] and scores[2] == 0.0  # 2 and 6 sit at the windows' low ends
    assert order.tolist()[2:] == [2, 6, 3, 7, 4, 8]  # then by best rank, then row id
    # both branches searched less deep (as for an earlier page): the same order as far as it goes
    shallow = Linear(alpha=0.5).fuse([Ranked(r.ids[:3], r.scores[:3], window=2) for r in (a, b)])
    assert shallow[0].tolist() == order.tolist()[: len(shallow[0])]
