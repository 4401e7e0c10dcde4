#!/usr/bin/env python
"""Object storage benchmark: one table in a local folder and in S3 (moto's server over loopback), side by side.

For each store: open (connect + the newest manifest), take(100) of random rows, and text, vector
and hybrid search, each *cold* (a new connection with an empty cache folder: the first query pays
for fetching the index folders) and *warm* (p50 of the following queries), with the number of
requests each operation sent to the store. The table has `--rows` rows (default 20,000) of
synthetic text (~60 words from a 5,000-word Zipf vocabulary) and explicit random 64-d vectors, so
building it costs no model; it gets a full-text and a vector (HNSW) index.

moto runs as its own process (``python -m moto.server``) on 127.0.0.1, so the client's requests
cross a real loopback socket; what a real S3 adds is its round-trip time (~10-30 ms within a
region) per request, which is why the request counts are reported.

    python eval/object_store.py [--rows N] [--queries N] [--results-dir DIR]
    python eval/object_store.py --local-only   # only the local folder (before/after figures of a change)

Writes ``object_store.md`` and ``object_store.json`` under ``eval/results`` (or `--results-dir`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

_FROM = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--hybrid-from=")), None)
sys.path.insert(0, _FROM or str(Path(__file__).resolve().parent.parent))  # `hybrid` from this checkout (or another)

import hybrid  # noqa: E402

DIM = 64
KINDS = ("text", "vector", "hybrid")


def corpus(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(5_000)])
    ranks = np.arange(1, len(vocab) + 1)
    p = (1 / ranks) / (1 / ranks).sum()
    words = rng.choice(vocab, size=(rows, 60), p=p)
    vectors = rng.standard_normal((rows, DIM)).astype(np.float32)
    return pa.table(
        {
            "id": np.arange(rows),
            "text": [" ".join(w) for w in words],
            "category": rng.integers(0, 100, rows),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
        }
    )


def queries(n: int, seed: int = 1) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (f"w{rng.integers(5, 400)} w{rng.integers(5, 2000)}", rng.standard_normal(DIM).astype(np.float32))
        for _ in range(n)
    ]


def search(table: hybrid.Table, kind: str, q: tuple[str, np.ndarray]) -> list[int]:
    if kind == "text":
        query = table.search(q[0], query_type="fts")
    elif kind == "vector":
        query = table.search(q[1], query_type="vector")
    else:
        query = table.search(query_type="hybrid").text(q[0]).vector(q[1])
    return query.limit(10).to_arrow()["id"].to_pylist()


class Moto:
    """moto's S3 server in a process of its own on a free loopback port."""

    def __enter__(self) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/bench", method="PUT")).read()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Store:
    """How to connect to one store with a fresh (cold) or the same (warm) cache folder."""

    def __init__(self, name: str, uri: str, options: dict[str, Any] | None, scratch: Path) -> None:
        self.name, self.uri, self.options, self.scratch = name, uri, options, scratch
        self._n = 0

    def connect(self) -> hybrid.Database:
        if self.options is None:
            return hybrid.connect(self.uri, upkeep=None)
        self._n += 1  # a new cache folder: nothing of the table is local
        return hybrid.connect(
            self.uri, upkeep=None, storage_options={**self.options, "cache_dir": str(self.scratch / f"c{self._n}")}
        )


def requests(db: hybrid.Database) -> dict[str, int]:
    store = getattr(db, "store", None)  # a checkout before object storage has none
    return store.requests() if store is not None else {}


def delta(after: dict[str, int], before: dict[str, int]) -> int:
    return after.get("total", 0) - before.get("total", 0)


