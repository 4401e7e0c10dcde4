"""BM25's k1 and b per full-text index: tantivy's own by default, others by exact rescoring."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import hybrid

ROWS = [
    {"id": 0, "text": "zebra"},
    {"id": 1, "text": "zebra " + " ".join(f"filler{i}" for i in range(30))},  # same tf, far longer
    {"id": 2, "text": "zebra zebra zebra giraffe"},
    *({"id": i, "text": f"lion number{i}"} for i in range(3, 20)),
]
N, DF = len(ROWS), 3  # documents, and documents holding "zebra"
IDF = math.log(1 + (N - DF + 0.5) / (DF + 0.5))


def make(tmp_path: Path, **bm25: float) -> hybrid.Table:
    t = hybrid.connect(tmp_path).create_table("docs", ROWS)
    t.create_fts_index("text", language="en", **bm25)
    return t


def scores(t: hybrid.Table, text: str = "zebra") -> dict[int, float]:
    return {r["id"]: r["_bm25"] for r in t.search(text, query_type="fts").limit(10).to_list()}


def test_defaults_are_tantivys_and_are_recorded(tmp_path: Path) -> None:
    t = make(tmp_path)
    [stats] = t.index_stats()
    assert (stats["k1"], stats["b"]) == (1.2, 0.75)
    assert "rescored" not in t.search("zebra", query_type="fts").explain()
    s = scores(t)
    assert s[0] > s[1]  # length normalisation: the short row wins at equal tf


def test_b_zero_ignores_length(tmp_path: Path) -> None:
    t = make(tmp_path, b=0.0)
    s = scores(t)
    expected_tf1 = IDF * 1 * (1.2 + 1) / (1 + 1.2)
    assert s[0] == pytest.approx(expected_tf1, rel=1e-5)
    assert s[1] == pytest.approx(expected_tf1, rel=1e-5)  # 31 words long, the same score
    assert s[2] == pytest.approx(IDF * 3 * 2.2 / (3 + 1.2), rel=1e-5)
    assert "rescored with k1=1.2, b=0" in t.search("zebra", query_type="fts").explain()


def test_k1_zero_counts_a_term_once(tmp_path: Path) -> None:
    t = make(tmp_path, k1=0.0, b=0.0)
    s = scores(t)
    assert s[0] == pytest.approx(IDF, rel=1e-5) and s[2] == pytest.approx(IDF, rel=1e-5)


def test_settings_survive_reopening_and_apply_to_rows_added_later(tmp_path: Path) -> None:
    make(tmp_path, b=0.0)
    t = hybrid.connect(tmp_path).open_table("docs")
    t.add([{"id": 99, "text": "zebra " + " ".join(f"more{i}" for i in range(50))}])
    s = scores(t)
    # the new row is unindexed; it is scored with the same k1 and b (and the statistics it joins)
    n, df = N + 1, DF + 1
    assert s[99] == pytest.approx(math.log(1 + (n - df + 0.5) / (df + 0.5)), rel=1e-5)
    assert s[0] == pytest.approx(IDF, rel=1e-5)  # indexed rows keep the index's own statistics


@pytest.mark.parametrize(("option", "bad"), [("k1", -1.0), ("k1", float("nan")), ("b", 1.5), ("b", -0.1)])
def test_bad_parameters_are_refused_before_anything_is_built(tmp_path: Path, option: str, bad: float) -> None:
    t = hybrid.connect(tmp_path).create_table("docs", ROWS)
    with pytest.raises(ValueError, match=option):
        t.create_fts_index("text", **{option: bad})
    assert t.index_stats() == []
