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


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> hybrid.Table:
    """A table where every vector is shared by four rows (a corpus with duplicate chunks), with an
    HNSW index, so equal distances meet every page boundary."""
    rng = np.random.default_rng(21)
    base = rng.normal(size=(100, 8)).astype(np.float32)
    rows = [
        {
            "id": i,
            "doc": f"d{i // 3}",
            "age": i % 37,
            "text": " ".join(rng.choice(WORDS, 4).tolist()),
            "vector": base[i % 100],
        }
        for i in range(400)
    ]
    t = hybrid.connect(tmp_path_factory.mktemp("twins"), upkeep=None).create_table("t", rows)
    t.create_fts_index("text")
    t.create_vector_index("vector")
    return t


@pytest.mark.parametrize("indexed", [True, False])
def test_pages_of_a_vector_query_agree_when_distances_tie(twins: hybrid.Table, indexed: bool) -> None:
    """Rows at an equal distance come in row id order, and a page boundary inside a run of them keeps
    the rows of the smallest ids, so the next page starts where the last one ended."""
    vectors = np.random.default_rng(8).normal(size=(5, 8)).astype(np.float32)
    for v in vectors:
        q = twins.search(v, query_type="vector") if indexed else twins.search(v, query_type="vector").ef_search(400)
        whole = q.limit(36).to_arrow()
        distances, ids = whole.column("_distance").to_pylist(), whole.column("id").to_pylist()
        assert list(zip(distances, ids)) == sorted(zip(distances, ids))  # ties in row id order
        pages = [i for p in range(6) for i in _ids(q.offset(6 * p).limit(6))]
        assert pages == ids


def test_a_reranker_rescores_the_same_candidates_on_every_page(twins: hybrid.Table) -> None:
    """It sees the rows of each branch's first 50 (`.candidates`) whatever the page, so its pages
    agree, ties too."""
    from hybrid.rerankers import CallableReranker

    seen: list[int] = []

    def words_in_common(query: str, texts: list[str]) -> list[float]:
        seen.append(len(texts))
        return [float(len(set(query.split()) & set(t.split()))) for t in texts]

    vector = np.random.default_rng(10).normal(size=8).astype(np.float32)
    q = twins.search("river bank loan", query_type="hybrid").vector(vector, column="vector")
    q = q.rerank(CallableReranker(words_in_common, name="overlap"))
    whole = _ids(q.limit(40))
    assert WINDOW < seen[0] <= 2 * WINDOW  # the union of the two windows
    assert [i for p in range(4) for i in _ids(q.offset(10 * p).limit(10))] == whole
    assert seen == seen[:1] * 5
    assert len(_ids(q.limit(150))) == 150 and seen[-1] == 150  # a page past them: as many as it needs
    assert _ids(q.candidates(20).limit(5)) and 20 < seen[-1] <= 40


@pytest.mark.parametrize("fuse", ["rows", "groups"])
def test_pages_of_groups_with_several_rows_each_agree(table: hybrid.Table, fuse: str) -> None:
    """A group's rows after its best come from each branch's fusion window only: a deeper search (a
    later page) finds more of its rows, but they would count nothing, so the groups do not change."""
    vector = np.random.default_rng(6).normal(size=12).astype(np.float32)
    for text in ["river bank", "money credit", "fish"]:
        q = table.search(text, query_type="hybrid").vector(vector, column="vector")
        q = q.group_by("doc", per_group=3, fuse=fuse)  # type: ignore[arg-type]
        rows = lambda x: [(r["id"], r["doc"]) for r in x.select(["id", "doc"]).to_arrow().to_pylist()]  # noqa: E731
        whole = rows(q.limit(30))
        assert [r for p in range(3) for r in rows(q.offset(10 * p).limit(10))] == whole
        assert max(sum(r[1] == d for r in whole) for d in {r[1] for r in whole}) > 1  # groups of several


def test_top_k_keeps_the_smallest_ids_of_the_rows_tied_at_the_cut() -> None:
    from hybrid.index.vector import top_k

    ids = np.array([9, 4, 7, 1, 8, 3], np.uint64)
    dist = np.array([0.5, 0.2, 0.5, 0.5, 0.1, 0.5], np.float32)
    for k in range(1, 7):
        got, d = top_k(ids, dist, k)
        assert got.tolist() == [8, 4, 1, 3, 7, 9][:k] and d.tolist() == sorted(dist.tolist())[:k]
    assert top_k(ids, dist, 0)[0].tolist() == []


@pytest.mark.parametrize("query_type", ["fts", "vector"])
def test_pages_of_a_lone_branch_with_score_functions_agree(twins: hybrid.Table, query_type: str) -> None:
    """A lone branch has no fusion window: its score functions rescore the same first 50 on every page."""
    vector = np.random.default_rng(12).normal(size=8).astype(np.float32)
    q = twins.search("river bank money" if query_type == "fts" else vector, query_type=query_type)
    q = q.decay("age", scale=10, origin=0)
    whole = _ids(q.limit(40))
    assert [i for p in range(4) for i in _ids(q.offset(10 * p).limit(10))] == whole


@pytest.fixture(scope="module")
def weak_graph(tmp_path_factory: pytest.TempPathFactory) -> hybrid.Table:
    """A sparse graph searched shallowly: a deeper walk finds rows a shallower one missed."""
    rng = np.random.default_rng(31)
    rows = [
        {
            "id": i,
            "doc": f"d{i // 3}",
            "text": " ".join(rng.choice(WORDS, 4).tolist()),
            "vector": rng.normal(size=16).astype(np.float32),
        }
        for i in range(3000)
    ]
    t = hybrid.connect(tmp_path_factory.mktemp("weak"), upkeep=None).create_table("t", rows)
    t.create_fts_index("text")
    t.create_vector_index("vector", m=4, ef_construction=16, ef_search=10)
    return t


@pytest.mark.parametrize("shape", ["flat", "rows", "groups", "vector"])
def test_deep_pages_on_an_approximate_graph_agree(weak_graph: hybrid.Table, shape: str) -> None:
    """Each branch's counted rows come from the same walk on every page, and deeper rows from walks of
    fixed depths (4x a time), so a later page's longer list starts with an earlier page's; groups
    follow the lists as ranked (a deeper walk's row may be nearer than a counted one)."""
    vectors = np.random.default_rng(13).normal(size=(4, 16)).astype(np.float32)
    for v, text in zip(vectors, ["river bank", "money rate", "fish boat", "credit"]):
        if shape == "vector":
            q = weak_graph.search(v, query_type="vector", vector_column="vector").group_by("doc", per_group=2)
        else:
            q = weak_graph.search(text, query_type="hybrid").vector(v, column="vector")
            q = q if shape == "flat" else q.group_by("doc", per_group=2, fuse=shape)  # type: ignore[arg-type]
        whole = _ids(q.limit(80))
        assert [i for p in range(8) for i in _ids(q.offset(10 * p).limit(10))] == whole


@pytest.mark.parametrize("score", ["sum", "max_mean"])
def test_pages_of_a_lone_branch_grouped_by_a_sum_agree(table: hybrid.Table, score: str) -> None:
    """A group's sum (or mean) over a lone branch's rows counts the same first 50 on every page."""
    for text in ["river bank", "money credit", "fish"]:
        q = table.search(text, query_type="fts").group_by("doc", score=score)  # type: ignore[arg-type]
        whole = _ids(q.limit(30))
        assert [i for p in range(3) for i in _ids(q.offset(10 * p).limit(10))] == whole
