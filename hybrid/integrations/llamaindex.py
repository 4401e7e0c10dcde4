"""LlamaIndex adapters: `HybridVectorStore` (a vector store on a hybrid table) and `HybridEmbedding`.

Install with ``pip install 'hybridsearch[llamaindex]'``.

How a node is stored (one row per node, upserted by node id)::

    id            string   the node id
    text          string   the node's text (BM25 index "text" over it)
    ref_doc_id    string   the source document's id (``delete(ref_doc_id)``)
    metadata      string   JSON object: the node's metadata (+ doc_id / document_id / ref_doc_id)
    node_content  string   the serialized node without text (``node_to_metadata_dict``)
    node_type     string   the node class, so the right class is rebuilt
    embedding     fixed_size_list<float32>[dim]

Metadata is kept as one JSON string column rather than one column per key: nodes
bring any keys, of any type, and a table's schema is fixed at creation. Filters
become DuckDB SQL over that column (see :func:`filters_to_sql`): every value is
compared with its JSON type checked (``json_type``), strings as strings
(``json_extract_string``) and numbers as DOUBLE, so ``5`` never equals ``"5"``,
``2`` equals ``2.0``, and a missing key or JSON null matches only ``!=``, ``nin``
and ``is_empty``.

Query modes: ``DEFAULT`` searches the embedding (similarity = 1 - cosine
distance), ``TEXT_SEARCH`` (and ``SPARSE``) BM25 over the text, ``HYBRID`` both,
fused by hybrid's default (Linear, alpha = 0.7, calibrated branch weights). A query ``alpha`` (LlamaIndex: 0 = BM25
only, 1 = vector only) selects ``Linear(alpha=alpha)`` fusion instead: min-max
normalised vector scores weighted by `alpha` plus BM25 scores weighted by
``1 - alpha``, with equal branch weights.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from hybrid.aio import run_sync
from hybrid.db import Database
from hybrid.errors import (
    FeedbackError,
    FilterError,
    HybridError,
    MissingDependencyError,
    SchemaError,
    TableExistsError,
)

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("llama-index-core is not installed: pip install 'hybridsearch[llamaindex]'") from exc

if TYPE_CHECKING:
    from hybrid.embedders.base import Embedder
    from hybrid.query.search import Query
    from hybrid.table import Table

__all__ = ["HybridEmbedding", "HybridVectorStore", "filters_to_sql"]

logger = logging.getLogger(__name__)

ID, TEXT, REF_DOC_ID, METADATA, NODE_CONTENT, NODE_TYPE, EMBEDDING = (
    "id",
    "text",
    "ref_doc_id",
    "metadata",
    "node_content",
    "node_type",
    "embedding",
)
FTS_INDEX = "text"
"""The name of the BM25 index the store builds over the text column."""
_ROW_COLUMNS = [ID, TEXT, REF_DOC_ID, METADATA, NODE_CONTENT, NODE_TYPE]


def schema_for(dim: int) -> pa.Schema:
    """The table schema of a store whose embeddings have `dim` dimensions."""
    return pa.schema(
        [
            pa.field(ID, pa.string(), nullable=False),
            pa.field(TEXT, pa.string()),
            pa.field(REF_DOC_ID, pa.string()),
            pa.field(METADATA, pa.string()),
            pa.field(NODE_CONTENT, pa.string()),
            pa.field(NODE_TYPE, pa.string()),
            pa.field(EMBEDDING, pa.list_(pa.float32(), dim)),
        ]
    )


# -- metadata filters -> SQL ------------------------------------------------------------------

_NUMERIC_TYPES = ("BIGINT", "UBIGINT", "DOUBLE")
_BAD_KEY = re.compile(r'["\\\x00-\x1f\x7f]')
_COMPARISONS = {
    FilterOperator.EQ: "=",
    FilterOperator.GT: ">",
    FilterOperator.GTE: ">=",
    FilterOperator.LT: "<",
    FilterOperator.LTE: "<=",
}


def sql_string(value: str) -> str:
    """`value` as a SQL string literal (quotes doubled; NUL refused)."""
    if "\x00" in value:
        raise FilterError("a filter value may not contain a NUL character")
    return "'" + value.replace("'", "''") + "'"


def _sql_number(value: float) -> str:
    if not math.isfinite(value):
        raise FilterError(f"a numeric filter value must be finite, got {value!r}")
    return repr(float(value))


def _json_path(key: object, suffix: str = "") -> str:
    """The JSON path of a top-level metadata key, as a SQL literal; the key is validated."""
    if not isinstance(key, str) or not key or _BAD_KEY.search(key):
        raise FilterError(
            f"invalid metadata filter key {key!r}: use a non-empty string without double quotes, "
            "backslashes or control characters"
        )
    return sql_string(f'$."{key}"{suffix}')


def _scalar(value: object, op: FilterOperator) -> str | float:
    """A filter value that can be compared: a string or a finite number (bool and None refused)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise FilterError(f"filter operator {op.value!r} needs a string or a number, got {type(value).__name__} {value!r}")


