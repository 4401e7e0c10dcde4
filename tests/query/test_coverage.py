"""The text branch's per-query coverage factor (hybrid/query/coverage.py): the share of the query's
term weight (IDF) that its first hit holds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.query.coverage import idf, query_weights, share, top_hit_coverage

QUESTION = "When did the Normans receive land along the Seine?"


def _table(tmp_path: Path, decoy: str) -> hybrid.Table:
    """Unit vectors at growing angles from the query's direction (the first axis): the answer (row 7)
    nearest, the fillers a little further (a list of middling steepness), row 3 (`decoy`) furthest.
    The answer paraphrases the question (no word in common); the decoy holds what `decoy` says."""
    angles = np.linspace(21.0, 40.0, 40)
    angles[7], angles[3] = 20.0, 70.0
    rad = np.radians(angles)
    vectors = np.zeros((40, 8), np.float32)
    vectors[:, 0], vectors[:, 1] = np.cos(rad), np.sin(rad)
    rows = [{"id": i, "text": f"Section {i} of the chronicle.", "vector": vectors[i]} for i in range(40)]
    rows[7]["text"] = "In 911 the Northmen were granted territory by the river."
    rows[3]["text"] = decoy
    t = hybrid.connect(tmp_path).create_table("t", rows)
    t.create_fts_index("text")
    return t


def _first(q: hybrid.Query) -> int:
    return int(q.limit(1).to_arrow().column("id")[0].as_py())


QUERY = np.eye(8, dtype=np.float32)[0]


def test_a_first_hit_holding_little_of_the_question_gives_way_to_the_vectors(tmp_path: Path) -> None:
    """BM25's only hit holds "Seine" alone (a quarter of the question's term weight): the text branch's
    say shrinks by that share and the vector branch's answer comes first. Without the factor the
    lone text hit wins (checked below by switching the factor off)."""
    t = _table(tmp_path, "The Seine flows through Paris.")
    assert _first(t.search(QUESTION, query_type="fts")) == 3
    assert _first(t.search(QUERY, vector_column="vector")) == 7
    fused = t.search(QUESTION).vector(QUERY, column="vector")
    assert _first(fused) == 7
    explained = fused.explain()
    assert "its first hit holds" in explained and "of the query's term weight" in explained

    import hybrid.query.executor as executor

    kept = executor.text_coverage
    executor.text_coverage = lambda view, b: None
    try:
        assert _first(fused) == 3  # the old default: the lone, partial text hit
    finally:
        executor.text_coverage = kept


def test_a_first_hit_holding_the_whole_question_keeps_its_say(tmp_path: Path) -> None:
    """The same table, but the decoy holds every word of the question: coverage 1, the text branch
    counts in full and its hit stays first."""
    t = _table(tmp_path, "The Normans received land along the Seine in 911.")
    fused = t.search(QUESTION).vector(QUERY, column="vector")
    assert _first(fused) == 3
    assert "x 1.00 (its first hit holds 100%" in fused.explain()


def test_coverage_weighs_each_term_by_its_idf(tmp_path: Path) -> None:
    t = _table(tmp_path, "The Seine flows through Paris.")
    view = t.indexed_snapshot()
    index = view.index(next(e for e in view.entries() if e.kind == "fts"))
    weights = dict(query_weights(index, QUESTION))
    n = index.num_docs
    assert set(weights) == {"norman", "receiv", "land", "along", "sein"}  # stop words dropped, stems kept
    assert weights["sein"] == pytest.approx(math.log(1 + (n - 1 + 0.5) / 1.5))  # one row holds it
    assert weights["norman"] == pytest.approx(idf(0, n))  # no row: the most weight, no hit can hold it
    got = top_hit_coverage(index, QUESTION, "The Seine flows through Paris.")
    assert got == pytest.approx(weights["sein"] / sum(weights.values()))
    assert top_hit_coverage(index, QUESTION, "Normans received land along the Seine") == pytest.approx(1.0)
    assert top_hit_coverage(index, "the of", "anything") is None  # stop words only: nothing to cover


def test_share_of_weight() -> None:
    assert share([("a", 1.0), ("b", 3.0)], {"b"}) == pytest.approx(0.75)
    assert share([("a", 1.0)], set()) == 0.0
    assert share([], {"a"}) is None


def test_other_query_forms_leave_the_weights_alone(tmp_path: Path) -> None:
    """A phrase or boolean query has no single bag of terms to cover: no factor, nothing in explain."""
    from hybrid.query.text import Phrase

    t = _table(tmp_path, "The Seine flows through Paris.")
    fused = t.search(Phrase("Seine flows"), query_type="hybrid").vector(QUERY, column="vector")
    assert "its first hit holds" not in fused.explain()
