#!/usr/bin/env python
"""Where exact search over the allowed rows stops beating HNSW-then-filter, on this machine.

Builds one table (`--docs` rows of `--dim`-d clustered unit vectors, an HNSW index with
the defaults) and times, one query at a time on one thread, the two primitives the
filtered vector branch chooses between (``hybrid/query/vector_plan.py``):

* exact search over m allowed rows (the executor's own gather + BLAS path), for m in
  ``--allowed``; fitted as ``ms = a x m``;
* an HNSW search for the ``fetch`` nearest rows (``VectorIndex.search``), for fetch in
  ``--fetch`` with the index's ef; fitted as ``ms = c x max(ef, fetch)``.

The ratio c / a is the planner's ``HNSW_COST`` (in units of ``EXACT_COST`` = 1); the
crossover for k = 10 follows. Medians of `--repeats` timed calls per point. Writes
``eval/results/filter_crossover.json`` and ``.md``.

    python eval/filter_crossover.py                     # 100,000 x 384-d
    python eval/filter_crossover.py --docs 20000 --dim 64
"""

# ruff: noqa: E402 - the thread variables must be set before numpy loads its BLAS
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

import hybrid
from hybrid.index.exact import exact_search
from hybrid.index.overfetch import overfetch_depth
from hybrid.index.vector import VectorIndex
from hybrid.query import vector_plan
from hybrid.query.allowed import masks_of


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(100, dim)).astype(np.float32)
    v = centers[rng.integers(0, 100, n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def median_ms(search: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    """Median ms of `search(q)` over the queries, after one untimed call."""
    search(queries[-1])
    times = []
    for q in queries[:-1]:
        start = time.perf_counter()
        search(q)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def measured_crossover(exact: dict[int, float], hnsw: dict[int, float], ef: int, k: int, docs: int) -> float:
    """The allowed-row count where exact search (interpolated over m) costs what an HNSW search
    over-fetching overfetch_depth(m, k, docs) rows costs (interpolated over its depth)."""
    ms = np.array(sorted(exact), dtype=float)
    depths = np.array([max(ef, f) for f in sorted(hnsw)], dtype=float)
    hnsw_ms = np.array([hnsw[f] for f in sorted(hnsw)])
    grid = np.geomspace(ms[0], ms[-1], 400)
    exact_cost = np.interp(grid, ms, [exact[int(m)] for m in ms])
    depth = np.array([max(ef, overfetch_depth(int(m), k, docs)) for m in grid], dtype=float)
    hnsw_cost = np.interp(depth, depths, hnsw_ms)
    beyond = depth > depths[-1]
    hnsw_cost[beyond] = hnsw_ms[-1] * depth[beyond] / depths[-1]  # linear in depth past the last point
    cheaper = np.flatnonzero(exact_cost > hnsw_cost)
    return float(grid[cheaper[0]]) if len(cheaper) else float(ms[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--allowed", default="250,500,1000,2000,4000,8000,16000")
    ap.add_argument("--fetch", default="10,64,128,256,512,1024,2048")
    ap.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    vectors = clustered(args.docs, args.dim, 0)
    queries = clustered(args.repeats + 1, args.dim, 1)
    with tempfile.TemporaryDirectory() as tmp:
        flat = pa.array(vectors.ravel())
        t = hybrid.connect(tmp).create_table(
            "t", pa.table({"id": np.arange(args.docs), "v": pa.FixedSizeListArray.from_arrays(flat, args.dim)})
        )
        t.create_vector_index("v")
        view = t.indexed_snapshot()
        entry = next(e for e in view.entries() if e.kind == "vector")
        index = view.index(entry)
        assert isinstance(index, VectorIndex)
        rng = np.random.default_rng(2)
        exact = {}
        for m in [int(x) for x in args.allowed.split(",")]:
            ids = np.sort(rng.choice(args.docs, size=m, replace=False)).astype(np.uint64)
            masks = masks_of(view.snapshot, ids)
            exact[m] = median_ms(lambda q, masks=masks: exact_search(view, "v", q, "cosine", args.k, masks), queries)
        hnsw = {}
        for fetch in [int(x) for x in args.fetch.split(",")]:
            hnsw[fetch] = median_ms(lambda q, fetch=fetch: index.search(q, fetch), queries)
    ef = index.ef_search
    crossover = measured_crossover(exact, hnsw, ef, args.k, args.docs)
    ratio = (
        crossover * vector_plan.EXACT_COST / max(index.ef_search, overfetch_depth(int(crossover), args.k, args.docs))
    )
    a = float(np.median([v / m for m, v in exact.items()]))
    c = float(np.median([v / max(ef, f) for f, v in hnsw.items()]))
    result = {
        "docs": args.docs, "dim": args.dim, "k": args.k, "ef_search": ef, "repeats": args.repeats,
        "exact_ms": exact, "hnsw_ms": hnsw, "exact_ms_per_row": a, "hnsw_ms_per_depth": c,
        "hnsw_cost_over_exact_cost": ratio, "crossover_allowed_rows": crossover,
        "planner_hnsw_cost": vector_plan.HNSW_COST, "machine": f"{os.cpu_count()} cores, {platform.platform()}",
    }  # fmt: skip
    lines = [
        "# Filtered vector search: exact vs HNSW-then-filter",
        "",
        f"Generated by `python eval/filter_crossover.py --docs {args.docs} --dim {args.dim}`; "
        f"{result['machine']}; one thread; median of {args.repeats} calls per point.",
        "",
        "| allowed rows | exact ms |",
        "|--:|--:|",
        *[f"| {m:,} | {v:.3f} |" for m, v in exact.items()],
        "",
        "| HNSW fetch | depth max(ef, fetch) | ms |",
        "|--:|--:|--:|",
        *[f"| {f:,} | {max(ef, f):,} | {v:.3f} |" for f, v in hnsw.items()],
        "",
        f"Median costs: exact {a * 1e3:.3f} us per allowed row; HNSW {c * 1e3:.2f} us per unit of depth. "
        f"Measured crossover for k = {args.k} on {args.docs:,} rows (where exact stops being cheaper than "
        f"HNSW over-fetching (hybrid.index.overfetch)): **{crossover:,.0f}** allowed rows "
        f"({crossover / args.docs:.1%}); the planner puts it there with HNSW_COST / EXACT_COST = **{ratio:.1f}** "
        f"(it uses {vector_plan.HNSW_COST:g}).",
    ]
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "filter_crossover.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "filter_crossover.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
