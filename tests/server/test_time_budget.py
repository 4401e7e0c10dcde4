"""A search's whole time budget (503), cost admission per key (429), query-term bounds and the low-priority lane."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import hybrid
from hybrid.server import create_app
from hybrid.server.admission import Lane, search_cost, where_weight
from hybrid.server.config import ConfigError
from hybrid.server.models import SearchRequest

from .conftest import MAX_LIMIT, READER, WRITER, Live, make_config, running

SLOW = "levenshtein(text || text, upper(text)) >= 0"  # quadratic in the text's length: seconds over this table
WORDS = ["heart", "attack", "risk", "blood", "pressure", "study", "cells", "gene"]


def _build(db_path: Path) -> None:
    rows = [{"id": i, "text": " ".join(WORDS[(i + j) % 8] for j in range(60)) + f" doc{i}"} for i in range(6_000)]
    table = hybrid.connect(db_path, upkeep=None).create_table("docs", rows)
    table.create_fts_index(["text"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    db_path = tmp_path_factory.mktemp("budget") / "db"
    _build(db_path)
    config = make_config(
        request_seconds=0.8, sql_seconds=30.0, max_cost_per_key=4.0, low_priority_cost=4.0, max_query_terms=40
    )
    with running(create_app(db_path, config), db_path) as live:
        yield live


def test_a_search_over_its_budget_is_stopped_with_503_and_the_worker_is_free_again(served: Live) -> None:
    with served.client(READER) as c:
        started = time.monotonic()
        r = c.post("/v1/tables/docs/search", json={"query": "heart", "where": SLOW, "limit": 5})
        took = time.monotonic() - started
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["type"] == "TimeBudgetError" and "time budget of 0.8 s" in error["message"]
        assert r.headers["retry-after"] == "1"
        assert took < 4, took  # stopped at the budget (the filter alone may run 30 s)
        held = float(r.headers["server-timing"].split("dur=")[1])  # ms from the request's arrival to its answer
        assert 700 < held < 4000, held
        cpu = time.process_time()  # the server runs in this process: nothing may keep computing
        time.sleep(1.0)
        assert time.process_time() - cpu < 0.5
        started = time.monotonic()
        ok = c.post("/v1/tables/docs/search", json={"query": "heart attack", "limit": 5})
        assert ok.status_code == 200 and ok.json()["count"] == 5
        assert time.monotonic() - started < 2


def test_an_expensive_key_is_throttled_while_a_normal_key_is_served(served: Live) -> None:
    where = f"{SLOW} AND md5(text) <> md5(lower(text))"
    heavy = {"query": " ".join(WORDS * 5), "where": where, "limit": MAX_LIMIT}
    assert search_cost(SearchRequest(**heavy)) > 4  # over the per-key cost budget alone: runs on the lane
    heavy_answers: list[tuple[int, str | None]] = []
    normal_answers: list[int] = []
    stop = threading.Event()

    def attack() -> None:
        with served.client(WRITER) as c:
            while not stop.is_set():
                r = c.post("/v1/tables/docs/search", json=heavy)
                heavy_answers.append((r.status_code, r.headers.get("retry-after")))

    def normal(i: int) -> None:
        with served.client(READER) as c:
            for _ in range(6):
                r = c.post("/v1/tables/docs/search", json={"query": WORDS[i % 8], "where": f"id > {i}", "limit": 5})
                normal_answers.append(r.status_code)

    with ThreadPoolExecutor(7) as pool:
        attackers = [pool.submit(attack) for _ in range(3)]
        time.sleep(0.3)
        list(pool.map(normal, range(4)))
        stop.set()
        for a in attackers:
            a.result()
    codes = [code for code, _ in heavy_answers]
    assert normal_answers == [200] * 24  # never refused nor stopped
    assert codes.count(429) >= 1 and set(codes) <= {429, 503}, codes  # one at a time, each stopped at its budget
    assert all(after == "1" for _, after in heavy_answers)


def test_too_many_query_terms_are_refused_before_any_work(served: Live) -> None:
    with served.client(READER) as c:
        r = c.post("/v1/tables/docs/search", json={"query": " ".join(["heart"] * 41), "limit": 5})
        assert r.status_code == 422 and "41 terms" in r.json()["error"]["message"]
        assert c.post("/v1/tables/docs/search", json={"query": " ".join(["heart"] * 40)}).status_code == 200


def test_search_cost_grows_with_what_makes_a_search_expensive() -> None:
    plain = SearchRequest(query="heart attack", where="year >= 2000 AND topic IN ('a', 'b')")
    assert search_cost(plain) == 1.0
    assert search_cost(SearchRequest(query="heart", limit=1000)) == 10.0
    assert search_cost(SearchRequest(query=" ".join(["w"] * 256))) == 8.0
    assert where_weight("md5(md5(text)) > 'f' OR regexp_matches(text, 'a.*b')") == 4.75
    assert search_cost(SearchRequest(query="x", rerank={"name": "mmr"})) == 4.0


def test_the_lane_runs_at_a_lower_priority_and_settings_are_checked() -> None:
    if not hasattr(os, "getpriority") or not hasattr(threading, "get_native_id"):
        pytest.skip("per-thread priorities are Linux only")
    import asyncio

    lane = Lane(1, 5)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    try:
        theirs = asyncio.run(lane.run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), 10))
    finally:
        lane.shutdown()
    assert theirs == min(19, mine + 5)
    with pytest.raises(ConfigError, match="low_priority_nice"):
        make_config(low_priority_nice=20)
    with pytest.raises(ConfigError, match="request_seconds"):
        make_config(request_seconds=0)
