#!/usr/bin/env python
"""Our retrieval quality on every collection in ../shared/data, and the safe-default check.

For each collection this runs ``hybrid.eval.pipeline.run_evaluation`` (the same
code as ``hybrid eval``) with BM25 (stemmed and plain), dense all-MiniLM-L6-v2,
hybrid RRF (k = 60, the customary constant, and k = 10 / 20), Linear (alpha
0.3 / 0.5 / 0.7), DBSF, all with equal branch weights, and the library default
``hybrid`` (RRF k = 20 with calibrated branch weights), writing a full report
per collection to eval/results/quality/<collection>/. It then writes
eval/results/quality.md: nDCG@10 per run and collection, and the safe-default
table (best single branch, the old default RRF k = 60, the new default).

    python eval/quality_collections.py [--data ../shared/data] [--limit-queries N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hybrid.eval.pipeline import EvalSettings, run_evaluation  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = ("scifact", "nfcorpus", "cranfield", "xquad-r/en", "xquad-r/zh")
RUNS = (
    "bm25",
    "bm25-plain",
    "dense",
    "hybrid",
    "hybrid-rrf",
    "hybrid-rrf-k20",
    "hybrid-rrf-k10",
    "hybrid-linear-0.3",
    "hybrid-linear-0.5",
    "hybrid-linear-0.7",
    "hybrid-dbsf",
    "hybrid-dbsf-auto",
    "hybrid-linear-0.5-auto",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("HYBRID_DATA", REPO.parent / "shared/data")))
    parser.add_argument("--collections", default=",".join(COLLECTIONS))
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--limit-queries", type=int, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "eval" / "results")
    args = parser.parse_args()
    runs = args.runs.split(",")
    table: dict[str, dict[str, float]] = {}
    for name in args.collections.split(","):
        settings = EvalSettings(runs=runs, limit_queries=args.limit_queries, progress=False)
        out = args.out / "quality" / name.replace("/", "-")
        report, _ = run_evaluation(args.data / name, out, settings, log=lambda m: print(m, file=sys.stderr))
        table[report.collection] = {e.name: e.mean["nDCG@10"] for e in report.entries}
        print(report.collection, json.dumps({k: round(v, 4) for k, v in table[report.collection].items()}))
    names = list(table)
    lines = [
        "# Retrieval quality on every collection (nDCG@10)",
        "",
        f"Command: `python eval/quality_collections.py {' '.join(sys.argv[1:])}`. Embedder: the packaged",
        "all-MiniLM-L6-v2; BM25: tantivy with English stemming (or jieba for Chinese, chosen automatically).",
        "Runs other than `hybrid` and `*-auto` use equal branch weights. Full reports with Recall@100, MRR,",
        "MAP, P@10, p-values and latency: [quality/](quality/).",
        "",
        "| run | " + " | ".join(names) + " |",
        "|---|" + "--:|" * len(names),
    ]
    for run in runs:
        lines.append(f"| {run} | " + " | ".join(f"{table[n][run]:.4f}" for n in names) + " |")
    lines += [
        "",
        "## The safe default",
        "",
        "Target: the default hybrid query scores at least the best single branch minus 0.01 everywhere.",
        "",
        "| collection | best branch | RRF k=60, equal weights (old default) | default `hybrid` | default - best |",
        "|---|--:|--:|--:|--:|",
    ]
    for n in names:
        r = table[n]
        best_name = max(("bm25", "dense"), key=lambda b: r[b])
        lines.append(
            f"| {n} | {r[best_name]:.4f} ({best_name}) | {r['hybrid-rrf']:.4f} | {r['hybrid']:.4f} "
            f"| {r['hybrid'] - r[best_name]:+.4f} |"
        )
    (args.out / "quality.md").write_text("\n".join(lines) + "\n")
    (args.out / "quality.json").write_text(json.dumps(table, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
