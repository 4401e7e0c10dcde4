"""TLS: the server over a real HTTPS loopback connection, with a self-signed certificate made here."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from hybrid.server import create_app
from hybrid.server.config import ConfigError
from hybrid.server.serving import tls_options

from .conftest import ADMIN, auth, make_config

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost, valid for a day, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hybrid test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_the_server_speaks_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    options = tls_options(cert, key)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(tmp_path / "db", make_config())
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, headers=auth(ADMIN)) as client:
            assert client.get("/v1/health").json()["status"] == "ok"
            made = client.post("/v1/tables", json={"name": "docs", "rows": [{"id": 1, "text": "over tls"}]})
            assert made.status_code == 201
            assert client.get("/v1/tables").json()["tables"] == ["docs"]
            with client.stream("GET", "/v1/health") as response:
                tls = response.extensions["network_stream"].get_extra_info("ssl_object")
                assert tls is not None and tls.version() in ("TLSv1.2", "TLSv1.3")
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate is refused
            httpx.get(f"https://127.0.0.1:{port}/v1/health", verify=ssl.create_default_context())
        with pytest.raises(httpx.HTTPError):  # and plain HTTP is not served
            httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=5).raise_for_status()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_tls_options_are_checked_before_serving(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    assert tls_options(cert, key) == {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    with pytest.raises(ConfigError, match="go together"):
        tls_options(None, key)
    with pytest.raises(ConfigError, match="not a readable file"):
        tls_options(tmp_path / "missing.pem", key)
    (tmp_path / "other").mkdir()
    other_cert, _ = self_signed(tmp_path / "other")
    with pytest.raises(ConfigError, match="cannot load"):
        tls_options(other_cert, key)  # a key that is not the certificate's


def test_hybrid_serve_takes_the_tls_options(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hybrid.cli import app

    missing = str(tmp_path / "missing.pem")
    args = ["serve", "--db", str(tmp_path), "--tls-cert", missing, "--tls-key", missing]
    result = CliRunner().invoke(app, args, env={"HYBRID_API_KEYS": f"{ADMIN}:admin"})
    assert result.exit_code != 0 and "not a readable file" in result.output
