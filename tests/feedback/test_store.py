"""Feedback kept as the table ``<name>__feedback``: round trip, SQL, time travel, and bad input that writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import hybrid
from hybrid.errors import FeedbackError
from hybrid.feedback import Feedback, feedback_table_name


def make(tmp_path: Path) -> tuple[hybrid.Database, hybrid.Table]:
    db = hybrid.connect(tmp_path / "db")
    rows = [{"id": f"d{i}", "n": i, "text": f"document {i}"} for i in range(5)]
    return db, db.create_table("docs", rows)


def test_round_trip_by_rowid_and_key_queryable_with_sql(tmp_path: Path) -> None:
    db, t = make(tmp_path)
    first = t.add_feedback("what is four?", {"id": "d4"}, 2, who="ann", source="ui", shown_rank=3)
    t.add_feedback("what is one?", 1, 0, kind="click", query_vector=[0.5, 0.25])
    log = t.feedback
    assert log.name == feedback_table_name("docs") == "docs__feedback"
    assert log.count() == 2 and "docs__feedback" in db.table_names()
    rows = db.sql(
        "select query, row, key, key_column, label, kind, who, source, shown_rank from docs__feedback"
    ).to_pylist()
    assert rows == [
        {"query": "what is four?", "row": 4, "key": "d4", "key_column": "id", "label": 2.0, "kind": "judgment",
         "who": "ann", "source": "ui", "shown_rank": 3},
        {"query": "what is one?", "row": 1, "key": None, "key_column": None, "label": 0.0, "kind": "click",
         "who": None, "source": None, "shown_rank": None},
    ]  # fmt: skip
    assert log.to_arrow().column("query_vector").to_pylist()[1] == [0.5, 0.25]
    assert log.to_arrow().column("table_version").to_pylist() == [t.version, t.version]
    # versioned like any table: the first judgment's version holds only it
    assert log.table().checkout(first.version).count_rows() == 1
    reopened = hybrid.connect(tmp_path / "db").open_table("docs")
    assert reopened.feedback.count() == 2


def test_an_integer_key_column(tmp_path: Path) -> None:
    _, t = make(tmp_path)
    t.add_feedback("three", {"n": 3}, 1)
    t.add_feedback("three as text", {"n": "3"}, 1)  # a key is matched by its text, as documented
    assert t.feedback.to_arrow().column("row").to_pylist() == [3, 3]


def test_keys_of_every_column_type_find_the_newest_live_row(tmp_path: Path) -> None:
    db = hybrid.connect(tmp_path / "db")
    rows = [{"id": f"d{i % 3}", "score": i / 2, "day": f"2026-01-0{i + 1}", "text": f"t{i}"} for i in range(6)]
    t = db.create_table("docs", rows)
    t.delete("text = 't5'")  # the newest d2 is gone: the live one is row 2
    got = t.feedback.add_many(
        [
            {"query": "a", "row": {"id": "d0"}, "label": 1},
            {"query": "b", "row": {"id": "d2"}, "label": 1},
            {"query": "c", "row": {"score": 1.5}, "label": 1},
            {"query": "d", "row": {"score": "1.0"}, "label": 1},
        ]
    )
    assert got.version == t.feedback.table().version
    assert t.feedback.to_arrow().column("row").to_pylist() == [3, 2, 3, 2]
    with pytest.raises(FeedbackError, match="has score = 1"):
        t.add_feedback("e", {"score": 1}, 1)  # str(1) is not str(1.0): floats match by their text
    assert t.feedback.count() == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", 0, 1), "query is empty"),
        (("   ", 0, 1), "query is empty"),
        (("q", 99, 1), "row 99 is not a live row"),
        (("q", {"id": "nope"}, 1), "no row of 'docs' has id = 'nope'"),
        (("q", {"missing": 1}, 1), "no column 'missing'"),
        (("q", {"id": "d1", "n": 1}, 1), "one key column"),
        (("q", 0, 4.5), "out of range"),
        (("q", 0, -1), "out of range"),
        (("q", 0, float("nan")), "out of range"),
        (("q", 0, "good"), "label must be a number"),
        (("q", "d1", 1), "row must be a _rowid"),
    ],
)
def test_bad_feedback_is_refused_and_writes_nothing(tmp_path: Path, args: tuple[Any, ...], message: str) -> None:
    _, t = make(tmp_path)
    t.add_feedback("fine", 0, 1)
    before = t.feedback.table().version
    with pytest.raises(FeedbackError, match=message):
        t.add_feedback(*args)
    assert t.feedback.table().version == before and t.feedback.count() == 1


def test_a_batch_with_one_bad_item_writes_nothing(tmp_path: Path) -> None:
    _, t = make(tmp_path)
    good = Feedback("q1", {"id": "d1"}, 1)
    with pytest.raises(FeedbackError, match="feedback 1: row 42"):
        t.feedback.add_many([good, {"query": "q2", "row": 42, "label": 1}])
    assert t.feedback.count() == 0
    with pytest.raises(FeedbackError, match="unexpected keyword"):
        t.feedback.add_many([{"query": "q", "row": 1, "grade": 1}])
    assert t.feedback.add_many([good, {"query": "q2", "row": 2}]).inserted == 2


def test_deleted_rows_cannot_be_judged(tmp_path: Path) -> None:
    _, t = make(tmp_path)
    t.delete("n = 2")
    with pytest.raises(FeedbackError, match="row 2 is not a live row"):
        t.add_feedback("q", 2, 1)
    with pytest.raises(FeedbackError, match="has id = 'd2'"):
        t.add_feedback("q", {"id": "d2"}, 1)
