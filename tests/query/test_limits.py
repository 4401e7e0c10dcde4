"""Bounds on filters and SQL: growth refused before it runs, time and memory overruns stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import hybrid
from hybrid.errors import CorruptionError, LimitError
from hybrid.query.limits import Limits, current_limits, set_limits


@pytest.fixture
def table(tmp_path: Path) -> hybrid.Table:
    return hybrid.connect(tmp_path, upkeep=None).create_table("t", [{"id": i, "s": f"row {i}"} for i in range(2_000)])


@pytest.fixture
def limits() -> Iterator[None]:
    before = current_limits()
    yield
    set_limits(before)


@pytest.mark.parametrize(
    "where",
    [
        "length(repeat('a', 1000000000)) > 0",
        "length(repeat(repeat('a', 1000), 1000)) > 0",  # each within the bound, the product not
        "len(range(100000000)) > 0",
        "len(generate_series(-5, 100000000, 1)) > 0",
        "length(lpad(s, 2000000, 'x')) > 0",
        "length(printf('%999999999d', id)) > 0",
        "length(repeat('0123456789', 10000)) > 0",  # 100,000 characters
    ],
)
def test_filters_that_would_build_huge_values_are_refused_at_once(table: hybrid.Table, where: str) -> None:
    started = time.perf_counter()
    with pytest.raises(LimitError, match="larger than the limit|at most 16 times"):
        table.count_rows(where)
    assert time.perf_counter() - started < 5  # refused before evaluation (it took 22 s and 1.9 GiB)


def test_a_size_taken_from_a_column_is_refused(table: hybrid.Table) -> None:
    with pytest.raises(LimitError, match="must be a literal integer"):
        table.count_rows("length(repeat(s, id)) > 0")
    with pytest.raises(LimitError, match="at most 16 times"):  # a column's value may be megabytes long
        table.count_rows("length(repeat(s, 65536)) > 0")
    assert table.count_rows("length(repeat(s, 3)) > 10") == 2_000


def test_small_growth_is_allowed_and_does_not_vouch_for_a_large_one(table: hybrid.Table) -> None:
    assert table.count_rows("length(repeat('a', 100)) = 100") == 2_000
    assert table.count_rows("len(range(10)) = 10 AND id < 5") == 5
    with pytest.raises(LimitError):  # the same shape with a larger literal is checked again
        table.count_rows("length(repeat('a', 100000000)) = 100")


def test_a_filter_running_past_the_time_limit_is_stopped(tmp_path: Path, limits: None) -> None:
    t = hybrid.connect(tmp_path, upkeep=None).create_table("big", [{"s": f"r{i}"} for i in range(300_000)])
    slow = "md5(md5(md5(md5(s) || s) || s) || s) > 'f'"
    set_limits(Limits(seconds=0.05))
    started = time.perf_counter()
    with pytest.raises(LimitError, match="longer than the limit of 0.05 s"):
        t.count_rows(slow)
    assert time.perf_counter() - started < 5
    set_limits(Limits())
    assert 0 < t.count_rows(slow) < 300_000  # the same filter runs whole under the default limit


def test_sql_is_bounded_in_time_and_memory(table: hybrid.Table) -> None:
    db = hybrid.connect(table.path.parent)
    with pytest.raises(LimitError, match="longer than the limit"):
        db.sql("SELECT count(*) FROM t a, t b, t c", limits=Limits(seconds=0.2))
    with pytest.raises(LimitError, match="memory limit of 16MB"):
        db.sql("SELECT a.s || b.s AS x FROM t a, t b ORDER BY x", limits=Limits(memory="16MB"))
    assert db.sql("SELECT count(*) AS n FROM t").column("n")[0].as_py() == 2_000


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        Limits(seconds=0)
    with pytest.raises(ValueError):
        Limits(max_growth=0)


def test_server_maps_limit_and_corruption_errors() -> None:
    from hybrid.server.errors import from_library

    limit = from_library(LimitError("too big"))
    broken = from_library(CorruptionError("data/x.arrow is damaged", "data/x.arrow"))
    assert limit is not None and (limit.status, limit.type) == (422, "LimitError")
    assert broken is not None and (broken.status, broken.type) == (500, "CorruptionError")
