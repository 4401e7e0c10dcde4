"""Shared fixtures: a fresh database folder and a small documents table."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hybrid

# HF_HUB_OFFLINE and the session's HYBRID_CACHE_DIR are set by the conftest.py at the repository root


@pytest.fixture
def db(tmp_path: Path) -> hybrid.Database:
    """A database without background upkeep, so versions and fragments are exactly the test's own
    (upkeep is tested on its own in tests/index/test_incremental.py and through the server)."""
    return hybrid.connect(tmp_path / "db", upkeep=None)


def make_rows(ids: range | list[int], dim: int = 4, seed: int = 0) -> list[dict]:
    """Rows whose content is a pure function of `id` (so tests can recompute it)."""
    rows = []
    for i in ids:
        rng = np.random.default_rng(seed * 1_000_003 + i)
        rows.append(
            {
                "id": i,
                "text": f"document number {i}",
                "lang": "en" if i % 2 == 0 else "de",
                "year": 2000 + i % 25,
                "vector": rng.random(dim, dtype=np.float32).tolist(),
            }
        )
    return rows


@pytest.fixture
def docs(db: hybrid.Database) -> hybrid.Table:
    return db.create_table("docs", make_rows(range(20)))


@dataclass
class ChatEndpoint:
    """A real OpenAI-compatible ``/chat/completions`` server on loopback that answers `reply`
    and records every request (path, Authorization header, JSON body)."""

    url: str
    reply: str
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def chat_endpoint() -> Iterator[ChatEndpoint]:
    endpoint = ChatEndpoint("", "Every 90 days [1].")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            endpoint.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            answer = json.dumps({"choices": [{"message": {"role": "assistant", "content": endpoint.reply}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
