"""LangChain adapter: :class:`HybridVectorStore`, a LangChain ``VectorStore`` over a hybrid
:class:`~hybrid.Table` (extra ``langchain``).

A document is one row: a string ``id``, its ``text``, its vector, and its metadata as a JSON
string column ``metadata`` (so nested metadata round-trips exactly). Metadata keys that have
a column of their own in the table (``metadata_columns`` when creating it, or any extra
scalar column of an existing table) are stored in that typed column instead, where SQL filters
reach them directly. Filters are a SQL string (given to ``Query.where``) or a dict of
conditions (see :func:`filter_to_sql`).

Besides LangChain's similarity, MMR and relevance-threshold searches, ``hybrid_search`` and
``as_retriever(search_type="hybrid")`` run hybrid's BM25 + vector search with fusion and an
optional reranker.

Example:
    >>> import hybrid, tempfile
    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> store = HybridVectorStore.from_texts(
    ...     ["rotate API keys monthly", "bake sourdough bread", "hash passwords with argon2"],
    ...     DeterministicFakeEmbedding(size=16),
    ...     metadatas=[{"topic": "security"}, {"topic": "cooking"}, {"topic": "security"}],
    ...     ids=["keys", "bread", "passwords"],
    ...     connection=hybrid.connect(tempfile.mkdtemp()),
    ...     table_name="docs",
    ... )
    >>> [d.id for d in store.hybrid_search("passwords", k=2, query_type="fts")]
    ['passwords']
    >>> sorted(d.id for d in store.similarity_search("anything", k=3, filter={"topic": "security"}))
    ['keys', 'passwords']
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from hybrid.aio import run_sync
from hybrid.embedders.base import Embedder
from hybrid.errors import CommitConflictError, FilterError, MissingDependencyError, SchemaError, VectorError
from hybrid.query.metadata_filter import filter_to_sql, sql_ident, sql_literal
from hybrid.rerankers.bi_encoder import unit_rows
from hybrid.rerankers.mmr import mmr_order
from hybrid.storage.ingest import is_vector_type
from hybrid.table import Table

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("langchain-core is not installed: pip install 'hybridsearch[langchain]'") from exc

if TYPE_CHECKING:
    from hybrid.db import Database
    from hybrid.query.fusion import Fusion
    from hybrid.rerankers.base import Reranker

logger = logging.getLogger(__name__)

MetadataFilter = str | Mapping[str, Any] | None
"""A SQL boolean expression over the table's columns, a dict of conditions, or None."""
QueryType = Literal["hybrid", "fts", "vector"]

STALE_MIN_ROWS = 2_048
"""An index is rebuilt after a write once more than this many rows (and more than it holds
live) were added, updated or deleted since its build; fewer are searched exactly meanwhile."""


class HybridEmbeddings(Embeddings):
    """A hybrid :class:`~hybrid.embedders.Embedder` seen as LangChain ``Embeddings``.

    Example:
        >>> from hybrid.embedders import HashingEmbedder
        >>> len(HybridEmbeddings(HashingEmbedder(dim=8)).embed_query("hello"))
        8
    """

    def __init__(self, embedder: Embedder) -> None:
        if not isinstance(embedder, Embedder):
            raise TypeError(f"expected a hybrid Embedder, got {type(embedder).__name__}")
        self.embedder = embedder

    def __repr__(self) -> str:
        return f"HybridEmbeddings({self.embedder!r})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.embedder.embed_documents(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        vector: list[float] = self.embedder.embed_query(text).tolist()
        return vector


