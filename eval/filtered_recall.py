"""Filtered vector recall and latency by selectivity and table size (the vector index only).

Builds (or reopens from ``--cache``) a table of N clustered 384-d unit vectors (the search
benchmark's generator, ``eval/bench/search_data.py``: 100 Gaussian clusters in 32-d subspaces)
with a ``category`` column (uniform 0..99) and a ``tenant`` column (uniform 0..999), and only a
vector index (HNSW, the defaults: M=16, ef_construction=200, ef_search=64). Each query (a table
vector plus noise) runs with a different filter value each time, as ``--filters varied`` does:

* 0.1%: ``tenant = c``; 1%: ``category = c``;
* 10% / 50%: ``category >= c AND category < c + 10`` (``+ 50``).

It reports, per N, ef_search and selectivity, recall@10 against exact search over the allowed rows,
p50 / p95 of ``t.search(v, query_type="vector").where(sql).limit(10)`` (after an untimed pass over the
same queries, so the allowed sets come from the filter cache, as in the search benchmark's later
passes), and the strategy the
planner chose (``explain()``). ``--depth-per-decade`` runs the same queries with each of several
values of ``hybrid.query.vector_plan.DEPTH_PER_DECADE`` in one process (0 is the rule before the walk
grew with the table: a walk of max(ef, fetch)), so rules are compared on one machine state.

Example::

    nice -n 10 python eval/filtered_recall.py --docs 100000,1000000 --ef 64,128 --depth-per-decade 0,1

Writes ``eval/results/<name>.md`` and ``.json``.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one query at a time on one core, like the search benchmark

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `bench` package next to this script
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # `hybrid` from this checkout

from bench.frame import write_results  # noqa: E402
from bench.search_data import DIM, Corpus  # noqa: E402

import hybrid  # noqa: E402
from hybrid.query import vector_plan  # noqa: E402

K = 10
SELECTIVITIES = (0.1, 1.0, 10.0, 50.0)  # percent of the rows a filter allows


def corpus_args(n: int, seed: int) -> argparse.Namespace:
    """The search benchmark's data defaults (``eval/bench_search.py``)."""
    return argparse.Namespace(
        docs=n, seed=seed, text_bytes=1500, vocab=30_000, zipf=1.0, clusters=100, latent_dim=32,
        cluster_spread=1.0, iso_noise=0.2, query_noise=0.5,
    )  # fmt: skip


def filter_of(pct: float, i: int) -> tuple[str, str, int, int]:
    """Query `i`'s filter at `pct` %: (sql, column, lo, hi) with the rows ``lo <= column < hi``."""
    if pct == 0.1:
        c = (i * 37) % 1000
        return f"tenant = {c}", "tenant", c, c + 1
    w = int(pct)
    c = (i * 37) % (101 - w)
    if w == 1:
        return f"category = {c}", "category", c, c + 1
    return f"category >= {c} AND category < {c + w}", "category", c, c + w


def build(path: Path, n: int, seed: int) -> tuple[hybrid.Table, float | None]:
    """The cached table at `path`, or a new one with its vector index (and the build's seconds)."""
    db = hybrid.connect(path)
    if "t" in db.table_names():
        t = db.open_table("t")
        if any(s["kind"] == "vector" for s in t.index_stats()):
            with_scalar_indexes(t)
            return t, None
        db.drop_table("t")
    corpus = Corpus(corpus_args(n, seed))
    rng = np.random.default_rng([seed, 3])
    vec, _ = corpus._vectors(rng, n)
    category = rng.integers(0, 100, size=n).astype(np.int32)
    tenant = rng.integers(0, 1000, size=n).astype(np.int32)
    t = None
    step = 250_000
    for s in range(0, n, step):
        part = pa.table(
            {
                "id": pa.array(np.arange(s, min(n, s + step), dtype=np.int64)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec[s : s + step].ravel()), DIM),
                "category": pa.array(category[s : s + step]),
                "tenant": pa.array(tenant[s : s + step]),
            }
        )
        if t is None:
            t = db.create_table("t", part)
        else:
            t.add(part)
    assert t is not None
    del vec
    start = time.perf_counter()
    t.create_vector_index("vector")
    built = time.perf_counter() - start
    with_scalar_indexes(t)
    return t, built


