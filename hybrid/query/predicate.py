"""A `where`, read into the terms a scalar index can answer, and its shape for the compile cache.

:func:`read_tree` turns DuckDB's parse tree of a filter (``json_serialize_sql``) into
a small tree of :class:`Term` / :class:`And` / :class:`Or` / :class:`Not` nodes. A
node this module does not understand (a function, a cast, arithmetic, a column
compared with a column...) becomes :class:`Opaque`: the filter layer then leaves
that part to DuckDB, so reading less never answers wrongly.

:func:`shape_of` splits a filter's text into its *shape* (the text with every
number and string literal replaced by a placeholder of its kind) and the literals,
without DuckDB. Filters that differ only in their literals share a shape, and so
one parse and validation: ``user_id = 17`` and ``user_id = 18`` compile once.
The literal values a compiled tree refers to are :class:`Slot` numbers into the
literals of the filter at hand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Union

Value = Union[int, Decimal, float, str, bool, None]  # noqa: UP007 - a runtime alias on 3.10
"""A literal: int, Decimal (a plain decimal: DuckDB's DECIMAL), float (1e5 style: DuckDB's DOUBLE)..."""

COMPARISONS = {
    "COMPARE_EQUAL": "=",
    "COMPARE_NOTEQUAL": "!=",
    "COMPARE_LESSTHAN": "<",
    "COMPARE_LESSTHANOREQUALTO": "<=",
    "COMPARE_GREATERTHAN": ">",
    "COMPARE_GREATERTHANOREQUALTO": ">=",
}
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
CONTAINS_FUNCTIONS = frozenset({"list_contains", "list_has", "array_contains", "array_has"})


@dataclass(frozen=True)
class Slot:
    """The `index`-th literal of the filter's text, times `sign` (DuckDB folds a leading minus in)."""

    index: int
    sign: int = 1


Operand = Union[Slot, Value]  # noqa: UP007


@dataclass(frozen=True)
class Term:
    """`column <op> values`: op is one of = != < <= > >= in between is_null not_null contains truth."""

    column: str
    op: str
    values: tuple[Operand, ...] = ()


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Constant:
    """TRUE, FALSE or NULL as a whole condition."""

    value: bool | None


@dataclass(frozen=True)
class Opaque:
    """A part only DuckDB can evaluate."""


Node = Union[Term, And, Or, Not, Constant, Opaque]  # noqa: UP007


# -- literals and shapes -------------------------------------------------------------------

_TOKENS = re.compile(
    r"""(?P<string>'(?:[^']|'')*')"""
    r"""|(?P<quoted>"(?:[^"]|"")*")"""
    r"""|(?P<word>[A-Za-z_][A-Za-z0-9_$]*)"""
    r"""|(?P<number>(?:\d+\.?\d*|\.\d+)(?P<exponent>[eE][+-]?\d+)?)"""
    r"""|(?P<refuse>--|/\*|\$|')"""
    r"""|(?P<other>[^-/.'"A-Za-z_0-9$]+|.)""",
    re.DOTALL,
)
_GLUED = re.compile(r"[A-Za-z0-9_$.'\"]")


@dataclass(frozen=True)
class Literal:
    start: int
    end: int
    kind: str  # "i" integer, "n" decimal, "e" number with an exponent, "s" string
    value: Value


def shape_of(text: str) -> tuple[str, tuple[Literal, ...]] | None:
    """(shape, literals) of a filter's text, or None when the text has something the scan does not
    read exactly (comments, prefixed strings such as E'..', dollar quoting, a number glued to a
    name): such filters are compiled by their whole text instead."""
    shape: list[str] = []
    literals: list[Literal] = []
    previous, previous_number = "", False
    for m in _TOKENS.finditer(text):
        kind, token = m.lastgroup, m.group(0)
        glued = bool(previous) and _GLUED.match(previous[-1]) is not None
        if kind == "refuse" or (glued and kind in ("string", "number")) or (kind == "word" and previous_number):
            return None  # E'..', X'..', 1abc, 1.2.3: not a plain literal
        if kind == "string":
            literals.append(Literal(m.start(), m.end(), "s", token[1:-1].replace("''", "'")))
            shape.append("\x00s")
        elif kind == "number":
            literal_kind = "i" if token.isdigit() else ("e" if m.group("exponent") else "n")
            literals.append(Literal(m.start(), m.end(), literal_kind, _number(token)))
            shape.append("\x00" + literal_kind)
        else:
            shape.append(token)
        previous, previous_number = token, kind == "number"
    return "".join(shape), tuple(literals)


def _number(text: str) -> int | Decimal | float:
    """A number literal's value as DuckDB types it: INTEGER, DECIMAL, or DOUBLE when it has an exponent."""
    if text.lstrip("-").isdigit():
        return int(text)
    return float(text) if "e" in text.lower() else Decimal(text)


def bind(operand: Operand, literals: Sequence[Value]) -> Value:
    """The value of an operand for the filter whose literals are `literals`."""
    if not isinstance(operand, Slot):
        return operand
    value = literals[operand.index]
    if operand.sign < 0:
        assert isinstance(value, (int, Decimal)) and not isinstance(value, bool)
        return -value
    return value


# -- DuckDB's parse tree -> terms ----------------------------------------------------------


