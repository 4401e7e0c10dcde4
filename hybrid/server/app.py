"""`create_app`: the FastAPI application over one database folder.

Every endpoint is a plain ``def``: FastAPI runs it in its thread pool, so blocking searches
and writes never stall the event loop, and searches run in parallel.

====== =============================================== ======= ============================
method path                                            role    what
====== =============================================== ======= ============================
GET    /v1/health                                      (none)  liveness and version
GET    /v1/ready                                       (none)  readiness: 200, or 503 starting / stopping
GET    /v1/tables                                      read    table names
POST   /v1/tables                                      admin   create from rows (+ embedding)
GET    /v1/tables/{name}                               read    schema, rows, version, indexes
DELETE /v1/tables/{name}                               admin   drop the table
POST   /v1/tables/{name}/rows                          write   append rows
POST   /v1/tables/{name}/rows/delete                   write   delete rows matching a where
POST   /v1/tables/{name}/search                        read    hybrid / fts / vector search
GET    /v1/tables/{name}/indexes                       read    index statistics
POST   /v1/tables/{name}/indexes                       admin   build an fts, vector or scalar index
DELETE /v1/tables/{name}/indexes/{index}               admin   drop an index
POST   /v1/tables/{name}/optimize                      admin   compact, fold new rows into indexes
GET    /v1/tables/{name}/versions                      read    version history
POST   /v1/tables/{name}/feedback                      write   record judgments (``<name>__feedback``)
GET    /v1/tables/{name}/feedback                      read    the judgments kept, and their count
POST   /v1/tables/{name}/erase                         admin   erase rows from every retained version
====== =============================================== ======= ============================

The web page's endpoints (whoami, a page of rows, eval reports, answers) are in
:mod:`hybrid.server.explore` and :mod:`hybrid.server.chat`; the page itself (``/``) in
:mod:`hybrid.server.web`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi import Path as PathParam
from fastapi import Query as QueryParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

import hybrid
from hybrid import budget
from hybrid.commits import Commit
from hybrid.embedders import binding, registry
from hybrid.embedders.base import Embedder
from hybrid.query.fusion import DBSF, RRF, Fusion, Linear
from hybrid.query.limits import Limits, set_limits
from hybrid.query.search import Query
from hybrid.rerankers import BiEncoderReranker, MMRReranker, NanoRankerReranker, Reranker
from hybrid.scoped import ScopedTable, unscoped
from hybrid.server import chat, erase, errors, explore, feedback, web
from hybrid.server.access import current_access
from hybrid.server.admission import CostGates, Lane, arrival, query_terms, search_cost
from hybrid.server.audit import AuditLog
from hybrid.server.auth import KeyRing, requires
from hybrid.server.config import ServerConfig
from hybrid.server.errors import ApiError, library_errors
from hybrid.server.group_commit import GroupCommit
from hybrid.server.lifecycle import Lifecycle
from hybrid.server.limits import BodyLimit, KeyGates
from hybrid.server.models import (
    INDEX_NAME,
    MAX_VECTOR_DIM,
    TABLE_NAME,
    AddRowsRequest,
    ColumnInfo,
    CommitInfo,
    CreateTableRequest,
    DeleteRequest,
    Dropped,
    EmbeddingBinding,
    EmbeddingInfo,
    ErrorResponse,
    FtsIndexRequest,
    Health,
    IndexInfo,
    IndexList,
    IndexRequest,
    Optimized,
    Ready,
    RerankSpec,
    ScalarIndexRequest,
    SearchRequest,
    SearchResponse,
    TableInfo,
    TableList,
    VersionEntry,
    VersionList,
    apply_limits,
)
from hybrid.server.rows import json_rows, json_value
from hybrid.server.tables import Tables
from hybrid.storage.ingest import is_vector_type
from hybrid.table import Table

NamePath = Annotated[str, PathParam(pattern=TABLE_NAME, description="table name")]
IndexPath = Annotated[str, PathParam(pattern=INDEX_NAME, description="index name")]

_DESCRIPTIONS = {
    400: "bad input: a malformed filter, a wrong vector dimension, rows that do not fit the schema, ...",
    401: "no API key, or an invalid one",
    403: "the API key's role does not allow this",
    404: "no such table, index or version",
    409: "the table already exists, or a concurrent write conflicted (retry)",
    413: "the request body (or its number of rows) is over the server's limit",
    422: "the request does not match the schema, or passes a configured limit",
    429: "the key has too many requests, or too much estimated search cost, in progress (see Retry-After)",
    503: "the search ran past the server's request_seconds and was stopped (TimeBudgetError; see Retry-After)",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    every = (400, 413, *codes)  # any request can have a bad Content-Length or an oversized body
    return {c: {"model": ErrorResponse, "description": _DESCRIPTIONS[c]} for c in sorted(set(every))}


_READ = _errors(401, 403, 404, 422)
_WRITE = _errors(401, 403, 404, 409, 422)


def _commit(name: str, c: Commit) -> CommitInfo:
    return CommitInfo(
        table=name, version=c.version, operation=c.operation, inserted=c.inserted, updated=c.updated, deleted=c.deleted
    )


def _index_info(stats: Mapping[str, Any]) -> IndexInfo:
    fixed = ("name", "kind", "columns", "indexed_rows", "dead_rows", "unindexed_rows", "built_version")
    settings = {k: json_value(v) for k, v in stats.items() if k not in fixed and k not in ("live_indexed_rows",)}
    settings.pop("table_version", None)
    return IndexInfo(**{k: stats[k] for k in fixed}, settings=settings)


def _table_info(view: Table | ScopedTable) -> TableInfo:
    columns = [
        ColumnInfo(
            name=f.name,
            type=str(f.type),
            nullable=f.nullable,
            vector_dim=f.type.list_size if is_vector_type(f.type) else None,
        )
        for f in view.schema
    ]
    bindings = binding.read(unscoped(view).snapshot().manifest.metadata)  # names and settings; loads no model
    embeddings = {
        b.column: EmbeddingInfo(source=b.source, embedder=b.embedder_name, config=b.to_json()["config"])
        for b in bindings
    }
    row_scoped = isinstance(view, ScopedTable) and view.where is not None  # index counts cover every row
    indexes = [] if row_scoped else [_index_info(s) for s in view.index_stats()]
    return TableInfo(
        name=view.name,
        version=view.version,
        num_rows=view.count_rows(),
        columns=columns,
        embeddings=embeddings,
        indexes=indexes,
    )


def _vector_index_name(table: Table, column: str | None, name: str | None) -> str | None:
    """The name a vector index will get (the library's default is ``vector:<column>``)."""
    if name is not None:
        return name
    if column is None:
        vectors = [f.name for f in table.schema if is_vector_type(f.type)]
        column = vectors[0] if len(vectors) == 1 else None
    return None if column is None else f"vector:{column}"


class _Api:
    """The handlers, closed over one configuration and one set of open tables."""

    def __init__(self, config: ServerConfig, tables: Tables, lifecycle: Lifecycle) -> None:
        self.config = config
        self.tables = tables
        self.lifecycle = lifecycle
        self.costs = CostGates(config.max_cost_per_key)
        self.lane = Lane(2, config.low_priority_nice) if config.low_priority_nice else None

    # -- limits -----------------------------------------------------------------------------

    def check_rows(self, rows: list[dict[str, Any]]) -> None:
        if len(rows) > self.config.max_rows_per_add:
            raise ApiError(
                422,
                "TooManyRows",
                f"{len(rows)} rows in one request; this server takes at most {self.config.max_rows_per_add}",
            )

    def check_text(self, what: str, text: str | None) -> None:
        if text is not None and len(text) > self.config.max_query_chars:
            raise ApiError(
                422,
                "ValidationError",
                f"{what} is {len(text)} characters; this server takes at most {self.config.max_query_chars}",
            )

    # -- building library objects from requests -----------------------------------------------

    def embedder(self, column: str, spec: EmbeddingBinding) -> Embedder:
        if spec.embedder not in self.config.embedders:
            raise ApiError(
                400,
                "EmbedderNotEnabled",
                f"embedding[{column!r}]: embedder {spec.embedder!r} is not enabled on this server; "
                f"enabled: {list(self.config.embedders)}",
            )
        with library_errors():
            embedder = registry.create(spec.embedder, **spec.config)
            dim = embedder.dim
        if not 0 < dim <= MAX_VECTOR_DIM:
            raise ApiError(400, "InvalidInput", f"embedding[{column!r}]: {dim}-d vectors; at most {MAX_VECTOR_DIM}")
        return embedder

    def reranker(self, spec: RerankSpec, view: Table | ScopedTable, vector_column: str | None) -> Reranker:
        if spec.name not in self.config.rerankers:
            raise ApiError(
                400,
                "RerankerNotEnabled",
                f"reranker {spec.name!r} is not enabled on this server; enabled: {list(self.config.rerankers)}",
            )
        if spec.name == "nanoranker":
            return NanoRankerReranker(column=spec.column)
        bound = {b.column: b for b in binding.read(unscoped(view).snapshot().manifest.metadata)}
        if vector_column is not None and vector_column in bound:
            chosen = bound[vector_column]
        elif len(bound) == 1:
            chosen = next(iter(bound.values()))
        else:
            found = "no embedder is bound to this table" if not bound else f"several are bound: {sorted(bound)}"
            raise ApiError(400, "RerankerUnavailable", f"reranker {spec.name!r} uses the table's embedder, but {found}")
        if spec.name == "mmr":
            return MMRReranker(
                chosen.embedder, lambda_=spec.mmr_lambda, vector_column=chosen.column, column=spec.column
            )
        return BiEncoderReranker(chosen.embedder, column=spec.column)

    def query(self, view: Table | ScopedTable, req: SearchRequest) -> Query:
        fts_columns = tuple(req.fts_columns) if req.fts_columns is not None else None
        q = view.search(query_type=req.query_type, vector_column=req.vector_column, fts_columns=fts_columns)
        if req.query is not None:
            q = q.text(req.query)
        if req.vector is not None:
            q = q.vector(req.vector, req.vector_column)
        if req.where is not None:
            q = q.where(req.where, prefilter=req.prefilter)
        q = q.limit(req.limit).offset(req.offset)
        if req.select is not None:
            q = q.select(req.select)
        elif req.include_vectors:
            q = q.select(view.schema.names)  # a scope without vectors refuses this (403)
        else:
            q = q.select([f.name for f in view.schema if not is_vector_type(f.type)])
        if req.fusion is not None:
            fusion: Fusion
            if req.fusion.method == "rrf":
                fusion = RRF(k=req.fusion.k)
            elif req.fusion.method == "linear":
                fusion = Linear(alpha=req.fusion.alpha, normalize=req.fusion.normalize)
            else:
                fusion = DBSF()
            q = q.fuse(fusion)
        q = q.weights(req.weights)
        if req.candidates is not None:
            q = q.candidates(req.candidates)
        if req.ef_search is not None:
            q = q.ef_search(req.ef_search)
        if req.rerank is not None:
            q = q.rerank(self.reranker(req.rerank, view, req.vector_column))
        if req.group_by is not None:
            g = req.group_by
            q = q.group_by(g.column, per_group=g.per_group, score=g.score, fuse=g.fuse)
        if req.expand is not None:
            q = q.expand(neighbours=req.expand.neighbours, parent=req.expand.parent)
        if req.highlight is not None:
            h = req.highlight
            q = q.highlight(h.column, width=h.width, pre=h.pre, post=h.post)
        return q

    def run_search(self, name: str, req: SearchRequest, started: float) -> Response:
        """The search itself (on a worker thread), within the request's time budget."""
        start = time.perf_counter()
        tables = self.tables
        with library_errors(), budget.time_budget(self.config.request_seconds, started):
            with tables.reading(name) as latest:
                view = latest if req.version is None else latest.checkout(req.version)
                q = self.query(view, req)
                rows = json_rows(q.to_arrow())
                plan = q.explain() if req.explain else None
            budget.check("writing the response")
        if current_access().scoped:
            tables.audit.read(name, len(rows), view.version)
        took = (time.perf_counter() - start) * 1e3
        answer = SearchResponse(
            table=name, version=view.version, count=len(rows), took_ms=took, results=rows, explain=plan
        )
        return Response(answer.model_dump_json(), media_type="application/json")  # serialized off the event loop

    # -- endpoints ------------------------------------------------------------------------------

    def router(self) -> APIRouter:
        r = APIRouter(prefix="/v1")
        tables = self.tables

        @r.get("/health", response_model=Health, responses=_errors(), tags=["server"])
        def health() -> Health:
            """Liveness; needs no key."""
            return Health(status="ok", version=hybrid.__version__)

        @r.get(
            "/ready",
            response_model=Ready,
            responses={**_errors(), 503: {"model": Ready, "description": "starting, stopping or unavailable"}},
            tags=["server"],
        )
        def ready(response: Response) -> Ready:
            """Readiness: 200 while this worker takes requests and can read the database folder, 503 while it
            starts, stops or cannot read the folder. Needs no key."""
            status = self.lifecycle.status()
            if status != "ready":
                response.status_code = 503
            return Ready(status=status, version=hybrid.__version__)

        @r.get(
            "/tables",
            response_model=TableList,
            responses=_errors(401, 403),
            dependencies=[Depends(requires("read"))],
            tags=["tables"],
        )
        def list_tables() -> TableList:
            """The names of the tables."""
            return TableList(tables=tables.names())

        @r.post(
            "/tables",
            status_code=201,
            response_model=TableInfo,
            responses=_errors(401, 403, 409, 422),
            dependencies=[Depends(requires("admin"))],
            tags=["tables"],
        )
        def create_table(req: CreateTableRequest) -> TableInfo:
            """Create a table from rows; float lists become vector columns. Needs the admin role."""
            self.check_rows(req.rows)
            embedding = None
            if req.embedding:
                embedding = {col: (spec.source, self.embedder(col, spec)) for col, spec in req.embedding.items()}
            with library_errors():
                return _table_info(tables.create(req.name, req.rows, embedding))

        @r.get(
            "/tables/{name}",
            response_model=TableInfo,
            responses=_READ,
            dependencies=[Depends(requires("read"))],
            tags=["tables"],
        )
        def table_info(name: NamePath) -> TableInfo:
            """Schema, row count, version, embedding bindings and indexes."""
            with library_errors(), tables.reading(name) as view:
                return _table_info(view)

        @r.delete(
            "/tables/{name}",
            response_model=Dropped,
            responses=_READ,
            dependencies=[Depends(requires("admin"))],
            tags=["tables"],
        )
        def drop_table(name: NamePath) -> Dropped:
            """Delete the table, its history and indexes. Needs the admin role."""
            with library_errors():
                tables.drop(name)
            return Dropped(dropped=name)

        @r.post(
            "/tables/{name}/rows",
            response_model=CommitInfo,
            responses=_WRITE,
            dependencies=[Depends(requires("write"))],
            tags=["rows"],
        )
        async def add_rows(name: NamePath, req: AddRowsRequest) -> CommitInfo:
            """Append rows (bound vector columns are embedded). Needs the write role.

            Appends that arrive while another commits are committed with it as one version (the answer
            comes once the rows are durable; `version` may be shared, `inserted` is this request's)."""
            self.check_rows(req.rows)
            with library_errors():
                if self.config.group_commit:
                    return _commit(name, await tables.append(name, req.rows))
                return _commit(name, await anyio.to_thread.run_sync(lambda: _add_alone(name, req.rows)))

        def _add_alone(name: str, rows: list[dict[str, Any]]) -> Commit:
            with tables.write(name) as table:
                return tables.scoped(table).add(rows)

        @r.post(
            "/tables/{name}/rows/delete",
            response_model=CommitInfo,
            responses=_WRITE,
            dependencies=[Depends(requires("write"))],
            tags=["rows"],
        )
        def delete_rows(name: NamePath, req: DeleteRequest) -> CommitInfo:
            """Delete the rows matching a SQL boolean expression. Needs the write role."""
            self.check_text("where", req.where)
            with library_errors(), tables.write(name) as table:
                return _commit(name, tables.scoped(table).delete(req.where))

        @r.post(
            "/tables/{name}/search",
            response_model=SearchResponse,
            responses=_errors(401, 403, 404, 422, 429, 503),
            dependencies=[Depends(requires("read"))],
            tags=["search"],
        )
        async def search(name: NamePath, req: SearchRequest) -> Response:
            """Search with text and/or a vector, a SQL filter, fusion and an optional reranker.

            Admitted by estimated cost per key (429), run within the server's `request_seconds` from the
            request's arrival (503 with Retry-After past it); expensive searches run at low priority.
            """
            if req.limit > self.config.max_limit:
                raise ApiError(
                    422, "ValidationError", f"limit {req.limit} is over this server's max_limit {self.config.max_limit}"
                )
            self.check_text("query", req.query)
            self.check_text("where", req.where)
            terms = query_terms(req.query)
            if terms > self.config.max_query_terms:
                raise ApiError(
                    422,
                    "ValidationError",
                    f"query has {terms} terms; this server takes at most {self.config.max_query_terms}",
                )
            cost = search_cost(req)
            started = arrival()
            with self.costs.admit(current_access().key, cost):
                work = budget.carry(lambda: self.run_search(name, req, started))
                # the whole request, queue wait included, answers within its budget: past it the client gets
                # 503 at once, and an abandoned search stops itself at its next stage check
                wait = self.config.request_seconds - (time.monotonic() - started)
                try:
                    if self.lane is not None and cost > self.config.low_priority_cost:
                        return await self.lane.run(work, wait)
                    with anyio.fail_after(max(wait, 0.0)):
                        return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
                except (TimeoutError, asyncio.TimeoutError):  # the same class from Python 3.11 on
                    raise errors.time_budget_error(self.config.request_seconds, "the search") from None

        @r.get(
            "/tables/{name}/indexes",
            response_model=IndexList,
            responses=_READ,
            dependencies=[Depends(requires("read"))],
            tags=["indexes"],
        )
        def list_indexes(name: NamePath) -> IndexList:
            """Per index: rows indexed, deleted and added since the build, and its settings."""
            with library_errors(), tables.reading(name) as view:
                return IndexList(table=name, version=view.version, indexes=[_index_info(s) for s in view.index_stats()])

        @r.post(
            "/tables/{name}/indexes",
            status_code=201,
            response_model=CommitInfo,
            responses=_WRITE,
            dependencies=[Depends(requires("admin"))],
            tags=["indexes"],
        )
        def create_index(name: NamePath, req: IndexRequest) -> CommitInfo:
            """Build a BM25 (kind fts), HNSW (kind vector) or scalar (kind scalar: filters on a column
            skip DuckDB) index. Needs the admin role."""
            with library_errors(), tables.write(name) as table:
                if isinstance(req, FtsIndexRequest):
                    wanted: str | None = req.name
                elif isinstance(req, ScalarIndexRequest):
                    wanted = req.name or f"scalar:{req.column}"
                else:
                    wanted = _vector_index_name(table, req.column, req.name)
                if wanted is not None and not req.replace and any(s["name"] == wanted for s in table.index_stats()):
                    raise ApiError(409, "IndexExists", f"index {wanted!r} exists; pass replace: true to rebuild it")
                if isinstance(req, FtsIndexRequest):
                    commit = table.create_fts_index(
                        req.columns,
                        language=req.language,
                        stem=req.stem,
                        stop_words=req.stop_words,
                        lowercase=req.lowercase,
                        ascii_folding=req.ascii_folding,
                        tokenizer=req.tokenizer,
                        positions=req.positions,
                        name=req.name,
                        replace=req.replace,
                    )
                elif isinstance(req, ScalarIndexRequest):
                    commit = table.create_scalar_index(
                        req.column, kind=req.index_type, name=req.name, replace=req.replace
                    )
                else:
                    commit = table.create_vector_index(
                        req.column,
                        metric=req.metric,
                        m=req.m,
                        ef_construction=req.ef_construction,
                        ef_search=req.ef_search,
                        target_recall=req.target_recall,
                        name=req.name,
                        replace=req.replace,
                        kind=req.index_type,
                        rescore=req.rescore,
                        nprobe=req.nprobe,
                    )
                return _commit(name, commit)

        @r.post(
            "/tables/{name}/optimize",
            response_model=Optimized,
            responses=_WRITE,
            dependencies=[Depends(requires("admin"))],
            tags=["indexes"],
        )
        def optimize(name: NamePath) -> Optimized:
            """Merge small fragments, then rebuild every index that misses added or deleted rows.

            Rows added since an index was built are searched exactly (correct, but slower as
            they accumulate); this folds them in. Needs the admin role.
            """
            with library_errors(), tables.write(name) as table:
                before = table.version
                operations = ["compact"] if table.compact().version != before else []
                operations += [c.operation for c in table.optimize()]
                return Optimized(table=name, version=table.version, operations=operations)

        @r.delete(
            "/tables/{name}/indexes/{index}",
            response_model=CommitInfo,
            responses=_WRITE,
            dependencies=[Depends(requires("admin"))],
            tags=["indexes"],
        )
        def drop_index(name: NamePath, index: IndexPath) -> CommitInfo:
            """Drop an index (its files go at the next cleanup). Needs the admin role."""
            with library_errors(), tables.write(name) as table:
                if not any(s["name"] == index for s in table.index_stats()):
                    raise ApiError(404, "IndexNotFound", f"table {name!r} has no index named {index!r}")
                return _commit(name, table.drop_index(index))

        @r.get(
            "/tables/{name}/versions",
            response_model=VersionList,
            responses=_READ,
            dependencies=[Depends(requires("read"))],
            tags=["versions"],
        )
        def versions(
            name: NamePath,
            limit: Annotated[int | None, QueryParam(ge=1, le=100_000, description="only the newest N")] = None,
        ) -> VersionList:
            """The retained versions, oldest first."""
            with library_errors(), tables.reading(name) as view:
                found = view.versions()
            if limit is not None:
                found = found[-limit:]
            entries = [
                VersionEntry(
                    version=v.version,
                    timestamp=v.timestamp,
                    operation=v.operation,
                    num_rows=v.num_rows,
                    details={k: json_value(x) for k, x in v.details.items()},
                )
                for v in found
            ]
            return VersionList(table=name, versions=entries)

        feedback.add_routes(r, tables, lambda role: _WRITE if role == "write" else _READ)
        erase.add_routes(r, tables, _WRITE, self.check_text)
        return r


def create_app(db_path: str | Path, config: ServerConfig | None = None) -> FastAPI:
    """The HTTP API over the database folder `db_path` (created if missing), or an object-store URI.

    Example:
        >>> import tempfile
        >>> from hybrid.server import ServerConfig, create_app
        >>> app = create_app(tempfile.mkdtemp(), ServerConfig(anonymous_role="read"))
        >>> sorted(p for p in app.openapi()["paths"] if "indexes" in p)
        ['/v1/tables/{name}/indexes', '/v1/tables/{name}/indexes/{index}']
    """
    config = config or ServerConfig()
    set_limits(Limits(memory=config.sql_memory, seconds=config.sql_seconds))
    tables = Tables(db_path)
    tables.audit = _audit_log(tables.db.path, config)  # a remote database's log stays on this machine
    tables.group = GroupCommit(
        tables.commit_appends,
        window_s=config.group_commit_ms / 1e3,
        max_requests=config.group_commit_requests,
        max_rows=config.max_rows_per_add,
    )
    lifecycle = Lifecycle(tables.db.path, config.threads)
    app = FastAPI(
        title="hybrid",
        version=hybrid.__version__,
        description="Hybrid (BM25 + vector) search over versioned tables. Send `Authorization: Bearer <key>`.",
        lifespan=lifecycle.lifespan,
    )
    app.state.config = config
    app.state.keyring = KeyRing(config.api_keys, config.anonymous_role)
    app.state.key_gates = KeyGates(config.max_requests_per_key)
    app.state.tables = tables
    app.state.lifecycle = lifecycle
    router = _Api(config, tables, lifecycle).router()
    app.include_router(router)
    page_api = [explore.router(config, tables), chat.router(config, tables)]  # what the web page needs
    for extra in page_api:
        app.include_router(extra)
    errors.install(app, [*router.routes, *(r for extra in page_api for r in extra.routes)])
    web.install(app)
    if config.cors_origins:  # off by default: only the server's own page may call the API from a browser
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes, max_seconds=config.body_seconds)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = apply_limits(spec, config)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _audit_log(db_path: Path, config: ServerConfig) -> AuditLog:
    if not config.audit_log:
        return AuditLog()  # off
    path = Path(config.audit_log)
    return AuditLog(path if path.is_absolute() else db_path / path, config.audit_max_bytes, config.audit_backups)
