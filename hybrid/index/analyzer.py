"""Text analysis shared by indexing and querying, so both see the same tokens.

An `Analyzer` is stored with its index, so a reopened table (and every query)
analyses text exactly as the index was built. The default chain (``version=2``; version 3
adds per-language rules, below):

1. **Python pre-segmentation** (`Analyzer.prepare`): code identifiers such as
   ``os.path.join``, ``snake_case`` or ``--dry-run`` keep their parts and gain the
   joined form as one more term (``ospathjoin``), as Lucene's word-delimiter filter
   does with ``catenateAll``; runs of scripts written without spaces (Han, kana,
   Thai, Lao, Khmer, Myanmar) become their characters plus character bigrams
   (``tokenizer="jieba"`` segments Chinese with jieba instead).
2. **tantivy tokenizer**: words are runs of letters, combining marks and digits
   (``[\\p{L}\\p{M}\\p{N}]``), so Indic vowel signs, virama and nukta stay inside
   their word; a run longer than 40 characters is split into 40-character pieces,
   never dropped.
3. **Filters**: lower case; the language's stop words (English: Snowball's list,
   see `hybrid.index.stopwords`; Danish ... Swedish: tantivy's Snowball lists);
   the language's Snowball stemmer; ASCII folding *after* stemming and, by default,
   for English only (folding strips Vietnamese tone marks and merges distinct
   words in most languages; German, French or Spanish stemmers expect the accents).

``language`` is an ISO 639-1 code. Languages with a Snowball stemmer in tantivy:
ar da de el en es fi fr hu it nl no pt ro ru sv ta tr; stop words for those in
`STOP_WORD_LANGUAGES`. Any other code (``th``, ``vi``, ``zh``, ...) and
``"multi"`` (a table of mixed languages) get the language-neutral chain: script-
aware tokens, lower case, no stemming, stop words or folding.

Version 3 (the current chain) adds, in the Python step, the per-language rules that
tantivy has no filter for (each measured in ``eval/results/analysis_study.md``):

* **Hindi** (``hi``): Devanagari spelling variants folded (nukta, chandrabindu, a nasal
  half letter -> anusvara) and a light suffix stemmer (`hybrid.index.hindi`; `stem` turns
  the stemmer off). No stop words: they cost the hybrid more than they gave BM25.
* **Russian** (``ru``): ё is written е (Russian text mostly leaves out the diaeresis).
  tantivy's Snowball stemmer folds it too, but its stop-word filter runs first ("всё",
  "ещё" stayed terms where "все", "еще" were dropped) and ``stem=False`` kept ё.

Version 4 (the current chain) can add a second field of **word pieces**, on request
(``create_fts_index(..., pieces=4)``; off by default: on a 100,000-document benchmark corpus it made
the full-text index 3.3x as large, its build 2.4x as long and text queries about 3x as slow, for a
default-hybrid gain of +0.003-0.004 on XQuAD-R de/es) (Elasticsearch's multi-field idea): each
word the word field keeps (stop words dropped), lowercased as written and before stemming, is
also indexed as its character 4-grams (a word of 4 characters or fewer is its own piece), in a
field of its own with its own BM25 statistics. A `Match` query searches both: each query word's pieces share one query
weight (1 / their number) and the field counts `PIECE_WEIGHT` (0.5) of the word field, so a
word found only through its pieces adds at most half a word match. It finds what stemming
cannot: compounds with a shared part (Funkwellen / Funkübertragung), derived forms
(Варшава / варшавский), names in another case (Teslas). Measured on XQuAD-R
(``eval/results/analysis_study_l23c.md``: nDCG@10 against version 3; the design,
its settings and the hybrid in ``eval/results/subword_field_l23c.md``). Words of scripts
written without spaces (already characters and bigrams) and words with a digit (numbers and
codes match whole: ZK-31 does not find ZK-3100) get no pieces. English gets them only when
asked, like every language (its stemmer serves it, and its hybrid defaults were chosen on one field). The
price: a word absent from a non-English corpus may still find documents through its parts,
ranked below whole-word matches.

Version 5 (the current chain) indexes exactly as version 4 and changes how a query is looked up:
a query term no document holds is searched by its longest prefix of at least four characters
that is an index term (:mod:`hybrid.index.backoff`: "Teslas" finds "Tesla", "варшавский" finds
"Варшава"), at a whole-word match's weight; terms the index knows are never touched. Indexes
built before keep their version and their queries.

Every other language analyses exactly as version 2 did. Indexes store their version:
one built before a rule existed keeps the chain it was built with (version 2; and
``version=1``, stored with no version at all: tantivy's simple tokenizer, tokens over
40 bytes dropped, folding before stemming, Lucene's English stop words).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal

import tantivy

from hybrid.errors import require
from hybrid.index import hindi, stopwords

Tokenizer = Literal["default", "whitespace", "ngram", "jieba", "cjk", "raw"]
TOKENIZERS = ("default", "whitespace", "ngram", "jieba", "cjk", "raw")
STEMMERS = {
    "en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese",
    "nl": "dutch", "sv": "swedish", "no": "norwegian", "da": "danish", "fi": "finnish", "ru": "russian",
    "hu": "hungarian", "ro": "romanian", "tr": "turkish", "ar": "arabic", "el": "greek", "ta": "tamil",
}  # fmt: skip
"""ISO 639-1 code -> tantivy's Snowball stemmer."""
STOP_WORD_LANGUAGES = frozenset({"en", "de", "fr", "es", "it", "pt", "nl", "sv", "no", "da", "fi", "ru", "hu"})
MAX_TOKEN_CHARS = 40
"""Longer runs of letters are split into pieces of this many characters."""
CURRENT_VERSION = 5
TANTIVY_NAME = "hybrid"
PIECES_NAME = "hybrid_pieces"
PIECE_SIZE = 4
"""Characters per word piece (version 4): the shortest unit that still names a morpheme in most languages."""
PIECE_WEIGHT = 0.5
"""The pieces field's share of a query's score against the word field's 1."""

