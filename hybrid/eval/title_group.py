"""Group scores with the document's title counted once: one more row in the mean, never the best row.

The ``once`` chunk layout (:data:`hybrid.eval.chunked.TitleLayout`) gives each titled document a
row holding its title alone, searched like any chunk, so its score is on the chunks' scale. Under
the library's ``max_mean`` group score that row also competes for the document's best row, and a
title that reads like the query (a FAQ question) then stands for a document whose text does not
answer it. Here the title row counts in the mean over the document's rows (it is part of what a
document-level search sees) but not in the max (it is not a passage that answers), with no
constant: ``(best text row + mean over all rows) / 2``, rows of the document that are not among
the candidates at the weakest candidate's score, as :func:`hybrid.query.grouping.max_mean`.

>>> rows = [("a", 0.9, True), ("a", 0.5, False), ("b", 0.7, False), ("b", 0.6, False)]
>>> s = title_group_scores(rows, {"a": 2, "b": 2})
>>> round(s["a"], 4), round(s["b"], 4)  # a's 0.9 is its title: in a's mean, not its best row
(0.6, 0.675)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence


def title_group_scores(
    rows: Sequence[tuple[Hashable, float, bool]], sizes: Mapping[Hashable, int]
) -> dict[Hashable, float]:
    """Each document's score from its candidate rows (document, score, is the title row): half its
    best text row's score plus half the mean over its `sizes` rows (title row included), rows that
    are not candidates at the weakest candidate's score. A document whose only candidate is its
    title takes the weakest score as its best text row's."""
    if not rows:
        return {}
    for doc, _, _ in rows:
        if sizes.get(doc, 0) < 1:
            raise ValueError(f"title_group_scores: no row count for document {doc!r} in sizes")
    weakest = min(score for _, score, _ in rows)
    best: dict[Hashable, float] = {}
    total: dict[Hashable, float] = {}
    seen: dict[Hashable, int] = {}
    for doc, score, is_title in rows:
        if not is_title:
            best[doc] = max(best.get(doc, weakest), score)
        total[doc] = total.get(doc, 0.0) + score
        seen[doc] = seen.get(doc, 0) + 1
    out = {}
    for doc, summed in total.items():
        n = max(sizes[doc], seen[doc])
        out[doc] = (best.get(doc, weakest) + (summed + (n - seen[doc]) * weakest) / n) / 2
    return out
