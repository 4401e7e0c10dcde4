"""Searches in parallel with writes: every request succeeds and sees one whole version."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx

from tests.server.conftest import Live, docs_rows, make_table

TABLE = "conc_docs"
SECONDS = 3.0


def test_parallel_searches_during_writes(live: Live) -> None:
    with live.client() as client:
        make_table(client, TABLE, n=200)
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()
    pairs = [0]  # acknowledged (add 5, delete 1) pairs; the server's upkeep commits versions of its own

    def reader(i: int) -> None:
        with live.client() as client:
            seen = 0
            while not stop.is_set():
                body = {"query": ["cats", "dogs rivers", "fish"][i % 3], "where": "year >= 2005", "limit": 5}
                r = client.post(f"/v1/tables/{TABLE}/search", json=body)
                with lock:
                    statuses[r.status_code] += 1
                if r.status_code != 200:
                    problems.append(r.text)
                    continue
                out = r.json()
                if out["version"] < seen or not all(h["year"] >= 2005 for h in out["results"]):
                    problems.append(f"version went back or the filter leaked: {out}")
                seen = out["version"]

    def writer() -> None:
        with live.client() as client:
            next_id = 1_000
            while not stop.is_set():
                r = client.post(f"/v1/tables/{TABLE}/rows", json={"rows": docs_rows(range(next_id, next_id + 5))})
                d = client.post(f"/v1/tables/{TABLE}/rows/delete", json={"where": f"id = {next_id}"})
                with lock:
                    statuses[r.status_code] += 1
                    statuses[d.status_code] += 1
                if r.status_code != 200 or d.status_code != 200:
                    problems.append(r.text + d.text)
                else:
                    pairs[0] += 1
                next_id += 5

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not problems, problems[:3]
    assert set(statuses) == {200} and statuses[200] > 20
    with httpx.Client(base_url=live.url, headers={"X-API-Key": "admin-key-0123456789abcdef"}) as client:
        info = client.get(f"/v1/tables/{TABLE}").json()
    assert info["num_rows"] == 200 + 4 * pairs[0]
