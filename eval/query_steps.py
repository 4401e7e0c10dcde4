#!/usr/bin/env python
"""Per-step cost of one query (vector, hybrid, vector with a new 1% filter), for two versions of the code side by side.

Each step of the query path is timed on its own (median of ``--calls`` calls, each on another
query vector / text / filter value) over the search benchmark's 100k table (``eval/bench_search.py``'s
generator and seed; built once into ``--db`` with a bitmap index on `category`, the FTS index and the
HNSW index). With ``--before PATH`` (a checkout or export of older code) the steps are measured for the
older code and for this checkout in alternating child processes (``--rounds`` each, medians of the
rounds), so both see the same machine load; the table is shared. Results:
``eval/results/<name>.{md,json}``::

    python eval/query_steps.py --db DIR [--before PATH] [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the `bench` package next to this script


def build(db: Path) -> None:
    """The benchmark's table with its indexes, once."""
    from bench.search_data import Corpus

    import hybrid

    ns = argparse.Namespace(
        docs=100_000, seed=42, text_bytes=1500, vocab=30_000, zipf=1.0, clusters=100, latent_dim=32,
        cluster_spread=1.0, iso_noise=0.2, query_noise=0.5,
    )  # fmt: skip
    corpus = Corpus(ns)
    table = corpus.generate()
    qtext, qvec, _ = corpus.queries(table, 200)
    t = hybrid.connect(db).create_table("docs", table)
    t.create_scalar_index("category")
    t.create_fts_index(["text"])
    t.create_vector_index("vector")
    (db / "queries.json").write_text(json.dumps({"text": qtext, "vector": qvec.tolist()}))


def measure(db: Path, calls: int, clock: str = "wall") -> dict[str, float]:
    """Median microseconds of each step (run in a child process whose `hybrid` is the code under test);
    `clock` "cpu": the calling thread's CPU time (every step runs in it), else wall time."""
    import numpy as np

    import hybrid
    from hybrid.index.exact import row_vectors
    from hybrid.query import executor as ex
    from hybrid.query.allowed import allowed_rows
    from hybrid.query.filter import compile_filter
    from hybrid.query.fusion import RRF

    t = hybrid.connect(db).open_table("docs")
    qs = json.loads((db / "queries.json").read_text())
    vecs = np.asarray(qs["vector"], dtype=np.float32)
    texts = qs["text"]
    n = len(texts)

    def med(fn) -> float:
        for i in range(n):  # a whole pass first: every file the step reads is mapped and in the page cache
            fn(i)
        times = []
        timer = time.thread_time if clock == "cpu" else time.perf_counter
        for i in range(calls):
            t0 = timer()
            fn(i)
            times.append(timer() - t0)
        return float(np.median(times) * 1e6)

    def vq(i: int):
        return t.search(vecs[i % n], query_type="vector").limit(10).select(["id"])

    def hq(i: int):
        return t.search(texts[i % n]).vector(vecs[i % n]).fuse(RRF(60)).weights("equal").limit(10).select(["id"])

    def where(i: int) -> str:
        return f"category = {(i * 37) % 100}"

    view = t.indexed_snapshot()
    snap = view.snapshot
    (vb,) = ex._plan(vq(0), view)
    index = view.index(vb.entry)
    out: dict[str, float] = {}
    out["floor: hnswlib knn_query"] = med(lambda i: index._hnsw.knn_query(vecs[i % n], k=10, num_threads=1))
    out["vector: whole query"] = med(lambda i: vq(i).to_arrow())
    out["vector: query builder"] = med(vq)
    out["vector: indexed_snapshot()"] = med(lambda i: t.indexed_snapshot())
    out["vector: plan"] = med(lambda i: ex._plan(vq(0), view))
    branches = []

    def run_vector(i: int) -> None:
        b = ex.Branch("vector", vb.column, vb.entry, vector=vecs[i % n])
        ex._run_vector(vq(0), view, b, None, 10)
        branches.append(b)

    out["vector: branch (HNSW search)"] = med(run_vector)
    out["vector: fuse (one branch)"] = med(lambda i: ex._fused(vq(0), view, [branches[i % len(branches)]], None))
    picks = [branches[i % len(branches)].ids for i in range(n)]
    out["vector: take 10 rows"] = med(lambda i: snap.take(picks[i % n], ["id"]))
    taken = [snap.take(picks[i], ["id"]) for i in range(n)]

    def result(i: int) -> None:
        b = branches[i % len(branches)]
        ex._with_result_columns(taken[i % n], b.ids, -b.raw.astype(np.float64), [b])

    out["vector: result columns"] = med(result)
    try:  # code with the lone-branch rows (hybrid.query.single): take + result columns in one step
        import inspect

        from hybrid.query import single

        source = view if "view" in inspect.signature(single.rows).parameters else snap  # older code: the snapshot
        out["vector: rows of the lone branch (take + columns)"] = med(
            lambda i: single.rows(vq(0), source, branches[i % len(branches)], None)
        )
    except ImportError:  # older code: the same work is the take and the result columns above
        both = out["vector: take 10 rows"] + out["vector: result columns"]
        out["vector: rows of the lone branch (take + columns)"] = both
    # the prepared path of a plain vector query (hybrid.query.prepared): the plan's look-up, the walk with
    # its hits made ready, and the result table of the hits
    from hybrid.query import prepared, single

    q0 = vq(0)
    plan = prepared.plan_of(q0, view)
    out["vector (prepared): plan look-up"] = med(lambda i: prepared.plan_of(q0, view))
    if hasattr(index, "nearest"):  # this work: the hits as Python lists, packed straight into the table
        out["vector (prepared): walk, hits ready"] = med(lambda i: index.nearest(vecs[i % n], 10))
        found = [index.nearest(vecs[i], 10) for i in range(n)]
        out["vector (prepared): result table of the hits"] = med(
            lambda i: single.listed(plan.reader, "vector", *found[i % n], 1)
        )
    else:  # older code: numpy arrays, sliced, then the table
        out["vector (prepared): walk, hits ready"] = med(lambda i: index.search(vecs[i % n], 10))
        hits = [index.search(vecs[i], 10) for i in range(n)]
        ranks = single.rank_values(1, 10)
        out["vector (prepared): result table of the hits"] = med(
            lambda i: single.table(plan.reader, "vector", hits[i % n][0][0:10], hits[i % n][1][0:10], ranks)
        )
    out["hybrid: whole query"] = med(lambda i: hq(i).to_arrow())
    hb = []
    for i in range(n):
        q = hq(i)
        bs = ex._plan(q, view)
        ex._run_branches(q, view, bs, None, 50)
        hb.append((q, bs))
    fused = [ex._fused(q, view, bs, None) for q, bs in hb]
    out["hybrid: fuse (RRF)"] = med(lambda i: ex._fused(hb[i % n][0], view, hb[i % n][1], None))
    pools = [f[0][:10] for f in fused]
    htaken = [snap.take(p, ["id"]) for p in pools]
    out["hybrid: result columns"] = med(
        lambda i: ex._with_result_columns(htaken[i % n], pools[i % n], fused[i % n][1][:10], hb[i % n][1])
    )
    out["vector 1%: whole query (new value)"] = med(lambda i: vq(i).where(where(i)).to_arrow())
    out["vector 1%: rows from the scalar index"] = med(
        lambda i: allowed_rows(view, compile_filter(where(i), snap.schema))
    )
    sets = [allowed_rows(view, compile_filter(where(i), snap.schema)) for i in range(100)]
    out["vector 1%: gather ~1,000 vectors"] = med(lambda i: row_vectors(view, "vector", sets[i % 100].ids, "cosine"))
    gathered = [row_vectors(view, "vector", s.ids, "cosine") for s in sets]
    out["vector 1%: exact search of them"] = med(lambda i: gathered[i % 100].search(vecs[i % n], "cosine", 10))
    return out


