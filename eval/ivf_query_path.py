#!/usr/bin/env python
"""Where a compressed index's vector query spends its CPU: the table path against its stages (issue 19).

Opens the table ``docs`` of an ``eval/bench_ann_kinds.py`` work folder (``<work>/hybrid``, queries in
``<work>/queries.npz``), whose vector index is a compressed kind, and measures per query, in thread CPU
time (this thread alone: other jobs on the machine do not count), the median over ``--passes`` passes of:

* ``table``: ``t.search(q).select(["id"]).limit(10).to_arrow()``, the whole query path;
* ``rescored``: the index's ``Rescored.search(q, 10)`` alone (candidates, code ranking, reads);
* ``candidates``: the IVF (or graph) search proposing ``rescore x k`` candidates;
* ``codes``: ranking those candidates by the row codes;
* ``reads``: reading the best ``reads x k`` of them as floats and their exact distances.

Each pass measures one stage over every query (the stages run alone are warmer in cache than within a
query, so they add up to less than ``rescored``). ``--label`` names the code measured, so that two
checkouts can be compared on the same table, process after process:

    nice -n 10 python eval/ivf_query_path.py --work <scratch> --label new --name ivf_query_path_a19f_new
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def median_us(fn: Callable[[int, np.ndarray], Any], queries: np.ndarray, passes: int) -> float:
    times = []
    for _ in range(passes):
        for i, q in enumerate(queries):
            t0 = time.thread_time_ns()
            fn(i, q)
            times.append(time.thread_time_ns() - t0)
    return float(np.median(times)) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--label", default="")
    ap.add_argument("--name", default="ivf_query_path")
    a = ap.parse_args()

    import hybrid
    from hybrid.index.gather import gathered
    from hybrid.index.rescore import Rescored, candidate_count, read_count, searcher

    t = hybrid.connect(a.work / "hybrid", upkeep=None).open_table("docs")
    queries = np.load(a.work / "queries.npz")["queries"]
    view = t.indexed_snapshot()
    s = searcher(view, next(e for e in view.entries() if e.kind == "vector"))
    if not isinstance(s, Rescored):
        raise SystemExit("the table's vector index is the float HNSW: nothing to rescore")
    n = candidate_count(10, s.rescore)
    found = [s.index.candidates(q, n, s.index.level) for q in queries]
    codes = s.index.codes
    ranked = [codes.ranked(q, c) if codes is not None else c for q, c in zip(queries, found)]
    best = [r[: read_count(10, s.reads, len(r))] for r in ranked]

    def table(i: int, q: np.ndarray) -> Any:
        return t.search(q, vector_column="vector").select(["id"]).limit(10).to_arrow()

    stages: dict[str, Callable[[int, np.ndarray], Any]] = {
        "table": table,
        "rescored": lambda i, q: s.search(q, 10),
        "candidates": lambda i, q: s.index.candidates(q, n, s.index.level),
        "codes": lambda i, q: codes.ranked(q, found[i]) if codes is not None else None,
        "reads": lambda i, q: gathered(view, "vector", best[i], q, s.metric),
    }
    for q in queries[:20]:  # warm-up: the index, the codes, the data file
        table(0, q)
    out: dict[str, Any] = {"label": a.label, "load_before": os.getloadavg()}
    out["us"] = {name: median_us(fn, queries, a.passes) for name, fn in stages.items()}
    out["load_after"] = os.getloadavg()
    out["index"] = s.label
    out["candidates"], out["reads"] = n, len(best[0])
    (REPO / "eval" / "results" / f"{a.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
