#!/usr/bin/env python
"""Filtered vector search on an IVF index: the filter applied inside the list scan against exact search
over the allowed rows, per selectivity (recall and CPU per query, one run).

The corpus is ``eval/bench_ann_kinds.py``'s (``--rows`` x 384 clustered unit vectors, streamed in, with
its ``category`` column, ``(id x 7919) % 100``), indexed with ``--kind`` (``target_recall=0.95``); the
queries are that script's (corpus rows plus noise). Each query runs with a filter allowing about 0.1%
(``id % 1000 = r``), 1% (``category = c``), 10% (``category % 10 = c``) or 30% (``category < 30``) of
the rows, each way in turn (``--modes``):

* **exact**: exact search over the allowed rows (``hybrid.query.vector_plan.CODE_COST`` set to
  infinity), the truth the others' recall is measured against;
* **inside x ...**: the IVF list scan skipping the rows the filter does not allow (``CODE_COST`` 0),
  its lists widened by ``r ** p`` (``WIDEN_POWER`` p; r = live / allowed rows), candidates rescored;
* **default**: what the library's rule picks (:func:`hybrid.query.vector_plan.plan_inside`);
* **before**: the way the library searched before (``filters_inside`` off: the float HNSW's rule of
  over-fetching the index's nearest rows and keeping the allowed, or exact).

Recall@10 is against the exact way's results. The CPU is the process's per query (a search runs in
the calling thread), each query's filter run once before the timing (a repeated filter: its allowed
rows are found once). ``INSIDE_FIXED`` and ``CODE_COST`` come from the inside ways' CPU against the
rows their scans pass over (``explain()`` shows it), in units of exact search's CPU per allowed row.

    python eval/ivf_filter.py --rows 1000000 --work <scratch> --name ivf_filter_1m

The table is kept in ``--work`` and reused by a later run with the same ``--rows`` and ``--kind``.
Writes ``eval/results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "eval"))
import bench_ann_kinds as bak  # noqa: E402
from bench.frame import RESULTS_DIR, git_info, machine_info  # noqa: E402

import hybrid  # noqa: E402
from hybrid.index.rescore import Rescored  # noqa: E402
from hybrid.query import vector_plan  # noqa: E402

_INSIDE = Rescored.filters_inside.fget


def inside_scan(on: bool) -> None:
    """Let IVF indexes skip filtered and deleted rows inside their list scan (the library's way), or not
    (the rule before: over-fetch past them, or exact)."""
    Rescored.filters_inside = property(lambda self: bool(_INSIDE(self)) and on)


FILTERS = {
    "0.1%": lambda i: f"id % 1000 = {i % 1000}",
    "1%": lambda i: f"category = {i % 100}",
    "10%": lambda i: f"category % 10 = {i % 10}",
    "30%": lambda i: "category < 30",
}
MODES: dict[str, tuple[float, float]] = {  # (CODE_COST, WIDEN_POWER)
    "exact": (math.inf, vector_plan.WIDEN_POWER),
    "inside x1": (0.0, 0.0),
    "inside x r^0.25": (0.0, 0.25),
    "inside x r^0.5": (0.0, 0.5),
    "inside x r": (0.0, 1.0),
    "default": (vector_plan.CODE_COST, vector_plan.WIDEN_POWER),
    "before": (math.nan, math.nan),
}
"""Per way, ``CODE_COST`` and ``WIDEN_POWER``; "before": as the library searched before the filter went
inside the scan (the float HNSW's rule: over-fetch the index's nearest rows and keep the allowed, or exact)."""


def table(a: argparse.Namespace) -> hybrid.Table:
    db = hybrid.connect(a.work / f"db_{a.rows}_{a.kind}", upkeep=None)
    if "docs" in db.table_names():
        return db.open_table("docs")
    started = time.perf_counter()
    t = db.create_table("docs", bak.record_batches(a.rows, a.seed))
    t.create_vector_index("vector", kind=a.kind, target_recall=0.95)
    print(f"table of {a.rows} rows built and indexed in {time.perf_counter() - started:.0f} s", flush=True)
    return t


def queries(a: argparse.Namespace) -> np.ndarray:
    picks = np.sort(np.random.default_rng([a.seed, 4]).choice(a.rows, size=a.queries, replace=False))
    rows = bak.picked_rows(a.rows, a.seed, picks)
    noise = np.random.default_rng([a.seed, 7]).standard_normal(rows.shape).astype(np.float32)
    q = rows + bak.QUERY_NOISE * noise / np.sqrt(bak.DIM)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--kind", default="ivf_rabitq", choices=["ivf_rabitq", "ivf_pq"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--name", default="ivf_filter")
    ap.add_argument(
        "--filters", default=",".join(FILTERS), help="selectivities, comma-separated: " + ", ".join(FILTERS)
    )
    ap.add_argument("--modes", default=",".join(MODES), help="ways, comma-separated (exact is the truth, always run)")
    a = ap.parse_args()
    filters = {f: FILTERS[f] for f in a.filters.split(",")}
    modes = {m: MODES[m] for m in dict.fromkeys(["exact", *a.modes.split(",")])}
    t = table(a)
    stats = next(s for s in t.index_stats() if "nprobe" in s)
    qs = queries(a)
    out: dict[str, Any] = {}
    for sel, where in filters.items():
        found: dict[str, list[list[int]]] = {m: [] for m in modes}
        cpu: dict[str, list[float]] = {m: [] for m in modes}
        wall: dict[str, list[float]] = {m: [] for m in modes}
        how: dict[str, str] = {}
        allowed = []
        for i, q in enumerate(qs):
            flt = where(i)
            for mode, (cost, power) in modes.items():
                vector_plan.CODE_COST, vector_plan.WIDEN_POWER = cost, power
                inside_scan(mode != "before")
                search = t.search(q).where(flt, prefilter=True).limit(bak.K).select(["id"])
                search.to_arrow()  # the filter's allowed rows found once, outside the timing (a repeated filter)
                c0, t0 = time.process_time(), time.perf_counter()
                ids = search.to_arrow().column("id").to_pylist()
                cpu[mode].append((time.process_time() - c0) * 1e3)
                wall[mode].append((time.perf_counter() - t0) * 1e3)
                found[mode].append(ids)
                if i == 0:
                    how[mode] = next(x.strip() for x in search.explain().splitlines() if "branch vector" in x)
            vector_plan.CODE_COST, vector_plan.WIDEN_POWER = MODES["default"]
            if i == 0:
                allowed.append(t.count_rows(flt))
        truth = found["exact"]
        row = {"allowed_rows": allowed[0], "plans": how}
        for mode in modes:
            recall = statistics.mean(len(set(f) & set(e)) / max(1, len(e)) for f, e in zip(found[mode], truth))
            row[mode] = {
                "recall": round(recall, 4),
                "cpu_p50_ms": round(statistics.median(cpu[mode]), 3),
                "p50_ms": round(statistics.median(wall[mode]), 3),
            }
        out[sel] = row
        print(sel, json.dumps(row), flush=True)
    lists, nprobe, rescore = stats.get("partitions"), stats.get("nprobe"), stats.get("rescore")
    report = {
        "command": "python eval/ivf_filter.py " + " ".join(_shown(sys.argv[1:], a.work)),
        "machine": machine_info(("numpy", "pyarrow", "faiss-cpu")),
        "git": git_info(),
        "index": {k: stats.get(k) for k in ("kind", "partitions", "nprobe", "rescore", "reads")},
        "selectivities": out,
    }
    (RESULTS_DIR / f"{a.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# Filtered IVF search: inside the list scan vs exact over the allowed rows ({a.rows:,} rows)", "",
             f"`{report['command']}`; index {a.kind}, {lists} lists, nprobe {nprobe}, rescore {rescore}.",
             "CPU p50 (wall p50) in ms per query, the filter's rows found before the timing; recall@10"
             " against exact search over the allowed rows.", "",
             "| filter | allowed rows | " + " | ".join(modes) + " |", "|---|--:|" + "--:|" * len(modes)]  # fmt: skip
    for sel, r in out.items():
        cells = [f"{r[m]['cpu_p50_ms']} ({r[m]['p50_ms']}) ms, {r[m]['recall']}" for m in modes]
        lines.append(f"| {sel} | {r['allowed_rows']:,} | " + " | ".join(cells) + " |")
    lines += ["", "Plans (first query, `explain()`'s vector branch line):", ""]
    lines += [f"* {sel}, {m}: {p}" for sel, r in out.items() for m, p in r["plans"].items()]
    (RESULTS_DIR / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _shown(argv: list[str], work: Path) -> list[str]:
    return ["<scratch>" if x == str(work) else x for x in argv]


if __name__ == "__main__":
    main()
