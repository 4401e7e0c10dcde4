"""A filter as a tantivy clause over the filter fields of a full-text index (:mod:`hybrid.index.fts_filters`).

Only positive filters go in: =, IN, BETWEEN and ranges (ranges on integers), a boolean
column, joined by AND / OR. NOT, <>, IS NULL, list and float columns, and anything only
DuckDB reads leave the filter to the allowed-row path, which is always correct. A NULL
value stores no term, so no positive clause matches it, as in SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import tantivy

from hybrid.index.fts_filters import Kind
from hybrid.query.predicate import And, Node, Or, Term, Value, bind

_INT64 = (-(2**63), 2**63 - 1)
MAX_TERM_BYTES = 65_000
"""Below tantivy's 65,530-byte term limit: a value this long or longer may not be in the index."""


def to_query(
    tree: Node, literals: Sequence[Value], fields: Mapping[str, tuple[str, Kind]], schema: tantivy.Schema
) -> tantivy.Query | None:
    """The filter `tree` (values bound from `literals`) as a tantivy clause over the filter `fields`
    (column -> (field, kind)), or None when any part cannot be pushed."""
    return _Pusher(literals, fields, schema).node(tree)


class _Pusher:
    def __init__(
        self, literals: Sequence[Value], fields: Mapping[str, tuple[str, Kind]], schema: tantivy.Schema
    ) -> None:
        self.literals, self.fields, self.schema = literals, fields, schema

    def node(self, node: Node) -> tantivy.Query | None:
        if isinstance(node, (And, Or)):
            found = [self.node(c) for c in node.children]
            parts = [p for p in found if p is not None]
            if len(parts) < len(found):
                return None
            occur = tantivy.Occur.Must if isinstance(node, And) else tantivy.Occur.Should
            return tantivy.Query.boolean_query([(occur, p) for p in parts])
        if isinstance(node, Term):
            return self.term(node)
        return None  # Not, Constant, Opaque: the allowed-row path decides

    def term(self, t: Term) -> tantivy.Query | None:
        found = self.fields.get(t.column)
        if found is None:
            return None
        name, kind = found
        values = [bind(v, self.literals) for v in t.values]
        if t.op == "truth":
            return self.equal(name, kind, True) if kind == "bool" else None
        if t.op == "=":
            return self.equal(name, kind, values[0])
        if t.op == "in":
            clauses = [self.equal(name, kind, v) for v in values if v is not None]
            parts = [p for p in clauses if p is not None]
            if not parts or len(parts) < len(clauses):
                return None
            return tantivy.Query.boolean_query([(tantivy.Occur.Should, p) for p in parts])
        if t.op in ("<", "<=", ">", ">=", "between") and kind in ("int", "uint"):
            return self.range(name, kind, t.op, values)
        return None

    def equal(self, name: str, kind: Kind, value: Any) -> tantivy.Query | None:
        if kind == "str":  # tantivy drops terms over MAX_TERM_BYTES, so longer values are never pushed
            if not isinstance(value, str) or len(value.encode("utf-8")) >= MAX_TERM_BYTES:
                return None
            return tantivy.Query.term_query(self.schema, name, value)
        if kind == "bool":
            return tantivy.Query.term_query(self.schema, name, int(value)) if isinstance(value, bool) else None
        number = _integer(value)
        if number is None or not _fits(kind, number):
            return None
        return tantivy.Query.term_query(self.schema, name, number)

    def range(self, name: str, kind: Kind, op: str, values: list[Any]) -> tantivy.Query | None:
        numbers = [_integer(v) for v in values]
        if any(n is None for n in numbers) or not all(_fits(kind, n) for n in numbers):  # type: ignore[arg-type]
            return None
        lo, hi, lo_inc, hi_inc = _bounds(op, numbers)
        field_type = tantivy.FieldType.Unsigned if kind == "uint" else tantivy.FieldType.Integer
        low, high = (0, 2**64 - 1) if kind == "uint" else _INT64
        return tantivy.Query.range_query(
            self.schema,
            name,
            field_type,
            low if lo is None else lo,
            high if hi is None else hi,
            include_lower=lo_inc or lo is None,
            include_upper=hi_inc or hi is None,
        )


def _integer(value: Any) -> int | None:
    """An integral literal as an int (1, 2.0, 1e3), else None (1.5 is left to the allowed-row path)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (Decimal, float)) and value == int(value):
        return int(value)
    return None


def _fits(kind: Kind, n: int) -> bool:
    return 0 <= n < 2**64 if kind == "uint" else _INT64[0] <= n <= _INT64[1]


def _bounds(op: str, numbers: list[Any]) -> tuple[int | None, int | None, bool, bool]:
    if op == "between":
        return numbers[0], numbers[1], True, True
    if op in ("<", "<="):
        return None, numbers[0], True, op == "<="
    return numbers[0], None, op == ">=", True
