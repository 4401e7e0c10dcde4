"""The search API end to end on small real tables: the immutable `Query` builder,
result columns, exactness against numpy, paging, errors,
reranking, explain, output formats, time travel, and whether the native
search calls release the GIL (so the vector and text branches really overlap).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import hybrid
from hybrid.index.analyzer import Analyzer
from hybrid.query import branch_threads, executor
from hybrid.query.fusion import DBSF, RRF, Linear
from hybrid.query.search import RESULT_COLUMNS, Query
from hybrid.query.text import Match, Phrase, QueryString

N_ROWS = 200
WORDS = ["apple", "banana", "cherry", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"]
CATEGORIES = ["a", "b", "c", "d"]


def make_rows(n: int = N_ROWS, seed: int = 7) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = 2 + i % 7  # texts of different lengths, so BM25 and the length reranker vary
        rows.append(
            {
                "id": i,
                "text": " ".join(rng.choice(WORDS, k).tolist()),
                "category": CATEGORIES[i % len(CATEGORIES)],
                "vector": rng.standard_normal(8).astype(np.float32).tolist(),
                "title_vec": rng.standard_normal(4).astype(np.float32).tolist(),
            }
        )
    return rows


ROWS = make_rows()
VECTORS = np.array([r["vector"] for r in ROWS], dtype=np.float32)
TITLE_VECS = np.array([r["title_vec"] for r in ROWS], dtype=np.float32)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> hybrid.Table:
    """200 rows; FTS on `text`; HNSW l2 on `vector`, HNSW cosine on `title_vec`. Never written to by tests."""
    db = hybrid.connect(tmp_path_factory.mktemp("search_api"))
    t = db.create_table("docs", ROWS)
    t.create_fts_index(["text"])
    t.create_vector_index("vector", metric="l2")
    t.create_vector_index("title_vec", metric="cosine")
    return t


def ids_of(result: pa.Table, column: str = "id") -> list[Any]:
    return result.column(column).to_pylist()


def exact(matrix: np.ndarray, q: np.ndarray, metric: str, k: int) -> tuple[list[int], list[float]]:
    """Reference exact search in float64 (hnswlib's distance definitions)."""
    m, v = matrix.astype(np.float64), np.asarray(q, dtype=np.float64)
    cosine = 1.0 - (m @ v) / (np.linalg.norm(m, axis=1) * np.linalg.norm(v))
    d = ((m - v) ** 2).sum(axis=1) if metric == "l2" else cosine
    order = np.argsort(d, kind="stable")[:k]
    return order.tolist(), d[order].tolist()


# -- the builder is immutable ----------------------------------------------------------------


class LengthReranker:
    """Scores candidates by the length of their `text` (ties broken by row id); records its input."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, pa.Table]] = []

    def rerank(self, query: str, candidates: pa.Table) -> pa.Table:
        self.calls.append((query, candidates))
        length = pc.cast(pc.utf8_length(candidates.column("text")), pa.float64())
        tiebreak = pc.multiply(pc.cast(candidates.column("_rowid"), pa.float64()), 1e-6)
        return candidates.append_column("_relevance_score", pc.add(length, tiebreak))


BUILDERS: list[tuple[str, Callable[[Query], Query], str, Any]] = [
    ("where", lambda q: q.where("category = 'a'"), "filter_sql", "category = 'a'"),
    ("where-post", lambda q: q.where("id > 3", prefilter=False), "prefilter", False),
    ("select", lambda q: q.select(["id"]), "columns", ("id",)),
    ("select-str", lambda q: q.select("id"), "columns", ("id",)),
    ("limit", lambda q: q.limit(3), "k", 3),
    ("offset", lambda q: q.offset(4), "skip", 4),
    ("candidates", lambda q: q.candidates(77), "depth", 77),
    ("fuse", lambda q: q.fuse(DBSF()), "fusion", DBSF()),
    ("ef_search", lambda q: q.ef_search(99), "ef", 99),
    ("text", lambda q: q.text("banana"), "text_query", Match("banana")),
    ("text-boosts", lambda q: q.text("banana", boosts={"text": 2.0}), "boosts", {"text": 2.0}),
]


def snapshot_fields(q: Query) -> dict[str, Any]:
    return {f.name: getattr(q, f.name) for f in dataclasses.fields(q)}


def assert_same_fields(before: dict[str, Any], q: Query) -> None:
    for name, value in before.items():
        now = getattr(q, name)
        assert now is value, f"field {name} of the original query changed"


@pytest.mark.parametrize(("name", "build", "field", "value"), BUILDERS, ids=[b[0] for b in BUILDERS])
def test_builder_returns_new_query_and_leaves_original(
    table: hybrid.Table, name: str, build: Callable[[Query], Query], field: str, value: Any
) -> None:
    base = table.search("apple").vector(ROWS[0]["vector"], column="vector")
    before = snapshot_fields(base)
    expected = base.to_arrow()
    new = build(base)
    assert isinstance(new, Query) and new is not base
    assert getattr(new, field) == value
    assert_same_fields(before, base)
    assert base.to_arrow().equals(expected)  # running the original is unaffected


def test_vector_and_rerank_builders_are_immutable(table: hybrid.Table) -> None:
    base = table.search("apple")
    before = snapshot_fields(base)
    v1 = base.vector(ROWS[1]["vector"], column="vector")
    v2 = v1.vector(ROWS[2]["title_vec"], column="title_vec")
    v3 = v2.vector(ROWS[3]["vector"], column="vector")  # same column: replaces that branch
    reranker = LengthReranker()
    rr = v3.rerank(reranker)
    assert_same_fields(before, base)
    assert base.vectors == () and base.reranker is None
    assert [c for c, _ in v1.vectors] == ["vector"]
    assert [c for c, _ in v2.vectors] == ["vector", "title_vec"]
    assert [c for c, _ in v3.vectors] == ["title_vec", "vector"]
    assert np.array_equal(dict(v3.vectors)["vector"], np.float32(ROWS[3]["vector"]))
    assert np.array_equal(dict(v2.vectors)["vector"], np.float32(ROWS[1]["vector"]))  # v2 untouched by v3
    assert rr.reranker is reranker and v3.reranker is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.k = 3  # type: ignore[misc]


def test_default_and_named_vector_column_are_one_branch(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("one", [{"id": i, "vector": [float(i), 1.0]} for i in range(5)])
    result = t.search([1.0, 1.0]).vector([3.0, 1.0], column="vector").limit(1).to_arrow()
    assert result.column_names == ["_rowid", "id", "vector", "_score", "_distance", "_vector_rank"]
    assert result.column("id").to_pylist() == [3]


@pytest.mark.parametrize(
    ("build", "exc", "fragment"),
    [
        (lambda q: q.limit(0), ValueError, "limit must be a positive integer"),
        (lambda q: q.limit(-2), ValueError, "limit must be a positive integer"),
        (lambda q: q.limit(2.5), ValueError, "limit must be a positive integer"),
        (lambda q: q.offset(-1), ValueError, "offset must be a non-negative integer"),
        (lambda q: q.candidates(0), ValueError, "candidates must be a positive integer"),
        (lambda q: q.ef_search(0), ValueError, "ef_search must be a positive integer"),
        (lambda q: q.where("  "), ValueError, "non-empty SQL"),
        (lambda q: q.fuse(object()), TypeError, "fuse"),
        (lambda q: q.rerank(object()), TypeError, "rerank"),
        (lambda q: q.text(42), TypeError, "expected a text query"),
    ],
)
def test_builder_rejects_bad_arguments(table: hybrid.Table, build: Callable, exc: type, fragment: str) -> None:
    with pytest.raises(exc, match=fragment):
        build(table.search("apple"))


# -- result columns ---------------------------------------------------------------------------

BRANCH_TYPES = {
    "_rowid": pa.uint64(),
    "_score": pa.float64(),
    "_distance": pa.float32(),
    "_vector_rank": pa.int32(),
    "_distance_title_vec": pa.float32(),
    "_vector_rank_title_vec": pa.int32(),
    "_bm25": pa.float32(),
    "_fts_rank": pa.int32(),
    "_relevance_score": pa.float64(),
}


def check_types(result: pa.Table) -> None:
    for name in result.column_names:
        if name in BRANCH_TYPES:
            assert result.schema.field(name).type == BRANCH_TYPES[name], name


def test_hybrid_result_columns_and_branch_values(table: hybrid.Table) -> None:
    v = np.float32(ROWS[10]["vector"])
    depth = 40  # each branch contributes max(candidates, offset + limit) rows
    q = table.search("apple cherry").vector(v, column="vector").select(["id", "category"]).candidates(20)
    result = q.limit(depth).to_arrow()
    assert result.num_rows == depth
    assert result.column_names == [
        "_rowid",
        "id",
        "category",
        "_score",
        "_distance",
        "_vector_rank",
        "_bm25",
        "_fts_rank",
    ]
    assert set(result.column_names) - {"id", "category"} <= set(RESULT_COLUMNS)
    check_types(result)
    scores = result.column("_score").to_pylist()
    assert scores == sorted(scores, reverse=True)
    assert result.column("_rowid").to_pylist() == result.column("id").to_pylist()  # row ids follow insertion

    # each branch's columns equal that branch run alone; null exactly where the row came from the other branch
    alone_v = table.search().vector(v, column="vector").limit(depth).select(["id"]).to_arrow()
    alone_t = table.search("apple cherry").limit(depth).select(["id"]).to_arrow()
    dist = dict(zip(ids_of(alone_v), alone_v.column("_distance").to_pylist()))
    bm25 = dict(zip(ids_of(alone_t), alone_t.column("_bm25").to_pylist()))
    vrank = {i: r + 1 for r, i in enumerate(ids_of(alone_v))}
    trank = {i: r + 1 for r, i in enumerate(ids_of(alone_t))}
    assert set(ids_of(result)) <= set(dist) | set(bm25)
    only_one = 0
    for row in result.to_pylist():
        i = row["id"]
        assert row["_distance"] == dist.get(i) and row["_vector_rank"] == vrank.get(i)
        assert row["_bm25"] == bm25.get(i) and row["_fts_rank"] == trank.get(i)
        assert (row["_distance"] is None) == (row["_vector_rank"] is None)
        assert (row["_bm25"] is None) == (row["_fts_rank"] is None)
        assert row["_distance"] is not None or row["_bm25"] is not None
        only_one += (row["_distance"] is None) != (row["_bm25"] is None)
        # default fusion Linear(alpha=0.7) over min-max scores of each branch's first 20 (the candidates
        # asked for: its fusion window; the rows past it score 0 from it), each branch weighted ("auto", no
        # bound embedder, so no calibration) by its list's steepness: 1 - d1/d10 for distances, 1 - s10/s1
        # for BM25
        d, b = sorted(dist.values())[:20], sorted(bm25.values(), reverse=True)[:20]
        steep_v, steep_t = 1 - d[0] / d[9], 1 - b[9] / b[0]
        expected = 0.0
        if row["_distance"] is not None and row["_vector_rank"] <= 20:
            expected += 0.7 * steep_v * (d[-1] - row["_distance"]) / (d[-1] - d[0])
        if row["_bm25"] is not None and row["_fts_rank"] <= 20:
            expected += 0.3 * steep_t * (row["_bm25"] - b[-1]) / (b[0] - b[-1])
        assert row["_score"] == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert only_one > 0  # the test data does produce single-branch rows


def test_second_vector_branch_is_suffixed(table: hybrid.Table) -> None:
    q = (
        table.search("banana")
        .vector(ROWS[3]["vector"], column="vector")
        .vector(ROWS[3]["title_vec"], column="title_vec")
        .fuse(RRF(k=20))
        .select(["id"])
        .limit(30)
    )
    result = q.to_arrow()
    assert result.column_names == [
        "_rowid",
        "id",
        "_score",
        "_distance",
        "_vector_rank",
        "_distance_title_vec",
        "_vector_rank_title_vec",
        "_bm25",
        "_fts_rank",
    ]
    check_types(result)
    [top] = [r for r in result.to_pylist() if r["id"] == 3]
    # row 3 is first in both vector branches (its own vectors)
    assert top["_vector_rank"] == 1 and top["_vector_rank_title_vec"] == 1
    assert top["_score"] == pytest.approx(2 / 21 + (1 / (20 + top["_fts_rank"]) if top["_fts_rank"] else 0.0))
    assert top["_distance"] == pytest.approx(0.0, abs=1e-5) and top["_distance_title_vec"] == pytest.approx(0, abs=1e-5)
    alone = table.search().vector(ROWS[3]["title_vec"], column="title_vec").select(["id"]).limit(10).to_arrow()
    got = {r["id"]: r["_vector_rank_title_vec"] for r in result.to_pylist() if r["_vector_rank_title_vec"] is not None}
    alone_ranks = {i: r + 1 for r, i in enumerate(ids_of(alone))}
    in_top10 = {i: r for i, r in got.items() if r <= 10}
    assert in_top10 and all(alone_ranks[i] == r for i, r in in_top10.items())


def test_select_all_columns_by_default(table: hybrid.Table) -> None:
    result = table.search("apple").limit(3).to_arrow()
    assert result.column_names == ["_rowid", *table.schema.names, "_score", "_bm25", "_fts_rank"]
    vector_only = table.search(ROWS[0]["vector"], vector_column="vector").limit(3).to_arrow()
    assert vector_only.column_names == ["_rowid", *table.schema.names, "_score", "_distance", "_vector_rank"]


@pytest.mark.parametrize(
    "build",
    [
        lambda t: t.search("apple").vector(ROWS[0]["vector"], column="vector"),
        lambda t: t.search("apple"),
        lambda t: t.search(ROWS[0]["vector"], vector_column="vector"),
        lambda t: t.search("apple").vector(ROWS[0]["vector"], column="vector").select(["id"]),
        lambda t: (
            t.search("apple")
            .vector(ROWS[0]["vector"], column="vector")
            .vector(ROWS[0]["title_vec"], column="title_vec")
        ),
    ],
    ids=["hybrid", "text", "vector", "hybrid-select", "two-vectors"],
)
def test_empty_result_is_typed_with_the_same_schema(table: hybrid.Table, build: Callable) -> None:
    full = build(table).limit(5).to_arrow()
    assert full.num_rows == 5
    empty = build(table).where("category = 'no such category'").limit(5).to_arrow()
    assert empty.num_rows == 0
    assert empty.schema == full.schema
    beyond = build(table).offset(10_000).to_arrow()
    assert beyond.num_rows == 0 and beyond.schema == full.schema


def test_text_without_matches_is_empty_not_an_error(table: hybrid.Table) -> None:
    full = table.search("apple").to_arrow()
    for text in ["zzzzqqq", "the of and", "&&", "--", '"']:  # no match / only stop words / no terms
        empty = table.search(text).to_arrow()
        assert empty.num_rows == 0 and empty.schema == full.schema, text


# -- exactness, ordering, paging ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "matrix", "metric"), [("vector", VECTORS, "l2"), ("title_vec", TITLE_VECS, "cosine")]
)
@pytest.mark.parametrize("k", [1, 5, 10])
def test_vector_only_equals_exact_numpy(
    table: hybrid.Table, column: str, matrix: np.ndarray, metric: str, k: int
) -> None:
    rng = np.random.default_rng(k)
    for _ in range(5):
        q = rng.standard_normal(matrix.shape[1]).astype(np.float32)
        result = table.search(q, vector_column=column).limit(k).select(["id"]).to_arrow()
        want_ids, want_d = exact(matrix, q, metric, k)
        assert ids_of(result) == want_ids
        assert result.column("_distance").to_pylist() == pytest.approx(want_d, rel=1e-4, abs=1e-5)
        assert result.column("_vector_rank").to_pylist() == list(range(1, k + 1))
        assert result.column("_score").to_pylist() == pytest.approx([-d for d in want_d], rel=1e-4, abs=1e-5)


def test_text_only_order_follows_bm25(table: hybrid.Table) -> None:
    for text in ["apple", "banana cherry", "kilo lima golf hotel"]:
        result = table.search(text).limit(50).to_arrow()
        assert result.num_rows > 5
        bm25 = result.column("_bm25").to_pylist()
        assert bm25 == sorted(bm25, reverse=True)
        assert result.column("_score").to_pylist() == pytest.approx(bm25)
        assert result.column("_fts_rank").to_pylist() == list(range(1, result.num_rows + 1))
        terms = set(Analyzer().terms(text))
        for row in result.to_pylist():  # every hit holds a query term
            assert terms & set(Analyzer().terms(row["text"]))


@pytest.mark.parametrize(
    "build",
    [
        lambda t: t.search("apple banana").vector(ROWS[5]["vector"], column="vector"),
        lambda t: t.search("apple banana"),
        lambda t: t.search(ROWS[5]["vector"], vector_column="vector"),
        lambda t: t.search("apple banana").vector(ROWS[5]["vector"], column="vector").where("category <> 'b'"),
        lambda t: t.search("apple banana").vector(ROWS[5]["vector"], column="vector").fuse(Linear(0.4)),
    ],
    ids=["hybrid", "text", "vector", "hybrid-filtered", "linear"],
)
def test_offset_limit_paging(table: hybrid.Table, build: Callable) -> None:
    first10 = build(table).limit(10).to_arrow()
    page2 = build(table).offset(5).limit(5).to_arrow()
    assert first10.num_rows == 10
    assert page2.equals(first10.slice(5, 5))
    page1 = build(table).limit(5).to_arrow()
    assert page1.equals(first10.slice(0, 5))


def test_fusion_choice_reaches_the_executor(table: hybrid.Table) -> None:
    v = ROWS[20]["vector"]
    vector_ids = ids_of(table.search(v, vector_column="vector").limit(5).to_arrow())
    text_ids = ids_of(table.search("juliet kilo").limit(5).to_arrow())
    base = table.search("juliet kilo").vector(v, column="vector").limit(5)
    # Linear alpha weighs the vector branch: alpha = 1 ranks like the vector branch, alpha = 0 like the text one
    assert ids_of(base.fuse(Linear(alpha=1.0)).to_arrow()) == vector_ids
    assert ids_of(base.fuse(Linear(alpha=0.0)).to_arrow()) == text_ids
    rrf = base.fuse(RRF(k=1)).weights("equal").to_arrow().to_pylist()
    for row in rrf:
        ranks = [r for r in (row["_vector_rank"], row["_fts_rank"]) if r is not None]
        assert row["_score"] == pytest.approx(sum(1.0 / (1 + r) for r in ranks))


# -- errors -----------------------------------------------------------------------------------------


def test_wrong_vector_dimension(table: hybrid.Table) -> None:
    with pytest.raises(hybrid.VectorError, match=r"dimension 7, column 'vector' holds 8"):
        table.search().vector([0.5] * 7, column="vector").to_arrow()
    with pytest.raises(hybrid.VectorError, match=r"dimension 8, column 'title_vec' holds 4"):
        table.search([0.5] * 8, vector_column="title_vec").to_arrow()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_inf_in_query_vector(table: hybrid.Table, bad: float) -> None:
    v = [0.1] * 8
    v[3] = bad
    with pytest.raises(hybrid.VectorError, match="NaN or inf"):
        table.search().vector(v, column="vector")
    with pytest.raises(hybrid.VectorError, match="NaN or inf"):
        table.search(np.array(v), vector_column="vector")


def test_malformed_query_vectors(table: hybrid.Table) -> None:
    with pytest.raises(hybrid.VectorError, match="1-dimensional and non-empty"):
        table.search().vector([[0.1] * 8], column="vector")
    with pytest.raises(hybrid.VectorError, match="1-dimensional and non-empty"):
        table.search().vector(np.zeros(0), column="vector")
    with pytest.raises(hybrid.VectorError, match="sequence of numbers"):
        table.search().vector(["a", "b"], column="vector")
    with pytest.raises(hybrid.SchemaError, match="not a vector column"):
        table.search().vector([0.1] * 8, column="category").to_arrow()


@pytest.mark.parametrize("text", ["", "   ", Match(""), Phrase(" "), QueryString("")])
def test_empty_text_query(table: hybrid.Table, text: Any) -> None:
    with pytest.raises(ValueError, match="empty"):
        table.search(text)
    with pytest.raises(ValueError, match="empty"):
        table.search().text(text)


def test_unknown_columns(table: hybrid.Table) -> None:
    with pytest.raises(hybrid.SchemaError, match=r"unknown column\(s\) \['nope'\]"):
        table.search("apple").select(["id", "nope"]).to_arrow()
    with pytest.raises(hybrid.FilterError, match="unknown column 'nope'"):
        table.search("apple").where("nope = 1").to_arrow()
    with pytest.raises(hybrid.FilterError, match="unknown column 'nope'"):
        table.search(ROWS[0]["vector"], vector_column="vector").where("nope > 2", prefilter=False).to_arrow()
    with pytest.raises(hybrid.SchemaError):
        table.search().vector(ROWS[0]["vector"], column="nope").to_arrow()


def test_missing_query_inputs(table: hybrid.Table) -> None:
    with pytest.raises(ValueError, match="hybrid query needs both a text query and a query vector"):
        table.search("apple", query_type="hybrid").to_arrow()
    with pytest.raises(ValueError, match="hybrid query needs both"):
        table.search(ROWS[0]["vector"], query_type="hybrid", vector_column="vector").to_arrow()
    with pytest.raises(ValueError, match="vector query needs a query vector"):
        table.search("apple", query_type="vector").to_arrow()
    with pytest.raises(ValueError, match="full-text query needs text"):
        table.search(ROWS[0]["vector"], query_type="fts", vector_column="vector").to_arrow()
    with pytest.raises(ValueError, match="empty query"):
        table.search().to_arrow()
    with pytest.raises(hybrid.SchemaError, match="2 vector columns"):
        table.search(ROWS[0]["vector"]).to_arrow()  # two vector columns: name one


def test_no_fts_index(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("plain", ROWS[:20])
    with pytest.raises(hybrid.HybridError, match=r"no full-text index: call table.create_fts_index"):
        t.search("apple").to_arrow()
    with pytest.raises(hybrid.HybridError, match="no full-text index"):
        t.search("apple").explain()
    # a vector search needs no index: it is exact
    assert ids_of(t.search(ROWS[4]["vector"], vector_column="vector").limit(1).to_arrow()) == [4]


def test_fts_index_choice(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("two", ROWS[:20])
    t.create_fts_index(["text"], name="by_text")
    t.create_fts_index(["text", "category"], name="by_both")
    with pytest.raises(hybrid.HybridError, match="several full-text indexes"):
        t.search("apple").to_arrow()
    assert t.search("apple", fts_columns=["text"]).to_arrow().num_rows > 0
    assert "branch fts on by_both" in t.search("apple").text("apple", columns=["category", "text"]).explain()
    with pytest.raises(hybrid.HybridError, match=r"no full-text index on \['category'\]"):
        t.search("apple", fts_columns=["category"]).to_arrow()


# -- reranking --------------------------------------------------------------------------------------


def test_rerank_reorders_and_keeps_branch_columns(table: hybrid.Table) -> None:
    reranker = LengthReranker()
    q = table.search("apple banana").vector(ROWS[7]["vector"], column="vector").select(["id"])
    result = q.rerank(reranker).limit(8).to_arrow()
    assert result.column_names == [
        "_rowid", "id", "_score", "_distance", "_vector_rank", "_bm25", "_fts_rank", "_relevance_score",
        "_fused_score",
    ]  # fmt: skip
    check_types(result)
    # the reranker saw, with the query text and the FTS column `text` (not selected), every fused
    # candidate: the union of each branch's top 50 (the default depth), best fused score first
    [(query, candidates)] = reranker.calls
    assert query == "apple banana"
    assert "text" in candidates.column_names and "_rowid" in candidates.column_names
    alone_v = table.search(ROWS[7]["vector"], vector_column="vector").limit(50).select(["id"]).to_arrow()
    alone_t = table.search("apple banana").limit(50).select(["id"]).to_arrow()
    assert set(ids_of(candidates)) == set(ids_of(alone_v)) | set(ids_of(alone_t))
    fused_scores = candidates.column("_score").to_pylist()
    assert fused_scores == sorted(fused_scores, reverse=True)
    # result: the top 8 candidates by text length, best first; _score is the relevance score
    by_len = sorted(((len(ROWS[i]["text"]) + i * 1e-6, i) for i in ids_of(candidates)), reverse=True)[:8]
    assert ids_of(result) == [i for _, i in by_len]
    rel = result.column("_relevance_score").to_pylist()
    assert rel == sorted(rel, reverse=True) and result.column("_score").to_pylist() == rel
    # per-branch columns are carried over unchanged from fusion
    fused_rows = {r["id"]: r for r in candidates.to_pylist()}
    for row in result.to_pylist():
        for c in ("_distance", "_vector_rank", "_bm25", "_fts_rank"):
            assert row[c] == fused_rows[row["id"]][c]
        assert row["_fused_score"] == fused_rows[row["id"]]["_score"]  # the score before reranking
    # paging applies after reranking
    page = q.rerank(LengthReranker()).offset(3).limit(4).to_arrow()
    assert ids_of(page) == ids_of(result)[3:7]


def test_rerank_keeps_selected_text_column(table: hybrid.Table) -> None:
    result = table.search("golf").rerank(LengthReranker()).select(["id", "text"]).limit(3).to_arrow()
    assert result.column_names == [
        "_rowid", "id", "text", "_score", "_bm25", "_fts_rank", "_relevance_score", "_fused_score",
    ]  # fmt: skip
    lengths = [len(s) for s in result.column("text").to_pylist()]
    assert lengths == sorted(lengths, reverse=True)


class NoScore:
    def rerank(self, query: str, candidates: pa.Table) -> pa.Table:
        return candidates


class NotATable:
    def rerank(self, query: str, candidates: pa.Table) -> Any:
        return candidates.to_pylist()


class Inventor:
    def rerank(self, query: str, candidates: pa.Table) -> pa.Table:
        out = candidates.append_column("_relevance_score", pa.array([1.0] * candidates.num_rows))
        ids = pc.add(out.column("_rowid"), pa.scalar(10_000, pa.uint64()))
        return out.set_column(out.column_names.index("_rowid"), "_rowid", ids)


@pytest.mark.parametrize(
    ("reranker", "fragment"),
    [
        (NoScore(), "NoScore.rerank must add a '_relevance_score' column"),
        (NotATable(), "NotATable.rerank must return a pyarrow Table"),
        (Inventor(), "Inventor.rerank returned rows that were not among the candidates"),
    ],
)
def test_broken_reranker_raises_hybrid_error(table: hybrid.Table, reranker: Any, fragment: str) -> None:
    with pytest.raises(hybrid.HybridError, match=fragment):
        table.search("apple").rerank(reranker).to_arrow()


def test_rerank_needs_query_text(table: hybrid.Table) -> None:
    with pytest.raises(ValueError, match="rerank needs a plain text query"):
        table.search(ROWS[0]["vector"], vector_column="vector").rerank(LengthReranker()).to_arrow()


# -- explain ----------------------------------------------------------------------------------------


def test_explain_lists_branches_indexes_filter_and_fusion(table: hybrid.Table) -> None:
    q = (
        table.search("apple")
        .vector(ROWS[0]["vector"], column="vector")
        .vector(ROWS[0]["title_vec"], column="title_vec")
        .where("category = 'a'")
        .fuse(Linear(alpha=0.3))
        .offset(2)
        .limit(4)
    )
    plan = q.explain()
    assert f"search docs v{table.version} ({N_ROWS} rows)" in plan
    assert "filter: \"category = 'a'\" -> 50 rows from DuckDB, applied before top-k (prefilter)" in plan
    # a 50-row filter on a 200-row table is searched exactly, in every branch
    assert "branch vector on vector: exact over 50 allowed rows (cheaper than HNSW" in plan
    assert "branch vector on title_vec: exact over 50 allowed rows" in plan
    assert "branch fts on fts: BM25 fts within 50 allowed rows [0 unindexed, 0 dead rows]" in plan
    assert "fuse: Linear(alpha=0.3, normalize='minmax')" in plan
    assert "return: offset 2, limit 4" in plan
    post = table.search("apple").vector(ROWS[0]["vector"], column="vector").where("id > 3", prefilter=False)
    assert "applied after top-k (postfilter)" in post.explain()
    assert "branch vector on vector: HNSW vector:vector (ef=64)" in post.explain()
    assert "fuse: Linear(alpha=0.7, normalize='minmax') over each branch's first 50, weights auto" in post.explain()
    assert "over each branch's first 80," in post.candidates(80).explain()
    reranked = table.search("apple").vector(ROWS[0]["vector"], column="vector").rerank(LengthReranker())
    assert "rerank: LengthReranker over the fused candidates" in reranked.explain()
    single = table.search("apple").explain()
    assert "fuse" not in single and "branch vector" not in single and "top 10" in single


def test_explain_exact_without_index(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("noidx", ROWS[:30])
    plan = t.search(ROWS[0]["vector"], vector_column="vector").explain()
    assert "branch vector on vector: exact search (no index)" in plan


def test_explain_reports_exact_search_for_selective_filters(table: hybrid.Table) -> None:
    q = table.search(ROWS[0]["vector"], vector_column="vector").where("id < 10")
    assert "exact" in q.explain()


# -- output formats ---------------------------------------------------------------------------------


def test_to_pandas_polars_list(table: hybrid.Table) -> None:
    q = table.search("apple").vector(ROWS[9]["vector"], column="vector").select(["id", "category"]).limit(7)
    arrow = q.to_arrow()
    df = q.to_pandas()
    assert list(df.columns) == arrow.column_names and len(df) == 7
    assert df["id"].tolist() == ids_of(arrow)
    pl_df = q.to_polars()
    assert pl_df.columns == arrow.column_names and pl_df.height == 7
    assert pl_df["id"].to_list() == ids_of(arrow)
    rows = q.to_list()
    assert rows == arrow.to_pylist()
    assert set(rows[0]) == set(arrow.column_names)


# -- time travel ------------------------------------------------------------------------------------


def test_checkout_searches_that_version(tmp_path: Path) -> None:
    rows = make_rows(60, seed=3)
    for r in rows[:5]:
        r["text"] += " oldword"
    t = hybrid.connect(tmp_path).create_table("tt", rows)
    v_no_index = t.version
    t.create_fts_index(["text"], language="en")  # whole words: "auto" would add pieces (oldword, freshword)
    t.create_vector_index("vector", metric="l2")
    v_indexed = t.version
    added = make_rows(70, seed=4)[60:]
    for r in added:
        r["text"] += " freshword"
    t.add(added)
    t.delete("id < 5")
    old = t.checkout(v_indexed)

    # rows added later do not appear in the old version; rows deleted later do
    assert ids_of(t.search("freshword").limit(50).to_arrow()) and set(
        ids_of(t.search("freshword").limit(50).to_arrow())
    ) == set(range(60, 70))
    assert old.search("freshword").to_arrow().num_rows == 0
    assert set(ids_of(old.search("oldword").to_arrow())) == set(range(5))
    assert t.search("oldword").to_arrow().num_rows == 0

    # vector search: a deleted row's own vector finds it only in the old version
    hit = old.search(rows[2]["vector"], vector_column="vector").limit(1).to_arrow().to_pylist()[0]
    assert hit["id"] == 2 and hit["_distance"] == pytest.approx(0.0, abs=1e-5)
    assert 2 not in ids_of(t.search(rows[2]["vector"], vector_column="vector").limit(10).to_arrow())
    new_hit = t.search(added[3]["vector"], vector_column="vector").limit(1).to_arrow()
    assert ids_of(new_hit) == [63]
    assert 63 not in ids_of(old.search(added[3]["vector"], vector_column="vector").limit(60).to_arrow())

    # every row id returned by the checkout is live in that version
    live_old = set(old.to_arrow(with_rowid=True).column("_rowid").to_pylist())
    hybrid_old = old.search("apple oldword").vector(rows[1]["vector"], column="vector").limit(60).to_arrow()
    assert set(hybrid_old.column("_rowid").to_pylist()) <= live_old
    assert "freshword" not in " ".join(old.search("apple").limit(100).to_arrow().column("text").to_pylist())

    # the version before any index: no FTS; the vector branch is exact (cosine, the default
    # metric without an index), and still sees the rows deleted later
    first = t.checkout(v_no_index)
    with pytest.raises(hybrid.HybridError, match="no full-text index"):
        first.search("apple").to_arrow()
    q = rows[0]["vector"]
    got = first.search(q, vector_column="vector").limit(5).to_arrow()
    assert "exact search (no index)" in first.search(q, vector_column="vector").explain()
    want_ids, want_d = exact(np.array([r["vector"] for r in rows], np.float32), np.float32(q), "cosine", 5)
    assert ids_of(got) == want_ids and want_ids[0] == 0
    assert got.column("_distance").to_pylist() == pytest.approx(want_d, abs=1e-5)
    assert first.search(q, vector_column="vector").limit(5).to_arrow().equals(got)


def test_checkout_is_read_only_and_latest_unchanged(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("ro", ROWS[:10])
    t.create_fts_index(["text"])
    v = t.version
    t.add(ROWS[10:20])
    old = t.checkout(v)
    assert old.search("apple").limit(50).to_arrow().num_rows <= t.search("apple").limit(50).to_arrow().num_rows
    assert old.version == v and t.version == v + 1
    with pytest.raises(hybrid.ReadOnlyError):
        old.create_fts_index(["text"], replace=True)
    assert old.optimize() == []  # the checkout's index covers it: nothing to do (and nothing written)


# -- concurrency: the branches overlap, and the native calls release the GIL ---------------------------


def test_branches_run_concurrently(table: hybrid.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both branches of a hybrid query are in flight at the same time (on different threads)."""
    barrier = threading.Barrier(2, timeout=10)
    threads: list[str] = []
    real_vector, real_text = executor._run_vector, executor._run_text

    def wrap(fn: Callable) -> Callable:
        def run(*args: Any) -> None:
            threads.append(threading.current_thread().name)
            barrier.wait()  # raises BrokenBarrierError if the other branch does not run meanwhile
            fn(*args)

        return run

    monkeypatch.setattr(executor, "_run_vector", wrap(real_vector))
    monkeypatch.setattr(executor, "_run_text", wrap(real_text))
    branch_threads.set_mode("threads")  # "auto" runs them inline on a machine without an idle core
    try:
        result = table.search("apple").vector(ROWS[0]["vector"], column="vector").limit(5).to_arrow()
    finally:
        branch_threads.set_mode("auto")
    assert result.num_rows == 5
    assert len(threads) == 2 and len(set(threads)) == 2


def test_branches_run_inline_without_an_idle_core(table: hybrid.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the load average at the core count the branches run on the calling thread, one after the
    other, with the same answer as on threads; with an idle core they go to the pool again."""
    threads: list[str] = []
    real_vector, real_text = executor._run_vector, executor._run_text

    def wrap(fn: Callable) -> Callable:
        def run(*args: Any) -> None:
            threads.append(threading.current_thread().name)
            fn(*args)

        return run

    q = table.search("apple").vector(ROWS[0]["vector"], column="vector").limit(5)
    branch_threads.set_mode("threads")
    on_threads = q.to_arrow()
    monkeypatch.setattr(executor, "_run_vector", wrap(real_vector))
    monkeypatch.setattr(executor, "_run_text", wrap(real_text))
    monkeypatch.setattr(branch_threads.os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    try:
        branch_threads.set_mode("auto")
        monkeypatch.setattr(branch_threads.os, "getloadavg", lambda: (4.0, 4.0, 4.0))
        assert q.to_arrow().equals(on_threads)
        assert threads == [threading.current_thread().name] * 2
        threads.clear()
        monkeypatch.setattr(branch_threads.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
        branch_threads.set_mode("auto")  # forget the last reading
        assert q.to_arrow().equals(on_threads)
        assert len(set(threads)) == 2
    finally:
        branch_threads.set_mode("auto")
    with pytest.raises(ValueError, match="branch thread mode"):
        branch_threads.set_mode("sometimes")  # type: ignore[arg-type]


def test_concurrent_queries_agree_with_serial(table: hybrid.Table) -> None:
    """Many threads searching one table at once get exactly the serial answers."""
    queries = [
        table.search("apple banana").vector(ROWS[i]["vector"], column="vector").limit(10) for i in range(0, 40, 4)
    ] + [table.search(ROWS[i]["title_vec"], vector_column="title_vec").limit(5) for i in range(3)]
    queries += [table.search(w).where("category <> 'c'").limit(7) for w in WORDS[:4]]
    serial = [q.to_arrow() for q in queries]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda q: q.to_arrow(), queries * 4))
    for i, got in enumerate(concurrent):
        assert got.equals(serial[i % len(queries)])


def test_async_results_equal_sync_and_run_concurrently(table: hybrid.Table) -> None:
    import asyncio

    queries = [table.search(w, query_type="fts").where(f"category = '{c}'").limit(5) for w in WORDS[:4] for c in "ab"]

    async def gather() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(q.ato_list() for q in queries))

    assert asyncio.run(gather()) == [q.to_list() for q in queries]
    with pytest.raises(hybrid.FilterError):
        asyncio.run(table.search("apple").where("no_such_column = 1").ato_list())
