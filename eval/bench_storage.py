#!/usr/bin/env python
"""Storage benchmark: `hybrid` table vs LanceDB vs plain Parquet, side by side.

One run ingests the same synthetic data into all three stores (chunk by chunk,
each chunk generated once and handed to every store in turn) and then measures

1. append throughput (rows/s) of the whole chunked ingestion,
2. ``take`` of 1 / 100 / 10,000 random rows, all columns (ms),
3. full scan of the ``text`` column (MB/s = reference Arrow nbytes / seconds),
4. open time of a separate table that has 1,000 versions (hybrid, LanceDB),
5. bytes written by adding one 384-d float32 column to the big table.

Results go to ``eval/results/storage.json`` and ``eval/results/storage.md``
and a table is printed to stdout.  See ``eval/README.md`` for how to run it.

The steps, how each store is driven and the page-cache handling are described
in ``bench/storage_steps.py`` and ``bench/storage_stores.py``; the report is
``bench/storage_report.py`` and the shared frame (timing, machine, results)
``bench/frame.py``.  Run it from the repository root::

    python eval/bench_storage.py [--rows N] [--chunk-rows N] [--repeats N] [--results-dir DIR] [--name STEM] ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `bench` package next to this script

from bench.frame import (  # noqa: E402  (fmt ... pkg_version: other eval scripts import them from here)
    add_output_args,
    fmt,
    log,
    mem_total_bytes,
    name_list,
    now,
    peak_rss_mb,
    pkg_version,
    print_outcome,
    run_and_report,
)
from bench.storage_data import STORES  # noqa: E402
from bench.storage_report import machine_info, render_md, render_table, targets  # noqa: E402
from bench.storage_steps import run  # noqa: E402

__all__ = ["fmt", "log", "main", "mem_total_bytes", "now", "peak_rss_mb", "pkg_version", "run_and_report"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk-rows", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    add_output_args(ap, "storage")
    ap.add_argument("--stores", default=",".join(STORES))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--text-bytes", type=int, default=1024)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--version-rows", type=int, default=10)
    ap.add_argument("--parquet-row-group", type=int, default=None)
    ap.add_argument(
        "--cache",
        choices=("warm", "cold", "asis"),
        default="warm",
        help="page-cache state before each timed take/scan: warm = read all of the store's files first "
        "(default), cold = evict them with posix_fadvise(DONTNEED) after re-opening the table, "
        "asis = do nothing",
    )
    ap.add_argument("--cold", action="store_true", help="same as --cache cold")
    ap.add_argument("--skip-add-columns", action="store_true")
    ap.add_argument("--skip-versions", action="store_true")
    args = ap.parse_args(argv)
    if args.cold:
        args.cache = "cold"
    args.stores = name_list(ap, args.stores, STORES, "stores")

    res, rd = run_and_report(
        args,
        argv,
        run,
        machine_info=machine_info,
        targets=targets,
        render_md=render_md,
        tables=lambda r: [render_table(r)],
    )
    print_outcome(res, rd, args.name)


if __name__ == "__main__":
    main()
