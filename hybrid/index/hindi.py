"""Hindi analysis: Devanagari spelling variants folded and a light suffix stemmer.

Applied in Python before tantivy's tokenizer (``Analyzer(language="hi")``, version 3), to the
indexed text and to every query alike, in this order:

1. **Normalisation** (:func:`normalize`): only the spellings that write one word two ways.
   The nukta is dropped (फ़/फ, ज़/ज, ड़/ड: loan-word sounds often written without it, and
   the precomposed letters क़ ... य़ become their base letter); chandrabindu becomes anusvara
   (हँसना/हंसना); a nasal consonant with virama before a consonant becomes anusvara
   (हिन्दी/हिंदी, सम्बन्ध/संबंध); zero-width joiners go. Long and short vowels stay
   distinct (दिन "day" and दीन "poor" are different words), unlike Lucene's Hindi
   normaliser, which also merges them and drops every virama: on XQuAD-R hi that gave
   nothing (BM25 0.8026 against 0.8009 here, default hybrid 0.8669 against 0.8673,
   ``eval/results/analysis_study.md``) and merges words that differ in meaning.
2. **Light stemming** (:func:`stem`, with ``stem=True``): the longest inflectional suffix of
   Ramanathan & Rao's light stemmer ("A Lightweight Stemmer for Hindi", 2003; the suffix
   classes Lucene's ``HindiStemmer`` uses) is removed when enough of the word remains:
   लड़कियों, लड़कियां -> लडक; किताबें -> किताब; खेलता, खेलते -> खेल.

No stop words: a list of Hindi function words lifted BM25 alone a little (XQuAD-R hi 0.8009 ->
0.8029) but cost the default hybrid 0.0052 (0.8673 -> 0.8621, ``eval/results/analysis_study.md``),
and it would make those words unsearchable.
"""

from __future__ import annotations

import re

_VARIANTS = str.maketrans(
    {
        "\u0901": "\u0902",  # chandrabindu -> anusvara
        "\u093c": None,  # nukta
        "\u200c": None,  # zero-width non-joiner
        "\u200d": None,  # zero-width joiner
        # precomposed letters with nukta -> the base letter
        "\u0929": "\u0928",
        "\u0931": "\u0930",
        "\u0934": "\u0933",
        "\u0958": "\u0915",
        "\u0959": "\u0916",
        "\u095a": "\u0917",
        "\u095b": "\u091c",
        "\u095c": "\u0921",
        "\u095d": "\u0922",
        "\u095e": "\u092b",
        "\u095f": "\u092f",
    }
)
# ङ ञ ण न म + virama before a consonant: the nasal written as a half letter, anusvara's other spelling
_DEAD_NASAL = re.compile("[\u0919\u091e\u0923\u0928\u092e]\u094d(?=[\u0915-\u0939\u0958-\u095f])")
WORD = re.compile("[\u0900-\u0963\u0971-\u097f\u200c\u200d]+")
"""A run of Devanagari letters and signs (danda, double danda and the digits excluded)."""


def normalize(text: str) -> str:
    """`text` with Devanagari spelling variants folded (see the module's rule).

    >>> normalize("हिन्दी") == normalize("हिंदी"), normalize("फ़िल्म") == "फिल्म"
    (True, True)
    >>> normalize("दिन") == normalize("दीन")
    False
    """
    if max(text, default="\0") < "\u0900":
        return text
    return _DEAD_NASAL.sub("\u0902", text).translate(_VARIANTS)


_SUFFIXES: tuple[tuple[int, tuple[str, ...]], ...] = tuple(
    (min_length, tuple(group.split()))
    for min_length, group in (
        (6, "ाएंगी ाएंगे ाऊंगी ाऊंगा ाइयाँ ाइयों ाइयां"),
        (5, "ाएगी ाएगा ाओगी ाओगे एंगी ेंगी एंगे ेंगे ूंगी ूंगा ातीं नाओं नाएं ताओं ताएं ियाँ ियों ियां"),
        (4, "ाकर ाइए ाईं ाया ेगी ेगा ोगी ोगे ाने ाना ाते ाती ाता तीं ाओं ाएं ुओं ुएं ुआं"),
        (3, "कर ाओ िए ाई ाए ने नी ना ते ीं ती ता ाँ ां ों ें"),
        (2, "ो े ू ु ी ि ा"),
    )
)
"""(the word must be longer than this, suffixes of one length), longest suffixes first."""


def stem(word: str) -> str:
    """`word` without its longest inflectional suffix, when the word is long enough to keep a stem.

    >>> stem("किताबें"), stem("खेलता"), stem("खेलते"), stem("घर")
    ('किताब', 'खेल', 'खेल', 'घर')
    """
    for min_length, suffixes in _SUFFIXES:
        if len(word) > min_length:
            for suffix in suffixes:
                if word.endswith(suffix):
                    return word[: -len(suffix)]
    return word


def analyse(text: str, stem_words: bool = True) -> str:
    """`text` normalised, with its Devanagari words stemmed if asked (other scripts untouched).

    >>> analyse("भारत की किताबें कहाँ हैं?")
    'भारत की किताब कह हैं?'
    """
    text = normalize(text)
    if not stem_words or text.isascii():
        return text
    if len(_CACHE) > CACHE_WORDS:
        _CACHE.clear()
    parts = _SPLIT.split(text)  # text, word, text, word, ..., text
    for i in range(1, len(parts), 2):
        word = parts[i]
        done = _CACHE.get(word)
        if done is None:
            done = _CACHE[word] = stem(word)
        parts[i] = done
    return "".join(parts)


CACHE_WORDS = 100_000
"""Stemmed words kept (words repeat; a full cache starts over)."""
_CACHE: dict[str, str] = {}
_SPLIT = re.compile(f"({WORD.pattern})")
