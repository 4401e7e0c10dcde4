"""Grouping, expansion and highlights through the REST API (a real server on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import httpx  # noqa: E402

import hybrid  # noqa: E402
from hybrid.server import create_app  # noqa: E402
from tests.server.conftest import ADMIN, make_config, make_table, running  # noqa: E402


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[httpx.Client, Path]]:
    db_path = tmp_path / "db"
    with running(create_app(db_path, make_config()), db_path) as live, live.client(ADMIN) as c:
        make_table(c, "rag")
        yield c, db_path


def test_search_groups_expands_and_highlights(client: tuple[httpx.Client, Path]) -> None:
    c, db_path = client
    body = {"query": "cats gardens", "query_type": "hybrid", "limit": 3, "highlight": {"pre": "[", "post": "]"}}
    hits = c.post("/v1/tables/rag/search", json=body).json()["results"]
    for h in hits:
        marked = [h["text"][s["start"] : s["end"]] for s in h["_highlight_spans"]]
        assert marked and set(marked) <= {"cats", "gardens"}
        assert "[" + marked[0] + "]" in h["_highlight"]
    grouped = c.post(
        "/v1/tables/rag/search", json={"query": "cats rivers", "limit": 4, "group_by": {"column": "topic"}}
    )
    topics = [h["topic"] for h in grouped.json()["results"]]
    assert len(topics) == 4 and len(set(topics)) == 4 and "_group_rank" in grouped.json()["results"][0]

    refused = c.post("/v1/tables/rag/search", json={"query": "cats", "expand": {"neighbours": 1}})
    assert refused.status_code == 400 and "set_chunking" in refused.json()["error"]["message"]
    hybrid.connect(db_path, upkeep=None).open_table("rag").set_chunking(parent="topic", position="id")
    expanded = c.post(
        "/v1/tables/rag/search", json={"query": "cats", "query_type": "fts", "limit": 1, "expand": {"neighbours": 1}}
    )
    assert expanded.status_code == 200, expanded.text
    hit = expanded.json()["results"][0]
    assert len(hit["_context_rowids"]) in (2, 3) and hit["text"] in hit["_context"]
    bad = c.post("/v1/tables/rag/search", json={"query": "cats", "group_by": {"per_group": 0}})
    assert bad.status_code == 422
    for fuse in ("groups", "rows"):  # documents fused or chunks fused first (the default): the library's order
        spec = {"column": "topic", "per_group": 2, "fuse": fuse}
        body = {"query": "cats rivers", "query_type": "hybrid", "limit": 3, "group_by": spec}
        served = [h["_rowid"] for h in c.post("/v1/tables/rag/search", json=body).json()["results"]]
        q = hybrid.connect(db_path, upkeep=None).open_table("rag").search("cats rivers", query_type="hybrid")
        assert served == [h["_rowid"] for h in q.group_by("topic", per_group=2, fuse=fuse).limit(3).to_list()]
    bad_fuse = {"query": "cats", "group_by": {"fuse": "chunks"}}
    assert c.post("/v1/tables/rag/search", json=bad_fuse).status_code == 422
