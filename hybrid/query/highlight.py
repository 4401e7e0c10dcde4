"""Highlights: which words of a stored text match a query, as the full-text index matched them.

Each word is analysed like the indexed column (lower case, ASCII folding, stemming; stop
words give no term), so "indexes" in a passage is marked for the query "index". Runs of
scripts written without spaces (Chinese, Japanese, Thai ...) are matched by the query's own
terms found inside them (its words or character bigrams; single characters only when the
query has nothing longer), and touching matches merge, so "机器学习" is one highlight.
Offsets are character offsets into the text as stored, never into a cleaned-up copy.

The search API (``.highlight()``), the REST server, the adapters and the CLI's snippets
(:mod:`hybrid.ingest.snippets`) all use this module.

>>> m = TermMatcher("create index concurrently")
>>> text = "Building indexes concurrently avoids locking out writes."
>>> [text[a:b] for a, b in m.spans(text)]
['indexes', 'concurrently']
>>> h = highlight(text, m, width=30)
>>> h.marked("[", "]"), h.spans[0]
('Building [indexes] [concurrently]…', (9, 16))
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from hybrid.errors import SchemaError
from hybrid.index.analyzer import Analyzer
from hybrid.query import chunk_layout, title_rows

if TYPE_CHECKING:
    from hybrid.index.catalog import IndexEntry
    from hybrid.index.view import IndexedSnapshot

_WORD = re.compile(r"\w+", re.UNICODE)
_UNSPACED = re.compile(
    r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
    r"\u0e00-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f]+"
)
UNSPACED_SCRIPTS = _UNSPACED
"""Runs of scripts written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Burmese)."""
_DEFAULT = Analyzer()
_ASCII_GAPS = {c: " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")}
"""Every ASCII character that is not a word character, to a space (so ``split()`` finds ``\\w+``)."""


_CACHE_WORDS = 200_000
"""Words whose terms are kept per analyzer (a table's words repeat from query to query)."""
_CACHE_TEXTS = 200_000
"""Texts remembered per analyzer as having only known words (a search returns its best rows again)."""


class _Words:
    """One analyzer's words seen so far: each word's terms, and for each term the words giving it."""

    def __init__(self) -> None:
        self.terms: dict[str, frozenset[str]] = {}
        self.words: dict[str, set[str]] = {}
        self.known: set[str] = set()
        """The words of `terms` as a set (``issuperset`` of a list checks them without building a set)."""
        self.texts: set[int] = set()
        """Hashes of texts whose every word is in `terms` (their words need no look-up again)."""

    def add(self, word: str, terms: frozenset[str]) -> None:
        self.terms[word] = terms
        self.known.add(word)
        for t in terms:
            self.words.setdefault(t, set()).add(word)


_caches: dict[Analyzer, _Words] = {}


def _cache_for(analyzer: Analyzer) -> _Words:
    cache = _caches.get(analyzer)
    if cache is None or len(cache.terms) > _CACHE_WORDS or len(cache.texts) > _CACHE_TEXTS:
        cache = _caches[analyzer] = _Words()
    return cache


def _word_terms(analyzer: Analyzer, word: str) -> frozenset[str]:
    """The index terms of one word."""
    try:
        return frozenset(analyzer.terms(word))
    except Exception:  # an analyzer that cannot run here (e.g. jieba missing): plain lower case
        return frozenset((word.lower(),))


class TermMatcher:
    """Which words of a text match a query's analysed terms."""

    def __init__(self, query: str, analyzer: Analyzer | None = None) -> None:
        self.analyzer = analyzer or _DEFAULT
        self._cache = _cache_for(self.analyzer)
        self._keys: dict[str, str] = {}
        if query.isascii():  # the \w+ words of ASCII text are what split() finds between non-word characters
            self.query_terms = frozenset(t for w in query.translate(_ASCII_GAPS).split() for t in self.terms(w))
            self.unspaced_terms: tuple[str, ...] = ()
            return
        spaced = _UNSPACED.sub(" ", query)
        self.query_terms = frozenset(t for w in _WORD.findall(spaced) for t in self.terms(w))
        unspaced = {t for run in _UNSPACED.findall(query) for t in self._unspaced_terms(run)}
        longer = {t for t in unspaced if len(t) > 1}
        self.unspaced_terms = tuple(sorted(longer or unspaced, key=len, reverse=True))

    def key(self, word: str) -> str:
        """What counts a matched word once in a window: its first term (the word itself in
        unspaced scripts, or when it has no term)."""
        found = self._keys.get(word)
        if found is None:
            unspaced = not word.isascii() and _UNSPACED.fullmatch(word) is not None
            found = word if unspaced else min(self.terms(word), default=word)
            self._keys[word] = found
        return found

    def _unspaced_terms(self, run: str) -> set[str]:
        try:
            terms = set(self.analyzer.terms(run))
        except Exception:
            terms = set()
        terms |= {run[i : i + 2] for i in range(len(run) - 1)} | set(run)  # bigrams and characters as a floor
        return {t for t in terms if _UNSPACED.fullmatch(t)}

    def terms(self, word: str) -> frozenset[str]:
        """The analysed terms of one word."""
        found = self._cache.terms.get(word)
        if found is None:
            found = _word_terms(self.analyzer, word)
            self._cache.add(word, found)
        return found

    def matching(self, words: set[str]) -> set[str]:
        """Those of `words` that give one of the query's terms (set operations over the cached words)."""
        cache = self._cache
        for word in words.difference(cache.terms):  # words never seen: analysed once
            self.terms(word)
        found: set[str] = set()
        for t in self.query_terms:
            found |= cache.words.get(t, set())
        return found & words

    def spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` of every matching word (or run of matching characters) of `text`, in order."""
        out: list[tuple[int, int]] = []
        if self.query_terms:
            has_unspaced = not text.isascii() and _UNSPACED.search(text) is not None
            spaced = _UNSPACED.sub(lambda r: " " * len(r.group()), text) if has_unspaced else text
            hits = self.matching(set(_WORD.findall(spaced)))  # each distinct word analysed once, ever
            if hits:
                out += [m.span() for m in _WORD.finditer(spaced) if m.group() in hits]
        if self.unspaced_terms:
            for run in _UNSPACED.finditer(text):
                out += _found_inside(run.group(), run.start(), self.unspaced_terms)
            out.sort()
        return out

    def spans_many(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """:meth:`spans` of each text, the words of all of them looked up together: a text not seen
        before has its words split once (those never seen are analysed), then each word known to give
        a query term is found by substring search in all the texts at once (no per-word Python work)."""
        if self.unspaced_terms or not self.query_terms or not all(t.isascii() for t in texts):
            return [self.spans(t) for t in texts]
        joined = "\0".join(texts)
        gaps = " " + joined.translate(_ASCII_GAPS) + " "  # words between single spaces, offsets + 1
        cache = self._cache
        fresh = [t for t in texts if hash(t) not in cache.texts]
        if fresh:  # texts not looked at before: their words never seen are analysed, once
            # the \w+ words of ASCII text (all the texts' when all are new, as for most questions)
            words = gaps.split() if len(fresh) == len(texts) else " ".join(fresh).translate(_ASCII_GAPS).split()
            if not cache.known.issuperset(words):
                for word in set(words).difference(cache.terms):
                    self.terms(word)
            cache.texts.update(map(hash, fresh))
        # the words known to give a query term (now every word of the texts is known), those that
        # occur in the texts (a substring test; the scan below finds whole words only)
        hits = {w for t in self.query_terms for w in cache.words.get(t, ()) if w in joined}
        if any(len(w) > 0xFFFF for w in hits):  # (no text has such a word, but spans pack lengths in 16 bits)
            return [self.spans(t) for t in texts]
        if not hits:
            return [[] for _ in texts]
        return _split_spans(_whole_words(gaps, hits), [len(t) for t in texts])


def _whole_words(gaps: str, words: set[str]) -> list[int]:
    """Where each of `words` stands between spaces in `gaps` (text whose non-word characters are
    spaces, a space at each end), sorted, each as ``start << 16 | length`` (ints sort faster than
    pairs): one substring search per occurrence (``str.find`` runs in C; a regular expression of the
    words would try its alternatives at every space, and compile anew for each new set of words)."""
    found: list[int] = []
    add = found.append
    for w in words:
        needle, n = f" {w} ", len(w)
        at = gaps.find(needle)
        while at >= 0:
            add((at + 1) << 16 | n)
            at = gaps.find(needle, at + 1 + n)  # from the space after it: a touching repeat matches too
    found.sort()
    return found


def _split_spans(found: list[int], lengths: list[int]) -> list[list[tuple[int, int]]]:
    """`found` (:func:`_whole_words` in ``" " + "\\0".join(texts) + " "``) as each text's own spans."""
    out: list[list[tuple[int, int]]] = [[] for _ in lengths]
    i, begin, stop = 0, 1, 1 + lengths[0]  # text i is gaps[begin : stop]
    spans = out[0]
    for v in found:
        at = v >> 16
        while at >= stop:  # past text i: the next text (or the one after an empty one)
            i += 1
            begin, stop = stop + 1, stop + 1 + lengths[i]
            spans = out[i]
        spans.append((at - begin, at - begin + (v & 0xFFFF)))
    return out


def _found_inside(run: str, offset: int, terms: tuple[str, ...]) -> list[tuple[int, int]]:
    """Spans of `terms` inside one unspaced run, touching or overlapping ones merged."""
    hit = [False] * len(run)
    for term in terms:
        at = run.find(term)
        while at >= 0:
            hit[at : at + len(term)] = [True] * len(term)
            at = run.find(term, at + 1)
    spans, start = [], None
    for i, h in enumerate([*hit, False]):
        if h and start is None:
            start = i
        elif not h and start is not None:
            spans.append((offset + start, offset + i))
            start = None
    return spans


@dataclass(frozen=True)
class Highlight:
    """A window ``text[start:end]`` of the stored text and every match's span in the stored text."""

    text: str
    start: int
    end: int
    spans: tuple[tuple[int, int], ...]
    """All matches in the whole stored text (not only in the window)."""

    @property
    def snippet(self) -> str:
        """The window, with ``…`` where it does not reach the text's start or end."""
        return (
            ("…" if self.start > 0 else "")
            + self.text[self.start : self.end]
            + ("…" if self.end < len(self.text) else "")
        )

    def marked(self, pre: str = "<em>", post: str = "</em>") -> str:
        """The snippet with each match inside the window wrapped in `pre` and `post`."""
        return _marked(self.text, self.spans, self.start, self.end, pre, post)


def _marked(text: str, spans: Sequence[tuple[int, int]], start: int, end: int, pre: str, post: str) -> str:
    """``text[start:end]`` with each match inside it wrapped in `pre` and `post`, ``…`` where cut."""
    out, at = ["…" if start > 0 else ""], start
    for a, b in spans:
        if a >= start and b <= end:
            out += [text[at:a], pre, text[a:b], post]
            at = b
    out += [text[at:end], "…" if end < len(text) else ""]
    return "".join(out)


def highlight(
    text: str, matcher: TermMatcher, width: int = 200, spans: list[tuple[int, int]] | None = None
) -> Highlight:
    """The `width`-character window of `text` holding the most distinct matched terms (cut at spaces
    where it can be), and every match's span (`spans`: already found by the matcher)."""
    spans = matcher.spans(text) if spans is None else spans
    start, end = window(text, spans, width, matcher)
    return Highlight(text, start, end, tuple(spans))


def window(text: str, spans: list[tuple[int, int]], width: int, matcher: TermMatcher) -> tuple[int, int]:
    """``(start, end)`` of :func:`highlight`'s window: the whole text when it fits in `width`."""
    if len(text) <= width:
        return 0, len(text)
    start = 0 if not spans or spans[-1][1] <= width else _best_start(text, spans, width, matcher)
    end = min(len(text), start + width)
    if end < len(text):
        cut = text.rfind(" ", start, end)
        end = cut if cut > start + width // 2 else end
    if start > 0:
        cut = text.find(" ", start, start + width // 4)
        if cut >= 0:
            last = bisect.bisect_right(spans, (cut, len(text))) - 1  # the last match starting at or before it
            if last < 0 or spans[last][1] <= cut:  # not inside a match
                start = cut + 1
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _best_start(text: str, spans: list[tuple[int, int]], width: int, matcher: TermMatcher) -> int:
    """Where the window with the most distinct matched terms starts (a fifth of it before a match)."""
    if not spans:
        return 0
    first = max(0, spans[0][0] - width // 5)
    if spans[-1][1] <= first + width:  # the first match's window holds them all
        return first
    keys = [matcher.key(text[a:b]) for a, b in spans]
    everything = len(set(keys))
    starts = [a for a, _ in spans]
    best, best_score = 0, -1
    for a in starts:
        start = max(0, a - width // 5)
        lo = bisect.bisect_left(starts, start)
        hi = bisect.bisect_right(starts, start + width)
        while hi > lo and spans[hi - 1][1] > start + width:
            hi -= 1
        score = len(set(keys[lo:hi]))
        if score > best_score:
            best, best_score = start, score
            if score == everything:
                break
    return best


@dataclass(frozen=True)
class Highlighting:
    """What ``Query.highlight()`` asked for: the column (None: the searched text column), the snippet's
    width in characters, and the marks around each match."""

    column: str | None = None
    width: int = 200
    pre: str = "<em>"
    post: str = "</em>"

    def __post_init__(self) -> None:
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 10:
            raise ValueError(f"highlight: width must be an integer >= 10 characters, got {self.width!r}")
        if not isinstance(self.pre, str) or not isinstance(self.post, str):
            raise ValueError("highlight: pre and post must be strings")
        if self.column is not None and (not isinstance(self.column, str) or not self.column):
            raise ValueError(f"highlight needs a column name, got {self.column!r}")


SPAN = pa.struct([("start", pa.int64()), ("end", pa.int64())])


def add_highlights(
    rows: pa.Table, view: IndexedSnapshot, query: str, how: Highlighting, fts: IndexEntry | None
) -> pa.Table:
    """`rows` with ``_highlight`` (the marked snippet), ``_highlight_spans`` (every match's character
    span in the stored text) and ``_highlight_window`` (the snippet's span in it); matched with the
    analyzer of `fts`, the full-text index searched (the default analyzer without one). A title row
    (:mod:`hybrid.query.title_rows`) gets none (nulls), as a row whose text is null."""
    column = _column(view, how.column, fts)
    matcher = TermMatcher(query, _analyzer(view, fts))
    try:
        texts = rows.column(column).to_pylist()
    except KeyError:  # not selected: read
        ids = rows.column("_rowid").to_numpy()
        texts = view.snapshot.take(ids, [column]).column(column).to_pylist()
    if rows.num_rows and title_rows.column(view) is not None:  # a title row is no passage: no highlight
        marks = title_rows.marks_of(view, rows.column("_rowid").to_numpy())
        if marks is not None and bool(marks.any()):
            texts = [None if m else t for t, m in zip(texts, marks.tolist())]
    present = [t for t in texts if t is not None]
    found = matcher.spans_many(present)
    width, pre, post = how.width, how.pre, how.post
    windows, marked = [], []
    for text, spans in zip(present, found):
        start, end = window(text, spans, width, matcher)
        windows.append((start, end))
        marked.append(_marked(text, spans, start, end, pre, post))
    return _with_columns(rows, [t is not None for t in texts], found, windows, marked)


_ADDED = (
    pa.field("_highlight", pa.string()),
    pa.field("_highlight_spans", pa.list_(SPAN)),
    pa.field("_highlight_window", SPAN),
)


def _with_columns(
    rows: pa.Table,
    shown: list[bool],
    spans: list[list[tuple[int, int]]],
    windows: list[tuple[int, int]],
    marked: list[str],
) -> pa.Table:
    """`rows` with the three highlight columns (`spans`, `windows` and `marked` for the rows `shown`,
    in order; nulls for the others): one Arrow conversion per column, each appended (a table made
    anew from every column checks each one in Python: three times the cost for ten rows)."""
    values: tuple[list[str | None], list[list[tuple[int, int]] | None], list[tuple[int, int] | None]]
    if all(shown):
        values = (marked, spans, windows)  # type: ignore[assignment]
    else:  # None where a row has no text
        at = list(itertools.accumulate(shown, initial=0))  # row i's place among the shown rows: at[i]
        values = tuple([v[at[i]] if s else None for i, s in enumerate(shown)] for v in (marked, spans, windows))  # type: ignore[assignment]
    for v, f in zip(values, _ADDED):  # (appending is far cheaper than a new table of every column)
        rows = rows.append_column(f, pa.array(v, f.type))
    return rows


def _column(view: IndexedSnapshot, column: str | None, fts: IndexEntry | None) -> str:
    if column is None and fts is not None:
        columns = fts.columns
        return "text" if len(columns) > 1 and "text" in columns else columns[0]
    names = view.schema.names
    if column is not None:
        if column not in names:
            raise SchemaError(f"highlight: no column {column!r} in the table (columns: {', '.join(names)})")
        if not (
            pa.types.is_string(view.schema.field(column).type)
            or pa.types.is_large_string(view.schema.field(column).type)
        ):
            raise SchemaError(f"highlight: column {column!r} does not hold text")
        return column
    layout = chunk_layout.read(view.snapshot.manifest.metadata)
    for candidate in ([layout.text] if layout else []) + ["text"]:
        if candidate in names:
            return candidate
    raise SchemaError(
        "highlight: the table has no full-text index and no 'text' column: name one, highlight(column=...)"
    )


def _analyzer(view: IndexedSnapshot, fts: IndexEntry | None) -> Analyzer:
    if fts is None:
        return _DEFAULT
    index = view.index(fts)
    found = getattr(index, "analyzer", None)
    return found if isinstance(found, Analyzer) else _DEFAULT
