#!/usr/bin/env python
"""Row-level security: what a row scope adds to hybrid search p50.

A table of ``--rows`` rows (default 100,000) shared by ``--tenants`` tenants (default 100;
``tenant_id`` = ``t000`` ... ``t099``, round robin), with a text column (words drawn from a
Zipf-like vocabulary), a ``--dim``-d random unit vector, a full-text index, an HNSW index and a
scalar index on ``tenant_id``. Each query is a hybrid search (text + vector, top 10) run twice,
interleaved in random order: once on the table (unscoped), once on the table with the scope as
an ordinary ``where`` (the library's filtered search), once through
``db.scoped(where="tenant_id = '<tenant>'")`` for a tenant drawn at random per query (so the
scope's row set is not always a cached one). Reported: p50 / p90 per side and the ratio
scoped / unscoped of the p50s (target <= 1.10).

The scalar index is built before the full-text index, which then stores ``tenant_id`` as a
filter field (``create_fts_index(filter_columns=...)`` defaults to the scalar-indexed columns), so
the scope runs inside tantivy. Phases: ``index`` (the scalar index answers the scope's row set),
``no-index`` (the scalar index dropped: DuckDB evaluates the scope over the column for each new
tenant; the full-text index keeps its filter field), and ``server`` (``--server-queries``
requests through the HTTP API on loopback: a key with a row-scoped grant vs an unscoped key,
the scalar index rebuilt).

Results go to ``eval/results/rls.json`` and ``.md``::

    nice -n 10 python eval/rls_cost.py [--rows 100000] [--tenants 100] [--queries 400]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.frame import (  # noqa: E402
    add_output_args,
    grid,
    log,
    machine_info,
    md_intro,
    md_load,
    md_machine,
    md_targets,
    pct,
    print_outcome,
    run_and_report,
    scratch_dir,
)

import hybrid  # noqa: E402

TARGET = 1.10


def make_rows(n: int, tenants: int, dim: int, rng: np.random.Generator) -> Any:
    import pyarrow as pa

    vocab = [f"w{i}" for i in range(5_000)]
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    words = rng.choice(len(vocab), size=(n, 24), p=weights)
    texts = [" ".join(vocab[j] for j in row) for row in words]
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    flat = pa.array(vectors.reshape(-1), pa.float32())
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "tenant_id": pa.array([f"t{i % tenants:03d}" for i in range(n)]),
            "year": pa.array((2000 + np.arange(n) % 25).astype(np.int64)),
            "text": texts,
            "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    ), vocab


def queries(n: int, vocab: list[str], dim: int, tenants: int, rng: np.random.Generator) -> list[tuple]:
    out = []
    for _ in range(n):
        text = " ".join(vocab[int(j)] for j in rng.integers(0, 400, size=3))
        v = rng.standard_normal(dim).astype(np.float32)
        out.append((text, v / np.linalg.norm(v), f"t{int(rng.integers(tenants)):03d}"))
    return out


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def phase(db: hybrid.Database, table: hybrid.Table, qs: list[tuple], seed: int) -> dict[str, Any]:
    """Interleave unscoped and scoped hybrid searches (random order per query); ms per query."""
    order = random.Random(seed)
    plain: list[float] = []
    scoped: list[float] = []
    filtered: list[float] = []
    rows_seen: list[int] = []
    for text, vector, tenant in qs:
        view = db.scoped(where=f"tenant_id = '{tenant}'").open_table(table.name)

        def unscoped_search(text: str = text, vector: Any = vector) -> None:
            table.search(text).vector(vector).limit(10).to_arrow()

        def filtered_search(text: str = text, vector: Any = vector, tenant: str = tenant) -> None:
            table.search(text).vector(vector).where(f"tenant_id = '{tenant}'").limit(10).to_arrow()

        def scoped_search(text: str = text, vector: Any = vector, view: Any = view, tenant: str = tenant) -> None:
            hits = view.search(text).vector(vector).limit(10).to_arrow()
            assert set(hits["tenant_id"].to_pylist()) <= {tenant}
            rows_seen.append(hits.num_rows)

        sides = [(plain, unscoped_search), (scoped, scoped_search), (filtered, filtered_search)]
        order.shuffle(sides)
        for times, fn in sides:
            times.append(timed(fn))
    out = summary(plain, scoped, rows_seen)
    p50_filtered = pct(filtered, 50)
    out["filtered_p50_ms"] = p50_filtered
    out["scoped_vs_filtered_p50"] = out["scoped_p50_ms"] / p50_filtered if p50_filtered else None
    out["loadavg_1min"] = os.getloadavg()[0]
    out["_raw"] = (plain, scoped, filtered, rows_seen)
    return out


def repeated(db: hybrid.Database, table: hybrid.Table, qs: list[tuple], seed: int, repeats: int) -> dict[str, Any]:
    """`phase` `repeats` times (new random orders); the summary pools every repeat's timings, and
    `repeats` keeps each one's p50s, ratio and the 1-minute load average after it."""
    runs = [phase(db, table, qs, seed + 10 * r) for r in range(repeats)]
    raws = [run.pop("_raw") for run in runs]
    plain = [x for raw in raws for x in raw[0]]
    scoped = [x for raw in raws for x in raw[1]]
    filtered = [x for raw in raws for x in raw[2]]
    out = summary(plain, scoped, [x for raw in raws for x in raw[3]])
    out["filtered_p50_ms"] = pct(filtered, 50)
    out["scoped_vs_filtered_p50"] = out["scoped_p50_ms"] / out["filtered_p50_ms"]
    out["repeats"] = runs
    out["median_repeat_ratio"] = float(np.median([r["ratio_p50"] for r in runs]))
    return out


