"""The `/v1` endpoints the web page needs beyond search: who the caller is, a page of rows, the
latest saved evaluation report of a table.

====== =============================================== ======= ============================
method path                                            role    what
====== =============================================== ======= ============================
GET    /v1/whoami                                      read    the key's role and the server's page features
GET    /v1/tables/{name}/rows                          read    a page of rows (offset, limit, version)
GET    /v1/tables/{name}/eval                          read    the latest saved ``hybrid eval`` report
GET    /v1/tables/{name}/eval/{plot}                   read    one of that report's PNG plots
GET    /v1/tables/{name}/tune                          read    what ``tune`` runs learned, and what is enabled
====== =============================================== ======= ============================

An evaluation report belongs to a table when ``hybrid eval --out`` wrote it under
``<database>/.eval/<table>/<run>/``; the newest ``report.json`` there is the latest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi import Query as QueryParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from hybrid.scoped import unscoped
from hybrid.server.auth import requires
from hybrid.server.config import Role, ServerConfig
from hybrid.server.errors import ApiError, library_errors
from hybrid.server.models import TABLE_NAME, ErrorResponse
from hybrid.server.rows import json_rows, json_value
from hybrid.server.tables import Tables
from hybrid.storage.ingest import is_vector_type

EVAL_FOLDER = ".eval"
"""Reports of a table live in ``<database>/.eval/<table>/<run>/`` (what ``hybrid eval --out`` writes)."""
MAX_PAGE = 200
NamePath = Annotated[str, PathParam(pattern=TABLE_NAME, description="table name")]
PlotPath = Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9_-]{0,63}\.png$", description="plot file, e.g. runs.png")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    c: {"model": ErrorResponse, "description": d}
    for c, d in ((401, "no API key, or an invalid one"), (404, "no such table, version or report"), (422, "bad query"))
}


class Features(BaseModel):
    rerankers: list[str] = Field(description="rerankers a search may ask for")
    chat: str = Field(description="'llm' (streamed from the configured endpoint) or 'extractive'")
    max_limit: int


class WhoAmI(BaseModel):
    role: Role = Field(description="what this key may do: read < write < admin")
    features: Features


class RowPage(BaseModel):
    table: str
    version: int
    offset: int
    total: int = Field(description="live rows in this version")
    rows: list[dict[str, Any]] = Field(description="rows with _rowid; vector columns left out")


class EvalReport(BaseModel):
    table: str
    run: str = Field(description="the report's folder name")
    modified: float = Field(description="when report.json was written (Unix seconds)")
    report: dict[str, Any] = Field(description="report.json")
    markdown: str = Field(description="report.md, as text")
    plots: list[str] = Field(description="PNG plots, fetched from /v1/tables/{name}/eval/{plot}")


class TuneRun(BaseModel):
    run: str
    created: str | None = None
    enabled: bool = Field(description="whether the table searches with what this run learned")
    queries: dict[str, Any] = Field(default_factory=dict, description="training / held-out query counts")
    decisions: list[dict[str, Any]] = Field(default_factory=list, description="the guard's verdict per part")


class TuneStatus(BaseModel):
    table: str
    version: int
    enabled: dict[str, Any] = Field(description="the tuned fusion / reranker searches use; {} = library defaults")
    runs: list[TuneRun] = Field(description="every tune run, oldest first")


def latest_report(db_path: Path, table: str) -> Path | None:
    """The folder of the newest ``report.json`` under ``<db_path>/.eval/<table>/``, or None."""
    root = db_path / EVAL_FOLDER / table
    found = [p for p in root.glob("*/report.json") if p.is_file()] if root.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime).parent if found else None


def router(config: ServerConfig, tables: Tables) -> APIRouter:
    """The endpoints above, over `tables`."""
    r = APIRouter(prefix="/v1")

    @r.get("/whoami", response_model=WhoAmI, responses=_ERRORS, tags=["server"])
    def whoami(role: Annotated[Role, Depends(requires("read"))]) -> WhoAmI:
        """The role of the key sent, and what the page may offer (rerankers, chat mode)."""
        chat = "llm" if config.chat_url else "extractive"
        return WhoAmI(
            role=role,
            features=Features(rerankers=list(config.rerankers), chat=chat, max_limit=config.max_limit),
        )

    @r.get(
        "/tables/{name}/rows",
        response_model=RowPage,
        responses=_ERRORS,
        dependencies=[Depends(requires("read"))],
        tags=["rows"],
    )
    def rows(
        name: NamePath,
        offset: Annotated[int, QueryParam(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, QueryParam(ge=1, le=MAX_PAGE)] = 20,
        version: Annotated[int | None, QueryParam(ge=1, description="default: the newest")] = None,
    ) -> RowPage:
        """A page of live rows in storage order (vector columns left out)."""
        with library_errors(), tables.reading(name) as latest:
            view = latest if version is None else latest.checkout(version)
            columns = [f.name for f in view.schema if not is_vector_type(f.type)]
            total = view.count_rows()
            picked: list[pa.RecordBatch] = []
            skip = offset
            for batch in view.scan(columns, with_rowid=True, batch_size=4096):
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                picked.append(batch.slice(skip, limit - sum(b.num_rows for b in picked)))
                skip = 0
                if sum(b.num_rows for b in picked) >= limit:
                    break
            out = [row for b in picked for row in json_rows(pa.Table.from_batches([b]))]
            return RowPage(table=name, version=view.version, offset=offset, total=total, rows=out)

    @r.get(
        "/tables/{name}/tune",
        response_model=TuneStatus,
        responses=_ERRORS,
        dependencies=[Depends(requires("read"))],
        tags=["feedback"],
    )
    def tune_status(name: NamePath) -> TuneStatus:
        """What ``hybrid tune`` runs learned from the table's feedback, and which one searches use."""
        from hybrid.feedback import state

        with library_errors(), tables.reading(name) as view:
            enabled = state.read_state(unscoped(view))  # settings of the table, no rows
            runs = [
                TuneRun(
                    run=str(r.get("run")),
                    created=r.get("created"),
                    enabled=bool(r.get("enabled")),
                    queries=json_value(r.get("queries") or {}),
                    decisions=json_value(r.get("decisions") or []),
                )
                for r in state.runs(unscoped(view))
            ]
            return TuneStatus(table=name, version=view.version, enabled=json_value(enabled), runs=runs)

    @r.get(
        "/tables/{name}/eval",
        response_model=EvalReport,
        responses=_ERRORS,
        dependencies=[Depends(requires("read"))],
        tags=["tables"],
    )
    def eval_report(name: NamePath) -> EvalReport:
        """The newest report ``hybrid eval --out <database>/.eval/<name>/<run>`` saved for this table."""
        with library_errors(), tables.reading(name):
            pass  # 404 for a missing table
        folder = latest_report(tables.db.path, name)
        if folder is None:
            raise ApiError(
                404,
                "ReportNotFound",
                f"no evaluation report saved for table {name!r}; "
                f"save one with hybrid eval --out <database>/{EVAL_FOLDER}/{name}/<run>",
            )
        md = folder / "report.md"
        return EvalReport(
            table=name,
            run=folder.name,
            modified=(folder / "report.json").stat().st_mtime,
            report=json.loads((folder / "report.json").read_text(encoding="utf-8")),
            markdown=md.read_text(encoding="utf-8") if md.is_file() else "",
            plots=sorted(p.name for p in folder.glob("*.png")),
        )

    @r.get(
        "/tables/{name}/eval/{plot}",
        response_class=FileResponse,
        responses={**_ERRORS, 200: {"content": {"image/png": {}}, "description": "the plot"}},
        dependencies=[Depends(requires("read"))],
        tags=["tables"],
    )
    def eval_plot(name: NamePath, plot: PlotPath) -> FileResponse:
        """A PNG plot of the latest saved report."""
        folder = latest_report(tables.db.path, name)
        path = folder / plot if folder is not None else None
        if path is None or not path.is_file():
            raise ApiError(404, "ReportNotFound", f"the latest report of table {name!r} has no plot {plot!r}")
        return FileResponse(path, media_type="image/png")

    return r
