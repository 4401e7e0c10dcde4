"""Which writing systems a text's letters belong to, and which ones a language is written in.

A question can be told apart from an index's language by its letters alone when the two
use different scripts: an English question over Chinese, Russian or Hindi sentences has no
Han, Cyrillic or Devanagari letter at all. That is certain where a language detector is
not (py3langid is less than 90% sure of English for "Who won Super Bowl XLIX?"), so
:func:`hybrid.index.language.is_foreign` asks this first.

Scripts are read from the Unicode character names (``unicodedata``, the standard
library's copy of the Unicode database): "CYRILLIC SMALL LETTER A" is Cyrillic, "CJK
UNIFIED IDEOGRAPH-4E2D" is Han. Only letters count (category L*): digits, punctuation and
combining marks (Indic vowel signs) say nothing about the language.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

_ALIASES = {
    "CJK": "HAN",
    "IDEOGRAPHIC": "HAN",
    "KATAKANA-HIRAGANA": "KATAKANA",
}
_WIDTH_PREFIXES = ("FULLWIDTH ", "HALFWIDTH ")

LATIN_LANGUAGES = frozenset(
    [
        "af",
        "an",
        "az",
        "br",
        "bs",
        "ca",
        "cs",
        "cy",
        "da",
        "de",
        "en",
        "eo",
        "es",
        "et",
        "eu",
        "fi",
        "fo",
        "fr",
        "ga",
        "gl",
        "hr",
        "ht",
        "hu",
        "id",
        "is",
        "it",
        "jv",
        "la",
        "lb",
        "lt",
        "lv",
        "mg",
        "ms",
        "mt",
        "nb",
        "nl",
        "nn",
        "no",
        "oc",
        "pl",
        "pt",
        "qu",
        "ro",
        "rw",
        "sk",
        "sl",
        "sq",
        "sv",
        "sw",
        "tl",
        "tr",
        "vi",
        "vo",
        "wa",
        "xh",
        "zu",
    ]
)
"""ISO 639-1 codes (those py3langid can name) of languages written in the Latin alphabet."""

LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **{code: frozenset({"LATIN"}) for code in LATIN_LANGUAGES},
    "zh": frozenset({"HAN"}),
    "ja": frozenset({"HAN", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL", "HAN"}),
    **{code: frozenset({"CYRILLIC"}) for code in ("ru", "uk", "be", "bg", "mk", "kk", "ky", "mn")},
    "sr": frozenset({"CYRILLIC", "LATIN"}),
    "el": frozenset({"GREEK"}),
    **{code: frozenset({"ARABIC"}) for code in ("ar", "fa", "ps", "ug", "ur")},
    "he": frozenset({"HEBREW"}),
    **{code: frozenset({"DEVANAGARI"}) for code in ("hi", "mr", "ne")},
    **{code: frozenset({"BENGALI"}) for code in ("bn", "as")},
    "pa": frozenset({"GURMUKHI"}),
    "gu": frozenset({"GUJARATI"}),
    "or": frozenset({"ORIYA"}),
    "ta": frozenset({"TAMIL"}),
    "te": frozenset({"TELUGU"}),
    "kn": frozenset({"KANNADA"}),
    "ml": frozenset({"MALAYALAM"}),
    "si": frozenset({"SINHALA"}),
    "th": frozenset({"THAI"}),
    "lo": frozenset({"LAO"}),
    "km": frozenset({"KHMER"}),
    "my": frozenset({"MYANMAR"}),
    "ka": frozenset({"GEORGIAN"}),
    "hy": frozenset({"ARMENIAN"}),
    "am": frozenset({"ETHIOPIC"}),
    "dz": frozenset({"TIBETAN"}),
}
"""The scripts each language's ordinary text is written in (names as :func:`letter_script` gives them).
A language missing here has no script rule."""


@lru_cache(maxsize=4096)
def letter_script(char: str) -> str | None:
    """The script of one letter ("LATIN", "HAN", "CYRILLIC", ...), None for anything that is not a letter.

    >>> letter_script("ж"), letter_script("中"), letter_script("Ａ"), letter_script("7")
    ('CYRILLIC', 'HAN', 'LATIN', None)
    """
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    for prefix in _WIDTH_PREFIXES:
        name = name.removeprefix(prefix)
    word = name.split(" ", 1)[0]
    return _ALIASES.get(word, word) or None


def letter_scripts(text: str) -> set[str]:
    """Every script that at least one letter of `text` is written in.

    >>> sorted(letter_scripts("谁赢得了 Super Bowl 50?"))
    ['HAN', 'LATIN']
    """
    found = {letter_script(c) for c in text}
    found.discard(None)
    return {s for s in found if s is not None}


def foreign_script(query: str, language: str) -> bool | None:
    """True when `query` has letters but none in a script `language` is written in (certainly another
    language); False when some letter is in one of them; None when it cannot say (no letters, or a
    language without a script rule).

    >>> foreign_script("Who won Super Bowl XLIX?", "zh"), foreign_script("谁赢得了 Super Bowl 50?", "zh")
    (True, False)
    >>> foreign_script("In what year did the Normans receive land?", "de"), foreign_script("2015", "ru")
    (False, None)
    """
    own = LANGUAGE_SCRIPTS.get(language)
    scripts = letter_scripts(query)
    if own is None or not scripts:
        return None
    return not (scripts & own)
