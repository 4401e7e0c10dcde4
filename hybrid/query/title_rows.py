"""Title rows: rows of a chunk table that describe their document without being a passage of it.

A chunk table may hold each document's title as a row of its own (``hybrid ingest --titles once``)
instead of before every chunk, and declare the boolean column that marks it
(``table.set_chunking(parent=..., title_row="is_title")``). Such a row is searched like any chunk,
so its score is on the chunks' scale, and a grouped search counts it as one more row of its
document in the ``max_mean`` mean (the title is part of what a document-level search sees) but
never as the document's best row, and never returns it: a title that reads like the query (a FAQ's
question) does not stand for a document whose text does not answer it. A document whose only
candidates are title rows is scored with the weakest candidate as its best passage, and returns
its first passage (by position) that the query's filter allows, scored as the weakest candidate
(:func:`stand_ins`); with a reranker, which scores rows it has read, such a document is left out.
A flat search never returns a title row either: its branches search the passages only
(:mod:`hybrid.query.passages`). Expansion joins and counts only passages, and a title row gets no
highlight. A table that declares no title row column behaves as if it had none.

Measured on chunked SciFact and webfaq samples (``eval/results/chunked_title_rows_g20f.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybrid.query import chunk_layout

if TYPE_CHECKING:
    from hybrid.index.view import IndexedSnapshot
    from hybrid.query.grouping import Grouped


def column(view: IndexedSnapshot) -> str | None:
    """The table's declared title row column, or None (no layout, or none declared)."""
    layout = chunk_layout.read(view.snapshot.manifest.metadata)
    return None if layout is None else layout.title_row


def flags(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean column as marks: true where it is true (null: a passage)."""
    filled = pc.fill_null(values, False)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def marks_of(view: IndexedSnapshot, ids: np.ndarray) -> np.ndarray | None:
    """For each row id, whether it is a title row; None when the table declares no title row column.
    The version's marks are read once and kept (sorted row ids and a flag each); rows that are not
    live in this version are read."""
    name = column(view)
    if name is None:
        return None
    if not len(ids):
        return np.zeros(0, bool)
    sorted_ids, marks = version_marks(view, name)
    at = np.minimum(np.searchsorted(sorted_ids, ids), max(len(sorted_ids) - 1, 0))
    if len(sorted_ids) and bool(np.all(sorted_ids[at] == ids)):
        found: np.ndarray = marks[at]
        return found
    return flags(view.snapshot.take(np.asarray(ids, np.uint64), [name]).column(name))


def version_marks(view: IndexedSnapshot, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The live rows of `view`'s version (sorted row ids) and whether each is a title row (by the
    boolean column `name`), read once per version and kept in the table's search cache."""
    found: tuple[np.ndarray, np.ndarray] = view.remember(
        "title_rows", (view.version, name), lambda: _marks(view, name), keep=4
    )
    return found


def _marks(view: IndexedSnapshot, name: str) -> tuple[np.ndarray, np.ndarray]:
    data = view.snapshot.to_arrow([name], with_rowid=True)
    ids = data.column("_rowid").to_numpy()
    order = np.argsort(ids, kind="stable")
    return ids[order], flags(data.column(name))[order]


def stand_ins(
    view: IndexedSnapshot, g: Grouped, key: str, allowed: Callable[[np.ndarray], np.ndarray] | None
) -> Grouped:
    """`g` with each stand-in title row (:attr:`hybrid.query.grouping.Grouped.stand_in`) replaced by its
    document's first live passage that `allowed` (row ids -> which may be results; None: all) lets
    through; a stand-in without one, or grouped by another column than the declared parent, is
    dropped. With `allowed` None, stand-ins are dropped as well (a reranked search)."""
    if g.stand_in is None or not bool(g.stand_in.any()):
        return g
    from hybrid.query.expansion import chunk_map

    layout = chunk_layout.read(view.snapshot.manifest.metadata)
    ids = g.ids.copy()
    keep = ~g.stand_in
    if layout is not None and layout.parent == key and allowed is not None:
        cmap = chunk_map(view, layout)
        at = np.flatnonzero(g.stand_in)
        parents = view.snapshot.take(g.ids[at], [key]).column(key).to_pylist()
        for i, parent in zip(at.tolist(), parents):
            start, end = cmap.slices.get(parent, (0, 0)) if parent is not None else (0, 0)
            passages = cmap.rowids[start:end]
            ok = passages[allowed(passages)] if len(passages) else passages
            if len(ok):
                ids[i], keep[i] = ok[0], True
    return replace(
        g,
        ids=ids[keep],
        scores=g.scores[keep],
        group_scores=g.group_scores[keep],
        group_ranks=g.group_ranks[keep],
        stand_in=None,
    )
