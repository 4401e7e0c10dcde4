"""What the current request's key may touch: its grants, resolved per table.

The auth dependency (:func:`hybrid.server.auth.requires`) puts an :class:`Access` in a context
variable; :class:`hybrid.server.tables.Tables` consults it on every table it hands out, so no
endpoint can reach a table without passing through it:

- a table no grant names answers exactly like a missing table (404, same message);
- a grant whose role is below what the route needs answers 403;
- a grant with a row scope, or without raw vectors, hands out a :class:`hybrid.ScopedTable`.

Requests made without the auth dependency (the library's own use of ``Tables``) see everything.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from hybrid.errors import AccessError
from hybrid.server.config import ROLES, Grant, Role


@dataclass(frozen=True)
class Access:
    """The grants of the key making the request, and the role its route needs."""

    key: str
    grants: tuple[Grant, ...]
    need: Role = "read"
    scoped: bool = False
    """Whether the key was configured with grants (reads by scoped keys are audited)."""

    def grant_for(self, table: str) -> Grant | None:
        """The first grant naming `table`, or None (the table is invisible to this key)."""
        return next((g for g in self.grants if g.covers(table)), None)

    def check(self, table: str, need: Role | None = None) -> Grant | None:
        """The grant for `table` if it allows `need` (default: the route's); None when no grant names
        it; AccessError when one does but with a lesser role."""
        grant = self.grant_for(table)
        wanted = need or self.need
        if grant is not None and ROLES.index(grant.role) < ROLES.index(wanted):
            raise AccessError(f"this needs the {wanted!r} role on table {table!r}; the key has {grant.role!r}")
        return grant


EVERYTHING = Access("(internal)", (Grant(("*",), "admin", None, True),), "admin")
_access: ContextVar[Access] = ContextVar("hybrid_access", default=EVERYTHING)


def set_access(access: Access) -> None:
    """Remember what the current request may touch (the auth dependency calls this)."""
    _access.set(access)


def current_access() -> Access:
    return _access.get()
