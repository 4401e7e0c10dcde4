#!/usr/bin/env python
"""The safe-default table: per collection, the best single branch, RRF k=60 with equal weights (the old
default) and the library's default hybrid query, all measured through the public API by
``eval/peer_lancedb.py`` (same MiniLM vectors, same queries). Reads eval/results/peer_lancedb.json and
writes eval/results/safe_default.md.

    python eval/safe_default.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    peer = json.loads((RESULTS / "peer_lancedb.json").read_text())["collections"]
    lines = [
        "# The safe default (nDCG@10)",
        "",
        "Target: the default hybrid query scores at least the best single branch minus 0.01 on every",
        "collection. Numbers from `python eval/peer_lancedb.py` (eval/results/peer_lancedb.md), tabulated by",
        "`python eval/safe_default.py`. `RRF k=60`: equal weights, the customary fusion (LanceDB's default).",
        'Default: `Linear(alpha=0.7)` over min-max scores with "auto" branch weights: the self-retrieval',
        "calibration (`hybrid/query/calibration.py`) times each list's steepness for the query",
        "(`hybrid/query/confidence.py`); chosen in `eval/results/fusion_study.md`.",
        "",
        "| collection | best branch | RRF k=60 | default | default - best | LanceDB hybrid (RRF) |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, c in peer.items():
        runs = {k: v["nDCG@10"] for k, v in c["runs"].items()}
        best = max(("bm25", "dense"), key=lambda b: runs[b])
        lines.append(
            f"| {name} | {runs[best]:.4f} ({best}) | {runs['hybrid-rrf']:.4f} | {runs['hybrid-default']:.4f} "
            f"| {runs['hybrid-default'] - runs[best]:+.4f} | {runs['lance-hybrid-rrf']:.4f} |"
        )
    (RESULTS / "safe_default.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
