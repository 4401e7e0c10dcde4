#!/usr/bin/env python
"""The default hybrid with a vector list's steepness measured against an unrelated row's distance
(:mod:`hybrid.query.unrelated`, the library's default) and against distance 0 (before), side by side.

Per collection, one table through the public API with ``hybrid eval``'s defaults (the embedder
chosen by the corpus language, default analysis, the questions embedded in batches), then nDCG@10
of bm25, dense and the default hybrid both ways on the same table (the "before" run turns the
reference off: every vector list measured from distance 0), the difference with a paired
randomization test's p-value, and the CPU p50 of a hybrid query both ways (the reference costs one product of
a 256-row sample with the query vector). ``x@en``: the English questions against language x's
sentences (XQuAD-R shares question ids).

    python eval/unrelated_ab.py --collections cranfield,xquad-r/de --name unrelated_ab_s39

Writes eval/results/<name>.md and .json after each collection.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench.frame import RESULTS_DIR, git_info, machine_info, write_results  # noqa: E402
from peer_lancedb import default_data  # noqa: E402

from hybrid import connect  # noqa: E402
from hybrid.embedders.auto import embedder_for  # noqa: E402
from hybrid.eval import evaluate, load_beir, load_queries  # noqa: E402
from hybrid.eval.metrics import paired_randomization_test  # noqa: E402
from hybrid.eval.query_vectors import embed_questions  # noqa: E402
from hybrid.eval.runs import RunConfig, build_table, execute  # noqa: E402
from hybrid.query import executor, unrelated  # noqa: E402

RUNS = (("bm25", "fts"), ("dense", "vector"), ("hybrid", "hybrid"))


def measure(data: Path, name: str) -> dict[str, Any]:
    base, _, asked = name.partition("@")
    coll = load_beir(data / base)
    if asked:
        coll = coll.with_queries_from(load_queries(data / Path(base).parent / asked), f"{asked}-to-{coll.name}")
    embedder = embedder_for(d["text"] for d in coll.corpus.values())
    queries = coll.judged_queries
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        table = build_table(connect(tmp), coll, embedders={"vector": embedder}, fts={"bm25": {}})
        embed_questions(embedder, list(queries.values()))
        row: dict[str, Any] = {"embedder": embedder.name, "queries": len(queries)}
        per_query: dict[str, dict[str, float]] = {}
        for label, mode in RUNS:
            per_query[label] = _ndcg(execute(table, RunConfig(label, mode), queries).run, coll.qrels)
        with mock.patch.object(executor, "_unrelated", lambda view, b: None):
            per_query["hybrid_from_0"] = _ndcg(execute(table, RunConfig("hybrid", "hybrid"), queries).run, coll.qrels)
            with mock.patch.object(executor, "fusion_window", lambda candidates: None):
                before = execute(table, RunConfig("hybrid", "hybrid"), queries).run
                per_query["hybrid_before"] = _ndcg(before, coll.qrels)
        for label, values in per_query.items():
            row[label] = round(float(np.mean(list(values.values()))), 4)
        new, old = (np.array([per_query[k][q] for q in per_query["hybrid"]]) for k in ("hybrid", "hybrid_from_0"))
        row["gain"] = round(row["hybrid"] - row["hybrid_from_0"], 4)
        row["p"] = round(paired_randomization_test(list(new), list(old)), 3)
        row["margin"] = round(row["hybrid"] - max(row["bm25"], row["dense"]), 4)
        row["margin_from_0"] = round(row["hybrid_from_0"] - max(row["bm25"], row["dense"]), 4)
        row["cpu_ms"] = _cpu_p50(table, list(queries.values())[:200])
        row["unrelated_p50"] = _unrelated_p50(table, embedder, list(queries.values())[:200])
    row["seconds"] = round(time.perf_counter() - started)
    return row


def _ndcg(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    return {q: v["nDCG@10"] for q, v in evaluate(run, qrels, ["nDCG@10"])[1].items()}


def _cpu_p50(table: Any, texts: list[str]) -> dict[str, float]:
    """CPU p50 (ms) of a default hybrid query (limit 10) with and without the reference, turns alternating."""
    times: dict[str, list[float]] = {"reference": [], "from_0": []}
    for n, text in enumerate(texts):
        table.search(text, query_type="hybrid").limit(10).to_arrow()  # warm: the question's vector cached
        for way in list(times)[:: 1 if n % 2 else -1]:  # who goes first alternates
            q = table.search(text, query_type="hybrid").limit(10)
            with mock.patch.object(executor, "_unrelated", lambda view, b: None) if way == "from_0" else _nothing():
                c0 = time.process_time()
                q.to_arrow()
                times[way].append((time.process_time() - c0) * 1e3)
    return {way: round(statistics.median(v), 3) for way, v in times.items()}


def _unrelated_p50(table: Any, embedder: Any, texts: list[str]) -> float:
    """The median over questions of the distance an unrelated row lies at (the reference)."""
    view = table.indexed_snapshot()
    far = [unrelated.distance(view, "vector", np.asarray(embedder.embed_query(t), np.float32), "cosine") for t in texts]
    return round(statistics.median(f for f in far if f is not None), 3)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# A vector list measured against an unrelated row ({report['name']})",
        "",
        f"Generated by `{report['command']}` on {report['date']}; code `{report['git']}`.",
        "",
        "nDCG@10 with `hybrid eval`'s defaults. `hybrid`: the library's default (a vector list's steepness",
        "measured against the distance of an unrelated row, `hybrid.query.unrelated`); `from 0`: the same",
        "hybrid with every vector list measured from distance 0 (the rule before). `margin`: hybrid minus the",
        "better of its two branches. `before`: from 0 and without the fusion window (every candidate the limit-100",
        "run fetched counted in the fusion: the rule before this change, under which a limit-100 query's top 10",
        "differed from a limit-10 query's). `p`: paired randomization test over the questions. CPU: p50 ms of a",
        "hybrid query (limit 10, 200 questions, the two ways alternating). `unrelated row at`: the median over",
        "those questions of the cosine distance an unrelated row lies at (the mean over the table's 256-row sample).",
        "",
        "| collection | embedder | queries | bm25 | dense | hybrid | from 0 | gain | p | margin | margin from 0 "
        "| before | CPU ms | CPU ms from 0 | unrelated row at |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, r in report["rows"].items():
        lines.append(
            f"| {name} | {r['embedder']} | {r['queries']} | {r['bm25']:.4f} | {r['dense']:.4f} | {r['hybrid']:.4f} "
            f"| {r['hybrid_from_0']:.4f} | {r['gain']:+.4f} | {r['p']} | {r['margin']:+.4f} | "
            f"{r['margin_from_0']:+.4f} | {r['hybrid_before']:.4f} | {r['cpu_ms']['reference']:.2f} | "
            f"{r['cpu_ms']['from_0']:.2f} | "
            f"{r['unrelated_p50']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--collections", default="cranfield,scifact,nfcorpus,webfaq,xquad-r/en,xquad-r/de")
    ap.add_argument("--name", default="unrelated_ab")
    args = ap.parse_args()
    report: dict[str, Any] = {
        "name": args.name,
        "command": " ".join(["python eval/unrelated_ab.py", *sys.argv[1:]]).replace(str(args.data), "<data>"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "git": str((git_info() or {}).get("commit", "unknown"))[:12],
        "machine": machine_info(("numpy", "tantivy", "hnswlib")),
        "rows": {},
    }
    for name in [c for c in args.collections.split(",") if c]:
        report["rows"][name] = measure(args.data, name)
        print(name, json.dumps(report["rows"][name]), flush=True)
        write_results(RESULTS_DIR, args.name, report, to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
