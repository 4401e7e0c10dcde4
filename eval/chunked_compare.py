"""Grouped and flat chunked runs against the unchunked run of the same `hybrid eval --chunk` report.

For each report folder given (what ``hybrid eval <collection> --runs bm25,dense,hybrid --chunk 128
--out <folder>`` wrote), prints one line per chunked run: the unchunked nDCG@10, the chunked one,
and the two-sided paired randomization test (10,000 trials) of per-query nDCG@10 between them
(the report itself tests every run against its baseline, bm25).

    python eval/chunked_compare.py <report folder> [<report folder> ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hybrid.eval.metrics import paired_randomization_test

SUFFIXES = ("@chunks", "@chunks-len", "@chunks-best", "@chunks-flat", "@chunks-groups")


def compare(folder: Path) -> list[str]:
    report = json.loads((folder / "report.json").read_text())
    runs = {r["name"]: r for r in report["runs"]}
    lines = []
    for base in ("bm25", "dense", "hybrid"):
        if base not in runs:
            continue
        a = runs[base]["per_query"]
        for suffix in SUFFIXES:
            chunked = runs.get(base + suffix)
            if chunked is None:
                continue
            b = chunked["per_query"]
            queries = sorted(a)
            p = paired_randomization_test([a[q]["nDCG@10"] for q in queries], [b[q]["nDCG@10"] for q in queries])
            before, after = runs[base]["mean"]["nDCG@10"], chunked["mean"]["nDCG@10"]
            lines.append(f"{report['collection']} {base}{suffix}: {before:.4f} -> {after:.4f} (p {p:.3f})")
    return lines


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for folder in sys.argv[1:]:
        print("\n".join(compare(Path(folder))))


if __name__ == "__main__":
    main()
