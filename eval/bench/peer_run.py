"""One collection of the peer comparison: both systems' runs, metrics, overlaps, p-values.

Every run returns the top 100. Metrics: nDCG@10, R@100, RR@10 (ir-measures, trec_eval definitions);
p: paired randomization test (10,000 trials) on nDCG@10. Latency is per query, one at a time, query
embedding excluded for both systems. English collections also get the analyzer probe.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.frame import log
from bench.peer_config import (
    COUNTERPART,
    HYBRID_FTS,
    HYBRID_FTS_ZH_JIEBA,
    HYBRID_FUSED,
    HYBRID_RUNS,
    LANCE_FTS_EN,
    LANCE_FTS_ZH,
    LANCE_RUNS,
    LANCE_ZH_TOKENIZERS,
    MEASURES,
    safe_name,
)
from bench.peer_hybrid import run_hybrid
from bench.peer_lance import lance_table, run_lance
from bench.peer_probe import analyzer_probe
from bench.peer_vectors import PrecomputedEmbedder, collection_vectors
from hybrid.eval import evaluate, load_beir
from hybrid.eval.metrics import paired_randomization_test


def _run_order(name: str) -> tuple[int, int, str]:
    if name in HYBRID_RUNS:
        return 0, HYBRID_RUNS.index(name), ""
    if not name.startswith("lance"):
        return 0, len(HYBRID_RUNS), name
    return (1 if "[" not in name else 2), LANCE_RUNS.index(name.split(" [")[0]), name


def overlap_at(a: dict[str, float], b: dict[str, float], k: int = 10) -> float:
    """|top-k(a) ∩ top-k(b)| / k (runs are rank-encoded: higher score first)."""
    ta = sorted(a, key=a.__getitem__, reverse=True)[:k]
    tb = sorted(b, key=b.__getitem__, reverse=True)[:k]
    if not ta and not tb:
        return 1.0
    return len(set(ta) & set(tb)) / max(len(ta), len(tb))


def run_collection(args: argparse.Namespace, name: str, root: Path, lance_db: Any) -> tuple[str, dict[str, Any]]:
    """(the collection's name, its report): every run of both systems, metrics, overlaps, p-values."""
    coll = load_beir(args.data / name)
    zh = coll.name.endswith("-zh")
    rows = coll.documents()
    doc_vecs, all_qvecs, vec_info = collection_vectors(coll, rows, args.work, args.embedder)
    queries = coll.judged_queries
    if args.limit_queries:
        queries = dict(list(queries.items())[: args.limit_queries])
    qrels = {q: coll.qrels[q] for q in queries}
    qvecs = {q: all_qvecs[q] for q in queries}
    embedder = PrecomputedEmbedder(
        coll.name,
        documents={r["content"]: v for r, v in zip(rows, doc_vecs)},
        queries={queries[q]: qvecs[q] for q in queries},
        fallback=args.embedder,
        show_progress=False,
    )
    log(f"{coll.name}: {len(rows)} docs, {len(queries)} queries; vectors {'cached' if vec_info['cached'] else 'new'}")

    results, hybrid_build_s, default_fusion = run_hybrid(coll, embedder, queries, zh, root)

    errors: list[str] = []
    start = time.perf_counter()
    if zh:
        variants = {t: {**LANCE_FTS_ZH, **o} for t, o in LANCE_ZH_TOKENIZERS.items() if t in args.lance_zh}
    else:
        variants = {"simple+English": LANCE_FTS_EN}
    tables = {}
    for label, fts in variants.items():
        try:
            tables[label] = lance_table(lance_db, f"{safe_name(coll.name)}-{safe_name(label)}", rows, doc_vecs, fts)
        except Exception as exc:  # e.g. a tokenizer whose model files are missing
            errors.append(f"create_fts_index {label}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    lance_build_s = (time.perf_counter() - start) / max(1, len(variants))
    ignore = coll.ignore_identical_ids
    for label, table in tables.items():
        suffix = f" [{label}]" if zh else ""
        results["lance-bm25" + suffix] = run_lance(table, "lance-bm25" + suffix, "fts", queries, qvecs, ignore, errors)
    # Chinese: the tokenizer with the best BM25 nDCG@10 serves the dense and hybrid runs (the others: hybrid too)
    evals = {n: evaluate(r.run, qrels, MEASURES) for n, r in results.items()}
    chosen = (
        max(tables, key=lambda t: evals["lance-bm25" + (f" [{t}]" if zh else "")][0]["nDCG@10"]) if tables else None
    )
    if chosen is not None:
        table = tables[chosen]
        results["lance-dense"] = run_lance(table, "lance-dense", "vector", queries, qvecs, ignore, errors)
        for label, t in sorted(tables.items(), key=lambda kv: kv[0] != chosen):
            run_name = "lance-hybrid-rrf" + (f" [{label}]" if label != chosen else "")
            results[run_name] = run_lance(t, run_name, "hybrid", queries, qvecs, ignore, errors)
        if zh:  # the chosen tokenizer's BM25 run under the plain name, for the summary and overlaps
            results["lance-bm25"] = results.pop(f"lance-bm25 [{chosen}]")
    # hybrid's runs, then LanceDB's three, then the other Chinese tokenizers' runs
    results = dict(sorted(results.items(), key=lambda kv: _run_order(kv[0])))
    evals = {n: evaluate(r.run, qrels, MEASURES) for n, r in results.items()}

    out: dict[str, Any] = {
        "docs": len(rows),
        "queries": len(queries),
        "vectors": vec_info,
        "hybrid_build_s": round(hybrid_build_s, 2),
        "hybrid_default_fusion": default_fusion,
        "hybrid_texts_embedded_by_fallback": dict(embedder.fallback_texts),
        "lance_build_s": round(lance_build_s, 2),
        "hybrid_fts": {"bm25": HYBRID_FTS, "bm25-jieba": HYBRID_FTS_ZH_JIEBA} if zh else {"bm25": HYBRID_FTS},
        "lance_fts": {label: {**fts, "with_position": False} for label, fts in variants.items()},
        "lance_fts_chosen": chosen,
        "runs": {},
        "errors": errors,
    }
    qids = sorted(qrels)
    for run_name, res in results.items():
        mean, _ = evals[run_name]
        entry: dict[str, Any] = {m: round(v, 4) for m, v in mean.items()}
        entry["latency_ms"] = {k: round(v, 2) for k, v in res.latency(include_embedding=False).items()}
        entry["empty_results"] = sum(1 for q in queries if not res.run.get(q))
        other = COUNTERPART.get(run_name)
        if other in results:
            entry["overlap@10_vs_" + other] = round(
                float(np.mean([overlap_at(res.run[q], results[other].run[q]) for q in queries])), 4
            )
        out["runs"][run_name] = entry
        log(
            f"  {run_name:34} nDCG@10 {mean['nDCG@10']:.4f}  R@100 {mean['R@100']:.4f}  RR@10 {mean['RR@10']:.4f}"
            f"  p50 {entry['latency_ms']['p50']:.1f} ms"
        )

    def p_value(a: str, b: str) -> float | None:
        if a not in evals or b not in evals:
            return None
        pa_, pb_ = evals[a][1], evals[b][1]
        return round(paired_randomization_test([pa_[q]["nDCG@10"] for q in qids], [pb_[q]["nDCG@10"] for q in qids]), 4)

    best = max(HYBRID_FUSED, key=lambda n: evals[n][0]["nDCG@10"])
    out["summary"] = {
        "hybrid_rrf_nDCG@10": round(evals["hybrid-rrf"][0]["nDCG@10"], 4),
        "hybrid_best": best,
        "hybrid_best_nDCG@10": round(evals[best][0]["nDCG@10"], 4),
        "lance_hybrid_rrf_nDCG@10": round(evals["lance-hybrid-rrf"][0]["nDCG@10"], 4) if chosen else None,
        "p_hybrid_rrf_vs_lance_hybrid_rrf": p_value("hybrid-rrf", "lance-hybrid-rrf"),
        "p_best_vs_lance_hybrid_rrf": p_value(best, "lance-hybrid-rrf"),
        "p_bm25_vs_lance_bm25": p_value("bm25", "lance-bm25"),
        "p_dense_vs_lance_dense": p_value("dense", "lance-dense"),
    }
    if args.probe and not zh and chosen is not None:
        out["analyzer_probe"] = analyzer_probe(lance_db, coll, rows, doc_vecs.shape[1])
    return coll.name, out
