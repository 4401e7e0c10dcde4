"""An S3 endpoint for the object-store tests: moto's server on a loopback port, spoken to over HTTP.

Every test gets a bucket of its own and a cache folder of its own, so a table read back comes from
the store, never from another test's mirror.
"""

from __future__ import annotations

import logging
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("obstore")
moto_server = pytest.importorskip("moto.server")

import hybrid  # noqa: E402


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on 127.0.0.1 (a real HTTP server in a thread of this process)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def make_bucket(endpoint: str) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{name}", method="PUT")).read()
    return name


def options(endpoint: str, cache: Path, **more: Any) -> dict[str, Any]:
    """What a user gives `storage_options` for an S3-compatible endpoint."""
    return {
        "endpoint": endpoint,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "region": "us-east-1",
        "allow_http": "true",
        "cache_dir": str(cache),
        **more,
    }


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    return make_bucket(s3_endpoint)


@pytest.fixture
def s3_db(s3_endpoint: str, bucket: str, tmp_path: Path) -> hybrid.Database:
    """A database at s3://<fresh bucket>/db, without background upkeep."""
    return hybrid.connect(f"s3://{bucket}/db", storage_options=options(s3_endpoint, tmp_path / "cache"), upkeep=None)
