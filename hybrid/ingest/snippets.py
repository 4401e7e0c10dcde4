"""Snippets for the command line: a passage's best window with the query's terms marked.

Matching is :mod:`hybrid.query.highlight`'s (the same as search results' highlights):
words analysed like the indexed column, so "indexes" in a passage is marked for the query
"index". Whitespace is collapsed for the terminal; renderers (rich in the CLI) style the
returned spans.

>>> s = snippet("Building indexes concurrently avoids locking out writes.", "create index concurrently")
>>> [s.text[a:b] for a, b in s.spans]
['indexes', 'concurrently']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hybrid.query.highlight import TermMatcher, highlight

if TYPE_CHECKING:
    from hybrid.index.analyzer import Analyzer
    from hybrid.table import Table

__all__ = ["Snippet", "TermMatcher", "snippet", "table_analyzer"]

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Snippet:
    """`text` (possibly a window of the passage, with ``…`` where cut) and the ``(start, end)`` of each match."""

    text: str
    spans: tuple[tuple[int, int], ...]


def snippet(text: str, query: str, *, width: int = 300, analyzer: Analyzer | None = None) -> Snippet:
    """The `width`-character window of `text` holding the most distinct query terms, matches marked.

    Whitespace is collapsed; the window is cut at word boundaries and marked
    with ``…`` where it does not reach the passage's start or end.
    """
    flat = _SPACE.sub(" ", text).strip()
    h = highlight(flat, TermMatcher(query, analyzer), width)
    shift = (1 if h.start > 0 else 0) - h.start
    kept = tuple((a + shift, b + shift) for a, b in h.spans if a >= h.start and b <= h.end)
    return Snippet(h.snippet, kept)


def table_analyzer(table: Table) -> Analyzer | None:
    """The analyzer of `table`'s full-text index (None without one), to mark words as BM25 matched them."""
    from hybrid.index.analyzer import Analyzer

    for stats in table.index_stats():
        if stats["kind"] == "fts" and "analyzer" in stats:
            return Analyzer.from_dict(stats["analyzer"])
    return None
