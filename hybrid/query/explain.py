"""`Query.explain()`: a readable plan, from running the query's branches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hybrid.query import confidence, like, passages
from hybrid.query.executor import (
    _allowed,
    _calibration,
    _depth,
    _fts_entry,
    _known_share,
    _plan,
    _query_text,
    _run_branches,
)
from hybrid.query.fusion import fusion_window
from hybrid.query.grouped import _fuses_groups

if TYPE_CHECKING:
    from hybrid.query.search import Query


def explain(q: Query) -> str:
    """A readable plan, from running the branches: where the filter applies and how each branch searched."""
    view = q.table.indexed_snapshot()
    if q.examples is not None:
        q = like.resolve(q, view, _fts_entry(q, view))
    snap = view.snapshot
    branches = _plan(q, view)
    allowed = _allowed(q, view)
    depth = _depth(q, len(branches))
    _run_branches(q, view, branches, allowed, depth, flat=q.grouping is None)
    lines = [f"search {view.name} v{snap.manifest.version} ({snap.manifest.num_rows} rows)"]
    if allowed is not None:
        where = "before top-k (prefilter)" if q.prefilter else "after top-k (postfilter)"
        lines.append(f"  filter: {q.filter_sql!r} -> {len(allowed.ids)} rows from {allowed.how}, applied {where}")
    titles = passages.title_count(view)
    if titles is not None:
        grouped_how = "counted in their groups' scores, never returned"
        how = grouped_how if q.grouping is not None else "never returned: each branch searches the passages only"
        lines.append(f"  title rows: {titles} of the live rows, {how}")
    for b in branches:
        cov = view.coverage(b.entry) if b.entry else None
        extra = f" [{len(cov.unindexed)} unindexed, {len(cov.dead)} dead rows]" if cov else ""
        lines.append(f"  branch {b.kind} on {b.column}: {b.note}{b.strategy}{extra}; top {depth} -> {len(b.ids)} hits")
    if len(branches) > 1:
        cal = _calibration(q, view, branches) if q.branch_weights == "auto" else None
        how = cal.describe() if cal is not None else f"weights {q.branch_weights}"
        if q.branch_weights == "auto":
            steep = confidence.confidences([(b.raw, b.kind) for b in branches])
            how += ", times each list's steepness for this query (" + ", ".join(f"{s:.2f}" for s in steep) + ")"
            for b in branches:
                share, why = _known_share(view, b)
                if share is not None:
                    factor = confidence.vocabulary(share, bool(why))
                    rule = "no say unless it knows every term" if factor < 1 else "it knows every term"
                    how += (
                        f", {b.column} x {factor:.2f} (foreign query: {why}; {rule}:"
                        f" it knows {share:.0%} of the query's terms)"
                    )
        window = fusion_window(q.depth)
        lines.append(f"  fuse: {q.fusion!r} over each branch's first {window}, {how}")
    if q.reranker is not None:
        lines.append(f"  rerank: {type(q.reranker).__name__} over the fused candidates")
    for f in q.functions:
        lines.append(f"  score function: {f.describe()} (column {f.name})")
    if q.functions:
        lines.append("  score = _base_score x multiplicative factors + additive boosts, then sorted again")
    if q.pinned:
        lines.append(f"  pinned first: rows {list(q.pinned)} (live and allowed ones; _pinned)")
    if q.grouping is not None:
        g = q.grouping
        lines.append(f"  group by {g.column or 'the declared parent'}: {g.per_group} per group, group score {g.score}")
        if _fuses_groups(q, branches):
            lines.append("  each branch grouped first, the group lists fused")
    if q.expansion is not None:
        e = q.expansion
        lines.append("  expand: " + ("the whole parent" if e.parent else f"{e.neighbours} neighbours each side"))
    if q.examples is not None:
        text = _query_text(q)
        lines.append(
            f"  like rows {list(q.examples.rowids)}"
            + (f", unlike {list(q.examples.unlike)}" if q.examples.unlike else "")
        )
        lines.append(f"    as text {text!r} and their mean vector; the examples are left out")
    lines.append(f"  return: offset {q.skip}, limit {q.k}")
    return "\n".join(lines)