class _Reader:
    """Reads a where clause; maps each constant to the literal of the text it came from."""

    def __init__(self, columns: Sequence[str], text: str, offset: int, literals: Sequence[Literal] | None) -> None:
        self.columns = {c.lower(): c for c in columns}
        self.sql = text  # the parsed SQL, which holds the filter's text from `offset` on
        self.text = text[offset:]
        self.offset = offset
        self.by_start = {lit.start: i for i, lit in enumerate(literals)} if literals is not None else None
        self.literals = literals
        self.slotted = True  # every constant of the tree mapped to a literal of the text
        self.encoded = text.encode("utf-8")

    def node(self, n: dict[str, Any]) -> Node:
        cls, kind = n.get("class"), n.get("type")
        if cls == "CONJUNCTION" and kind in ("CONJUNCTION_AND", "CONJUNCTION_OR"):
            kids = tuple(self.node(c) for c in n["children"])
            return And(kids) if kind == "CONJUNCTION_AND" else Or(kids)
        if cls == "OPERATOR" and kind == "OPERATOR_NOT":
            return Not(self.node(n["children"][0]))
        if cls == "COLUMN_REF":
            col = self.column(n)
            return Term(col, "truth") if col else Opaque()
        if cls == "CONSTANT":
            value = self.constant(n)
            if value is _OPAQUE or not (value is None or isinstance(value, bool)):
                return Opaque()
            return Constant(value)
        if cls == "COMPARISON" and kind in COMPARISONS:
            return self.comparison(COMPARISONS[kind], n["left"], n["right"])
        if cls == "OPERATOR" and kind in ("COMPARE_IN", "COMPARE_NOT_IN"):
            col = self.column(n["children"][0])
            values = [self.operand(c) for c in n["children"][1:]]
            if not col or any(v is _OPAQUE for v in values):
                return Opaque()
            term = Term(col, "in", tuple(values))
            return Not(term) if kind == "COMPARE_NOT_IN" else term
        if cls == "BETWEEN":
            col = self.column(n["input"])
            lo, hi = self.operand(n["lower"]), self.operand(n["upper"])
            if not col or lo is _OPAQUE or hi is _OPAQUE:
                return Opaque()
            return Term(col, "between", (lo, hi))
        if cls == "OPERATOR" and kind in ("OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL"):
            col = self.column(n["children"][0])
            return Term(col, "is_null" if kind == "OPERATOR_IS_NULL" else "not_null") if col else Opaque()
        if cls == "FUNCTION" and str(n.get("function_name", "")).lower() in CONTAINS_FUNCTIONS:
            args = [a.get("expression", {}) for a in n.get("arguments", [])]
            if len(args) == 2:
                col, value = self.column(args[0]), self.operand(args[1])
                if col and value is not _OPAQUE:
                    return Term(col, "contains", (value,))
        return Opaque()

    def comparison(self, op: str, left: dict[str, Any], right: dict[str, Any]) -> Node:
        col, value = self.column(left), self.operand(right)
        if not col:
            col, value, op = self.column(right), self.operand(left), _FLIPPED[op]
        if not col or value is _OPAQUE:
            return Opaque()
        return Term(col, op, (value,))

    def column(self, n: dict[str, Any]) -> str | None:
        if n.get("class") != "COLUMN_REF":
            return None
        return self.columns.get(str(n["column_names"][-1]).lower())

    def operand(self, n: dict[str, Any]) -> Any:
        if n.get("class") != "CONSTANT":
            return _OPAQUE
        value = self.constant(n)
        if value is _OPAQUE or value is None or isinstance(value, bool):
            return value
        return self.slot(n, value)

    def constant(self, n: dict[str, Any]) -> Any:
        lit = n.get("literal")
        if not isinstance(lit, dict):
            return _OPAQUE
        kind, text = lit.get("kind"), str(lit.get("text", ""))
        if kind == "NULL_LITERAL":
            return None
        if kind == "BOOLEAN":
            return text.lower() == "true"
        if kind == "STRING":
            return text
        try:
            if kind == "INTEGER":
                return int(text)
            if kind == "NUMERIC":
                return _number(text)
        except (ValueError, InvalidOperation):
            pass
        return _OPAQUE

    def char_offset(self, location: int) -> int:
        """DuckDB reports byte offsets into the UTF-8 text; the literals are found by character."""
        if location < 0 or len(self.encoded) == len(self.sql):
            return location
        return len(self.encoded[:location].decode("utf-8", errors="ignore"))

    def slot(self, n: dict[str, Any], value: Value) -> Operand:
        """The constant as a slot of the text's literals, when it maps to one exactly."""
        if self.by_start is None or self.literals is None:
            return value
        start = self.char_offset(int(n.get("query_location", -1))) - self.offset
        i = self.by_start.get(start)
        if i is not None and self.literals[i].value == value:
            return Slot(i)
        if isinstance(value, (int, Decimal)) and 0 <= start < len(self.text) and self.text[start] == "-":
            after = start + 1
            while after < len(self.text) and self.text[after].isspace():
                after += 1
            i = self.by_start.get(after)
            if i is not None and self.literals[i].value == -value:
                return Slot(i, -1)
        self.slotted = False
        return value


_OPAQUE = object()


def read_tree(
    where_clause: dict[str, Any], columns: Sequence[str], text: str, offset: int, literals: Sequence[Literal] | None
) -> tuple[Node, bool]:
    """(tree, slotted): the where clause as terms; `slotted` when every value in the tree is a slot of
    `literals` (the text's, from :func:`shape_of`), so the tree serves every filter of that shape.
    Constants inside opaque parts do not matter: DuckDB evaluates those from each filter's own text."""
    reader = _Reader(columns, text, offset, literals)
    tree = reader.node(where_clause)
    return tree, reader.slotted and literals is not None
