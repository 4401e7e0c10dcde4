"""Group commit: concurrent appends share versions, each answered once durable, errors kept per request."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

import hybrid
from hybrid.commits import Commit
from hybrid.server import create_app
from hybrid.server.config import ConfigError
from hybrid.server.group_commit import Appended, GroupCommit
from hybrid.server.tables import Tables
from tests.server.conftest import WRITER, docs_rows, make_config, make_table, running

THREADS = 12


def _table(path: Path) -> Tables:
    db = hybrid.connect(path)
    db.create_table("docs", docs_rows(range(20)))
    db.create_table("other", [{"id": 0, "label": "x"}])
    tables = Tables(path)
    tables.group = GroupCommit(tables.commit_appends, window_s=0.05)
    return tables


def _together(count: int, work: Any) -> list[Any]:
    """Run `work(i)` for i < count on as many threads, released at once; results (or errors) by i."""
    barrier = threading.Barrier(count)
    out: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_appends_commit_together_and_every_row_once(tmp_path: Path) -> None:
    tables = _table(tmp_path)
    first = 1_000
    outcomes = _together(
        THREADS,
        lambda i: tables.group.append(
            "docs", tables.prepare_append("docs", docs_rows(range(first + 3 * i, first + 3 * i + 3)))
        ),
    )
    assert all(isinstance(o, Appended) and o.commit.inserted == 3 for o in outcomes), outcomes
    versions = Counter(o.commit.version for o in outcomes)
    assert len(versions) < THREADS  # some requests shared a version
    assert max(o.batch for o in outcomes) > 1
    table = hybrid.connect(tmp_path).open_table("docs")
    ids = table.to_arrow(["id"]).column("id").to_pylist()
    assert sorted(ids) == list(range(20)) + list(range(first, first + 3 * THREADS))
    for o, i in zip(outcomes, range(THREADS)):  # each request's rows are in the version it was answered with
        at = table.checkout(o.commit.version).to_arrow(["id"], where=f"id >= {first + 3 * i}").column("id")
        assert {first + 3 * i, first + 3 * i + 2} <= set(at.to_pylist())
        assert o.before is not None and o.before < o.commit.version


def test_a_request_that_cannot_commit_fails_alone(tmp_path: Path) -> None:
    tables = _table(tmp_path)
    bad = tables.prepare_append("other", [{"id": 1, "label": "y"}])  # another table's columns: refused at commit
    parts = [tables.prepare_append("docs", docs_rows(range(2_000 + i, 2_001 + i))) for i in range(1, 6)]
    futures = [tables.group.submit("docs", p) for p in [parts[0], parts[1], bad, *parts[2:]]]  # within one window
    with pytest.raises(hybrid.SchemaError, match="not in the table"):
        futures[2].result()
    good = [f.result() for i, f in enumerate(futures) if i != 2]
    assert all(o.commit.inserted == 1 and o.batch == 1 for o in good)  # the batch failed, so each went alone
    ids = hybrid.connect(tmp_path).open_table("docs").to_arrow(["id"], where="id >= 2000").column("id").to_pylist()
    assert sorted(ids) == list(range(2_001, 2_006))
    again = [tables.group.submit("docs", p) for p in parts[:3]]  # a batch without it commits as one version
    assert len({f.result().commit.version for f in again}) == 1 and again[0].result().batch == 3


def test_bad_rows_are_refused_before_they_join_a_batch(tmp_path: Path) -> None:
    tables = _table(tmp_path)
    with pytest.raises(hybrid.SchemaError, match="not in the table"):
        tables.prepare_append("docs", [{"id": 1, "nope": 2}])
    with pytest.raises(hybrid.TableNotFoundError):
        tables.prepare_append("missing", [{"id": 1}])
    prepared = tables.prepare_append("docs", [{"id": 5, "text": "t", "topic": "x", "year": "2001"}])
    assert prepared.schema == tables.read("docs").schema  # conformed (the year cast) before committing
    assert prepared.column("year").to_pylist() == [2001]


def test_group_commit_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="window_s"):
        GroupCommit(lambda name, parts: (None, Commit(0, "append")), window_s=-1)
    with pytest.raises(ConfigError, match="group_commit_ms"):
        make_config(group_commit_ms=-1)
    with pytest.raises(ConfigError, match="group_commit_requests"):
        make_config(group_commit_requests=0)


def test_server_appends_share_versions_and_a_bad_request_fails_alone(tmp_path: Path) -> None:
    db_path = tmp_path / "db"
    with running(create_app(db_path, make_config(group_commit_ms=50.0)), db_path) as server:
        with server.client() as admin:
            make_table(admin, "gc", n=20)

        def post(i: int) -> httpx.Response:
            rows = (
                [{"id": 5_000, "text": "bad", "no_such_column": 1}]
                if i == 0
                else docs_rows(range(5_000 + i, 5_001 + i))
            )
            with server.client(WRITER) as client:
                return client.post("/v1/tables/gc/rows", json={"rows": rows})

        answers = _together(THREADS, post)
        assert answers[0].status_code == 400, answers[0].text
        assert answers[0].json()["error"]["type"] == "SchemaError"
        good = [a.json() for a in answers[1:]]
        assert all(a.status_code == 200 for a in answers[1:]), [a.text for a in answers]
        assert all(g["inserted"] == 1 and g["operation"] == "append" for g in good)
        assert len({g["version"] for g in good}) < len(good)  # batched
        table = hybrid.connect(db_path).open_table("gc")
        for i, g in enumerate(good, start=1):  # durable and in the version named in the answer
            assert table.checkout(g["version"]).count_rows(f"id = {5_000 + i}") == 1
        assert table.count_rows("id >= 5000") == THREADS - 1
        with server.client() as admin:
            hits = admin.post("/v1/tables/gc/search", json={"query": "document 5003", "limit": 3}).json()["results"]
        assert 5_003 in [h["id"] for h in hits]


def test_group_commit_off_commits_each_append_alone(tmp_path: Path) -> None:
    db_path = tmp_path / "db"
    with running(create_app(db_path, make_config(group_commit=False)), db_path) as server:
        with server.client() as admin:
            make_table(admin, "gc", n=20, indexes=False)

        def post(i: int) -> httpx.Response:
            with server.client(WRITER) as client:
                return client.post("/v1/tables/gc/rows", json={"rows": docs_rows(range(6_000 + i, 6_001 + i))})

        answers = _together(6, post)
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert len({a.json()["version"] for a in answers}) == 6
        assert hybrid.connect(db_path).open_table("gc").count_rows("id >= 6000") == 6
    with pytest.raises(ConfigError, match="group_commit must be"):
        make_config(group_commit="yes")


def test_sigkill_during_group_commits_loses_no_acknowledged_row(tmp_path: Path) -> None:
    """Appends answered before the server is killed are all there, once; the table checks clean."""
    from tests.server.test_workers import serving

    db = tmp_path / "db"
    acknowledged: list[int] = []
    stop = threading.Event()
    lock = threading.Lock()
    with serving(db, 1) as server:
        with server.client() as admin:
            make_table(admin, "kill", n=20)

        def writer(k: int) -> None:
            next_id = 10_000 * (k + 1)
            with server.client(timeout=10) as client:
                while not stop.is_set():
                    rows = docs_rows(range(next_id, next_id + 2))
                    try:
                        r = client.post("/v1/tables/kill/rows", json={"rows": rows})
                    except httpx.TransportError:
                        return
                    if r.status_code == 200:
                        with lock:
                            acknowledged.extend([next_id, next_id + 1])
                    next_id += 2

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 60:
            assert time.monotonic() < deadline, "the appends did not get going"
            time.sleep(0.05)
        server.proc.kill()  # SIGKILL: no shutdown, commits cut wherever they are
        server.proc.wait()
        stop.set()
        for t in threads:
            t.join()
    table = hybrid.connect(db).open_table("kill")
    ids = table.to_arrow(["id"], where="id >= 10000").column("id").to_pylist()
    assert len(ids) == len(set(ids))
    assert set(acknowledged) <= set(ids)  # rows written but unanswered may be there too
    report = table.check(all_versions=True)
    assert report.ok, report
    for v in table.versions():
        assert table.checkout(v.version).count_rows() >= 20
