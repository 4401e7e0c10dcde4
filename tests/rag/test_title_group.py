"""The title counted once at grouping time: in the document's mean, never as its best row."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.eval.title_group import title_group_scores
from hybrid.query.grouping import max_mean


def test_without_title_rows_it_is_the_librarys_max_mean() -> None:
    rows = [("a", 0.9, False), ("b", 0.8, False), ("a", 0.4, False), ("c", 0.3, False), ("b", 0.2, False)]
    sizes = {"a": 5, "b": 2, "c": 1}
    got = title_group_scores(rows, sizes)
    groups = [[0, 2], [1, 4], [3]]
    expected = max_mean(np.array([s for _, s, _ in rows]), groups, np.array([sizes[d] for d, _, _ in rows], float))
    assert [got["a"], got["b"], got["c"]] == pytest.approx(expected)


def test_a_title_lifts_its_document_through_the_mean_but_is_never_its_best_row() -> None:
    # a: its title matches best, its text poorly; b: its text matches well, no title among the candidates
    rows = [("a", 1.0, True), ("b", 0.8, False), ("a", 0.3, False), ("b", 0.3, False)]
    scored = title_group_scores(rows, {"a": 2, "b": 2})
    assert scored["b"] > scored["a"]  # with the title as a's best row, a would win: (1.0 + 0.65) / 2
    assert scored["a"] == pytest.approx((0.3 + (1.0 + 0.3) / 2) / 2)
    untitled = title_group_scores([r for r in rows if not r[2]], {"a": 2, "b": 2})
    assert scored["a"] > untitled["a"]  # the title still counts in a's mean


def test_a_document_found_by_its_title_alone_takes_the_weakest_score_as_its_best() -> None:
    scored = title_group_scores([("a", 0.9, True), ("b", 0.5, False), ("b", 0.2, False)], {"a": 3, "b": 2})
    assert scored["a"] == pytest.approx((0.2 + (0.9 + 2 * 0.2) / 3) / 2)


def test_a_document_without_a_row_count_is_named() -> None:
    with pytest.raises(ValueError, match="'z'"):
        title_group_scores([("z", 0.5, False)], {"a": 1})
