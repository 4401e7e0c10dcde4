"""The audit log: one JSON line per write request, append-only, rotated by size.

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


class AuditLog:
    """Appends audit records to `path` (rotated at `max_bytes`, keeping `backups` old files); with no
    `path` it records nothing (the log turned off)."""

    def __init__(self, path: Path | None = None, max_bytes: int = 10 << 20, backups: int = 10) -> None:
        self.path = path
        self._handler: logging.handlers.RotatingFileHandler | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups)

    def record(self, table: str, before: int | None, after: int | None, error: BaseException | None = None) -> None:
        if self._handler is None:
            return
        caller = _caller.get()
        entry: dict[str, Any] = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "key": caller.key if caller else "(none)",
            "role": caller.role if caller else "(none)",
            "request": caller.request if caller else "(internal)",
            "table": table,
            "version_before": before,
            "version": after,
            "outcome": "committed" if error is None and after != before else "unchanged" if error is None else "error",
        }
        if error is not None:
            entry["error"] = type(error).__name__
        self._handler.emit(logging.makeLogRecord({"msg": json.dumps(entry), "levelno": logging.INFO}))

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()
