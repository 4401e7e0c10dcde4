"""The REST API builds compressed vector indexes (``index_type``) and explains which one answered."""

from __future__ import annotations

import httpx
import pytest

from tests.server.conftest import make_table

pytest.importorskip("usearch")


def test_compressed_vector_index_over_http(admin: httpx.Client) -> None:
    make_table(admin, "api_ann", n=40)
    r = admin.post(
        "/v1/tables/api_ann/indexes",
        json={"kind": "vector", "replace": True, "index_type": "hnsw_int8", "rescore": 8},
    )
    assert r.status_code == 201, r.text
    stats = {s["name"]: s for s in admin.get("/v1/tables/api_ann/indexes").json()["indexes"]}
    assert stats["vector:vector"]["settings"]["index_type"] == "hnsw_int8", stats
    assert stats["vector:vector"]["settings"]["rescore"] == 8
    bad = admin.post("/v1/tables/api_ann/indexes", json={"kind": "vector", "replace": True, "index_type": "diskann"})
    assert bad.status_code == 422
    assert admin.delete("/v1/tables/api_ann").status_code == 200
