"""Errors as JSON: ``{"error": {"type": ..., "message": ...}}`` with the status that fits.

`hybrid` errors map to 4xx (a missing table or version 404, an existing table or a commit
conflict 409, a search past its time budget 503 with Retry-After, every other bad input 400),
request validation to 422, oversized bodies to 413. Anything else is a bug: 500 with a generic
message, the traceback only in the log.
"""

from __future__ import annotations

import http
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from hybrid.errors import (
    AccessError,
    CommitConflictError,
    CorruptionError,
    HybridError,
    LimitError,
    ReadOnlyError,
    RowNotFoundError,
    TableExistsError,
    TableNotFoundError,
    TimeBudgetError,
    VersionNotFoundError,
)

logger = logging.getLogger(__name__)

_BY_CLASS: tuple[tuple[type[BaseException], int], ...] = (
    (TableNotFoundError, 404),
    (VersionNotFoundError, 404),
    (RowNotFoundError, 404),
    (TableExistsError, 409),
    (CommitConflictError, 409),
    (ReadOnlyError, 409),
    (TimeBudgetError, 503),
    (LimitError, 422),
    (AccessError, 403),
    (CorruptionError, 500),
    (HybridError, 400),
)
_SERVER_SIDE = (MemoryError, OSError, duckdb.IOException, duckdb.InternalException, duckdb.OutOfMemoryException)
"""Failures of the machine, not of the request: they stay 500."""
_BAD_INPUT = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    ArithmeticError,
    RecursionError,
    pa.ArrowException,
    duckdb.Error,
)
"""What the library raises for input it cannot use without a `hybrid` error of its own."""


class ApiError(Exception):
    """An error response: HTTP status, a short type name and a message for the client."""

    def __init__(self, status: int, type: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.headers = dict(headers or {})


def body(type: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON error document.

    >>> body("FilterError", "unknown column 'x'")
    {'error': {'type': 'FilterError', 'message': "unknown column 'x'"}}
    """
    error: dict[str, Any] = {"type": type, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def from_library(exc: BaseException) -> ApiError | None:
    """The response for an exception raised by `hybrid` (or pyarrow / DuckDB under it) on
    the request's input; None when it is a server-side failure."""
    if isinstance(exc, HybridError):
        status = next(code for cls, code in _BY_CLASS if isinstance(exc, cls))
        return ApiError(status, type(exc).__name__, str(exc), {"Retry-After": "1"} if status == 503 else None)
    if isinstance(exc, _SERVER_SIDE) or not isinstance(exc, _BAD_INPUT):
        return None
    if isinstance(exc, RecursionError):
        return ApiError(400, "InvalidInput", "the input is nested too deeply")
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return ApiError(400, "InvalidInput", message or type(exc).__name__)


def time_budget_error(seconds: float, stage: str) -> ApiError:
    """The 503 of a request stopped past its time budget of `seconds` at `stage`."""
    message = f"the request ran longer than its time budget of {seconds:g} s and was stopped at {stage}; retry later"
    return ApiError(503, "TimeBudgetError", message, {"Retry-After": "1"})


@contextmanager
def library_errors() -> Iterator[None]:
    """Turn exceptions from `hybrid` calls on request input into :class:`ApiError`."""
    try:
        yield
    except ApiError:
        raise
    except Exception as exc:
        mapped = from_library(exc)
        if mapped is None:
            raise
        raise mapped from exc


def _respond(status: int, content: dict[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(content, status_code=status, headers=dict(headers or {}))


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return "Error"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _respond(exc.status, body(exc.type, exc.message), exc.headers)


def _location(loc: Any) -> str:
    return ".".join(str(part) for part in loc) if isinstance(loc, (list, tuple)) else str(loc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{_location(d['loc'])}: {d['msg']}" for d in details[:5])
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    return _respond(422, body("ValidationError", f"invalid request: {summary}{more}", details))


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    path = request.url.path
    table: list[tuple[re.Pattern[str], frozenset[str]]] = getattr(request.app.state, "allow", [])
    return sorted({m for pattern, methods in table if pattern.match(path) for m in methods})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return _respond(exc.status_code, body(_phrase(exc.status_code), message), headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(500, body("InternalError", "internal server error; the server log has the details"))


def install(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Register the JSON error handlers on `app`; `routes` give the ``Allow`` header of a 405."""
    app.state.allow = [
        (route.path_regex, frozenset(route.methods))
        for route in routes
        if isinstance(route, APIRoute) and route.methods
    ]
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
