"""Per-key request bounds (429 with Retry-After) and a deadline for request bodies (408)."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from hybrid.server import create_app

from .conftest import ADMIN, WRITER, make_config, running


def test_a_key_with_too_many_requests_in_progress_gets_429_and_others_do_not(tmp_path: Path) -> None:
    db_path = tmp_path / "db"
    rows = [{"id": i, "s": f"r{i}"} for i in range(200_000)]
    slow = "md5(md5(md5(s) || s) || s) = 'none'"  # matches nothing, slowly
    config = make_config(max_requests_per_key=1, max_rows_per_add=20_000, max_body_bytes=8 << 20)
    with running(create_app(db_path, config), db_path) as live:
        with live.client(ADMIN) as admin:
            assert admin.post("/v1/tables", json={"name": "big", "rows": rows[:1000]}).status_code == 201
            for start in range(1000, len(rows), 20_000):
                admin.post("/v1/tables/big/rows", json={"rows": rows[start : start + 20_000]})

        def count(key: str) -> tuple[int, str | None]:
            with live.client(key) as c:
                r = c.post("/v1/tables/big/rows/delete", json={"where": slow})
                return r.status_code, r.headers.get("retry-after")

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(count, [WRITER] * 5 + [ADMIN]))
    codes = [a[0] for a in answers]
    assert 429 in codes[:5] and codes[5] != 429, codes  # the other key was never refused
    assert all(a[1] == "1" for a in answers if a[0] == 429)
    assert all(c in (200, 429) for c in codes), codes


def test_a_body_that_arrives_too_slowly_gets_408(tmp_path: Path) -> None:
    db_path = tmp_path / "db"
    with running(create_app(db_path, make_config(body_seconds=0.5)), db_path) as live:
        url = urlsplit(live.url)
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            head = (
                "POST /v1/tables HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {ADMIN}\r\nContent-Length: 1000\r\n\r\n"
            )
            sock.sendall(head.encode() + b'{"name": "t", ')  # ...and the rest never comes
            started = time.monotonic()
            reply = b""
            while chunk := sock.recv(4096):  # the server closes the connection after its answer
                reply += chunk
        reply_text = reply.decode()
        assert reply_text.startswith("HTTP/1.1 408") and "RequestTimeout" in reply_text
        assert 0.4 < time.monotonic() - started < 5