def _values(value: object, op: FilterOperator) -> list[str | float]:
    if not isinstance(value, (list, tuple)):
        raise FilterError(f"filter operator {op.value!r} needs a list of values, got {value!r}")
    return [_scalar(v, op) for v in value]


def _compare(key: str, sql_op: str, value: str | float) -> str:
    """`metadata[key] <sql_op> value`, true only when the JSON value has the value's type."""
    path = _json_path(key)
    if isinstance(value, str):
        return (
            f"(json_type({METADATA}, {path}) = 'VARCHAR' AND json_extract_string({METADATA}, {path}) "
            f"{sql_op} {sql_string(value)})"
        )
    types = ", ".join(sql_string(t) for t in _NUMERIC_TYPES)
    return (
        f"(json_type({METADATA}, {path}) IN ({types}) AND "
        f"TRY_CAST(json_extract_string({METADATA}, {path}) AS DOUBLE) {sql_op} {_sql_number(value)})"
    )


def _array_contains(key: str, value: str | float) -> str:
    """The JSON array `metadata[key]` holds an element equal to `value` (of the same type)."""
    path = _json_path(key, "[*]")
    types = f"json_type({METADATA}, {path})"
    if isinstance(value, str):
        pairs = f"list_zip({types}, json_extract_string({METADATA}, {path}))"
        return f"list_contains({pairs}, ('VARCHAR', {sql_string(value)}))"
    pairs = f"list_zip({types}, TRY_CAST(json_extract_string({METADATA}, {path}) AS DOUBLE[]))"
    number = _sql_number(value)
    wanted = ", ".join(f"({sql_string(t)}, {number})" for t in _NUMERIC_TYPES)
    return f"list_has_any({pairs}, [{wanted}])"


def _any_of(parts: list[str]) -> str:
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


