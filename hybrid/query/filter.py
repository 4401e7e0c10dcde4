"""SQL filters and expressions over a table's columns, evaluated by DuckDB.

User text is only ever accepted as a single boolean (or scalar) expression over
the table's own columns: it is parsed first, and statements, subqueries, table
functions and references to anything but the table are refused. Evaluation runs
on a private in-memory DuckDB connection with external access disabled, so no
expression can read files, URLs or other databases.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import duckdb
import numpy as np
import pyarrow as pa

from hybrid.errors import FilterError
from hybrid.query.limits import bounded, check_growth, current_limits, grows
from hybrid.query.predicate import Node, Opaque, Value, read_tree, shape_of

_TABLE = "__hybrid_rows"
_POS = "__hybrid_pos"
_local = threading.local()
_DENIED_FUNCTIONS = frozenset({"current_setting", "getvariable", "getenv", "current_database", "current_schema"})
"""Functions that reveal the engine's settings or environment rather than the row's data."""


def _connection() -> duckdb.DuckDBPyConnection:
    """This thread's evaluation connection, made for the current limits (its settings are locked)."""
    memory = current_limits().memory
    con = getattr(_local, "con", None)
    if con is None or getattr(_local, "memory", None) != memory:
        con = duckdb.connect(
            ":memory:",
            config={
                "enable_external_access": False,
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
                "lock_configuration": True,
                "threads": 1,
                "memory_limit": memory,
            },
        )
        _local.con, _local.memory = con, memory
    return con


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _parse_select(sql: str, what: str, text: str) -> dict[str, Any]:
    """Parse `sql` (built around user `text`) and return its single SELECT node."""
    raw = _connection().execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0]
    parsed: dict[str, Any] = json.loads(raw[0])
    if parsed.get("error"):
        message = parsed.get("error_message", "syntax error")
        raise FilterError(f"malformed {what} {text!r}: {message}")
    statements = parsed["statements"]
    node = statements[0]["node"] if len(statements) == 1 else {}
    shape_ok = (
        node.get("type") == "SELECT_NODE"
        and not node.get("modifiers")
        and not node.get("cte_map", {}).get("map")
        and not node.get("group_expressions")
        and node.get("having") is None
        and node.get("qualify") is None
        and node.get("from_table", {}).get("type") == "BASE_TABLE"
        and node.get("from_table", {}).get("table_name") == _TABLE
    )
    if not shape_ok:
        raise FilterError(f"{what} {text!r} must be a single expression over the table's columns")
    return node


def _check_expression(tree: Any, what: str, text: str, columns: list[str]) -> list[str]:
    """Refuse subqueries and unknown columns; return the columns referenced."""
    referenced: list[str] = []
    for node in _walk(tree):
        cls = node.get("class")
        if cls == "SUBQUERY":
            raise FilterError(f"{what} {text!r} may not contain subqueries")
        if cls == "FUNCTION" and str(node.get("function_name", "")).lower() in _DENIED_FUNCTIONS:
            raise FilterError(f"{what} {text!r} may not call {node['function_name']}()")
        if cls == "WINDOW":
            raise FilterError(f"{what} {text!r} may not contain window functions")
        if cls == "COLUMN_REF":
            name = node["column_names"][-1]
            match = next((c for c in columns if c.lower() == name.lower()), None)
            if match is None:
                raise FilterError(f"unknown column {name!r} in {what} {text!r}; columns are: {', '.join(columns)}")
            if match not in referenced:
                referenced.append(match)
    check_growth(tree, what, text, current_limits())
    return referenced


def _run(sql: str, table: pa.Table, what: str, text: str) -> pa.Table:
    con = _connection()
    con.register(_TABLE, table)
    try:
        return bounded(con, lambda: con.sql(sql).to_arrow_table(), current_limits(), f"{what} {text!r}")
    except duckdb.Error as exc:
        raise FilterError(f"invalid {what} {text!r}: {exc}") from None
    finally:
        con.unregister(_TABLE)


@dataclass(frozen=True)
class Filter:
    """A validated SQL boolean expression over a table's columns.

    `tree` is the expression read into terms a scalar index can answer
    (:mod:`hybrid.query.predicate`), with its values as slots of `literals`.
    """

    sql: str
    columns: tuple[str, ...]
    tree: Node = field(default_factory=Opaque)
    literals: tuple[Value, ...] = ()

    def mask(self, table: pa.Table) -> np.ndarray:
        """Boolean mask of `table`'s rows for which the expression is TRUE (NULL counts as false)."""
        n = table.num_rows
        keep = np.zeros(n, dtype=bool)
        if n == 0:
            return keep
        source = table.select(list(self.columns)).append_column(_POS, pa.array(np.arange(n, dtype=np.int64)))
        result = _run(f"SELECT {_POS} FROM {_TABLE} WHERE ({self.sql})", source, "where", self.sql)
        positions = result.column(0).to_numpy()
        keep[positions] = True
        return keep


