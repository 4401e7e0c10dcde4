"""Full-text query forms (public home). A plain string means `Match(string)`.

They are defined in :mod:`hybrid.index.text_query`, beside the full-text index
that compiles them, so that the index layer never imports from the query layer.

>>> Boolean(must=[Match("vector index")], must_not=[Phrase("product quantization")]).must
(Match(text='vector index', fuzziness=0, proximity=0.0),)
"""

from __future__ import annotations

from hybrid.index.text_query import PROXIMITY_SLOP, Boolean, Match, Phrase, QueryString, TextQuery, as_text_query

__all__ = ["PROXIMITY_SLOP", "Boolean", "Match", "Phrase", "QueryString", "TextQuery", "as_text_query"]
