"""Decay, boosts and pinned rows after fusion: orderings checked against a hand computation on a tiny table."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

import hybrid
from hybrid.errors import SchemaError

ORIGIN = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
DAY = 86_400.0
# id, text, age in days, popularity, tier
ROWS = [
    (0, "keys keys keys rotate", 90, 10, "gold"),
    (1, "keys keys rotate", 60, 0, "free"),
    (2, "keys rotate", 0, 100, "free"),
    (3, "keys rotate monthly schedule", 30, 5, "gold"),
]


@pytest.fixture
def tickets(tmp_path: Path) -> hybrid.Table:
    rows = [
        {
            "id": i,
            "text": text,
            "updated_at": ORIGIN - dt.timedelta(days=age),
            "popularity": pop,
            "tier": tier,
            "vector": [1.0, float(i)],
        }
        for i, text, age, pop, tier in ROWS
    ]
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("tickets", rows)
    t.create_fts_index("text")
    return t


def age_of(i: int) -> float:
    return next(age for j, _, age, _, _ in ROWS if j == i) * DAY


def test_exponential_decay_matches_a_hand_computation(tickets: hybrid.Table) -> None:
    hits = tickets.search("keys", query_type="fts").decay("updated_at", scale="30d", origin=ORIGIN).to_list()
    base = {h["id"]: h["_base_score"] for h in hits}
    expected = {i: base[i] * 0.5 ** (age_of(i) / (30 * DAY)) for i in base}
    assert [h["id"] for h in hits] == sorted(expected, key=lambda i: -expected[i])
    for h in hits:
        assert h["_decay_updated_at"] == pytest.approx(0.5 ** (age_of(h["id"]) / (30 * DAY)))
        assert h["_score"] == pytest.approx(expected[h["id"]])
    plain = tickets.search("keys", query_type="fts").to_list()
    assert [h["id"] for h in plain][0] == 0 and hits[0]["id"] == 2  # the fresh ticket overtakes the old one
    assert {h["id"]: h["_bm25"] for h in hits} == pytest.approx(base)  # beside the branch scores


@pytest.mark.parametrize(
    ("kind", "curve"),
    [
        ("gauss", lambda d, s, o: 0.5 ** (max(0.0, d - o) ** 2 / s**2)),
        ("linear", lambda d, s, o: max(0.0, 1 - 0.5 * max(0.0, d - o) / s)),
        ("exp", lambda d, s, o: 0.5 ** (max(0.0, d - o) / s)),
    ],
)
def test_each_curve_with_an_offset(tickets: hybrid.Table, kind: str, curve: object) -> None:
    q = tickets.search("keys", query_type="fts").decay("updated_at", "40d", kind, origin=ORIGIN, offset="10d")  # type: ignore[arg-type]
    for h in q.to_list():
        want = curve(age_of(h["id"]), 40 * DAY, 10 * DAY)  # type: ignore[operator]
        assert h["_decay_updated_at"] == pytest.approx(want)


def test_boosts_multiply_and_add_and_the_explanation_shows_each(tickets: hybrid.Table) -> None:
    q = (
        tickets.search("keys", query_type="fts")
        .decay("updated_at", scale="30d", origin=ORIGIN)
        .boost(2.0, where="tier = 'gold'")
        .boost(0.1, column="popularity", modifier="log1p", mode="add")
    )
    hits = q.to_list()
    expected = {}
    for h in hits:
        gold = 2.0 if h["tier"] == "gold" else 1.0
        added = math.log1p(0.1 * h["popularity"])
        assert h["_boost_0"] == gold and h["_boost_popularity"] == pytest.approx(added)
        expected[h["id"]] = h["_base_score"] * h["_decay_updated_at"] * gold + added
        assert h["_score"] == pytest.approx(expected[h["id"]])
    assert [h["id"] for h in hits] == sorted(expected, key=lambda i: -expected[i])
    plan = q.explain()
    assert "exp decay on updated_at" in plan and "boost where \"tier = 'gold'\"" in plan and "log1p" in plan


def test_a_lone_vector_branch_decays_a_similarity(tickets: hybrid.Table) -> None:
    hits = tickets.search([1.0, 0.0], query_type="vector").decay("popularity", scale=50, origin=0).to_list()
    for h in hits:
        assert h["_base_score"] == pytest.approx(1 / (1 + h["_distance"]))
        assert h["_score"] == pytest.approx(h["_base_score"] * 0.5 ** (h["popularity"] / 50))


def test_decay_decides_which_groups_win(tickets: hybrid.Table) -> None:
    hits = tickets.search("keys", query_type="fts").decay("updated_at", "30d", origin=ORIGIN).group_by("tier")
    assert [h["id"] for h in hits.limit(2).to_list()] == [2, 3]


def test_pinned_rows_come_first_once_and_respect_deletes_and_filters(tickets: hybrid.Table) -> None:
    ids = {r["id"]: r["_rowid"] for r in tickets.to_arrow(["id"], with_rowid=True).to_pylist()}
    hits = tickets.search("keys", query_type="fts").pin([ids[3], ids[1]]).to_list()
    assert [h["id"] for h in hits][:2] == [3, 1] and [h["_pinned"] for h in hits] == [True, True, False, False]
    assert sorted(h["id"] for h in hits) == [0, 1, 2, 3]
    tickets.delete("id = 3")
    hits = tickets.search("keys", query_type="fts").where("tier = 'free'").pin([ids[3], ids[0], ids[2]]).to_list()
    assert [h["id"] for h in hits] == [2, 1] and hits[0]["_pinned"]
    with pytest.raises(ValueError, match="non-negative integer"):
        tickets.search("keys").pin([-1])
    with pytest.raises(ValueError, match="cannot be combined"):
        tickets.search("keys").group_by("tier").pin([0])
    with pytest.raises(ValueError, match="cannot be combined"):
        tickets.search("keys").pin([0]).group_by("tier").to_list()


def test_bad_scoring_input_says_what_was_wrong(tickets: hybrid.Table) -> None:
    q = tickets.search("keys", query_type="fts")
    with pytest.raises(ValueError, match="bad scale '30 days'"):
        q.decay("updated_at", scale="30 days")
    with pytest.raises(ValueError, match="kind must be 'exp', 'gauss' or 'linear'"):
        q.decay("updated_at", scale="30d", kind="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        q.decay("updated_at", scale="30d", decay=1.5)
    with pytest.raises(SchemaError, match="no column 'updated'"):
        q.decay("updated", scale="30d")
    with pytest.raises(ValueError, match="needs an origin"):
        q.decay("popularity", scale=10).to_list()
    with pytest.raises(SchemaError, match="not numbers, dates or timestamps"):
        q.decay("tier", scale=10, origin=0).to_list()
    with pytest.raises(ValueError, match="exactly one of where= .* or column="):
        q.boost(2.0)
    with pytest.raises(ValueError, match="finite number"):
        q.boost(float("nan"), where="tier = 'gold'")
