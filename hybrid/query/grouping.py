"""Grouping hits by a key (a chunk's document): the best k groups, each with its best rows.

What Elasticsearch calls field collapsing and Qdrant / Milvus call grouping search: so that
no single document fills the top k with its chunks. Grouping runs on the final candidate
scores, after fusion (both branches count) and after a reranker; the search fetches deeper
candidate lists for it, and deeper again while it finds too few groups (see
:func:`group_depth` and :func:`needs_more`).

>>> ids = np.array([7, 8, 9, 10], dtype=np.uint64)
>>> g = group(ids, np.array([0.9, 0.8, 0.5, 0.4]), ["a", "a", "b", "c"], n_groups=2)
>>> g.ids.tolist(), g.group_ranks.tolist(), g.group_scores.tolist()
([7, 9], [1, 2], [0.9, 0.5])
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from hybrid.errors import SchemaError
from hybrid.query import chunk_layout

if TYPE_CHECKING:
    from hybrid.index.view import IndexedSnapshot
    from hybrid.storage.snapshot import Snapshot

GroupScore = Literal["max", "sum", "max_mean", "max_mean_len"]
GROUP_SCORES = ("max", "sum", "max_mean", "max_mean_len")
MEAN_SCORES = ("max_mean", "max_mean_len")
"""The group scores that need each group's size (:func:`group_weights`)."""
GroupFuse = Literal["groups", "rows"]
GROUP_FUSES = ("groups", "rows")
OVERFETCH = 5
"""Candidates fetched per branch for each wanted row of a grouped search (several chunks of a
document often rank next to each other), before any deepening."""
KEY_CACHE_MAX_ROWS = 2_000_000
"""Up to this many rows, a version's group keys are read once and kept (a dictionary code per row),
so a grouped search looks its candidates' keys up instead of reading them."""
MAX_DEPTH = 8_192
"""Grouping deepens its candidate lists (4x a time) up to this many per branch."""


@dataclass(frozen=True)
class Grouping:
    """How a search groups: by `column` (None: the table's declared parent column), `per_group` rows
    in each group (its best, then others a branch's fusion window counts), the
    group's score its best row's ("max"), the sum of its candidates' ("sum"),
    half its best row's plus half the mean over all its live rows ("max_mean", :func:`max_mean`), or
    the same with each row weighted by its text's length in the mean ("max_mean_len": a mean over
    the document's text, so a short tail chunk weighs what it holds).
    `fuse`: a hybrid search fuses the rows and groups after ("rows", the default), or groups each
    branch and fuses the group lists ("groups", :mod:`hybrid.query.group_fusion`; no better on the
    chunked collections measured, ``eval/results/chunked.md``); with a reranker or score functions,
    rows are always fused first (they score rows)."""

    column: str | None = None
    per_group: int = 1
    score: GroupScore = "max"
    fuse: GroupFuse = "rows"

    def __post_init__(self) -> None:
        if self.column is not None and (not isinstance(self.column, str) or not self.column):
            raise ValueError(f"group_by needs a column name, got {self.column!r}")
        if isinstance(self.per_group, bool) or not isinstance(self.per_group, int) or self.per_group < 1:
            raise ValueError(f"group_by: per_group must be an integer >= 1, got {self.per_group!r}")
        if self.score not in GROUP_SCORES:
            raise ValueError(f"group_by: score must be 'max', 'sum', 'max_mean' or 'max_mean_len', got {self.score!r}")
        if self.fuse not in GROUP_FUSES:
            raise ValueError(f"group_by: fuse must be 'groups' or 'rows', got {self.fuse!r}")


@dataclass(frozen=True)
class Grouped:
    """The kept rows, group by group (best group first, best row first within it)."""

    ids: np.ndarray
    scores: np.ndarray
    """Each row's own score."""
    group_scores: np.ndarray
    group_ranks: np.ndarray
    """1-based rank of the row's group (counting skipped groups)."""
    n_groups: int
    """Groups among all the candidates."""
    stand_in: np.ndarray | None = None
    """Per kept row, whether it is a title row standing in for a group with no passage among the
    candidates (:func:`hybrid.query.title_rows.stand_ins` puts a passage in its place); None: none is."""


