"""A real server on loopback with a small table, a fake OpenAI-compatible chat endpoint (a real HTTP
server on loopback), and a real headless Chromium driven by Playwright.

A missing browser FAILS these tests (it does not skip them): install Debian's ``chromium`` (``.ci/run``
does) or point ``HYBRID_CHROMIUM`` at a Chromium binary.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

import httpx  # noqa: E402

from hybrid.server import ApiKey, ServerConfig, create_app  # noqa: E402
from tests.server.conftest import Live, running  # noqa: E402
from tests.web.browser import LAUNCH_ARGS  # noqa: E402

ADMIN = "web-admin-key-0123456789"
WRITER = "web-write-key-0123456789"
READER = "web-read-key-01234567890"
CHAT_KEY = "chat-endpoint-secret-0123"
XSS_TEXT = (
    'rotate <script>window.__xss = 1</script> "><img src=x onerror="window.__xss = 2"> '
    "<svg onload=alert(3)> javascript:alert(4)"
)


def chromium_path() -> str:
    """The system Chromium, or a failure saying how to install it (never a skip)."""
    for candidate in (os.environ.get("HYBRID_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("no Chromium for the browser tests: apt-get install -y chromium chromium-driver (see .ci/run)")


def rows(start: int, stop: int) -> list[dict[str, Any]]:
    topics = ["keys", "backups", "certificates", "logging"]
    out = []
    for i in range(start, stop):
        topic = topics[i % 4]
        text = f"how to rotate {topic} safely: step {i} of the {topic} runbook, checked every {2 + i % 5} days"
        out.append({"id": i, "title": f"{topic} note {i}", "text": text, "topic": topic, "year": 2015 + i % 10})
    return out


@dataclass
class FakeChat:
    """An OpenAI-compatible ``/chat/completions`` that streams a fixed answer citing [1] and [2]."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)


ANSWER_PIECES = ["Rotate keys ", "with the runbook [1], ", "and check them every few days [2]."]


@pytest.fixture(scope="module")
def fake_chat() -> Iterator[FakeChat]:
    state = FakeChat("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append(json.loads(self.rfile.read(length)))
            state.auth.append(self.headers.get("Authorization", ""))
            if self.path != "/v1/chat/completions":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in ANSWER_PIECES:
                chunk = {"choices": [{"delta": {"content": piece}, "index": 0}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def tiny_png() -> bytes:
    """A valid 2x2 PNG (a stand-in plot)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@dataclass
class Site:
    live: Live
    versions: list[int]
    shots: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, fake_chat: FakeChat) -> Iterator[Site]:
    """``docs``: 40 notes + an XSS row (version 1), indexes, then 4 more rows added (stale indexes); a saved
    eval report. Read, write and admin keys; chat through the fake endpoint."""
    db_path = tmp_path_factory.mktemp("web") / "db"
    keys = (
        ApiKey.from_secret(ADMIN, "admin", "admin"),
        ApiKey.from_secret(WRITER, "write", "writer"),
        ApiKey.from_secret(READER, "read", "reader"),
    )
    os.environ["HYBRID_TEST_CHAT_KEY"] = CHAT_KEY
    config = ServerConfig(
        api_keys=keys, chat_url=fake_chat.url, chat_model="fake-model", chat_key_env="HYBRID_TEST_CHAT_KEY"
    )
    shots = tmp_path_factory.mktemp("screenshots")
    with running(create_app(db_path, config), db_path) as live, live.client(ADMIN) as c:
        first = [*rows(0, 40), {"id": 999, "title": "hostile", "text": XSS_TEXT, "topic": "xss", "year": 2020}]
        created = c.post(
            "/v1/tables",
            json={
                "name": "docs",
                "rows": first,
                "embedding": {"vector": {"source": "text", "embedder": "hashing", "config": {"dim": 64}}},
            },
        )
        assert created.status_code == 201, created.text
        for body in ({"kind": "fts", "columns": ["text", "title"]}, {"kind": "vector"}):
            assert c.post("/v1/tables/docs/indexes", json=body).status_code == 201
        indexed = c.get("/v1/tables/docs").json()["version"]
        added = c.post("/v1/tables/docs/rows", json={"rows": rows(40, 44)})
        assert added.status_code == 200, added.text
        report = db_path / ".eval" / "docs" / "run-1"
        report.mkdir(parents=True)
        (report / "report.json").write_text(json.dumps({"collection": "notes", "runs": []}))
        (report / "report.md").write_text("# Evaluation: notes\n\n| run | nDCG@10 |\n| hybrid | 0.612 |\n")
        (report / "runs.png").write_bytes(tiny_png())
        yield Site(live, [indexed, added.json()["version"]], shots)
    os.environ.pop("HYBRID_TEST_CHAT_KEY", None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole run (Playwright drives the system binary; nothing is downloaded)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]'")
    path = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=LAUNCH_ARGS)
        yield b
        b.close()


def api(site: Site, key: str) -> httpx.Client:
    return site.live.client(key)
