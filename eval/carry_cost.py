#!/usr/bin/env python
"""What a filter carried across small writes costs: the thread CPU of finding a filter's allowed rows.

A table written to while it serves makes a version per write, and each filtered search of a new
version carries its filter's allowed rows from the version it last ran on (the rows removed since
dropped, the rows added since checked). This driver builds ``--docs`` rows with the load test's
filter columns (``year``, ``category``), runs each of a fixed set of filters once (so every later
run is a carry), then ``--writes`` single-row to three-row appends (one delete every tenth), each
followed by ``--filters`` of those filters drawn at random, and times each lookup
(:func:`hybrid.query.allowed.cached_allowed`) in the calling thread's CPU time.

Run it twice with different ``hybrid`` packages on ``PYTHONPATH`` (interleaved) for an A/B.
Results: ``eval/results/<name>.json`` and ``.md`` (default ``carry_cost``).

    python eval/carry_cost.py --name carry_cost_new_r1
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.frame import RESULTS_DIR, git_info, machine_info, md_intro, md_machine, write_results  # noqa: E402

import hybrid  # noqa: E402
from hybrid.query.allowed import cached_allowed  # noqa: E402
from hybrid.query.filter import compile_filter  # noqa: E402

CATEGORIES = ["biology", "medicine", "chemistry", "physics", "genetics", "neuro", "immunology", "oncology"]
FILTERS = (
    [f"year >= {y}" for y in range(1990, 2021, 3)]
    + [f"category = '{c}'" for c in CATEGORIES]
    + [
        f"year >= {y} AND category IN ('{a}', '{b}')"
        for y, a, b in zip(range(1995, 2020, 5), CATEGORIES, CATEGORIES[3:])
    ]
)
"""The repeated filters (the load test's kinds): each carried from the version it last ran on."""


def _rows(start: int, n: int, rng: np.random.Generator) -> pa.Table:
    return pa.table(
        {
            "id": np.arange(start, start + n),
            "year": rng.integers(1990, 2021, n),
            "category": [CATEGORIES[i] for i in rng.integers(0, len(CATEGORIES), n)],
        }
    )


def measure(folder: Path, docs: int, writes: int, per_write: int) -> dict[str, Any]:
    rng, pick = np.random.default_rng(0), random.Random(0)
    t = hybrid.connect(folder, upkeep=None).create_table("docs", _rows(0, docs, rng))
    for sql in FILTERS:  # every filter once: each later lookup is a carry
        view = t.indexed_snapshot()
        cached_allowed(view, compile_filter(sql, view.schema))
    times: list[float] = []
    next_id = docs
    for step in range(writes):
        n = 1 + step % 3
        t.add(_rows(next_id, n, rng))
        next_id += n
        if step % 10 == 9:
            t.delete(f"id = {next_id - 2}")
        view = t.indexed_snapshot()
        for _ in range(per_write):
            flt = compile_filter(pick.choice(FILTERS), view.schema)
            start = time.thread_time()
            cached_allowed(view, flt)
            times.append(time.thread_time() - start)
    return {
        "lookups": len(times),
        "carry_cpu_us_p50": round(1e6 * statistics.median(times), 1),
        "carry_cpu_us_mean": round(1e6 * statistics.mean(times), 1),
        "carry_cpu_us_p90": round(1e6 * float(np.percentile(times, 90)), 1),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=5_000)
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--filters", type=int, default=8, help="filtered lookups after each write")
    ap.add_argument("--name", default="carry_cost")
    args = ap.parse_args(argv)
    res: dict[str, Any] = {
        "command": shlex.join(["python", "eval/carry_cost.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(("numpy", "pyarrow", "duckdb")),
        "git": git_info(),
        "hybrid_from": "this checkout" if Path(hybrid.__file__).resolve().parents[1] == Path.cwd().resolve() else
        "another copy on PYTHONPATH (the A of an A/B)",
        "load_average_before": list(os.getloadavg()),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="carry-cost-") as scratch:
        res.update(measure(Path(scratch), args.docs, args.writes, args.filters))
    res["load_average_after"] = list(os.getloadavg())
    lines = md_intro("A filter carried across small writes: CPU per lookup", "eval/carry_cost.py", res)
    lines += md_machine(res)
    lines += [
        f"`hybrid` imported from {res['hybrid_from']}. Load average before {res['load_average_before']}, "
        f"after {res['load_average_after']}.\n",
        f"{res['lookups']} lookups (thread CPU): p50 {res['carry_cpu_us_p50']} us, mean {res['carry_cpu_us_mean']} us, "
        f"p90 {res['carry_cpu_us_p90']} us.\n",
    ]
    write_results(RESULTS_DIR, args.name, res, "\n".join(lines) + "\n")
    print({k: v for k, v in res.items() if k not in ("machine", "git")})


if __name__ == "__main__":
    main()
