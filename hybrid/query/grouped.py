"""Running a grouped search (``.group_by()``): the best groups of the candidates, deepening while too few turn up.

The candidates are fused (and reranked, and rescored by score functions) before grouping, or with
``fuse="groups"`` each branch is grouped and the group lists fused (:mod:`hybrid.query.group_fusion`).
Title rows (:mod:`hybrid.query.title_rows`) count in their group's score but are never returned:
a group found by its title alone returns a passage standing in (:func:`hybrid.query.title_rows.stand_ins`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from hybrid import budget
from hybrid.query import group_fusion, grouping, scoring_functions, title_rows
from hybrid.query.fusion import Ranked, counted_rows, fusion_window
from hybrid.query.result_columns import with_result_columns as _with_result_columns

if TYPE_CHECKING:
    from hybrid.index.view import IndexedSnapshot
    from hybrid.query.allowed import Allowed
    from hybrid.query.executor import Branch
    from hybrid.query.search import Query


def execute(q: Query, view: IndexedSnapshot, branches: list[Branch], allowed: Allowed | None, depth: int) -> pa.Table:
    """The best groups of the fused (and reranked) candidates, searching deeper while too few groups
    turn up and a branch had more to give (:mod:`hybrid.query.grouping`)."""
    from hybrid.query.executor import _distances, _fused, _reranked, _rescored_rows, _run_branches, candidate_pool

    assert q.grouping is not None
    snap = view.snapshot
    key = grouping.key_column(q.grouping, snap)
    wanted = q.k + q.skip
    depth = first_depth = grouping.group_depth(depth, wanted, q.grouping.per_group)
    by_groups = _fuses_groups(q, branches)
    rows: pa.Table | None = None
    ids: np.ndarray | None = None
    extra: dict[str, np.ndarray] = {}
    while True:
        _run_branches(q, view, branches, allowed, depth)
        if by_groups:
            g = _group_fused(q, view, branches, allowed, key)
            if not grouping.needs_more(g.n_groups, wanted, [len(b.ids) for b in branches], depth):
                break
            depth = min(grouping.MAX_DEPTH, depth * 4)
            continue
        ids, scores = _fused(q, view, branches, allowed)
        budget.check("fusion")
        if q.reranker is not None or (len(branches) == 1 and (q.functions or q.grouping.score != "max")):
            # rescored, or summed over (a lone branch's scores no fusion window bounds): the same rows on every page
            n = candidate_pool(q.depth, branches, wanted * q.grouping.per_group if depth == first_depth else depth)
            ids, scores = ids[:n], scores[:n]
        rows = _reranked(q, snap, branches, ids, scores, keep=(key,)) if q.reranker is not None else None
        fast = None
        if rows is not None:
            rows = _rescored_rows(q, view, rows, branches)
            ids, scores = rows.column("_rowid").to_numpy(), rows.column("_score").to_numpy()
            keys = rows.column(key).to_pylist()
            joins = None  # a reranker's candidates are the same on every page
        else:
            if q.functions:
                r = scoring_functions.rescore(q.functions, view, ids, scores, _distances(q, branches))
                ids, scores, extra = r.ids, r.scores, r.columns
            joins = _joins(q, ids, branches)
            fast = _group_by_codes(q, view, key, ids, scores, joins)
            keys = grouping.keys_of(view, key, ids) if fast is None else []
        if fast is not None:
            g = fast
        else:
            sizes, weights = grouping.group_weights(view, key, ids, q.grouping.score)
            g = grouping.group(
                ids,
                scores,
                keys,
                q.k,
                skip=q.skip,
                per_group=q.grouping.per_group,
                score=q.grouping.score,
                sizes=sizes,
                weights=weights,
                marked=title_rows.marks_of(view, ids),
                joins=joins,
                as_listed=True,  # the candidates are the search's ranking: a lone branch's list as it ran
            )
        if not grouping.needs_more(g.n_groups, wanted, [len(b.ids) for b in branches], depth):
            break
        depth = min(grouping.MAX_DEPTH, depth * 4)
    if g.stand_in is not None:  # a reranked search has read and scored its rows: no stand-in passage
        g = title_rows.stand_ins(view, g, key, None if rows is not None else lambda r: _may_return(q, r, allowed))
    return _rows(q, view, branches, key, g, rows, ids, extra)


def _group_by_codes(
    q: Query, view: IndexedSnapshot, key: str, ids: np.ndarray, scores: np.ndarray, joins: np.ndarray | None
) -> grouping.Grouped | None:
    """The candidates grouped in numpy (:func:`hybrid.query.grouping.group_codes`) where the group score
    is the best row's, the table has no title rows and the version's key codes are kept; else None."""
    assert q.grouping is not None
    if q.grouping.score != "max" or title_rows.column(view) is not None:
        return None
    codes = grouping.codes_of(view, key, ids)
    if codes is None:
        return None
    return grouping.group_codes(
        ids, scores, codes, q.k, skip=q.skip, per_group=q.grouping.per_group, joins=joins, as_listed=True
    )


def _joins(q: Query, ids: np.ndarray, branches: list[Branch]) -> np.ndarray | None:
    """Which candidates may follow their group's best row: those each branch's fusion window counts
    (:func:`hybrid.query.fusion.counted_rows`: a deeper search, a later page, finds more of a group's
    rows, none of them counted, so a group's rows are the same on every page); None with one row a group."""
    assert q.grouping is not None
    if q.grouping.per_group == 1:
        return None
    window = fusion_window(q.depth)
    return np.isin(ids, counted_rows([b.ids for b in branches], [window] * len(branches)))


def _may_return(q: Query, ids: np.ndarray, allowed: Allowed | None) -> np.ndarray:
    """Which of `ids` the query may return, whatever the branches saw: the filter's rows, not its examples."""
    from hybrid.index.fulltext import _isin_sorted

    keep = np.ones(len(ids), bool) if allowed is None else _isin_sorted(ids, allowed.ids)
    if q.examples is not None:
        keep &= ~np.isin(ids, np.asarray(q.examples.excluded, np.uint64))
    return keep


def _rows(
    q: Query,
    view: IndexedSnapshot,
    branches: list[Branch],
    key: str,
    g: grouping.Grouped,
    rows: pa.Table | None,
    ids: np.ndarray | None,
    extra: dict[str, np.ndarray],
) -> pa.Table:
    """The kept rows with the result columns, `_group_rank` and `_group_score`."""
    snap = view.snapshot
    if rows is not None:
        assert ids is not None
        at = {int(r): i for i, r in enumerate(ids)}
        out = rows.take(pa.array([at[int(r)] for r in g.ids], pa.int64()))
        if q.columns is not None and key not in q.columns:
            out = out.drop_columns([key])
    else:
        columns = list(q.columns) if q.columns is not None else list(snap.schema.names)
        out = _with_result_columns(snap.take(g.ids, columns), g.ids, g.scores, branches)
        if extra:
            assert ids is not None
            at = {int(r): i for i, r in enumerate(ids)}
            kept = np.asarray([at[int(r)] for r in g.ids], np.int64)
            for name, values in extra.items():
                out = out.append_column(name, pa.array(values[kept] if len(kept) else values[:0]))
    out = out.append_column("_group_rank", pa.array(g.group_ranks, pa.int32()))
    return out.append_column("_group_score", pa.array(g.group_scores, pa.float64()))


def _fuses_groups(q: Query, branches: list[Branch]) -> bool:
    """Whether a grouped search groups each branch and fuses the group lists (``fuse="groups"``;
    a reranker or score functions score rows, so rows are fused first for them)."""
    assert q.grouping is not None
    return len(branches) > 1 and q.grouping.fuse == "groups" and q.reranker is None and not q.functions


def _group_fused(
    q: Query, view: IndexedSnapshot, branches: list[Branch], allowed: Allowed | None, key: str
) -> grouping.Grouped:
    """Each branch's hits (filtered) grouped by `key`, the group lists fused (:mod:`hybrid.query.group_fusion`)."""
    from hybrid.query.executor import _results_kept, _weights

    assert q.grouping is not None
    score = q.grouping.score
    lists = []
    window = fusion_window(q.depth)  # each branch's (filtered) rows counted in the fusion, as for rows
    for b, w in zip(branches, _weights(q, view, branches)):
        ranked = b.ranked()
        keep = _results_kept(q, ranked.ids, allowed)
        ids, scores = (ranked.ids, ranked.scores) if keep is None else (ranked.ids[keep], ranked.scores[keep])
        lists.append(Ranked(ids, scores.astype(np.float64), w, window))
    budget.check("fusion")
    has_titles = title_rows.column(view) is not None
    return group_fusion.fuse_groups(
        q.fusion,
        lists,
        lambda ids: grouping.keys_of(view, key, ids),
        q.k,
        skip=q.skip,
        per_group=q.grouping.per_group,
        score=q.grouping.score,
        sizes_of=lambda ids: grouping.group_weights(view, key, ids, score),
        codes_of=lambda ids: grouping.codes_of(view, key, ids),
        marks_of=(lambda ids: title_rows.marks_of(view, ids)) if has_titles else None,
    )
