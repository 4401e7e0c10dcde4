"""API keys and roles: every write and admin endpoint refuses missing, wrong and read-only keys."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hybrid.server import ConfigError, ServerConfig, check_safe, create_app, load_config
from hybrid.server.config import ApiKey
from tests.server.conftest import ADMIN, READER, WRITER, Live, auth, docs_rows, make_table, running

TABLE = "auth_docs"
WRITE_ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", f"/v1/tables/{TABLE}/rows", {"rows": docs_rows(range(100, 102))}),
    ("POST", f"/v1/tables/{TABLE}/rows/delete", {"where": "true"}),
]
ADMIN_ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/tables", {"name": "auth_new", "rows": [{"id": 1}]}),
    ("DELETE", f"/v1/tables/{TABLE}", None),
    ("POST", f"/v1/tables/{TABLE}/indexes", {"kind": "fts", "columns": ["topic"], "name": "fts2"}),
    ("POST", f"/v1/tables/{TABLE}/indexes", {"kind": "vector", "replace": True}),
    ("DELETE", f"/v1/tables/{TABLE}/indexes/fts", None),
    ("POST", f"/v1/tables/{TABLE}/optimize", None),
    ("POST", f"/v1/tables/{TABLE}/erase", {"where": "true"}),
]
READ_ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/tables", None),
    ("GET", f"/v1/tables/{TABLE}", None),
    ("GET", f"/v1/tables/{TABLE}/indexes", None),
    ("GET", f"/v1/tables/{TABLE}/versions", None),
    ("POST", f"/v1/tables/{TABLE}/search", {"query": "cats", "where": "year > 2005"}),
]
WRONG = "wrong-key-0123456789abcdef"
BAD_HEADERS = {
    "no key": {},
    "wrong bearer key": auth(WRONG),
    "wrong X-API-Key": {"X-API-Key": WRONG},
    "not a bearer": {"Authorization": f"Basic {ADMIN}"},
    "empty bearer": {"Authorization": "Bearer"},
}


@pytest.fixture(scope="module")
def table(live: Live) -> Iterator[str]:
    with live.client() as client:
        make_table(client, TABLE, n=20)
    yield TABLE


def state(client: httpx.Client) -> dict[str, Any]:
    info = client.get(f"/v1/tables/{TABLE}").json()
    return {
        "tables": client.get("/v1/tables").json()["tables"],
        "info": info,
        "versions": client.get(f"/v1/tables/{TABLE}/versions").json(),
    }


def send(client: httpx.Client, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> int:
    return client.request(method, path, json=body, headers=headers).status_code


def test_every_write_and_admin_endpoint_refuses(live: Live, admin: httpx.Client, table: str) -> None:
    before = state(admin)
    outcomes: list[tuple[str, str, str, int]] = []
    with httpx.Client(base_url=live.url, timeout=60) as bare:
        for method, path, body in WRITE_ENDPOINTS + ADMIN_ENDPOINTS:
            for label, headers in BAD_HEADERS.items():
                outcomes.append((method, path, label, send(bare, method, path, body, headers)))
            outcomes.append((method, path, "read key", send(bare, method, path, body, auth(READER))))
        for method, path, body in ADMIN_ENDPOINTS:
            outcomes.append((method, path, "write key", send(bare, method, path, body, auth(WRITER))))
    expected = {label: 401 for label in BAD_HEADERS} | {"read key": 403, "write key": 403}
    wrong = [o for o in outcomes if o[3] != expected[o[2]]]
    assert not wrong, wrong
    assert len(outcomes) == len(WRITE_ENDPOINTS + ADMIN_ENDPOINTS) * 6 + len(ADMIN_ENDPOINTS)
    assert state(admin) == before  # nothing was written, created, indexed or dropped


def test_refusals_say_why_without_echoing_the_key(live: Live, table: str) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as bare:
        r = bare.post(f"/v1/tables/{TABLE}/rows", json={"rows": [{"id": 1}]}, headers=auth(WRONG))
        assert r.status_code == 401 and r.json()["error"]["type"] == "Unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert WRONG not in r.text
        r = bare.delete(f"/v1/tables/{TABLE}", headers=auth(READER))
        assert r.status_code == 403 and "'admin'" in r.json()["error"]["message"]
        assert READER not in r.text


def test_read_endpoints_work_with_a_read_key(live: Live, table: str) -> None:
    for headers in (auth(READER), {"X-API-Key": READER}):
        with httpx.Client(base_url=live.url, headers=headers, timeout=60) as reader:
            for method, path, body in READ_ENDPOINTS:
                r = reader.request(method, path, json=body)
                assert r.status_code == 200, (method, path, r.text)
    with httpx.Client(base_url=live.url, timeout=60) as bare:
        for method, path, body in READ_ENDPOINTS:
            assert send(bare, method, path, body, {}) == 401


def test_roles_nest(live: Live, table: str) -> None:
    with live.client(WRITER) as writer:
        r = writer.post(f"/v1/tables/{TABLE}/rows", json={"rows": docs_rows(range(200, 201))})
        assert r.status_code == 200, r.text
        assert writer.post(f"/v1/tables/{TABLE}/search", json={"query": "cats"}).status_code == 200
        assert writer.post(f"/v1/tables/{TABLE}/rows/delete", json={"where": "id = 200"}).json()["deleted"] == 1


def test_no_keys_means_every_request_is_refused(tmp_path: Path) -> None:
    app = create_app(tmp_path / "db", ServerConfig())
    with running(app, tmp_path / "db") as server, server.client(None) as client:
        assert client.get("/v1/health").status_code == 200
        assert client.get("/v1/tables").status_code == 401
        assert client.post("/v1/tables", json={"name": "t", "rows": [{"id": 1}]}).status_code == 401


def test_anonymous_role_and_a_bad_key(tmp_path: Path) -> None:
    config = ServerConfig(api_keys=(ApiKey.from_secret(ADMIN, "admin"),), anonymous_role="read")
    with running(create_app(tmp_path / "db", config), tmp_path / "db") as server:
        with server.client(None) as anonymous:
            assert anonymous.get("/v1/tables").status_code == 200
            assert anonymous.post("/v1/tables", json={"name": "t", "rows": [{"id": 1}]}).status_code == 403
        with server.client(WRONG) as wrong:  # a presented key must be valid, anonymous access or not
            assert wrong.get("/v1/tables").status_code == 401


def test_check_safe() -> None:
    with pytest.raises(ConfigError, match="no API keys"):
        check_safe("127.0.0.1", ServerConfig())
    with pytest.raises(ConfigError, match="loopback"):
        check_safe("0.0.0.0", ServerConfig(anonymous_role="read"))
    check_safe("127.0.0.1", ServerConfig(anonymous_role="admin"))
    check_safe("0.0.0.0", ServerConfig(api_keys=(ApiKey.from_secret(ADMIN, "admin"),)))


def test_load_config_file_and_env(tmp_path: Path) -> None:
    toml = tmp_path / "server.toml"
    toml.write_text(
        'max_limit = 50\nrerankers = ["mmr"]\n'
        '[[api_keys]]\nkey_env = "MY_ADMIN_KEY"\nrole = "admin"\nname = "ops"\n'
        f'[[api_keys]]\nkey = "{READER}"\nrole = "read"\n'
    )
    config = load_config(toml, {"MY_ADMIN_KEY": ADMIN, "HYBRID_API_KEYS": f"{WRITER}:write"})
    assert [(k.name, k.role) for k in config.api_keys] == [
        ("ops", "admin"),
        ("api_keys[2]", "read"),
        ("HYBRID_API_KEYS[1]", "write"),
    ]
    assert config.max_limit == 50 and config.rerankers == ("mmr",)
    assert ADMIN not in repr(config) and READER not in repr(config)
    as_json = tmp_path / "server.json"
    as_json.write_text(json.dumps({"anonymous_role": "read", "max_query_chars": 10}))
    assert load_config(as_json, {}).anonymous_role == "read"


@pytest.mark.parametrize(
    ("text", "env", "match"),
    [
        ("max_limt = 5\n", {}, "unknown server setting"),
        ("max_limit = 0\n", {}, "positive integer"),
        ('anonymous_role = "root"\n', {}, "anonymous_role"),
        ('[[api_keys]]\nkey = "short"\nrole = "read"\n', {}, "too short"),
        (f'[[api_keys]]\nkey = "{ADMIN}"\nrole = "superuser"\n', {}, "role must be"),
        ('[[api_keys]]\nkey_env = "NOT_SET"\nrole = "read"\n', {}, "not set"),
        ("", {"HYBRID_API_KEYS": ADMIN}, "no role"),
        ("", {"HYBRID_API_KEYS": f"{ADMIN}:read,{ADMIN}:admin"}, "twice"),
        ("max_limit = [\n", {}, "not valid"),
    ],
)
def test_bad_configs_are_refused_without_echoing_keys(
    tmp_path: Path, text: str, env: dict[str, str], match: str
) -> None:
    path = tmp_path / "server.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path, env)
    assert ADMIN not in str(info.value) and 'short"' not in str(info.value)


def test_serve_in_a_subprocess_reads_keys_from_the_environment(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = f"from hybrid.server import serve; serve({str(tmp_path / 'db')!r}, port={port}, log_level='warning')"
    env = {**__import__("os").environ, "HYBRID_API_KEYS": f"{ADMIN}:admin"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        assert httpx.get(f"{url}/v1/tables").status_code == 401
        assert httpx.get(f"{url}/v1/tables", headers=auth(ADMIN)).json() == {"tables": []}
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert ADMIN not in err


def test_serve_refuses_an_unsafe_start(tmp_path: Path) -> None:
    code = f"from hybrid.server import serve; serve({str(tmp_path / 'db')!r}, host='0.0.0.0', port=1)"
    env = {k: v for k, v in __import__("os").environ.items() if k != "HYBRID_API_KEYS"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "no API keys" in done.stderr