def group(
    ids: np.ndarray,
    scores: np.ndarray,
    keys: Sequence[Hashable | None],
    n_groups: int,
    *,
    skip: int = 0,
    per_group: int = 1,
    score: GroupScore = "max",
    sizes: Sequence[float] | np.ndarray | None = None,
    weights: np.ndarray | None = None,
    marked: np.ndarray | None = None,
    joins: np.ndarray | None = None,
    as_listed: bool = False,
) -> Grouped:
    """Groups `ids` (any order) by `keys` and keeps groups `skip`..`skip + n_groups`, each with its
    `per_group` best rows. A row whose key is null is a group of its own. Ties: the group whose
    best row comes first in `ids` first. `sizes` and `weights` (for "max_mean" and "max_mean_len",
    :func:`group_weights`): each row's group's total weight over its live rows, each row's weight.
    `marked`: each row's title row flag (:mod:`hybrid.query.title_rows`; see :func:`rank_groups`).
    `joins`: which rows may follow their group's best row (None: all; those a fusion counts:
    :func:`hybrid.query.fusion.counted_rows`).
    `as_listed`: `ids` are best first (a search's ranking), their order is kept, not their scores'."""
    groups, group_score = rank_groups(scores, keys, score, sizes, weights, marked, as_listed)
    kept_rows: list[int] = []
    kept_scores: list[float] = []
    kept_ranks: list[int] = []
    for r in range(skip, min(len(groups), skip + n_groups)):
        rows = groups[r] if joins is None else [groups[r][0], *(i for i in groups[r][1:] if joins[i])]
        rows = rows[:per_group]
        kept_rows += rows
        kept_scores += [group_score[r]] * len(rows)
        kept_ranks += [r + 1] * len(rows)
    at = np.asarray(kept_rows, dtype=np.int64)
    own = np.asarray(scores, dtype=np.float64)[at] if len(at) else np.empty(0, np.float64)
    stand_in = None
    if marked is not None and bool(np.any(marked)):  # a stand-in is scored as the weakest candidate
        stand_in = np.asarray(marked, bool)[at] if len(at) else np.zeros(0, bool)
        own = np.where(stand_in, float(np.min(scores)), own)
    return Grouped(
        ids[at] if len(at) else np.empty(0, np.uint64),
        own,
        np.asarray(kept_scores, dtype=np.float64),
        np.asarray(kept_ranks, dtype=np.int32),
        len(groups),
        stand_in,
    )


def group_codes(
    ids: np.ndarray,
    scores: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    *,
    skip: int = 0,
    per_group: int = 1,
    joins: np.ndarray | None = None,
    as_listed: bool = False,
) -> Grouped:
    """:func:`group` with best-row group scores ("max") and no title rows, over integer keys
    (:func:`codes_of`: -1 for a null key, a group of its own), in numpy: the same result, without a
    Python key per candidate."""
    n = len(ids)
    scores = np.asarray(scores, np.float64)
    keys = np.where(codes < 0, -1 - np.arange(n, dtype=np.int64), codes)  # a null key: the row's own group
    order = np.arange(n) if as_listed else np.argsort(-scores, kind="stable")
    ordered = keys[order]
    unique, first, inverse = np.unique(ordered, return_index=True, return_inverse=True)
    firsts = np.sort(first)  # each group's best row (a place in `order`), best group first
    chosen = firsts[skip : skip + n_groups]
    rank_of = np.full(len(unique), -1, np.int64)
    rank_of[inverse[chosen]] = np.arange(len(chosen))
    place = rank_of[inverse]  # each candidate's kept group (its place among them), -1: not kept
    if per_group == 1:
        taken = chosen
    else:
        member = np.ones(n, bool) if joins is None else np.asarray(joins, bool)[order]
        member[first] = True  # a group's best row always leads it
        pos = np.flatnonzero(member)  # the rows that may be kept, in score order
        group_of = inverse[pos]
        by_group = np.argsort(group_of, kind="stable")  # best row first within each group
        sizes = np.bincount(group_of, minlength=len(unique))
        within = np.empty(len(pos), np.int64)
        within[by_group] = np.arange(len(pos)) - (np.cumsum(sizes) - sizes)[group_of[by_group]]
        at = place[pos]
        kept = np.flatnonzero((at >= 0) & (within < per_group))
        taken = pos[kept[np.lexsort((within[kept], at[kept]))]]
    rows = order[taken]
    group_place = place[taken]
    return Grouped(
        ids[rows],
        scores[rows],
        scores[order[chosen]][group_place],
        (group_place + skip + 1).astype(np.int32),
        len(unique),
    )


