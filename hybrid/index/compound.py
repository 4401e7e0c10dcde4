"""Compound splitting at query time: a query word the index has never seen, written as two words
the index has, is searched by those two.

German, Dutch and the Scandinavian languages write compounds as one word ("Bundesregierung",
"Sonnenlicht") where a text may use the parts ("die Regierung des Bundes", "das Licht der Sonne")
or another compound with one of them. The stemmer leaves a compound whole, so the query word
matches nothing. Like the prefix back-off (:mod:`hybrid.index.backoff`), the corpus's own
vocabulary is the dictionary (as Lucene's dictionary decompounder uses a word list): the unknown
term is cut into a head and a tail, each an index term of at least `SHORTEST` characters,
joined directly or by one of the language's linking elements (`LINKS`: German "Arbeit-s-markt",
"Sonne-n-licht"). The head may be the index term itself or a word whose stem is one
("sonne" -> "sonn"). Of the cuts that work, the one with the longest tail is taken: the last
part names what a compound is (a "Bundesregierung" is a government), so it keeps the most.

Only words of `COMPOUNDING` languages are split; a word the index knows is never touched.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

SHORTEST = 4
"""The shortest part: the same floor as the back-off's prefixes."""
LINKS: dict[str, tuple[str, ...]] = {
    "de": ("s", "es", "n", "en", "e"),
    "nl": ("s", "en", "e"),
    "sv": ("s",),
    "da": ("s", "e"),
    "no": ("s", "e"),
}
"""Linking elements between the parts of a compound, per language (standard grammars' lists)."""
COMPOUNDING = frozenset(LINKS)
"""Languages whose words are split: the Germanic languages that write compounds closed up."""


def split(
    term: str, known: Callable[[str], bool], stem: Callable[[str], str | None], language: str
) -> tuple[str, str] | None:
    """The (head, tail) index terms that make up the unknown `term`, or None.

    `known` says whether a term is in the index, `stem` gives the index term of a word (None when
    the analysis drops it). A cut leaves a tail of at least `SHORTEST` characters that `known`
    accepts and a head (less a linking element of `language`) of at least `SHORTEST` characters
    that is an index term or stems to one.

    >>> terms = {"bund", "regier", "sonn", "licht"}
    >>> stems = {"sonne": "sonn", "bundes": "bund"}
    >>> split("bundesregier", terms.__contains__, stems.get, "de")
    ('bund', 'regier')
    >>> split("sonnenlicht", terms.__contains__, stems.get, "de")
    ('sonn', 'licht')
    >>> split("sonnenlicht", terms.__contains__, stems.get, "ru") is None
    True
    """
    links = LINKS.get(language)
    if links is None or len(term) < 2 * SHORTEST or not all(unicodedata.category(c)[0] in "LM" for c in term):
        return None
    for cut in range(SHORTEST, len(term) - SHORTEST + 1):  # the longest tail first
        tail = term[cut:]
        if not known(tail):
            continue
        front = term[:cut]
        for head in (front, *(front[: -len(x)] for x in links if front.endswith(x))):
            if len(head) < SHORTEST:
                continue
            found = head if known(head) else stem(head)
            if found is not None and found != term and known(found):
                return found, tail
    return None