def summary(plain: list[float], scoped: list[float], rows_seen: list[int]) -> dict[str, Any]:
    p50_plain, p50_scoped = pct(plain, 50), pct(scoped, 50)
    return {
        "queries": len(plain),
        "unscoped_p50_ms": p50_plain,
        "unscoped_p90_ms": pct(plain, 90),
        "scoped_p50_ms": p50_scoped,
        "scoped_p90_ms": pct(scoped, 90),
        "ratio_p50": (p50_scoped / p50_plain) if p50_plain and p50_scoped else None,
        "scoped_mean_hits": float(np.mean(rows_seen)) if rows_seen else None,
    }


def server_phase(db_path: Path, name: str, qs: list[tuple], seed: int) -> dict[str, Any]:
    """The same comparison through the HTTP API: an unscoped read key vs a row-scoped grant per tenant."""
    import httpx
    import uvicorn

    from hybrid.server import ApiKey, ServerConfig, create_app
    from hybrid.server.config import Grant

    plain_key = "plain-read-key-0123456789abcdef"
    tenants = sorted({t for _, _, t in qs})
    keys = [ApiKey.from_secret(plain_key, "read", "plain")]
    secrets = {t: f"tenant-key-{t}-0123456789abcdef" for t in tenants}
    for t, secret in secrets.items():
        grant = Grant(("*",), "read", f"tenant_id = '{t}'")
        keys.append(replace(ApiKey.from_secret(secret, "read", t), grants=(grant,)))
    app = create_app(db_path, ServerConfig(api_keys=tuple(keys), audit_log=""))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    order = random.Random(seed)
    plain: list[float] = []
    scoped: list[float] = []
    seen: list[int] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=60) as client:
            for text, vector, tenant in qs:
                body = {"query": text, "vector": [float(x) for x in vector], "limit": 10, "select": ["id", "tenant_id"]}
                pair = [("plain", plain_key), ("scoped", secrets[tenant])]
                order.shuffle(pair)
                for side, key in pair:
                    start = time.perf_counter()
                    r = client.post(f"/v1/tables/{name}/search", json=body, headers={"X-API-Key": key})
                    ms = (time.perf_counter() - start) * 1e3
                    r.raise_for_status()
                    if side == "plain":
                        plain.append(ms)
                    else:
                        scoped.append(ms)
                        got = r.json()["results"]
                        assert {x["tenant_id"] for x in got} <= {tenant}
                        seen.append(len(got))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    return summary(plain, scoped, seen)


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    res: dict[str, Any] = {}
    with scratch_dir(args, "hybrid-rls-") as root:
        db = hybrid.connect(root / "db", upkeep=None)
        data, vocab = make_rows(args.rows, args.tenants, args.dim, rng)
        start = time.perf_counter()
        table = db.create_table("shared", data)
        table.create_scalar_index("tenant_id")  # first: the FTS index then stores tenant_id as a filter field
        table.create_fts_index(["text"])
        table.create_vector_index("vector")
        res["build_seconds"] = time.perf_counter() - start
        log(f"built {args.rows} rows in {res['build_seconds']:.1f}s")
        qs = queries(args.queries + args.warmup, vocab, args.dim, args.tenants, rng)
        phase(db, table, qs[: args.warmup], args.seed)  # warm caches, both sides
        res["index"] = repeated(db, table, qs[args.warmup :], args.seed + 1, args.repeats)
        log(f"index: {res['index']}")
        table.drop_index("scalar:tenant_id")
        res["no_index"] = repeated(db, table, qs[args.warmup :], args.seed + 2, args.repeats)
        log(f"no index: {res['no_index']}")
        if args.server_queries:
            table.create_scalar_index("tenant_id")
            sq = qs[args.warmup : args.warmup + args.server_queries]
            server_phase(root / "db", "shared", qs[: min(args.warmup, 20)], args.seed)
            res["server"] = server_phase(root / "db", "shared", sq, args.seed + 3)
            res["server"]["loadavg_1min"] = os.getloadavg()[0]
            log(f"server: {res['server']}")
    return res


