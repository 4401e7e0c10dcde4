"""Cross-script feedback words (hybrid/query/cross_feedback.py): the passages' most distinctive terms,
as words that analyse back to them, in spaced and unspaced scripts."""

from __future__ import annotations

import numpy as np

from hybrid.index.analyzer import Analyzer
from hybrid.index.fulltext import FullTextIndex
from hybrid.query.cross_feedback import feedback_words
from hybrid.query.text import Match


def _index(texts: list[str], language: str) -> FullTextIndex:
    ids = np.arange(len(texts), dtype=np.uint64)
    return FullTextIndex.build(None, ["text"], Analyzer(language), [(ids, {"text": texts})])


def test_the_rarest_terms_of_the_passages_come_first_as_words_of_the_text() -> None:
    common = [f"Die Stadt wurde im Jahr {1900 + i} von vielen gegründet." for i in range(20)]
    passage = "Die Stadt Warschau wurde von Herzog Bolesław gegründet."
    index = _index([*common, passage], "de")
    words = feedback_words(index, [passage], k=3)
    assert set(words) == {"Warschau", "Herzog", "Bolesław"}  # each once in the corpus; "Stadt" is everywhere
    assert set(feedback_words(index, [passage], k=10)[3:]) == {"Stadt", "wurde", "gegründet."}  # in every row
    ids, _ = index.search(index.compile(Match(" ".join(words))), 1)  # type: ignore[arg-type]
    assert [int(i) for i in ids] == [20]


def test_chinese_passages_give_their_characters_and_bigrams() -> None:
    texts = ["华沙是波兰的首都。", "北京是中国的首都。", "上海是中国的城市。", "东京是日本的首都。"]
    index = _index(texts, "zh")
    words = feedback_words(index, [texts[0]], k=4)
    assert set(words) <= set(index.analyzer.terms(texts[0]))  # terms of the unspaced run, not the sentence
    assert "华沙" in words and "首都" not in words and "是" not in words
    ids, _ = index.search(index.compile(Match(" ".join(words))), 1)  # type: ignore[arg-type]
    assert [int(i) for i in ids] == [0]
