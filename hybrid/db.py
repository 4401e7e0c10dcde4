"""`Database`: a folder of tables, plus SQL over all of them through DuckDB."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from hybrid.commits import reset_content
from hybrid.embedders import binding
from hybrid.embedders.binding import EmbeddingSpec
from hybrid.errors import SchemaError, TableExistsError, TableNotFoundError
from hybrid.index.upkeep import DEFAULT_UPKEEP, Upkeep
from hybrid.query.limits import Limits, bounded, current_limits
from hybrid.storage import crypto
from hybrid.storage import remote as objstore
from hybrid.storage import transactions as tx
from hybrid.storage.crypto import KeySource
from hybrid.storage.ingest import check_column_name, conform, infer_schema, to_batches
from hybrid.storage.manifest import Manifest
from hybrid.storage.versions import VersionLog
from hybrid.storage.writer import write_fragments
from hybrid.table import Table

if TYPE_CHECKING:
    from hybrid.scoped import ScopedDatabase

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_COMPANIONS = ("__feedback", "__parents", "__tuned")
"""Folders the engine keeps beside a table ``<name>``, dropped with it (feedback, ingest parents, tune runs)."""


class Database:
    """A folder holding tables, one sub-folder each.

    Example:
        >>> import hybrid, tempfile
        >>> db = hybrid.connect(tempfile.mkdtemp())
        >>> _ = db.create_table("docs", [{"id": 1, "text": "hello"}])
        >>> db.table_names()
        ['docs']
        >>> db.sql("select count(*) as n from docs").to_pylist()
        [{'n': 1}]
    """

    def __init__(
        self,
        path: str | Path,
        upkeep: Upkeep | None = DEFAULT_UPKEEP,
        *,
        encryption_key: KeySource | None = None,
        previous_key: KeySource | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.store = objstore.open_store(path, storage_options, encryption_key)
        """The object store holding this database (None: a local folder); ``store.requests()`` counts requests."""
        self.uri = self.store.uri if self.store is not None else str(path)
        self.path = self.store.mirror if self.store is not None else objstore.local_path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.encrypted = (
            self.store is None and crypto.open_database(self.path, encryption_key, previous_key) is not None
        )
        """Whether the files of this database are encrypted at rest (:mod:`hybrid.storage.crypto`)."""
        self.upkeep = upkeep
        """Automatic upkeep of the tables this object opens (None: off; see :class:`hybrid.Upkeep`)."""

    def rotate_key(self, new_key: KeySource) -> int:
        """Re-encrypt every file of this encrypted database with `new_key`, in the foreground; returns the
        files rewritten. Run it while nothing else writes the database. Each file is replaced atomically;
        if it is interrupted, open with ``encryption_key=new_key, previous_key=old_key`` and run it again.
        """
        rewritten = crypto.rotate(self.path, new_key)
        self.encrypted = True
        return rewritten

    def __repr__(self) -> str:
        return f"Database({self.uri!r})"

    def _root(self, name: str) -> Path:
        if not isinstance(name, str) or not _NAME.match(name) or name.endswith("."):
            raise ValueError(
                f"invalid table name {name!r}: use letters, digits, '_', '-' or '.', "
                "not starting with '.' or '-', at most 128 characters"
            )
        return self.path / name

    def table_names(self) -> list[str]:
        """Names of the tables in this database, sorted."""
        if self.store is not None:
            names = self.store.list_folders("")
            return sorted(n for n in names if _NAME.match(n) and VersionLog(self.path / n).exists())
        return sorted(p.name for p in self.path.iterdir() if p.is_dir() and VersionLog(p).exists())

    def __contains__(self, name: str) -> bool:
        return VersionLog(self._root(name)).exists()

    def open_table(self, name: str) -> Table:
        """Open an existing table (it follows the newest version as others write)."""
        root = self._root(name)
        if not VersionLog(root).exists():
            raise TableNotFoundError(f"no table {name!r} in {self.uri}; tables: {self.table_names()}")
        return Table(root, upkeep=self.upkeep)

    def create_table(
        self,
        name: str,
        data: Any = None,
        schema: pa.Schema | None = None,
        mode: Literal["create", "overwrite", "exist_ok"] = "create",
        *,
        embedding: EmbeddingSpec | None = None,
    ) -> Table:
        """Create a table from `data` (any accepted input) and/or an explicit `schema`.

        Float-list columns of one length become vector columns
        (``fixed_size_list<float32>[dim]``). `mode`: "create" raises if the table
        exists, "exist_ok" opens it, "overwrite" commits the new content as the
        next version of the existing table (its history stays readable).

        `embedding` binds vector columns to text columns:
        ``{"vector": ("text", SentenceTransformerEmbedder())}`` embeds the text of
        every row added (unless it brings a vector) and every text query. The
        binding is stored with the table, so ``open_table`` restores it.
        """
        if mode not in ("create", "overwrite", "exist_ok"):
            raise ValueError(f"mode must be 'create', 'overwrite' or 'exist_ok', got {mode!r}")
        root = self._root(name)
        log = VersionLog(root)
        bindings = tuple(binding.parse(embedding)) if embedding else ()
        if log.exists():
            if mode == "create":
                raise TableExistsError(f"table {name!r} already exists; use mode='overwrite' or 'exist_ok'")
            if mode == "exist_ok":
                return self._existing(name, schema)
        table_schema, batches = _prepare(data, schema, bindings)
        field_ids = tuple(range(len(table_schema)))
        fragments = write_fragments(root, batches, table_schema, field_ids)
        content = tx.append_fragments(
            Manifest(
                version=0,
                timestamp=0.0,
                operation="create",
                schema=table_schema,
                field_ids=field_ids,
                next_field_id=len(field_ids),
                metadata=binding.to_metadata({}, bindings),
            ),
            fragments,
        )
        details = {"inserted": content.num_rows}
        if log.exists():  # overwrite: a new version of the existing table
            base = log.load_latest()
            tx.commit(log, base, "overwrite", lambda latest: _overwrite(latest, content), details)
            return Table(root, upkeep=self.upkeep)
        first = Manifest(**{**content.__dict__, "version": 1, "timestamp": time.time(), "details": details})
        if not log.publish(first):
            if mode == "exist_ok":
                return self._existing(name, schema)
            raise TableExistsError(f"table {name!r} was created concurrently")
        return Table(root, upkeep=self.upkeep)

    def _existing(self, name: str, schema: pa.Schema | None) -> Table:
        table = self.open_table(name)
        if schema is not None and not table.schema.equals(schema, check_metadata=False):
            raise SchemaError(f"table {name!r} exists with a different schema:\n{table.schema}")
        return table

    def drop_table(self, name: str, *, missing_ok: bool = False) -> None:
        """Delete a table and all its versions and files, with what the engine keeps beside it: its
        feedback (``<name>__feedback``, whose queries may name people), the whole texts of ingested
        documents (``<name>__parents``) and its tune runs (``<name>__tuned``)."""
        root = self._root(name)
        if not VersionLog(root).exists():
            if missing_ok:
                return
            raise TableNotFoundError(f"no table {name!r} in {self.uri}")
        if self.store is not None:
            self.store.remove_table(root)
            shutil.rmtree(root, ignore_errors=True)
            return
        shutil.rmtree(root)
        for suffix in _COMPANIONS:
            companion = self.path / f"{name}{suffix}"
            if companion.is_dir():
                shutil.rmtree(companion)

    def scoped(
        self,
        where: str | None = None,
        tables: str | Sequence[str] | None = None,
        *,
        vectors: bool = False,
        read_only: bool = False,
    ) -> ScopedDatabase:
        """A view of this database for one tenant or client: only `tables` (names or globs; None: all),
        every read and write bounded by the row scope `where`, vector columns withheld unless `vectors`
        (see :mod:`hybrid.scoped`).

        Example:
            >>> import hybrid, tempfile
            >>> db = hybrid.connect(tempfile.mkdtemp())
            >>> _ = db.create_table("docs", [{"tenant": "acme", "text": "a"}, {"tenant": "globex", "text": "g"}])
            >>> db.scoped(where="tenant = 'acme'", tables=["docs"]).open_table("docs").count_rows()
            1
        """
        from hybrid.scoped import ScopedDatabase

        return ScopedDatabase(self, where, tables, vectors=vectors, read_only=read_only)

    def sql(self, query: str, limits: Limits | None = None) -> pa.Table:
        """Run SQL in DuckDB where every table is visible by name (its newest version).

        The query runs under `limits` (default: the process's, :func:`hybrid.set_limits`): DuckDB's
        memory limit, and it is stopped after `limits.seconds`; either raises :class:`hybrid.LimitError`.
        """
        import duckdb

        limits = limits or current_limits()
        con = duckdb.connect(":memory:", config={"memory_limit": limits.memory})
        try:
            for table_name in self.table_names():
                con.register(table_name, Table(self.path / table_name).to_arrow(with_rowid=True))
            return bounded(con, lambda: con.sql(query).to_arrow_table(), limits, "SQL query")
        finally:
            con.close()


def _prepare(data: Any, schema: pa.Schema | None, bindings: tuple[binding.Binding, ...]) -> tuple[pa.Schema, Any]:
    if data is None:
        if schema is None:
            raise SchemaError("create_table needs data or a schema")
        table_schema = _with_bound_columns(schema, bindings)
        _check_schema(table_schema, bindings)
        return table_schema, iter(())
    data_schema, batches = to_batches(data)
    batches = binding.fill_batches(batches, bindings)
    first = next(batches, None)
    if first is not None:
        data_schema = first.schema
    table_schema = _with_bound_columns(schema if schema is not None else infer_schema(data_schema, first), bindings)
    _check_schema(table_schema, bindings)

    def stream() -> Any:
        if first is not None:
            yield conform(first, table_schema)
        for batch in batches:
            yield conform(batch, table_schema)

    return table_schema, stream()


def _with_bound_columns(schema: pa.Schema, bindings: tuple[binding.Binding, ...]) -> pa.Schema:
    for b in bindings:
        if b.column not in schema.names:
            schema = schema.append(binding.vector_field(b))
    return schema


def _check_schema(schema: pa.Schema, bindings: tuple[binding.Binding, ...]) -> None:
    for field in schema:
        check_column_name(field.name)
    binding.check_schema(schema, bindings)


def _overwrite(latest: Manifest, content: Manifest) -> Manifest:
    """Replace everything in `latest` with `content`, row ids continuing after latest's."""
    shifted = tx.append_fragments(
        Manifest(
            version=0,
            timestamp=0.0,
            operation="",
            schema=content.schema,
            field_ids=content.field_ids,
            next_field_id=content.next_field_id,
            next_rowid=latest.next_rowid,
            next_fragment_id=latest.next_fragment_id,
            metadata=content.metadata,  # the new content's bindings, not the old table's
        ),
        [f for f in content.fragments],
    )
    return reset_content(latest, shifted)
