"""A real uvicorn server on 127.0.0.1 (a free port, a background thread) and httpx clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from hybrid.server import ApiKey, ServerConfig, create_app  # noqa: E402

ADMIN = "admin-key-0123456789abcdef"
WRITER = "write-key-0123456789abcdef"
READER = "read-key-0123456789abcdef"
MAX_BODY = 256 * 1024
MAX_ROWS = 500
MAX_LIMIT = 100
MAX_CHARS = 1_000


def make_config(**overrides: Any) -> ServerConfig:
    """Three keys (admin, write, read) and small limits, so limit tests send little data."""
    keys = (
        ApiKey.from_secret(ADMIN, "admin", "admin"),
        ApiKey.from_secret(WRITER, "write", "writer"),
        ApiKey.from_secret(READER, "read", "reader"),
    )
    settings: dict[str, Any] = {
        "api_keys": keys,
        "max_body_bytes": MAX_BODY,
        "max_rows_per_add": MAX_ROWS,
        "max_limit": MAX_LIMIT,
        "max_query_chars": MAX_CHARS,
    }
    settings.update(overrides)
    return ServerConfig(**settings)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Live:
    """A running server: its base URL, database folder and app."""

    url: str
    db_path: Path
    app: FastAPI

    def client(self, key: str | None = ADMIN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=auth(key) if key else {}, timeout=60.0)


@contextmanager
def running(app: FastAPI, db_path: Path) -> Iterator[Live]:
    """Serve `app` with uvicorn on a free loopback port in a thread, until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}", db_path, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    db_path = tmp_path_factory.mktemp("server") / "db"
    with running(create_app(db_path, make_config()), db_path) as server:
        yield server


@pytest.fixture
def admin(live: Live) -> Iterator[httpx.Client]:
    with live.client(ADMIN) as client:
        yield client


def docs_rows(ids: range) -> list[dict[str, Any]]:
    """Small documents whose text, topic and year are functions of the id."""
    topics = ["cats", "dogs", "birds", "fish"]
    return [
        {
            "id": i,
            "text": f"document {i} is about {topics[i % 4]} and {'gardens' if i % 3 == 0 else 'rivers'}",
            "topic": topics[i % 4],
            "year": 2000 + i % 20,
        }
        for i in ids
    ]


def make_table(client: httpx.Client, name: str, n: int = 60, *, indexes: bool = True, dim: int = 32) -> None:
    """A table of `n` docs with a hashing-embedder binding, and (optionally) both indexes."""
    r = client.post(
        "/v1/tables",
        json={
            "name": name,
            "rows": docs_rows(range(n)),
            "embedding": {"vector": {"source": "text", "embedder": "hashing", "config": {"dim": dim}}},
        },
    )
    assert r.status_code == 201, r.text
    if indexes:
        assert client.post(f"/v1/tables/{name}/indexes", json={"kind": "fts", "columns": ["text"]}).status_code == 201
        assert client.post(f"/v1/tables/{name}/indexes", json={"kind": "vector"}).status_code == 201
