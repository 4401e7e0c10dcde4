#!/usr/bin/env python
"""Plain vector query vs its floor on the very same HNSW graph, interleaved in one process.

The search benchmark (``eval/bench_search.py``) builds the floor's hnswlib graph on its own: the
same M, ef_construction and seed, but hnswlib's insertion threads make another graph (recall 0.990
vs hybrid's 0.995 there), so part of its vector ratio is the graph, not the engine. Here the floors
are, over the table of ``eval/query_steps.py`` (the benchmark's 100k corpus and seed; ``--db``,
built on first use):

* ``same``: raw hnswlib with the graph file the table built loaded into its own ``hnswlib.Index``
  (the same M, ef_construction, graph and ef_search): the ratio to it is the engine alone;
* ``own``: the benchmark's floor, an independent graph built with its parameters (M 16,
  ef_construction 200, seed 100, one insertion thread per core), kept beside the table
  (``--db``/``floor_own_hnsw.bin``) for later runs;
* ``shared``: raw hnswlib's ``knn_query`` on the very ``hnswlib.Index`` object the table loaded
  (same graph, same memory). With systems taking turns in small blocks, a system with its own copy
  of the graph finds it colder than those sharing hybrid's (each warms the graph for the others),
  so run ``same`` and ``own`` without ``shared``, ``walk`` or ``rows`` beside them;
* ``walk`` (a diagnosis, not a floor of the benchmark's): the table's own loaded index
  (``VectorIndex.nearest``, the walk a query makes, hits as Python lists) called alone: hybrid over
  it is the cost of everything around the walk, the walk's own slowdown inside a query included;
* ``rows`` (a diagnosis too): that walk and the result table built from its hits by the query's
  fast plan (``hybrid.query.plain_vector.FastPlan.run``: ``VectorIndex.nearest``, the hits' values
  packed into a table made ahead), without the query builder, the freshness check and the plan look-up.

Each floor call is what the benchmark's floor does unfiltered (``knn_query(v, k=10,
num_threads=1)``, labels as int64); hybrid's is the benchmark's
``t.search(v, query_type="vector").limit(10).select(["id"]).to_arrow()``. Every query vector differs
(the benchmark's 200 queries), so each walk misses the CPU caches as it does there. The systems
take turns in blocks of queries (ABAB...; the order rotates per block; ``--blocks``: the block sizes,
each its own pass per round, default 10 and 200 = every query) for ``--rounds`` rounds, after one
untimed pass each; per round the ratio of the medians, reported as the median over rounds and
its spread. Results:
``eval/results/<name>.{md,json}``::

    python eval/vector_floor.py --db DIR [--rounds N] [--blocks 10,200] [--clock cpu|thread|wall]
        [--floors same,own,shared,walk,rows]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the `bench` package next to this script
sys.path.insert(1, str(HERE.parent))  # `hybrid` from this checkout

K = 10
OWN_FILE = "floor_own_hnsw.bin"
CLOCKS: dict[str, Callable[[], float]] = {
    "cpu": time.process_time,  # the search benchmark's --clock cpu: every thread of the process
    "thread": time.thread_time,
    "wall": time.perf_counter,
}
CLOCK_WORDS = {
    "cpu": "the process's CPU time (all threads; the search benchmark's `--clock cpu`)",
    "thread": "the calling thread's CPU time",
    "wall": "wall time",
}


def open_table(db: Path):
    """The benchmark table (built into `db` on first use) and its 200 query vectors."""
    import query_steps

    import hybrid

    if not (db / "queries.json").exists():
        query_steps.build(db)
    t = hybrid.connect(db).open_table("docs")
    vecs = np.asarray(json.loads((db / "queries.json").read_text())["vector"], dtype=np.float32)
    return t, vecs


def table_graph(t) -> tuple[Path, dict[str, Any]]:
    """The hnswlib file of the table's vector index over `vector`, and the index's parameters."""
    from hybrid.index.vector import INDEX_FILE

    view = t.indexed_snapshot()
    (entry,) = [e for e in view.entries() if e.kind == "vector" and e.columns == ("vector",)]
    loaded = view.index(entry)
    path = view.root / entry.path / INDEX_FILE
    if not path.is_file():
        raise SystemExit(f"the table's vector index is not an HNSW file where expected ({entry.path}/{INDEX_FILE})")
    return path, {"ef_search": loaded.ef_search, "metric": loaded.metric, **entry.params}


def table_vectors(t) -> tuple[np.ndarray, np.ndarray]:
    """(row ids, vectors) of every live row."""
    data = t.to_arrow(["vector"], with_rowid=True)
    ids = data.column("_rowid").to_numpy()
    flat = data.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return ids, flat.reshape(len(ids), -1).astype(np.float32)


def load_graph(path: Path, dim: int, ef: int):
    import hnswlib

    h = hnswlib.Index(space="cosine", dim=dim)
    h.load_index(str(path))
    h.set_ef(ef)
    return h


def own_graph(db: Path, ids: np.ndarray, vectors: np.ndarray, ef: int):
    """The benchmark floor's own graph (its build parameters), built once and kept in `db`."""
    import hnswlib

    path = db / OWN_FILE
    if not path.exists():
        h = hnswlib.Index(space="cosine", dim=vectors.shape[1])
        h.init_index(max_elements=len(ids), ef_construction=200, M=16, random_seed=100)
        h.add_items(vectors, ids.astype(np.uint64), num_threads=-1)
        h.save_index(str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)
    return load_graph(path, vectors.shape[1], ef)


