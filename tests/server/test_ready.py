"""``GET /v1/ready``: 503 until the app has started and once it stops or cannot read its folder; no key."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient

import hybrid
from hybrid.server import create_app
from tests.server.conftest import Live, make_config, running


def test_ready_follows_the_app_lifespan(tmp_path: Path) -> None:
    app = create_app(tmp_path / "db", make_config())
    client = TestClient(app)  # no lifespan yet: the app has not started
    r = client.get("/v1/ready")
    assert r.status_code == 503 and r.json() == {"status": "starting", "version": hybrid.__version__}
    with TestClient(app) as started:
        assert started.get("/v1/ready").json()["status"] == "ready"
        assert started.get("/v1/ready").status_code == 200
    r = client.get("/v1/ready")
    assert r.status_code == 503 and r.json()["status"] == "stopping"
    assert client.get("/v1/health").status_code == 200  # liveness stays up


def test_ready_needs_no_key_and_reports_an_unreadable_folder(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with running(create_app(db, make_config()), db) as live, live.client(None) as anonymous:
        assert anonymous.get("/v1/ready").status_code == 200
        assert anonymous.get("/v1/tables").status_code == 401
        db.rename(tmp_path / "moved")
        r = anonymous.get("/v1/ready")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
        assert anonymous.get("/v1/health").status_code == 200
        (tmp_path / "moved").rename(db)
        assert anonymous.get("/v1/ready").status_code == 200


def test_ready_is_in_the_spec_like_health(live: Live) -> None:
    spec = httpx.get(f"{live.url}/openapi.json").json()
    ready, health = spec["paths"]["/v1/ready"]["get"], spec["paths"]["/v1/health"]["get"]
    assert {"200", "503"} <= set(ready["responses"])
    assert ready["responses"]["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Ready"}
    assert "security" not in ready and "security" not in health
    assert set(spec["components"]["schemas"]["Ready"]["properties"]["status"]["enum"]) == {
        "ready",
        "starting",
        "stopping",
        "unavailable",
    }
