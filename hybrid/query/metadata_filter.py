"""Metadata filters as dicts (``{"lang": "en", "year": {"$gte": 2020}}``) translated to SQL.

Used by the framework adapters: a key is a column of the table or a (dotted) path into a JSON
metadata column; every value is quoted, every key validated, so a dict filter can never
inject SQL. The result is an ordinary `Query.where` expression.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import Any

from hybrid.errors import FilterError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMPARE = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_OPERATORS = (*_COMPARE, "$in", "$nin", "$exists", "$like")


def filter_to_sql(
    filter: Mapping[str, Any], *, json_column: str | None = "metadata", columns: Collection[str] = ()
) -> str:
    """Translate a metadata filter dict into a SQL boolean expression, quoting every value.

    ``{"key": value}`` is equality; ``{"key": {"$op": value}}`` with `$op` one of ``$eq $ne
    $gt $gte $lt $lte $in $nin $exists $like``; several keys or operators mean AND;
    ``{"$and": [...]}``, ``{"$or": [...]}`` and ``{"$not": {...}}`` combine filters. A key
    names a column of its own if it is in `columns`, else a (dotted, nested) key of the JSON
    `json_column`. Values are strings, numbers, booleans or None (``None`` equals a missing
    key or a null); JSON values compare only with values of the same kind. ``$ne`` and
    ``$nin`` also match documents without the key; ``$exists`` tests for the key (a JSON null
    counts as present, a null column value as absent).

    Example:
        >>> print(filter_to_sql({"lang": "en", "year": {"$gte": 2020}}, columns=["lang", "year"]))
        (("lang" = 'en') AND ("year" >= 2020))
        >>> print(filter_to_sql({"$or": [{"lang": "en"}, {"year": {"$lt": 2000}}]}, columns=["lang", "year"]))
        (("lang" = 'en') OR ("year" < 2000))
    """
    if not isinstance(filter, Mapping):
        raise FilterError(f"a filter must be a dict, got {type(filter).__name__}")
    parts = []
    for key, condition in filter.items():
        if not isinstance(key, str):
            raise FilterError(f"filter keys must be strings, got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(condition, (list, tuple)) or not condition:
                raise FilterError(f"{key} needs a non-empty list of filters, got {condition!r}")
            joined = f" {key[1:].upper()} ".join(
                filter_to_sql(f, json_column=json_column, columns=columns) for f in condition
            )
            parts.append(f"({joined})")
        elif key == "$not":
            parts.append(f"(NOT COALESCE({filter_to_sql(condition, json_column=json_column, columns=columns)}, FALSE))")
        elif key.startswith("$"):
            raise FilterError(f"unknown filter operator {key!r} at the top level; use $and, $or, $not or a key")
        else:
            parts.append(_key_condition(_Field(key, json_column, columns), condition))
    if not parts:
        return "TRUE"
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


class _Field:
    """A filtered metadata key: a column of its own, or a path into the JSON column."""

    def __init__(self, key: str, json_column: str | None, columns: Collection[str]) -> None:
        self.key = key
        self.column = key if key in columns else None
        if self.column is None:
            if json_column is None:
                raise FilterError(f"unknown metadata key {key!r}: the table has no column for it and no JSON metadata")
            segments = key.split(".")
            bad = [s for s in segments if not _KEY.match(s)]
            if bad:
                raise FilterError(
                    f"invalid metadata key {key!r}: use letters, digits and '_' (dots for nested keys), "
                    "or a SQL string filter"
                )
            path = sql_literal("$." + ".".join(f'"{s}"' for s in segments))
            self.json = sql_ident(json_column)
            self.path = path

    def _json(self, fn: str) -> str:
        return f"{fn}({self.json}, {self.path})"

    def compare(self, op: str, value: Any) -> str:
        """SQL for `field op value`: TRUE, FALSE or NULL (a missing key or another kind of value)."""
        if value is None:
            if op != "=":
                raise FilterError(f"{self.key!r}: None can only be compared with $eq / $ne")
            return self.missing()
        literal = _value_literal(self.key, value)
        if self.column is not None:
            return f"{sql_ident(self.column)} {op} {literal}"
        kind, text = self._json("json_type"), self._json("json_extract_string")
        if isinstance(value, bool):
            if op != "=":
                raise FilterError(f"{self.key!r}: booleans can only be compared with $eq / $ne")
            return f"({kind} = 'BOOLEAN' AND {text} = {sql_literal(str(value).lower())})"
        if isinstance(value, str):
            return f"({kind} = 'VARCHAR' AND {text} {op} {literal})"
        whole = f"TRY_CAST({text} AS HUGEINT) {op} {literal}"
        fraction = f"TRY_CAST({text} AS DOUBLE) {op} {literal}"
        return f"CASE WHEN {kind} IN ('BIGINT', 'UBIGINT') THEN {whole} WHEN {kind} = 'DOUBLE' THEN {fraction} END"

    def missing(self, *, null_too: bool = True) -> str:
        """SQL true when the key is absent (or, with `null_too`, holds a JSON null)."""
        if self.column is not None:  # a column cannot tell a missing key from a None
            return f"({sql_ident(self.column)} IS NULL)"
        kind = self._json("json_type")
        return f"({kind} IS NULL OR {kind} = 'NULL')" if null_too else f"({kind} IS NULL)"

    def like(self, pattern: Any) -> str:
        if not isinstance(pattern, str):
            raise FilterError(f"{self.key!r}: $like needs a string pattern, got {pattern!r}")
        target = sql_ident(self.column) if self.column is not None else self._json("json_extract_string")
        return f"{target} LIKE {sql_literal(pattern)}"


def _key_condition(field: _Field, condition: Any) -> str:
    if not isinstance(condition, Mapping):
        return f"({field.compare('=', condition)})"
    if not condition:
        raise FilterError(f"empty condition for {field.key!r}")
    parts = []
    for op, value in condition.items():
        if op == "$ne":
            parts.append(f"(NOT COALESCE({field.compare('=', value)}, FALSE))")
        elif op in _COMPARE:
            parts.append(f"({field.compare(_COMPARE[op], value)})")
        elif op in ("$in", "$nin"):
            if not isinstance(value, (list, tuple, set, frozenset)):
                raise FilterError(f"{field.key!r}: {op} needs a list of values, got {value!r}")
            any_of = " OR ".join(f"COALESCE({field.compare('=', v)}, FALSE)" for v in value) or "FALSE"
            parts.append(f"({any_of})" if op == "$in" else f"(NOT ({any_of}))")
        elif op == "$exists":
            if not isinstance(value, bool):
                raise FilterError(f"{field.key!r}: $exists needs True or False, got {value!r}")
            absent = field.missing(null_too=False)
            parts.append(f"(NOT {absent})" if value else absent)
        elif op == "$like":
            parts.append(f"({field.like(value)})")
        else:
            raise FilterError(f"unknown operator {op!r} for {field.key!r}; operators: {', '.join(_OPERATORS)}")
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def _value_literal(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"{key!r}: cannot compare with {value!r}")
        return repr(value)
    if isinstance(value, str):
        return sql_literal(value)
    raise FilterError(f"{key!r}: filter values must be strings, numbers, booleans or None, got {type(value).__name__}")


def sql_literal(text: str) -> str:
    """A SQL string literal (DuckDB strings have no backslash escapes; a quote is doubled)."""
    if "\x00" in text:
        raise FilterError("filter values may not contain NUL characters")
    return "'" + text.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A quoted SQL identifier (a double quote inside is doubled)."""
    return '"' + name.replace('"', '""') + '"'


__all__ = ["filter_to_sql", "sql_ident", "sql_literal"]