def targets(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for key, label in (("index", "in-process, scalar index on tenant_id"), ("server", "HTTP API, scalar index")):
        r = res.get(key)
        if not r or r["ratio_p50"] is None:
            continue
        ok = r["ratio_p50"] <= TARGET
        figures = f"{r['scoped_p50_ms']:.2f} / {r['unscoped_p50_ms']:.2f} ms = {r['ratio_p50']:.3f}x"
        out.append((f"row scope adds <= 10% to hybrid search p50 ({label})", "met" if ok else "not met", figures))
    return out


def repeats_table(res: dict[str, Any]) -> str:
    rows = [["phase", "repeat", "unscoped p50", "scoped p50", "ratio p50", "load avg (1 min) after"]]
    for key, label in (("index", "in-process, scalar index"), ("no_index", "in-process, no scalar index")):
        for i, r in enumerate(res.get(key, {}).get("repeats", [])):
            rows.append(
                [
                    label,
                    str(i + 1),
                    f"{r['unscoped_p50_ms']:.2f} ms",
                    f"{r['scoped_p50_ms']:.2f} ms",
                    f"{r['ratio_p50']:.3f}x",
                    f"{r['loadavg_1min']:.2f}",
                ]
            )
    return grid(rows, labels=2)


def layer_table(res: dict[str, Any]) -> str:
    rows = [["phase", "table + the same where, p50", "scoped view, p50", "scoped / where"]]
    for key, label in (("index", "in-process, scalar index"), ("no_index", "in-process, no scalar index")):
        r = res.get(key)
        if r and r.get("filtered_p50_ms"):
            rows.append(
                [
                    label,
                    f"{r['filtered_p50_ms']:.2f} ms",
                    f"{r['scoped_p50_ms']:.2f} ms",
                    f"{r['scoped_vs_filtered_p50']:.3f}x",
                ]
            )
    return grid(rows, labels=1)


def tables(res: dict[str, Any]) -> list[str]:
    rows = [["phase", "queries", "unscoped p50", "scoped p50", "ratio p50", "unscoped p90", "scoped p90", "hits"]]
    for key, label in (
        ("index", "in-process, scalar index"),
        ("no_index", "in-process, no scalar index"),
        ("server", "HTTP API, scalar index"),
    ):
        r = res.get(key)
        if r:
            rows.append(
                [
                    label,
                    str(r["queries"]),
                    f"{r['unscoped_p50_ms']:.2f} ms",
                    f"{r['scoped_p50_ms']:.2f} ms",
                    f"{r['ratio_p50']:.3f}x",
                    f"{r['unscoped_p90_ms']:.2f} ms",
                    f"{r['scoped_p90_ms']:.2f} ms",
                    f"{r['scoped_mean_hits']:.1f}",
                ]
            )
    return [grid(rows, labels=1), layer_table(res), repeats_table(res)]


def render_md(res: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = md_intro("Row-level security: the cost of a row scope on hybrid search", "eval/rls_cost.py", meta)
    per_tenant = meta["args"]["rows"] // meta["args"]["tenants"]
    gathered = meta["args"]["rows"] * meta["args"]["dim"] * 4
    lines += md_machine(meta)
    lines += [
        "The machine was shared with other jobs while this ran: compare the two sides of one phase "
        "(interleaved query by query, in random order), not absolute times across runs. " + md_load(meta) + ".\n",
        f"{meta['args']['rows']:,} rows, {meta['args']['tenants']} tenants "
        f"(round robin: each holds 1/{meta['args']['tenants']} of the rows), "
        f"{meta['args']['dim']}-d vectors, FTS + HNSW indexes; hybrid search (text + vector, top 10). "
        "`scoped`: the same query through `db.scoped(where=\"tenant_id = '<t>'\")` for a random tenant "
        "per query (or, for the HTTP API, with that tenant's row-scoped key against an unscoped read key). "
        f"Index build: {res['build_seconds']:.0f} s.\n",
        "## Results\n",
        tables(res)[0],
        "",
        "`hits`: mean rows a scoped search returned (every one checked to be the tenant's). The scalar "
        "index on `tenant_id` was built before the full-text index, so the full-text index stores "
        "`tenant_id` as a filter field and the scope runs inside tantivy; the vector branch searches the "
        "tenant's 1% of rows exactly. The rows a filter allows are cached per (version, filter) in a "
        "least-recently-used cache bounded by bytes (64 MiB, `hybrid/query/allowed.py`), each set with "
        "its rows' vectors gathered into one matrix (up to 8 MiB a set) at its first search: "
        f"{meta['args']['tenants']} tenants x {per_tenant:,} rows x {meta['args']['dim']}-d float32 vectors "
        f"({gathered / 1e6:.0f} MB) {'fit' if gathered <= 64 * 2**20 else 'do not all fit (a random tenant may miss)'}"
        ". Without the scalar index DuckDB scans the column for each tenant's first row set of a version.\n",
        f"In-process phases ran {meta['args']['repeats']} times each (new random orders); the table above pools "
        "their timings, the one below gives each repeat.\n",
        tables(res)[2],
        "",
        "## The scoping layer against the library's own filter\n",
        "The same interleaving also ran the unscoped table with the scope written as an ordinary "
        "`.where(\"tenant_id = '<t>'\")`: the scoped view's extra work (joining the parse trees, checking "
        "columns) is the difference between these two; the rest of a scoped search's cost over an "
        "unscoped one is what any filtered hybrid search costs.\n",
        tables(res)[1],
        "",
    ]
    lines += md_targets(targets(res))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=400, help="timed queries per phase (each run both ways)")
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3, help="in-process phases run this often (pooled)")
    ap.add_argument("--server-queries", type=int, default=200, help="queries through the HTTP API (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    add_output_args(ap, "rls")
    args = ap.parse_args(argv)
    res, rd = run_and_report(
        args,
        argv,
        run,
        machine_info=lambda: machine_info(("numpy", "pyarrow", "duckdb", "tantivy", "hnswlib")),
        targets=targets,
        render_md=render_md,
        tables=tables,
    )
    print_outcome(res, rd, args.name)


if __name__ == "__main__":
    main()
