"""Fusion at the level of groups: each branch grouped by document first, then the document lists fused.

A hybrid search over chunks that fuses the branches' chunk lists and groups after lets a
document win on a chunk that is strong in one branch only, while the document another
branch ranks first by many good chunks gets little from either list: on webfaq
(``eval/results/chunked.md``) fusing chunks and then grouping fell below the dense branch
grouped alone. Grouped search therefore groups each branch's candidates by the key with the
query's group score (best row, sum or ``max_mean``), fuses those group lists with the query's
fusion and branch weights (the table's calibration), and fills each group with its best rows by
the fused chunk scores (the same branches fused row by row).

>>> from hybrid.query.fusion import RRF, Ranked
>>> ids = lambda *x: np.array(x, dtype=np.uint64)
>>> keys = {1: "a", 2: "a", 3: "b"}.get  # rows 1 and 2 are chunks of document "a"
>>> dense, text = Ranked(ids(1, 3), np.array([0.9, 0.5])), Ranked(ids(2, 3), np.array([7.0, 2.0]))
>>> RRF(k=1).fuse([dense, text])[0].tolist()  # by chunks, b's one chunk in both lists wins
[3, 1, 2]
>>> g = fuse_groups(RRF(k=1), [dense, text], lambda r: [keys(int(i)) for i in r], n_groups=2)
>>> g.ids.tolist(), [round(s, 3) for s in g.group_scores.tolist()]  # "a" is first in both branches
([1, 3], [1.0, 0.667])
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np

from hybrid.query.fusion import Fusion, Ranked, counted_rows
from hybrid.query.grouping import MEAN_SCORES, Grouped, GroupScore, rank_groups

KeysOf = Callable[[np.ndarray], Sequence[Hashable | None]]
"""Row ids -> each row's group key (None: a group of its own)."""
SizesOf = Callable[[np.ndarray], "tuple[np.ndarray | None, np.ndarray | None]"]
"""Row ids -> each row's group's total weight and each row's weight (for "max_mean", "max_mean_len":
:func:`hybrid.query.grouping.group_weights`)."""
CodesOf = Callable[[np.ndarray], "np.ndarray | None"]
"""Row ids -> each row's key as an integer code >= 0 (-1: null), or None where codes are not at hand."""
MarksOf = Callable[[np.ndarray], "np.ndarray | None"]
"""Row ids -> whether each is a title row (:mod:`hybrid.query.title_rows`), or None: none are."""


def fuse_groups(
    fusion: Fusion,
    branches: Sequence[Ranked],
    keys_of: KeysOf,
    n_groups: int,
    *,
    skip: int = 0,
    per_group: int = 1,
    score: GroupScore = "max",
    sizes_of: SizesOf | None = None,
    codes_of: CodesOf | None = None,
    marks_of: MarksOf | None = None,
) -> Grouped:
    """Groups `skip`..`skip + n_groups` of the branches' fused group lists, each with its `per_group`
    best rows by the branches' fused row scores. Each branch's list must already be filtered.
    With `codes_of` (integer keys) and best-row group scores, the groups are found with numpy; the
    result is the same. `marks_of` (None: the table has no title rows): title rows score their
    group in each branch but are never its best row nor kept; a group without a passage among the
    fused rows keeps its best title row as a stand-in (:attr:`Grouped.stand_in`)."""
    marks = _no_marks if marks_of is None else marks_of
    if score == "max" and codes_of is not None and len(branches) > 1 and marks_of is None:
        found = _fuse_codes(fusion, branches, codes_of, n_groups, skip, per_group)
        if found is not None:
            return found
    ranked_groups: list[tuple[Ranked, list[Hashable], list[Hashable], list[float]]] = []
    for b in branches:  # groups scored by the rows of the branch's fusion window, the others after them
        keys, n = _keys(keys_of, b.ids), b.counted()
        head = b.ids[:n]
        sizes, weights = sizes_of(head) if score in MEAN_SCORES and sizes_of is not None else (None, None)
        groups, group_scores = rank_groups(b.scores[:n], keys[:n], score, sizes, weights, marks(head))
        counted = [keys[g[0]] for g in groups]
        seen = set(counted)
        deeper = list(dict.fromkeys(k for k in keys[n:] if k not in seen))  # by their best rows
        ranked_groups.append((b, counted, deeper, group_scores))
    codes: dict[Hashable, int] = {}  # the counted groups numbered first: a deeper search numbers them alike
    for k in [k for _, counted, _, _ in ranked_groups for k in counted] + [
        k for _, _, deeper, _ in ranked_groups for k in deeper
    ]:
        codes.setdefault(k, len(codes))
    group_lists = []
    for b, counted, deeper, group_scores in ranked_groups:
        surrogate = [codes[k] for k in counted + deeper]
        window = None if b.window is None else len(counted)
        scores = np.asarray([*group_scores, *[0.0] * len(deeper)], np.float64)
        group_lists.append(Ranked(np.asarray(surrogate, np.uint64), scores, b.weight, window))
    if len(branches) == 1:
        order, fused_group = group_lists[0].ids, group_lists[0].scores.astype(np.float64)
    else:
        order, fused_group = fusion.fuse(group_lists)
    row_ids, row_scores = (
        fusion.fuse(branches) if len(branches) > 1 else (branches[0].ids, branches[0].scores.astype(np.float64))
    )
    row_marks = marks(row_ids)
    joins = _joins(row_ids, branches, per_group)
    members: dict[int, list[int]] = {}  # group code -> positions of passages in the fused rows, best first
    titles: dict[int, int] = {}  # group code -> its best title row, standing in where it has no passage
    for i, key in enumerate(_keys(keys_of, row_ids)):
        if row_marks is not None and row_marks[i]:
            titles.setdefault(codes[key], i)
        elif joins is None or joins[i] or codes[key] not in members:
            members.setdefault(codes[key], []).append(i)
    kept_rows: list[int] = []
    kept_scores: list[float] = []
    kept_ranks: list[int] = []
    for r in range(skip, min(len(order), skip + n_groups)):
        code = int(order[r])
        rows = members[code][:per_group] if code in members else [titles[code]]
        kept_rows += rows
        kept_scores += [float(fused_group[r])] * len(rows)
        kept_ranks += [r + 1] * len(rows)
    at = np.asarray(kept_rows, dtype=np.int64)
    own = np.asarray(row_scores, np.float64)[at] if len(at) else np.empty(0, np.float64)
    stand_in = None
    if row_marks is not None:  # a stand-in title row is scored as the weakest fused row
        stand_in = np.asarray(row_marks, bool)[at] if len(at) else np.zeros(0, bool)
        own = np.where(stand_in, float(np.min(row_scores)), own) if len(at) else own
    return Grouped(
        row_ids[at] if len(at) else np.empty(0, np.uint64),
        own,
        np.asarray(kept_scores, dtype=np.float64),
        np.asarray(kept_ranks, dtype=np.int32),
        len(order),
        stand_in,
    )


