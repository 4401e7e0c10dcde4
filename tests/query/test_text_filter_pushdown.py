"""Filters that run inside the full-text index give exactly the rows and scores of the allowed-row path.

Two tables hold the same rows: one's full-text index stores the filter columns (they have scalar
indexes, so ``create_fts_index`` takes them by default), the other's stores none
(``filter_columns=[]``), so its filtered text searches use the allowed-row path, which
``test_filtered_search.py`` checks against exact BM25. Every filter must give both the same
ranked rows and scores, before and after rows are added and deleted; pushable filters must say
so in ``explain()``, others must not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid

WORDS = ["river", "stone", "cloud", "field", "light", "storm", "glass", "paper", "ember", "frost"]
PUSHED = [  # selective (at most ~2% of the rows): fewer allowed rows than over-fetching would read
    "cat = 3",
    "cat IN (1, 2, NULL)",
    "cat BETWEEN 2 AND 3",
    "cat > 98",
    "cat < 2",
    "cat <= 1.0",
    "u >= 253",
    "tag = 't3'",
    "tag IN ('t1', 't2')",
    "flag",
    "cat = 3 OR tag = 't7'",
    "cat = 1 OR (tag = 't3' AND u < 128)",
]
BROAD = ["flag = false", "cat >= 10", "tag <> 't1' AND cat > 50"]  # pushable, but over-fetching reads less
NOT_PUSHED = [
    "NOT cat = 3",
    "cat <> 3",
    "cat < 1.5",
    "tag IS NULL",
    "cat + 1 = 4",
    "tag > 't98'",
    "cat = 3 AND id * 2 > 10",
]


def rows(start: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    cat = pa.array([None if x == 100 else int(x) for x in rng.integers(0, 101, n)], pa.int32())
    tag = pa.array([None if x == 100 else f"t{x}" for x in rng.integers(0, 101, n)])
    flag = pa.array([None if x == 0 else bool(x == 1) for x in rng.integers(0, 100, n)])
    text = [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(n)]
    u = pa.array(rng.integers(0, 256, n).astype(np.uint8))
    return pa.table({"id": np.arange(start, start + n), "text": text, "cat": cat, "tag": tag, "flag": flag, "u": u})


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[hybrid.Table, hybrid.Table]:
    db = hybrid.connect(tmp_path_factory.mktemp("db"))
    pushed, plain = db.create_table("pushed", rows(0, 20_000, 1)), db.create_table("plain", rows(0, 20_000, 1))
    for column in ("cat", "tag", "flag", "u"):
        pushed.create_scalar_index(column)
        plain.create_scalar_index(column)
    pushed.create_fts_index(["text"], language="en")
    plain.create_fts_index(["text"], language="en", filter_columns=[])
    return pushed, plain


def search(t: hybrid.Table, where: str) -> list[tuple[int, float]]:
    got = t.search("river storm glass", query_type="fts").where(where).limit(40).select(["id"]).to_arrow()
    return list(zip(got.column("id").to_pylist(), [round(x, 4) for x in got.column("_score").to_pylist()]))


@pytest.mark.parametrize("where", PUSHED + BROAD + NOT_PUSHED)
def test_pushed_filters_match_the_allowed_row_path(tables: tuple[hybrid.Table, hybrid.Table], where: str) -> None:
    pushed, plain = tables
    want = search(plain, where)
    assert search(pushed, where) == want
    assert want, f"{where!r} should allow some matching rows"
    inside = (
        "the filter ran inside the full-text index" in pushed.search("river", query_type="fts").where(where).explain()
    )
    assert inside == (where in PUSHED), where


def test_filter_columns_are_recorded_and_follow_changes(tmp_path: Path) -> None:
    db = hybrid.connect(tmp_path)
    pushed, plain = db.create_table("pushed", rows(0, 5000, 2)), db.create_table("plain", rows(0, 5000, 2))
    for t in (pushed, plain):
        t.create_scalar_index("cat")
    pushed.create_fts_index(["text"], language="en", filter_columns=["cat", "tag"])
    plain.create_fts_index(["text"], language="en", filter_columns=[])
    stats = {s["name"]: s for s in pushed.index_stats()}["fts"]
    assert sorted(stats["filter_fields"].values()) == ["int", "str"]
    for t in (pushed, plain):  # rows added (unindexed) and deleted (dead) after the build
        t.add(rows(5000, 300, 3))
        t.delete("id % 7 = 0")
    for where in ("cat = 4", "tag = 't1' OR cat < 2", "cat IN (1, 9)"):
        assert search(pushed, where) == search(plain, where), where
    pushed.rename_column("cat", "category")
    plain.rename_column("cat", "category")
    assert search(pushed, "category = 4") == search(plain, "category = 4")
    pushed.optimize()  # the rebuilt index keeps the filter columns (BM25 statistics change with the rebuild)
    plain.optimize()
    assert sorted({s["name"]: s for s in pushed.index_stats()}["fts"]["filter_fields"].values()) == ["int", "str"]
    assert search(pushed, "category = 4") == search(plain, "category = 4")


def test_a_column_that_cannot_be_a_filter_field_is_refused(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("t", [{"id": 1, "text": "river", "score": 0.5}])
    with pytest.raises(hybrid.SchemaError, match="full-text filter columns are integers, booleans or strings"):
        t.create_fts_index(["text"], filter_columns=["score"])


def test_a_value_longer_than_a_tantivy_term_is_still_found(tmp_path: Path) -> None:
    """tantivy drops terms over ~64 KB; a filter on such a value must not be pushed into it."""
    long = "x" * 70_000
    t = hybrid.connect(tmp_path).create_table(
        "t", [{"id": 1, "text": "river stone", "tag": long}, {"id": 2, "text": "river", "tag": "short"}]
    )
    t.create_scalar_index("tag")
    t.create_fts_index(["text"], language="en")
    hits = t.search("river", query_type="fts").where(f"tag = '{long}'").select(["id"]).to_arrow()
    assert hits.column("id").to_pylist() == [1]
    assert t.search("river", query_type="fts").where("tag = 'short'").select(["id"]).to_list()[0]["id"] == 2