_WORD = rf"[\p{{L}}\p{{M}}\p{{N}}]{{1,{MAX_TOKEN_CHARS}}}"
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+")
# scripts written without spaces between words: Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar
_UNSPACED = re.compile(
    r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
    r"\u0e00-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u19e0-\u19ff\u1000-\u109f]+"
)
# a base character and the combining marks that belong to it (Thai, Lao, Khmer, Myanmar vowel signs, tones)
_CLUSTER = re.compile(
    r".[\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u0eb1\u0eb4-\u0ebc\u0ec8-\u0ece\u17b4-\u17d3\u17dd"
    r"\u102b-\u103e\u1056-\u1059\u105e-\u1060\u1062-\u1064\u1067-\u106d\u1071-\u1074\u1082-\u108d"
    r"\u108f\u109a-\u109d\u3099\u309a]*",
    re.S,
)
_NO_PIECES = frozenset({"zh", "ja", "th", "lo", "km", "my"})
"""Languages written without spaces (their text is characters and bigrams already): no word pieces."""
_IDENTIFIER = re.compile(r"\w+(?:[._\-:/]+\w+)+")
_DELIMITERS = re.compile(r"[._\-:/]+")


@dataclass(frozen=True)
class Analyzer:
    """How text is turned into index terms; stored with the index so queries match.

    Example:
        >>> Analyzer().terms("How do I call os.path.join on Windows?")
        ['call', 'os', 'path', 'join', 'ospathjoin', 'window']
        >>> Analyzer(language="de").terms("Die Häuser")
        ['haus']
    """

    language: str = "en"
    stem: bool = True
    stop_words: bool = True
    lowercase: bool = True
    ascii_folding: bool | None = None
    """None: the language's rule (English folds, other languages keep their accents)."""
    tokenizer: Tokenizer = "default"
    ngram_min: int = 2
    ngram_max: int = 3
    identifiers: bool = True
    """Also index the joined form of delimited identifiers (``os.path.join`` -> ``ospathjoin``)."""
    version: int = CURRENT_VERSION
    pieces: int | None = None
    """Characters per word piece in a second field (version 4, the default tokenizer; `PIECE_SIZE` is the
    measured choice); None or 0: no such field (the default: it costs about 3x the index and text query time)."""

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {self.tokenizer!r}: use {', '.join(TOKENIZERS)}")
        if self.tokenizer == "ngram" and not 0 < self.ngram_min <= self.ngram_max:
            raise ValueError(f"ngram sizes must satisfy 0 < min <= max, got {self.ngram_min}, {self.ngram_max}")
        if self.language == "auto":
            raise ValueError('language="auto" is resolved when an index is built: pass it to create_fts_index')
        if not re.fullmatch(r"[a-z]{2,3}|multi", self.language):
            raise ValueError(
                f"unknown language {self.language!r}: use an ISO 639-1 code such as 'en' or 'de', 'multi' or 'auto'"
            )
        if self.version not in (1, 2, 3, 4, CURRENT_VERSION):
            raise ValueError(f"unknown analyzer version {self.version}")
        if self.pieces is not None and not (isinstance(self.pieces, int) and 0 <= self.pieces <= MAX_TOKEN_CHARS):
            raise ValueError(f"pieces must be an integer from 0 to {MAX_TOKEN_CHARS} characters, got {self.pieces!r}")
        if self.tokenizer == "jieba":
            require("jieba", "zh")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Analyzer:
        """The analyzer stored with an index; one stored without a version is the first chain."""
        return Analyzer(**{"version": 1, **d})

    @property
    def folds(self) -> bool:
        """Whether ASCII folding applies (explicit, else English only)."""
        if self.ascii_folding is not None:
            return self.ascii_folding
        return self.version == 1 or self.language == "en"

    @property
    def piece_size(self) -> int:
        """Characters per word piece of the second field; 0 when the index has no such field."""
        if self.pieces is None or self.version < 4 or self.language in _NO_PIECES or self.tokenizer != "default":
            return 0
        return self.pieces

    @property
    def backs_off(self) -> bool:
        """Whether a query term the index never saw is searched by its longest known prefix (version 5)."""
        return self.version >= 5 and self.tokenizer == "default"

    def pieces_of(self, prepared: str) -> list[str]:
        """The word pieces of text already through `prepare`, in order (see version 4).

        >>> Analyzer(language="de", pieces=4).pieces_of("Die Funkwellen")
        ['funk', 'unkw', 'nkwe', 'kwel', 'well', 'elle', 'llen']
        """
        n = self.piece_size
        out: list[str] = []
        for word in _piece_words(self).analyze(prepared) if n else ():
            if _UNSPACED.match(word) or any(c.isdigit() for c in word):
                continue  # characters and bigrams already; numbers and codes match whole (ZK-31 is not ZK-3100)
            out += [word[i : i + n] for i in range(len(word) - n + 1)] if len(word) > n else [word]
        return out

    def query_pieces(self, text: str) -> dict[str, float]:
        """Each piece of a query's distinct words with its query weight: a word's pieces share 1."""
        n = self.piece_size
        weights: dict[str, float] = {}
        if not n:
            return weights
        prepared = self.prepare(text)
        for word in dict.fromkeys(_piece_words(self).analyze(prepared)):
            pieces = self.pieces_of(word)
            for p in pieces:
                weights[p] = weights.get(p, 0.0) + 1.0 / len(pieces)
        return weights

    @property
    def stemmer(self) -> str | None:
        """tantivy's stemmer for this analyzer, if it stems."""
        return STEMMERS.get(self.language) if self.stem else None

    @property
    def tantivy_analyzer(self) -> tantivy.TextAnalyzer:
        """The analyzer registered with tantivy (after any Python pre-segmentation).

        Built once per process for equal analyzers: building compiles a Unicode regex, about 20 ms that
        hold the GIL, which every index opened with an analyzer read from its entry would pay again."""
        return _built(self)

    def _build_tantivy(self) -> tantivy.TextAnalyzer:
        if self.version == 1:
            return self._first_chain()
        if self.tokenizer == "raw":
            builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw())
        elif self.tokenizer == "ngram":
            builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.ngram(self.ngram_min, self.ngram_max, False))
        elif self.tokenizer == "whitespace":
            builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(rf"\S{{1,{MAX_TOKEN_CHARS}}}"))
        else:
            builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(_WORD))
        if self.lowercase:
            builder = builder.filter(tantivy.Filter.lowercase())
        if self.tokenizer in ("default", "whitespace", "jieba", "cjk"):
            if self.stop_words and self.language == "en":
                builder = builder.filter(tantivy.Filter.custom_stopword(sorted(stopwords.ENGLISH)))
            elif self.stop_words and self.language in STOP_WORD_LANGUAGES:
                builder = builder.filter(tantivy.Filter.stopword(STEMMERS[self.language]))
            if self.stemmer is not None:
                builder = builder.filter(tantivy.Filter.stemmer(self.stemmer))
        if self.folds:
            builder = builder.filter(tantivy.Filter.ascii_fold())
        return builder.build()

    def _first_chain(self) -> tantivy.TextAnalyzer:
        if self.tokenizer == "raw":
            builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw())
        elif self.tokenizer == "ngram":
            builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.ngram(self.ngram_min, self.ngram_max, False))
        elif self.tokenizer in ("whitespace", "jieba", "cjk"):
            builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace())
        else:
            builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        builder = builder.filter(tantivy.Filter.remove_long(40))
        if self.lowercase:
            builder = builder.filter(tantivy.Filter.lowercase())
        if self.folds:
            builder = builder.filter(tantivy.Filter.ascii_fold())
        if self.tokenizer in ("default", "whitespace"):
            language = STEMMERS.get(self.language, self.language)
            if self.stop_words and self.language in STOP_WORD_LANGUAGES:
                builder = builder.filter(tantivy.Filter.stopword(language))
            if self.stem and language in STEMMERS.values():
                builder = builder.filter(tantivy.Filter.stemmer(language))
        return builder.build()

    def prepare(self, text: str) -> str:
        """Text as handed to tantivy: the language's Python rules (version 3), identifiers joined,
        unspaced scripts cut into characters and bigrams."""
        if self.tokenizer in ("raw", "ngram"):
            return text
        if self.version >= 3 and not text.isascii():
            text = self._language_rules(text)
        if self.version >= 2 and self.identifiers and ("." in text or "_" in text or "-" in text or ":" in text):
            text = _IDENTIFIER.sub(_with_joined, text)
        if self.tokenizer == "jieba":
            import jieba

            return " ".join(t for t in jieba.cut_for_search(text) if t.strip())
        if self.tokenizer == "cjk":
            return _HAN.sub(lambda m: " " + _units_and_bigrams(list(m.group())) + " ", text)
        if self.version >= 2 and self.tokenizer == "default" and not text.isascii():
            return _UNSPACED.sub(lambda m: " " + _units_and_bigrams(_CLUSTER.findall(m.group())) + " ", text)
        return text

    def _language_rules(self, text: str) -> str:
        """The per-language rules tantivy has no filter for (see the module's version 3)."""
        if self.language == "hi":
            return hindi.analyse(text, stem_words=self.stem)
        if self.language == "ru":
            return text.replace("ё", "е").replace("Ё", "Е")
        return text

    def terms(self, text: str) -> list[str]:
        """The index terms of `text`, in order, repeats kept."""
        return list(self.tantivy_analyzer.analyze(self.prepare(text)))


