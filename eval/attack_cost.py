#!/usr/bin/env python
"""What one of the load test's attack searches costs, alone: wall time and memory, under a time budget.

Builds the load test's table (SciFact from ``$HYBRID_DATA/scifact``, HashingEmbedder(256), BM25 +
HNSW; or ``--corpus synthetic``), then runs each attack search of ``eval/load_server.py`` (limit
1,000, 256 query terms, each heavy ``where``, hybrid and fts) in a fresh process under
``hybrid.time_budget(--seconds)`` and the server's default ``hybrid.Limits`` (``sql_memory``
512MB), after one plain search has loaded the indexes. Reported per search: the outcome, the
wall time against the budget, and the growth of the process's peak resident memory (VmHWM)
over the search against the configured DuckDB memory limit. Results go to
``eval/results/<name>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "eval"))

from load_server import DEFAULT_DATA, build_table, git_commit, scifact, synthetic  # noqa: E402

HEAVY = [
    "md5(md5(md5(text) || text) || text) > 'f' OR length(repeat(text, 16)) > 1000000",
    "regexp_matches(lower(text) || upper(text), '(a|e|i|o|u)[^aeiou]{2,}(a|e|i|o|u).*z')",
    "len(range(60000)) = 60000 AND length(lpad(text, 60000, 'x')) = 60000",
    "length(repeat('0123456789', 6000)) = 60000 AND levenshtein(text, upper(text)) > 3",
]

CHILD = """
import json, sys, time
from pathlib import Path
import hybrid
from hybrid.query.limits import Limits, set_limits

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

db, query_type, words, where, seconds, memory = sys.argv[1:7]
set_limits(Limits(memory=memory, seconds=10.0))
t = hybrid.connect(db, upkeep=None).open_table("docs")
t.search(query_type=query_type).text("heart attack").limit(10).to_arrow()  # indexes loaded
before = hwm()
start = time.monotonic()
try:
    with hybrid.time_budget(float(seconds)):
        rows = t.search(query_type=query_type).text(words).where(where).limit(1000).to_arrow()
    outcome = f"{rows.num_rows} rows"
except hybrid.LimitError as exc:
    stage = exc.stage.split()[0] if isinstance(exc, hybrid.TimeBudgetError) else ""
    outcome = type(exc).__name__ + (f" at the {stage}" if stage else "")
took = time.monotonic() - start
print(json.dumps({"outcome": outcome, "seconds": round(took, 2), "peak_growth_mb": round(hwm() - before, 1)}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", choices=["scifact", "synthetic"], default="scifact")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--seconds", type=float, default=10.0, help="the time budget (the server's request_seconds)")
    p.add_argument("--memory", default="512MB", help="DuckDB's memory limit (the server's sql_memory)")
    p.add_argument("--out", type=Path, default=REPO / "eval" / "results")
    p.add_argument("--name", default="attack_cost")
    args = p.parse_args(argv)
    rows, _ = scifact(args.data, None) if args.corpus == "scifact" else synthetic(5_000, 0)
    rng = random.Random(0)
    text = " ".join(rng.choice(rows)["text"] for _ in range(20))[:4000]
    words = " ".join(re.findall(r"\w+", text)[:256])
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hybrid-attack-") as tmp:
        db = Path(tmp) / "db"
        build_table(db, rows, 256)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for query_type in ("hybrid", "fts"):
            for where in HEAVY:
                cmd = [sys.executable, "-c", CHILD, str(db), query_type, words, where, str(args.seconds), args.memory]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
                if out.returncode != 0:
                    raise SystemExit(out.stderr[-2000:])
                found = json.loads(out.stdout.strip().splitlines()[-1])
                results.append({"query_type": query_type, "where": where, **found})
                print(query_type, found, where[:50], flush=True)
    report = {
        "command": shlex.join(["python", "eval/attack_cost.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "git_commit": git_commit(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "budget_s": args.seconds,
        "memory_limit": args.memory,
        "query_terms": len(words.split()),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# One attack search alone: time and memory under the budget",
        "",
        f"`{report['command']}`",
        "",
        f"- the load test's table ({len(rows)} {args.corpus} documents, HashingEmbedder(256), BM25 + HNSW); each "
        f"search: limit 1,000, {report['query_terms']} query terms, one heavy `where`, in a fresh process after "
        f"one plain search; time budget {args.seconds:g} s, DuckDB memory limit {args.memory}",
        f"- machine: {os.cpu_count()} CPUs shared with other jobs (load average {report['loadavg']} at the end), "
        f"so times are noisy; commit {report['git_commit']}; {report['date']}",
        "",
        "| query | where | outcome | seconds | peak RSS growth MB |",
        "|---|---|---|--:|--:|",
    ]
    for r in results:
        where = r["where"].replace("|", "\\|")
        lines.append(f"| {r['query_type']} | `{where}` | {r['outcome']} | {r['seconds']} | {r['peak_growth_mb']} |")
    worst_s = max(r["seconds"] for r in results)
    worst_mb = max(r["peak_growth_mb"] for r in results)
    lines += ["", f"Longest: {worst_s} s (budget {args.seconds:g} s); largest peak growth: {worst_mb} MB.", ""]
    (args.out / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
