"""The search benchmark's run: data, systems and index builds, exact answers, timed queries, profile.

Queries run one at a time in this process.  BLAS/OpenMP are limited to one
thread (``OMP_NUM_THREADS=1`` etc., set by ``eval/bench_search.py`` before numpy
is imported), hnswlib queries use ``num_threads=1`` and tantivy searches are
single-threaded.  Two systems use more than one thread per query by design and
are measured as they are: hybrid runs the vector and text branches of a hybrid
query concurrently in its own 2+-thread pool, and LanceDB runs its two branches
in a Python thread pool on top of its Rust runtime (all cores unless
``--lance-cpu-threads``).  Index builds use the libraries' own threading
(hnswlib ``num_threads=-1`` in hybrid and in the floor; tantivy writer with 1
thread in both; LanceDB its runtime).

Per query type, every system's files are first read into the page cache (``--cache warm``), then
``--repeats`` passes; in each pass every system runs ``--warmup`` untimed queries and then all the
queries on its own, one system after the other in an order that rotates between passes.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.files import warm_page_cache
from bench.frame import Guard, fmt, get, log, mean, now, pct, scratch_dir
from bench.search_data import FILTERS, QUERY_TYPES, Corpus, K, filter_for, qt_name
from bench.search_floor import FloorSystem
from bench.search_hybrid import HybridSystem
from bench.search_lance import LanceSystem
from bench.search_profile import PROFILED, profile_hybrid
from bench.search_quality import ground_truth, overlap
from bench.search_system import System, result_ids, run_query

QUALITY_METRIC = {
    "vector": "recall@10 vs exact cosine",
    "text": "overlap@10 with tantivy BM25",
    "hybrid": "overlap@10 with exact-branch RRF",
}


def generate(args: argparse.Namespace, res: dict[str, Any]) -> tuple[Corpus, pa.Table, list[str], np.ndarray, Any]:
    """[1] The corpus and the queries (texts, vectors, source docs)."""
    log(f"[1] generating {args.docs:,} docs (Zipf s={args.zipf}, vocab {args.vocab:,}, ~{args.text_bytes} B text)")
    t0 = now()
    corpus = Corpus(args)
    table = corpus.generate()
    qtext, qvec, qdocs = corpus.queries(table, args.queries)
    res["generation_seconds"] = now() - t0
    res["data"] = {
        "docs": table.num_rows,
        "text_mb": table.column("text").nbytes / 1e6,
        "mean_text_bytes": table.column("text").nbytes / table.num_rows,
        "words_per_doc": corpus.words_per_doc,
        "vector_mb": corpus.vectors.nbytes / 1e6,
        "queries": len(qtext),
        "query_examples": qtext[:5],
        "query_words_mean": float(np.mean([len(q.split()) for q in qtext])),
    }
    log(
        f"    {res['generation_seconds']:.1f}s; text {res['data']['text_mb']:,.0f} MB "
        f"({res['data']['mean_text_bytes']:,.0f} B/doc), e.g. queries {qtext[:3]}"
    )
    return corpus, table, qtext, qvec, qdocs


def make_systems(args: argparse.Namespace, root: Path, guard: Guard) -> dict[str, System]:
    def make(name: str) -> System:
        if name == "hybrid":
            return HybridSystem(root, args)
        if name == "floor":
            return FloorSystem(root, args)
        return LanceSystem(root, args, name.split("-", 1)[1])

    systems = guard.construct(args.systems, make)
    if "floor" not in systems:
        raise SystemExit("the floor system is needed for the ground truth (BM25); add it to --systems")
    return systems


def build_index(systems: dict[str, System], name: str, what: str, guard: Guard, fn, *args) -> bool:
    """One index build (after a gc, followed by an os.sync); a system whose build fails is dropped."""
    gc.collect()
    if guard.or_drop(systems, name, what, fn, *args) is None:
        return False
    os.sync()
    return True


def build(args, systems: dict[str, System], table: pa.Table, corpus: Corpus, guard: Guard, res: dict[str, Any]):
    """[2] Load every table and build its indexes (a system that fails is dropped), then open them."""
    log("[2] loading tables and building indexes")
    for name, st in list(systems.items()):
        guard.or_drop(systems, name, "load", st.load, *((table, corpus) if isinstance(st, FloorSystem) else (table,)))
    os.sync()
    # full-text indexes first, then vectors (hybrid's ef_search decides the floor's and LanceDB's ef)
    for name, st in list(systems.items()):
        if not build_index(systems, name, "create_fts_index", guard, st.build_fts):
            continue
        log(f"    {name}: FTS index {st.build['fts_seconds']:.1f}s, {st.build['fts_bytes'] / 1e6:,.1f} MB")
    ef = 64
    if "hybrid" in systems:
        st = systems["hybrid"]
        if build_index(systems, "hybrid", "create_vector_index", guard, st.build_vector):
            ef = st.ef_search
            log(
                f"    hybrid: vector index {st.build['vector_seconds']:.1f}s, "
                f"{st.build['vector_bytes'] / 1e6:,.1f} MB (ef_search {ef})"
            )
    res["ef_search"] = ef
    if "floor" in systems:
        from hybrid.index import fulltext
        from hybrid.query import vector_plan

        res["floor_plan"] = {  # the planner's constants the floor follows
            "EXACT_COST": vector_plan.EXACT_COST, "HNSW_COST": vector_plan.HNSW_COST,
            "MAX_FETCH": vector_plan.MAX_FETCH, "TERM_SET_COST": fulltext.TERM_SET_COST,
        }  # fmt: skip
    for name, st in list(systems.items()):
        if name == "hybrid":
            continue
        if not build_index(systems, name, "create_vector_index", guard, st.build_vector, ef):
            continue
        log(f"    {name}: vector index {st.build['vector_seconds']:.1f}s, {st.build['vector_bytes'] / 1e6:,.1f} MB")
        if isinstance(st, LanceSystem) and args.lance_scalar_index != "none":
            if guard.guarded(name, "create_scalar_index", st.build_scalar, args.lance_scalar_index) is not None:
                log(f"    {name}: {args.lance_scalar_index} index on category {st.build['scalar_seconds']:.1f}s")
            os.sync()
    for name, st in list(systems.items()):
        guard.or_drop(systems, name, "open", st.prepare)
    for name, st in systems.items():
        if hasattr(st, "footprint"):
            st.build["disk"] = st.footprint()
        res["per_system"][name] = {"build": st.build}
    if "floor" not in systems:
        raise SystemExit("the floor failed to build; see the errors above")


def exact_answers(args, systems, corpus, qtext, qvec, qdocs, res: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    """[3] The exact answers every system's quality is measured against; hybrid's plans."""
    log("[3] exact answers (numpy cosine, tantivy BM25 top-50, exact-branch RRF)")
    t0 = now()
    truth = ground_truth(corpus, systems["floor"], qtext, qvec, args.filters)
    res["truth_seconds"] = now() - t0
    res["allowed_rows"] = {str(p): float(np.mean(truth[p]["allowed"])) for p in FILTERS}
    res["filter_examples"] = {
        str(p): [filter_for(p, i, args.filters).sql for i in range(3)] for p in FILTERS if p is not None
    }
    res["query_self_hit"] = float(np.mean([d in set(t[:K].tolist()) for d, t in zip(qdocs, truth[None]["vector"])]))
    if "hybrid" in systems:
        res["hybrid_plans"] = {
            qt_name("hybrid", p): systems["hybrid"].explain(qtext[0], qvec[0], filter_for(p, 0, args.filters))
            for p in FILTERS
        }
    return truth


def timed_queries(args, systems: dict[str, System], qtext, qvec, truth, guard: Guard, res: dict[str, Any]) -> None:
    """[4] Every query type: each system's block of queries alone, `--repeats` passes."""
    names = list(systems)
    log(
        f"[4] {len(qtext)} queries x {len(QUERY_TYPES)} query types x {args.repeats} passes, one at a time, "
        f"one system at a time ({', '.join(names)}); page cache: {args.cache}"
    )
    lat: dict[str, dict[str, list[float]]] = {s: {} for s in names}
    quality: dict[str, dict[str, list[float]]] = {s: {} for s in names}
    # cpu: the process's CPU time (every thread of it), for a machine loaded past its cores, where a
    # query's wall time is mostly its wait for a core
    clock = time.process_time if getattr(args, "clock", "wall") == "cpu" else now
    for kind, p in QUERY_TYPES:
        qn = qt_name(kind, p)
        wheres = [filter_for(p, i, args.filters) for i in range(len(qtext))]
        for s in names:
            lat[s][qn] = []
            quality[s][qn] = []
        if args.cache == "warm":
            for s in names:
                for d in systems[s].dirs():
                    warm_page_cache(d)
        live = list(names)
        for rep in range(args.repeats):
            # each system runs its block of queries alone (LanceDB's runtime threads keep running briefly
            # after a query returns and slow down whatever runs next); the order rotates between passes
            order = live[rep % len(live) :] + live[: rep % len(live)] if live else []
            for s in order:
                ok = True
                for i in range(min(args.warmup, len(qtext))):  # untimed warm-up of this block
                    if guard.guarded(s, qn, run_query, systems[s], kind, wheres[i], qtext[i], qvec[i]) is None:
                        ok = False
                        break
                if not ok:
                    live.remove(s)
                    continue
                gc.collect()
                gc.disable()
                try:
                    for i in range(len(qtext)):
                        t0 = clock()
                        out = guard.guarded(s, qn, run_query, systems[s], kind, wheres[i], qtext[i], qvec[i])
                        dt = clock() - t0
                        if out is None:
                            continue
                        lat[s][qn].append(dt * 1000)
                        if rep == 0:
                            quality[s][qn].append(overlap(result_ids(out), truth[p][kind][i]))
                finally:
                    gc.enable()
        for s in names:
            res["per_system"][s].setdefault("queries", {})[qn] = {
                "p50_ms": pct(lat[s][qn], 50),
                "p95_ms": pct(lat[s][qn], 95),
                "mean_ms": mean(lat[s][qn]),
                "samples": len(lat[s][qn]),
                "quality": mean(quality[s][qn]),
                "quality_min": min(quality[s][qn]) if quality[s][qn] else None,
                "quality_metric": QUALITY_METRIC[kind],
                "latencies_ms": [round(x, 4) for x in lat[s][qn]],
            }
        log(
            f"    {qn:18s} "
            + "  ".join(
                f"{s}={fmt(pct(lat[s][qn], 50))}/{fmt(pct(lat[s][qn], 95))}ms q={fmt(mean(quality[s][qn]), '.3f')}"
                for s in names
            )
        )