def rank_groups(
    scores: np.ndarray,
    keys: Sequence[Hashable | None],
    score: GroupScore = "max",
    sizes: Sequence[float] | np.ndarray | None = None,
    weights: np.ndarray | None = None,
    marked: np.ndarray | None = None,
    as_listed: bool = False,
) -> tuple[list[list[int]], list[float]]:
    """The groups of rows (positions into `scores`, best row first), best group first, and each
    group's score; a null key is a group of its own. Ties: the group whose best row comes first.
    With `marked` (title rows, :mod:`hybrid.query.title_rows`), a group lists its passages only and
    its best row is its best passage; a marked row counts in the "sum" and in the "max_mean" mean
    (see :func:`_rank_passages` for a group without a passage among the rows). `as_listed`: the rows
    are best first as given (a search's ranking), not sorted by score."""
    order = np.arange(len(scores)) if as_listed else np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    members: dict[object, list[int]] = {}
    for i in order.tolist():
        key = keys[i]
        members.setdefault(("\0null", i) if key is None else key, []).append(i)
    groups = list(members.values())  # in the order of their best rows
    if marked is not None and bool(np.any(marked)):
        return _rank_passages(np.asarray(scores, np.float64), groups, marked, score, sizes, weights)
    if score == "sum":
        totals = [float(np.sum(scores[g])) for g in groups]
    elif score in MEAN_SCORES:
        if sizes is None or (score == "max_mean_len" and weights is None):
            raise ValueError(f"group score {score!r} needs each row's group size (and weight)")
        totals = max_mean(np.asarray(scores, dtype=np.float64), groups, np.asarray(sizes, np.float64), weights)
    else:
        return groups, [float(scores[g[0]]) for g in groups]
    rank = sorted(range(len(groups)), key=lambda j: -totals[j])  # stable: ties keep best-row order
    return [groups[j] for j in rank], [totals[j] for j in rank]


def _rank_passages(
    scores: np.ndarray,
    groups: list[list[int]],
    marked: np.ndarray,
    score: GroupScore,
    sizes: Sequence[float] | np.ndarray | None,
    weights: np.ndarray | None,
) -> tuple[list[list[int]], list[float]]:
    """:func:`rank_groups` where some rows are title rows: scored on all rows, listed and led by passages.
    A group without a passage among the rows takes the weakest row's score as its best passage's, and
    lists its best title row alone (a stand-in for one of its passages: :func:`hybrid.query.title_rows.stand_ins`)."""
    weakest = float(scores.min())
    passages = [[i for i in g if not marked[i]] for g in groups]
    top = np.asarray([scores[p[0]] if p else weakest for p in passages], np.float64)
    lists = [p if p else g[:1] for g, p in zip(groups, passages)]
    if score == "sum":
        totals = [float(np.sum(scores[g])) for g in groups]
    elif score in MEAN_SCORES:
        if sizes is None or (score == "max_mean_len" and weights is None):
            raise ValueError(f"group score {score!r} needs each row's group size (and weight)")
        totals = max_mean(scores, groups, np.asarray(sizes, np.float64), weights, top)
    else:
        totals = top.tolist()
    rank = sorted(range(len(groups)), key=lambda j: -totals[j])  # stable: ties keep best-row order
    return [lists[j] for j in rank], [totals[j] for j in rank]


