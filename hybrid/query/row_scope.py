"""Row scopes: a `where` that bounds what a scoped key or view may read and write.

A caller's own filter is combined with the scope as parsed predicates, never as text: both
are validated by :func:`hybrid.query.filter.compile_filter`, parsed by DuckDB, joined under
one ``AND`` node of the parse tree and printed back to SQL by DuckDB
(``json_deserialize_sql``). So no text a caller sends (``1=1) OR (1=1``, a trailing
``--`` comment, an unbalanced quote) can move the scope out from under the ``AND``: what
the caller wrote is one child of the conjunction, whatever it holds.

Rows a scoped writer adds are checked against the scope by DuckDB over the whole batch
before anything is written (:func:`check_rows`).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pyarrow as pa

from hybrid.errors import AccessError, FilterError
from hybrid.query.filter import _TABLE, Filter, _connection, _parse_select, compile_filter

_SELECT = f"SELECT * FROM {_TABLE} WHERE "


def _tree(where: str) -> dict[str, Any]:
    """The whole parsed ``SELECT * FROM rows WHERE (where)`` statement (json_serialize_sql)."""
    raw = _connection().execute("SELECT json_serialize_sql(?)", [f"{_SELECT}(\n{where}\n)"]).fetchall()[0][0]
    parsed: dict[str, Any] = json.loads(raw)
    _parse_select(f"{_SELECT}(\n{where}\n)", "where", where)  # the same shape checks as compile_filter
    return parsed


def parse_where(where: str) -> None:
    """Check that `where` parses as one expression with no subquery (no table needed): FilterError if not."""
    from hybrid.query.filter import _walk

    tree = _tree(where)["statements"][0]["node"]["where_clause"]
    if any(node.get("class") == "SUBQUERY" for node in _walk(tree)):
        raise FilterError(f"where {where!r} may not contain subqueries")


@functools.lru_cache(maxsize=1_024)
def _combined_text(scope: str, where: str) -> str:
    statement = _tree(scope)
    node = statement["statements"][0]["node"]
    caller = _tree(where)["statements"][0]["node"]["where_clause"]
    node["where_clause"] = {
        "class": "CONJUNCTION",
        "type": "CONJUNCTION_AND",
        "alias": "",
        "query_location": 0,
        "children": [node["where_clause"], caller],
    }
    sql = _connection().execute("SELECT json_deserialize_sql(?)", [json.dumps(statement)]).fetchall()[0][0]
    if not isinstance(sql, str) or not sql.startswith(_SELECT):  # pragma: no cover - DuckDB contract
        raise FilterError(f"cannot combine where {where!r} with the row scope")
    return sql[len(_SELECT) :]


def combine(scope: str | None, where: str | None, schema: pa.Schema) -> str | None:
    """The filter a scoped caller's `where` becomes: ``(scope) AND (where)``, joined as parse trees.

    Both are validated against `schema` first (a malformed or unsafe `where` raises FilterError
    naming it); with no scope the caller's filter is returned as it is, with no `where` the scope.

    Example:
        >>> import pyarrow as pa
        >>> schema = pa.schema([("tenant", pa.string()), ("year", pa.int64())])
        >>> print(combine("tenant = 'acme'", "year > 2000) OR (1=1", schema))
        ((tenant = 'acme') AND (("year" > 2000) OR (1 = 1)))
    """
    if where is not None:
        compile_filter(where, schema)
    if scope is None:
        return where
    compile_filter(scope, schema)
    if where is None:
        return scope
    combined = _combined_text(scope, where)
    compile_filter(combined, schema)
    return combined


def scope_filter(scope: str, schema: pa.Schema) -> Filter:
    """The compiled scope (FilterError if it does not fit `schema`)."""
    return compile_filter(scope, schema)


def check_rows(scope: str | None, rows: pa.Table, what: str = "write") -> None:
    """Raise :class:`AccessError` unless every row of `rows` satisfies `scope` (NULL counts as outside).

    Example:
        >>> rows = pa.table({"tenant": ["acme", "globex"]})
        >>> check_rows("tenant = 'acme'", rows)
        Traceback (most recent call last):
        hybrid.errors.AccessError: 1 of 2 rows of this write fall outside the row scope tenant = 'acme' \
(first: row 1); nothing was written
    """
    if scope is None or rows.num_rows == 0:
        return
    flt = compile_filter(scope, rows.schema)
    inside = flt.mask(rows)
    if not inside.all():
        outside = (~inside).nonzero()[0]
        raise AccessError(
            f"{len(outside)} of {rows.num_rows} rows of this {what} fall outside the row scope {scope} "
            f"(first: row {int(outside[0])}); nothing was written"
        )
