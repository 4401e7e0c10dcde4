"""Sharded search on a real local Ray cluster: the same queries (text, exact and HNSW vector,
hybrid, filtered, reranked) return the unsharded table's rows and scores.

The text is skewed on purpose: some words are common in the first rows and rare in the last,
so each shard's own BM25 statistics differ from the table's (shown below); only global
statistics give the unsharded scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.embedders.hashing import HashingEmbedder
from hybrid.errors import HybridError, VectorError
from hybrid.query.fusion import RRF, Linear
from hybrid.rerankers.callable import CallableReranker

ray = pytest.importorskip("ray")
hr = pytest.importorskip("hybrid.ray")

pytestmark = pytest.mark.usefixtures("cluster")

N = 1200
DIM = 16
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "theta",
    "kappa",
    "lambda",
    "sigma",
    "omega",
    "river",
    "stone",
    "cloud",
]
QUERIES = ["alpha", "alpha beta beta", "river stone cloud omega", "sigma kappa delta alpha gamma", "zeta"]


def make_rows() -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(N):
        head = i < N // 3  # "alpha" and "beta" are common early and rare late: per-shard idf differs
        pool = WORDS if head else WORDS[2:] + (["alpha"] if rng.random() < 0.05 else [])
        body = " ".join(rng.choice(pool, int(rng.integers(4, 30))))
        title = " ".join(rng.choice(WORDS, int(rng.integers(1, 4))))
        out.append({"id": i, "title": title, "body": body, "cat": int(i % 5), "plain": rng.normal(size=DIM).tolist()})
    return out


@pytest.fixture(scope="module")
def tables(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("sharded")
    db = hybrid.connect(root, upkeep=None)
    t = db.create_table("docs", make_rows(), embedding={"vector": ("body", HashingEmbedder(dim=DIM))})
    t.create_fts_index(["title", "body"], language="en", weights={"title": 2})
    t.create_vector_index("vector", metric="cosine")
    t.create_scalar_index("cat")
    sharded = hr.shard(t, 3)
    yield t, sharded
    sharded.close()


def assert_same(a: pa.Table, b: pa.Table, score: str = "_score") -> None:
    """Same row ids and scores, best first; rows whose scores tie (to float32 precision) may swap."""
    ids_a, ids_b = a["_rowid"].to_pylist(), b["_rowid"].to_pylist()
    sa, sb = np.asarray(a[score].to_pylist(), float), np.asarray(b[score].to_pylist(), float)
    assert len(ids_a) == len(ids_b)
    np.testing.assert_allclose(sb, sa, rtol=1e-6, atol=1e-9)
    for i in np.flatnonzero(np.asarray(ids_a) != np.asarray(ids_b)).tolist():
        tied = np.flatnonzero(np.isclose(sa, sa[i], rtol=1e-6, atol=1e-9))
        assert sorted(ids_a[j] for j in tied) == sorted(ids_b[j] for j in tied), (i, ids_a, ids_b)


@pytest.mark.parametrize("text", QUERIES)
def test_text_search_equals_the_unsharded_table(tables: Any, text: str) -> None:
    t, sharded = tables
    one = t.search(text, query_type="fts").limit(20).to_arrow()
    many = sharded.search(text, query_type="fts").limit(20).to_arrow()
    assert one.num_rows == 20
    assert_same(one, many)
    assert_same(one, many, "_bm25")
    assert one.column_names == many.column_names
    source = t.take(many["_rowid"].to_numpy(), ["title", "body", "cat"])  # the shards return the source's rows
    cols = ["_rowid", "title", "body", "cat"]
    assert many.select(cols).to_pylist() == source.select(cols).to_pylist()


def test_each_shard_alone_would_score_differently(tables: Any) -> None:
    """The proof that global statistics matter: a shard's own tantivy scores differ from the table's."""
    t, sharded = tables
    shard0 = hybrid.Table(sorted(sharded.path.glob("shard-*"))[0], upkeep=None)
    local = shard0.search("alpha", query_type="fts").limit(5).select(["_source_rowid"]).to_arrow()
    rowids = local["_source_rowid"].to_pylist()
    unsharded = t.search("alpha", query_type="fts").limit(N).to_arrow()
    score = dict(zip(unsharded["_rowid"].to_pylist(), unsharded["_bm25"].to_pylist()))
    assert all(abs(score[r] - s) > 1e-3 for r, s in zip(rowids, local["_bm25"].to_pylist()))


def test_exact_vector_search_is_identical(tables: Any) -> None:
    t, sharded = tables
    rng = np.random.default_rng(1)
    for _ in range(5):
        v = rng.normal(size=DIM)
        one = t.search(v, query_type="vector", vector_column="plain").limit(15).to_arrow()
        many = sharded.search(v, query_type="vector", vector_column="plain").limit(15).to_arrow()
        assert_same(one, many)
        assert_same(one, many, "_distance")


def test_hnsw_recall_matches_within_001(tables: Any) -> None:
    t, sharded = tables
    vectors = np.stack(t.to_arrow(["vector"], with_rowid=True)["vector"].to_numpy(zero_copy_only=False))
    ids = t.to_arrow([], with_rowid=True)["_rowid"].to_numpy()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    rng = np.random.default_rng(2)
    recall_one, recall_many = [], []
    for _ in range(30):
        q = rng.normal(size=DIM)
        truth = set(ids[np.argsort(-(unit @ (q / np.linalg.norm(q))))[:10]].tolist())
        one = t.search(q, query_type="vector", vector_column="vector").limit(10).to_arrow()["_rowid"].to_pylist()
        many = sharded.search(q, query_type="vector", vector_column="vector").limit(10).to_arrow()
        recall_one.append(len(truth & set(one)) / 10)
        recall_many.append(len(truth & set(many["_rowid"].to_pylist())) / 10)
    assert float(np.mean(recall_many)) >= float(np.mean(recall_one)) - 0.01


@pytest.mark.parametrize("where", [None, "cat = 2", "cat IN (1, 3) AND id > 300", "id < 40"])
def test_hybrid_and_filtered_queries_are_identical(tables: Any, where: str | None) -> None:
    t, sharded = tables
    for text in QUERIES[1:4]:
        q1 = t.search(text, query_type="hybrid").limit(10)
        q2 = sharded.search(text, query_type="hybrid").limit(10)
        if where:
            q1, q2 = q1.where(where), q2.where(where)
        one, many = q1.to_arrow(), q2.to_arrow()
        assert one.num_rows == many.num_rows > 0
        assert_same(one, many)
        if where:
            assert t.count_rows(where) == sharded.count_rows(where)
            assert set(many["_rowid"].to_pylist()) <= set(
                t.to_arrow([], where=where, with_rowid=True)["_rowid"].to_pylist()
            )


@pytest.mark.parametrize("fusion", [RRF(k=60), Linear(alpha=0.5, normalize="zscore")])
def test_other_fusions_and_weights(tables: Any, fusion: Any) -> None:
    t, sharded = tables
    text = QUERIES[3]
    # the hashing embedder's 16-d word-count vectors tie exactly to the text's own vector (4 rows at one
    # distance around rank 50, the vector list's cut), and which tied row makes the cut is arbitrary in
    # both; a random query vector has no ties, an ef over the table's size makes every HNSW walk
    # exhaustive (one graph of 1,200 rows and three of 400 find different near-misses), and this test
    # is about fusion and weights (HNSW recall has its own test above)
    vector = np.random.default_rng(3).normal(size=DIM)
    for weights in ("equal", {"vector": 2.0, "fts": 0.5}):
        one, many = (
            x.search(text, query_type="hybrid").vector(vector, "vector").fuse(fusion).weights(weights).ef_search(N)
            for x in (t, sharded)
        )
        assert_same(one.limit(10).to_arrow(), many.limit(10).to_arrow())


@pytest.mark.parametrize("k", [8, 40])  # 40: deeper than the fusion window's candidates need
def test_reranked_results_are_identical(tables: Any, k: int) -> None:
    t, sharded = tables
    shortest = CallableReranker(lambda q, texts: [-len(x) - 0.001 * i for i, x in enumerate(texts)], column="body")
    one = t.search("alpha river", query_type="hybrid").rerank(shortest).limit(k).select(["id"]).to_arrow()
    many = sharded.search("alpha river", query_type="hybrid").rerank(shortest).limit(k).select(["id"]).to_arrow()
    assert one.column_names == many.column_names
    assert one["id"].to_pylist() == many["id"].to_pylist()


def test_bad_input_is_a_clear_error(tables: Any, tmp_path: Path) -> None:
    t, sharded = tables
    with pytest.raises(ValueError, match="num_shards"):
        hr.shard(t, 0)
    with pytest.raises(HybridError, match="exists"):
        hr.shard(t, 2, sharded.path)
    with pytest.raises(VectorError, match="dimension"):
        sharded.search(np.ones(3), query_type="vector", vector_column="plain").to_arrow()
    with pytest.raises(HybridError, match="shards.json"):
        hr.ShardedTable(tmp_path)


def test_a_foreign_question_is_told_by_all_shards_document_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short English question over German rows, which py3langid is unsure of: its English function
    words ("what", "did") are in none of the documents of any shard, so the sharded table, like the
    unsharded one, takes it for foreign and the vector branch's answer (row 7) wins over the row that
    repeats the question's names (row 3). Without the shards' document counts the name's row wins."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=16).astype(np.float32)
    vectors = base + 0.3 * rng.normal(size=(40, 16)).astype(np.float32)
    query = vectors[7] + 0.3 * rng.normal(size=16).astype(np.float32)
    rows = [
        {"id": i, "text": f"Die Normandie liegt im Norden Frankreichs, Abschnitt {i}.", "vector": vectors[i]}
        for i in range(40)
    ]
    rows[7]["text"] = "Im Jahr 2016 trat die Sängerin in der Halbzeitshow des Endspiels auf."
    rows[3]["text"] = "Lady Gaga sing Houston: Lady Gaga opening, Lady Gaga sing again."
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("de", rows)
    t.create_fts_index("text", language="de")
    t.create_vector_index("vector", metric="l2")
    question = "What did Lady Gaga sing in Houston?"
    sharded = hr.shard(t, 2)
    try:
        one, many = (x.search(question, query_type="hybrid").vector(query, "vector").limit(1) for x in (t, sharded))
        assert one.to_arrow()["id"].to_pylist() == many.to_arrow()["id"].to_pylist() == [7]
        assert sharded.search(question, query_type="fts").limit(1).to_arrow()["id"].to_pylist() == [3]

        from hybrid.index.language import is_foreign
        from hybrid.ray import shards

        monkeypatch.setattr(shards, "is_foreign", lambda text, language, doc_share=None: is_foreign(text, language))
        assert many.to_arrow()["id"].to_pylist() == [3]
    finally:
        sharded.close()
