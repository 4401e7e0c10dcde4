"""A whole-query time budget: checked at every stage, interrupting DuckDB, following the branch threads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest

import hybrid
from hybrid import budget
from hybrid.errors import LimitError, TimeBudgetError
from hybrid.query.limits import Limits, current_limits, set_limits
from hybrid.rerankers.base import RELEVANCE

SLOW = "levenshtein(s || s, upper(s)) >= 0"  # quadratic in the text's length: seconds over this table


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> hybrid.Table:
    words = ["heart", "attack", "risk", "blood", "pressure", "study", "cells", "gene"]
    rows = [{"id": i, "s": " ".join(words[(i + j) % 8] for j in range(60)) + f" row{i}"} for i in range(6_000)]
    t = hybrid.connect(tmp_path_factory.mktemp("budget"), upkeep=None).create_table("t", rows)
    t.create_fts_index(["s"])
    return t


@pytest.fixture
def limits() -> Iterator[None]:
    before = current_limits()
    yield
    set_limits(before)


def test_a_slow_filter_is_stopped_at_the_budget_not_at_the_filter_limit(table: hybrid.Table) -> None:
    assert current_limits().seconds >= 10
    started = time.monotonic()
    stopped = r"time budget of 0.4 s .* stopped at where 'levenshtein"
    with pytest.raises(TimeBudgetError, match=stopped) as caught, hybrid.time_budget(0.4):
        table.search("heart attack").where(SLOW).limit(5).to_arrow()
    took = time.monotonic() - started
    assert 0.35 < took < 3, took  # the DuckDB evaluation was interrupted at the budget
    assert isinstance(caught.value, LimitError) and isinstance(caught.value, TimeoutError)
    assert caught.value.seconds == 0.4 and caught.value.stage.startswith("where")


def test_time_spent_before_the_query_counts_and_a_spent_budget_does_no_work(table: hybrid.Table) -> None:
    queued = time.monotonic() - 2.0  # e.g. two seconds waiting for a thread
    with pytest.raises(TimeBudgetError, match="stopped at the start"), hybrid.time_budget(1.0, started=queued):
        table.search("heart").limit(5).to_arrow()


def test_a_query_within_its_budget_returns_the_same_rows(table: hybrid.Table) -> None:
    plain = table.search("heart attack").where("id < 3000").limit(10).to_arrow()
    with hybrid.time_budget(30):
        budgeted = table.search("heart attack").where("id < 3000").limit(10).to_arrow()
    assert budgeted.equals(plain) and plain.num_rows == 10


class _SlowReranker:
    """Sleeps past the budget, then scores by row id."""

    def rerank(self, query: str, rows: pa.Table) -> pa.Table:
        time.sleep(0.5)
        return rows.append_column(RELEVANCE, pa.array([float(x) for x in rows.column("id").to_pylist()]))


def test_a_stage_that_outlasts_the_budget_stops_the_query_right_after_it(table: hybrid.Table) -> None:
    q = table.search("heart").limit(5).rerank(_SlowReranker())  # type: ignore[arg-type]
    assert q.to_arrow().num_rows == 5  # without a budget it answers
    with pytest.raises(TimeBudgetError, match="stopped at the end of reranking"), hybrid.time_budget(0.3):
        q.to_arrow()


def test_limits_query_seconds_is_the_default_budget_of_every_search(table: hybrid.Table, limits: None) -> None:
    set_limits(Limits(query_seconds=0.3))
    started = time.monotonic()
    with pytest.raises(TimeBudgetError, match="time budget of 0.3 s"):
        table.search("heart").where(SLOW).limit(5).to_arrow()
    assert time.monotonic() - started < 3
    assert table.search("heart").limit(3).to_arrow().num_rows == 3  # cheap searches are untouched
    with pytest.raises(ValueError, match="query_seconds"):
        Limits(query_seconds=0)


def test_nested_budgets_keep_the_earlier_end_and_the_budget_follows_into_other_threads() -> None:
    with hybrid.time_budget(0.2) as outer:
        with hybrid.time_budget(60) as inner:
            assert budget.current() is outer and inner.seconds == 60
        with hybrid.time_budget(0.1) as shorter:
            assert budget.current() is shorter
        with ThreadPoolExecutor(1) as pool:
            seen = pool.submit(budget.carry(budget.current)).result()
            alone = pool.submit(budget.current).result()
    assert seen is outer and alone is None and budget.current() is None
    with pytest.raises(ValueError, match="positive"):
        budget.Budget(0)


def test_without_a_budget_nothing_is_checked(tmp_path: Path) -> None:
    budget.check("anything")
    assert budget.remaining() is None
