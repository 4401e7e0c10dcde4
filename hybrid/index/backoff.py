"""Prefix back-off: a query word the full-text index has never seen is searched by its longest known prefix.

What BM25 misses in languages with rich word formation is mostly a query word in a form the
corpus never uses, which the language's stemmer does not reduce to the corpus's form: genitive
names (German "Teslas" for "Tesla"), derived adjectives (Russian "варшавский" for "Варшава"),
inflections the stemmer leaves apart. Such a word matches nothing at all. Analyzer version 5
looks it up again by its longest prefix that IS an index term (a word the corpus uses), of at
least `SHORTEST` characters, at `WEIGHT` of a whole-word match: the corpus's own vocabulary
says which shorter form exists, so no language rule or list is needed, and nothing is indexed
twice (the opt-in pieces field finds the same forms at about 3x the index).

A word the index knows is never touched, so a query in the corpus's own words scores exactly as
before (on English collections, where the stemmer serves, few queries have an unknown term at
all). Words with a digit (numbers and codes match whole: ZK-3100 must not find ZK-31) and the
characters and bigrams of scripts written without spaces are never backed off.

Measured in ``eval/results/query_backoff_l23d.md`` (numpy, every setting shown) and with the
library's own pipeline in ``eval/results/lang_margin_l23d_*.md``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

SHORTEST = 4
"""The shortest prefix looked up: four letters still name a stem in the languages measured."""
WEIGHT = 1.0
"""A backed-off match's share of a whole-word match."""


def backoff(term: str, known: Callable[[str], bool], shortest: int = SHORTEST) -> str | None:
    """The longest proper prefix of `term` of at least `shortest` characters for which `known` is true
    (`term` itself being unknown); None when there is none, or `term` has a digit or a character that
    is not a letter or mark (unspaced scripts' units are short and never reach `shortest`).

    >>> backoff("варшавск", {"варшав", "варш"}.__contains__)
    'варшав'
    >>> backoff("zk3100", {"zk31"}.__contains__), backoff("teslas", set().__contains__)
    (None, None)
    """
    if len(term) <= shortest or not all(unicodedata.category(c)[0] in "LM" for c in term):
        return None
    for n in range(len(term) - 1, shortest - 1, -1):
        if known(term[:n]):
            return term[:n]
    return None
