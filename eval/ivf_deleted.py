#!/usr/bin/env python
"""An IVF index searched after rows were deleted since its build: the dead rows skipped inside the list
scan against over-fetching past them (the rule before), unfiltered queries, one run.

Uses ``eval/ivf_filter.py``'s table (``--rows`` x 384, ``ivf_rabitq``, kept in ``--work``) and queries;
deletes the rows with ``category < --deleted`` (that share of the rows, in percent) once. Each query
runs both ways in turn; recall@10 is against exact search over the live rows (the filter
``category >= --deleted`` searched exactly, which allows exactly the live rows).

    python eval/ivf_deleted.py --rows 1000000 --deleted 30 --work <scratch> --name ivf_deleted_1m

Writes ``eval/results/<name>.json`` and ``.md``. The table is built as ``eval/ivf_filter.py`` builds its own,
in ``<work>/deleted`` (that script's table keeps every row); it keeps the deletion, and later runs reuse it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ivf_filter  # noqa: E402
from bench.frame import RESULTS_DIR, git_info, machine_info  # noqa: E402

from hybrid.query import vector_plan  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--deleted", type=int, default=30, help="percent of the rows deleted (category < this)")
    ap.add_argument("--kind", default="ivf_rabitq", choices=["ivf_rabitq", "ivf_pq"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--name", default="ivf_deleted")
    a = ap.parse_args()
    t = ivf_filter.table(argparse.Namespace(**{**vars(a), "work": a.work / "deleted"}))  # a table of its own
    live = a.rows * (100 - a.deleted) // 100
    if t.count_rows() != live:
        t.delete(f"category < {a.deleted}")
    queries = ivf_filter.queries(a)
    ways = {"inside": True, "over-fetch (before)": False}
    found: dict[str, list[list[int]]] = {w: [] for w in ways}
    cpu: dict[str, list[float]] = {w: [] for w in ways}
    plans: dict[str, str] = {}
    truth = []
    vector_plan.CODE_COST = math.inf  # the truth: exact over the allowed (= live) rows
    for q in queries:
        s = t.search(q).where(f"category >= {a.deleted}", prefilter=True).limit(10).select(["id"])
        truth.append(s.to_arrow().column("id").to_pylist())
    vector_plan.CODE_COST = ivf_filter.MODES["default"][0]
    for i, q in enumerate(queries):
        for way, inside in ways.items():
            ivf_filter.inside_scan(inside)
            s = t.search(q).limit(10).select(["id"])
            c0 = time.process_time()
            found[way].append(s.to_arrow().column("id").to_pylist())
            cpu[way].append((time.process_time() - c0) * 1e3)
            if i == 0:
                plans[way] = next(x.strip() for x in s.explain().splitlines() if "branch vector" in x)
    ivf_filter.inside_scan(True)
    out = {
        w: {
            "recall": round(statistics.mean(len(set(f) & set(e)) / 10 for f, e in zip(found[w], truth)), 4),
            "cpu_p50_ms": round(statistics.median(cpu[w]), 3),
        }
        for w in ways
    }
    command = "python eval/ivf_deleted.py " + " ".join("<scratch>" if x == str(a.work) else x for x in sys.argv[1:])
    report = {"command": command, "machine": machine_info(("numpy", "faiss-cpu")), "git": git_info(), "ways": out}
    (RESULTS_DIR / f"{a.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# IVF search after deletions: {a.deleted}% of {a.rows:,} rows deleted since the build", "",
             f"`{command}`; {a.queries} unfiltered queries, k = 10; recall@10 against exact search over the"
             " live rows; CPU p50 per query.", "", "| way | CPU p50 ms | recall@10 |", "|---|--:|--:|"]  # fmt: skip
    lines += [f"| {w} | {r['cpu_p50_ms']} | {r['recall']} |" for w, r in out.items()]
    lines += ["", "Plans (first query):", ""] + [f"* {w}: {p}" for w, p in plans.items()]
    (RESULTS_DIR / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