def floor_call(h) -> Callable[[np.ndarray], np.ndarray]:
    def knn(v: np.ndarray) -> np.ndarray:  # the benchmark floor's unfiltered vector query
        labels, _ = h.knn_query(v, k=K, num_threads=1)
        return labels[0].astype(np.int64)

    return knn


def shared_call(t) -> Callable[[np.ndarray], np.ndarray]:
    """The benchmark floor's call on the table's own loaded hnswlib index object."""
    view = t.indexed_snapshot()
    (entry,) = [e for e in view.entries() if e.kind == "vector" and e.columns == ("vector",)]
    return floor_call(view.index(entry)._hnsw)


def walk_call(t) -> Callable[[np.ndarray], list[int]]:
    """The graph walk of hybrid's plain vector query alone, on the index the table loaded."""
    view = t.indexed_snapshot()
    (entry,) = [e for e in view.entries() if e.kind == "vector" and e.columns == ("vector",)]
    index = view.index(entry)

    def walk(v: np.ndarray) -> list[int]:
        return index.nearest(v, K)[0]

    return walk


def rows_call(t) -> Callable[[np.ndarray], Any]:
    """The walk and the result table of hybrid's plain vector query, by its fast plan
    (:class:`hybrid.query.plain_vector.FastPlan`, without the builder, freshness check and plan look-up)."""
    from hybrid.query import plain_vector

    probe = np.ones(t.schema.field("vector").type.list_size, np.float32)
    plan = plain_vector.make(t.search(probe, query_type="vector").limit(K).select(["id"]), t.indexed_snapshot())
    if plan is None:
        raise SystemExit("this table's plain vector query has no fast plan")
    return plan.run


def hybrid_call(t) -> Callable[[np.ndarray], Any]:
    def query(v: np.ndarray):
        return t.search(v, query_type="vector").limit(K).select(["id"]).to_arrow()

    return query


def same_answers(found: list[Any], hybrid: list[Any]) -> float:
    """The share of queries whose top-10 row ids, in order, are hybrid's."""
    return float(np.mean([list(map(int, f)) == list(map(int, h)) for f, h in zip(found, hybrid, strict=True)]))


def recall(found: list[Any], truth: list[set[int]]) -> float:
    return float(np.mean([len(set(map(int, f)) & s) / K for f, s in zip(found, truth, strict=True)]))


def measure(
    calls: dict[str, Callable], vecs: np.ndarray, rounds: int, blocks: list[int], clock: str
) -> dict[int, dict[str, list[list[float]]]]:
    """Per block size, system and round the per-call times (ms): in each round, for each block size in
    turn (the order alternating per round), a pass over the queries with the systems taking turns
    block by block."""
    timer = CLOCKS[clock]
    names = list(calls)
    for name in names:  # one untimed pass each: files mapped, plans made
        for v in vecs:
            calls[name](v)
    times: dict[int, dict[str, list[list[float]]]] = {b: {n: [] for n in names} for b in blocks}
    for r in range(rounds):
        for block in blocks if r % 2 == 0 else blocks[::-1]:
            for n in names:
                times[block][n].append([])
            gc.collect()
            gc.disable()
            try:
                for b, start in enumerate(range(0, len(vecs), block)):
                    shift = (r + b) % len(names)
                    for n in names[shift:] + names[:shift]:
                        fn, out = calls[n], times[block][n][r]
                        for v in vecs[start : start + block]:
                            t0 = timer()
                            fn(v)
                            out.append((timer() - t0) * 1e3)
            finally:
                gc.enable()
    return times