def with_scalar_indexes(t: hybrid.Table) -> None:
    """Scalar indexes on the filter columns (as the search benchmark has on ``category``), so that a new
    filter value costs an index lookup, not a DuckDB scan."""
    have = {tuple(s.get("columns", ())) for s in t.index_stats() if s["kind"] == "scalar"}
    for column in ("category", "tenant"):
        if (column,) not in have:
            t.create_scalar_index(column)


def columns(t: hybrid.Table) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The vectors (row order = id) and the filter columns."""
    a = t.to_arrow() if hasattr(t, "to_arrow") else t.snapshot().to_arrow()
    ids = a.column("id").to_numpy()
    order = np.argsort(ids)
    flat = a.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vec = flat.reshape(-1, DIM)[order]
    cols = {c: a.column(c).to_numpy()[order] for c in ("category", "tenant")}
    return vec, cols


def queries(vec: np.ndarray, nq: int, seed: int) -> np.ndarray:
    """`nq` table vectors plus noise of norm ~0.5, renormalised (as the search benchmark's queries)."""
    rng = np.random.default_rng([seed, 4])
    docs = rng.choice(len(vec), size=nq, replace=False)
    q = vec[docs] + rng.standard_normal((nq, DIM), dtype=np.float32) * (0.5 / np.sqrt(DIM))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def exact_truth(vec: np.ndarray, cols: dict[str, np.ndarray], q: np.ndarray) -> dict[float, np.ndarray]:
    """Per selectivity, the exact top-k ids among each query's allowed rows (cosine = dot, unit vectors)."""
    nq = len(q)
    best = {p: (np.full((nq, K), -np.inf, np.float32), np.zeros((nq, K), np.int64)) for p in SELECTIVITIES}
    bounds = {p: [filter_of(p, i)[1:] for i in range(nq)] for p in SELECTIVITIES}
    step = 50_000
    for s in range(0, len(vec), step):
        scores = vec[s : s + step] @ q.T  # rows x queries
        rows = np.arange(s, s + len(scores))
        for p in SELECTIVITIES:
            col = cols[bounds[p][0][0]][s : s + step]
            lo = np.array([b[1] for b in bounds[p]])
            hi = np.array([b[2] for b in bounds[p]])
            ok = (col[:, None] >= lo[None, :]) & (col[:, None] < hi[None, :])
            masked = np.where(ok, scores, -np.inf).T  # queries x rows
            top = np.argpartition(-masked, K - 1, axis=1)[:, :K]
            cand_s = np.concatenate([best[p][0], np.take_along_axis(masked, top, axis=1)], axis=1)
            cand_i = np.concatenate([best[p][1], rows[top]], axis=1)
            keep = np.argsort(-cand_s, axis=1)[:, :K]
            best[p] = (np.take_along_axis(cand_s, keep, axis=1), np.take_along_axis(cand_i, keep, axis=1))
    return {p: np.where(np.isfinite(best[p][0]), best[p][1], -1) for p in SELECTIVITIES}


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    """Mean share of each query's exact top-k (fewer where fewer rows are allowed; -1 pads) found."""
    shares = [len(np.intersect1d(f, t[t >= 0])) / max(1, int((t >= 0).sum())) for f, t in zip(found, truth)]
    return float(np.mean(shares))


def engine_run(t: hybrid.Table, q: np.ndarray, truth: np.ndarray, pct: float, ef: int, repeats: int) -> dict:
    """recall@10, p50/p95 ms and the chosen strategy of the engine's filtered vector search."""

    def one(i: int) -> np.ndarray:
        sql = filter_of(pct, i)[0]
        res = t.search(q[i], query_type="vector").ef_search(ef).where(sql).limit(K).select(["id"]).to_arrow()
        return res.column("id").to_numpy()

    for i in range(len(q)):  # an untimed pass: every rule then meets the same (cached) filter sets
        one(i)
    times: list[float] = []
    found: list[np.ndarray] = []
    for r in range(repeats):
        for i in range(len(q)):
            start = time.perf_counter()
            ids = one(i)
            times.append((time.perf_counter() - start) * 1e3)
            if r == 0:
                found.append(ids)
    plan = t.search(q[0], query_type="vector").ef_search(ef).where(filter_of(pct, 0)[0]).limit(K).explain()
    strategy = next((ln.strip() for ln in plan.splitlines() if "allowed" in ln), plan.splitlines()[-1].strip())
    strategy = strategy.split(": ", 1)[-1].split(" [")[0]  # e.g. "HNSW vector:vector nearest 390, kept ..."
    return {
        "recall": recall(found, truth),
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "strategy": strategy,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", default="100000", help="comma-separated table sizes")
    ap.add_argument("--ef", default="64", help="comma-separated ef_search values to query with")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2, help="timed passes over the queries")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--cache", default="/tmp/filtered_recall", help="where built tables are kept between runs")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--depth-per-decade", default="", help="comma-separated DEPTH_PER_DECADE values (default: as set)")
    ap.add_argument("--name", default="filtered_recall")
    ap.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    sizes = [int(x) for x in args.docs.split(",")]
    efs = [int(x) for x in args.ef.split(",")]
    rules = [float(x) for x in args.depth_per_decade.split(",") if x] or [vector_plan.DEPTH_PER_DECADE]
    report: dict = {"command": "python eval/filtered_recall.py " + " ".join(sys.argv[1:]), "sizes": {}}
    report["command"] = report["command"].replace(args.cache, "CACHE")
    for n in sizes:
        t, built = build(Path(args.cache) / f"n{n}_s{args.seed}", n, args.seed)
        done = f", vector index built in {built:.1f} s" if built else " (cached)"
        print(f"N={n:,}: table ready{done}", flush=True)
        if args.build_only:
            continue
        vec, cols = columns(t)
        q = queries(vec, args.queries, args.seed)
        truth = exact_truth(vec, cols, q)
        del vec
        size: dict = {"build_s": built, "runs": []}
        chosen = vector_plan.DEPTH_PER_DECADE
        try:
            for ef in efs:
                for pct in SELECTIVITIES:
                    for rule in rules:  # alternated per selectivity, so load drifts hit each rule alike
                        vector_plan.DEPTH_PER_DECADE = rule
                        row = {"ef": ef, "pct": pct, "depth_per_decade": rule}
                        row.update(engine_run(t, q, truth[pct], pct, ef, args.repeats))
                        size["runs"].append(row)
                        print(json.dumps({"n": n, **row}), flush=True)
        finally:
            vector_plan.DEPTH_PER_DECADE = chosen
        report["sizes"][str(n)] = size
    if args.build_only:
        return
    report["load_average"] = os.getloadavg()
    report["machine"] = f"{os.cpu_count()} cores, {platform.platform()}"
    write_results(Path(args.results_dir), args.name, report, render(report))
    print(render(report))


def render(report: dict) -> str:
    lines = [
        "# Filtered vector recall@10 and latency by selectivity and table size",
        "",
        f"Generated by `{report['command']}`; {report['machine']}; load average "
        + " / ".join(f"{x:.1f}" for x in report["load_average"])
        + ". A different filter value per query; recall against exact search over the allowed rows.",
        "",
        "| rows | ef_search | filter | DEPTH_PER_DECADE | recall@10 | p50 ms | p95 ms | strategy (first query) |",
        "|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for n, size in report["sizes"].items():
        for r in size["runs"]:
            lines.append(
                f"| {int(n):,} | {r['ef']} | {r['pct']:g}% | {r['depth_per_decade']:g} | {r['recall']:.3f} | "
                f"{r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['strategy'].replace('|', '/')} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
