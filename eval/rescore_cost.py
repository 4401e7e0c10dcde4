#!/usr/bin/env python
"""What exact rescoring costs a compressed index at depth: int8 HNSW against the float HNSW, per query type.

One table (``--rows`` x 384 clustered vectors as in ``eval/bench_ann_kinds.py``, a ``category`` column
with a scalar index, a short ``text`` of random words with a full-text index) is built twice in
``--work`` (kept and reused): once with ``kind="hnsw"``, once with ``kind="hnsw_int8"`` (both ef 64, the
int8 one with its default rescore 4). Each query type runs ``--queries`` times per pass, the two
indexes alternating pass by pass (``--passes``), in one process per table. Reported per type: the
median CPU time of a query (``time.process_time``, every thread of the process: on a machine shared
with other jobs it moves far less than wall time) and the median wall time, and int8 / float ratios.

    nice -n 10 python eval/rescore_cost.py --work <scratch> [--rows 100000]

Writes ``eval/results/rescore_cost.json`` and ``.md`` (``--name`` changes the stem).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "eval"))

from bench_ann_kinds import DIM, batches  # noqa: E402

WORDS = 3_000
TYPES = ("vector", "vector k50", "hybrid", "where 10%", "where 1%")


def record_batches(rows: int, seed: int) -> Iterator[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(WORDS)])
    for start, x in batches(rows, seed):
        for s in range(0, len(x), 10_000):
            xs = x[s : s + 10_000]
            ids = np.arange(start + s, start + s + len(xs))
            text = [" ".join(words[rng.integers(0, WORDS, 20)]) for _ in range(len(xs))]
            yield pa.record_batch({
                "id": pa.array(ids), "category": pa.array((ids * 7919) % 100), "text": pa.array(text),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(xs.ravel()), DIM),
            })  # fmt: skip


def build(a: argparse.Namespace, kind: str) -> dict[str, Any]:
    import hybrid

    folder = a.work / kind
    done = folder / "built.json"
    if done.exists() and json.loads(done.read_text()).get("rows") == a.rows:
        return dict(json.loads(done.read_text()))
    db = hybrid.connect(folder, upkeep=None)
    t = db.create_table("docs", record_batches(a.rows, a.seed), mode="overwrite")
    t.create_fts_index("text")
    t.create_scalar_index("category")
    t.create_vector_index("vector", kind=kind, ef_search=64, replace=True)
    out = {"rows": a.rows, "kind": kind}
    done.write_text(json.dumps(out) + "\n")
    return out


def serve(a: argparse.Namespace, kind: str, seed: int) -> dict[str, Any]:
    """One pass: every query type, `a.queries` times, in this process (after 10 untimed warm-ups)."""
    import hybrid

    t = hybrid.connect(a.work / kind, upkeep=None).open_table("docs")
    rng = np.random.default_rng([a.seed, seed])
    sample = t.to_arrow(["vector", "text"], where=f"id < {min(a.rows, 5_000)}")
    pick = rng.choice(sample.num_rows, a.queries)
    qs = np.stack(sample.column("vector").to_numpy(zero_copy_only=False)[pick]).astype(np.float32)
    qs += rng.standard_normal(qs.shape).astype(np.float32) * np.float32(0.5 / np.sqrt(DIM))
    texts = [" ".join(sample.column("text")[int(i)].as_py().split()[:3]) for i in pick]

    def run(kind_of_query: str, i: int) -> None:
        s = t.search(qs[i], vector_column="vector")
        if kind_of_query == "hybrid":
            s = t.search(query_type="hybrid").vector(qs[i]).text(texts[i])
        elif kind_of_query == "where 10%":
            s = s.where(f"category >= {i % 90} AND category < {i % 90 + 10}")
        elif kind_of_query == "where 1%":
            s = s.where(f"category = {i % 100}")
        s.limit(50 if kind_of_query == "vector k50" else 10).select(["id"]).to_arrow()

    out: dict[str, Any] = {}
    for name in TYPES:
        for i in range(10):
            run(name, i)
        cpu, wall = [], []
        for i in range(a.queries):
            c0, w0 = time.process_time(), time.perf_counter()
            run(name, i)
            cpu.append((time.process_time() - c0) * 1e3)
            wall.append((time.perf_counter() - w0) * 1e3)
        out[name] = {"cpu_ms": float(np.median(cpu)), "wall_ms": float(np.median(wall))}
    out["strategy_where_10pct"] = t.search(qs[0], vector_column="vector").where("category < 10").limit(10).explain()
    return out


def depth(a: argparse.Namespace) -> dict[str, Any]:
    """The int8 index's deep search (the 195 hits a 10% filter over-fetches) with the candidates the rule
    gives (`candidate_count`) and with `rescore` x k of them: recall@195 against exact search, recall@10
    of the rows the filter allows, and the CPU time of candidates + rescoring."""
    import hybrid
    from hybrid.index.rescore import candidate_count, rescored, searcher

    t = hybrid.connect(a.work / "hnsw_int8", upkeep=None).open_table("docs")
    view = t.indexed_snapshot()
    s = searcher(view, next(e for e in view.entries() if e.kind == "vector"))
    table = t.to_arrow(["vector", "category"], with_rowid=True)
    rowids = table.column("_rowid").to_numpy()
    x = np.stack(table.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cat = table.column("category").to_numpy()
    rng = np.random.default_rng([a.seed, 11])
    qs = x[rng.choice(len(x), a.queries)] + rng.standard_normal((a.queries, DIM)).astype(np.float32) * 0.025
    k = 195
    out: dict[str, Any] = {"k": k, "rescore": s.rescore}
    for n in (candidate_count(k, s.rescore), int(k * s.rescore)):
        deep, filtered, cpu = [], [], []
        for i, q in enumerate(qs):
            c0 = time.process_time()
            ids, _ = rescored(view, "vector", q, "cosine", s.index.candidates(q, n, s.index.level), k)
            cpu.append((time.process_time() - c0) * 1e3)
            sims = x @ (q / np.linalg.norm(q))
            deep.append(len(set(ids.tolist()) & set(rowids[np.argsort(-sims)[:k]].tolist())) / k)
            ok = (cat >= i % 90) & (cat < i % 90 + 10)
            want = set(rowids[np.argsort(-np.where(ok, sims, -9.0))[:10]].tolist())
            allowed = set(rowids[ok].tolist())
            got = [r for r in ids.tolist() if r in allowed][:10]
            filtered.append(len(set(got) & want) / 10)
        out[str(n)] = {"recall_at_195": float(np.mean(deep)), "filtered_recall_at_10": float(np.mean(filtered)),
                       "cpu_ms": float(np.median(cpu))}  # fmt: skip
    return out


def child(a: argparse.Namespace, step: str, kind: str, seed: int = 0) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--step", step, "--kind", kind, "--work", str(a.work), "--rows", str(a.rows)]
    cmd += ["--queries", str(a.queries), "--seed", str(a.seed), "--pass-seed", str(seed)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode:
        raise SystemExit(f"{step} {kind} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--name", default="rescore_cost")
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="", help=argparse.SUPPRESS)
    ap.add_argument("--pass-seed", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.step:  # a child process
        step = {"build": lambda: build(a, a.kind), "serve": lambda: serve(a, a.kind, a.pass_seed)}.get(a.step)
        print(json.dumps(step() if step else depth(a)))
        return
    a.work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"rows": a.rows, "queries": a.queries, "passes": a.passes, "load": [], "passes_out": []}
    report["builds"] = {kind: child(a, "build", kind) for kind in ("hnsw", "hnsw_int8")}
    for p in range(a.passes):
        order = ("hnsw", "hnsw_int8") if p % 2 == 0 else ("hnsw_int8", "hnsw")
        report["passes_out"].append({kind: child(a, "serve", kind, p) for kind in order})
        report["load"].append(round(os.getloadavg()[0], 1))
        print(f"pass {p + 1}/{a.passes} done, load {report['load'][-1]}", flush=True)
    report["depth"] = child(a, "depth", "hnsw_int8")
    write(report, a.name)


def write(report: dict[str, Any], name: str) -> None:
    out = REPO / "eval" / "results"
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    med = {
        kind: {t: {m: float(np.median([p[kind][t][m] for p in report["passes_out"]])) for m in ("cpu_ms", "wall_ms")}
               for t in TYPES}
        for kind in ("hnsw", "hnsw_int8")
    }  # fmt: skip
    lines = [
        f"# Rescoring at depth: int8 HNSW vs float HNSW, {report['rows']:,} x 384",
        "",
        f"`python eval/rescore_cost.py --rows {report['rows']}` on a shared 2-core machine (load average after each"
        f" pass: {', '.join(map(str, report['load']))}). Both ef 64; int8 rescore 4. Medians over"
        f" {report['passes']} passes of {report['queries']} queries each (the indexes alternating pass by pass)"
        " of the per-pass medians. CPU = `process_time` of the query (all threads), wall = `perf_counter`.",
        "",
        "| query | float CPU ms | int8 CPU ms | int8 / float CPU | float wall ms | int8 wall ms | int8 / float wall |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in TYPES:
        f, i = med["hnsw"][t], med["hnsw_int8"][t]
        lines.append(
            f"| {t} | {f['cpu_ms']:.2f} | {i['cpu_ms']:.2f} | {i['cpu_ms'] / f['cpu_ms']:.2f}"
            f" | {f['wall_ms']:.2f} | {i['wall_ms']:.2f} | {i['wall_ms'] / f['wall_ms']:.2f} |"
        )
    dp = report["depth"]
    lines += [
        "",
        f"The int8 index's deep search ({dp['k']} hits, what a 10% filter over-fetches; rescore {dp['rescore']:g}),"
        f" {report['queries']} queries (table rows plus noise), against exact search:",
        "",
        "| candidates | recall@195 | filtered (10%) recall@10 | CPU ms (candidates + rescoring) |",
        "|---|---|---|---|",
    ]
    for n, r in dp.items():
        if isinstance(r, dict):
            lines.append(f"| {n} | {r['recall_at_195']:.4f} | {r['filtered_recall_at_10']:.3f} | {r['cpu_ms']:.2f} |")
    plan = report["passes_out"][0]["hnsw_int8"]["strategy_where_10pct"]
    lines += ["", "How the 10% filter ran (int8):", "", "```", plan, "```", ""]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