def _with_joined(m: re.Match[str]) -> str:
    return f"{m.group()} {_DELIMITERS.sub('', m.group())}"


def _units_and_bigrams(units: list[str]) -> str:
    return " ".join([*units, *(units[i] + units[i + 1] for i in range(len(units) - 1))])


@lru_cache(maxsize=64)
def _piece_words(analyzer: Analyzer) -> tantivy.TextAnalyzer:
    """The words that get pieces: the word field's tokens and stop words, before stemming."""
    builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(_WORD)).filter(tantivy.Filter.lowercase())
    if analyzer.stop_words and analyzer.language in STOP_WORD_LANGUAGES:
        builder = builder.filter(tantivy.Filter.stopword(STEMMERS[analyzer.language]))
    if analyzer.folds:
        builder = builder.filter(tantivy.Filter.ascii_fold())
    return builder.build()


def pieces_analyzer() -> tantivy.TextAnalyzer:
    """The pieces field's tantivy analyzer: its text is pieces already, one per space-separated token."""
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()


@lru_cache(maxsize=64)
def _built(analyzer: Analyzer) -> tantivy.TextAnalyzer:
    """`analyzer`'s tantivy analyzer, shared by equal analyzers (tantivy copies it into each index)."""
    return analyzer._build_tantivy()


@lru_cache(maxsize=256)
def query_terms(analyzer: Analyzer, text: str) -> tuple[tuple[str, int], ...]:
    """The distinct terms of the query `text` with their counts, in first-seen order; the latest texts
    kept (a search analyses its query for the full-text index, then again for the rows it does not hold yet)."""
    counts: dict[str, int] = {}
    for term in analyzer.terms(text):
        counts[term] = counts.get(term, 0) + 1
    return tuple(counts.items())
