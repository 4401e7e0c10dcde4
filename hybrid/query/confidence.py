"""How sure a branch is about one query, read from the shape of its own result list.

A branch that cannot tell its candidates apart for a query (BM25 on a paraphrased
question whose words are everywhere in the corpus; an English embedder on Russian
text) returns a *flat* list: its tenth result scores almost as well as its first. A
branch that recognises what it is looking for returns a steep one. The default
hybrid query multiplies each branch's fusion weight by that steepness, so a flat
branch has little say for this query and a steep one decides. Measured in
``eval/results/fusion_study.md``: with it the default stays within 0.01 of the better
branch on every one of ten collections, including FAQ-style questions where full text
is weak and languages the embedder cannot read.

Steepness is relative to each score's natural zero, so no constant sets its scale:
``1 - s10 / s1`` for BM25 (higher is better, 0 = no match) and ``1 - d1 / d10`` for
vector distances (lower is better, 0 = identical).

The text branch has a second sign for a question written in another language than its
index (:func:`hybrid.index.language.is_foreign`: none of its letters in a script the index's
language is written in, py3langid at least 90% sure it is another language, or its best guess
another language and the question's English function words rare in the index,
:mod:`hybrid.index.function_words`): such a
question shares only names, numbers and cognates with the text, and BM25 over those alone
ranks whatever repeats them. Unless every one of its terms is known to the index (the query is
itself a name or an identifier), the text branch has no say and the other branch answers
(:func:`vocabulary`; ``eval/results/foreign_rule_l23g.md``: English questions against the
German and Spanish sentences). Questions in the index's language are left alone, so a rare
identifier in an ordinary question ("printer trouble in ZK-31") still counts in full.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GAP_RANK = 10
"""The result compared with the first: the tenth, or the last of a shorter list."""


def steepness(raw: np.ndarray, kind: str) -> float | None:
    """How far the `GAP_RANK`-th result falls behind the first, in [0, 1]; None when the list cannot say
    (fewer than two results, or distances below zero, as an inner product's can be).

    >>> steepness(np.array([10.0, 8.0, 5.0]), "fts")
    0.5
    >>> steepness(np.array([0.2, 0.3, 0.4]), "vector")
    0.5
    """
    if len(raw) < 2:
        return None
    first, other = float(raw[0]), float(raw[min(GAP_RANK, len(raw)) - 1])
    if kind == "vector":
        if first < 0 or other <= 0:
            return None
        return min(1.0, max(0.0, 1.0 - first / other))
    if first <= 0 or other < 0:
        return None
    return min(1.0, max(0.0, 1.0 - other / first))


def confidences(lists: Sequence[tuple[np.ndarray, str]]) -> list[float]:
    """Each branch's steepness for one query (raw scores, kind); 1.0 where a list cannot say, and all
    1.0 when every list is perfectly flat (nothing to prefer)."""
    found = [steepness(raw, kind) for raw, kind in lists]
    values = [1.0 if s is None else s for s in found]
    return values if any(v > 0 for v in values) else [1.0] * len(values)


VOCABULARY_POWER = 2.0
"""How sharply the text branch loses weight for query terms its index has never seen."""


def vocabulary(known: float | None, foreign: bool = False) -> float:
    """The text branch's factor for a query of which a share `known` of the terms occur in the index
    (1.0 when not measured).

    `foreign`: the query is confidently in another language than the index
    (:func:`hybrid.index.language.is_foreign`: an English question over Chinese or Russian text, or
    over German text that py3langid reads as English). Every term such a query shares with the index
    is a name, a number or a cognate, so unless ALL of its terms are known (the query is itself a
    name or an identifier) the text branch has no say: BM25 over the shared words alone can only rank
    what repeats them, and the other branch, which reads both languages, is left to answer. The
    library measures the share only for such queries; a share given without `foreign` counts as
    ``known ** VOCABULARY_POWER`` (the softer rule earlier releases applied to same-script questions,
    which left English questions over German text 0.026 below dense alone:
    ``eval/results/foreign_rule_l23g.md``).

    >>> vocabulary(0.5), vocabulary(None), vocabulary(0.5, foreign=True), vocabulary(1.0, foreign=True)
    (0.25, 1.0, 0.0, 1.0)
    """
    if known is None:
        return 1.0
    if foreign and known < 1.0:
        return 0.0
    return float(known) ** VOCABULARY_POWER
