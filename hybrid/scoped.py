"""Scoped views: a database or table restricted to some tables, a row scope and (or not) raw vectors.

:meth:`hybrid.Database.scoped` returns a :class:`ScopedDatabase` that an application embedding
the library can hand to code serving one tenant::

    acme = db.scoped(where="tenant_id = 'acme'", tables=["docs", "faq_*"])
    acme.open_table("docs").search("refund policy").to_list()   # acme's rows only

Every read, count, search, take, write, delete and update made through it is bounded by the row
scope: the caller's own `where` is joined to it as parse trees (:mod:`hybrid.query.row_scope`),
rows it adds must satisfy it (checked by DuckDB over the whole batch; one row outside and nothing
is written), updates may not change the columns it names. Tables outside `tables` answer
exactly like missing ones. Vector columns are withheld unless `vectors=True`.

A scoped view guards against untrusted *input* (filters, rows, names), the way the server's
scoped API keys do; it is not a sandbox for untrusted Python code, which can reach anything in
its process.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from hybrid.commits import Commit, VersionInfo
from hybrid.errors import AccessError, RowNotFoundError, TableNotFoundError
from hybrid.query.filter import compile_filter
from hybrid.query.row_scope import check_rows, combine
from hybrid.query.search import Query
from hybrid.storage.ingest import is_vector_type, to_batches

if TYPE_CHECKING:
    from hybrid.db import Database
    from hybrid.table import Table


def _hidden_columns(schema: pa.Schema, vectors: bool) -> tuple[str, ...]:
    return () if vectors else tuple(f.name for f in schema if is_vector_type(f.type))


def _refuse_hidden(hidden: Sequence[str], columns: Iterable[str], what: str) -> None:
    for column in columns:
        if column in hidden:
            raise AccessError(
                f"{what}: column {column!r} holds raw vectors, which this scope is not granted "
                "(grant vectors to read them)"
            )


class ScopedQuery(Query):
    """A :class:`hybrid.query.search.Query` whose filter always includes the row scope, and which
    returns no vector column the scope is not granted. Made by :meth:`ScopedTable.search`."""

    scope: str | None = None
    hidden: tuple[str, ...] = ()

    @classmethod
    def of(cls, query: Query, scope: str | None, hidden: tuple[str, ...]) -> ScopedQuery:
        new = object.__new__(cls)
        new.__dict__.update(query.__dict__)
        new.__dict__.update(scope=scope, hidden=hidden, filter_sql=scope)
        if hidden:
            new.__dict__.update(columns=tuple(n for n in query.table.schema.names if n not in hidden))
        return new

    def where(self, sql: str, prefilter: bool = True) -> Query:
        """Keep rows matching `sql` *and* the row scope (joined as parsed predicates)."""
        if not isinstance(sql, str) or not sql.strip():
            raise ValueError("where needs a non-empty SQL boolean expression")
        schema = self.table.schema
        _refuse_hidden(self.hidden, compile_filter(sql, schema).columns, "where")
        combined = combine(self.scope, sql, schema)
        assert combined is not None
        return self._with(filter_sql=combined, prefilter=prefilter)

    def select(self, columns: Sequence[str]) -> Query:
        _refuse_hidden(self.hidden, [columns] if isinstance(columns, str) else columns, "select")
        return super().select(columns)

    def group_by(self, column: str | None = None, per_group: int = 1, score: Any = "max", fuse: Any = "rows") -> Query:
        _refuse_hidden(self.hidden, [column] if column else [], "group_by")
        return super().group_by(column, per_group, score, fuse)

    def highlight(self, column: str | None = None, width: int = 200, pre: str = "<em>", post: str = "</em>") -> Query:
        _refuse_hidden(self.hidden, [column] if column else [], "highlight")
        return super().highlight(column, width, pre, post)

    def expand(self, neighbours: int = 0, parent: bool = False) -> Query:
        """Refused under a row scope: a passage joins neighbouring chunks the scope may not cover."""
        if self.scope is not None:
            raise AccessError("expand() is not available under a row scope: neighbouring chunks may lie outside it")
        return super().expand(neighbours, parent)

    def like(self, rowids: Sequence[int], unlike: Sequence[int] | None = None, max_terms: int = 25) -> Query:
        """More like these rows, each of which must lie inside the row scope (like a missing row otherwise)."""
        if self.scope is not None:
            check_in_scope(self.table, self.scope, [*rowids, *(unlike or [])])
        return super().like(rowids, unlike, max_terms)


def check_in_scope(table: Table, scope: str, rowids: Sequence[int] | np.ndarray | pa.Array) -> None:
    """RowNotFoundError, worded as for a row that is not live, for any id outside `scope`."""
    ids = np.asarray(rowids.to_numpy(zero_copy_only=False) if isinstance(rowids, pa.Array) else rowids)
    if not ids.size:
        return
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"row ids must be integers, got dtype {ids.dtype}")
    snap = table.snapshot()
    allowed = table._allowed_ids(snap, scope)
    outside = ids[~np.isin(ids, allowed.astype(np.int64) if ids.dtype.kind == "i" else allowed)]
    if outside.size:
        raise RowNotFoundError(
            f"{outside.size} row id(s) are not live rows of version {snap.manifest.version}, "
            f"e.g. {outside[:10].tolist()}"
        )


class ScopedTable:
    """A table seen through a scope: every read and write bounded by `where`; vector columns
    withheld unless `vectors`; writes refused when `read_only`.

    Example:
        >>> import hybrid, tempfile
        >>> db = hybrid.connect(tempfile.mkdtemp())
        >>> rows = [{"tenant": t, "text": f"{t} doc", "vector": [1.0, 0.0]} for t in ("acme", "globex")]
        >>> _ = db.create_table("docs", rows)
        >>> acme = db.scoped(where="tenant = 'acme'").open_table("docs")
        >>> acme.count_rows(), acme.to_arrow(where="true OR tenant = 'globex'")["text"].to_pylist()
        (1, ['acme doc'])
        >>> acme.add([{"tenant": "globex", "text": "sneaky", "vector": [0.0, 1.0]}])
        Traceback (most recent call last):
        hybrid.errors.AccessError: 1 of 1 rows of this add fall outside the row scope tenant = 'acme' \