def measure(
    store: Store, qs: list[tuple[str, np.ndarray]], take_ids: list[list[int]], appends: int = 10
) -> dict[str, Any]:
    out: dict[str, Any] = {"store": store.name}
    # open: connect + the newest manifest
    t0 = time.perf_counter()
    db = store.connect()
    table = db.open_table("docs")
    _ = table.version
    out["open_ms"] = (time.perf_counter() - t0) * 1e3
    out["open_requests"] = requests(db).get("total", 0)
    # take(100): the first on a new connection, then the p50 of the others on it
    times, reqs = [], []
    for ids in take_ids:
        before = requests(db)
        t0 = time.perf_counter()
        got = table.take(ids)
        times.append((time.perf_counter() - t0) * 1e3)
        reqs.append(delta(requests(db), before))
        assert got.num_rows == len(ids)
    out["take_cold_ms"], out["take_cold_requests"] = times[0], reqs[0]
    out["take_warm_p50_ms"] = statistics.median(times[1:])
    out["take_warm_requests"] = statistics.median(reqs[1:])
    out["take_bytes_cold"] = 0
    # search: cold = the first query on a new connection (new cache folder); warm = p50 of the rest
    answers: dict[str, list[list[int]]] = {}
    for kind in KINDS:
        db = store.connect()
        table = db.open_table("docs")
        _ = table.version
        times, reqs, hits = [], [], []
        for q in qs:
            before = requests(db)
            t0 = time.perf_counter()
            hits.append(search(table, kind, q))
            times.append((time.perf_counter() - t0) * 1e3)
            reqs.append(delta(requests(db), before))
        answers[kind] = hits
        out[f"{kind}_cold_ms"], out[f"{kind}_cold_requests"] = times[0], reqs[0]
        out[f"{kind}_warm_p50_ms"] = statistics.median(times[1:])
        out[f"{kind}_warm_requests"] = statistics.median(reqs[1:])
    out["answers"] = answers
    # appends of 100 rows, each a commit (a new connection's table; the appended rows are extra)
    db = store.connect()
    table = db.open_table("docs")
    extra = corpus(100, seed=9)
    times, reqs = [], []
    for _ in range(appends):
        before = requests(db)
        t0 = time.perf_counter()
        table.add(extra)
        times.append((time.perf_counter() - t0) * 1e3)
        reqs.append(delta(requests(db), before))
    out["append_p50_ms"], out["append_requests"] = statistics.median(times), statistics.median(reqs)
    return out


def warm_up(folder: Path, q: tuple[str, np.ndarray]) -> None:
    """One search of each kind on a small table first: what a process pays once (imports, first calls into
    the libraries) is then not charged to whichever store is measured first."""
    table = hybrid.connect(folder, upkeep=None).create_table("docs", corpus(500, seed=7))
    table.create_fts_index("text")
    table.create_vector_index("vector", metric="l2")
    for kind in KINDS:
        search(table, kind, q)
    table.take(list(range(10)))


def build(db: hybrid.Database, data: pa.Table) -> float:
    t0 = time.perf_counter()
    table = db.create_table("docs", data)
    table.create_fts_index("text")
    table.create_vector_index("vector", metric="l2")
    return time.perf_counter() - t0


