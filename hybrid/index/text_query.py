"""Full-text query forms, as the full-text index compiles them (imported publicly from `hybrid.query.text`).

>>> Boolean(must=[Match("vector index")], must_not=[Phrase("product quantization")]).must
(Match(text='vector index', fuzziness=0, proximity=0.0),)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from hybrid.errors import QueryError


@dataclass(frozen=True)
class Match:
    """Any of the text's terms, each weighted by how often it occurs in the query (BM25 disjunction).

    Never raises on punctuation: the text is analysed exactly like the indexed
    column. `fuzziness` (0, 1 or 2) also matches terms within that edit distance.
    `proximity` > 0 adds, for each pair of neighbouring query terms found within
    ``PROXIMITY_SLOP`` positions of each other in a document, that pair's phrase
    score times `proximity` (off by default: it helped FAQ-style questions and hurt
    the other collections in ``eval/results/bm25_peers.md``).
    """

    text: str
    fuzziness: int = 0
    proximity: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.proximity, (int, float)) and 0.0 <= self.proximity < float("inf")):
            raise ValueError(f"proximity must be a finite number >= 0, got {self.proximity!r}")


PROXIMITY_SLOP = 3
"""Neighbouring query terms count as near when at most this many positions apart."""


@dataclass(frozen=True)
class Phrase:
    """The terms in this order, at most `slop` positions apart."""

    text: str
    slop: int = 0


@dataclass(frozen=True)
class Boolean:
    """Combine queries: every `must`, any `should` (adds score), no `must_not`."""

    must: tuple[TextQuery, ...] = ()
    should: tuple[TextQuery, ...] = ()
    must_not: tuple[TextQuery, ...] = ()

    def __init__(self, must: object = (), should: object = (), must_not: object = ()) -> None:
        object.__setattr__(self, "must", tuple(_as_query(q) for q in _seq(must)))
        object.__setattr__(self, "should", tuple(_as_query(q) for q in _seq(should)))
        object.__setattr__(self, "must_not", tuple(_as_query(q) for q in _seq(must_not)))


@dataclass(frozen=True)
class QueryString:
    """tantivy query-parser syntax (``title:vector AND "exact phrase"``), parsed leniently."""

    query: str


TextQuery = Union[Match, Phrase, Boolean, QueryString]  # noqa: UP007 - used at runtime on 3.10


def _seq(x: object) -> tuple[object, ...]:
    if isinstance(x, (list, tuple)):
        return tuple(x)
    return (x,)


def _as_query(q: object) -> TextQuery:
    if isinstance(q, str):
        return Match(q)
    if isinstance(q, (Match, Phrase, Boolean, QueryString)):
        return q
    raise TypeError(f"expected a text query (str, Match, Phrase, Boolean, QueryString), got {type(q).__name__}")


def as_text_query(q: object) -> TextQuery:
    """A text query from a string or query object; raises on empty text."""
    query = _as_query(q)
    if isinstance(query, (Match, Phrase)) and not query.text.strip():
        raise QueryError("empty text query: pass some words to search for")
    if isinstance(query, QueryString) and not query.query.strip():
        raise QueryError("empty query string")
    if isinstance(query, Boolean) and not (query.must or query.should):
        raise QueryError("a Boolean query needs at least one must or should clause")
    return query
