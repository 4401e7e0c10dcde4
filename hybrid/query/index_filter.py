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
    ev = _Evaluator(literals, indexes, universe)
    rows = universe.copy()
    for part in parts:
        rows &= ev.pair(part)[0]
    return IndexAnswer(rows, universe, exact, tuple(columns))


def _universe(used: list[ScalarIndex]) -> BitMap:
    if not used:
        raise _Unsupported  # pragma: no cover - a supported tree names a column
    out = used[0].indexed.copy()
    for ix in used[1:]:
        out &= ix.indexed
    return out


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
    def __init__(self, literals: Sequence[Value], indexes: Mapping[str, ScalarIndex], universe: BitMap) -> None:
        self.literals, self.indexes, self.universe = literals, indexes, universe

    def pair(self, node: Node) -> tuple[BitMap, BitMap]:
        """(TRUE rows, FALSE rows) of `node` within the universe."""
        u = self.universe
        if isinstance(node, Constant):
            if node.value is None:
                return BitMap(), BitMap()
            return (u.copy(), BitMap()) if node.value else (BitMap(), u.copy())
        if isinstance(node, Not):
            t, f = self.pair(node.child)
            return f, t
        if isinstance(node, And):
            pairs = [self.pair(c) for c in node.children]
            return BitMap.intersection(*(p[0] for p in pairs)), BitMap.union(*(p[1] for p in pairs))
        if isinstance(node, Or):
            pairs = [self.pair(c) for c in node.children]
            return BitMap.union(*(p[0] for p in pairs)), BitMap.intersection(*(p[1] for p in pairs))
        assert isinstance(node, Term)
        return self.term(node)

    def term(self, t: Term) -> tuple[BitMap, BitMap]:
        ix, u = self.indexes[t.column], self.universe
        values = [bind(v, self.literals) for v in t.values]
        nulls = ix.nulls & u
        known = u - nulls
        if t.op == "is_null":
            return nulls, known
        if t.op == "not_null":
            return known, nulls
        if t.op == "truth":
            values = [True]
        if any(v is None for v in values) and t.op != "in":
            return BitMap(), BitMap()  # a comparison with NULL is NULL
        if t.op in ("=", "contains", "truth"):
            hit = ix.equal(values[0]) & u
            return hit, known - hit
        if t.op == "!=":
            hit = ix.equal(values[0]) & u
            return known - hit, hit
        if t.op == "in":
            present = [v for v in values if v is not None]
            hit = BitMap.union(*(ix.equal(v) for v in present)) & u if present else BitMap()
            return hit, (BitMap() if len(present) < len(values) else known - hit)
        if t.op == "between":
            hit = ix.between(values[0], True, values[1], True) & u
            return hit, known - hit
        lo, lo_inc, hi, hi_inc = {
            "<": (None, True, values[0], False),
            "<=": (None, True, values[0], True),
            ">": (values[0], False, None, True),
            ">=": (values[0], True, None, True),
        }[t.op]
        hit = ix.between(lo, lo_inc, hi, hi_inc) & u
        return hit, known - hit
