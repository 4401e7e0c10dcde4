"""Stop-word lists that tantivy does not ship.

tantivy's ``stopword(language)`` filter carries the Snowball lists for Danish, Dutch,
Finnish, French, German, Hungarian, Italian, Norwegian, Portuguese, Russian, Spanish
and Swedish, but for English only Lucene's classic 33 words. Long natural-language
questions then score "how", "what", "does", "can", "from" ... as query terms (LanceDB's
English analyzer drops them). English here is the Snowball English list (snowballstem.org,
contractions left out, since the tokenizer splits them at the apostrophe anyway).
"""

from __future__ import annotations

_ENGLISH = """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom
    this that these those am is are was were be been being have has had having do does did
    doing would should could ought a an the and but if or because as until while of at by for
    with about against between into through during before after above below to from up down
    in out on off over under again further then once here there when where why how all any
    both each few more most other some such no nor not only own same so than too very
    s t can will just don now d ll m o re ve y
"""
ENGLISH = frozenset(_ENGLISH.split())
