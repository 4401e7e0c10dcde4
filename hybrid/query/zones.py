"""Fragments a filter cannot match, ruled out by the range of their integer columns' values.

A filter no scalar index answers is evaluated by DuckDB over every live row of a version.
Rows are appended in fragments and never change, so the smallest and largest value of a
column in one data file are fixed: they are read once per file and kept. A term such as
``id = 10000042`` or ``ts >= 1700000000`` then rules out every fragment whose range lies
outside it. A table written to while it serves deletes (and reads) recent rows by key: its
filter is evaluated over the few rows of the fragments that may hold them, not the table.

Only integer columns are ranged (no NaN, no collation), only against integer or decimal
values (exact comparisons), and a node this module does not read may match: ruling out
less never answers wrongly. Ranges cover a file's physical rows, deleted ones included.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from hybrid.index.view import IndexedSnapshot
from hybrid.query.filter import Filter
from hybrid.query.predicate import And, Constant, Node, Or, Term, Value, bind
from hybrid.storage.manifest import Fragment

Span = tuple[int, int] | None
"""The (smallest, largest) value of a column in a fragment; None when it holds no value but NULL."""
RANGES_KEPT = 65_536
"""(data file, column) ranges a table keeps (two integers each)."""
_RANGED_OPS = frozenset({"=", "<", "<=", ">", ">=", "in", "between"})


def candidates(view: IndexedSnapshot, flt: Filter) -> list[bool] | None:
    """Per fragment of `view`, whether `flt` may be TRUE for one of its rows; None when no fragment
    is ruled out (or the filter names no ranged column)."""
    snap = view.snapshot
    ranged = [c for c in flt.columns if pa.types.is_integer(snap.schema.field(c).type)]
    if not ranged or not _reads(flt.tree, set(ranged)):
        return None
    keep = []
    for frag in snap.manifest.fragments:
        if not frag.live_rows:
            keep.append(False)
            continue
        spans = {c: column_span(view, frag, c) for c in ranged}
        keep.append(may_match(flt.tree, flt.literals, spans))
    return None if all(keep) else keep


def column_span(view: IndexedSnapshot, frag: Fragment, column: str) -> Span:
    """The range of integer `column`'s values in `frag` (kept per data file: files never change)."""
    snap = view.snapshot
    field_id = snap.manifest.field_ids[snap.schema.get_field_index(column)]
    source = next((f for f in reversed(frag.files) if field_id in f.field_ids), None)
    if source is None:  # a column added after the fragment was written: NULL in every row
        return None
    key = (source.path, source.field_ids.index(field_id), str(snap.schema.field(column).type))

    def make() -> Span:
        values = snap.read_fragment(frag, [column]).column(0)
        low, high = pc.min_max(values).values()
        return None if not low.is_valid else (int(low.as_py()), int(high.as_py()))

    found: Span = view.remember("column_spans", key, make, keep=RANGES_KEPT)
    return found


def may_match(node: Node, literals: tuple[Value, ...], spans: Mapping[str, Span]) -> bool:
    """Whether `node` may be TRUE for a row whose ranged columns lie in `spans` (columns not in
    `spans` may hold anything)."""
    if isinstance(node, And):
        return all(may_match(c, literals, spans) for c in node.children)
    if isinstance(node, Or):
        return any(may_match(c, literals, spans) for c in node.children)
    if isinstance(node, Constant):
        return node.value is True
    if not isinstance(node, Term) or node.column not in spans or node.op not in _RANGED_OPS:
        return True  # NOT, opaque parts, IS NULL, != ...: may match
    values = _exact_numbers([bind(v, literals) for v in node.values])
    if values is None:
        return True  # floats (rounded against large integers), strings (cast by DuckDB), NULL
    span = spans[node.column]
    if span is None:
        return False  # only NULLs: a comparison is never TRUE
    low, high = span
    op, first = node.op, values[0]
    if op == "=":
        return low <= first <= high
    if op == "<":
        return low < first
    if op == "<=":
        return low <= first
    if op == ">":
        return high > first
    if op == ">=":
        return high >= first
    if op == "in":
        return any(low <= v <= high for v in values)
    return first <= high and low <= values[1]  # between


def _exact_numbers(values: list[Value]) -> list[int | Decimal] | None:
    """`values` when each is an integer or a decimal (compared exactly with integers), else None."""
    out: list[int | Decimal] = []
    for v in values:
        if not isinstance(v, (int, Decimal)) or isinstance(v, bool):
            return None
        out.append(v)
    return out if out else None


def _reads(node: Node, columns: set[str]) -> bool:
    """Whether `node` has a term on one of `columns` that a range can rule out."""
    if isinstance(node, (And, Or)):
        return any(_reads(c, columns) for c in node.children)
    return isinstance(node, Term) and node.column in columns and node.op in _RANGED_OPS
