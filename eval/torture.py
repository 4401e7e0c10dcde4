#!/usr/bin/env python
"""Torture: writers killed at random moments while their disk fails at random steps.

One writer process at a time runs random operations on one table (append,
delete, update, merge_insert, add_columns, compact, full-text index builds and
merges), logging each intent and each commit to an fsynced log, while every
step of its disk I/O (file creation, each write, each fsync of a file or folder,
each link and rename) fails with probability ``--faults`` (ENOSPC after a torn
half write, or EIO). The parent kills each writer with SIGKILL after a random
``--delay`` and starts the next one on whatever was left. After every kill it
checks the table against the log: the table opens, nothing committed is lost,
the newest version is exactly a committed state, every new version reads back
exactly as logged, and every manifest verifies; at the end every version is
reread and the table takes writes. The harness is the crash test's
(``tests/storage/test_crash.py``, whose non-slow variant runs this with a small
budget in CI).

Reported: operations (commits, failed writes, no-op compactions), kills, faults
that stopped a write, kills that landed mid-write and after publishing, and
anomalies (the first failed check; there must be none)::

    python eval/torture.py [--kills 250] [--faults 0.01] [--delay 1.0 3.0] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.frame import (  # noqa: E402
    REPO,
    add_output_args,
    grid,
    machine_info,
    md_intro,
    md_machine,
    md_targets,
    print_outcome,
    run_and_report,
)

sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])  # the forkserver's too

from tests.storage.test_crash import CrashChecker, run_crash_test  # noqa: E402


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    anomaly = None
    checker: CrashChecker | None = None
    with tempfile.TemporaryDirectory(prefix="hybrid-torture-") as scratch:
        try:
            checker = run_crash_test(
                Path(scratch), args.kills, args.seed, faults=args.faults, delay=tuple(args.delay), reread_every=0
            )
        except AssertionError as exc:  # the check that failed is the finding
            anomaly = str(exc).splitlines()[0]
        except BaseException as exc:  # pytest.fail raises outside AssertionError
            anomaly = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    out: dict[str, Any] = {"seconds": time.perf_counter() - started, "anomalies": 0 if anomaly is None else 1}
    if anomaly is not None:
        out["anomaly"] = anomaly
    if checker is not None:
        commits = len(checker.known) - 1  # version 1 is the table's creation
        ops: dict[str, int] = {}
        for e in list(checker.known.values())[1:]:
            ops[e.op] = ops.get(e.op, 0) + 1
        out.update(
            operations=commits + checker.failed_writes,
            commits=commits,
            by_operation=ops,
            kills=args.kills,
            faults_that_stopped_a_write=checker.failed_writes,
            kills_mid_write=checker.kills_mid_write,
            kills_after_publish=checker.kills_after_publish,
            versions=max(checker.known),
        )
    return out


def targets(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    def met(ok: bool) -> str:
        return "MET" if ok else "MISSED"

    return [
        (">= 10,000 operations", met(res.get("operations", 0) >= 10_000), f"{res.get('operations', 0):,}"),
        (">= 200 kills", met(res.get("kills", 0) >= 200), str(res.get("kills", 0))),
        (
            ">= 200 injected faults",
            met(res.get("faults_that_stopped_a_write", 0) >= 200),
            str(res.get("faults_that_stopped_a_write", 0)),
        ),
        ("0 anomalies (lost or wrong rows, unreadable versions)", met(not res["anomalies"]), res.get("anomaly", "0")),
    ]


def tables(res: dict[str, Any]) -> list[str]:
    keys = (
        "operations",
        "commits",
        "kills",
        "faults_that_stopped_a_write",
        "kills_mid_write",
        "kills_after_publish",
        "versions",
        "anomalies",
        "seconds",
    )
    rows = [["measure", "value"]] + [[k, f"{res[k]:,.0f}" if k in res else "n/a"] for k in keys]
    ops = [["operation", "commits"]] + [[k, str(v)] for k, v in sorted(res.get("by_operation", {}).items())]
    return [grid(rows, labels=1), grid(ops, labels=1)]


def render_md(res: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = md_intro("Torture: kills and disk faults", "eval/torture.py", meta)
    lines += md_machine(meta)
    lines += ["## Totals\n", *tables(res)[:1], "", "## Commits by operation\n", tables(res)[1], ""]
    lines += md_targets(targets(res))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=250)
    ap.add_argument("--faults", type=float, default=0.01, help="chance that any disk step of a writer fails")
    ap.add_argument("--delay", type=float, nargs=2, default=[1.0, 3.0], help="seconds before each kill (min max)")
    ap.add_argument("--seed", type=int, default=7)
    add_output_args(ap, "torture")
    args = ap.parse_args(argv)
    res, rd = run_and_report(
        args,
        argv,
        run,
        machine_info=lambda: machine_info(("numpy", "pyarrow", "tantivy", "duckdb")),
        targets=targets,
        render_md=render_md,
        tables=tables,
    )
    print_outcome(res, rd, args.name)


if __name__ == "__main__":
    main()