def profile(args, systems: dict[str, System], qtext, qvec, guard: Guard, res: dict[str, Any]) -> None:
    """[5] cProfile of hybrid's queries, when hybrid's hybrid-query p50 is above the floor's (or always)."""
    h = get(res["per_system"], "hybrid", "queries", "hybrid", "p50_ms")
    f = get(res["per_system"], "floor", "queries", "hybrid", "p50_ms")
    if "hybrid" not in systems or not (args.profile == "always" or (args.profile == "auto" and h and f and h > f)):
        return
    log(f"[5] cProfile of hybrid: one pass over the queries of {[qt_name(*p) for p in PROFILED]}")
    res["profiles"] = []
    for kind, p in PROFILED:
        prof = guard.guarded(
            "hybrid",
            f"profile {qt_name(kind, p)}",
            profile_hybrid,
            systems["hybrid"],
            kind,
            p,
            args.filters,
            qtext,
            qvec,
        )
        if prof is not None:
            res["profiles"].append(prof)
            log(f"    {prof['query_type']}: {prof['per_query_ms']:.2f} ms/query under the profiler; top by own time:")
            print("\n".join(prof["tottime"].splitlines()[:16]))


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = now()
    guard = Guard()
    res: dict[str, Any] = {"per_system": {}, "queries": {}}
    with scratch_dir(args, "bench_search_") as root:
        corpus, table, qtext, qvec, qdocs = generate(args, res)
        systems = make_systems(args, root, guard)
        build(args, systems, table, corpus, guard, res)
        truth = exact_answers(args, systems, corpus, qtext, qvec, qdocs, res)
        timed_queries(args, systems, qtext, qvec, truth, guard, res)
        profile(args, systems, qtext, qvec, guard, res)
    return guard.finish(res, t_start)
