"""`serve`: run the HTTP API with uvicorn, refusing configurations that would expose data."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any

from hybrid.errors import require
from hybrid.server.config import ConfigError, ServerConfig, load_config

logger = logging.getLogger(__name__)


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


def serve(
    db_path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    config_path: Path | None = None,
    config: ServerConfig | None = None,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve the tables in `db_path` over HTTP until interrupted.

    Settings come from `config`, or else the file `config_path` (TOML or JSON) plus
    ``HYBRID_API_KEYS`` (see :mod:`hybrid.server.config`). Raises :class:`ConfigError`
    for a configuration that is invalid or unsafe on `host`.
    """
    uvicorn: Any = require("uvicorn", "server")
    from hybrid.server.app import create_app

    settings = config if config is not None else load_config(config_path)
    check_safe(host, settings)
    roles = ", ".join(f"{k.name or 'key'}={k.role}" for k in settings.api_keys) or "none"
    anonymous = settings.anonymous_role or "refused"
    logger.info("serving %s on %s:%s; keys: %s; anonymous: %s", db_path, host, port, roles, anonymous)
    app = create_app(db_path, settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log, server_header=False)
