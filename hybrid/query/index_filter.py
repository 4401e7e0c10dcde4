"""Answering a filter's terms from scalar indexes, with SQL's three-valued logic.

Each term gives two row sets over the rows every used index covers (the
*universe*): where it is TRUE and where it is FALSE; the rest is NULL (a NULL
value, or NULL in an IN list). AND, OR and NOT combine those pairs as SQL does,
so ``NOT (x = 1)`` leaves out rows where x is NULL, exactly as DuckDB would.

A tree that is all terms on indexed columns, with values of the column's kind,
is answered *exactly*. A top-level AND with some parts only DuckDB can read is
answered *as a superset* from its indexable parts, and DuckDB re-checks only
those rows. Anything else is not answered here at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from pyroaring import BitMap

from hybrid.index.scalar import ScalarIndex
from hybrid.query.predicate import And, Constant, Node, Not, Opaque, Or, Term, Value, bind

FLOAT32_EXACT_INT = 2**24
"""Integers up to this size are exact in float32 (DuckDB casts a literal to a FLOAT column's type)."""


@dataclass
class IndexAnswer:
    """Rows (within `universe`) the filter allows; a superset to re-check when not `exact`."""

    rows: BitMap
    universe: BitMap
    exact: bool
    columns: tuple[str, ...]


class _Unsupported(Exception):
    pass


def answer(tree: Node, literals: Sequence[Value], indexes: Mapping[str, ScalarIndex]) -> IndexAnswer | None:
    """The filter's rows from `indexes` (column -> index), or None when they cannot answer it."""
    if _supported(tree, literals, indexes):
        return _evaluate([tree], literals, indexes, exact=True)
    if isinstance(tree, And):
        usable = [c for c in tree.children if _supported(c, literals, indexes)]
        if usable:
            return _evaluate(usable, literals, indexes, exact=False)
    return None


def _evaluate(
    parts: list[Node], literals: Sequence[Value], indexes: Mapping[str, ScalarIndex], exact: bool
) -> IndexAnswer:
    columns = sorted(set().union(*(_columns(p) for p in parts)))
    universe = _universe([indexes[c] for c in columns])
    ev = _Evaluator({c: indexes[c] for c in columns}, literals, universe)
    rows = ev.rows(parts[0]) if len(parts) == 1 else BitMap.intersection(*(ev.rows(p) for p in parts))
    return IndexAnswer(rows, universe, exact, tuple(columns))


def _universe(used: list[ScalarIndex]) -> BitMap:
    if not used:
        raise _Unsupported  # pragma: no cover - a supported tree names a column
    return used[0].indexed if len(used) == 1 else BitMap.intersection(*(ix.indexed for ix in used))


def _columns(node: Node) -> set[str]:
    if isinstance(node, Term):
        return {node.column}
    if isinstance(node, (And, Or)):
        return set().union(*(_columns(c) for c in node.children))
    if isinstance(node, Not):
        return _columns(node.child)
    return set()


def _supported(node: Node, literals: Sequence[Value], indexes: Mapping[str, ScalarIndex]) -> bool:
    if isinstance(node, Opaque):
        return False
    if isinstance(node, Constant):
        return True
    if isinstance(node, (And, Or)):
        return all(_supported(c, literals, indexes) for c in node.children)
    if isinstance(node, Not):
        return _supported(node.child, literals, indexes)
    assert isinstance(node, Term)
    ix = indexes.get(node.column)
    if ix is None:
        return False
    if (node.op == "contains") != (ix.kind == "label_list"):
        return False
    if node.op == "truth":
        return ix.keys.dtype.kind == "b"
    values = [bind(v, literals) for v in node.values]
    if node.op == "between" and any(v is None for v in values):
        return False
    return all(v is None or _fits(ix.keys, v) for v in values)


def _fits(keys: np.ndarray, value: Value) -> bool:
    """Whether comparing the column with `value` means the same here as in DuckDB."""
    kind = keys.dtype.kind
    if kind == "b":
        return isinstance(value, bool)
    if kind == "O":
        return isinstance(value, str)
    if not isinstance(value, (int, Decimal, float)) or isinstance(value, bool):
        return False
    if keys.dtype == np.float32:  # DuckDB casts a plain literal to FLOAT, but a 1e5-style one is a DOUBLE
        if isinstance(value, Decimal):
            return len(value.as_tuple().digits) <= 18
        return isinstance(value, int) and abs(value) <= FLOAT32_EXACT_INT
    return True


class _Evaluator:
    """Rows where a node is TRUE, or FALSE, within the universe; only the side asked for is built."""

    def __init__(self, indexes: Mapping[str, ScalarIndex], literals: Sequence[Value], universe: BitMap) -> None:
        self.literals, self.indexes, self.universe = literals, indexes, universe

    def rows(self, node: Node, truth: bool = True) -> BitMap:
        u = self.universe
        if isinstance(node, Constant):
            return u.copy() if node.value is not None and node.value == truth else BitMap()
        if isinstance(node, Not):
            return self.rows(node.child, not truth)
        if isinstance(node, (And, Or)):
            parts = [self.rows(c, truth) for c in node.children]
            meet = isinstance(node, And) == truth  # TRUE of AND and FALSE of OR: every part
            return BitMap.intersection(*parts) if meet else BitMap.union(*parts)
        assert isinstance(node, Term)
        return self.term(node, truth)

    def _inside(self, rows: BitMap, ix: ScalarIndex) -> BitMap:
        """`rows` (from `ix`) within the universe; a no-op when the universe is `ix`'s own rows."""
        return rows if self.universe is ix.indexed or len(self.indexes) == 1 else rows & self.universe

    def term(self, t: Term, truth: bool) -> BitMap:
        ix = self.indexes[t.column]
        values = [bind(v, self.literals) for v in t.values]
        nulls = self._inside(ix.nulls, ix)
        if t.op in ("is_null", "not_null"):
            return nulls if (t.op == "is_null") == truth else self.universe - nulls
        if t.op == "truth":
            values = [True]
        present = [v for v in values if v is not None]
        if len(present) < len(values) and (t.op != "in" or not truth):
            return BitMap()  # a comparison with NULL is NULL; so is a miss of an IN list holding NULL
        hit = self._inside(self._hits(ix, t.op, present), ix)
        if (t.op == "!=") == truth:
            return (self.universe - nulls) - hit
        return hit

    @staticmethod
    def _hits(ix: ScalarIndex, op: str, values: Sequence[Value]) -> BitMap:
        """Rows where `column op values` is TRUE (for !=, where `=` is)."""
        if op in ("=", "!=", "contains", "truth"):
            return ix.equal(values[0])
        if op == "in":
            return BitMap.union(*(ix.equal(v) for v in values)) if values else BitMap()
        if op == "between":
            return ix.between(values[0], True, values[1], True)
        lo, lo_inc, hi, hi_inc = {
            "<": (None, True, values[0], False),
            "<=": (None, True, values[0], True),
            ">": (values[0], False, None, True),
            ">=": (values[0], True, None, True),
        }[op]
        return ix.between(lo, lo_inc, hi, hi_inc)
