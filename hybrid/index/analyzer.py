"""Text analysis shared by indexing and querying, so both see the same tokens.

Latin-script text goes through tantivy's own analyzer chain (split on
non-alphanumerics, drop tokens over 40 bytes, lowercase, ASCII folding, stop
words, stemming). Chinese text is segmented in Python first, since a run of
Han characters is a single token to tantivy's default tokenizer: with jieba
(``tokenizer="jieba"``, the ``zh`` extra) or as characters plus character
bigrams (``tokenizer="cjk"``, no dependency).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Literal

import tantivy

from hybrid.errors import require

Tokenizer = Literal["default", "whitespace", "ngram", "jieba", "cjk", "raw"]
_STEMMERS = {
    "en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese",
    "nl": "dutch", "sv": "swedish", "no": "norwegian", "da": "danish", "fi": "finnish", "ru": "russian",
    "hu": "hungarian", "ro": "romanian", "tr": "turkish", "ar": "arabic", "el": "greek", "ta": "tamil",
}  # fmt: skip
_STOPWORDS = {"english", "german", "french", "spanish", "italian", "portuguese", "dutch", "swedish",
              "norwegian", "danish", "finnish", "russian", "hungarian"}  # fmt: skip
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+")
TANTIVY_NAME = "hybrid"


@dataclass(frozen=True)
class Analyzer:
    """How text is turned into index terms; stored with the index so queries match."""

    language: str = "en"
    stem: bool = True
    stop_words: bool = True
    lowercase: bool = True
    ascii_folding: bool = True
    tokenizer: Tokenizer = "default"
    ngram_min: int = 2
    ngram_max: int = 3

    def __post_init__(self) -> None:
        if self.tokenizer not in ("default", "whitespace", "ngram", "jieba", "cjk", "raw"):
            raise ValueError(f"unknown tokenizer {self.tokenizer!r}: use default, whitespace, ngram, jieba, cjk or raw")
        if self.tokenizer == "ngram" and not 0 < self.ngram_min <= self.ngram_max:
            raise ValueError(f"ngram sizes must satisfy 0 < min <= max, got {self.ngram_min}, {self.ngram_max}")
        if self.tokenizer == "jieba":
            require("jieba", "zh")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Analyzer:
        return Analyzer(**d)

    @cached_property
    def tantivy_analyzer(self) -> tantivy.TextAnalyzer:
        """The analyzer registered with tantivy (after any Python pre-segmentation)."""
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
        if self.ascii_folding:
            builder = builder.filter(tantivy.Filter.ascii_fold())
        if self.tokenizer in ("default", "whitespace"):
            language = _STEMMERS.get(self.language, self.language)
            if self.stop_words and language in _STOPWORDS:
                builder = builder.filter(tantivy.Filter.stopword(language))
            if self.stem and language in _STEMMERS.values():
                builder = builder.filter(tantivy.Filter.stemmer(language))
        return builder.build()

    def prepare(self, text: str) -> str:
        """Text as handed to tantivy: Chinese segmented into space-separated tokens."""
        if self.tokenizer == "jieba":
            import jieba

            return " ".join(t for t in jieba.cut_for_search(text) if t.strip())
        if self.tokenizer == "cjk":
            return _HAN.sub(lambda m: " " + _chars_and_bigrams(m.group()) + " ", text)
        return text

    def terms(self, text: str) -> list[str]:
        """The index terms of `text`, in order, repeats kept."""
        return list(self.tantivy_analyzer.analyze(self.prepare(text)))


def _chars_and_bigrams(run: str) -> str:
    return " ".join([*run, *(run[i : i + 2] for i in range(len(run) - 1))])
