#!/usr/bin/env python
"""Cross-encoder rerank latency: what `table.tune`'s reranker costs per query, by candidates, tokens and threads.

The tuned reranker is the packaged all-MiniLM-L6-v2 (22M parameters) as a cross-encoder; its cost does
not depend on its trained weights, so by default the packaged encoder with a new head is timed (or
``--model`` a tune run's ``reranker`` folder). Each configuration reranks ``--queries`` SciFact questions
over that many draws of ``top_n`` SciFact abstracts (the first call, which loads the model, is not
counted). ``--backend`` times torch (fp32), the int8 ONNX copy on onnxruntime (what a tuned table serves
with; for the packaged model an ONNX copy is exported to a temporary folder first), or both in the same
run. Results go to ``eval/results/rerank_latency.json`` and ``.md`` (``--name`` changes the stem)::

    python eval/rerank_latency.py [--data DIR] [--model DIR] [--queries 30] [--backend torch,onnx]
        [--lengths 128,256] [--top-n 20,50] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.bench.frame import machine_info  # noqa: E402
from eval.peer_lancedb import default_data  # noqa: E402
from hybrid.feedback.onnx_reranker import export_onnx, onnx_path  # noqa: E402
from hybrid.feedback.reranker import TunedReranker, load_cross_encoder, packaged_encoder  # noqa: E402


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def time_config(
    model: Path, texts: list[str], queries: list[str], threads: int, length: int, top_n: int, backend: str = "torch"
) -> dict:
    rng = np.random.default_rng(0)
    reranker = TunedReranker(
        model, top_n=top_n, blend=0.25, max_length=length, threads=threads, column="text", backend=backend
    )
    times = []
    for i, query in enumerate(queries):
        pick = rng.choice(len(texts), top_n, replace=False)
        rows = pa.table({"text": [texts[j] for j in pick], "_score": np.linspace(1.0, 0.0, top_n)})
        start = time.perf_counter()
        reranker.rerank(query, rows)
        if i:  # the first call loads the model
            times.append((time.perf_counter() - start) * 1e3)
    p50, p95 = np.percentile(times, [50, 95])
    return {
        "backend": backend,
        "threads": threads,
        "max_length": length,
        "top_n": top_n,
        "p50_ms": float(p50),
        "p95_ms": float(p95),
    }


def with_onnx(model: Path | None, folder: Path) -> Path:
    """A model folder holding an int8 ONNX copy: `model`'s (exported if missing) or the packaged encoder's with
    its new head saved to `folder` (so that torch and ONNX time the same weights)."""
    if model is None:
        load_cross_encoder(packaged_encoder(), 256).save_pretrained(str(folder))
        model = folder
    if not onnx_path(model).exists():
        export_onnx(model, 256)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--model", type=Path, default=None, help="a tune run's reranker folder (default: packaged)")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--backend", default="torch", help="torch, onnx or both: torch,onnx")
    ap.add_argument("--lengths", type=ints, default=[128, 256], help="max tokens per pair")
    ap.add_argument("--top-n", type=ints, default=[20, 50], help="candidates per query")
    ap.add_argument("--threads", type=ints, default=[1, 2])
    ap.add_argument("--name", default="rerank_latency")
    args = ap.parse_args()
    out = Path(__file__).parent / "results" / args.name
    backends = [b for b in args.backend.split(",") if b]
    tmp = tempfile.TemporaryDirectory()
    model = with_onnx(args.model, Path(tmp.name)) if "onnx" in backends else args.model or packaged_encoder()
    corpus = [json.loads(line) for line in (args.data / "scifact" / "corpus.jsonl").read_text().splitlines()]
    texts = [f"{c['title']} {c['text']}" for c in corpus[:2000]]
    asked = (args.data / "scifact" / "queries.jsonl").read_text().splitlines()
    queries = [json.loads(line)["text"] for line in asked][: args.queries + 1]
    rows = []
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    for threads in args.threads:
        for length in args.lengths:
            for top_n in args.top_n:
                for backend in backends:  # both backends back to back: the same machine state
                    rows.append(time_config(model, texts, queries, threads, length, top_n, backend))
                    r = rows[-1]
                    print(
                        f"{backend}: threads {threads}, {length} tokens, top {top_n}: p50 {r['p50_ms']:.0f} ms, "
                        f"p95 {r['p95_ms']:.0f} ms",
                        flush=True,
                    )
    tmp.cleanup()
    info = machine_info(("torch", "sentence-transformers", "onnxruntime"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"machine": info, "load": load, "results": rows}, indent=1))
    public = [a for a in sys.argv[1:] if not a.startswith("/") and not a.startswith("--data")]
    lines = [
        "# Cross-encoder rerank latency (the tuned reranker's model)",
        "",
        f"Command: `python eval/rerank_latency.py {' '.join(public)}`; model: "
        f"{'a tune run' if args.model else 'the packaged all-MiniLM-L6-v2 with a new head'} (22M parameters); "
        f"{args.queries} SciFact questions, each over `top_n` SciFact abstracts; 2-core machine shared with other "
        f"jobs (load average {load} at the start): compare backends within this table only (each configuration "
        "runs torch and ONNX back to back). onnx = the int8 ONNX copy on onnxruntime (what a tuned table serves "
        "with), torch = fp32 sentence-transformers.",
        "",
        "| backend | threads | max tokens | top_n | p50 ms | p95 ms |",
        "|---|--:|--:|--:|--:|--:|",
        *(
            f"| {r['backend']} | {r['threads']} | {r['max_length']} | {r['top_n']} | {r['p50_ms']:.0f} | "
            f"{r['p95_ms']:.0f} |"
            for r in rows
        ),
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
