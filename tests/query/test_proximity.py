"""The optional proximity boost of `Match`: neighbouring query terms found near each other score more."""

from __future__ import annotations

from pathlib import Path

import pytest

import hybrid
from hybrid.query.text import PROXIMITY_SLOP, Match

ROWS = [
    {"id": 0, "text": "the vector index answers in a millisecond"},  # "vector index" adjacent
    {"id": 1, "text": "a vector of numbers is stored per row and later the index is rebuilt"},  # far apart
    {"id": 2, "text": "an index over every vector"},  # reversed order, within the slop
    {"id": 3, "text": "cats sleep all day"},
]


@pytest.fixture
def table(tmp_path: Path) -> hybrid.Table:
    t = hybrid.connect(tmp_path).create_table("docs", ROWS)
    t.create_fts_index("text")
    return t


def scores(t: hybrid.Table, q: Match) -> dict[int, float]:
    return {r["id"]: r["_bm25"] for r in t.search(q).limit(10).to_list()}


def test_off_by_default_and_zero_changes_nothing(table: hybrid.Table) -> None:
    assert Match("vector index").proximity == 0.0
    assert scores(table, Match("vector index", proximity=0.0)) == scores(table, Match("vector index"))


def test_near_pairs_gain_and_far_pairs_do_not(table: hybrid.Table) -> None:
    plain = scores(table, Match("vector index"))
    near = scores(table, Match("vector index", proximity=1.0))
    assert set(near) == set(plain) == {0, 1, 2}  # the boost adds score, never matches
    assert near[0] > plain[0] * 1.5  # adjacent: the pair's phrase score is added
    assert near[1] == pytest.approx(plain[1])  # more than PROXIMITY_SLOP positions apart
    assert PROXIMITY_SLOP < 8
    # the boost scales with `proximity`
    more = scores(table, Match("vector index", proximity=2.0))
    assert more[0] - plain[0] == pytest.approx(2 * (near[0] - plain[0]), rel=1e-4)


def test_rows_added_after_the_index_get_the_same_boost(table: hybrid.Table) -> None:
    table.add([{"id": 4, "text": "the vector index answers in a millisecond"}])
    near = scores(table, Match("vector index", proximity=1.0))
    plain = scores(table, Match("vector index"))
    assert near[4] > plain[4]
    assert table.search(Match("vector index", proximity=1.0)).explain().count("unindexed") >= 1


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), "1"])
def test_bad_proximity_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="proximity"):
        Match("vector index", proximity=bad)  # type: ignore[arg-type]