def max_mean(
    scores: np.ndarray,
    groups: list[list[int]],
    sizes: np.ndarray,
    weights: np.ndarray | None = None,
    top: np.ndarray | None = None,
) -> list[float]:
    """Each group's score: half its best row's plus half the mean score over all its live rows,
    rows that are not among the candidates counting as the weakest candidate. With `weights`
    (each row's, e.g. its text length; `sizes` then each group's total weight), the mean is
    weighted: what is not among the candidates weighs its share of the total at the weakest score.
    `top`: each group's best score (default its first row's; a title row is in the mean, not the best).

    The best chunk alone favours long documents: a document of many chunks has many tries, and a
    table of contents or an index page holds one chunk naming everything. The mean over the whole
    document is what a document-level search would see. A document of one chunk keeps its
    chunk's score; no constant to tune (the weakest candidate anchors any score scale).

    >>> s = np.array([0.9, 0.8, 0.5])
    >>> # 0.9 from one chunk of ten, against 0.8 and 0.5 from a document of two
    >>> [round(x, 4) for x in max_mean(s, [[0], [1, 2]], np.array([10, 2, 2]))]
    [0.72, 0.725]
    >>> # the same, the second document's 0.5 chunk a short tail (100 characters against 900)
    >>> [round(x, 4) for x in max_mean(s, [[0], [1, 2]], np.array([9000, 1000, 1000]), np.array([900, 900, 100]))]
    [0.72, 0.785]
    """
    if not len(scores):
        return []
    lengths = np.fromiter((len(g) for g in groups), np.int64, len(groups))
    rows = np.fromiter(itertools.chain.from_iterable(groups), np.int64, int(lengths.sum()))
    w = np.ones(len(scores)) if weights is None else np.asarray(weights, np.float64)
    where = np.repeat(np.arange(len(groups)), lengths)
    sums = np.bincount(where, weights=scores[rows] * w[rows], minlength=len(groups))
    seen = np.bincount(where, weights=w[rows], minlength=len(groups))
    first = rows[np.cumsum(lengths) - lengths]
    n = np.maximum(sizes[first], seen)
    mean = (sums + (n - seen) * float(scores.min())) / n
    best = scores[first] if top is None else top
    return ((best + mean) / 2).tolist()


def group_sizes(view: IndexedSnapshot, column: str, ids: np.ndarray) -> np.ndarray:
    """How many live rows share each row's key (1 for a null key), counted over the whole version,
    filters aside; from the version's cached key codes where :func:`keys_of` keeps them."""
    snap = view.snapshot
    if not len(ids):
        return np.zeros(0, np.int64)
    if snap.manifest.num_rows <= KEY_CACHE_MAX_ROWS:
        sorted_ids, codes = view.remember("group_keys", (view.version, column), lambda: _codes(view, column), keep=4)
        at = np.minimum(np.searchsorted(sorted_ids, ids), max(len(sorted_ids) - 1, 0))
        if len(sorted_ids) and bool(np.all(sorted_ids[at] == ids)):
            counts = view.remember(
                "group_sizes", (view.version, column), lambda: np.bincount(codes[codes >= 0]), keep=4
            )
            found = codes[at]
            return np.where(found >= 0, counts[np.maximum(found, 0)] if len(counts) else 1, 1)
    by_value = view.remember(
        "group_sizes_by_value", (view.version, column), lambda: _value_counts(view, column), keep=4
    )
    values = snap.take(ids, [column]).column(column).to_pylist()
    return np.asarray([1 if v is None else by_value.get(v, 1) for v in values], np.int64)


