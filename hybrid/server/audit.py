"""The audit log: one JSON line per write request, scoped read and denial, append-only, rotated by size.

Every line has an ``event``: ``write`` (every write request), ``read`` (a search by a key
configured with grants: which table, how many rows came back), ``denied`` (a request refused
for its key: no valid key, a role too low, a table the key has no grant for, a row or vector
outside its scope) or ``erase`` (an erasure: predicate, rows, versions; a hook the erasure
code calls). Lines about a table name the grant used (its table patterns and whether it has a
row scope); never a key, a row scope's values or any document content.

Each line says when, who (the API key's name and role; keys themselves are never
written), which request (method and route), which table, the version before and
after, and whether it committed or which error it raised. The caller is taken
from the request by the auth dependency (:func:`set_caller`) and carried to the
worker thread that runs the write in a context variable; :class:`Tables`
(``hybrid/server/tables.py``) records each write it hands out.

Rotation is the standard library's ``RotatingFileHandler``; lines are appended
with ``O_APPEND``, so several worker processes may share one log (a worker that
rotates leaves the others writing into the renamed file until they rotate too:
no line is lost, a file may run past its size).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Caller:
    """Who made a request: the key's name (or "anonymous"), its role, and the request's route."""

    key: str
    role: str
    request: str


_caller: ContextVar[Caller | None] = ContextVar("hybrid_audit_caller", default=None)


def set_caller(caller: Caller) -> None:
    """Remember who makes the current request (the auth dependency calls this)."""
    _caller.set(caller)


def current_caller() -> Caller | None:
    """Who makes the current request (None outside a request)."""
    return _caller.get()


class AuditLog:
    """Appends audit records to `path` (rotated at `max_bytes`, keeping `backups` old files); with no
    `path` it records nothing (the log turned off)."""

    def __init__(self, path: Path | None = None, max_bytes: int = 10 << 20, backups: int = 10) -> None:
        self.path = path
        self._handler: logging.handlers.RotatingFileHandler | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups)

    def _entry(self, event: str, table: str | None) -> dict[str, Any]:
        caller = _caller.get()
        entry: dict[str, Any] = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "event": event,
            "key": caller.key if caller else "(none)",
            "role": caller.role if caller else "(none)",
            "request": caller.request if caller else "(internal)",
            "table": table,
        }
        if table is not None:
            from hybrid.server.access import current_access

            grant = current_access().grant_for(table)
            if grant is not None and grant.tables != ("*",):
                scoped = grant.where is not None
                entry["grant"] = {"tables": list(grant.tables), "role": grant.role, "row_scope": scoped}
        return entry

    def _emit(self, entry: dict[str, Any]) -> None:
        assert self._handler is not None
        self._handler.emit(logging.makeLogRecord({"msg": json.dumps(entry), "levelno": logging.INFO}))

    def read(self, table: str, rows: int, version: int | None = None) -> None:
        """A read by a scoped key: which table (and version), how many rows it returned."""
        if self._handler is None:
            return
        self._emit({**self._entry("read", table), "version": version, "rows": rows})

    def denied(self, table: str | None, status: int, reason: str) -> None:
        """A request refused because of its key (`reason` says which rule, never the key or the data)."""
        if self._handler is None:
            return
        self._emit({**self._entry("denied", table), "status": status, "reason": reason})

    def erased(
        self,
        table: str,
        predicate: str,
        rows: int,
        versions: int,
        version: int | None = None,
        reason: str | None = None,
    ) -> None:
        """An erasure (``POST /v1/tables/{name}/erase`` calls this): the predicate with its literals
        redacted, how many rows, across how many versions, the version that records it and the reason
        the admin gave; never the erased values."""
        if self._handler is None:
            return
        entry = self._entry("erase", table)
        self._emit(
            {**entry, "predicate": predicate, "rows": rows, "versions": versions, "version": version, "reason": reason}
        )

    def record(self, table: str, before: int | None, after: int | None, error: BaseException | None = None) -> None:
        if self._handler is None:
            return
        entry: dict[str, Any] = {
            **self._entry("write", table),
            "version_before": before,
            "version": after,
            "outcome": "committed" if error is None and after != before else "unchanged" if error is None else "error",
        }
        if error is not None:
            entry["error"] = type(error).__name__
        self._emit(entry)

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()
