#!/usr/bin/env python
"""Fusion study: how should the BM25 and dense branches be combined by default?

Step 1 (slow, once): for every collection, build a table (BM25 index over
title + text, all-MiniLM-L6-v2 vectors bound to it) and keep each judged
query's top-100 of each branch with its raw scores (BM25, cosine distance),
via the public search API. Saved under --work.

Step 2 (fast, repeatable): fuse those branch lists with each candidate method
in numpy, score them with ir-measures, print nDCG@10 per collection. Every
method here must need no relevance judgments at query time.

    python eval/fusion_study.py [--data ../shared/data] [--work /tmp/hybrid-fusion-study]

Writes eval/results/fusion_study.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hybrid  # noqa: E402
from hybrid.eval import evaluate, load_beir  # noqa: E402
from hybrid.eval.runs import build_table  # noqa: E402
from hybrid.query.fusion import DBSF, RRF, Linear, Ranked  # noqa: E402

Fused = tuple[np.ndarray, np.ndarray]

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = ("scifact", "nfcorpus", "cranfield", "xquad-r/en", "xquad-r/zh")
DEPTH = 100
FUSE_DEPTH = 50
"""Each branch contributes its top 50 to fusion, as the executor does for a top-10 hybrid query."""


def branch_lists(data: Path, work: Path, name: str) -> dict:
    """{qid: {"fts": [[doc, bm25], ...], "vector": [[doc, distance], ...]}} for the judged queries (cached)."""
    out = work / f"{name.replace('/', '-')}.json"
    if out.exists():
        return json.loads(out.read_text())
    from hybrid.embedders import SentenceTransformerEmbedder

    coll = load_beir(data / name)
    zh = name.endswith("zh")
    fts = {"bm25": {"tokenizer": "jieba", "language": "zh"} if zh else {"language": "en", "stem": True}}
    table = build_table(hybrid.connect(work / "db"), coll, embedders={"vector": SentenceTransformerEmbedder()}, fts=fts)
    lists: dict = {}
    for qid, text in coll.judged_queries.items():
        f = table.search(text, query_type="fts").limit(DEPTH).select(["doc_id"]).to_arrow()
        v = table.search(text, query_type="vector").limit(DEPTH).select(["doc_id"]).to_arrow()
        lists[qid] = {
            "fts": list(zip(f["doc_id"].to_pylist(), f["_bm25"].to_pylist())),
            "vector": list(zip(v["doc_id"].to_pylist(), v["_distance"].to_pylist())),
        }
    out.write_text(json.dumps({"qrels": coll.qrels, "lists": lists}))
    return json.loads(out.read_text())


def as_ranked(pairs: list, docs: dict[str, int], kind: str) -> Ranked:
    ids = np.array([docs.setdefault(d, len(docs)) for d, _ in pairs], dtype=np.uint64)
    raw = np.array([s for _, s in pairs], dtype=np.float64)
    return Ranked(ids, raw if kind == "fts" else -raw)


def calibrated_weights(work: Path, name: str) -> tuple[float, float]:
    """(vector, text) weights the library's "auto" calibration gives the study table (read from explain())."""
    table = hybrid.connect(work / "db").open_table(name.replace("/", "-"))
    plan = table.search("calibration probe", fts_index="bm25").explain()
    found = re.search(r"weights vector ([\d.]+) .*, fts ([\d.]+) ", plan)
    if found is None:
        raise RuntimeError(f"no calibrated weights in the plan:\n{plan}")
    return float(found.group(1)), float(found.group(2))


def run_of(
    study: dict, fuse: Callable[[list[Ranked]], Fused], k: int = 100, weights: tuple[float, float] = (1, 1)
) -> dict:
    run = {}
    for qid, b in study["lists"].items():
        docs: dict[str, int] = {}
        ranked = [  # the executor's order, each list cut at the fusion depth
            replace(as_ranked(b["vector"][:FUSE_DEPTH], docs, "vector"), weight=weights[0]),
            replace(as_ranked(b["fts"][:FUSE_DEPTH], docs, "fts"), weight=weights[1]),
        ]
        ranked = [r for r in ranked if len(r.ids)]
        names = {v: d for d, v in docs.items()}
        if not ranked:
            run[qid] = {}
            continue
        ids, _ = fuse(ranked) if len(ranked) > 1 else (ranked[0].ids, ranked[0].scores)
        ids = ids[:k]
        run[qid] = {names[int(i)]: float(len(ids) - r) for r, i in enumerate(ids)}
    return run


def methods() -> dict[str, Callable[[list[Ranked]], Fused]]:
    vec_only: Callable[[list[Ranked]], Fused] = lambda r: (r[0].ids, r[0].scores)  # noqa: E731
    fts_only: Callable[[list[Ranked]], Fused] = lambda r: (r[-1].ids, r[-1].scores)  # noqa: E731
    out: dict[str, Callable[[list[Ranked]], Fused]] = {"bm25": fts_only, "dense": vec_only}
    for k in (10, 20, 40, 60):
        out[f"rrf-k{k}"] = RRF(k=k).fuse
    out["dbsf"] = DBSF().fuse
    for a in (0.3, 0.5, 0.7):
        out[f"linear-minmax-a{a}"] = Linear(alpha=a).fuse
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("HYBRID_DATA", REPO.parent / "shared/data")))
    parser.add_argument("--work", type=Path, default=Path("/tmp/hybrid-fusion-study"))
    parser.add_argument("--collections", default=",".join(COLLECTIONS))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    names = args.collections.split(",")
    studies = {n: branch_lists(args.data, args.work, n) for n in names}
    table: dict[str, dict[str, float]] = {}
    weights = {n: calibrated_weights(args.work, n) for n in names}
    for method, fuse in methods().items():
        for mode in ("equal", "auto") if method not in ("bm25", "dense") else ("",):
            row = f"{method}-{mode}" if mode else method
            table[row] = {}
            for n, study in studies.items():
                w = weights[n] if mode == "auto" else (1.0, 1.0)
                mean, _ = evaluate(run_of(study, fuse, weights=w), study["qrels"], ["nDCG@10"])
                table[row][n] = round(mean["nDCG@10"], 4)
    header = "| method | " + " | ".join(names) + " | min(x - best branch) |"
    table = {
        **{m: table[m] for m in ("bm25", "dense")},
        **{m: v for m, v in table.items() if m not in ("bm25", "dense")},
    }
    lines = [header, "|---|" + "--:|" * (len(names) + 1)]
    best = {n: max(table["bm25"][n], table["dense"][n]) for n in names}
    for method, row in table.items():
        worst = min(row[n] - best[n] for n in names)
        lines.append(f"| {method} | " + " | ".join(f"{row[n]:.4f}" for n in names) + f" | {worst:+.4f} |")
    print("\n".join(lines))
    results = REPO / "eval" / "results"
    (results / "fusion_study.json").write_text(json.dumps(table, indent=2) + "\n")
    notes = [
        "# Fusion study (nDCG@10)",
        "",
        "Command: `python eval/fusion_study.py`. Branch lists: BM25 (stemmed; jieba for zh) and all-MiniLM-L6-v2",
        f"top-{FUSE_DEPTH} per query, from the public search API; fused here. `-equal`: equal branch weights;",
        "`-auto`: the weights the library's self-retrieval calibration gives each table (vector, text): "
        + ", ".join(f"{n} {w[0]:.2f}/{w[1]:.2f}" for n, w in weights.items())
        + ". Last column: the worst difference to the collection's best single branch.",
        "",
    ]
    (results / "fusion_study.md").write_text("\n".join(notes + lines) + "\n")


if __name__ == "__main__":
    main()
