"""Cold start: judgments made from the table's own rows, for a table nobody has given feedback on yet.

For a seeded sample of rows, the pseudo-query is the row's first sentence of `min_words` to `max_words`
words (its title where the text is "title. body", as the evaluation tables and most ingested documents
are; else its lead sentence, which says what the row is about), and that row is its one relevant row.
Titles and lead sentences were chosen over random inner sentences (inverse cloze) because they are the
closest thing in a document to a question about it: an inner sentence states one detail, and a query
of one copied detail rewards exact word matching even more.

The bias this leaves is known and measured (``eval/cold_start.py``): the query's words are all in its
row, so full text finds the row easily and a model learns to copy-match. Two counter-measures:

* training (`strip_query` in :func:`hybrid.feedback.tune.mine_examples`) shows the model the row
  *without* the query sentence (inverse-cloze style), so it must match the query to the rest of the text;
* cold-start tuning leaves fusion alone (weights chosen on copied spans would favour full text, the
  trap the calibration probes fell into); only the reranker is trained, and the guard judges it on held-out
  pseudo-queries.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from hybrid.errors import FeedbackError
from hybrid.feedback.judgments import Judgments
from hybrid.query.highlight import UNSPACED_SCRIPTS

if TYPE_CHECKING:
    from hybrid.table import Table

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？।॥])\s*|\n+")
"""Where a sentence ends: . ! ? and a space, the full-width 。！？ and the Devanagari dandas, or a new line."""


def word_count(text: str) -> int:
    """Words of `text`: whitespace-separated words, except that a run of a script written without spaces
    (Chinese, Japanese, Thai ...) counts one word per two characters, about what its words average.

    >>> word_count("Aspirin and stroke."), word_count("阿司匹林与中风的关系"), word_count("GPT 模型")
    (3, 5, 2)
    """
    spaced = UNSPACED_SCRIPTS.sub(" ", text)
    return len(spaced.split()) + sum(max(1, len(run) // 2) for run in UNSPACED_SCRIPTS.findall(text))


def title_sentence(text: str, min_words: int = 4, max_words: int = 40) -> str | None:
    """The first sentence of `text` with `min_words` to `max_words` words (:func:`word_count`), or None.

    >>> title_sentence("Aspirin and stroke. We studied 300 patients over ten years.")
    'We studied 300 patients over ten years.'
    >>> title_sentence("Aspirin lowers the risk of stroke in older adults. We studied 300 patients.")
    'Aspirin lowers the risk of stroke in older adults.'
    >>> title_sentence("阿司匹林降低老年人中风的风险。我们研究了三百名患者。")
    '阿司匹林降低老年人中风的风险。'
    """
    for part in SENTENCE_END.split(text or ""):
        if min_words <= word_count(part) <= max_words:
            return " ".join(part.split())
    return None


def strip_sentence(text: str, sentence: str) -> str:
    """`text` without any copy of `sentence` (whitespace-insensitively; some collections repeat the title
    at the start of the body), or `text` if it holds none.

    >>> strip_sentence("Aspirin and stroke. Aspirin and stroke. We studied  300 patients.", "Aspirin and stroke.")
    'We studied 300 patients.'
    """
    joined = " ".join((text or "").split())
    return " ".join(joined.replace(sentence, " ").split())


def pseudo_judgments(
    table: Table, column: str, n: int = 200, seed: int = 0, min_words: int = 4, max_words: int = 40
) -> Judgments:
    """Up to `n` pseudo-queries from a seeded sample of the table's rows (see the module), each judging its
    own row relevant (label 1). Rows whose text leaves fewer than `min_words` words beside the query, and
    queries that two rows share, are skipped."""
    if n <= 0:
        raise ValueError(f"the number of pseudo-queries must be positive, got {n!r}")
    ids = table.to_arrow([], with_rowid=True).column("_rowid").to_numpy()
    if ids.size == 0:
        raise FeedbackError(f"table {table.name!r} is empty: no rows to make pseudo-queries from")
    order = np.random.default_rng(seed).permutation(ids.size)[: 3 * n]
    rows = table.take(ids[np.sort(order)], [column])
    texts = dict(zip(rows.column("_rowid").to_pylist(), rows.column(column).to_pylist(), strict=True))
    labels: dict[str, dict[int, float]] = {}
    seen: dict[str, str] = {}  # lower-cased query -> the query as first seen
    for i in order:
        rowid = int(ids[i])
        text = texts.get(rowid) or ""
        query = title_sentence(text, min_words, max_words)
        if query is None or word_count(strip_sentence(text, query)) < min_words:
            continue
        key = query.lower()
        if key in seen:  # two rows share it: neither is the one answer
            labels.pop(seen[key], None)
            continue
        seen[key] = query
        labels[query] = {rowid: 1.0}
        if len(labels) >= n:
            break
    if len(labels) < 4:
        raise FeedbackError(
            f"table {table.name!r}: only {len(labels)} rows of {column!r} have a first sentence of "
            f"{min_words}-{max_words} words to use as a pseudo-query; cold start needs at least 4"
        )
    return Judgments(labels)