def child(code: Path, db: Path, calls: int, clock: str = "wall") -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--db", str(db), "--calls", str(calls), "--measure"]
    cmd += ["--clock", clock]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="folder of the table (built on first use)")
    ap.add_argument("--before", default=None, help="older code to compare with (a folder holding `hybrid/`)")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or the thread's CPU time (a loaded machine)",
    )
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--name", default="query_steps")
    args = ap.parse_args(argv)
    db = Path(args.db)
    if args.measure:
        print(json.dumps(measure(db, args.calls, args.clock)))
        return
    if not (db / "queries.json").exists():
        build(db)
    import numpy as np
    from bench.frame import grid, machine_info, md_load, write_results

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load0 = os.getloadavg()
    versions = {"after": HERE.parent} | ({"before": Path(args.before)} if args.before else {})
    rounds: dict[str, list[dict[str, float]]] = {v: [] for v in versions}
    for _ in range(args.rounds):
        for name in reversed(list(versions)):  # before, after, before, after...
            rounds[name].append(child(versions[name], db, args.calls, args.clock))
            print(name, rounds[name][-1], flush=True)
    steps = list(rounds["after"][0])
    medians = {v: {s: float(np.median([r[s] for r in rs])) for s in steps} for v, rs in rounds.items()}
    head = [
        "step (median us)",
        *(["before"] if args.before else []),
        "after",
        *(["after/before"] if args.before else []),
    ]
    rows = [head]
    for s in steps:
        a = medians["after"][s]
        if args.before:
            b = medians["before"][s]
            rows.append([s, f"{b:,.1f}", f"{a:,.1f}", f"{a / b:.2f}" if b else "n/a"])
        else:
            rows.append([s, f"{a:,.1f}"])
    meta = {
        "command": "python eval/query_steps.py --db DIR"
        + (" --before OLD" if args.before else "")
        + f" --calls {args.calls} --rounds {args.rounds} --clock {args.clock}",
        "date": started,
        "loadavg_at_start": load0,
        "loadavg_at_end": os.getloadavg(),
        "machine": machine_info(("numpy", "pyarrow", "hnswlib", "tantivy")),
    }
    clock_words = "CPU time of the calling thread" if args.clock == "cpu" else "wall time"
    md = [
        "# Per-step cost of one query\n",
        f"Generated by `eval/query_steps.py` on {started}.\n",
        "Each step timed on its own over the search benchmark's 100k table (median of "
        f"{args.calls} calls, each another query, in {clock_words}; then the median of {args.rounds} rounds, "
        "the two versions' "
        "child processes alternating so that both see the same load). Steps: the query builder; "
        "`indexed_snapshot()` (the table's current version); planning; the branch (HNSW search with its "
        "bookkeeping); fusion; `take` of the 10 result rows (`id`); the result columns (`_score`, "
        "`_distance`, ranks); the rows of a lone branch (what a vector query now does instead of fusion, take and "
        "result columns; for older code, the sum of the take and the result columns); for the 1% filter "
        "(`category = c`, a new c each call): the allowed rows from "
        "the scalar index, the gather of their vectors, the exact search over them. The whole query is "
        "`to_arrow()` of `t.search(...).limit(10).select(['id'])`.\n",
        grid(rows, labels=1) + "\n",
        f"The machine is shared with other jobs (2 cores): medians are inflated by the load. {md_load(meta)}.\n",
    ]
    data = {"meta": meta, "rounds": rounds, "medians": medians}
    write_results(Path(args.results_dir), args.name, data, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
