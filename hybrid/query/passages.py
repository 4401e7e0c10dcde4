"""The rows a flat (ungrouped) search may return on a table with title rows: its passages.

A title row (:mod:`hybrid.query.title_rows`) is no passage, so a flat search never returns it.
It is left out inside each branch the way a filter's rows are: the branches search within the
table's passages (or the prefilter's rows less the title rows), so a vector branch over-fetches
past the title rows it meets and a text branch keeps searching until k passages are found, and
``.limit(k)`` gives k rows whenever the table holds k passages. A grouped search does not use it:
there a title row counts in its document's score. A table that declares no title row column
gets its rows unchanged (the same object, the same path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hybrid.index.coverage import member
from hybrid.query import title_rows
from hybrid.query.allowed import FILTER_CACHE_BYTES, FILTER_CACHE_COUNT, Allowed

if TYPE_CHECKING:
    from hybrid.index.view import IndexedSnapshot


def gate(view: IndexedSnapshot, allowed: Allowed | None) -> Allowed | None:
    """The rows a flat search's branches search: `allowed` (the prefilter's rows; None: every live
    row) less the table's title rows, made once per (version, filter) and kept under the filter
    cache's bounds; `allowed` itself when the table declares no title row column."""
    name = title_rows.column(view)
    if name is None:
        return allowed
    if allowed is None:  # one set per version, as the title marks it comes from
        every: Allowed = view.remember("passages", (view.version, name), lambda: _less_titles(view, name, None), 4)
        return every
    if allowed.flt is None:  # not a cached filter's set: nothing to key it by
        return _less_titles(view, name, allowed)
    key = (view.version, name, allowed.flt.sql)

    def make() -> Allowed:
        return _less_titles(view, name, allowed)

    found: Allowed = view.remember("filtered_passages", key, make, FILTER_CACHE_COUNT, FILTER_CACHE_BYTES)
    return found


def title_count(view: IndexedSnapshot) -> int | None:
    """How many live rows of `view` are title rows; None when the table declares no title row column."""
    name = title_rows.column(view)
    if name is None:
        return None
    _, marks = title_rows.version_marks(view, name)
    return int(marks.sum())


def _less_titles(view: IndexedSnapshot, name: str, allowed: Allowed | None) -> Allowed:
    ids, marks = title_rows.version_marks(view, name)
    if allowed is None:
        return Allowed(ids[~marks], view.snapshot, "the table's passages (title rows left out)")
    titles = ids[marks]
    return Allowed(allowed.ids[~member(allowed.ids, titles)], view.snapshot, allowed.how + ", title rows left out")
