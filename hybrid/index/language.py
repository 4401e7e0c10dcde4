"""Which language a text column is written in, for ``create_fts_index(language="auto")``.

Detection uses py3langid (the maintained fork of langid.py: a naive Bayes model over
byte n-grams for 97 languages, shipped inside the package, numpy only, no download).
It was chosen over lingua (more accurate on very short strings, but a far larger
install) and fastText-based detectors (their models are fetched from a hub at run
time): a column sample gives it whole documents, where it is accurate, and it runs
once per index build.

Rule: the sampled documents are read in order and grouped into pieces of at least
`PIECE_LETTERS` letters (a short chunk or title alone is too little for any detector:
"CREATE INDEX title_idx ON films" reads as Latvian); each piece votes for its
language with its length in letters. The
column's language is the winner when it holds at least `MAJORITY` of the votes;
otherwise the table is mixed and gets the language-neutral analysis (``"multi"``).
A sample with fewer than `MIN_LETTERS` letters is too small to judge: English, the
long-standing default, is kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from hybrid.index import function_words
from hybrid.index.script import foreign_script

SAMPLE_DOCS = 200
"""Documents classified per column."""
DOC_CHARS = 1_000
"""Characters of each document handed to the classifier."""
PIECE_LETTERS = 300
"""Consecutive documents are classified together until they hold this many letters."""
MAJORITY = 0.8
"""Share of the letters the winning language must hold; below it the table counts as mixed."""
MIN_LETTERS = 200
"""Smaller samples keep the default (English)."""
FALLBACK = "en"


@dataclass(frozen=True)
class LanguageGuess:
    """The chosen analyzer language and the evidence for it (share of letters per detected language)."""

    language: str
    shares: dict[str, float] = field(default_factory=dict)
    letters: int = 0
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"language": self.language, "shares": self.shares, "letters": self.letters, "reason": self.reason}


def detect_language(texts: Iterable[str | None]) -> LanguageGuess:
    """The language of a sample of documents (see the module's rule).

    Example:
        >>> detect_language(["Die Katze schläft auf dem Sofa, während draußen der Regen fällt."] * 5).language
        'de'
    """
    import py3langid as langid  # a core dependency, imported on first use (its model loads then)

    votes: Counter[str] = Counter()
    piece: list[str] = []
    letters = 0
    for text in [*texts, None]:
        if text:
            sample = text[:DOC_CHARS]
            piece.append(sample)
            letters += sum(ch.isalpha() for ch in sample)
        if letters and (letters >= PIECE_LETTERS or text is None):
            code, _score = langid.classify("\n".join(piece))
            votes[str(code)] += letters
            piece, letters = [], 0
    total = sum(votes.values())
    if total < MIN_LETTERS:
        return LanguageGuess(FALLBACK, {}, total, f"only {total} letters in the sample: kept {FALLBACK!r}")
    shares = {code: round(n / total, 4) for code, n in votes.most_common(5)}
    top, n = votes.most_common(1)[0]
    if n / total >= MAJORITY:
        return LanguageGuess(top, shares, total, f"{top!r} holds {n / total:.0%} of the sample's letters")
    return LanguageGuess("multi", shares, total, f"no language holds {MAJORITY:.0%} of the letters: mixed")


FOREIGN_CONFIDENCE = 0.9
"""A query counts as written in another language only when the detector is this sure: on the
7,140 XQuAD-R questions it was never this sure of a wrong language for a non-English question,
and once for an English one."""


@lru_cache(maxsize=1)
def _identifier() -> Any:
    import py3langid.langid as langid

    return langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)


def is_foreign(query: str, language: str, doc_share: Callable[[str], float | None] | None = None) -> bool:
    """Whether a query is confidently in another language than an index analysed as `language`
    (never for "multi"; about 0.03 ms): none of its letters is in a script the language is written
    in (:func:`hybrid.index.script.foreign_script`: an English question over Chinese, Russian or
    Hindi text), py3langid names another language with at least `FOREIGN_CONFIDENCE`, or, given the
    index's document share per word (`doc_share`), py3langid's best guess is another language and
    the query's English function words are rare in the index (:mod:`hybrid.index.function_words`).

    >>> is_foreign("Who won Super Bowl XLIX?", "zh")
    True

    >>> is_foreign("In what year did the Normans receive land in France?", "de")
    True
    >>> is_foreign("Wann erhielten die Normannen Land in Frankreich?", "de")
    False
    """
    return foreign_reason(query, language, doc_share) is not None


def foreign_reason(query: str, language: str, doc_share: Callable[[str], float | None] | None = None) -> str | None:
    """Why :func:`is_foreign` holds for a query, in words (for ``explain()``); None when it does not.

    >>> foreign_reason("Who won Super Bowl XLIX?", "zh")
    "none of the query's letters in the index language's script"
    >>> foreign_reason("What did Lady Gaga sing?", "de") is None  # py3langid is unsure
    True
    >>> foreign_reason("What did Lady Gaga sing?", "de", lambda word: 0.0)[:47]
    "py3langid's best guess is 'jv' (0.14), not 'de'"
    """
    if language == "multi" or not query.strip():
        return None
    if foreign_script(query, language):
        # no letter in a script the language is written in: certain, whatever the detector says
        return "none of the query's letters in the index language's script"
    code, probability = _identifier().classify(query)
    if str(code) == language:
        return None
    if float(probability) >= FOREIGN_CONFIDENCE:
        return f"py3langid reads it as {code!r} ({float(probability):.2f}), the index is {language!r}"
    words = None if doc_share is None or language == "en" else function_words.english_reason(query, doc_share)
    if words is not None:
        return f"py3langid's best guess is {code!r} ({float(probability):.2f}), not {language!r}, and {words}"
    return None
