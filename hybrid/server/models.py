"""The request and response bodies of the HTTP API (pydantic), which make its OpenAPI spec.

Requests are strict (no type coercion, unknown fields refused, no NaN or infinities), so a
typo such as ``"limt"`` is a 422 rather than a silently ignored setting. The limits a server
is configured with (rows per request, `limit`, text lengths) are checked by the handlers
and written into the served spec by :func:`apply_limits`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hybrid.server.config import ServerConfig

TABLE_NAME = r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9_-])?$"
"""Letters, digits, ``_``, ``-`` and ``.``; not starting with ``.`` or ``-``, not ending with ``.``."""
FLOAT32_MAX = 3.4028234663852886e38
MAX_VECTOR_DIM = 65_536
INDEX_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$"

TableName = Annotated[str, Field(pattern=TABLE_NAME, description="table name", examples=["docs"])]
ColumnName = Annotated[str, Field(min_length=1, max_length=256, description="column name")]
Row = dict[str, Any]


class Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors -----------------------------------------------------------------------------------


class ErrorDetail(Response):
    type: str = Field(description="error kind, e.g. FilterError, TableNotFoundError, ValidationError")
    message: str = Field(description="what was wrong and what to do")
    details: list[dict[str, Any]] | None = Field(None, description="per-field problems (422 only)")


class ErrorResponse(Response):
    error: ErrorDetail


# -- tables -----------------------------------------------------------------------------------


class EmbeddingBinding(Request):
    """Fill vector column (the key) from a text column with a registered embedder."""

    source: ColumnName = Field(description="the text column to embed")
    embedder: str = Field(min_length=1, max_length=64, description="registered embedder name, e.g. hashing")
    config: dict[str, Any] = Field(default_factory=dict, description="embedder settings, e.g. {'dim': 64}")


class CreateTableRequest(Request):
    name: TableName
    rows: list[Row] = Field(min_length=1, description="the first rows; they define the schema")
    embedding: dict[ColumnName, EmbeddingBinding] | None = Field(
        None, description="{vector_column: binding}: vectors filled from text on every write and query"
    )


class ColumnInfo(Response):
    name: str
    type: str = Field(description="Arrow type, e.g. string, int64, fixed_size_list<item: float>[384]")
    nullable: bool
    vector_dim: int | None = Field(None, description="dimension, for vector columns")


class EmbeddingInfo(Response):
    source: str
    embedder: str
    config: dict[str, Any]


class IndexInfo(Response):
    name: str
    kind: Literal["fts", "vector", "scalar"]
    columns: list[str]
    indexed_rows: int
    dead_rows: int = Field(description="indexed rows deleted since the build")
    unindexed_rows: int = Field(description="rows added since the build (searched exactly)")
    built_version: int
    settings: dict[str, Any] = Field(description="metric, ef_search, analyzer, ...")


class TableInfo(Response):
    name: str
    version: int
    num_rows: int
    columns: list[ColumnInfo]
    embeddings: dict[str, EmbeddingInfo]
    indexes: list[IndexInfo]


class TableList(Response):
    tables: list[str]


class Dropped(Response):
    dropped: str


# -- writes -----------------------------------------------------------------------------------


class AddRowsRequest(Request):
    rows: list[Row] = Field(min_length=1, description="rows to append; bound vector columns are embedded")


class DeleteRequest(Request):
    where: str = Field(min_length=1, description="SQL boolean expression over the columns, e.g. year < 2000")


class CommitInfo(Response):
    table: str
    version: int = Field(description="the version this write created")
    operation: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


# -- search -----------------------------------------------------------------------------------


class RRFFusion(Request):
    method: Literal["rrf"]
    k: float = Field(20.0, ge=0, le=1_000_000)


class LinearFusion(Request):
    method: Literal["linear"]
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the vector branch")
    normalize: Literal["minmax", "zscore"] = "minmax"


class DBSFFusion(Request):
    method: Literal["dbsf"]


Fusion = Annotated[RRFFusion | LinearFusion | DBSFFusion, Field(discriminator="method")]


class RerankSpec(Request):
    name: Literal["mmr", "bi-encoder", "nanoranker"] = Field(
        description="mmr and bi-encoder use the table's bound embedder; the server config enables them"
    )
    column: ColumnName | None = Field(None, description="the text column to rerank on (default: text)")
    mmr_lambda: float = Field(0.5, ge=0, le=1, description="mmr only: 1 = relevance, lower = more diversity")


class HighlightSpec(Request):
    column: ColumnName | None = Field(None, description="the text column to mark (default: the searched one)")
    width: int = Field(200, ge=10, le=10_000, description="characters in the snippet window")
    pre: str = Field("<em>", max_length=64)
    post: str = Field("</em>", max_length=64)


class GroupSpec(Request):
    column: ColumnName | None = Field(None, description="default: the table's declared parent column")
    per_group: int = Field(1, ge=1, le=100, description="rows kept in each group")
    score: Literal["max", "sum", "max_mean", "max_mean_len"] = Field(
        "max",
        description="a group's score: its best row's, the sum, half the best plus half the mean of all its rows,"
        " or the same with each row weighted by its text's length in the mean (max_mean_len)",
    )
    fuse: Literal["groups", "rows"] = Field(
        "rows",
        description="hybrid: fuse the rows and group after, or group each branch and fuse the group lists",
    )


class ExpandSpec(Request):
    neighbours: int = Field(0, ge=0, le=100, description="chunks before and after each hit")
    parent: bool = Field(False, description="the hit's whole document instead")


class SearchRequest(Request):
    query: str | None = Field(None, min_length=1, description="query text (BM25, and embedded if a column is bound)")
    vector: list[Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]] | None = Field(
        None, min_length=1, max_length=MAX_VECTOR_DIM, description="query vector (float32 values)"
    )
    query_type: Literal["auto", "hybrid", "fts", "vector"] = "auto"
    vector_column: ColumnName | None = None
    fts_columns: list[ColumnName] | None = Field(None, min_length=1, max_length=64)
    where: str | None = Field(None, min_length=1, description="SQL filter applied before top-k")
    prefilter: bool = True
    limit: int = Field(10, ge=1)
    offset: int = Field(0, ge=0, le=100_000)
    select: list[ColumnName] | None = Field(None, max_length=1_024, description="columns to return (default: all)")
    include_vectors: bool = Field(False, description="with select absent: also return vector columns")
    fusion: Fusion | None = Field(None, description="how branches combine (default linear, alpha=0.7)")
    weights: Literal["auto", "equal"] | dict[str, Annotated[float, Field(ge=0, le=1e6)]] = "auto"
    rerank: RerankSpec | None = None
    candidates: int | None = Field(None, ge=1, le=10_000, description="results of each branch fused (default 50)")
    ef_search: int | None = Field(None, ge=1, le=4_096)
    group_by: GroupSpec | None = Field(None, description="the best `limit` groups (documents) instead of rows")
    expand: ExpandSpec | None = Field(None, description="each hit's passage in _context (neighbours or parent)")
    highlight: HighlightSpec | None = Field(
        None, description="a snippet with matches marked (_highlight) and their offsets (_highlight_spans)"
    )
    version: int | None = Field(None, ge=1, description="search this version (time travel); default the newest")
    explain: bool = Field(False, description="also return the plan: filter, each branch, fusion, reranker")


class SearchResponse(Response):
    table: str
    version: int = Field(description="the table version searched")
    count: int
    took_ms: float
    results: list[dict[str, Any]] = Field(
        description="rows best first, with _rowid, _score and per-branch _distance/_bm25/_vector_rank/_fts_rank"
    )
    explain: str | None = Field(None, description="the plan, when the request asked for explain")


# -- indexes ----------------------------------------------------------------------------------


class FtsIndexRequest(Request):
    kind: Literal["fts"]
    columns: list[ColumnName] = Field(min_length=1, max_length=64)
    name: str = Field("fts", pattern=INDEX_NAME)
    language: str = Field("en", min_length=2, max_length=8)
    stem: bool = True
    stop_words: bool = True
    lowercase: bool = True
    ascii_folding: bool = True
    tokenizer: Literal["default", "whitespace", "ngram", "jieba", "cjk", "raw"] = "default"
    positions: bool = Field(
        True, description="false: no term positions (about half the index; phrase queries then fail)"
    )
    replace: bool = False


class VectorIndexRequest(Request):
    kind: Literal["vector"]
    column: ColumnName | None = Field(None, description="default: the table's only vector column")
    metric: Literal["cosine", "l2", "dot"] = "cosine"
    m: int = Field(16, ge=2, le=128)
    ef_construction: int = Field(200, ge=1, le=2_000)
    ef_search: int | None = Field(None, ge=1, le=4_096)
    target_recall: float | None = Field(None, gt=0, le=1)
    name: str | None = Field(None, pattern=INDEX_NAME)
    replace: bool = False
    index_type: Literal["hnsw", "hnsw_int8", "ivf_pq", "ivf_rabitq", "auto"] = Field(
        "hnsw", description="hnsw: float vectors in RAM; hnsw_int8 / ivf_pq / ivf_rabitq: compressed, rescored exactly"
    )
    rescore: float | None = Field(None, ge=1, le=64)
    nprobe: int | None = Field(None, ge=1, le=65_536)


class ScalarIndexRequest(Request):
    kind: Literal["scalar"]
    column: ColumnName
    index_type: Literal["auto", "bitmap", "btree", "label_list"] = Field(
        "auto", description="bitmap: few distinct values; btree: ranges; label_list: list columns; auto chooses"
    )
    name: str | None = Field(None, pattern=INDEX_NAME, description="default: scalar:<column>")
    replace: bool = False


IndexRequest = Annotated[FtsIndexRequest | VectorIndexRequest | ScalarIndexRequest, Field(discriminator="kind")]


class Optimized(Response):
    table: str
    version: int = Field(description="the newest version afterwards")
    operations: list[str] = Field(description="what ran: compact, then one create_index per rebuilt index")


class IndexList(Response):
    table: str
    version: int
    indexes: list[IndexInfo]


# -- versions and health ----------------------------------------------------------------------


class VersionEntry(Response):
    version: int
    timestamp: dt.datetime
    operation: str
    num_rows: int
    details: dict[str, Any]


class VersionList(Response):
    table: str
    versions: list[VersionEntry] = Field(description="oldest first")


class Health(Response):
    status: Literal["ok"]
    version: str


class Ready(Response):
    status: Literal["ready", "starting", "stopping", "unavailable"] = Field(
        description="ready: serving; starting / stopping: the worker is not (yet, or any more) taking requests; "
        "unavailable: the database folder cannot be read"
    )
    version: str


# -- the configured limits in the spec ---------------------------------------------------------


def _string_branches(prop: dict[str, Any]) -> list[dict[str, Any]]:
    options = prop.get("anyOf", [prop])
    return [o for o in options if o.get("type") == "string"]


def apply_limits(spec: dict[str, Any], config: ServerConfig) -> dict[str, Any]:
    """Write `config`'s limits into the OpenAPI document (maxItems, maximum, maxLength)."""
    schemas = spec.get("components", {}).get("schemas", {})
    for name in ("CreateTableRequest", "AddRowsRequest"):
        if name in schemas:
            schemas[name]["properties"]["rows"]["maxItems"] = config.max_rows_per_add
    if "SearchRequest" in schemas:
        props = schemas["SearchRequest"]["properties"]
        props["limit"]["maximum"] = config.max_limit
        for field_name in ("query", "where"):
            for branch in _string_branches(props[field_name]):
                branch["maxLength"] = config.max_query_chars
    if "DeleteRequest" in schemas:
        schemas["DeleteRequest"]["properties"]["where"]["maxLength"] = config.max_query_chars
    if "RerankSpec" in schemas and config.rerankers:
        schemas["RerankSpec"]["properties"]["name"]["enum"] = list(config.rerankers)
    if "EmbeddingBinding" in schemas and config.embedders:
        schemas["EmbeddingBinding"]["properties"]["embedder"]["enum"] = list(config.embedders)
    return spec
