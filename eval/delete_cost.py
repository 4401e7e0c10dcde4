#!/usr/bin/env python
"""CPU of deleting recent rows by key, one at a time, as a served table does (``delete where id = N``).

Builds ``eval/load_server.py``'s table (SciFact with a HashingEmbedder binding; no indexes: the
delete path does not use them), appends `--appends` small batches of 1-3 rows (one fragment each,
background upkeep off so that the fragments stay), then deletes `--deletes` of the rows added,
one commit each, and reports the thread CPU per delete: finding the rows (the filter) and in all.
Run it with another tree first on ``PYTHONPATH`` to measure that tree's code (an A/B in one session).

    python eval/delete_cost.py --name delete_cost_w14k_new
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load_server as ls  # noqa: E402
from bench.frame import RESULTS_DIR, git_info, grid, machine_info, md_intro, md_machine, write_results  # noqa: E402

import hybrid  # noqa: E402
from hybrid.embedders import HashingEmbedder  # noqa: E402


def measure(folder: Path, rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Thread CPU ms of each delete by key (in all, and finding the rows) after `args.appends` appends."""
    db = hybrid.connect(folder, upkeep=None)  # no compaction: the appends' fragments stay
    table = db.create_table("docs", rows, embedding={"vector": ("text", HashingEmbedder(dim=args.dim))})
    rng = random.Random(args.seed)
    added: list[int] = []
    next_id = 10_000_000
    for _ in range(args.appends):
        batch = []
        for _ in range(rng.randint(1, 3)):
            batch.append({**rng.choice(rows), "id": next_id, "doc_id": f"load-{next_id}"})
            added.append(next_id)
            next_id += 1
        table.add(batch)
    fragments = len(table.snapshot().manifest.fragments)
    total, finding = [], []
    for victim in rng.sample(added, args.deletes):
        where = f"id = {victim}"
        began = time.thread_time()
        table.count_rows(where)  # the same filter evaluation a delete makes to find its rows
        found = time.thread_time()
        table.delete(where)
        done = time.thread_time()
        finding.append(1e3 * (found - began))
        total.append(1e3 * (done - found))
    return {
        "fragments": fragments,
        "rows": table.count_rows(),
        "find_ms_median": round(statistics.median(finding), 3),
        "delete_ms_median": round(statistics.median(total), 3),
        "delete_ms_mean": round(statistics.fmean(total), 3),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ls.DEFAULT_DATA, help="folder with scifact/ (or HYBRID_DATA)")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--appends", type=int, default=60)
    ap.add_argument("--deletes", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="delete_cost")
    args = ap.parse_args(argv)
    rows, _ = ls.scifact(args.data, None)
    res: dict[str, Any] = {
        "command": shlex.join(["python", "eval/delete_cost.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(("numpy", "pyarrow", "duckdb")),
        "git": git_info(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="delete-cost-") as scratch:
        res["result"] = measure(Path(scratch), rows, args)
    res["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(res["result"], flush=True)
    lines = md_intro("CPU of deletes by key after small appends", "eval/delete_cost.py", res)
    lines += md_machine(res)
    lines += [
        f"Thread CPU; load average before {res['load_average_before']}, after {res['load_average_after']}.",
        "",
        grid([["measure", "value"], *([k, str(v)] for k, v in res["result"].items())], labels=1),
        "",
    ]
    write_results(RESULTS_DIR, args.name, res, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
