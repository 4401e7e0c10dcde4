"""`serve`: run the HTTP API with uvicorn, in one or several worker processes.

Workers share one listening socket (uvicorn's ``workers=``) and one database folder: the
on-disk format takes writers in several processes (optimistic commits, one manifest per
version created exclusively), and every request reads the newest published version, so a
write answered by one worker is seen by the next request to any worker. Each worker gets
its settings from the parent through two environment variables (the database path, and the
configuration as JSON with keys as digests only), never through a file.

On SIGTERM (or Ctrl+C) a worker stops accepting connections, lets requests in flight finish
for up to `graceful_timeout` seconds, then exits. A commit is atomic (its manifest is
published by one exclusive create), so a write cut off past that limit is never half-done:
it either committed or left no version.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid.errors import require
from hybrid.server.config import ConfigError, ServerConfig, from_json, load_config, to_json
from hybrid.storage.remote import is_uri

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

MAX_DEFAULT_WORKERS = 4
"""The default worker count stops here: each worker loads its own copy of the indexes it
searches (HNSW graphs are read into memory) and of any embedding model."""
DB_ENV = "HYBRID_WORKER_DB"
SETTINGS_ENV = "HYBRID_WORKER_SETTINGS"
GRACEFUL_TIMEOUT = 30.0


def default_workers() -> int:
    """The CPUs this process may run on, at most :data:`MAX_DEFAULT_WORKERS`.

    A search holds the GIL for much of its work (filters, fusion, JSON), so one process
    keeps about one core busy; a worker per usable core lets searches run in parallel.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_safe(host: str, config: ServerConfig) -> None:
    """Raise :class:`ConfigError` unless serving `config` on `host` keeps tables behind keys.

    No keys and no anonymous role would refuse every request, so that is refused at start;
    anonymous access is only for a loopback host.
    """
    if not config.has_keys and config.anonymous_role is None:
        raise ConfigError(
            "no API keys are configured: set HYBRID_API_KEYS='<key>:admin' (or api_keys in the config file), "
            "or anonymous_role = 'read' | 'write' | 'admin' for local use on a loopback host"
        )
    if config.anonymous_role is not None and not is_loopback(host):
        raise ConfigError(
            f"anonymous_role lets anyone who can reach {host} act as {config.anonymous_role!r}; it is only "
            "allowed on a loopback host (127.0.0.1, ::1, localhost). Configure API keys to serve on this host"
        )


def worker_app() -> FastAPI:
    """The app of one worker process, from the settings :func:`serve` put in its environment."""
    from hybrid.server.app import create_app

    db_path, settings = os.environ.get(DB_ENV), os.environ.get(SETTINGS_ENV)
    if db_path is None or settings is None:
        raise ConfigError(f"a worker needs {DB_ENV} and {SETTINGS_ENV}; start it with hybrid.server.serve")
    return create_app(db_path, from_json(settings))


@contextmanager
def _worker_environment(db_path: str | Path, settings: ServerConfig) -> Iterator[None]:
    """Set the variables :func:`worker_app` reads (workers inherit them at spawn), then restore them."""
    saved = {name: os.environ.get(name) for name in (DB_ENV, SETTINGS_ENV)}
    os.environ[DB_ENV] = str(db_path) if is_uri(db_path) else str(Path(db_path).resolve())
    os.environ[SETTINGS_ENV] = to_json(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def tls_options(cert: Path | str | None, key: Path | str | None) -> dict[str, str]:
    """uvicorn's TLS options for a PEM certificate (chain) and private key; both or neither.

    Example:
        >>> tls_options(None, None)
        {}
        >>> tls_options("cert.pem", None)
        Traceback (most recent call last):
        hybrid.server.config.ConfigError: --tls-cert and --tls-key go together: give both PEM files, or neither
    """
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise ConfigError("--tls-cert and --tls-key go together: give both PEM files, or neither")
    for what, path in (("certificate", Path(cert)), ("private key", Path(key))):
        if not path.is_file():
            raise ConfigError(f"TLS {what} {path} is not a readable file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} with key {key}: {exc}") from None
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def serve(
    db_path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    config_path: Path | None = None,
    config: ServerConfig | None = None,
    workers: int | None = None,
    graceful_timeout: float = GRACEFUL_TIMEOUT,
    log_level: str = "info",
    access_log: bool = True,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Serve the tables in `db_path` (a folder, or an object-store URI such as ``s3://bucket/prefix``,
    whose storage options come from ``HYBRID_STORAGE_OPTIONS``) over HTTP until interrupted (SIGTERM or SIGINT).

    Settings come from `config`, or else the file `config_path` (TOML or JSON) plus
    ``HYBRID_API_KEYS`` (see :mod:`hybrid.server.config`). `workers` processes serve
    (default :func:`default_workers`); on SIGTERM each finishes its requests in flight for
    up to `graceful_timeout` seconds. Raises :class:`ConfigError` for a configuration that
    is invalid or unsafe on `host`. With `tls_cert` and `tls_key` (PEM files: the certificate
    chain and its private key) it serves HTTPS only (uvicorn's ``ssl_certfile`` / ``ssl_keyfile``).
    """
    uvicorn: Any = require("uvicorn", "server")
    from hybrid.server.app import create_app

    count = default_workers() if workers is None else workers
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if graceful_timeout <= 0:
        raise ConfigError(f"graceful_timeout must be positive, got {graceful_timeout!r}")
    settings = config if config is not None else load_config(config_path)
    check_safe(host, settings)
    tls = tls_options(tls_cert, tls_key)
    roles = ", ".join(f"{k.name or 'key'}={k.role}" for k in settings.api_keys) or "none"
    anonymous = settings.anonymous_role or "refused"
    logger.info(
        "serving %s on %s:%s with %d worker(s); keys: %s; anonymous: %s", db_path, host, port, count, roles, anonymous
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": access_log,
        "server_header": False,
        "timeout_graceful_shutdown": graceful_timeout,
        **tls,
    }
    if count == 1:
        uvicorn.run(create_app(db_path, settings), **options)
        return
    with _worker_environment(db_path, settings):
        uvicorn.run("hybrid.server.serving:worker_app", factory=True, workers=count, **options)