def _fuse_codes(
    fusion: Fusion, branches: Sequence[Ranked], codes_of: CodesOf, n_groups: int, skip: int, per_group: int
) -> Grouped | None:
    """:func:`fuse_groups` with best-row group scores over integer keys, in numpy (None: no codes)."""
    row_ids, row_scores = fusion.fuse(branches)
    every = np.concatenate([row_ids, *(b.ids for b in branches)]).astype(np.uint64)
    found = codes_of(every) if len(every) else np.empty(0, np.int64)
    if found is None:
        return None
    keys = np.where(found < 0, -1 - every.astype(np.int64), found)  # a null key: the row's own group
    row_keys, at = keys[: len(row_ids)], len(row_ids)
    lists, firsts = [], []
    for b in branches:  # each branch's groups in the order of their best rows, scored by them
        k, at = keys[at : at + len(b.ids)], at + len(b.ids)
        c = b.counted()  # the counted rows by score; rows past them (a deeper search's) as listed
        order = np.concatenate([np.argsort(-np.asarray(b.scores[:c], np.float64), kind="stable"), np.arange(c, len(k))])
        _, first = np.unique(k[order], return_index=True)
        first.sort()
        window = None if b.window is None else int(np.searchsorted(first, b.counted()))  # best row counted
        lists.append((k[order][first], np.asarray(b.scores, np.float64)[order][first], b.weight, window))
        firsts.append(k[order][first])
    cuts = [len(k) if w is None else w for k, _, _, w in lists]
    # codes in the order first seen, the counted groups first: a deeper search numbers them alike
    every_group = np.concatenate([f[:c] for f, c in zip(firsts, cuts)] + [f[c:] for f, c in zip(firsts, cuts)])
    unique, seen_at = np.unique(every_group, return_index=True)
    rank = np.empty(len(unique), np.int64)
    rank[np.argsort(seen_at, kind="stable")] = np.arange(len(unique))
    ranked = []
    for k, scores, weight, window in lists:
        ranked.append(Ranked(rank[np.searchsorted(unique, k)].astype(np.uint64), scores, weight, window))
    order, fused_group = fusion.fuse(ranked)
    key_of = np.empty(len(unique), np.int64)
    key_of[rank] = unique
    kept_keys = key_of[order[skip : skip + n_groups].astype(np.int64)].tolist()
    wanted = {k: i for i, k in enumerate(kept_keys)}
    members: list[list[int]] = [[] for _ in kept_keys]
    joins = _joins(row_ids, branches, per_group)
    for i, k in enumerate(row_keys.tolist()):
        j = wanted.get(k)
        if j is not None and len(members[j]) < per_group and (not members[j] or joins is None or joins[i]):
            members[j].append(i)
    kept_rows = [i for m in members for i in m]
    at_rows = np.asarray(kept_rows, np.int64)
    sizes = [len(m) for m in members]
    group_scores = np.repeat(np.asarray(fused_group[skip : skip + n_groups], np.float64), sizes)
    ranks = np.repeat(np.arange(skip + 1, skip + 1 + len(kept_keys), dtype=np.int32), sizes)
    return Grouped(
        row_ids[at_rows] if len(at_rows) else np.empty(0, np.uint64),
        np.asarray(row_scores, np.float64)[at_rows] if len(at_rows) else np.empty(0, np.float64),
        group_scores,
        ranks,
        len(order),
    )


def _joins(row_ids: np.ndarray, branches: Sequence[Ranked], per_group: int) -> np.ndarray | None:
    """Which fused rows may follow their group's best row: those a branch's fusion counts
    (:func:`hybrid.query.fusion.counted_rows`); None with one row a group."""
    if per_group == 1:
        return None
    return np.isin(row_ids, counted_rows([b.ids for b in branches], [b.counted() for b in branches]))


def _no_marks(ids: np.ndarray) -> None:
    return None


def _keys(keys_of: KeysOf, ids: np.ndarray) -> list[Hashable]:
    """Each row's key, a null key made the row's own (the same row in every branch)."""
    return [("\0null", int(r)) if k is None else k for k, r in zip(keys_of(ids), ids.tolist())]