(first: row 0); nothing was written
    """

    def __init__(self, table: Table, where: str | None = None, *, vectors: bool = False, read_only: bool = False):
        if where is not None:
            compile_filter(where, table.schema)  # a scope that does not fit the table fails here, not later
        self._table = table
        self.where = where
        """The row scope (None: every row)."""
        self.vectors = vectors
        self.read_only = read_only or table.read_only

    def __repr__(self) -> str:
        return f"ScopedTable({self.name!r}, where={self.where!r}, vectors={self.vectors})"

    @property
    def name(self) -> str:
        return self._table.name

    @property
    def version(self) -> int:
        return self._table.version

    @property
    def schema(self) -> pa.Schema:
        return self._table.schema

    @property
    def hidden_columns(self) -> tuple[str, ...]:
        """Vector columns this scope does not return."""
        return _hidden_columns(self._table.schema, self.vectors)

    def _columns(self, columns: Sequence[str] | None) -> list[str] | None:
        hidden = self.hidden_columns
        if columns is None:
            return [n for n in self.schema.names if n not in hidden] if hidden else None
        _refuse_hidden(hidden, columns, "columns")
        return list(columns)

    def _filter(self, where: str | None) -> str | None:
        if where is not None:
            _refuse_hidden(self.hidden_columns, compile_filter(where, self.schema).columns, "where")
        return combine(self.where, where, self.schema)

    # -- reads ---------------------------------------------------------------------------------

    def count_rows(self, where: str | None = None) -> int:
        """Rows inside the scope (and matching `where`)."""
        return self._table.count_rows(self._filter(where))

    def to_arrow(
        self, columns: Sequence[str] | None = None, where: str | None = None, *, with_rowid: bool = False
    ) -> pa.Table:
        """The rows inside the scope (and matching `where`)."""
        return self._table.to_arrow(self._columns(columns), self._filter(where), with_rowid=with_rowid)

    def scan(
        self,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        batch_size: int = 65_536,
        *,
        with_rowid: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of the rows inside the scope (and matching `where`)."""
        return self._table.scan(self._columns(columns), self._filter(where), batch_size, with_rowid=with_rowid)

    def take(self, rowids: Sequence[int] | np.ndarray | pa.Array, columns: Sequence[str] | None = None) -> pa.Table:
        """Rows by `_rowid`; an id outside the scope is refused exactly like one that is not live."""
        if self.where is not None:
            check_in_scope(self._table, self.where, rowids)
        return self._table.take(rowids, self._columns(columns))

    def search(self, query: Any = None, **options: Any) -> ScopedQuery:
        """:meth:`hybrid.Table.search`, bounded by the scope."""
        q = self._table.search(query, **options)
        return ScopedQuery.of(q, self.where, self.hidden_columns)

    def checkout(self, version: int) -> ScopedTable:
        """The same scope over an earlier `version` (read-only, like :meth:`hybrid.Table.checkout`)."""
        return ScopedTable(self._table.checkout(version), self.where, vectors=self.vectors, read_only=True)

    def index_stats(self) -> list[dict[str, Any]]:
        """Index statistics; they count every row of the table, so a row scope withholds them."""
        self._no_row_scope("index statistics count every row of the table")
        return self._table.index_stats()

    def versions(self) -> list[VersionInfo]:
        """The version history; it counts every row of the table, so a row scope withholds it."""
        self._no_row_scope("the version history counts every row of the table")
        return self._table.versions()

    def _no_row_scope(self, why: str) -> None:
        if self.where is not None:
            raise AccessError(f"{why}; a row-scoped key or view cannot read them")

    # -- writes --------------------------------------------------------------------------------

    def _writable(self, operation: str) -> None:
        if self.read_only:
            raise AccessError(f"{operation}: this scope is read-only")

    def add(self, data: Any) -> Commit:
        """Append rows, every one of which must satisfy the row scope (else nothing is written)."""
        return self._table.add(self.checked_rows(data))

    def checked_rows(self, data: Any) -> Any:
        """`data` as rows this scope may add (AccessError naming the problem otherwise), not written."""
        self._writable("add")
        if self.where is None:
            return data
        schema, batches = to_batches(data)
        rows = pa.Table.from_batches(list(batches), schema)
        needed = compile_filter(self.where, self.schema).columns
        missing = [c for c in needed if c not in rows.column_names]
        if missing:
            raise AccessError(
                f"rows added under the row scope {self.where} must carry its column(s) {missing}; nothing was written"
            )
        check_rows(self.where, rows.select(list(needed)), "add")
        return rows

    def delete(self, where: str) -> Commit:
        """Delete the rows inside the scope that match `where`."""
        self._writable("delete")
        combined = self._filter(where)
        assert combined is not None
        return self._table.delete(combined)

    def update(
        self,
        where: str | None = None,
        values: Mapping[str, Any] | None = None,
        *,
        values_sql: Mapping[str, str] | None = None,
    ) -> Commit:
        """Update rows inside the scope; the columns the scope names cannot be changed."""
        self._writable("update")
        if self.where is not None:
            fixed = set(compile_filter(self.where, self.schema).columns)
            changed = sorted(fixed & (set(values or {}) | set(values_sql or {})))
            if changed:
                raise AccessError(f"update may not change {changed}: the row scope {self.where} is defined on them")
        return self._table.update(self._filter(where), values, values_sql=values_sql)


