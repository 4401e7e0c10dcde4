#!/usr/bin/env python
"""Where exact search over the allowed rows stops beating HNSW-then-filter, on this machine.

Builds one table (`--docs` rows of `--dim`-d clustered unit vectors, an HNSW index with
the defaults) and times, one query at a time on one thread, the two primitives the
filtered vector branch chooses between (``hybrid/query/vector_plan.py``):

* exact search over m allowed rows (the executor's own gather + BLAS path), for m in
  ``--allowed``; fitted as ``ms = a x m``;
* an HNSW search for the ``fetch`` nearest rows (``VectorIndex.search``), for fetch in
  ``--fetch`` with the index's ef; fitted as ``ms = c x max(ef, fetch)``.

The crossover (interpolated) gives the planner's ``HNSW_COST`` (in units of ``EXACT_COST`` = 1).

The text side (``hybrid/index/fulltext.py``): on a full-text index of the same number of
documents (200 words each, Zipf(1) over 30,000 words; three-word Zipf queries), a filtered
BM25 top-k restricted by a term-set clause on the allowed ids vs by over-fetching, for m in
``--text-allowed``; where the two cross (interpolated) gives ``TERM_SET_COST`` (in units of
one over-fetched hit). Medians of `--repeats` timed calls per point. Writes
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
from typing import Any

import numpy as np
import pyarrow as pa

import hybrid
from hybrid.index import fulltext
from hybrid.index.catalog import masks_of
from hybrid.index.exact import exact_search
from hybrid.index.overfetch import overfetch_depth
from hybrid.index.vector import VectorIndex
from hybrid.query import vector_plan
from hybrid.query.text import Match


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


def text_costs(t: hybrid.Table, args: argparse.Namespace, allowed_counts: list[int]) -> dict[str, Any]:
    """ms of a filtered BM25 top-k with a term-set clause and with over-fetching, per allowed count."""
    rng = np.random.default_rng(3)
    vocab = np.array([f"w{i}" for i in range(30_000)])
    p = 1.0 / np.arange(1, 30_001)
    p /= p.sum()
    docs = [" ".join(vocab[rng.choice(30_000, 200, p=p)]) for _ in range(args.docs)]
    tt = hybrid.connect(t.path.parent).create_table("text", pa.table({"id": np.arange(args.docs), "text": docs}))
    tt.create_fts_index(["text"])
    view = tt.indexed_snapshot()
    index = view.index(next(e for e in view.entries() if e.kind == "fts"))
    assert isinstance(index, fulltext.FullTextIndex)
    queries = [index.compile(Match(" ".join(vocab[rng.choice(30_000, 3, p=p)]))) for _ in range(args.repeats + 1)]
    costs: dict[str, dict[int, float]] = {"term_set": {}, "overfetch": {}}
    chosen = fulltext.use_term_set
    try:
        for m in allowed_counts:
            ids = np.sort(rng.choice(args.docs, size=m, replace=False)).astype(np.uint64)
            for way in costs:
                fulltext.use_term_set = lambda *_, way=way: way == "term_set"  # type: ignore[assignment]
                costs[way][m] = median_ms(lambda q, ids=ids: index.search(q, args.k, allowed=ids), queries)
    finally:
        fulltext.use_term_set = chosen
    m = np.array(allowed_counts, dtype=float)
    depth = np.array([overfetch_depth(int(x), args.k, args.docs) for x in m], dtype=float)
    grid = np.geomspace(m[0], m[-1], 400)
    term_set = np.interp(grid, m, [costs["term_set"][int(x)] for x in m])
    overfetch = np.interp(grid, m, [costs["overfetch"][int(x)] for x in m])
    dearer = np.flatnonzero(term_set > overfetch)
    crossover = float(grid[dearer[0]]) if len(dearer) else float(m[-1])
    cost = overfetch_depth(int(crossover), args.k, args.docs) / crossover  # the TERM_SET_COST that puts it there
    return {**costs, "depth": dict(zip(allowed_counts, depth.tolist())), "crossover": crossover, "term_set_cost": cost}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--allowed", default="250,500,1000,2000,4000,8000,16000")
    ap.add_argument("--fetch", default="10,64,128,256,512,1024,2048")
    ap.add_argument("--text-allowed", default="10,30,100,300,1000,3000")
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
        text = text_costs(t, args, [int(x) for x in args.text_allowed.split(",")])
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
        "hnsw_cost_over_exact_cost": ratio, "text": text,
        "term_set_cost": text["term_set_cost"], "planner_term_set_cost": fulltext.TERM_SET_COST,
        "crossover_allowed_rows": crossover,
        "planner_hnsw_cost": vector_plan.HNSW_COST, "machine": f"{os.cpu_count()} cores, {platform.platform()}",
    }  # fmt: skip
    lines = [
        "# Filtered search: exact vs HNSW-then-filter, term-set clause vs over-fetching",
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
        "",
        "| allowed rows | BM25 top-k, term-set clause ms | over-fetching ms | over-fetch depth |",
        "|--:|--:|--:|--:|",
        *[
            f"| {m:,} | {text['term_set'][m]:.3f} | {text['overfetch'][m]:.3f} | {text['depth'][m]:,.0f} |"
            for m in text["term_set"]
        ],
        "",
        f"Measured crossover: **{text['crossover']:,.0f}** allowed rows; the planner puts it there with "
        f"TERM_SET_COST = **{text['term_set_cost']:.1f}** over-fetched hits per allowed id "
        f"(it uses {fulltext.TERM_SET_COST:g}).",
    ]
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "filter_crossover.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "filter_crossover.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
