#!/usr/bin/env python
"""Cold start: a reranker learned from pseudo-queries (no feedback), its real effect, and the guard's verdict.

For each collection (``--collections``), a table is built as ``eval/tune.py`` builds it (``content`` =
"title. text", the packaged all-MiniLM-L6-v2 vectors, the default BM25 index), then
``table.tune(cold_start=True)`` makes ``--pseudo-queries`` pseudo-queries from a seeded sample of rows
(the first sentence of 4-40 words, i.e. the title; the row itself is relevant; :mod:`hybrid.feedback.pseudo`),
trains the cross-encoder on part of them (the positive shown without its title, inverse-cloze style) and
lets the guard judge it on the held-out pseudo-queries. Nothing of the collection's real judgments is
used until the end, where the learned reranker (forced on, the blend the tune chose) is measured on the
collection's real test queries against the default hybrid: was the guard right?

    nice -n 15 python eval/cold_start.py [--data DIR] [--work DIR] [--collections scifact,cranfield,webfaq]
        [--pseudo-queries 160] [--eval-queries 150] [--max-length 128] [--top-n 20] [--threads 1]

Writes eval/results/cold_start.md and .json (``--name`` changes the stem).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `bench` and `tune` next to this script

import tune as tune_eval  # noqa: E402
from bench.peer_config import default_data  # noqa: E402

import hybrid  # noqa: E402
from hybrid.eval.collection import load_beir  # noqa: E402
from hybrid.feedback.reranker import TunedReranker  # noqa: E402
from hybrid.feedback.state import runs_dir  # noqa: E402
from hybrid.feedback.tune import guard  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def one(name: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    coll = load_beir(args.data / name, "test")
    table, build = tune_eval.make_table(hybrid.connect(root / name.replace("/", "-")), coll, args.work)
    test_j = tune_eval.judgments(table, coll, args.eval_queries)
    start = time.perf_counter()
    report = table.tune(
        cold_start=True,
        pseudo_queries=args.pseudo_queries,
        epochs=args.epochs,
        negatives=args.negatives,
        max_length=args.max_length,
        top_n=args.top_n,
        threads=args.threads,
        batch_queries=args.batch_queries,
        learning_rate=args.learning_rate,
        test_fraction=args.test_fraction,
        seed=args.seed,
    )
    tune_s = time.perf_counter() - start
    tune_eval.log(report.summary())
    decision = {d.part: d for d in report.decisions}["reranker"]
    spec = report.learned["reranker"]
    model = TunedReranker(runs_dir(table) / spec["model"], top_n=spec["top_n"], blend=spec["blend"],
                          max_length=spec["max_length"], threads=args.threads, column=spec.get("column"))  # fmt: skip
    runs = tune_eval.reranked_runs(table, test_j, model, {"tuned": model.blend, "alone": 1.0}, f"{name} test")
    real = guard("real", runs["default"], runs["tuned"], 0.05)
    backends: dict[str, Any] = {}
    if args.compare_torch and model.runs_on == "onnx":
        sub = test_j.subset(test_j.queries[: args.compare_torch])
        torch_model = TunedReranker(model.path, top_n=model.top_n, blend=model.blend, max_length=model.max_length,
                                    threads=args.threads, column=model.column, backend="torch")  # fmt: skip
        t_runs = tune_eval.reranked_runs(table, sub, torch_model, {"tuned": model.blend, "alone": 1.0}, "torch")
        on = {k: {q: runs[k][q] for q in sub.queries} for k in ("tuned", "alone", "_ms")}
        backends = {
            "queries": len(sub),
            "onnx_int8": {"with_reranker": tune_eval.mean(on["tuned"]), "alone": tune_eval.mean(on["alone"]),
                          "p50_ms": float(np.median(list(on["_ms"].values())))},
            "torch_fp32": {"with_reranker": tune_eval.mean(t_runs["tuned"]), "alone": tune_eval.mean(t_runs["alone"]),
                           "p50_ms": float(np.median(list(t_runs["_ms"].values())))},
            "agreement": tune_eval.agreement({q: runs["_scores"][q] for q in sub.queries},  # type: ignore[dict-item]
                                             t_runs["_scores"]),  # type: ignore[arg-type]
        }  # fmt: skip
        tune_eval.log(name, f"backends: {json.dumps(backends)}")
    alone = tune_eval.mean(runs["alone"])
    # right: enabled and it helps on the real queries; or refused and it does not help significantly
    right = (real.candidate > real.baseline) if decision.accepted else not real.accepted
    tune_eval.log(
        name,
        f"pseudo guard {decision.baseline:.4f} -> {decision.candidate:.4f} p={decision.p_value:.3g} "
        f"{'on' if decision.accepted else 'off'}; real {real.baseline:.4f} -> {real.candidate:.4f} "
        f"p={real.p_value:.3g}; guard right: {right}",
    )
    return {
        "collection": name,
        "build": build,
        "pseudo_queries": report.queries,
        "guard": {
            "accepted": decision.accepted,
            "baseline": decision.baseline,
            "candidate": decision.candidate,
            "p": decision.p_value,
            "queries": decision.queries,
            "reason": decision.reason,
        },  # fmt: skip
        "real": {
            "queries": real.queries,
            "default": real.baseline,
            "with_reranker": real.candidate,
            "p": real.p_value,
            "alone": alone,
        },  # fmt: skip
        "guard_right": right,
        "backends": backends,
        "blend": spec["blend"],
        "served_by": model.runs_on,
        "tune_seconds": tune_s,
        "training_seconds": report.reranker["seconds"],
        "steps": report.reranker["steps"],
        "loss": [report.reranker["loss_first"], report.reranker["loss_last"]],
        "dev": report.reranker["dev"],
        "peak_memory_mb": report.peak_memory_mb,
        "examples": sorted(report_examples(table, report))[:3],
    }


def report_examples(table: hybrid.Table, report: Any) -> list[str]:
    """A few of the pseudo-queries (the same seeded sample the tune made), to show what they look like."""
    from hybrid.feedback.pseudo import pseudo_judgments
    from hybrid.feedback.tune import TuneSettings, text_column

    s = TuneSettings(**{k: v for k, v in report.settings.items() if k in TuneSettings.__dataclass_fields__})
    return pseudo_judgments(table, text_column(table, s), s.pseudo_queries, s.seed).queries


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "# Cold start: a reranker from pseudo-queries, the guard's verdict and its real effect (nDCG@10)",
        "",
        f"`{out['command']}` on {out['machine']}; the machine was shared with other jobs (load average "
        f"{out['load']}), so times are indicative only. Settings: {json.dumps(out['settings'])}.",
        "",
        "Pseudo-queries: for a seeded sample of rows, the first sentence of 4-40 words (the title, as the "
        'table\'s `content` is "title. text"); the row is its one relevant row. The cross-encoder (packaged '
        "all-MiniLM-L6-v2, new head) trains on the training part, seeing each positive without its title "
        "(inverse cloze) against hard negatives from the table's own hybrid results; the guard compares it "
        "with the default hybrid on the held-out pseudo-queries (paired randomization test, p < 0.05). "
        "`real` is the same model (forced on, the blend the tune chose) on the collection's real test "
        "queries, which the tune never saw. Guard right: enabled and the real effect is a gain, or refused "
        "and the real effect is not a significant gain.",
        "",
        "| collection | pseudo-queries (train / held-out) | guard on pseudo held-out (p) | verdict | real: default "
        "-> + reranker (p, queries) | model alone (real) | guard right? | tune time | peak memory |",
        "|---|--:|--:|---|--:|--:|---|--:|--:|",
    ]
    for r in out["results"]:
        g, real, q = r["guard"], r["real"], r["pseudo_queries"]
        lines.append(
            f"| {r['collection']} | {q['train']} / {q['held_out']} | {g['baseline']:.4f} -> {g['candidate']:.4f} "
            f"({g['p']:.3g}) | {'enabled' if g['accepted'] else 'refused'} | {real['default']:.4f} -> "
            f"{real['with_reranker']:.4f} ({real['p']:.3g}, {real['queries']}) | {real['alone']:.4f} | "
            f"{'yes' if r['guard_right'] else 'NO'} | {r['tune_seconds']:.0f} s (training {r['training_seconds']:.0f}"
            f" s, {r['steps']} steps) | {r['peak_memory_mb']:.0f} MB |"
        )
    lines += ["", "Blend chosen on the dev pseudo-queries, loss first -> last steps, and sample pseudo-queries:", ""]
    for r in out["results"]:
        dev = ", ".join(f"{b}: {v:.4f}" for b, v in r["dev"].items())
        examples = "; ".join(f"“{e}”" for e in r["examples"])
        lines.append(
            f"- {r['collection']}: blend {r['blend']} ({dev}); loss {r['loss'][0]:.3f} -> {r['loss'][1]:.3f}; "
            f"e.g. {examples}"
        )
    for r in out["results"]:
        b = r.get("backends")
        if b:
            what = f"{r['collection']}'s first {b['queries']} test queries"
            lines += ["", tune_eval.backends_sentence(b, what, out["settings"]["top_n"], "one thread, loaded machine")]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data())
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hybrid-tune-work")
    p.add_argument("--collections", default="scifact,cranfield,webfaq")
    p.add_argument("--pseudo-queries", type=int, default=160)
    p.add_argument("--eval-queries", type=int, default=150, help="only the first N judged test queries")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--negatives", type=int, default=3)
    p.add_argument("--batch-queries", type=int, default=4)
    p.add_argument("--learning-rate", type=float, default=2e-4)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--top-n", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--test-fraction", type=float, default=0.25, help="pseudo-queries the guard holds out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare-torch", type=int, default=0, help="score the first N test queries with torch too")
    p.add_argument("--name", default="cold_start")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out: dict[str, Any] = {
        "command": "python eval/cold_start.py " + " ".join(tune_eval._public_args(sys.argv[1:])),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "settings": {k: v for k, v in vars(args).items() if k not in ("data", "work", "name")},
        "results": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in [x for x in args.collections.split(",") if x]:
            out["results"].append(one(name, args, Path(tmp)))
            write(out, args.name)
    out["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write(out, args.name)
    print(markdown(out))


def write(out: dict[str, Any], name: str) -> None:
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(out))


if __name__ == "__main__":
    main()
