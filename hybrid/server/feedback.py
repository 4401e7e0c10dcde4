"""The feedback endpoints: ``POST /v1/tables/{name}/feedback`` (write) and ``GET`` (read).

Judgments go to the table's feedback table ``<name>__feedback`` (:mod:`hybrid.feedback.store`), checked
whole before anything is written: an unknown row or key, a label out of range or an empty query is a 400
naming the bad item, and nothing is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi import Query as QueryParam
from pydantic import Field

from hybrid.errors import AccessError, FeedbackError, RowNotFoundError
from hybrid.feedback.store import MAX_LABEL, Feedback
from hybrid.scoped import check_in_scope, unscoped
from hybrid.server.auth import requires
from hybrid.server.errors import ApiError, library_errors
from hybrid.server.models import MAX_VECTOR_DIM, TABLE_NAME, ColumnName, Request, Response
from hybrid.server.rows import json_rows
from hybrid.server.tables import Tables
from hybrid.table import Table

KeyValue = str | int
NamePath = Annotated[str, PathParam(pattern=TABLE_NAME, description="table name")]


class FeedbackItem(Request):
    """One judgment: name the row by ``rowid`` or by ``key`` (``{"id": "doc7"}``), not both."""

    query: str = Field(min_length=1, max_length=100_000, description="what the user searched for")
    rowid: int | None = Field(None, ge=0, lt=2**63, description="the judged row's _rowid")
    key: dict[ColumnName, KeyValue] | None = Field(
        None, min_length=1, max_length=1, description="the judged row by key: {key_column: value}"
    )
    label: float = Field(1.0, ge=0.0, le=MAX_LABEL, description="0 wrong, 1 relevant, 2 highly relevant, up to 4")
    kind: Literal["judgment", "click"] = "judgment"
    who: str | None = Field(None, max_length=256, description="who gave it")
    source: str | None = Field(None, max_length=256, description="where it came from, e.g. ui")
    shown_rank: int | None = Field(None, ge=1, lt=2**31, description="1-based rank the row was shown at")
    query_vector: list[float] | None = Field(None, min_length=1, max_length=MAX_VECTOR_DIM)


class FeedbackRequest(Request):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=10_000, description="judgments, one commit")


class FeedbackWritten(Response):
    table: str = Field(description="the feedback table")
    version: int = Field(description="the feedback table's version this write created")
    inserted: int


class FeedbackList(Response):
    table: str
    count: int = Field(description="judgments kept in all")
    feedback: list[dict[str, Any]] = Field(description="the newest judgments, oldest first")


def _item(x: FeedbackItem, who: str | None) -> Feedback:
    if (x.rowid is None) == (x.key is None):
        raise ApiError(400, "FeedbackError", "name the judged row by rowid or by key (one of them)")
    row: int | dict[str, Any] = x.rowid if x.rowid is not None else dict(x.key or {})
    return Feedback(x.query, row, x.label, x.kind, x.who or who, x.source, x.shown_rank, x.query_vector)


def _inside(table: Table, scope: str, items: list[Feedback]) -> None:
    """A row-scoped key judges only rows inside its scope, named by rowid; a row outside it is refused in
    the words used for a row that does not exist, so the answer does not tell the two apart."""
    if any(not isinstance(f.row, int) for f in items):
        raise AccessError("under a row scope, name the judged rows by rowid")
    rows = [int(f.row) for f in items if isinstance(f.row, int)]
    try:
        check_in_scope(table, scope, rows)
    except RowNotFoundError:
        allowed = set(table.to_arrow([], where=scope, with_rowid=True).column("_rowid").to_pylist())
        i = next(i for i, row in enumerate(rows) if row not in allowed)
        raise FeedbackError(f"feedback {i}: row {rows[i]} is not a live row of {table.name!r}") from None


def add_routes(r: APIRouter, tables: Tables, responses: Callable[[str], dict[int | str, dict[str, Any]]]) -> None:
    """Add the feedback endpoints to `r` (`responses("read"|"write")`: the documented error bodies)."""

    @r.post(
        "/tables/{name}/feedback",
        response_model=FeedbackWritten,
        responses=responses("write"),
        dependencies=[Depends(requires("write"))],
        tags=["feedback"],
    )
    def add_feedback(name: NamePath, req: FeedbackRequest) -> FeedbackWritten:
        """Record judgments on the table's rows (kept in ``<name>__feedback``). Needs the write role."""
        items = [_item(x, None) for x in req.feedback]
        with library_errors(), tables.write(name) as table:
            scope = tables.granted(name).where
            if scope is not None:
                _inside(table, scope, items)
            log = table.feedback
            commit = log.add_many(items)
        return FeedbackWritten(table=log.name, version=commit.version, inserted=commit.inserted)

    @r.get(
        "/tables/{name}/feedback",
        response_model=FeedbackList,
        responses=responses("read"),
        dependencies=[Depends(requires("read"))],
        tags=["feedback"],
    )
    def list_feedback(
        name: NamePath,
        limit: Annotated[int, QueryParam(ge=0, le=10_000, description="the newest N judgments")] = 100,
    ) -> FeedbackList:
        """The judgments kept for the table (newest `limit`) and how many there are. Needs the read role."""
        with library_errors():
            if tables.granted(name).where is not None:
                raise AccessError("the feedback holds every row scope's queries; a row-scoped key may not list it")
            with tables.reading(name) as view:
                rows = unscoped(view).feedback.to_arrow()
        newest = rows.slice(max(0, rows.num_rows - limit)) if limit else rows.slice(0, 0)
        return FeedbackList(table=name, count=rows.num_rows, feedback=json_rows(newest.drop_columns(["query_vector"])))
