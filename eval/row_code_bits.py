#!/usr/bin/env python
"""How many candidates the second rescoring stage must read for 8-bit and 4-bit row codes (issue 19).

The corpus and queries of ``eval/bench_ann_kinds.py`` (``--rows`` x 384 clustered unit vectors; queries
are rows plus noise of norm 0.5). Per query, the candidates are its exact 160 nearest rows (what a
compressed index at rescore 16 proposes at best); they are ranked by per-dimension scalar codes of
``bits`` bits (each dimension's range its [0.1%, 99.9%] quantiles over a 100,000-row sample, as
:mod:`hybrid.index.row_codes` does for 8 bits), and the table reports the share of the exact top 10
among the best ``reads x 10`` by the codes: the read count that keeps the exact results. Memory per
row: ``dim x bits / 8`` bytes.

    python eval/row_code_bits.py --rows 200000 --name row_code_bits_a19d
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "eval"))

from bench_ann_kinds import batches, queries_and_truth  # noqa: E402

READS = (1.0, 1.5, 2.0, 3.0, 4.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--name", default="row_code_bits")
    a = ap.parse_args()
    x = np.concatenate([v for _, v in batches(a.rows, 0)])
    qs, _, _ = queries_and_truth(a.rows, a.queries, 0)
    sample = x[np.random.default_rng(0).choice(len(x), min(100_000, len(x)), replace=False)]
    low, high = np.quantile(sample, [0.001, 0.999], axis=0)
    out: dict[str, dict[str, float]] = {}
    for bits in (8, 4):
        levels = 2**bits - 1
        step = (high - low) / levels
        codes = np.clip(np.rint((x - low) / step), 0, levels).astype(np.float32)
        kept: dict[float, list[float]] = {r: [] for r in READS}
        for q in qs:
            s = x @ q
            cand = np.argpartition(-s, 160)[:160]
            exact = set(cand[np.argsort(-s[cand])][:10].tolist())
            order = cand[np.argsort(-(codes[cand] @ (q * step)))]
            for r in READS:
                kept[r].append(len(exact & set(order[: int(10 * r)].tolist())) / 10)
        out[str(bits)] = {str(r): float(np.mean(v)) for r, v in kept.items()}
        print(bits, "bits:", out[str(bits)], flush=True)
    report = {"rows": a.rows, "dim": x.shape[1], "queries": a.queries, "kept": out, "load": os.getloadavg()}
    results = REPO / "eval" / "results"
    (results / f"{a.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Row codes: reads needed to keep the exact top 10 ({a.rows:,} x {x.shape[1]}, {a.queries} queries)",
        "",
        "`python eval/row_code_bits.py --rows " + f"{a.rows}`: the exact 160 nearest rows of each query ranked by",
        "per-dimension scalar codes; share of the exact top 10 among the best reads x 10 by the codes.",
        "",
        "| bits | bytes per row | " + " | ".join(f"reads {r:g}" for r in READS) + " |",
        "|---|---|" + "---|" * len(READS),
    ]
    for bits, kept_by in out.items():
        row = " | ".join(f"{kept_by[str(r)]:.3f}" for r in READS)
        lines.append(f"| {bits} | {x.shape[1] * int(bits) // 8} | {row} |")
    (results / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
