"""Issue-23 candidate, measured and not shipped: compound splitting at query time, a query word the
index has never seen, written as two words the index has, searched by those two.

On XQuAD-R de it moved BM25 by -0.0010 (p 0.42, 101 questions split, 24 changed) and, split only
where German writes a capital, by -0.0011 (p 0.40, 85 split, 22 changed):
``eval/results/lang_mechanisms_l23f_de_text*.md``. :func:`patched` gives the library's
``FullTextIndex.match_terms`` with it, for ``eval/lang_mechanisms.py``.

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

import contextlib
import unicodedata
from collections.abc import Callable, Iterator

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
NOUNS_CAPITALISED = frozenset({"de"})
"""Languages that capitalise every noun: there only a word written with a capital is split. The
compounds a text spells apart are nouns; a verb form or participle ("festhielt", "abgestraft")
would only be cut into a particle and a stem, which matches what the word does not mean."""


def splittable(text: str, language: str, terms: Callable[[str], list[str]]) -> set[str] | None:
    """The terms of the query `text` that may be split (`terms` analyses a word): in a language of
    `NOUNS_CAPITALISED`, those of words written with a capital; None (any term) elsewhere.

    >>> sorted(splittable("Wer hielt die Bundesregierung fest?", "de", lambda w: [w.lower().strip("?")]))
    ['bundesregierung', 'wer']
    """
    if language not in NOUNS_CAPITALISED:
        return None
    return {t for word in text.split() if word[:1].isupper() for t in terms(word)}


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


@contextlib.contextmanager
def patched(nouns_only: bool = True) -> Iterator[None]:
    """``FullTextIndex.match_terms`` with the split tried before the back-off while the block runs
    (`nouns_only`: in German, only words written with a capital)."""
    from hybrid.index import backoff
    from hybrid.index.analyzer import query_terms
    from hybrid.index.fulltext import COMBINED_FIELD, FullTextIndex

    plain = FullTextIndex.match_terms

    def match_terms(index: FullTextIndex, text: str) -> tuple[tuple[str, float], ...]:
        language = index.analyzer.language
        if language not in COMPOUNDING or not index.analyzer.backs_off:
            return plain(index, text)
        counts = query_terms(index.analyzer, text)
        fields = [COMBINED_FIELD] if index.weights is not None else index.fields
        searcher = index.searcher

        def known(term: str) -> bool:
            return any(searcher.doc_freq(f, term) > 0 for f in fields)

        def stem(word: str) -> str | None:
            found = index.analyzer.terms(word)
            return found[0] if len(found) == 1 else None

        unknown = [(term, n) for term, n in counts if not known(term)]
        if not unknown:
            return counts
        nouns = splittable(text, language, index.analyzer.terms) if nouns_only else None
        out: list[tuple[str, float]] = list(counts)
        for term, n in unknown:
            parts = None if nouns is not None and term not in nouns else split(term, known, stem, language)
            if parts is not None:
                out += [(part, n * backoff.WEIGHT) for part in parts]
                continue
            shorter = backoff.backoff(term, known)
            if shorter is not None:
                out.append((shorter, n * backoff.WEIGHT))
        return tuple(out)

    FullTextIndex.match_terms = match_terms  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        FullTextIndex.match_terms = plain  # type: ignore[method-assign]