def render(report: dict[str, Any]) -> str:
    rows = report["results"]
    names = [r["store"] for r in rows]
    remote = [n for n in names if n != "local folder"]
    lines = [
        "# Object storage: a table in S3 (moto over loopback) beside a local folder",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Table: {report['rows']:,} rows (synthetic Zipf text of 60 words, explicit random {DIM}-d vectors), "
        f"a full-text and an HNSW vector index; {report['queries']} queries per kind; take(100) of random rows "
        f"{report['takes']} times. Machine: {report['machine']} — shared with other work while it ran, so "
        "compare the columns of one run, not absolute figures across runs. Before the timings, one search of each kind "
        "ran on a small table, so one-time costs of the process are not charged to the first store measured.",
        "",
        "*Cold*: the first operation on a new connection with an empty cache folder (it fetches the manifest, "
        "the index folders or the data it needs). *Warm*: the median of the following ones. Requests: how many "
        "the store was sent (each LIST, GET, ranged GET, PUT); every warm query still lists `_versions/` once "
        "to see new commits (a text search lists it twice), unless `read_consistency_interval` is set.",
        "",
        "| operation | " + " | ".join([f"{n} ms" for n in names] + [f"{n} requests" for n in remote]) + " |",
        "|---|" + "---:|" * (len(names) + len(remote)),
    ]
    ops = [("open", "open_ms", "open_requests"), ("take(100), cold", "take_cold_ms", "take_cold_requests")]
    ops += [("take(100), warm p50", "take_warm_p50_ms", "take_warm_requests")]
    for kind in KINDS:
        ops += [(f"{kind} search, cold", f"{kind}_cold_ms", f"{kind}_cold_requests")]
        ops += [(f"{kind} search, warm p50", f"{kind}_warm_p50_ms", f"{kind}_warm_requests")]
    for label, ms, req in ops:
        cells = [f"{r[ms]:.1f}" for r in rows]
        cells += [f"{r[req]:g}" for r in rows if r["store"] != "local folder"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = [f"{r['append_p50_ms']:.1f}" for r in rows]
    cells += [f"{r['append_requests']:g}" for r in rows if r["store"] != "local folder"]
    lines.append("| append 100 rows (a commit), p50 | " + " | ".join(cells) + " |")
    lines += ["", f"Build (create + both indexes): {report['build_s']}", ""]
    if report.get("hybrid_from"):
        lines += [f"`hybrid` imported from: {report['hybrid_from']}.", ""]
    same = report.get("same_answers")
    if same:
        lines.append(
            "Queries with the same top-10 ids from both stores: "
            + ", ".join(f"{k} {v}/{report['queries']}" for k, v in same.items())
            + " (each store's table is built on its own: hnswlib's multi-threaded build gives each a slightly "
            "different graph, so approximate vector results may differ; BM25 results must not)."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--takes", type=int, default=20)
    ap.add_argument("--local-only", action="store_true", help="only the local folder")
    ap.add_argument("--hybrid-from", help="import hybrid from this checkout instead (a before/after comparison)")
    ap.add_argument("--label", default="", help="suffix of the results files (e.g. before, after)")
    ap.add_argument("--results-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    data = corpus(args.rows)
    qs = queries(args.queries)
    rng = np.random.default_rng(2)
    take_ids = [sorted(rng.choice(args.rows, 100, replace=False).tolist()) for _ in range(args.takes)]
    report: dict[str, Any] = {
        "command": "python eval/object_store.py "
        + " ".join(
            "--hybrid-from=<checkout>" if a.startswith("--hybrid-from") else a
            for a in (argv if argv is not None else sys.argv[1:])
        ),
        "rows": args.rows,
        "queries": args.queries,
        "takes": args.takes,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "hybrid_from": "another checkout (--hybrid-from)" if args.hybrid_from else "",
    }
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        warm_up(scratch / "warm-up", qs[0])
        stores = [Store("local folder", str(scratch / "local"), None, scratch)]
        build_s = {"local folder": build(stores[0].connect(), data)}
        results = []
        if args.local_only:
            results.append(measure(stores[0], qs, take_ids))
        else:
            with Moto() as url:
                opts = {
                    "endpoint": url,
                    "access_key_id": "bench",
                    "secret_access_key": "bench",
                    "region": "us-east-1",
                    "allow_http": "true",
                }
                s3 = Store("S3 (moto)", "s3://bench/db", opts, scratch)
                stores.append(s3)
                build_s[s3.name] = build(s3.connect(), data)
                for store in stores:
                    results.append(measure(store, qs, take_ids))
    answers = [r.pop("answers") for r in results]
    if len(answers) > 1:  # per kind: queries whose top 10 ids are the same from every store
        report["same_answers"] = {
            kind: sum(all(a[kind][i] == answers[0][kind][i] for a in answers) for i in range(len(qs))) for kind in KINDS
        }
    report["build_s"] = ", ".join(f"{k} {v:.1f} s" for k, v in build_s.items())
    report["results"] = results
    md = render(report)
    print(md)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    name = ("object_store_local" if args.local_only else "object_store") + (f"_{args.label}" if args.label else "")
    (args.results_dir / f"{name}.md").write_text(md)
    (args.results_dir / f"{name}.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