def group_weights(
    view: IndexedSnapshot, column: str, ids: np.ndarray, score: GroupScore
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """What `score` needs besides the rows' scores: (each row's group's total weight, each row's
    weight), or (None, None). "max_mean": every row weighs 1, a group its live rows
    (:func:`group_sizes`); "max_mean_len": a row weighs its text's length in characters (at least
    1), a group the sum over its live rows (:func:`group_lengths`)."""
    if score == "max_mean":
        return group_sizes(view, column, ids), None
    if score == "max_mean_len":
        return group_lengths(view, column, ids)
    return None, None


def text_column(view: IndexedSnapshot) -> str:
    """The column whose length weighs a row for "max_mean_len": the chunk layout's text, else ``text``."""
    layout = chunk_layout.read(view.snapshot.manifest.metadata)
    names = view.snapshot.schema.names
    for name in ([layout.text] if layout else []) + ["text"]:
        if name in names:
            return name
    raise SchemaError(
        "group score 'max_mean_len' weighs rows by their text: declare it, "
        "table.set_chunking(parent=..., text='<column>'), or use score='max_mean'"
    )


def group_lengths(view: IndexedSnapshot, column: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group's total text length over the version's live rows, and each row's own
    (characters of :func:`text_column`, at least 1; a null key: the row alone)."""
    snap = view.snapshot
    if not len(ids):
        return np.zeros(0), np.zeros(0)
    text = text_column(view)
    sorted_ids, lengths, totals = view.remember(
        "group_lengths", (view.version, column, text), lambda: _lengths(view, column, text), keep=4
    )
    at = np.minimum(np.searchsorted(sorted_ids, ids), max(len(sorted_ids) - 1, 0))
    if len(sorted_ids) and bool(np.all(sorted_ids[at] == ids)):
        return totals[at], lengths[at]
    rows = snap.take(ids, [column, text])  # not live in this version: read them
    own = _char_lengths(rows.column(text))
    return own.copy(), own


def _char_lengths(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    import pyarrow.compute as pc

    counted = pc.fill_null(pc.utf8_length(values), 0)
    return np.maximum(np.asarray(counted.to_numpy(zero_copy_only=False), np.float64), 1.0)


def _lengths(view: IndexedSnapshot, column: str, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every live row id, sorted, its text's length and its group's total length."""
    data = view.snapshot.to_arrow([column, text], with_rowid=True)
    ids = data.column("_rowid").to_numpy()
    lengths = _char_lengths(data.column(text))
    codes = data.column(column).combine_chunks().dictionary_encode().indices.fill_null(-1)
    codes = codes.to_numpy(zero_copy_only=False).astype(np.int64)
    keyed = codes >= 0
    sums = np.bincount(codes[keyed], weights=lengths[keyed]) if bool(keyed.any()) else np.zeros(0)
    totals = np.where(keyed, sums[np.maximum(codes, 0)] if len(sums) else lengths, lengths)
    order = np.argsort(ids, kind="stable")
    return ids[order], lengths[order], totals[order]


def _value_counts(view: IndexedSnapshot, column: str) -> dict[object, int]:
    import pyarrow.compute as pc

    counts = pc.value_counts(view.snapshot.to_arrow([column]).column(column))
    return {
        v: c for v, c in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()) if v is not None
    }


def group_depth(base: int, wanted_groups: int, per_group: int) -> int:
    """Candidates per branch for a grouped search: `OVERFETCH` per wanted row, at least `base`."""
    return min(MAX_DEPTH, max(base, OVERFETCH * wanted_groups * per_group))


def needs_more(found_groups: int, wanted_groups: int, branch_hits: Sequence[int], depth: int) -> bool:
    """Whether to search again deeper: too few groups, and some branch filled its list (so more exist)."""
    return found_groups < wanted_groups and depth < MAX_DEPTH and any(n >= depth for n in branch_hits)


def key_column(grouping: Grouping, snap: Snapshot) -> str:
    """The column to group by: the one named, else the table's declared parent column."""
    name = grouping.column
    if name is None:
        layout = chunk_layout.read(snap.manifest.metadata)
        if layout is None:
            raise SchemaError(
                "group_by() without a column needs the table's chunk layout: "
                "call table.set_chunking(parent=...) or name the column, group_by('doc_id')"
            )
        name = layout.parent
    if name not in snap.schema.names:
        raise SchemaError(f"group_by: no column {name!r} in the table (columns: {', '.join(snap.schema.names)})")
    return name


def keys_of(view: IndexedSnapshot, column: str, ids: np.ndarray) -> list[Hashable | None]:
    """The group key of each row id (null: None); from the version's cached codes on tables up to
    :data:`KEY_CACHE_MAX_ROWS` rows, else read from the rows."""
    codes = codes_of(view, column, ids)
    if codes is None:
        return list(view.snapshot.take(ids, [column]).column(column).to_pylist())
    return [None if c < 0 else c for c in codes.tolist()]


def codes_of(view: IndexedSnapshot, column: str, ids: np.ndarray) -> np.ndarray | None:
    """Each row id's key as the version's dictionary code (-1: null), or None where the codes are
    not kept (tables over :data:`KEY_CACHE_MAX_ROWS` rows, rows not live in this version)."""
    snap = view.snapshot
    if snap.manifest.num_rows > KEY_CACHE_MAX_ROWS or not len(ids):
        return None
    sorted_ids, codes = view.remember("group_keys", (view.version, column), lambda: _codes(view, column), keep=4)
    at = np.minimum(np.searchsorted(sorted_ids, ids), max(len(sorted_ids) - 1, 0))
    if not len(sorted_ids) or not bool(np.all(sorted_ids[at] == ids)):  # not live here
        return None
    found: np.ndarray = codes[at]
    return found


def _codes(view: IndexedSnapshot, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Every live row id, sorted, and its key's dictionary code (-1 for null)."""
    data = view.snapshot.to_arrow([column], with_rowid=True)
    ids = data.column("_rowid").to_numpy()
    codes = data.column(column).combine_chunks().dictionary_encode().indices.fill_null(-1)
    order = np.argsort(ids, kind="stable")
    return ids[order], codes.to_numpy(zero_copy_only=False).astype(np.int64)[order]
