"""``POST /v1/tables/{name}/erase`` over real HTTP: admin only, never a row-scoped key, every version
erased, the report's fields, and the audit log's ``erase`` event (no erased value in it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hybrid.server import create_app
from hybrid.server.config import ApiKey, Grant

from .conftest import ADMIN, READER, WRITER, Live, make_config, running

OPS = "ops-admin-key-0123456789abcdef"  # admin on people_* only
SCOPED_ADMIN = "scoped-admin-key-0123456789abcdef"  # a row-scoped admin grant, built in code (config refuses one)
SCOPED_WRITER = "scoped-writer-key-0123456789abcdef"
PEOPLE = 40


def _keys() -> tuple[ApiKey, ...]:
    def key(secret: str, name: str, grant: Grant) -> ApiKey:
        return replace(ApiKey.from_secret(secret, grant.role, name), grants=(grant,))

    return (
        key(OPS, "ops", Grant(("people_*",), "admin")),
        key(SCOPED_ADMIN, "scoped-admin", Grant(("*",), "admin", "tenant = 'acme'")),
        key(SCOPED_WRITER, "scoped-writer", Grant(("*",), "write", "tenant = 'acme'")),
    )


def _email(i: int) -> str:
    return f"person{i:03d}.unique@example.org"


def _rows(ids: range) -> list[dict[str, Any]]:
    tenants = ("acme", "globex")
    return [
        {"user_id": i % 10, "tenant": tenants[i % 2], "email": _email(i), "text": f"note {i} about invoices"}
        for i in ids
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    db_path = tmp_path_factory.mktemp("erase") / "db"
    config = make_config(api_keys=(*make_config().api_keys, *_keys()))
    with running(create_app(db_path, config), db_path) as live:
        yield live


def _make(live: Live, name: str) -> list[int]:
    """A table with four versions holding the rows (the full-text index from the second); its versions."""
    with live.client(ADMIN) as admin:
        assert admin.post("/v1/tables", json={"name": name, "rows": _rows(range(0, PEOPLE // 2))}).status_code == 201
        assert admin.post(f"/v1/tables/{name}/indexes", json={"kind": "fts", "columns": ["text"]}).status_code == 201
        more = {"rows": _rows(range(PEOPLE // 2, PEOPLE))}
        assert admin.post(f"/v1/tables/{name}/rows", json=more).status_code == 200
        assert admin.post(f"/v1/tables/{name}/rows/delete", json={"where": "user_id = 9"}).status_code == 200
        return [v["version"] for v in admin.get(f"/v1/tables/{name}/versions").json()["versions"]]


def _user_ids(live: Live, name: str, version: int | None = None) -> set[int]:
    body: dict[str, Any] = {"query": "invoices", "query_type": "fts", "limit": 100, "select": ["user_id"]}
    if version is not None:
        body["version"] = version
    with live.client(ADMIN) as admin:
        r = admin.post(f"/v1/tables/{name}/search", json=body)
        assert r.status_code == 200, r.text
        return {row["user_id"] for row in r.json()["results"]}


def _holding(folder: Path, people: Any) -> list[Path]:
    """The files under `folder` holding any of the e-mails of `people` (their bytes)."""
    wanted = [_email(i).encode() for i in people]
    return [p for p in folder.rglob("*") if p.is_file() and any(w in p.read_bytes() for w in wanted)]


def _audit(live: Live) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (live.db_path / ".audit" / "writes.log").read_text().splitlines()]


def test_an_admin_erases_rows_from_every_version_and_the_report_says_so(server: Live) -> None:
    versions = _make(server, "people_a")
    assert 3 in _user_ids(server, "people_a", versions[1])
    assert len(_holding(server.db_path / "people_a", range(3, PEOPLE, 10))) >= 2  # both data files hold some
    body = {"where": "user_id = 3", "by": "dpo@example.com", "reason": "ticket DP-17"}
    with server.client(ADMIN) as admin:
        r = admin.post("/v1/tables/people_a/erase", json=body)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["table"] == "people_a"
    assert report["erased_rows"] == report["live_rows_erased"] == PEOPLE // 10
    assert set(report["versions_rewritten"]) >= set(versions[:2])  # every version that held them
    assert report["files_rewritten"] >= 2 and report["indexes_rebuilt"] >= 1 and report["seconds"] > 0
    found = report["verification"]
    assert found["ok"] and found["leaks"] == [] and found["values_searched"] >= PEOPLE // 10
    for version in [*versions[1:], None]:  # every indexed version still opens and searches, without them
        ids = _user_ids(server, "people_a", version)
        assert 3 not in ids and ids, version
    with server.client(ADMIN) as admin:
        last = admin.get("/v1/tables/people_a/versions").json()["versions"][-1]
    assert last["version"] == report["version"] and last["operation"] == "erase"
    assert "3" not in json.dumps(last["details"].get("where")) and "dpo@example.com" in json.dumps(last["details"])
    assert _holding(server.db_path / "people_a", range(3, PEOPLE, 10)) == []  # an independent scan of every file
    assert _holding(server.db_path / "people_a", [4])  # ... which finds a value that is kept
    erase = [e for e in _audit(server) if e["event"] == "erase" and e["table"] == "people_a"]
    assert len(erase) == 1
    assert (
        erase[0]["key"] == "admin" and erase[0]["predicate"] == "user_id = ?" and erase[0]["reason"] == "ticket DP-17"
    )
    assert erase[0]["rows"] == PEOPLE // 10 and erase[0]["version"] == report["version"]
    assert not any(_email(i) in json.dumps(_audit(server)) for i in range(PEOPLE))


def test_only_admin_keys_erase_and_never_a_row_scoped_one(server: Live) -> None:
    _make(server, "people_b")
    with server.client(ADMIN) as admin:
        version = admin.get("/v1/tables/people_b").json()["version"]
    body = {"where": "tenant = 'acme'"}
    for key, status in ((READER, 403), (WRITER, 403), (SCOPED_WRITER, 403), (SCOPED_ADMIN, 403)):
        with server.client(key) as client:
            r = client.post("/v1/tables/people_b/erase", json=body)
        assert r.status_code == status, (key, r.text)
    with server.client(SCOPED_ADMIN) as client:
        refused = client.post("/v1/tables/people_b/erase", json=body).json()["error"]
    assert refused["type"] == "AccessError" and "row scope" in refused["message"]
    with server.client(ADMIN) as admin:
        assert admin.get("/v1/tables/people_b").json()["version"] == version  # nothing was written
    assert _user_ids(server, "people_b") == set(range(9))
    denied = [e for e in _audit(server) if e["event"] == "denied" and e["key"] == "scoped-admin"]
    assert denied and denied[-1]["reason"] == "a row-scoped key may not erase"
    with server.client(OPS) as ops:  # an admin grant on people_* erases there
        r = ops.post("/v1/tables/people_b/erase", json={"where": "user_id = 1", "verify": False})
        assert r.status_code == 200 and r.json()["verification"] is None and r.json()["erased_rows"] == 4
        assert 1 not in _user_ids(server, "people_b")
        hidden = ops.post("/v1/tables/other_table/erase", json=body)  # no grant: as missing
        assert hidden.status_code == 404
    erase = [e for e in _audit(server) if e["event"] == "erase" and e["table"] == "people_b"]
    assert erase[-1]["key"] == "ops" and erase[-1]["grant"] == {
        "tables": ["people_*"],
        "role": "admin",
        "row_scope": False,
    }


def test_bad_erase_requests_change_nothing(server: Live) -> None:
    _make(server, "people_c")
    with server.client(ADMIN) as admin:
        version = admin.get("/v1/tables/people_c").json()["version"]
        for body, status in (
            ({}, 422),  # neither where nor resume
            ({"where": "user_id = 1", "resume": True}, 422),
            ({"where": "no_such_column = 1"}, 400),
            ({"where": "user_id = "}, 400),
            ({"where": "user_id = 1", "extra": 1}, 422),
            ({"where": "x" * 2_000}, 422),  # over max_query_chars
            ({"resume": True}, 400),  # nothing to resume
        ):
            r = admin.post("/v1/tables/people_c/erase", json=body)
            assert r.status_code == status, (body, r.text)
        assert admin.post("/v1/tables/nope/erase", json={"where": "true"}).status_code == 404
        assert admin.get("/v1/tables/people_c").json()["version"] == version
    assert _user_ids(server, "people_c") == set(range(9))


def test_the_route_is_in_the_openapi_schema_as_admin_only(server: Live) -> None:
    spec = server.app.openapi()
    op = spec["paths"]["/v1/tables/{name}/erase"]["post"]
    assert "admin" in op["description"] and "row-scoped" in op["description"]
    body = spec["components"]["schemas"]["EraseRequest"]["properties"]
    assert {"where", "resume", "by", "reason", "verify"} <= set(body)
    assert "verification" in spec["components"]["schemas"]["Erased"]["properties"]
