"""Scoped API keys over real HTTP: grants per table, row scopes, vectors, and what the audit log records.

The central test walks every operation of the served OpenAPI spec with a key that has no grant for
the target table, and checks that the answer is exactly the one for a table that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from hybrid.server import create_app
from hybrid.server.config import ApiKey, Grant, load_config

from .conftest import ADMIN, READER, Live, make_config, running

ACME = "acme-write-key-0123456789abcdef"
ACME_READ = "acme-read-key-0123456789abcdef"
TABLE_ONLY = "table-only-key-0123456789abcdef"
ACME_ADMIN = "acme-admin-key-0123456789abcdef"
TENANTS = ("acme", "globex", "initech", "umbrella")
PER_TENANT = 10
WIDENING = [
    "1=1) OR (1=1",
    "true OR true",
    "NOT (tenant = 'acme')",
    "tenant = 'globex'",
    "tenant <> 'acme' OR tenant = 'acme'",
    "(1=1)) OR ((1=1",
    "tenant = 'acme' OR true",
    "1=1 --",
    "1=1 /*",
    "tenant IN (SELECT tenant FROM __hybrid_rows)",
    "EXISTS (SELECT 1)",
    "1=1); DELETE FROM __hybrid_rows; SELECT (1",
]


def scoped_keys() -> tuple[ApiKey, ...]:
    def key(secret: str, name: str, *grants: Grant) -> ApiKey:
        return replace(ApiKey.from_secret(secret, max(g.role for g in grants), name), grants=grants)

    return (
        key(ACME, "acme", Grant(("acme_*",), "write", "tenant = 'acme'")),
        key(ACME_READ, "acme-read", Grant(("acme_*",), "read", "tenant = 'acme'")),
        key(TABLE_ONLY, "table-only", Grant(("acme_docs",), "read")),
        key(ACME_ADMIN, "acme-admin", Grant(("acme_*",), "admin")),
    )


def tenant_rows(start: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(PER_TENANT * len(TENANTS)):
        tenant = TENANTS[i % len(TENANTS)]
        out.append({"id": start + i, "tenant": tenant, "text": f"{tenant} note {i} about refunds and invoices"})
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    db_path = tmp_path_factory.mktemp("scopes") / "db"
    config = make_config(api_keys=(*make_config().api_keys, *scoped_keys()))
    with running(create_app(db_path, config), db_path) as live, live.client(ADMIN) as admin:
        for name in ("acme_docs", "secret", "acme_scratch"):
            body = {
                "name": name,
                "rows": tenant_rows(),
                "embedding": {"vector": {"source": "text", "embedder": "hashing", "config": {"dim": 16}}},
            }
            assert admin.post("/v1/tables", json=body).status_code == 201
            assert (
                admin.post(f"/v1/tables/{name}/indexes", json={"kind": "fts", "columns": ["text"]}).status_code == 201
            )
            assert admin.post(f"/v1/tables/{name}/indexes", json={"kind": "vector"}).status_code == 201
            assert (
                admin.post(f"/v1/tables/{name}/indexes", json={"kind": "scalar", "column": "tenant"}).status_code == 201
            )
        yield live


def admin_count(live: Live, table: str, where: str | None = None) -> int:
    with live.client(ADMIN) as admin:
        body: dict[str, Any] = {"query_type": "fts", "query": "note", "limit": 100, "select": ["id"]}
        if where:
            body["where"] = where
        return int(admin.post(f"/v1/tables/{table}/search", json=body).json()["count"])


# Every operation of the API, with a body that is valid for it (so the answer is about access, not the body).
# A new route makes test_every_route_answers_an_ungranted_table_like_a_missing_one fail until it is added here.
BODIES: dict[tuple[str, str], Any] = {
    ("get", "/v1/health"): None,
    ("get", "/v1/ready"): None,
    ("get", "/v1/tables"): None,
    ("post", "/v1/tables"): {"name": "{name}", "rows": [{"id": 1, "tenant": "acme", "text": "x"}]},
    ("get", "/v1/tables/{name}"): None,
    ("delete", "/v1/tables/{name}"): None,
    ("post", "/v1/tables/{name}/rows"): {"rows": [{"id": 1, "tenant": "acme", "text": "x", "vector": [0.5] * 16}]},
    ("post", "/v1/tables/{name}/rows/delete"): {"where": "true"},
    ("post", "/v1/tables/{name}/search"): {"query": "refunds", "limit": 5},
    ("get", "/v1/tables/{name}/indexes"): None,
    ("post", "/v1/tables/{name}/indexes"): {"kind": "fts", "columns": ["text"], "replace": True},
    ("delete", "/v1/tables/{name}/indexes/{index}"): None,
    ("post", "/v1/tables/{name}/optimize"): None,
    ("get", "/v1/tables/{name}/versions"): None,
    ("get", "/v1/whoami"): None,
    ("get", "/v1/tables/{name}/rows"): None,
    ("get", "/v1/tables/{name}/eval"): None,
    ("get", "/v1/tables/{name}/eval/{plot}"): None,
    ("get", "/v1/tables/{name}/tune"): None,
    ("post", "/v1/tables/{name}/answer"): {"question": "refunds"},
    ("get", "/v1/tables/{name}/feedback"): None,
    ("post", "/v1/tables/{name}/feedback"): {"feedback": [{"query": "refunds", "rowid": 0, "label": 1}]},
    ("post", "/v1/tables/{name}/erase"): {"where": "true"},
}
PUBLIC = {("get", "/v1/health"), ("get", "/v1/ready")}


def call(client: httpx.Client, method: str, path: str, body: Any, table: str) -> httpx.Response:
    url = path.replace("{name}", table).replace("{index}", "fts").replace("{plot}", "ndcg.png")
    payload = json.loads(json.dumps(body).replace("{name}", table)) if body is not None else None
    return client.request(method.upper(), url, json=payload)


def test_every_route_answers_an_ungranted_table_like_a_missing_one(server: Live) -> None:
    spec = server.app.openapi()
    operations = {(m, p) for p, item in spec["paths"].items() for m in item}
    assert operations == set(BODIES), f"routes changed: add a body for {sorted(operations ^ set(BODIES))}"
    before = {t: admin_count(server, t) for t in ("acme_docs", "secret")}
    for key in (ACME, ACME_READ, TABLE_ONLY, ACME_ADMIN):  # ACME_ADMIN may drop, index and create acme_* only
        with server.client(key) as client:
            for (method, path), body in sorted(BODIES.items()):
                if (method, path) in PUBLIC:
                    continue
                hidden = call(client, method, path, body, "secret")
                missing = call(client, method, path, body, "no_such_table")
                if "{name}" not in path and "{name}" not in json.dumps(body):  # the listing
                    assert hidden.status_code == 200 and "secret" not in hidden.text
                    continue
                assert hidden.status_code in (403, 404), (key, method, path, hidden.text)
                assert hidden.status_code == missing.status_code, (method, path, hidden.text, missing.text)
                assert hidden.text.replace("secret", "T") == missing.text.replace("no_such_table", "T"), (method, path)
                assert "secret" not in client.get("/v1/tables").text
    assert {t: admin_count(server, t) for t in ("acme_docs", "secret")} == before
    with server.client(ADMIN) as admin:
        assert "secret" in admin.get("/v1/tables").json()["tables"]
        assert admin.get("/v1/tables/no_such_table").status_code == 404
        assert [i["name"] for i in admin.get("/v1/tables/secret/indexes").json()["indexes"]] == [
            "fts",
            "vector:vector",
            "scalar:tenant",
        ]


def test_an_admin_grant_creates_and_drops_only_tables_it_names(server: Live) -> None:
    rows = [{"id": 1, "tenant": "acme", "text": "x"}]
    with server.client(ACME_ADMIN) as ops:
        assert ops.post("/v1/tables", json={"name": "acme_made", "rows": rows}).status_code == 201
        refused = ops.post("/v1/tables", json={"name": "other_made", "rows": rows})
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "AccessError"
        assert ops.delete("/v1/tables/acme_made").status_code == 200
    with server.client(ADMIN) as admin:
        assert not {"acme_made", "other_made"} & set(admin.get("/v1/tables").json()["tables"])


def test_listing_shows_only_granted_tables(server: Live) -> None:
    with server.client(ACME) as acme, server.client(TABLE_ONLY) as only, server.client(READER) as legacy:
        assert acme.get("/v1/tables").json()["tables"] == ["acme_docs", "acme_scratch"]
        assert only.get("/v1/tables").json()["tables"] == ["acme_docs"]
        assert set(legacy.get("/v1/tables").json()["tables"]) >= {"acme_docs", "acme_scratch", "secret"}


def test_a_row_scoped_key_reads_searches_and_counts_only_its_rows(server: Live) -> None:
    with server.client(ACME_READ) as client:
        info = client.get("/v1/tables/acme_docs").json()
        assert info["num_rows"] == PER_TENANT and info["indexes"] == []  # index counts cover every row
        for body in (
            {"query": "refunds", "limit": 100},
            {"query": "refunds", "limit": 100, "query_type": "fts"},
            {"vector": [0.1] * 16, "limit": 100, "query_type": "vector"},
            {"query": "note", "limit": 100, "prefilter": False},
            {"query": "note", "limit": 100, "group_by": {"column": "tenant"}},
        ):
            found = client.post("/v1/tables/acme_docs/search", json=body).json()
            assert found["count"] > 0 and {r["tenant"] for r in found["results"]} == {"acme"}, body
        for path in ("/v1/tables/acme_docs/versions", "/v1/tables/acme_docs/indexes"):
            refused = client.get(path)
            assert refused.status_code == 403 and refused.json()["error"]["type"] == "AccessError"
        expand = client.post("/v1/tables/acme_docs/search", json={"query": "note", "expand": {"neighbours": 1}})
        assert expand.status_code in (400, 403)


@pytest.mark.parametrize("where", WIDENING)
def test_crafted_where_clauses_cannot_widen_the_scope(server: Live, where: str) -> None:
    with server.client(ACME_READ) as client:
        for body in (
            {"query": "note", "where": where, "limit": 100},
            {"vector": [0.1] * 16, "query_type": "vector", "where": where, "limit": 100},
            {"query": "note", "where": where, "prefilter": False, "limit": 100},
        ):
            r = client.post("/v1/tables/acme_docs/search", json=body)
            assert r.status_code in (200, 400), r.text
            if r.status_code == 200:
                assert {row["tenant"] for row in r.json()["results"]} <= {"acme"}


def test_deletes_with_widening_filters_touch_only_the_scope(server: Live) -> None:
    others = admin_count(server, "acme_scratch", "tenant <> 'acme'")
    with server.client(ACME) as client:
        for where in WIDENING:
            r = client.post("/v1/tables/acme_scratch/rows/delete", json={"where": where})
            assert r.status_code in (200, 400), r.text
        assert admin_count(server, "acme_scratch", "tenant <> 'acme'") == others
        assert admin_count(server, "acme_scratch", "tenant = 'acme'") == 0
        add = client.post(
            "/v1/tables/acme_scratch/rows", json={"rows": [{"id": 1, "tenant": "acme", "text": "a note"}]}
        )
        assert add.status_code == 200 and admin_count(server, "acme_scratch") == others + 1


def test_writes_outside_the_scope_are_refused_with_nothing_written(server: Live) -> None:
    with server.client(ADMIN) as admin:
        version = admin.get("/v1/tables/acme_docs").json()["version"]
    total = admin_count(server, "acme_docs")
    with server.client(ACME) as client, server.client(ACME_READ) as reader:
        mixed = [{"id": 900 + i, "tenant": "acme", "text": "fine"} for i in range(5)]
        mixed[2]["tenant"] = "globex"
        r = client.post("/v1/tables/acme_docs/rows", json={"rows": mixed})
        assert r.status_code == 403 and "outside the row scope" in r.json()["error"]["message"]
        r = client.post("/v1/tables/acme_docs/rows", json={"rows": [{"id": 1, "text": "no tenant"}]})
        assert r.status_code == 403 and "must carry" in r.json()["error"]["message"]
        r = reader.post("/v1/tables/acme_docs/rows", json={"rows": [{"id": 1, "tenant": "acme", "text": "x"}]})
        assert r.status_code == 403  # a read grant
    with server.client(ADMIN) as admin:
        assert admin.get("/v1/tables/acme_docs").json()["version"] == version
    assert admin_count(server, "acme_docs") == total


def test_page_routes_keep_the_row_scope(server: Live) -> None:
    """The web page's routes (rows, time travel, answers, feedback) see only the key's rows."""
    with server.client(ADMIN) as admin:
        everything = admin.get("/v1/tables/acme_docs/rows", params={"limit": 100}).json()["rows"]
        version = admin.get("/v1/tables/acme_docs").json()["version"]
    theirs = next(r["_rowid"] for r in everything if r["tenant"] != "acme")
    ours = next(r["_rowid"] for r in everything if r["tenant"] == "acme")
    with server.client(ACME) as client:
        page = client.get("/v1/tables/acme_docs/rows", params={"limit": 100}).json()
        assert page["total"] == PER_TENANT and {r["tenant"] for r in page["rows"]} == {"acme"}
        pinned = client.post("/v1/tables/acme_docs/search", json={"query": "note", "limit": 100, "version": version})
        assert pinned.status_code == 200 and {r["tenant"] for r in pinned.json()["results"]} == {"acme"}
        answer = client.post("/v1/tables/acme_docs/answer", json={"question": "refunds"})
        cited = json.loads(answer.text.splitlines()[0])["citations"]
        others = [t for t in TENANTS if t != "acme"]
        assert cited and not any(t in json.dumps(c) for c in cited for t in others)
        judged = {"query": "refunds", "label": 1}
        outside = client.post("/v1/tables/acme_docs/feedback", json={"feedback": [{**judged, "rowid": theirs}]})
        nowhere = client.post("/v1/tables/acme_docs/feedback", json={"feedback": [{**judged, "rowid": 10**9}]})
        assert outside.status_code == nowhere.status_code == 400
        assert outside.text.replace(str(theirs), "N") == nowhere.text.replace(str(10**9), "N")
        inside = client.post("/v1/tables/acme_docs/feedback", json={"feedback": [{**judged, "rowid": ours}]})
        assert inside.status_code == 200, inside.text
        listing = client.get("/v1/tables/acme_docs/feedback")  # every tenant's queries: not for a row scope
        assert listing.status_code == 403 and listing.json()["error"]["type"] == "AccessError"
    with server.client(ADMIN) as admin:
        assert admin.get("/v1/tables/acme_docs/feedback").json()["count"] == 1


def test_raw_vectors_go_only_to_keys_granted_them(server: Live) -> None:
    body = {"query": "note", "limit": 3}
    with server.client(ACME_READ) as reader, server.client(READER) as legacy, server.client(ACME) as writer:
        for client in (reader, legacy):
            plain = client.post("/v1/tables/acme_docs/search", json=body).json()["results"]
            assert plain and all("vector" not in r for r in plain)
            for bad in (
                {**body, "include_vectors": True},
                {**body, "select": ["id", "vector"]},
                {**body, "where": "vector[1] > 0"},
            ):
                r = client.post("/v1/tables/acme_docs/search", json=bad)
                assert r.status_code == 403 and "raw vectors" in r.json()["error"]["message"], bad
        got = writer.post("/v1/tables/acme_docs/search", json={**body, "include_vectors": True}).json()["results"]
        assert got and all(len(r["vector"]) == 16 for r in got)


def test_the_audit_log_records_scoped_reads_denials_and_grants_but_no_keys_or_content(server: Live) -> None:
    with server.client(ACME_READ) as client:
        client.post("/v1/tables/acme_docs/search", json={"query": "refunds", "limit": 4})
        client.get("/v1/tables/secret")
        assert (
            client.post("/v1/tables/acme_docs/search", json={"query": "x", "include_vectors": True}).status_code == 403
        )
    with server.client(ACME) as writer:
        outside = {"rows": [{"id": 1, "tenant": "globex", "text": "x"}]}
        assert writer.post("/v1/tables/acme_docs/rows", json=outside).status_code == 403
    with server.client("not-a-key-0123456789abcdef") as stranger:
        assert stranger.get("/v1/tables").status_code == 401
    text = (server.db_path / ".audit" / "writes.log").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    reads = [r for r in lines if r["event"] == "read" and r["key"] == "acme-read"]
    assert reads and reads[-1]["table"] == "acme_docs" and reads[-1]["rows"] == 4
    assert reads[-1]["grant"] == {"tables": ["acme_*"], "role": "read", "row_scope": True}
    denied = [r for r in lines if r["event"] == "denied"]
    assert any(r["key"] == "acme-read" and r["table"] == "secret" and r["status"] == 404 for r in denied)
    assert any(r["key"] == "(invalid key)" and r["status"] == 401 for r in denied)
    assert any(r["key"] == "acme-read" and r["table"] == "acme_docs" and r["status"] == 403 for r in denied)
    assert any(r["key"] == "acme" and r["table"] == "acme_docs" and r["status"] == 403 for r in denied)
    writes = [r for r in lines if r["event"] == "write" and r["key"] == "acme"]
    assert writes and all(w["grant"]["row_scope"] for w in writes)
    for secret in (ACME, ACME_READ, TABLE_ONLY, ADMIN, "refunds and invoices", "tenant = 'acme'"):
        assert secret not in text


def test_grants_load_from_a_config_file_and_survive_the_worker_hand_off(tmp_path: Path) -> None:
    from hybrid.server.config import ConfigError, from_json, to_json

    path = tmp_path / "server.toml"
    path.write_text(
        f'[[api_keys]]\nkey = "{ACME}"\nname = "acme"\n'
        '[[api_keys.grants]]\ntables = ["docs", "faq_*"]\nrole = "write"\nwhere = "tenant_id = \'acme\'"\n'
        '[[api_keys.grants]]\ntables = "public"\nrole = "read"\nvectors = true\n'
        f'[[api_keys]]\nkey = "{READER}"\nrole = "read"\nvectors = true\n'
    )
    config = load_config(path, {})
    acme, legacy = config.api_keys
    assert acme.role == "write" and [g.tables for g in acme.grants] == [("docs", "faq_*"), ("public",)]
    assert acme.grants[0].where == "tenant_id = 'acme'" and acme.grants[0].sees_vectors  # write: vectors by default
    assert acme.grants[1].sees_vectors and legacy.effective_grants()[0].sees_vectors
    assert from_json(to_json(config)) == config and ACME not in to_json(config)
    bad = {
        'role = "read"\n[[api_keys.grants]]\ntables = "t"\nrole = "read"\n': "not both",
        '[[api_keys.grants]]\ntables = "t"\nrole = "admin"\nwhere = "a = 1"\n': "row-scoped grant",
        '[[api_keys.grants]]\ntables = "t"\nrole = "read"\nwhere = "a IN (SELECT 1)"\n': "subqueries",
        '[[api_keys.grants]]\ntables = "t"\nrole = "read"\nwhere = "a = = 1"\n': "malformed",
        '[[api_keys.grants]]\ntables = []\nrole = "read"\n': "tables must be",
        '[[api_keys.grants]]\ntables = "t"\nrole = "owner"\n': "role must be",
        '[[api_keys.grants]]\ntables = "t"\nrole = "read"\nrows = 1\n': "must have only",
    }
    for text, message in bad.items():
        path.write_text(f'[[api_keys]]\nkey = "{ACME}"\n{text}')
        with pytest.raises(ConfigError, match=message):
            load_config(path, {})
