"""The endpoints over real HTTP: tables, rows, search, indexes, versions, JSON-safe results."""

from __future__ import annotations

import base64
import math

import httpx
import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from tests.server.conftest import Live, docs_rows, make_table


def test_health_needs_no_key(live: Live) -> None:
    with live.client(None) as anonymous:
        r = anonymous.get("/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": hybrid.__version__}


def test_create_describe_and_list(admin: httpx.Client) -> None:
    make_table(admin, "api_info", n=20)
    info = admin.get("/v1/tables/api_info").json()
    assert info["num_rows"] == 20 and info["version"] == 3
    cols = {c["name"]: c for c in info["columns"]}
    assert cols["vector"]["vector_dim"] == 32 and cols["text"]["type"] == "string"
    assert info["embeddings"] == {"vector": {"source": "text", "embedder": "hashing", "config": {"dim": 32}}}
    assert sorted(i["name"] for i in info["indexes"]) == ["fts", "vector:vector"]
    assert "api_info" in admin.get("/v1/tables").json()["tables"]
    indexes = admin.get("/v1/tables/api_info/indexes").json()
    assert {i["kind"] for i in indexes["indexes"]} == {"fts", "vector"}


def test_hybrid_search_with_filter_is_correct(admin: httpx.Client) -> None:
    make_table(admin, "api_search")
    body = {"query": "cats gardens", "query_type": "hybrid", "where": "year >= 2010", "limit": 5}
    r = admin.post("/v1/tables/api_search/search", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["count"] == 5 and out["version"] == 3
    hits = out["results"]
    assert all(h["year"] >= 2010 for h in hits)
    # ids 0..59, topic cats = id % 4 == 0, gardens = id % 3 == 0: both words in ids % 12 == 0
    best = [h["id"] for h in hits if h["id"] % 12 == 0]
    assert hits[0]["id"] % 12 == 0 and set(best) <= {12, 24, 36, 48}
    assert [h["_score"] for h in hits] == sorted((h["_score"] for h in hits), reverse=True)
    assert {"_rowid", "_bm25", "_distance", "_fts_rank", "_vector_rank"} <= set(hits[0])
    assert "vector" not in hits[0]  # vectors are left out unless asked for

    fts = admin.post(
        "/v1/tables/api_search/search", json={"query": "cats", "query_type": "fts", "where": "topic = 'cats'"}
    ).json()
    assert fts["count"] == 10 and all(h["topic"] == "cats" for h in fts["results"])

    vec = HashingEmbedder(dim=32).embed_query("document 7 is about fish and rivers").tolist()
    near = admin.post(
        "/v1/tables/api_search/search",
        json={"vector": vec, "query_type": "vector", "limit": 1, "select": ["id", "vector"]},
    ).json()
    assert near["results"][0]["id"] == 7
    assert len(near["results"][0]["vector"]) == 32 and set(near["results"][0]) >= {"id", "vector", "_distance"}


@pytest.mark.parametrize("score", ["max", "sum", "max_mean", "max_mean_len"])
def test_grouped_search_over_http_equals_the_library(live: Live, admin: httpx.Client, score: str) -> None:
    if admin.get("/v1/tables/api_groups").status_code == 404:
        make_table(admin, "api_groups")
    body = {"query": "cats gardens", "limit": 4, "group_by": {"column": "topic", "per_group": 2, "score": score}}
    r = admin.post("/v1/tables/api_groups/search", json=body)
    assert r.status_code == 200, r.text
    hits = [(h["topic"], h["id"]) for h in r.json()["results"]]
    table = hybrid.connect(live.db_path).open_table("api_groups")
    want = table.search("cats gardens").group_by("topic", per_group=2, score=score).limit(4).to_list()  # type: ignore[arg-type]
    assert hits == [(w["topic"], w["id"]) for w in want]
    assert len({t for t, _ in hits}) == len(hits) // 2  # two rows of each group


def test_fusion_rerank_and_paging(admin: httpx.Client) -> None:
    make_table(admin, "api_fusion")
    base = {"query": "dogs rivers", "query_type": "hybrid", "limit": 4}
    for fusion in ({"method": "rrf", "k": 60}, {"method": "linear", "alpha": 0.3}, {"method": "dbsf"}):
        r = admin.post("/v1/tables/api_fusion/search", json={**base, "fusion": fusion})
        assert r.status_code == 200, r.text
        assert r.json()["count"] == 4
    reranked = admin.post(
        "/v1/tables/api_fusion/search", json={**base, "rerank": {"name": "mmr", "mmr_lambda": 0.7}}
    ).json()
    assert all("_relevance_score" in h for h in reranked["results"])
    first = admin.post("/v1/tables/api_fusion/search", json={**base, "limit": 2}).json()["results"]
    second = admin.post("/v1/tables/api_fusion/search", json={**base, "limit": 2, "offset": 2}).json()["results"]
    whole = admin.post("/v1/tables/api_fusion/search", json=base).json()["results"]
    assert [h["_rowid"] for h in first + second] == [h["_rowid"] for h in whole]


def test_add_delete_versions_and_freshness(admin: httpx.Client) -> None:
    make_table(admin, "api_rows", n=20)
    added = admin.post("/v1/tables/api_rows/rows", json={"rows": docs_rows(range(20, 30))})
    assert added.status_code == 200, added.text
    assert added.json()["inserted"] == 10 and added.json()["version"] == 4
    # the new rows are searchable at once (embedded by the bound embedder, BM25 over the tail)
    hit = admin.post("/v1/tables/api_rows/search", json={"query": "document 25", "where": "id >= 20", "limit": 1})
    assert hit.json()["results"][0]["id"] == 25 and hit.json()["version"] == 4
    deleted = admin.post("/v1/tables/api_rows/rows/delete", json={"where": "topic = 'cats'"}).json()
    assert deleted["deleted"] == 8 and deleted["version"] == 5
    assert admin.get("/v1/tables/api_rows").json()["num_rows"] == 22
    gone = admin.post("/v1/tables/api_rows/search", json={"query": "cats", "query_type": "fts"}).json()
    assert all(h["topic"] != "cats" for h in gone["results"])
    versions = admin.get("/v1/tables/api_rows/versions").json()["versions"]
    assert [v["operation"] for v in versions] == ["create", "create_index", "create_index", "append", "delete"]
    assert [v["num_rows"] for v in versions][-2:] == [30, 22]
    assert [v["version"] for v in admin.get("/v1/tables/api_rows/versions?limit=2").json()["versions"]] == [4, 5]


def test_indexes_drop_and_conflicts(admin: httpx.Client) -> None:
    make_table(admin, "api_idx", n=20)
    again = admin.post("/v1/tables/api_idx/indexes", json={"kind": "fts", "columns": ["text"]})
    assert again.status_code == 409 and again.json()["error"]["type"] == "IndexExists"
    rebuilt = admin.post("/v1/tables/api_idx/indexes", json={"kind": "vector", "replace": True, "target_recall": 0.9})
    assert rebuilt.status_code == 201, rebuilt.text
    assert admin.delete("/v1/tables/api_idx/indexes/vector:vector").status_code == 200
    assert admin.delete("/v1/tables/api_idx/indexes/vector:vector").status_code == 404
    # without the vector index the vector branch is exact; search still works
    r = admin.post("/v1/tables/api_idx/search", json={"query": "fish", "query_type": "hybrid"})
    assert r.status_code == 200 and r.json()["count"] == 10
    assert admin.post("/v1/tables", json={"name": "api_idx", "rows": [{"id": 1}]}).status_code == 409
    assert admin.delete("/v1/tables/api_idx").json() == {"dropped": "api_idx"}
    assert admin.get("/v1/tables/api_idx").status_code == 404
    assert admin.delete("/v1/tables/api_idx").status_code == 404


def test_a_full_text_index_without_positions_over_http(admin: httpx.Client) -> None:
    make_table(admin, "api_nopos", n=20)
    indexes = "/v1/tables/api_nopos/indexes"
    search = {"query": "fish", "query_type": "fts"}
    with_positions = admin.post("/v1/tables/api_nopos/search", json=search).json()["results"]
    body = {"kind": "fts", "columns": ["text"], "positions": False, "replace": True}
    assert admin.post(indexes, json=body).status_code == 201
    info = {i["name"]: i for i in admin.get(indexes).json()["indexes"]}["fts"]
    assert info["settings"]["positions"] is False
    # the same BM25 ranking without positions
    without = admin.post("/v1/tables/api_nopos/search", json=search).json()["results"]
    assert [(r["id"], r["_bm25"]) for r in without] == [(r["id"], r["_bm25"]) for r in with_positions]
    assert admin.post(indexes, json={**body, "positions": "no"}).status_code == 422


def test_a_scalar_index_over_http_answers_filters(admin: httpx.Client) -> None:
    make_table(admin, "api_scalar", n=40)
    r = admin.post("/v1/tables/api_scalar/indexes", json={"kind": "scalar", "column": "topic"})
    assert r.status_code == 201, r.text
    again = admin.post("/v1/tables/api_scalar/indexes", json={"kind": "scalar", "column": "topic"})
    assert again.status_code == 409 and again.json()["error"]["type"] == "IndexExists"
    bad = admin.post("/v1/tables/api_scalar/indexes", json={"kind": "scalar", "column": "topic", "index_type": "hash"})
    assert bad.status_code == 422
    info = {i["name"]: i for i in admin.get("/v1/tables/api_scalar/indexes").json()["indexes"]}["scalar:topic"]
    assert info["kind"] == "scalar" and info["settings"]["index_type"] == "bitmap" and info["indexed_rows"] == 40
    body = {"query": "document", "query_type": "fts", "where": "topic IN ('cats', 'fish')", "limit": 40}
    hits = admin.post("/v1/tables/api_scalar/search", json=body).json()["results"]
    assert sorted(h["id"] for h in hits) == [i for i in range(40) if i % 4 in (0, 3)]


def test_results_are_json_safe(live: Live, admin: httpx.Client) -> None:
    db = hybrid.connect(live.db_path)  # another writer on the same folder: the server sees it
    db.create_table(
        "api_json",
        pa.table(
            {
                "id": [1, 2],
                "text": ["alpha beta", "beta gamma"],
                "score": [float("nan"), math.inf],
                "blob": [b"\x00\xffbinary", None],
                "vector": pa.array([[0.5, 0.5], [1.0, 0.0]], pa.list_(pa.float32(), 2)),
            }
        ),
    ).create_fts_index(["text"])
    r = admin.post("/v1/tables/api_json/search", json={"query": "beta", "include_vectors": True})
    assert r.status_code == 200, r.text
    rows = {h["id"]: h for h in r.json()["results"]}
    assert rows[1]["score"] is None and rows[2]["score"] is None
    assert base64.b64decode(rows[1]["blob"]) == b"\x00\xffbinary" and rows[2]["blob"] is None
    assert np.allclose(rows[2]["vector"], [1.0, 0.0])


def test_optimize_folds_added_rows_into_the_indexes(admin: httpx.Client) -> None:
    make_table(admin, "api_opt", n=20)
    for start in (20, 25):
        assert (
            admin.post("/v1/tables/api_opt/rows", json={"rows": docs_rows(range(start, start + 5))}).status_code == 200
        )
    stats = admin.get("/v1/tables/api_opt/indexes").json()["indexes"]
    assert {i["unindexed_rows"] for i in stats} == {10}
    r = admin.post("/v1/tables/api_opt/optimize")
    assert r.status_code == 200, r.text
    assert r.json()["operations"] == ["compact", "merge_index", "merge_index"]
    stats = admin.get("/v1/tables/api_opt/indexes").json()["indexes"]
    assert {i["unindexed_rows"] for i in stats} == {0} and {i["indexed_rows"] for i in stats} == {30}
    hit = admin.post("/v1/tables/api_opt/search", json={"query": "document 27", "limit": 1}).json()
    assert hit["results"][0]["id"] == 27
    assert admin.post("/v1/tables/api_opt/optimize").json()["operations"] == []