def _leaf_sql(f: MetadataFilter) -> str:
    op = f.operator
    key = f.key
    if op in _COMPARISONS:
        sql = _compare(key, _COMPARISONS[op], _scalar(f.value, op))
    elif op == FilterOperator.NE:
        return f"(NOT COALESCE({_compare(key, '=', _scalar(f.value, op))}, FALSE))"
    elif op == FilterOperator.IN:
        sql = _any_of([_compare(key, "=", v) for v in _values(f.value, op)])
    elif op == FilterOperator.NIN:
        return f"(NOT COALESCE({_any_of([_compare(key, '=', v) for v in _values(f.value, op)])}, FALSE))"
    elif op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        if not isinstance(f.value, str):
            raise FilterError(f"filter operator {op.value!r} needs a string, got {f.value!r}")
        path = _json_path(key)
        text, needle = f"json_extract_string({METADATA}, {path})", sql_string(f.value)
        if op == FilterOperator.TEXT_MATCH_INSENSITIVE:
            text, needle = f"lower({text})", f"lower({needle})"
        sql = f"(json_type({METADATA}, {path}) = 'VARCHAR' AND contains({text}, {needle}))"
    elif op == FilterOperator.CONTAINS:
        sql = _array_contains(key, _scalar(f.value, op))
    elif op == FilterOperator.ANY:
        sql = _any_of([_array_contains(key, v) for v in _values(f.value, op)])
    elif op == FilterOperator.ALL:
        path = _json_path(key)
        parts = [f"json_type({METADATA}, {path}) = 'ARRAY'"] + [_array_contains(key, v) for v in _values(f.value, op)]
        sql = "(" + " AND ".join(parts) + ")"
    elif op == FilterOperator.IS_EMPTY:
        path = _json_path(key)
        kind = f"json_type({METADATA}, {path})"
        sql = (
            f"({kind} IS NULL OR {kind} = 'NULL' "
            f"OR ({kind} = 'VARCHAR' AND json_extract_string({METADATA}, {path}) = '') "
            f"OR ({kind} = 'ARRAY' AND json_array_length({METADATA}, {path}) = 0))"
        )
    else:
        raise FilterError(f"metadata filter operator {op!r} is not supported by HybridVectorStore")
    return f"COALESCE({sql}, FALSE)"


def filters_to_sql(filters: MetadataFilters | MetadataFilter) -> str:
    """Translate LlamaIndex metadata filters into a hybrid ``where`` over the JSON ``metadata`` column.

    Each leaf is TRUE or FALSE, never NULL, so ``NOT`` and ``!=`` keep their meaning
    for rows without the key. ``condition`` is AND (the default), OR, or NOT (none
    of the filters match); filters nest. Raises FilterError (a ValueError) for an
    operator, key or value it cannot translate: a filter is never dropped.

    Example:
        >>> from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
        >>> sql = filters_to_sql(MetadataFilters(filters=[MetadataFilter(key="author", value="O'Hara")]))
        >>> "'O''Hara'" in sql
        True
    """
    if isinstance(filters, MetadataFilter):
        return _leaf_sql(filters)
    if not isinstance(filters, MetadataFilters):
        raise FilterError(f"filters must be MetadataFilters or MetadataFilter, got {type(filters).__name__}")
    parts = [filters_to_sql(f) for f in filters.filters]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return "(" + " AND ".join(parts) + ")" if parts else "TRUE"
    if condition == FilterCondition.OR:
        return _any_of(parts)
    if condition == FilterCondition.NOT:
        return f"(NOT {_any_of(parts)})"
    raise FilterError(f"metadata filter condition {condition!r} is not supported by HybridVectorStore")


def _in_list(column: str, values: Sequence[str]) -> str:
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise FilterError(f"{column} values must be a list of strings, got {values!r}")
    return f"{column} IN ({', '.join(sql_string(v) for v in values)})" if values else "FALSE"


def _where(
    filters: MetadataFilters | None, node_ids: Sequence[str] | None = None, doc_ids: Sequence[str] | None = None
) -> str | None:
    parts = []
    if filters is not None and filters.filters:
        parts.append(filters_to_sql(filters))
    if node_ids is not None:
        parts.append(_in_list(ID, node_ids))
    if doc_ids is not None:
        parts.append(_in_list(REF_DOC_ID, doc_ids))
    return " AND ".join(parts) if parts else None


# -- the vector store ---------------------------------------------------------------------------


class HybridVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store on a hybrid table: vector, BM25 and hybrid queries, SQL-backed filters.

    Give it a ``hybrid.Table`` made by this store, or `uri` (a database folder) and
    `table_name`: the table is opened if it exists, else created on the first
    :meth:`add` with the nodes' embedding dimension, together with a BM25 index
    named ``"text"`` on the text. Rows not in that index yet are searched at once;
    when they outnumber the indexed rows, ``add`` runs ``table.optimize()`` (set
    ``auto_optimize=False`` to leave that to you). Vectors are searched exactly
    until you build an HNSW index (``store.table.create_vector_index("embedding")``).

    Example:
        >>> import tempfile
        >>> from llama_index.core.schema import TextNode
        >>> from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
        >>> store = HybridVectorStore(uri=tempfile.mkdtemp(), table_name="nodes")
        >>> store.add([TextNode(id_="a", text="rotate keys monthly", embedding=[1.0, 0.0]),
        ...            TextNode(id_="b", text="water the plants", embedding=[0.0, 1.0])])
        ['a', 'b']
        >>> store.query(VectorStoreQuery(query_str="keys", mode=VectorStoreQueryMode.TEXT_SEARCH)).ids
        ['a']
        >>> store.query(VectorStoreQuery(query_embedding=[0.1, 0.9], similarity_top_k=1)).ids
        ['b']
    """

    stores_text: bool = True
    flat_metadata: bool = False
    uri: str | None = None
    table_name: str = "llamaindex"
    auto_optimize: bool = True

    _db: Database | None = PrivateAttr(default=None)
    _table: Table | None = PrivateAttr(default=None)

    def __init__(
        self,
        table: Table | None = None,
        *,
        uri: str | Path | None = None,
        table_name: str = "llamaindex",
        auto_optimize: bool = True,
        **kwargs: Any,
    ) -> None:
        if table is None and uri is None:
            raise ValueError("HybridVectorStore needs a hybrid.Table, or uri= (a database folder) and table_name=")
        if table is not None and uri is not None:
            raise ValueError("give HybridVectorStore either a table or uri=, not both")
        if table is not None:
            uri, table_name = table.path.parent, table.name
        super().__init__(**kwargs)
        self.uri, self.table_name, self.auto_optimize = str(uri), table_name, auto_optimize
        if table is not None:
            _check_schema(table)
            self._table = table
        else:
            self._db = Database(str(uri))
            if self.table_name in self._db:
                self._table = self._db.open_table(self.table_name)
                _check_schema(self._table)

    @classmethod
    def class_name(cls) -> str:
        return "HybridVectorStore"

    @property
    def client(self) -> Table | None:
        """The hybrid table (None until the first ``add`` creates it)."""
        return self._table

    @property
    def table(self) -> Table | None:
        return self._table

    # -- writes -------------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert `nodes` by node id (each needs an embedding); returns their ids."""
        nodes = list(nodes)
        if not nodes:
            return []
        rows = self._rows(nodes)
        if self._table is None:
            self._create(rows)
        else:
            self._table.merge_insert(rows, on=ID)
        self._maintain()
        return [n.node_id for n in nodes]

    def _rows(self, nodes: list[BaseNode]) -> pa.Table:
        latest: dict[str, BaseNode] = {}
        for node in nodes:  # a node id given twice: the last one wins
            latest.pop(node.node_id, None)
            latest[node.node_id] = node
        columns: dict[str, list[Any]] = {c: [] for c in _ROW_COLUMNS}
        vectors = []
        for node in latest.values():
            embedding = node.get_embedding() if node.embedding is not None else None
            if embedding is None:
                raise SchemaError(f"node {node.node_id!r} has no embedding: embed nodes before adding them")
            stored = node_to_metadata_dict(node, remove_text=True, flat_metadata=self.flat_metadata)
            content, node_type = stored.pop("_node_content"), stored.pop("_node_type")
            try:
                metadata = json.dumps(stored, ensure_ascii=False, allow_nan=False)
            except ValueError:
                raise SchemaError(
                    f"the metadata of node {node.node_id!r} holds NaN or inf, which JSON cannot store"
                ) from None
            columns[ID].append(node.node_id)
            columns[TEXT].append(node.get_content(metadata_mode=MetadataMode.NONE))
            columns[REF_DOC_ID].append(node.ref_doc_id)
            columns[METADATA].append(metadata)
            columns[NODE_CONTENT].append(content)
            columns[NODE_TYPE].append(node_type)
            vectors.append(embedding)
        dims = {len(v) for v in vectors}
        if len(dims) != 1:
            raise SchemaError(f"nodes have embeddings of different dimensions: {sorted(dims)}")
        dim = dims.pop()
        if self._table is not None:
            expected = self._table.schema.field(EMBEDDING).type.list_size
            if dim != expected:
                raise SchemaError(f"embeddings have dimension {dim}, but table {self.table_name!r} holds {expected}")
        schema = schema_for(dim)
        flat = pa.array(np.asarray(vectors, dtype=np.float32).ravel(), pa.float32())
        arrays = [pa.array(columns[c], pa.string()) for c in _ROW_COLUMNS]
        return pa.Table.from_arrays([*arrays, pa.FixedSizeListArray.from_arrays(flat, dim)], schema=schema)

    def _create(self, rows: pa.Table) -> None:
        db = self._db if self._db is not None else Database(str(self.uri))
        try:
            self._table = db.create_table(self.table_name, rows)
            self._table.set_chunking(parent=REF_DOC_ID, text=TEXT)  # nodes of a document, in the order added
        except TableExistsError:  # created by another writer meanwhile
            table = db.open_table(self.table_name)
            _check_schema(table)
            table.merge_insert(rows, on=ID)
            self._table = table

    def _maintain(self) -> None:
        """Make sure the BM25 index exists; rebuild indexes once most rows are outside them."""
        table = self._require_table()
        stats = [s for s in table.index_stats() if s["kind"] == "fts" and s["columns"] == [TEXT]]
        if not stats:
            try:
                table.create_fts_index([TEXT], name=FTS_INDEX)
            except HybridError:  # another writer made it first
                if not any(s["kind"] == "fts" and s["columns"] == [TEXT] for s in table.index_stats()):
                    raise
            return
        stale = stats[0]["unindexed_rows"] + stats[0]["dead_rows"]
        if self.auto_optimize and stale > max(stats[0]["live_indexed_rows"], 256):
            logger.info("optimizing %s: %d rows were outside the text index", table.name, stale)
            table.optimize()

    def add_feedback(self, query: str, node_id: str, label: float = 1.0, **kwargs: Any) -> int:
        """Record that node `node_id` answers `query` with relevance `label` (0 wrong .. 4 perfect) in the
        table's feedback (``<table>__feedback``; see :meth:`hybrid.Table.add_feedback` for `kwargs`).
        Returns the feedback table's new version."""
        if self._table is None:
            raise FeedbackError(f"no node {node_id!r}: the store holds no nodes yet")
        kwargs.setdefault("source", "llamaindex")
        return self._table.add_feedback(query, {ID: node_id}, label, **kwargs).version

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the document `ref_doc_id`."""
        if self._table is not None:
            self._table.delete(_in_list(REF_DOC_ID, [ref_doc_id]))

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes with these ids and/or matching `filters` (both: the nodes matching both).

        Unlike LlamaIndex's in-memory store, neither means an error rather than
        deleting everything: use :meth:`clear` for that.
        """
        where = _where(filters, node_ids)
        if where is None:
            raise ValueError("delete_nodes needs node_ids or filters; use clear() to delete every node")
        if self._table is not None:
            self._table.delete(where)

    def clear(self) -> None:
        """Delete every node (the table, its indexes and its history stay)."""
        if self._table is not None:
            self._table.delete("true")

    # -- reads --------------------------------------------------------------------------------

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The stored nodes with these ids (in that order) and/or matching `filters`; all without either."""
        if self._table is None:
            return []
        rows = self._table.to_arrow(_ROW_COLUMNS, where=_where(filters, node_ids)).to_pylist()
        if node_ids is not None:
            by_id = {r[ID]: r for r in rows}
            rows = [by_id[i] for i in dict.fromkeys(node_ids) if i in by_id]
        return [_to_node(r) for r in rows]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Run a DEFAULT (vector), TEXT_SEARCH / SPARSE (BM25) or HYBRID query.

        Result size: ``similarity_top_k`` (DEFAULT), ``sparse_top_k`` or else
        ``similarity_top_k`` (TEXT_SEARCH), ``hybrid_top_k`` or else
        ``similarity_top_k`` (HYBRID; each branch then contributes hybrid's default
        depth, or the largest of the three top-k values when ``sparse_top_k`` or
        ``hybrid_top_k`` is given). ``filters``, ``doc_ids`` and ``node_ids``
        restrict the rows before top-k in every branch; an empty ``doc_ids`` or
        ``node_ids`` list restricts nothing.
        """
        if query.embedding_field not in (None, EMBEDDING):
            raise ValueError(f"HybridVectorStore keeps embeddings in {EMBEDDING!r}, not {query.embedding_field!r}")
        # An empty node_ids / doc_ids list means no restriction: as_retriever() passes the
        # index's node list, which is empty when the vector store keeps the text.
        where = _where(query.filters, query.node_ids or None, query.doc_ids or None)  # validated even when empty
        if self._table is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        q, similarity = self._build(self._table, query)
        if where is not None:
            q = q.where(where)
        q = _rag_options(q, **kwargs)
        rows = q.select([*_ROW_COLUMNS]).to_list()
        nodes = [_to_node(r) for r in rows]
        return VectorStoreQueryResult(
            nodes=nodes, similarities=[similarity(r) for r in rows], ids=[n.node_id for n in nodes]
        )

    def _build(self, table: Table, query: VectorStoreQuery) -> tuple[Query, Any]:
        mode = VectorStoreQueryMode(query.mode)
        top_k = query.similarity_top_k
        if mode == VectorStoreQueryMode.DEFAULT:
            q = table.search(query_type="vector").vector(_embedding(query), EMBEDDING).limit(top_k)
            cosine = _metric(table) == "cosine"
            return q, (lambda r: 1.0 - r["_distance"]) if cosine else (lambda r: -r["_distance"])
        if mode in (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.SPARSE):
            q = table.search(_query_str(query), query_type="fts", fts_columns=[TEXT])
            return q.limit(query.sparse_top_k or top_k), lambda r: r["_score"]
        if mode == VectorStoreQueryMode.HYBRID:
            limit = query.hybrid_top_k or top_k
            q = table.search(_query_str(query), query_type="hybrid", fts_columns=[TEXT])
            q = q.vector(_embedding(query), EMBEDDING).limit(limit)
            if query.hybrid_top_k is not None or query.sparse_top_k is not None:
                q = q.candidates(max(limit, top_k, query.sparse_top_k or 0))
            if query.alpha is not None:
                from hybrid.query.fusion import Linear

                q = q.fuse(Linear(alpha=float(query.alpha))).weights("equal")
            return q, lambda r: r["_score"]
        raise ValueError(
            f"query mode {mode.value!r} is not supported by HybridVectorStore; use default, text_search or hybrid"
        )

    # -- async: the sync methods in a worker thread, so the event loop keeps running --------

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await run_sync(self.add, nodes, **kwargs)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await run_sync(self.query, query, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await run_sync(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        await run_sync(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return await run_sync(self.get_nodes, node_ids, filters)

    async def aclear(self) -> None:
        await run_sync(self.clear)

    def _require_table(self) -> Table:
        if self._table is None:  # pragma: no cover - add() creates it first
            raise HybridError("the store has no table yet: add nodes first")
        return self._table


def _check_schema(table: Table) -> None:
    names = set(table.schema.names)
    missing = [c for c in [*_ROW_COLUMNS, EMBEDDING] if c not in names]
    if missing:
        raise SchemaError(
            f"table {table.name!r} lacks the columns {missing} a HybridVectorStore needs; "
            "use a table created by HybridVectorStore (pass uri= and a new table_name=)"
        )


def _rag_options(
    q: Query,
    group_by: bool | str | None = None,
    per_group: int = 1,
    expand: int | str | None = None,
    highlight: bool = False,
    **rest: Any,
) -> Query:
    """The query kwargs of :meth:`HybridVectorStore.query` (``vector_store_kwargs`` of a retriever):
    `group_by` (True: by document, the ``ref_doc_id``; or a column), `per_group`, and `expand`
    (``n`` neighbouring nodes of the same document, or ``"parent"``: the whole document), which puts
    the passage in ``metadata["window"]``, the sentence-window idiom (``MetadataReplacementPostProcessor(
    target_metadata_key="window")`` swaps it in), the hit's own text in ``metadata["original_text"]``;
    `highlight` adds ``metadata["highlight"]`` (a snippet, matches in ``<em>``) and
    ``metadata["highlight_spans"]`` (their offsets in the node's text)."""
    if rest:  # LlamaIndex passes its own kwargs through; the store has always ignored them
        logger.debug("HybridVectorStore.query ignores %s", sorted(rest))
    if group_by is not None and group_by is not False:
        q = q.group_by(REF_DOC_ID if group_by is True else group_by, per_group=per_group)
    if expand is not None:
        q = q.expand(parent=True) if expand == "parent" else q.expand(neighbours=expand)  # type: ignore[arg-type]
    if highlight:
        q = q.highlight(TEXT)
    return q


WINDOW_KEYS = ("window", "original_text", "context_spans", "highlight", "highlight_spans")
"""Metadata an expanded node carries; left out of what is embedded and shown to the LLM."""


def _to_node(row: dict[str, Any]) -> BaseNode:
    stored = {"_node_content": row[NODE_CONTENT], "_node_type": row[NODE_TYPE]}
    node = metadata_dict_to_node(stored, text=row[TEXT])
    if "_context" in row:
        node.metadata.update(window=row["_context"], original_text=row[TEXT], context_spans=row["_context_spans"])
    if "_highlight" in row:
        node.metadata.update(highlight=row["_highlight"], highlight_spans=row["_highlight_spans"])
    if "_context" in row or "_highlight" in row:
        for keys in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
            keys.extend(k for k in WINDOW_KEYS if k in node.metadata and k not in keys)
    return node


def _embedding(query: VectorStoreQuery) -> list[float]:
    if query.query_embedding is None:
        raise ValueError(f"a {VectorStoreQueryMode(query.mode).value} query needs query_embedding")
    return query.query_embedding


def _query_str(query: VectorStoreQuery) -> str:
    if not query.query_str:
        raise ValueError(f"a {VectorStoreQueryMode(query.mode).value} query needs query_str")
    return query.query_str


def _metric(table: Table) -> str:
    for s in table.index_stats():
        if s["kind"] == "vector" and s["columns"] == [EMBEDDING]:
            return str(s.get("metric", "cosine"))
    return "cosine"  # exact search without an index is cosine


# -- embeddings --------------------------------------------------------------------------------


class HybridEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model backed by a hybrid :class:`~hybrid.embedders.Embedder`.

    Queries go through ``embed_query`` and documents through ``embed_documents``, so
    models with query / passage prefixes (e5) embed each side correctly.

    Example:
        >>> from hybrid.embedders import HashingEmbedder
        >>> model = HybridEmbedding(HashingEmbedder(dim=8))
        >>> len(model.get_query_embedding("hello")), model.model_name
        (8, 'hashing')
    """

    _embedder: Embedder = PrivateAttr()

    def __init__(self, embedder: Embedder, *, embed_batch_size: int = 64, **kwargs: Any) -> None:
        if not callable(getattr(embedder, "embed_documents", None)) or not callable(
            getattr(embedder, "embed_query", None)
        ):
            raise TypeError(f"embedder must have embed_documents and embed_query, got {type(embedder).__name__}")
        kwargs.setdefault("model_name", getattr(embedder, "name", type(embedder).__name__))
        super().__init__(embed_batch_size=embed_batch_size, **kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "HybridEmbedding"

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in self._embedder.embed_query(query)]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await run_sync(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return np.asarray(self._embedder.embed_documents(texts), dtype=np.float64).tolist()

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await run_sync(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await run_sync(self._get_text_embeddings, texts)
