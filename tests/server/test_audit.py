"""The audit log: one JSON line per write request, naming the key (never the key itself) and the versions."""

from __future__ import annotations

import json
from pathlib import Path

from hybrid.server import create_app

from .conftest import ADMIN, READER, WRITER, docs_rows, make_config, running


def records(db_path: Path) -> list[dict[str, object]]:
    path = db_path / ".audit" / "writes.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_write_request_is_audited_with_key_name_route_and_versions(tmp_path: Path) -> None:
    db_path = tmp_path / "db"
    live_server = running(create_app(db_path, make_config()), db_path)
    with live_server as live, live.client(ADMIN) as admin, live.client(WRITER) as writer, live.client(READER) as rd:
        assert admin.post("/v1/tables", json={"name": "docs", "rows": docs_rows(range(10))}).status_code == 201
        assert writer.post("/v1/tables/docs/rows", json={"rows": docs_rows(range(10, 12))}).status_code == 200
        assert writer.post("/v1/tables/docs/rows/delete", json={"where": "id = 3"}).status_code == 200
        bad = writer.post("/v1/tables/docs/rows/delete", json={"where": "nope = 1"})
        assert bad.status_code == 400
        assert rd.get("/v1/tables/docs").status_code == 200
        assert admin.delete("/v1/tables/docs").status_code == 200
    got = records(db_path)
    assert [(r["key"], r["request"], r["version_before"], r["version"], r["outcome"]) for r in got] == [
        ("admin", "POST /v1/tables", None, 1, "committed"),
        ("writer", "POST /v1/tables/{name}/rows", 1, 2, "committed"),
        ("writer", "POST /v1/tables/{name}/rows/delete", 2, 3, "committed"),
        ("writer", "POST /v1/tables/{name}/rows/delete", 3, 3, "error"),
        ("admin", "DELETE /v1/tables/{name}", 3, None, "committed"),
    ]  # the read is not audited
    assert got[3]["error"] == "FilterError" and all(r["table"] == "docs" for r in got)
    text = (db_path / ".audit" / "writes.log").read_text()
    assert ADMIN not in text and WRITER not in text  # key names only, never keys


def test_the_audit_log_rotates_and_can_be_turned_off(tmp_path: Path) -> None:
    db_path = tmp_path / "db"
    config = make_config(audit_max_bytes=600, audit_backups=2)
    with running(create_app(db_path, config), db_path) as live, live.client(ADMIN) as admin:
        admin.post("/v1/tables", json={"name": "docs", "rows": docs_rows(range(3))})
        for i in range(12):
            admin.post("/v1/tables/docs/rows", json={"rows": docs_rows(range(100 + i, 101 + i))})
    files = sorted(p.name for p in (db_path / ".audit").iterdir())
    assert files == ["writes.log", "writes.log.1", "writes.log.2"]
    assert all(p.stat().st_size <= 600 for p in (db_path / ".audit").iterdir())
    off = tmp_path / "off"
    with running(create_app(off, make_config(audit_log="")), off) as live, live.client(ADMIN) as admin:
        assert admin.post("/v1/tables", json={"name": "docs", "rows": docs_rows(range(3))}).status_code == 201
    assert not (off / ".audit").exists()
