"""API-key authentication and role checks.

A request presents its key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The
key's SHA-256 digest is compared with every configured digest by :func:`hmac.compare_digest`
(no early exit, so timing says nothing about which key or how much of it matched). Roles
nest: ``read`` < ``write`` < ``admin``. Keys are never logged or echoed in errors.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from hybrid.server.access import Access, set_access
from hybrid.server.audit import AuditLog, Caller, set_caller
from hybrid.server.config import ROLES, ApiKey, Role, key_digest
from hybrid.server.errors import ApiError
from hybrid.server.limits import KeyGates

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hybrid"'}


def allows(have: Role, need: Role) -> bool:
    """Whether role `have` may do what needs `need`.

    >>> allows("admin", "write"), allows("read", "write")
    (True, False)
    """
    return ROLES.index(have) >= ROLES.index(need)


class KeyRing:
    """The configured keys; answers which role a presented key has, in constant time per key."""

    def __init__(self, keys: Sequence[ApiKey], anonymous_role: Role | None) -> None:
        self._keys = tuple(keys)
        self.anonymous_role = anonymous_role

    def role_of(self, presented: str) -> Role | None:
        """The role of `presented`, or None when it is not a configured key.

        >>> ring = KeyRing([ApiKey.from_secret("0123456789abcdef", "write")], None)
        >>> ring.role_of("0123456789abcdef"), ring.role_of("0123456789abcdeX")
        ('write', None)
        """
        key = self.key_of(presented)
        return key.role if key is not None else None

    def key_of(self, presented: str) -> ApiKey | None:
        """The configured key `presented` is, or None; every key is compared (no early exit)."""
        digest = key_digest(presented)
        found: ApiKey | None = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    def authenticate(self, presented: str | None) -> tuple[Role, str]:
        """(role, key name) of a request presenting `presented` (None: no key); raises 401 otherwise."""
        key = self.identify(presented)
        return key.role, key.name

    def identify(self, presented: str | None) -> ApiKey:
        """The key a request presents (anonymous access as a key named "anonymous"); raises 401 otherwise."""
        if presented is None or presented == "":
            if self.anonymous_role is not None:
                return ApiKey(self.anonymous_role, b"", "anonymous")
            raise ApiError(401, "Unauthorized", "an API key is required: send Authorization: Bearer <key>", _CHALLENGE)
        key = self.key_of(presented)
        if key is None:
            raise ApiError(401, "Unauthorized", "the API key is not valid", _CHALLENGE)
        return key if key.name else replace(key, name="(unnamed key)")


def _presented(request: Request, bearer: HTTPAuthorizationCredentials | None, header_key: str | None) -> str | None:
    if bearer is not None:
        return bearer.credentials
    if header_key:
        return header_key
    if request.headers.get("authorization"):  # present but not "Bearer <key>"
        raise ApiError(401, "Unauthorized", "the Authorization header must be 'Bearer <key>'", _CHALLENGE)
    return None


def requires(need: Role) -> Callable[..., AsyncIterator[Role]]:
    """A FastAPI dependency: the caller's role, after checking that it allows `need` (401 / 403) and that its
    key has fewer than ``max_requests_per_key`` requests in progress (429 with Retry-After)."""

    async def dependency(  # async: no blocking work, so no trip through the thread pool
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header_key: Annotated[str | None, Security(_api_key)],
    ) -> AsyncIterator[Role]:
        ring: KeyRing = request.app.state.keyring
        route = request.scope.get("route")
        where = f"{request.method} {getattr(route, 'path', request.url.path)}"
        audit: AuditLog = request.app.state.tables.audit
        try:
            key = ring.identify(_presented(request, bearer, header_key))
        except ApiError as exc:
            set_caller(Caller("(invalid key)", "(none)", where))
            audit.denied(None, exc.status, "no valid API key")
            raise
        role, name = key.role, key.name
        set_caller(Caller(name, role, where))
        set_access(Access(name, key.effective_grants(), need, scoped=bool(key.grants)))
        if not allows(role, need):
            audit.denied(None, 403, f"needs the {need} role")
            raise ApiError(403, "Forbidden", f"this needs the {need!r} role; the key has {role!r}")
        gates: KeyGates = request.app.state.key_gates
        if not gates.enter(name):
            message = f"key {name!r} already has {gates.limit} requests in progress; retry shortly"
            raise ApiError(429, "TooManyRequests", message, {"Retry-After": "1"})
        try:
            yield role
        finally:
            gates.leave(name)

    return dependency