class HybridVectorStore(VectorStore):
    """A LangChain ``VectorStore`` backed by a hybrid :class:`~hybrid.Table`.

    Args:
        table: a table with a string id column, a string text column and a vector column
            (``HybridVectorStore.create`` / ``from_texts`` make one). An optional string
            ``metadata`` column holds each document's metadata as JSON; every other scalar
            column is a metadata key of its own.
        embedding: LangChain ``Embeddings`` or a hybrid ``Embedder`` (wrapped as
            :class:`HybridEmbeddings`; ``.embeddings`` is always the LangChain view). None: the
            embedder bound to the table's vector column (``create_table(embedding=...)``).
        auto_index: create the full-text index when the table has none, an HNSW index once the
            table holds `vector_index_min_rows` rows, and rebuild an index after a write once
            more than :data:`STALE_MIN_ROWS` rows (and more than it holds) changed since its build.
            Rows written since a build are searched at once either way.
        fts_index: the full-text index to search when the table has several.
    """

    def __init__(
        self,
        table: Table,
        embedding: Embeddings | Embedder | None = None,
        *,
        id_column: str = "id",
        text_column: str = "text",
        vector_column: str = "vector",
        metadata_column: str = "metadata",
        auto_index: bool = True,
        vector_index_min_rows: int = 10_000,
        fts_index: str | None = None,
    ) -> None:
        if not isinstance(table, Table):
            raise TypeError(f"table must be a hybrid.Table, got {type(table).__name__}")
        if not isinstance(vector_index_min_rows, int) or vector_index_min_rows <= 0:
            raise ValueError(f"vector_index_min_rows must be a positive integer, got {vector_index_min_rows!r}")
        self.table = table
        self._id = id_column
        self._text = text_column
        self._vector = vector_column
        self._metadata = metadata_column
        self._auto_index = auto_index
        self._vector_index_min_rows = vector_index_min_rows
        self._fts_index = fts_index
        self._fts_checked = False
        self._check_schema(table.schema)
        self._embeddings = self._resolve_embeddings(embedding)

    def __repr__(self) -> str:
        return f"HybridVectorStore({self.table!r}, {self._embeddings!r})"

    def _check_schema(self, schema: pa.Schema) -> None:
        for name, what in ((self._id, "id"), (self._text, "text")):
            if name not in schema.names:
                raise SchemaError(f"the table has no {what} column {name!r}; it has {schema.names}")
            if not _is_string(schema.field(name).type):
                raise SchemaError(f"{what} column {name!r} must hold strings, not {schema.field(name).type}")
        if self._vector not in schema.names or not is_vector_type(schema.field(self._vector).type):
            raise SchemaError(f"the table has no vector column {self._vector!r} (fixed_size_list<float32>)")
        if self._metadata in schema.names and not _is_string(schema.field(self._metadata).type):
            raise SchemaError(f"metadata column {self._metadata!r} must hold JSON strings")

    def _resolve_embeddings(self, embedding: Embeddings | Embedder | None) -> Embeddings:
        bound = self.table.embeddings.get(self._vector)
        if embedding is None:
            if bound is None:
                raise TypeError(f"pass embedding=: the table binds no embedder to its vector column {self._vector!r}")
            return HybridEmbeddings(bound[1])
        if isinstance(embedding, Embeddings):
            return embedding
        if isinstance(embedding, Embedder):
            if bound is not None and (bound[1].name, bound[1].to_config()) != (embedding.name, embedding.to_config()):
                logger.warning(
                    "the table binds %r to column %r, but queries will be embedded by %r",
                    bound[1],
                    self._vector,
                    embedding,
                )
            return HybridEmbeddings(embedding)
        raise TypeError(f"embedding must be LangChain Embeddings or a hybrid Embedder, got {type(embedding).__name__}")

    @property
    def embeddings(self) -> Embeddings:
        return self._embeddings

    # -- creating ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        embedding: Embeddings | Embedder,
        *,
        connection: Database | None = None,
        uri: str | Path | None = None,
        table_name: str = "langchain",
        mode: Literal["create", "overwrite", "exist_ok"] = "create",
        metadata_columns: Mapping[str, pa.DataType] | None = None,
        dimension: int | None = None,
        **options: Any,
    ) -> HybridVectorStore:
        """An empty store: a new table `table_name` in `connection` (or ``hybrid.connect(uri)``).

        `metadata_columns` (``{"year": pa.int64()}``) become typed columns for fast SQL filters.
        `dimension` is the vector length (default: found by embedding one probe text, or the
        embedder's ``dim``). A hybrid ``Embedder`` is bound to the table, so a reopened table knows
        it and hybrid's own ``table.search("text")`` embeds queries. `mode="exist_ok"` opens an
        existing table; `options` go to the constructor.
        """
        db = _database(connection, uri)
        if mode == "exist_ok" and table_name in db:
            return cls(db.open_table(table_name), embedding, **options)
        names = {k: options.get(f"{k}_column", k) for k in ("id", "text", "vector", "metadata")}
        fields = [
            pa.field(names["id"], pa.string()),
            pa.field(names["text"], pa.string()),
            pa.field(names["metadata"], pa.string()),
        ]
        for key, kind in (metadata_columns or {}).items():
            if key in names.values():
                raise SchemaError(
                    f"metadata column {key!r} clashes with the store's own columns {list(names.values())}"
                )
            fields.append(pa.field(key, kind))
        dim = dimension or (embedding.dim if isinstance(embedding, Embedder) else len(embedding.embed_query("dim")))
        fields.append(pa.field(names["vector"], pa.list_(pa.float32(), dim)))
        bind = {names["vector"]: (names["text"], embedding)} if isinstance(embedding, Embedder) else None
        table = db.create_table(table_name, schema=pa.schema(fields), mode=mode, embedding=bind)
        store = cls(table, embedding, **options)
        store._maintain_indexes()
        return store

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | Embedder,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        connection: Database | None = None,
        uri: str | Path | None = None,
        table_name: str = "langchain",
        mode: Literal["create", "overwrite", "exist_ok"] = "create",
        metadata_columns: Mapping[str, pa.DataType] | None = None,
        **options: Any,
    ) -> HybridVectorStore:
        """A store holding `texts`, in table `table_name` of `connection` (or ``hybrid.connect(uri)``).

        One of `connection` / `uri` is required: there is no silent temporary default. See
        :meth:`create` for the other arguments; ``from_documents`` calls this.
        """
        store = cls.create(
            embedding,
            connection=connection,
            uri=uri,
            table_name=table_name,
            mode=mode,
            metadata_columns=metadata_columns,
            **options,
        )
        store.add_texts(texts, metadatas, ids=ids)
        return store

    # -- writing -------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store `texts`; returns their ids (new UUIDs where `ids` has None).

        A text whose id is already stored replaces it (an upsert by id, via ``merge_insert``);
        if an id repeats within one call, its last text wins.
        """
        _no_extra_kwargs("add_texts", kwargs)
        texts = list(texts)
        n = len(texts)
        if metadatas is not None and len(metadatas) != n:
            raise ValueError(f"got {len(metadatas)} metadatas for {n} texts")
        if ids is not None and len(ids) != n:
            raise ValueError(f"got {len(ids)} ids for {n} texts")
        given = list(ids) if ids is not None else [None] * n
        for i, doc_id in enumerate(given):
            if doc_id is not None and not (isinstance(doc_id, str) and doc_id):
                raise TypeError(f"id #{i} must be a non-empty string or None, got {doc_id!r}")
        out = [doc_id if doc_id is not None else str(uuid.uuid4()) for doc_id in given]
        if not texts:
            return out
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text #{i} is {type(text).__name__}, not a string")
        keep = sorted({doc_id: i for i, doc_id in enumerate(out)}.values())  # an id's last occurrence
        vectors = self._embed_documents([texts[i] for i in keep])
        rows = self._rows(
            [out[i] for i in keep],
            [texts[i] for i in keep],
            [metadatas[i] if metadatas else {} for i in keep],
            vectors,
        )
        if any(doc_id is not None for doc_id in given):
            self.table.merge_insert(rows, on=self._id)
        else:
            self.table.add(rows)
        self._maintain_indexes()
        return out

    def _embed_documents(self, texts: list[str]) -> np.ndarray:
        if isinstance(self._embeddings, HybridEmbeddings):
            raw: Any = self._embeddings.embedder.embed_documents(texts)
        else:
            raw = self._embeddings.embed_documents(texts)
        try:
            matrix = np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise VectorError(f"{self._embeddings!r} returned something that is not a matrix ({exc})") from None
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise VectorError(f"{self._embeddings!r} returned shape {matrix.shape} for {len(texts)} texts")
        return matrix

    def _embed_query(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"a query must be a string, got {type(text).__name__}")
        return np.asarray(self._embeddings.embed_query(text), dtype=np.float32)

    def _rows(self, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]], vectors: np.ndarray) -> pa.Table:
        schema = self.table.schema
        promoted = self._metadata_columns(schema)
        has_json = self._metadata in schema.names
        columns: dict[str, list[Any]] = {c: [] for c in promoted}
        encoded: list[str] = []
        for i, metadata in enumerate(metadatas):
            if not isinstance(metadata, Mapping):
                raise TypeError(f"metadata #{i} must be a dict, got {type(metadata).__name__}")
            rest = dict(metadata)
            for c in promoted:
                columns[c].append(rest.pop(c, None))
            if rest and not has_json:
                raise SchemaError(
                    f"metadata #{i} has keys {sorted(rest)} without a column, and the table has no "
                    f"{self._metadata!r} column to keep them"
                )
            try:
                encoded.append(json.dumps(rest, ensure_ascii=False, allow_nan=False, separators=(",", ":")))
            except (TypeError, ValueError) as exc:
                raise SchemaError(f"metadata #{i} cannot be stored as JSON: {exc}") from None
        dim = schema.field(self._vector).type.list_size
        if vectors.shape[1] != dim:
            raise VectorError(f"the embeddings give {vectors.shape[1]}-d vectors, column {self._vector!r} holds {dim}")
        arrays: dict[str, pa.Array] = {
            self._id: pa.array(ids, pa.string()),
            self._text: pa.array(texts, pa.string()),
            self._vector: pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim),
        }
        if has_json:
            arrays[self._metadata] = pa.array(encoded, pa.string())
        for c, values in columns.items():
            kind = schema.field(c).type
            try:
                arrays[c] = pa.array(values, kind)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
                raise SchemaError(
                    f"metadata key {c!r}: a value does not fit the column's type {kind} ({exc})"
                ) from None
        return pa.table(arrays)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete documents by id (missing ids are ignored), or by ``filter=`` (SQL or dict).

        With neither, as LangChain's base class documents, every document is deleted.
        """
        where_filter = kwargs.pop("filter", None)
        _no_extra_kwargs("delete", kwargs)
        parts = []
        if ids is not None:
            ids = list(ids)
            if not ids:
                return True
            parts.append(self._ids_sql(ids))
        where = self._where(where_filter)
        if where is not None:
            parts.append(f"({where})")
        sql = " AND ".join(parts) if parts else "true"
        if self.table.count_rows(sql) == 0:  # nothing to delete: no empty version
            return True
        self.table.delete(sql)
        self._maintain_indexes()
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in request order; missing ids are skipped."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        rows = self.table.to_arrow(self._columns(self.table.schema), where=self._ids_sql(wanted))
        found = {doc.id: doc for doc in self._documents(rows)}
        return [found[i] for i in wanted if i in found]

    def add_feedback(self, query: str, doc_id: str, label: float = 1.0, **kwargs: Any) -> int:
        """Record that document `doc_id` answers `query` with relevance `label` (0 wrong .. 4 perfect) in the
        table's feedback (``<table>__feedback``; see :meth:`hybrid.Table.add_feedback` for `kwargs`: who,
        kind, shown_rank...). Returns the feedback table's new version."""
        kwargs.setdefault("source", "langchain")
        return self.table.add_feedback(query, {self._id: doc_id}, label, **kwargs).version

    def _ids_sql(self, ids: Sequence[str]) -> str:
        for i, doc_id in enumerate(ids):
            if not isinstance(doc_id, str):
                raise TypeError(f"id #{i} must be a string, got {type(doc_id).__name__}")
        return f"{sql_ident(self._id)} IN ({', '.join(sql_literal(i) for i in ids)})"

    # -- indexes -------------------------------------------------------------------------

    def _maintain_indexes(self) -> None:
        """Create missing indexes and rebuild stale ones (see `auto_index`)."""
        if not self._auto_index or self.table.read_only:
            return
        try:
            stats = self.table.index_stats()
            if not any(s["kind"] == "fts" for s in stats):
                self.table.create_fts_index([self._text])
            vector = [s for s in stats if s["kind"] == "vector" and s["columns"] == [self._vector]]
            if not vector and self.table.count_rows() >= self._vector_index_min_rows:
                self.table.create_vector_index(self._vector, metric="cosine")
            stale = [
                s for s in stats if s["unindexed_rows"] + s["dead_rows"] > max(STALE_MIN_ROWS, s["live_indexed_rows"])
            ]
            if stale:
                self.table.optimize()
        except CommitConflictError as exc:  # another writer changed the indexes first: theirs will do
            logger.info("index maintenance skipped: %s", exc)

    def optimize(self) -> None:
        """Fold every row written since the indexes were built into fresh indexes."""
        self.table.optimize()

    def _metric(self) -> str:
        for s in self.table.index_stats():
            if s["kind"] == "vector" and s["columns"] == [self._vector]:
                return str(s.get("metric", "cosine"))
        return "cosine"  # exact search without an index

    # -- reading -------------------------------------------------------------------------

    def _metadata_columns(self, schema: pa.Schema) -> list[str]:
        """Columns that are metadata keys of their own: every scalar column not the store's."""
        own = {self._id, self._text, self._vector, self._metadata}
        return [f.name for f in schema if f.name not in own and not is_vector_type(f.type)]

    def _columns(self, schema: pa.Schema, *, with_vector: bool = False) -> list[str]:
        cols = [self._id, self._text]
        if self._metadata in schema.names:
            cols.append(self._metadata)
        cols += self._metadata_columns(schema)
        if with_vector:
            cols.append(self._vector)
        return cols

    def _documents(self, rows: pa.Table) -> list[Document]:
        names = rows.column_names
        ids = rows.column(self._id).to_pylist()
        texts = rows.column(self._text).to_pylist()
        encoded = rows.column(self._metadata).to_pylist() if self._metadata in names else [None] * len(ids)
        promoted = {c: rows.column(c).to_pylist() for c in self._metadata_columns(self.table.schema) if c in names}
        docs = []
        for i, (doc_id, text, meta) in enumerate(zip(ids, texts, encoded)):
            metadata = json.loads(meta) if meta else {}
            for c, values in promoted.items():
                if values[i] is not None:
                    metadata[c] = values[i]
            docs.append(Document(id=doc_id, page_content=text or "", metadata=metadata))
        if "_highlight" in names:  # the matched words: a snippet and their offsets in the stored text
            marked, spans = rows.column("_highlight").to_pylist(), rows.column("_highlight_spans").to_pylist()
            for doc, snippet, found in zip(docs, marked, spans):
                doc.metadata["highlight"], doc.metadata["highlight_spans"] = snippet, found
        if "_context" in names:  # expanded: the passage is the document, the hit stays in the metadata
            contexts, spans = rows.column("_context").to_pylist(), rows.column("_context_spans").to_pylist()
            for doc, context, marked in zip(docs, contexts, spans):
                doc.metadata["chunk_text"], doc.metadata["context_spans"] = doc.page_content, marked
                doc.page_content = context or ""
        return docs

    def _where(self, filter: MetadataFilter) -> str | None:
        if filter is None:
            return None
        if isinstance(filter, str):
            if not filter.strip():
                raise FilterError("filter is an empty string: give a SQL boolean expression, a dict, or None")
            return filter
        if isinstance(filter, Mapping):
            schema = self.table.schema
            json_column = self._metadata if self._metadata in schema.names else None
            return filter_to_sql(filter, json_column=json_column, columns=self._metadata_columns(schema))
        raise FilterError(f"filter must be a SQL string or a dict, got {type(filter).__name__}")

    def _search(
        self,
        text: str | None,
        vector: Sequence[float] | np.ndarray | None,
        k: int,
        *,
        query_type: QueryType | Literal["auto"],
        filter: MetadataFilter = None,
        fusion: Fusion | None = None,
        reranker: Reranker | None = None,
        fetch_k: int | None = None,
        weights: Literal["auto", "equal"] | Mapping[str, float] | None = None,
        with_vector: bool = False,
        group_by: str | bool | None = None,
        per_group: int = 1,
        expand: int | Literal["parent"] | None = None,
        highlight: bool = False,
    ) -> pa.Table:
        if query_type in ("hybrid", "fts"):
            self._ensure_fts_index()
        q = self.table.search(query_type=query_type, vector_column=self._vector, fts_index=self._fts_index)
        if text is not None:
            q = q.text(text)
        if vector is not None:
            q = q.vector(vector, self._vector)
        where = self._where(filter)
        if where is not None:
            q = q.where(where)
        if fusion is not None:
            q = q.fuse(fusion)
        if reranker is not None:
            q = q.rerank(reranker)
        if fetch_k is not None:
            q = q.candidates(fetch_k)
        if weights is not None:
            q = q.weights(weights)
        if group_by is not None and group_by is not False:
            q = q.group_by(None if group_by is True else group_by, per_group=per_group)
        if expand is not None:
            q = q.expand(parent=True) if expand == "parent" else q.expand(neighbours=expand)
        if highlight:
            q = q.highlight(self._text)
        return q.select(self._columns(self.table.schema, with_vector=with_vector)).limit(k).to_arrow()

    def _ensure_fts_index(self) -> None:
        """Build the full-text index a text query needs, once, if the table has none (auto_index)."""
        if self._fts_checked or not self._auto_index or self.table.read_only:
            return
        if not any(s["kind"] == "fts" for s in self.table.index_stats()):
            self._maintain_indexes()
        self._fts_checked = True

    def similarity_search(
        self, query: str, k: int = 4, *, filter: MetadataFilter = None, **kwargs: Any
    ) -> list[Document]:
        """The `k` documents nearest to the embedded `query`, optionally filtered."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, *, filter: MetadataFilter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents with their vector distance (cosine distance by default: smaller is closer)."""
        return self.similarity_search_with_score_by_vector(self._embed_query(query), k, filter=filter, **kwargs)

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, *, filter: MetadataFilter = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, filter=filter, **kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: Sequence[float] | np.ndarray, k: int = 4, *, filter: MetadataFilter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        _no_extra_kwargs("similarity_search", kwargs)
        rows = self._search(None, embedding, k, query_type="vector", filter=filter)
        return list(zip(self._documents(rows), (float(d) for d in rows.column("_distance").to_pylist())))

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Distance -> cosine similarity clipped to [0, 1] (l2 and dot assume unit-length vectors)."""
        metric = self._metric()
        if metric == "l2":  # squared Euclidean: |a - b|^2 = 2 - 2 cos for unit vectors
            return lambda d: min(1.0, max(0.0, 1.0 - d / 2.0))
        return lambda d: min(1.0, max(0.0, 1.0 - d))  # cosine: 1 - cos; dot: 1 - a.b

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: MetadataFilter = None,
        **kwargs: Any,
    ) -> list[Document]:
        """`k` documents picked from the `fetch_k` nearest by maximal marginal relevance."""
        return self.max_marginal_relevance_search_by_vector(
            self._embed_query(query).tolist(), k, fetch_k, lambda_mult, filter=filter, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: MetadataFilter = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR over the stored vectors: each pick maximises
        ``lambda_mult * cos(query, d) - (1 - lambda_mult) * max cos(d, picked)``."""
        _no_extra_kwargs("max_marginal_relevance_search", kwargs)
        if not 0.0 <= lambda_mult <= 1.0:
            raise ValueError(f"lambda_mult must be in [0, 1], got {lambda_mult!r}")
        rows = self._search(None, embedding, max(k, fetch_k), query_type="vector", filter=filter, with_vector=True)
        if rows.num_rows == 0:
            return []
        column = rows.column(self._vector).combine_chunks()
        dim = column.type.list_size
        matrix = column.values.slice(column.offset * dim, len(column) * dim).to_numpy().reshape(-1, dim)
        order = mmr_order(unit_rows(np.asarray(embedding))[0], unit_rows(matrix), float(lambda_mult))[:k]
        docs = self._documents(rows)
        return [docs[int(i)] for i in order]

    def hybrid_search(
        self,
        query: str,
        k: int = 4,
        *,
        query_type: QueryType = "hybrid",
        filter: MetadataFilter = None,
        fusion: Fusion | None = None,
        reranker: Reranker | None = None,
        fetch_k: int | None = None,
        weights: Literal["auto", "equal"] | Mapping[str, float] | None = None,
        group_by: str | bool | None = None,
        per_group: int = 1,
        expand: int | Literal["parent"] | None = None,
        highlight: bool = False,
    ) -> list[Document]:
        """hybrid's search: BM25 and vector branches (`query_type` "hybrid"), or either alone.

        `fusion`: ``Linear(alpha=0.7)`` by default, or ``RRF`` / ``DBSF`` from ``hybrid.query.fusion``;
        `reranker` rescores the `fetch_k` fused candidates (e.g. ``hybrid.rerankers.MMRReranker``);
        `weights`: per-branch fusion weights (see ``Query.weights``). On a table of chunks
        (``table.set_chunking``, as ``hybrid ingest`` makes): `group_by` (a column, or True for the
        declared parent) returns the `k` best documents with `per_group` chunks each; `expand`
        (``n`` neighbours, or ``"parent"``, the parent-document retriever's idiom) makes each
        Document's ``page_content`` the passage around the hit, with the hit's own text in
        ``metadata["chunk_text"]`` and its span in ``metadata["context_spans"]``. `highlight` adds
        ``metadata["highlight"]`` (a snippet, matches in ``<em>``) and ``metadata["highlight_spans"]``
        (the matches' offsets in the stored text).
        """
        found = self.hybrid_search_with_score(
            query,
            k,
            query_type=query_type,
            filter=filter,
            fusion=fusion,
            reranker=reranker,
            fetch_k=fetch_k,
            weights=weights,
            group_by=group_by,
            per_group=per_group,
            expand=expand,
            highlight=highlight,
        )
        return [doc for doc, _ in found]

    def hybrid_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        query_type: QueryType = "hybrid",
        filter: MetadataFilter = None,
        fusion: Fusion | None = None,
        reranker: Reranker | None = None,
        fetch_k: int | None = None,
        weights: Literal["auto", "equal"] | Mapping[str, float] | None = None,
        group_by: str | bool | None = None,
        per_group: int = 1,
        expand: int | Literal["parent"] | None = None,
        highlight: bool = False,
    ) -> list[tuple[Document, float]]:
        """Documents with hybrid's ``_score`` (higher is better): fused, BM25, minus the
        distance, or the reranker's score (options as for :meth:`hybrid_search`)."""
        if query_type not in ("hybrid", "fts", "vector"):
            raise ValueError(f"query_type must be 'hybrid', 'fts' or 'vector', got {query_type!r}")
        vector = self._embed_query(query) if query_type != "fts" else None
        rows = self._search(
            query,
            vector,
            k,
            query_type=query_type,
            filter=filter,
            fusion=fusion,
            reranker=reranker,
            fetch_k=fetch_k,
            weights=weights,
            group_by=group_by,
            per_group=per_group,
            expand=expand,
            highlight=highlight,
        )
        return list(zip(self._documents(rows), (float(s) for s in rows.column("_score").to_pylist())))

    async def ahybrid_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return await run_sync(self.hybrid_search, query, k, **kwargs)

    async def ahybrid_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        return await run_sync(self.hybrid_search_with_score, query, k, **kwargs)

    def search(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        """LangChain's ``search``, plus ``search_type="hybrid"``."""
        if search_type == "hybrid":
            return self.hybrid_search(query, **kwargs)
        return super().search(query, search_type, **kwargs)

    async def asearch(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        if search_type == "hybrid":
            return await self.ahybrid_search(query, **kwargs)
        return await super().asearch(query, search_type, **kwargs)

    def as_retriever(self, **kwargs: Any) -> HybridVectorStoreRetriever:
        """A retriever; ``search_type`` is "similarity" (default), "mmr",
        "similarity_score_threshold" or "hybrid" (``search_kwargs`` as for :meth:`hybrid_search`).

        Example:
            >>> import hybrid, tempfile
            >>> from langchain_core.embeddings import DeterministicFakeEmbedding
            >>> store = HybridVectorStore.from_texts(
            ...     ["red apple", "green pear"], DeterministicFakeEmbedding(size=8), uri=tempfile.mkdtemp())
            >>> retriever = store.as_retriever(search_type="hybrid", search_kwargs={"k": 1, "query_type": "fts"})
            >>> retriever.invoke("pear")[0].page_content
            'green pear'
        """
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return HybridVectorStoreRetriever(vectorstore=self, tags=tags, **kwargs)


class HybridVectorStoreRetriever(VectorStoreRetriever):
    """LangChain's vector store retriever with one more `search_type`: "hybrid"."""

    vectorstore: HybridVectorStore
    allowed_search_types: ClassVar[Collection[str]] = ("similarity", "similarity_score_threshold", "mmr", "hybrid")

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type == "hybrid":
            return self.vectorstore.hybrid_search(query, **(self.search_kwargs | kwargs))
        return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type == "hybrid":
            return await self.vectorstore.ahybrid_search(query, **(self.search_kwargs | kwargs))
        return await super()._aget_relevant_documents(query, run_manager=run_manager, **kwargs)


# -- filters -----------------------------------------------------------------------------


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _no_extra_kwargs(method: str, kwargs: Mapping[str, Any]) -> None:
    if kwargs:
        raise TypeError(f"{method}() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")


def _database(connection: Database | None, uri: str | Path | None) -> Database:
    import hybrid

    if connection is not None and uri is None:
        if not isinstance(connection, hybrid.Database):
            raise TypeError(f"connection must be a hybrid.Database, got {type(connection).__name__}")
        return connection
    if uri is not None and connection is None:
        return hybrid.connect(uri)
    raise ValueError("pass exactly one of connection= (a hybrid.Database) or uri= (a database folder)")


__all__ = ["STALE_MIN_ROWS", "HybridEmbeddings", "HybridVectorStore", "HybridVectorStoreRetriever", "filter_to_sql"]
