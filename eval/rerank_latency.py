#!/usr/bin/env python
"""Cross-encoder rerank latency: what `table.tune`'s reranker costs per query, by candidates, tokens and threads.

The tuned reranker is the packaged all-MiniLM-L6-v2 (22M parameters) as a cross-encoder; its cost does
not depend on its trained weights, so by default the packaged encoder with a new head is timed (or
``--model`` a tune run's ``reranker`` folder). Each configuration reranks ``--queries`` SciFact questions
over that many draws of ``top_n`` SciFact abstracts (the first call, which loads the model, is not
counted). Results go to ``eval/results/rerank_latency.json`` and ``.md``::

    python eval/rerank_latency.py [--data DIR] [--model DIR] [--queries 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.bench.frame import machine_info  # noqa: E402
from eval.peer_lancedb import default_data  # noqa: E402
from hybrid.feedback.reranker import TunedReranker, packaged_encoder  # noqa: E402

CONFIGS = [(t, length, n) for t in (1, 2) for length in (128, 256) for n in (20, 50)]


def time_config(model: Path, texts: list[str], queries: list[str], threads: int, length: int, top_n: int) -> dict:
    rng = np.random.default_rng(0)
    reranker = TunedReranker(model, top_n=top_n, blend=0.25, max_length=length, threads=threads, column="text")
    times = []
    for i, query in enumerate(queries):
        pick = rng.choice(len(texts), top_n, replace=False)
        rows = pa.table({"text": [texts[j] for j in pick], "_score": np.linspace(1.0, 0.0, top_n)})
        start = time.perf_counter()
        reranker.rerank(query, rows)
        if i:  # the first call loads the model
            times.append((time.perf_counter() - start) * 1e3)
    p50, p95 = np.percentile(times, [50, 95])
    return {"threads": threads, "max_length": length, "top_n": top_n, "p50_ms": float(p50), "p95_ms": float(p95)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--model", type=Path, default=None, help="a tune run's reranker folder (default: packaged)")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "rerank_latency")
    args = ap.parse_args()
    model = args.model or packaged_encoder()
    corpus = [json.loads(line) for line in (args.data / "scifact" / "corpus.jsonl").read_text().splitlines()]
    texts = [f"{c['title']} {c['text']}" for c in corpus[:2000]]
    asked = (args.data / "scifact" / "queries.jsonl").read_text().splitlines()
    queries = [json.loads(line)["text"] for line in asked][: args.queries + 1]
    rows = []
    for threads, length, top_n in CONFIGS:
        rows.append(time_config(model, texts, queries, threads, length, top_n))
        r = rows[-1]
        print(f"threads {threads}, {length} tokens, top {top_n}: p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms")
    info = machine_info(("torch", "sentence-transformers"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"machine": info, "results": rows}, indent=1))
    lines = [
        "# Cross-encoder rerank latency (the tuned reranker's model)",
        "",
        f"Command: `python eval/rerank_latency.py --queries {args.queries}`; model: "
        f"{'a tune run' if args.model else 'the packaged all-MiniLM-L6-v2 with a new head'} (22M parameters); "
        f"{args.queries} SciFact questions, each over `top_n` SciFact abstracts; 2-core machine, quiet.",
        "",
        "| torch threads | max tokens | top_n | p50 ms | p95 ms |",
        "|--:|--:|--:|--:|--:|",
        *(
            f"| {r['threads']} | {r['max_length']} | {r['top_n']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} |"
            for r in rows
        ),
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
