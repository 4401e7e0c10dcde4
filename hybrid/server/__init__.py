"""An HTTP API over a database folder: FastAPI + uvicorn, API keys with roles, JSON errors.

>>> from hybrid.server import ServerConfig, create_app
>>> import tempfile
>>> create_app(tempfile.mkdtemp(), ServerConfig(anonymous_role="read")).title
'hybrid'

Needs the ``server`` extra (``pip install 'hybridsearch[server]'``). Start it with
:func:`serve` (or ``hybrid serve``); :mod:`hybrid.server.app` lists the endpoints.

Authentication: API keys from a config file (:mod:`hybrid.server.config`) or
``HYBRID_API_KEYS="key1:read,key2:admin"``, sent as ``Authorization: Bearer <key>`` or
``X-API-Key``. Roles nest: ``read`` (list, info, search, indexes, versions) < ``write``
(add and delete rows) < ``admin`` (create and drop tables and indexes). With no keys,
every request but ``/v1/health`` gets 401 and ``serve`` refuses to start, unless the
config sets ``anonymous_role``, which ``serve`` accepts only on a loopback host. A key with
:class:`Grant` s reaches only the tables they name, each with its role, an optional row scope
and whether raw vectors are returned (``docs/security.md``).

Errors are ``{"error": {"type": ..., "message": ...}}``: 400 bad input (filters, vectors,
rows), 401 / 403 keys and roles, 404 missing table / index, 409 existing table or index
or a write conflict, 413 body over ``max_body_bytes`` (refused before parsing), 422
schema violations and configured limits, 429 too many requests or too much estimated search
cost in progress for one key, 503 a search past its ``request_seconds`` (``TimeBudgetError``;
both with ``Retry-After``). An unexpected failure is a 500 without details.
"""

from __future__ import annotations

from hybrid.errors import require

require("fastapi", "server")

from hybrid.server.app import create_app  # noqa: E402
from hybrid.server.config import ApiKey, ConfigError, Grant, Role, ServerConfig, load_config  # noqa: E402
from hybrid.server.serving import check_safe, serve  # noqa: E402

__all__ = ["ApiKey", "ConfigError", "Grant", "Role", "ServerConfig", "check_safe", "create_app", "load_config", "serve"]