def summary(times: dict[str, list[list[float]]], floors: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"systems": {}, "ratios": {}}
    for n, rs in times.items():
        every = [x for r in rs for x in r]
        out["systems"][n] = {
            "p50_ms": float(np.median(every)),
            "p95_ms": float(np.percentile(every, 95)),
            "round_p50_ms": [float(np.median(r)) for r in rs],
        }
    for f in floors:
        pairs = list(zip(times["hybrid"], times[f], strict=True))
        per = [float(np.median(h) / np.median(x)) for h, x in pairs]
        p95 = [float(np.percentile(h, 95) / np.percentile(x, 95)) for h, x in pairs]
        out["ratios"][f] = {
            "p50_ratio_median": float(np.median(per)),
            "p50_ratio_min": min(per),
            "p50_ratio_max": max(per),
            "p50_ratio_iqr": [float(np.percentile(per, 25)), float(np.percentile(per, 75))],
            "p50_ratio_per_round": per,
            "p50_ratio_pooled": out["systems"]["hybrid"]["p50_ms"] / out["systems"][f]["p50_ms"],
            "p95_ratio_median": float(np.median(p95)),
        }
    return out


FLOOR_WORDS = {
    "shared": "raw hnswlib `knn_query` (as the benchmark's floor calls it) on the very `hnswlib.Index` object "
    "the table loaded: same graph, same memory, nothing of the engine around it",
    "rows": "hybrid's walk (as `walk`) and its result table from the query's fast plan "
    "(`plain_vector.FastPlan.run`), without the query builder, freshness check or plan look-up: a diagnosis",
    "walk": "hybrid's own loaded index called alone (`VectorIndex.nearest(v, 10)`: the graph walk a query "
    "makes, hits as Python lists, no query around it): a diagnosis of what the query adds to its walk",
    "same": "raw hnswlib on the graph file the table built (loaded into its own `hnswlib.Index`; same M, "
    "ef_construction, graph and ef_search): the engine alone",
    "own": "the search benchmark's floor: raw hnswlib on an independent graph built with its parameters "
    "(M 16, ef_construction 200, seed 100, insertion threads one per core; another graph, as in "
    "`eval/bench_search.py`)",
}


def render_block(block: int, res: dict[str, Any], recall: dict[str, float], same: dict[str, float]) -> list[str]:
    from bench.frame import grid

    s, r = res["systems"], res["ratios"]
    rows = [["system", "p50 ms", "p95 ms", "p50 per round (ms)", "recall@10", "hybrid's top-10"]]
    for n, v in s.items():
        per = ", ".join(f"{x:.3f}" for x in v["round_p50_ms"])
        rows.append([n, f"{v['p50_ms']:.3f}", f"{v['p95_ms']:.3f}", per, f"{recall[n]:.3f}", f"{same[n]:.0%}"])
    ratio_rows = [["hybrid / floor", "p50 ratio: median of rounds", "min..max", "IQR", "pooled p50", "p95 (median)"]]
    for f, v in r.items():
        ratio_rows.append(
            [
                f,
                f"**{v['p50_ratio_median']:.2f}**",
                f"{v['p50_ratio_min']:.2f}..{v['p50_ratio_max']:.2f}",
                f"{v['p50_ratio_iqr'][0]:.2f}..{v['p50_ratio_iqr'][1]:.2f}",
                f"{v['p50_ratio_pooled']:.2f}",
                f"{v['p95_ratio_median']:.2f}",
            ]
        )
    return [f"## Blocks of {block} queries\n", grid(ratio_rows, labels=1) + "\n", grid(rows, labels=1) + "\n"]