def unscoped(view: Table | ScopedTable) -> Table:
    """The table behind `view` (for trusted code that needs its metadata, such as the server)."""
    return view._table if isinstance(view, ScopedTable) else view


def matches(patterns: Sequence[str] | None, name: str) -> bool:
    """Whether table `name` is one of `patterns` (names or ``fnmatch`` globs; None: every table).

    >>> matches(["docs", "faq_*"], "faq_en"), matches(["docs"], "docs2"), matches(None, "x")
    (True, False, True)
    """
    return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)


class ScopedDatabase:
    """A database seen through a scope: only the tables `tables` names (globs allowed; None: all),
    each opened as a :class:`ScopedTable` with row scope `where`."""

    def __init__(
        self,
        db: Database,
        where: str | None = None,
        tables: Sequence[str] | str | None = None,
        *,
        vectors: bool = False,
        read_only: bool = False,
    ) -> None:
        self._db = db
        self.where = where
        self.tables = (tables,) if isinstance(tables, str) else (tuple(tables) if tables is not None else None)
        self.vectors = vectors
        self.read_only = read_only

    def __repr__(self) -> str:
        return f"ScopedDatabase({str(self._db.path)!r}, where={self.where!r}, tables={self.tables!r})"

    def table_names(self) -> list[str]:
        """The granted tables that exist, sorted."""
        return [n for n in self._db.table_names() if matches(self.tables, n)]

    def __contains__(self, name: str) -> bool:
        return matches(self.tables, name) and name in self._db

    def open_table(self, name: str) -> ScopedTable:
        """A granted table, scoped; any other name raises TableNotFoundError as a missing table does.

        Scoped views of one database share one open table per name (it follows the newest version),
        so a view made per request or per tenant finds the indexes already loaded.
        """
        if not matches(self.tables, name) or name not in self._db:
            raise TableNotFoundError(f"no table {name!r} in {self._db.path}; tables: {self.table_names()}")
        return ScopedTable(_shared(self._db, name), self.where, vectors=self.vectors, read_only=self.read_only)


_open: weakref.WeakKeyDictionary[Database, dict[str, tuple[int, Table]]] = weakref.WeakKeyDictionary()
_open_lock = threading.Lock()


def _shared(db: Database, name: str) -> Table:
    """One open table per (database object, name); opened again if the table's folder was replaced."""
    folder = os.stat(db.path / name).st_ino
    with _open_lock:
        tables = _open.setdefault(db, {})
        known = tables.get(name)
        if known is not None and known[0] == folder:
            return known[1]
    table = db.open_table(name)
    with _open_lock:
        _open.setdefault(db, {})[name] = (folder, table)
    return table
