"""Snippets with the query's terms marked, matched the way the full-text index matches them.

Each word of the text is analysed like the indexed column (lowercased, ASCII
folded, stemmed; stop words give no term), so "indexes" in a passage is marked
for the query "index". Renderers (rich in the CLI) style the returned spans.

>>> s = snippet("Building indexes concurrently avoids locking out writes.", "create index concurrently")
>>> [s.text[a:b] for a, b in s.spans]
['indexes', 'concurrently']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hybrid.index.analyzer import Analyzer
    from hybrid.table import Table

_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Snippet:
    """`text` (possibly a window of the passage, with ``…`` where cut) and the ``(start, end)`` of each match."""

    text: str
    spans: tuple[tuple[int, int], ...]


class TermMatcher:
    """Which words of a text match a query's analysed terms."""

    def __init__(self, query: str, analyzer: Analyzer | None = None) -> None:
        from hybrid.index.analyzer import Analyzer

        self.analyzer = analyzer or Analyzer()
        self._terms = lru_cache(maxsize=4096)(self._analyse)
        self.query_terms = frozenset(t for w in _WORD.findall(query) for t in self._terms(w))

    def _analyse(self, word: str) -> tuple[str, ...]:
        try:
            return tuple(self.analyzer.terms(word))
        except Exception:  # an analyzer that cannot run here (e.g. jieba missing): plain lowercase
            return (word.lower(),)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` of every word of `text` that gives one of the query's terms."""
        if not self.query_terms:
            return []
        return [m.span() for m in _WORD.finditer(text) if self.query_terms.intersection(self._terms(m.group()))]


def snippet(text: str, query: str, *, width: int = 300, analyzer: Analyzer | None = None) -> Snippet:
    """The `width`-character window of `text` holding the most distinct query terms, matches marked.

    Whitespace is collapsed; the window is cut at word boundaries and marked
    with ``…`` where it does not reach the passage's start or end.
    """
    flat = _SPACE.sub(" ", text).strip()
    matcher = TermMatcher(query, analyzer)
    spans = matcher.spans(flat)
    if len(flat) <= width:
        return Snippet(flat, tuple(spans))
    start = _best_start(flat, spans, width, matcher)
    end = min(len(flat), start + width)
    if end < len(flat):
        cut = flat.rfind(" ", start, end)
        end = cut if cut > start else end
    if start > 0:
        cut = flat.find(" ", start, end)
        start = cut + 1 if 0 <= cut < start + width // 4 else start
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(flat) else ""
    shift = len(prefix) - start
    kept = tuple((a + shift, b + shift) for a, b in spans if a >= start and b <= end)
    return Snippet(prefix + flat[start:end].strip() + suffix, kept)


def _best_start(text: str, spans: list[tuple[int, int]], width: int, matcher: TermMatcher) -> int:
    if not spans:
        return 0
    best, best_score = 0, -1
    for a, _ in spans:
        start = max(0, a - width // 5)
        inside = {text[x:y] for x, y in spans if x >= start and y <= start + width}
        score = len({t for w in inside for t in matcher._terms(w)})
        if score > best_score:
            best, best_score = start, score
    return best


def table_analyzer(table: Table) -> Analyzer | None:
    """The analyzer of `table`'s full-text index (None without one), to mark words as BM25 matched them."""
    from hybrid.index.analyzer import Analyzer

    for stats in table.index_stats():
        if stats["kind"] == "fts" and "analyzer" in stats:
            return Analyzer.from_dict(stats["analyzer"])
    return None