def compile_filter(where: str, schema: pa.Schema) -> Filter:
    """Validate `where` against `schema`; raise FilterError naming what is wrong.

    Compiled once per *shape*: filters that differ only in their number and string
    literals (``user_id = 17``, ``user_id = 18``) share one parse and validation, and
    the new filter's literals are bound into the shared tree. A filter whose text the
    shape scan cannot read exactly is compiled by its whole text.
    """
    if not isinstance(where, str):
        raise FilterError(f"where must be a SQL string, got {type(where).__name__}")
    seen = _recent.get(where)
    if seen is not None and seen[0] is schema:  # the same text on the same version's schema (a scoped key's)
        return seen[1]
    flt = _compile(where, schema)
    _recent.put(where, (schema, flt))
    return flt


def _compile(where: str, schema: pa.Schema) -> Filter:
    shaped = shape_of(where)
    if shaped is not None:
        template = _templates.get((shaped[0], schema))
        if template is not None:
            return replace(template, sql=where, literals=tuple(lit.value for lit in shaped[1]))
    flt, slotted = _compile_text(where, schema)
    if shaped is not None and slotted:
        _templates.put((shaped[0], schema), flt)
    return flt


K = TypeVar("K")
V = TypeVar("V")


class _Templates(Generic[K, V]):
    """A bounded, thread-safe map (least recently used goes): filter shape -> compiled template, and
    filter text -> (the schema object it was compiled against, the filter)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.items: OrderedDict[K, V] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.keep:
                self.items.popitem(last=False)


_templates: _Templates[tuple[str, pa.Schema], Filter] = _Templates(keep=1_024)
_recent: _Templates[str, tuple[pa.Schema, Filter]] = _Templates(keep=1_024)
"""Checked by identity of the schema object (one per table version): no hashing of the schema."""
_PREFIX = f"SELECT * FROM {_TABLE} WHERE (\n"


@functools.lru_cache(maxsize=256)
def _compile_text(where: str, schema: pa.Schema) -> tuple[Filter, bool]:
    """(filter, slotted): the validated filter, read into terms; `slotted` when its tree serves
    every filter of its shape (:func:`hybrid.query.predicate.read_tree`)."""
    if not where.strip():
        raise FilterError('where is empty: pass a SQL boolean expression such as "year >= 2020"')
    sql = f"{_PREFIX}{where}\n)"
    node = _parse_select(sql, "where", where)
    columns = _check_expression(node["where_clause"], "where", where, schema.names)
    # Bind against an empty table of the schema: catches type errors and unknown functions.
    result = _run(f"DESCRIBE SELECT ({where}) AS m FROM {_TABLE}", schema.empty_table(), "where", where)
    kind = str(result.column(1)[0]) if result.num_rows else "?"
    if kind not in ("BOOLEAN", '"NULL"', "NULL"):
        raise FilterError(f"where {where!r} must be a boolean expression, but it gives {kind}")
    shaped = shape_of(where)
    literals = shaped[1] if shaped is not None else None
    tree, slotted = read_tree(node["where_clause"], schema.names, sql, len(_PREFIX), literals)
    slotted = slotted and not grows(node["where_clause"])  # repeat('a', 9) must not vouch for repeat('a', 9e9)
    values = tuple(lit.value for lit in literals) if literals is not None else ()
    return Filter(where, tuple(columns), tree, values), slotted


def evaluate_expressions(exprs: Mapping[str, str], table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Evaluate SQL scalar expressions (name -> expression) row by row over `table`."""
    if not exprs:
        raise FilterError("no expressions given")
    select: list[str] = []
    referenced: list[str] = []
    for name, expr in exprs.items():
        if not isinstance(expr, str) or not expr.strip():
            raise FilterError(f"expression for {name!r} must be a non-empty SQL string")
        node = _parse_select(f"SELECT ({expr}) FROM {_TABLE}", "expression", expr)
        if len(node["select_list"]) != 1:
            raise FilterError(f"expression {expr!r} must be a single expression")
        for col in _check_expression(node["select_list"], "expression", expr, schema.names):
            if col not in referenced:
                referenced.append(col)
        select.append(f'({expr}) AS "{name.replace(chr(34), chr(34) * 2)}"')
    source = table.select(referenced) if referenced else pa.table({_POS: pa.nulls(table.num_rows, pa.int8())})
    sql = f"SELECT {', '.join(select)} FROM {_TABLE}"
    out = _run(sql, source, "expression", "; ".join(exprs.values()))
    if out.num_rows != table.num_rows:  # pragma: no cover - DuckDB contract
        raise FilterError("expression evaluation changed the number of rows")
    return out
