"""The erasure endpoint: ``POST /v1/tables/{name}/erase`` (admin), :meth:`hybrid.Table.erase` over HTTP.

Erasing removes the matching rows from the newest version **and every retained one**, their
index files, caches and the table's feedback: it cannot be undone, so it needs the admin role on
the table. A key whose grant carries a row scope may not erase at all (403), even rows inside its
scope: a scope bounds what a key sees and changes in the newest version, while an erasure rewrites
history that belongs to every tenant (configuration already refuses a row-scoped admin grant; the
endpoint checks again). A table the key has no grant for answers 404, like a missing one.

Each erasure is recorded in the audit log as an ``erase`` event (the filter with its literals
redacted, rows, versions rewritten, the version that records it, the reason given), besides the
``write`` event of every write; the version log records the redacted filter and ``by``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import Field

from hybrid.erasure import EraseReport, redact
from hybrid.errors import AccessError
from hybrid.server.audit import current_caller
from hybrid.server.auth import requires
from hybrid.server.errors import ApiError, library_errors
from hybrid.server.models import TABLE_NAME, Request, Response
from hybrid.server.tables import Tables

NamePath = Annotated[str, PathParam(pattern=TABLE_NAME, description="table name")]


class EraseRequest(Request):
    """The rows to erase (`where`), or `resume` to finish an erasure a crash interrupted."""

    where: str | None = Field(
        None, min_length=1, max_length=100_000, description="SQL filter of the rows to erase, e.g. user_id = 42"
    )
    resume: bool = Field(False, description="only finish an interrupted erasure (give no where)")
    by: str | None = Field(
        None, min_length=1, max_length=256, description="who asked (kept in the version log); default: the key's name"
    )
    reason: str | None = Field(
        None, max_length=512, description="why, e.g. a request's reference (kept in the audit log only)"
    )
    verify: bool = Field(True, description="scan every file of the table for the erased values afterwards")


class LeakInfo(Response):
    path: str = Field(description="file, relative to the table folder")
    what: str = Field(description="which value (its column and kind of bytes; never the value)")
    offset: int


class VerificationInfo(Response):
    ok: bool = Field(description="no erased value was found in any file")
    files_scanned: int
    bytes_scanned: int
    values_searched: int
    values_not_searched: int = Field(description="erased values too short (or numbers) to tell from chance bytes")
    values_still_retained: int = Field(description="erased values that surviving rows also hold: not searched")
    indexes_checked: int
    leaks: list[LeakInfo]


class Erased(Response):
    table: str
    version: int = Field(description="the version that records the erasure")
    erased_rows: int = Field(description="distinct rows erased, from any retained version")
    live_rows_erased: int = Field(description="of those, rows live in the newest version before")
    versions_rewritten: list[int]
    files_rewritten: int
    indexes_rebuilt: int
    files_removed: int
    bytes_removed: int
    feedback_rows_erased: int = Field(description="judgments on the erased rows erased from <name>__feedback")
    resumed: list[int] = Field(description="versions committed by interrupted erasures finished first")
    seconds: float
    verification: VerificationInfo | None = Field(description="the file scan (null without verify)")


def _erased(name: str, r: EraseReport) -> Erased:
    v = r.verification
    found = None
    if v is not None:
        leaks = [LeakInfo(path=x.path, what=x.what, offset=x.offset) for x in v.leaks]
        found = VerificationInfo(
            ok=v.ok,
            files_scanned=v.files_scanned,
            bytes_scanned=v.bytes_scanned,
            values_searched=v.values_searched,
            values_not_searched=v.values_not_searched,
            values_still_retained=v.values_still_retained,
            indexes_checked=v.indexes_checked,
            leaks=leaks,
        )
    return Erased(
        table=name,
        version=r.version,
        erased_rows=r.erased_rows,
        live_rows_erased=r.live_rows_erased,
        versions_rewritten=list(r.versions_rewritten),
        files_rewritten=r.files_rewritten,
        indexes_rebuilt=r.indexes_rebuilt,
        files_removed=r.files_removed,
        bytes_removed=r.bytes_removed,
        feedback_rows_erased=r.feedback_rows_erased,
        resumed=list(r.resumed),
        seconds=r.seconds,
        verification=found,
    )


def add_routes(
    r: APIRouter,
    tables: Tables,
    responses: dict[int | str, dict[str, Any]],
    check_text: Callable[[str, str | None], None],
) -> None:
    """Add the erasure endpoint to `r` (`responses`: the documented error bodies of a write)."""

    @r.post(
        "/tables/{name}/erase",
        response_model=Erased,
        responses=responses,
        dependencies=[Depends(requires("admin"))],
        tags=["rows"],
    )
    def erase(name: NamePath, req: EraseRequest) -> Erased:
        """Erase the rows matching `where` from the newest version and every retained one (data files,
        indexes, caches, feedback), as a version ``erase``; with `verify`, scan every file of the table for
        the erased values (`verification.ok`). Cannot be undone. Needs the admin role; a row-scoped key
        may not erase."""
        if (req.where is None) == (not req.resume):
            raise ApiError(422, "ValidationError", "give where (the rows to erase) or resume: true, not both")
        check_text("where", req.where)
        caller = current_caller()
        by = req.by or (f"api key {caller.key}" if caller is not None else None)
        with library_errors():
            if tables.granted(name).where is not None:
                tables.audit.denied(name, 403, "a row-scoped key may not erase")
                raise AccessError("a key with a row scope may not erase: erasure rewrites every tenant's history")
            with tables.write(name) as table:
                report = table.erase(req.where, by=by, verify=req.verify and not req.resume)
            predicate = redact(req.where) if req.where is not None else "(resumed)"
            tables.audit.erased(
                name, predicate, report.erased_rows, len(report.versions_rewritten), report.version, req.reason
            )
        return _erased(name, report)
