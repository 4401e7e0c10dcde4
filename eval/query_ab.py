#!/usr/bin/env python
"""Whole-query cost of two code versions on a loaded machine: the fastest of many tiny batches.

On a shared machine (load far above the core count) the median of single calls mostly measures
the scheduler. The fastest of `--repeats` batches of `--number` calls (a batch of a few calls is
rarely preempted) estimates what a call costs on an idle core. One query each (vector, text,
hybrid; the same query every call, so its index pages are warm) over ``eval/query_steps.py``'s
table (``--db``, built there), for this checkout and ``--before`` (a folder holding older
``hybrid/``), in alternating child processes, ``--rounds`` each. Results:
``eval/results/<name>.{md,json}``::

    python eval/query_ab.py --db DIR --before OLD [--rounds N] [--repeats N] [--number N] [--clock cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the `bench` package next to this script


def measure(db: Path, repeats: int, number: int, clock: str = "wall") -> dict[str, float]:
    """Microseconds per call of each query: the fastest batch (run in a child whose `hybrid` is under test);
    `clock` "cpu": the thread's CPU time, else wall time."""
    import timeit

    import numpy as np

    import hybrid

    t = hybrid.connect(db).open_table("docs")
    qs = json.loads((db / "queries.json").read_text())
    v = np.asarray(qs["vector"][3], dtype=np.float32)
    s = qs["text"][3]
    from hybrid.query import executor as ex

    view = t.indexed_snapshot()
    (branch,) = ex._plan(t.search(v, query_type="vector"), view)
    hnsw = view.index(branch.entry)._hnsw  # type: ignore[union-attr]
    queries = {
        "floor: raw hnswlib knn_query": lambda: hnsw.knn_query(v, k=10, num_threads=1),
        "vector": lambda: t.search(v, query_type="vector").limit(10).select(["id"]).to_arrow(),
        "text": lambda: t.search(s, query_type="fts").limit(10).select(["id"]).to_arrow(),
        "hybrid": lambda: t.search(s).vector(v).limit(10).select(["id"]).to_arrow(),
    }
    out = {}
    for name, fn in queries.items():
        fn()
        timer = time.thread_time if clock == "cpu" else time.perf_counter
        out[name] = min(timeit.repeat(fn, number=number, repeat=repeats, timer=timer)) / number * 1e6
    # the search benchmark's case: another vector every call, so the graph walk misses the CPU caches
    # and so does whatever runs after it; as there, each runs a block of every vector in turn (taking
    # turns call by call, each would also evict the other's code), and the median call counts (the
    # fastest batch would pick the easy vectors)
    vecs = np.asarray(qs["vector"], dtype=np.float32)
    varied = {
        "floor, varied vectors (median call)": lambda x: hnsw.knn_query(x, k=10, num_threads=1),
        "vector, varied vectors (median call)": lambda x: (
            t.search(x, query_type="vector").limit(10).select(["id"]).to_arrow()
        ),
    }
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    took: dict[str, list[float]] = {name: [] for name in varied}
    for _ in range(max(1, repeats * number // len(vecs))):
        for name, call in varied.items():
            for x in vecs:
                start = timer()
                call(x)
                took[name].append(timer() - start)
    for name, times in took.items():
        out[name] = float(np.median(times)) * 1e6
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="the table of eval/query_steps.py (build it there first)")
    ap.add_argument("--before", default=None, help="older code (a folder holding `hybrid/`; required)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--number", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="wall time, or the thread's CPU time")
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--name", default="query_ab")
    args = ap.parse_args(argv)
    db = Path(args.db)
    if args.measure:
        print(json.dumps(measure(db, args.repeats, args.number, args.clock)))
        return
    if args.before is None:
        ap.error("--before is required")
    from bench.frame import grid, machine_info, md_load, write_results

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load0 = os.getloadavg()
    versions = {"before": Path(args.before), "after": HERE.parent}
    rounds: dict[str, list[dict[str, float]]] = {v: [] for v in versions}
    for _ in range(args.rounds):
        for name, code in versions.items():
            cmd = [sys.executable, str(Path(__file__).resolve()), "--db", str(db), "--measure"]
            cmd += ["--repeats", str(args.repeats), "--number", str(args.number), "--clock", args.clock]
            env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            rounds[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(name, rounds[name][-1], flush=True)
    best = {v: {q: float(min(r[q] for r in rs)) for q in rs[0]} for v, rs in rounds.items()}
    rows = [["query (us per call, fastest batch)", "before", "after", "after/before"]]
    for q in best["after"]:
        b, a = best["before"][q], best["after"][q]
        rows.append([q, f"{b:,.1f}", f"{a:,.1f}", f"{a / b:.2f}"])
    vector, floor = "vector, varied vectors (median call)", "floor, varied vectors (median call)"
    ratio = [best[v][vector] / best[v][floor] for v in best]
    rows.append(["vector / floor, varied vectors", *(f"{r:.2f}" for r in ratio), ""])
    meta = {
        "command": "python eval/query_ab.py --db DIR --before OLD "
        + f"--rounds {args.rounds} --repeats {args.repeats} --number {args.number} --clock {args.clock}",
        "date": started,
        "loadavg_at_start": load0,
        "loadavg_at_end": os.getloadavg(),
        "machine": machine_info(("numpy", "pyarrow", "hnswlib", "tantivy")),
    }
    clock_words = "the thread's CPU time" if args.clock == "cpu" else "wall time"
    md = [
        "# Whole-query cost, two code versions, fastest of many tiny batches\n",
        f"Generated by `eval/query_ab.py` on {started}.\n",
        f"Clock: {clock_words}. "
        f"Each query the same every call (warm pages), {args.number} calls a batch, the fastest of "
        f"{args.repeats} batches, the best of {args.rounds} alternating child processes per version: an "
        "estimate of a call on an idle core, for a machine too loaded for medians. The floor: raw hnswlib's "
        "knn_query on the same index, in a tight loop (its graph stays in the CPU caches, which a whole query "
        "evicts). Vector: "
        "`t.search(v, query_type='vector').limit(10).select(['id'])`; text: the same with "
        "`query_type='fts'`; hybrid: `t.search(text).vector(v)` (both branches, the default fusion).\n",
        grid(rows, labels=1) + "\n",
        f"{md_load(meta)}.\n",
    ]
    write_results(Path(args.results_dir), args.name, {"meta": meta, "rounds": rounds, "best": best}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
