"""English function words in a query, read against a non-English index's own term statistics.

py3langid is unsure of short questions ("How many tackles did Luke Kuechly register?" reads as
English at 0.58, the rest spread over English-like languages), so the detector alone cannot call
them foreign. The index can: in English text "the", "of", "how" and "did" are in most documents,
while a German, Spanish or Russian index holds them only inside quoted names and titles. A query
is *worded in English* over such an index when it has at least `MIN_WORDS` distinct words of the
Snowball English stop-word list (:mod:`hybrid.index.stopwords`), each of them in fewer than
`RARE_SHARE` of the index's documents, and more of them than words the index's own analyzer drops
as its language's stop words (German "wer", "mit", "in"; Spanish "a", "no": a German question
naming "The Who" has more of its own function words than English ones).

Why it does not fire where it should not:

* an English index drops every one of these words (they are its stop words), so nothing is left;
* an index that holds English in earnest (a "de" table may be a fifth English by the language
  rule, :data:`hybrid.index.language.MAJORITY`) has its commonest function words in more than one
  document in ten, and a question that uses one of them is not foreign to it;
* a keyword query ("fava beans", "Luke Kuechly") has no function words at all;
* a question in the index's language that names an English title has more of its own language's
  function words than the title's;
* the caller asks only when py3langid's best guess is another language than the index's.

English is the only query language with a list here: it is the language most often asked over
text in another language. Questions in other languages rely on the detector's confidence
(:func:`hybrid.index.language.foreign_reason`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hybrid.index import stopwords

RARE_SHARE = 0.1
"""A function word in at least one document in ten is in common use in the index (its own text, or
the up to one fifth another language may hold), and the query is not foreign to it."""
MIN_WORDS = 2
"""Distinct English function words a query needs: one alone may be a borrowed name ("The Who")."""
_FRAGMENTS = frozenset(["s", "t", "d", "ll", "m", "o", "re", "ve", "y", "don"])
"""Pieces of contractions and possessives ("Tesla's" -> "s"): no word of their own, and letters other
languages use alone ("d'", "o")."""
_WORD = re.compile(r"[^\W\d_]+")


def english_reason(query: str, doc_share: Callable[[str], float | None]) -> str | None:
    """Why `query` reads as worded in English over an index whose document share per word is
    `doc_share` (None: the index's analyzer drops the word, one of its own stop words), in words;
    None when it does not (see the module's rule).

    >>> def german(word):  # a German index: drops its stop words, rarely holds "the"
    ...     return None if word in {"wer", "mit", "in"} else {"the": 0.013}.get(word, 0.0)
    >>> english_reason("How many tackles did Luke Kuechly register?", german)[:46]
    "its English function words 'how', 'did' are ea"
    >>> english_reason("Who did the Broncos beat?", german)[94:108]
    '(at most 1.3%)'
    >>> english_reason("Luke Kuechly tackles", german) is None  # no function words
    True
    >>> english_reason("Wer sang mit The Who in Houston?", german) is None  # as many of the index's own
    True
    """
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    share = {w: doc_share(w) for w in words if w not in _FRAGMENTS}
    english = {w: s for w, s in share.items() if s is not None and w in stopwords.ENGLISH}
    native = sum(s is None for s in share.values())
    if len(english) < MIN_WORDS or len(english) <= native or max(english.values()) >= RARE_SHARE:
        return None
    listed = ", ".join(repr(w) for w in english)
    top = max(english.values())
    return (
        f"its English function words {listed} are each in under {RARE_SHARE:.0%} of the index's documents"
        f" (at most {top:.1%}) and outnumber its words the index drops as stop words ({native})"
    )