def render(meta: dict[str, Any], res: dict[str, Any]) -> str:
    from bench.frame import md_intro, md_load, md_machine

    a = meta["args"]
    floors = next(iter(res["blocks"].values()))["ratios"]
    lines = md_intro("Plain vector query vs the floor on the same graph, interleaved", "eval/vector_floor.py", meta)
    lines += [
        f"Table: `eval/query_steps.py`'s ({meta['rows']:,} rows of the search benchmark's corpus, seed 42; "
        f"HNSW {meta['graph']}). Queries: its {meta['queries']} query vectors, each another vector. "
        f"hybrid: `t.search(v, query_type='vector').limit(10).select(['id']).to_arrow()`.\n",
        "Floors:\n",
        *[f"- `{f}`: {FLOOR_WORDS[f]}." for f in floors],
        "",
        f"Clock: {CLOCK_WORDS[a['clock']]}, per call. One untimed pass per system, then {a['rounds']} rounds; in "
        f"each, for each block size ({a['blocks']}; the order alternating per round), a pass over the queries "
        "with the systems taking turns in blocks of that many queries (the order rotating per block), gc off "
        "while timed. Small blocks: each system runs with the caches as the others left them (as a query in a "
        "busy process); blocks of every query: each keeps its own working set warm across its pass (as "
        "`eval/bench_search.py`, which runs each system's queries on their own). A round's ratio: hybrid's "
        "median over the floor's median in that round; reported as the median over rounds, with their spread.\n",
    ]
    for block, r in res["blocks"].items():
        lines += render_block(block, r, res["recall"], res["same_answers"])
    lines += [
        "recall@10: against exact cosine top-10 over every row. hybrid's top-10: the share of queries whose "
        "10 row ids, in order, are the ones hybrid returns (100% for a floor on the same graph at the same ef).\n",
        f"{md_load(meta)}.\n",
        *md_machine(meta),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="folder of eval/query_steps.py's table (built on first use)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--blocks", default="10,200", help="comma list of block sizes: queries per turn of a system")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="cpu")
    ap.add_argument("--floors", default="same,own", help="comma list of: same, own, shared, walk, rows")
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--name", default="vector_floor")
    args = ap.parse_args(argv)
    floors = [f for f in args.floors.split(",") if f]
    if not floors or any(f not in FLOOR_WORDS for f in floors):
        ap.error(f"--floors: a comma list of {', '.join(FLOOR_WORDS)}, got {args.floors!r}")
    try:
        blocks = [int(b) for b in args.blocks.split(",") if b]
    except ValueError:
        ap.error(f"--blocks: a comma list of positive integers, got {args.blocks!r}")
    if args.rounds < 1 or not blocks or min(blocks) < 1:
        ap.error("--rounds and every --blocks size must be at least 1")
    from bench.frame import git_info, machine_info, write_results

    db = Path(args.db)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t, vecs = open_table(db)
    path, params = table_graph(t)
    ids, vectors = table_vectors(t)
    ef = int(params["ef_search"])
    calls: dict[str, Callable] = {"hybrid": hybrid_call(t)}
    graphs = {"same": lambda: load_graph(path, vectors.shape[1], ef), "own": lambda: own_graph(db, ids, vectors, ef)}
    on_table = {"shared": shared_call, "walk": walk_call, "rows": rows_call}  # on the table's loaded index
    for f in floors:
        calls[f] = on_table[f](t) if f in on_table else floor_call(graphs[f]())
    order = np.argsort(-(vectors @ vecs.T), axis=0)[:K].T  # exact top-10 positions per query
    truth = [set(ids[o].tolist()) for o in order]
    tables = ("hybrid", "rows")  # the systems that answer with a table
    found = {n: [c(v).column("_rowid").to_numpy() if n in tables else c(v) for v in vecs] for n, c in calls.items()}
    load0 = os.getloadavg()
    times = measure(calls, vecs, args.rounds, blocks, args.clock)
    res: dict[str, Any] = {"blocks": {b: summary(t_b, floors) for b, t_b in times.items()}}
    res["recall"] = {n: recall(f, truth) for n, f in found.items()}
    res["same_answers"] = {n: same_answers(f, found["hybrid"]) for n, f in found.items()}
    res["times_ms"] = {
        b: {n: [[round(x, 4) for x in r] for r in rs] for n, rs in t_b.items()} for b, t_b in times.items()
    }
    meta = {
        "command": "python eval/vector_floor.py --db DIR "
        + f"--rounds {args.rounds} --blocks {args.blocks} --clock {args.clock} --floors {args.floors} "
        + f"--name {args.name}",
        "date": started,
        "args": vars(args) | {"db": "DIR"},
        "rows": len(ids),
        "queries": len(vecs),
        "graph": ", ".join(f"{k} {v}" for k, v in params.items() if k in ("m", "ef_construction", "ef_search")),
        "loadavg_at_start": load0,
        "loadavg_at_end": os.getloadavg(),
        "machine": machine_info(("numpy", "pyarrow", "hnswlib")),
        "git": git_info(),
    }
    md = render(meta, res)
    write_results(Path(args.results_dir), args.name, {"meta": meta, **res}, md)
    print(md)


if __name__ == "__main__":
    main()
