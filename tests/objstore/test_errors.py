"""Bad object-store setups fail at connect with a clear StorageError, and leave nothing behind.

A store that ignores conditional puts, and one that fails while a commit is uploaded, are real
loopback HTTP proxies in front of moto's server: one drops the ``If-None-Match`` header of every
request, the other answers 503 to the put of a manifest.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import hybrid
from tests.conftest import make_rows
from tests.objstore.conftest import options


@contextmanager
def proxy(upstream: str, *, strip_if_none_match: bool = False, fail_manifests: bool = False) -> Iterator[str]:
    """A loopback HTTP proxy to `upstream` that can drop If-None-Match or refuse manifest puts."""
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if fail_manifests and self.command == "PUT" and "/_versions/" in self.path:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "if-none-match")}
            if not strip_if_none_match and "If-None-Match" in self.headers:
                headers["If-None-Match"] = self.headers["If-None-Match"]
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            conn.request(self.command, self.path, body=body, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            self.send_response(reply.status)
            for k, v in reply.getheaders():
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 - http.server's names

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def objects(endpoint: str, bucket: str, tmp_path: Path) -> list[str]:
    """Every key in `bucket`, listed through a working connection."""
    db = hybrid.connect(f"s3://{bucket}", storage_options=options(endpoint, tmp_path / "lister"))
    assert db.store is not None
    return [o["path"] for o in db.store.objects("")]


def test_unreachable_endpoint(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(hybrid.StorageError, match="unreachable") as err:
        hybrid.connect("s3://bucket/db", storage_options=options(f"http://127.0.0.1:{port}", tmp_path / "c"))
    assert f"127.0.0.1:{port}" in str(err.value)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*.json"))


def test_missing_bucket(s3_endpoint: str, tmp_path: Path) -> None:
    with pytest.raises(hybrid.StorageError, match="does not exist"):
        hybrid.connect("s3://no-such-bucket/db", storage_options=options(s3_endpoint, tmp_path / "c"))


def test_missing_credentials(s3_endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    opts = options(s3_endpoint, tmp_path / "c")
    del opts["access_key_id"], opts["secret_access_key"]
    with pytest.raises(hybrid.StorageError, match="credentials"):
        hybrid.connect(f"s3://{bucket}/db", storage_options=opts)
    assert objects(s3_endpoint, bucket, tmp_path) == []


def test_store_without_conditional_puts(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    with proxy(s3_endpoint, strip_if_none_match=True) as url, pytest.raises(hybrid.StorageError, match="conditional"):
        hybrid.connect(f"s3://{bucket}/db", storage_options=options(url, tmp_path / "c"))
    assert objects(s3_endpoint, bucket, tmp_path) == [], "the probe object was left behind"
    # through the proxy that keeps the header, the same bucket works
    with proxy(s3_endpoint) as url:
        hybrid.connect(f"s3://{bucket}/db", storage_options=options(url, tmp_path / "c2"))


def test_failed_commit_leaves_the_table_as_it_was(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    hybrid.connect(f"s3://{bucket}/db", storage_options=options(s3_endpoint, tmp_path / "c")).create_table(
        "docs", make_rows(range(10))
    )
    with proxy(s3_endpoint, fail_manifests=True) as url:
        opts = {**options(url, tmp_path / "c2"), "retry_config": {"max_retries": 0}}
        table = hybrid.connect(f"s3://{bucket}/db", storage_options=opts).open_table("docs")
        with pytest.raises(hybrid.StorageError, match="_versions/2.json"):
            table.add(make_rows(range(10, 20)))
    fresh = hybrid.connect(f"s3://{bucket}/db", storage_options=options(s3_endpoint, tmp_path / "c3"))
    reread = fresh.open_table("docs")
    assert reread.version == 1 and reread.count_rows() == 10
    assert reread.add(make_rows(range(10, 20))).version == 2  # and the next commit works


def test_bad_uri_and_options(tmp_path: Path) -> None:
    with pytest.raises(hybrid.StorageError, match="cannot open the object store"):
        hybrid.connect("s3://bucket/db", storage_options={"no_such_option": "1", "cache_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="storage_options"):
        hybrid.connect(tmp_path / "folder", storage_options={"endpoint": "http://x"})
    with pytest.raises(hybrid.StorageError, match="encryption"):
        hybrid.connect("memory://", encryption_key="00" * 32, storage_options={"cache_dir": str(tmp_path)})
