#!/usr/bin/env python
"""Search benchmark: `hybrid` vs LanceDB vs a floor (raw hnswlib + raw tantivy + numpy RRF), side by side.

One run generates a synthetic corpus (Zipf text of ~1.5 KB per doc from a fixed
vocabulary, 384-d clustered unit vectors, an int ``category`` with 100 values),
builds every system's indexes on it and then runs the same queries, one at a
time, against all of them:

* vector only, text only, hybrid (text + vector, RRF k=60), each unfiltered and
  with a prefilter ``category < 1`` (1 % of the rows) and ``category < 10`` (10 %)
  (``--filters varied``: a different category range of the same width per query).

Systems: ``hybrid`` (our table with its default indexes), ``floor`` (raw hnswlib + raw
tantivy + numpy RRF: what any engine has to pay at least), ``lance-hnsw`` and
``lance-ivfpq`` (LanceDB with an HNSW-SQ or an IVF-PQ vector index).  Quality is
measured against exact answers computed in the run.

Results go to ``eval/results/search.json`` and ``eval/results/search.md`` and a
table is printed.  See ``eval/README.md`` for how to run it::

    python eval/bench_search.py [--docs N] [--queries N] [--repeats N] [--filters fixed|varied] [--results-dir DIR] ...

The pieces are in the ``bench`` package next to this script: ``bench/search_data.py`` (corpus,
queries, filters), one adapter per system (``bench/search_hybrid.py``, ``bench/search_floor.py``,
``bench/search_lance.py``, each describing how it is driven), ``bench/search_quality.py`` (exact
answers, quality measures), ``bench/search_run.py`` (the run and its threading),
``bench/search_profile.py``, ``bench/search_report.py``, and the shared frame ``bench/frame.py``.
"""

from __future__ import annotations

import os

# One query at a time on one core: keep BLAS / OpenMP single-threaded.  This has
# to happen before numpy (and anything that loads a BLAS) is imported.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
for _v in _THREAD_VARS:
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `bench` package next to this script
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # `hybrid` from this checkout

from bench.frame import add_output_args, name_list, print_outcome, quiet_lancedb, run_and_report  # noqa: E402
from bench.search_data import SYSTEMS  # noqa: E402
from bench.search_report import machine_info, render_build, render_disk, render_md, render_table, targets  # noqa: E402
from bench.search_run import run  # noqa: E402

quiet_lancedb()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3, help="timed passes over the queries (default 3)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed queries per system and query type")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--text-bytes", type=int, default=1500)
    ap.add_argument("--vocab", type=int, default=30_000)
    ap.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent s of word frequencies")
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--latent-dim", type=int, default=32, help="per-cluster spread subspace (0: isotropic)")
    ap.add_argument("--cluster-spread", type=float, default=1.0)
    ap.add_argument("--iso-noise", type=float, default=0.2)
    ap.add_argument("--query-noise", type=float, default=0.5)
    ap.add_argument("--lance-nprobes", type=int, default=None, help="LanceDB nprobes (default: LanceDB's)")
    ap.add_argument("--lance-refine-factor", type=int, default=None, help="LanceDB refine_factor (default: none)")
    ap.add_argument(
        "--hybrid-target-recall",
        type=float,
        default=None,
        help="build hybrid's vector index with target_recall (default: none, ef_search 64)",
    )
    ap.add_argument(
        "--vector-index",
        choices=("hnsw", "hnsw_int8", "ivf_pq", "ivf_rabitq"),
        default="hnsw",
        help="kind of hybrid's vector index (default hnsw; hnsw_int8 is the analogue of LanceDB's HNSW-SQ)",
    )
    ap.add_argument(
        "--hybrid-scalar-index",
        choices=("auto", "bitmap", "btree", "none"),
        default="auto",
        help="scalar index hybrid gets on `category` for the prefilters (default auto; none: DuckDB)",
    )
    ap.add_argument(
        "--fts-positions",
        choices=("yes", "no"),
        default=None,
        help="term positions in both systems' full-text indexes (default: each system's own: hybrid yes, LanceDB no)",
    )
    ap.add_argument(
        "--lance-scalar-index",
        choices=("btree", "bitmap", "none"),
        default="btree",
        help="scalar index LanceDB gets on `category` for the prefilters (default btree)",
    )
    ap.add_argument(
        "--lance-cpu-threads", type=int, default=None, help="set LANCE_CPU_THREADS (default: LanceDB's own)"
    )
    ap.add_argument(
        "--filters",
        choices=("fixed", "varied"),
        default="fixed",
        help="fixed: `category < 1` / `category < 10` for every query (default); varied: a different "
        "category range of the same width per query (`category = c`, `category >= c AND category < c + 10`)",
    )
    ap.add_argument("--cache", choices=("warm", "asis"), default="warm")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what a query's latency is: wall time (default) or the process's CPU time, all threads (for a "
        "machine loaded past its cores, where wall time is mostly waiting for one)",
    )
    ap.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="cProfile hybrid queries (auto: when hybrid's hybrid-query p50 is above the floor's)",
    )
    add_output_args(ap, "search")
    args = ap.parse_args(argv)
    args.systems = name_list(ap, args.systems, SYSTEMS, "systems")
    if args.lance_cpu_threads is not None:
        os.environ["LANCE_CPU_THREADS"] = str(args.lance_cpu_threads)

    thread_env = {k: os.environ.get(k) for k in (*_THREAD_VARS, "LANCE_CPU_THREADS") if os.environ.get(k)}
    res, rd = run_and_report(
        args,
        argv,
        run,
        machine_info=machine_info,
        targets=targets,
        render_md=render_md,
        tables=lambda r: [render_table(r), render_build(r), render_disk(r)],
        extra_meta={"thread_env": thread_env},
    )
    print_outcome(res, rd, args.name)


if __name__ == "__main__":
    main()
