#!/usr/bin/env python
"""What `table.tune(embedder=True)` gains: the table's all-MiniLM-L6-v2 fine-tuned on a collection's
training judgments, written as a new vector column, measured on the collection's *test* queries.

For each ``--train`` collection (``scifact:train``, ``nfcorpus:train``...), the table is built as
``eval/tune.py`` builds it (``content`` = "title. text", packaged all-MiniLM-L6-v2 vectors, default BM25), then:

* ``default``: the library's default hybrid query on the test queries (and the dense branch alone);
* ``table.tune(train judgments, embedder=True, fusion=False, reranker=False)``: mining hard negatives from
  the table's hybrid results, MultipleNegativesRankingLoss fine-tuning, the new column, the guard on the
  tune's own held-out 20% of the training queries;
* ``tuned column``: the default hybrid query (and the dense branch alone) on the new column;
* ``after guard``: the test queries searched as the table now searches;
* p: two-sided paired randomization test against ``default`` (10,000 trials).

    nice -n 10 python eval/tune_embedder.py [--data DIR] [--work DIR] [--train scifact:train]
        [--epochs N] [--batch 32] [--learning-rate 2e-5] [--max-length 128] [--negatives 1] [--threads 1]
        [--generalise cranfield,xquad-r/en]

Writes eval/results/tune_embedder_<collection>.md and .json (``--name`` sets the stem's end).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.peer_config import default_data  # noqa: E402
from tune import (  # noqa: E402
    _public_args,
    collection_table,
    judgments,
    learned_reranker,
    make_table,
    mean,
    ndcg,
    reranked_runs,  # noqa: E402
)

import hybrid  # noqa: E402
from hybrid.eval import paired_randomization_test  # noqa: E402
from hybrid.eval.collection import load_beir  # noqa: E402
from hybrid.feedback.embedder import base_model, tuned_embedder  # noqa: E402
from hybrid.feedback.embedder_stage import current_binding  # noqa: E402
from hybrid.feedback.query_embedding import embed_ahead  # noqa: E402
from hybrid.feedback.state import runs_dir  # noqa: E402
from hybrid.feedback.tune import TuneSettings, guard  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def log(*parts: Any) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def p_value(a: dict[str, float], b: dict[str, float]) -> float:
    return paired_randomization_test([a[q] for q in b], [b[q] for q in b])


def positives(args: argparse.Namespace) -> int | None:
    """The embedder's relevant rows a query: the library's default unless given (0: all)."""
    return TuneSettings.embedder_positives if args.positives_per_query is None else args.positives_per_query or None


def run_one(name: str, split: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    table, build, test_j, train_j = collection_table(name, split, args, root)
    log(name, f"{len(train_j)} {split} queries, {len(test_j)} test queries; built in {build['build_s']} s")
    figures: dict[str, dict[str, float]] = {}
    figures["default"] = ndcg(table, test_j, lambda q: table.search(q).rerank(None), "default hybrid")
    figures["dense"] = ndcg(table, test_j, lambda q: table.search(q, query_type="vector"), "default dense")
    log(name, f"test: default hybrid {mean(figures['default']):.4f}, dense {mean(figures['dense']):.4f}")
    cpu, start = time.process_time(), time.perf_counter()
    report = table.tune(
        train_j,
        fusion=False,
        reranker=False,
        embedder=True,
        embedder_epochs=args.epochs,
        embedder_max_steps=args.max_steps,
        embedder_batch=args.batch,
        embedder_learning_rate=args.learning_rate,
        embedder_negatives=args.negatives,
        embedder_max_length=args.max_length,
        mine_depth=args.mine_depth,
        embedder_positives=positives(args),
        threads=args.threads,
        test_fraction=args.test_fraction,
    )
    tune_s, tune_cpu = time.perf_counter() - start, time.process_time() - cpu
    log(report.summary())
    column = report.embedder["column"]
    embed_ahead(table, test_j.queries, column)  # the tuned model embeds a question alone at 10x the CPU
    figures["tuned"] = ndcg(
        table, test_j, lambda q: table.search(q, vector_column=column).rerank(None), "hybrid on the tuned column"
    )
    figures["tuned_dense"] = ndcg(
        table, test_j, lambda q: table.search(q, query_type="vector", vector_column=column), "tuned dense"
    )
    figures["after_guard"] = ndcg(table, test_j, lambda q: table.search(q), "after guard")
    reranker: dict[str, Any] = {}
    if args.reranker:
        reranker = tune_reranker(table, train_j, test_j, args)
        figures["plus_reranker"], figures["after_both"] = reranker.pop("forced"), reranker.pop("after")
    base = figures["default"]
    out = {
        "collection": name,
        "train_split": split,
        "build": build,
        "train_queries": len(train_j),
        "test_queries": len(test_j),
        **{k: mean(v) for k, v in figures.items()},
        "p_tuned_vs_default": p_value(figures["tuned"], base),
        "p_tuned_dense_vs_dense": p_value(figures["tuned_dense"], figures["dense"]),
        "p_after_vs_default": p_value(figures["after_guard"], base),
        **(
            {
                "p_plus_reranker_vs_default": p_value(figures["plus_reranker"], base),
                "p_after_both_vs_default": p_value(figures["after_both"], base),
                "reranker_report": reranker,
            }
            if args.reranker
            else {}
        ),
        "tune_seconds": tune_s,
        "tune_cpu_seconds": tune_cpu,
        "report": report.to_dict(),
    }
    log(name, json.dumps({k: v for k, v in out.items() if isinstance(v, float)}))
    out["_model"] = runs_dir(table) / report.embedder["model"]  # not written: a temporary folder
    return out


def generalise(name: str, trained: dict[str, Any], args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The first collection's tuned embedder on collection `name`: its column added to `name`'s table
    (as the tune adds it), default hybrid vs hybrid on that column on `name`'s test judgments, and the
    guard's verdict on those figures (the test a tune with `name`'s own feedback would make)."""
    coll = load_beir(args.data / name, "test")
    table, _ = make_table(hybrid.connect(root / f"gen-{name.replace('/', '-')}"), coll, args.work)
    js = judgments(table, coll, args.eval_queries)
    current = current_binding(table)
    column = f"{current.column}_{trained['collection'].replace('/', '_')}"
    start = time.perf_counter()
    table.add_columns({column: (current.source, tuned_embedder(trained["_model"], base_model(current)))})
    embed_s = time.perf_counter() - start
    vc = current.column
    runs = {
        "default": ndcg(table, js, lambda q: table.search(q, vector_column=vc).rerank(None), f"{name} default"),
        "tuned": ndcg(table, js, lambda q: table.search(q, vector_column=column).rerank(None), f"{name} tuned"),
        "dense": ndcg(table, js, lambda q: table.search(q, query_type="vector", vector_column=vc), f"{name} dense"),
        "tuned_dense": ndcg(
            table, js, lambda q: table.search(q, query_type="vector", vector_column=column), f"{name} tuned dense"
        ),
    }
    d = guard("embedder", runs["default"], runs["tuned"], args.alpha)
    log(name, f"default {d.baseline:.4f} -> {d.candidate:.4f} p={d.p_value:.3g}: {d.reason}")
    return {"collection": name, "trained_on": trained["collection"], "queries": len(js),
            **{k: mean(v) for k, v in runs.items()}, "p": d.p_value,
            "p_dense": p_value(runs["tuned_dense"], runs["dense"]), "accepted": d.accepted, "reason": d.reason,
            "embed_seconds": embed_s,
            **({"model": {k: trained[k] for k in ("sha256", "report")}} if "sha256" in trained else {})}  # fmt: skip


def tune_reranker(table: hybrid.Table, train_j: Any, test_j: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The cross-encoder stage on top of the embedder's outcome (`eval/tune.py`'s reranker settings):
    per-query nDCG@10 of the searched column + the reranker forced on ("forced"), of the table as it
    searches after both guards ("after"), and the reranker's report."""
    cpu, start = time.process_time(), time.perf_counter()
    report = table.tune(
        train_j,
        fusion=False,
        embedder=False,
        epochs=1,
        negatives=3,
        max_length=128,
        top_n=20,
        learning_rate=2e-4,
        max_train_queries=args.reranker_queries,
        mine_depth=args.mine_depth,
        positives_per_query=args.positives_per_query or None,
        threads=args.threads,
        test_fraction=args.test_fraction,
    )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    log(report.summary())
    spec = report.learned["reranker"]
    model = learned_reranker(table, spec, args.threads)
    runs = reranked_runs(table, test_j, model, {"tuned": model.blend}, "test + tuned reranker")
    after = ndcg(table, test_j, lambda q: table.search(q), "after both guards")
    log(f"+ reranker {mean(runs['tuned']):.4f}, after both guards {mean(after):.4f}")
    return {"forced": runs["tuned"], "after": after, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "report": report.to_dict()}  # fmt: skip


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "# Tuning the embedder: all-MiniLM-L6-v2 fine-tuned on training judgments, a new vector column "
        "(nDCG@10 on test queries)",
        "",
        f"`{out['command']}` on {out['machine']}, shared with other jobs (load average {out['load']} at the "
        f"start, {out.get('load_end', '?')} at the end), so times are indicative only. Settings: "
        f"{json.dumps(out['settings'])}.",
    ]
    if out["runs"]:
        lines += _runs_table(out["runs"])
    if out.get("generalised"):
        lines += _generalised(out["generalised"], out["settings"]["alpha"])
    for r in out["runs"]:
        if "plus_reranker" in r:
            lines += _reranker_line(r)
    if out["runs"]:
        lines += ["", "Loss (mean of the first 5 steps -> last 5 steps):", ""]
    for r in out["runs"]:
        e = r["report"]["embedder"]
        lines.append(f"- {r['collection']}: {e['loss_first']:.3f} -> {e['loss_last']:.3f} ({e['losses']})")
    return "\n".join(lines) + "\n"


def _runs_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "The tuned model starts from the packaged all-MiniLM-L6-v2 (the table's own column's model); each "
        "training query's judged rows are positives, its hard negatives are rows the table's default hybrid "
        "search ranks in its top `mine_depth` that were not judged relevant; loss: sentence-transformers' "
        "MultipleNegativesRankingLoss (in-batch + hard negatives), with in-batch candidates judged relevant "
        "to the query left out of its negatives (`hybrid.feedback.in_batch`; 'masked' below counts them, "
        "absent in runs before it). The guard compares hybrid search on the "
        "new column with the current one on the tune's own held-out 20% of the training queries.",
        "",
        "| collection | trained on | default hybrid | hybrid, tuned column (p) | dense | dense, tuned (p) | "
        "after guard | guard (held-out of train) | tune time (CPU) | training | re-embedding | peak memory |",
        "|---|---|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for r in runs:
        rep = r["report"]
        e = rep["embedder"]
        d = next(x for x in rep["decisions"] if x["part"] == "embedder")
        verdict = f"{d['baseline']:.4f} -> {d['candidate']:.4f} p={d['p_value']:.3g} {'on' if d['accepted'] else 'off'}"
        lines.append(
            f"| {r['collection']} | {r['train_split']} ({r['train_queries']} q) | {r['default']:.4f} | "
            f"{r['tuned']:.4f} ({r['p_tuned_vs_default']:.3g}) | {r['dense']:.4f} | {r['tuned_dense']:.4f} "
            f"({r['p_tuned_dense_vs_dense']:.3g}) | {r['after_guard']:.4f} | {verdict} | {r['tune_seconds']:.0f} s "
            f"({r['tune_cpu_seconds']:.0f} s) | {e['seconds']:.0f} s, {e['steps']} steps ({e.get('epochs', '?')} "
            f"passes), {e['examples']} examples, {e.get('masked_negatives', '-')} masked | "
            f"{e['embed_seconds']:.0f} s | {rep['peak_memory_mb']:.0f} MB |"
        )
    return lines


def _generalised(generalised: list[dict[str, Any]], alpha: float) -> list[str]:
    lines: list[str] = []
    first = generalised[0]["trained_on"]
    earlier = generalised[0].get("model")
    if earlier:
        lines += ["", f"The {first}-tuned model was not trained by this command: `--model` named one an earlier "
                  f"run saved (model.safetensors sha256 {earlier['sha256']}; that run's training: "
                  f"{json.dumps(earlier['report'])})."]  # fmt: skip
    lines += [
        "",
        f"Generalisation: the {first}-tuned model's column added to another collection's table, default "
        "hybrid vs hybrid on that column on its test judgments, and the guard (paired randomization test, "
        f"alpha {alpha}) on those figures:",
        "",
        "| collection | queries | default hybrid | hybrid, tuned column (p) | dense | dense, tuned (p) | guard |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for g in generalised:
        lines.append(
            f"| {g['collection']} | {g['queries']} | {g['default']:.4f} | {g['tuned']:.4f} ({g['p']:.3g}) | "
            f"{g['dense']:.4f} | {g['tuned_dense']:.4f} ({g['p_dense']:.3g}) | "
            f"{'enabled' if g['accepted'] else 'refused'}: {g['reason']} |"
        )
    return lines


def _reranker_line(r: dict[str, Any]) -> list[str]:
    rr = r["reranker_report"]
    return [
        "",
        f"Then the cross-encoder stage on top ({r['collection']}, `--reranker`, eval/tune.py's settings): "
        f"searched column + reranker forced on {r['plus_reranker']:.4f} "
        f"(p {r['p_plus_reranker_vs_default']:.3g} vs default hybrid); "
        f"the table as it searches after both guards {r['after_both']:.4f} "
        f"(p {r['p_after_both_vs_default']:.3g}); stage time {rr['seconds']:.0f} s "
        f"({rr['cpu_seconds']:.0f} s CPU).",
    ]


def write(out: dict[str, Any], stem: str) -> None:
    public = {**out, "runs": [{k: v for k, v in r.items() if k != "_model"} for r in out["runs"]]}
    (RESULTS / f"{stem}.json").write_text(json.dumps(public, indent=2, default=str) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(out))


def _model_hidden(argv: list[str]) -> list[str]:
    """`argv` with the value of ``--model`` (a machine path) replaced by what it names."""
    return ["<earlier run>/embedder" if i and argv[i - 1] == "--model" else a for i, a in enumerate(argv)]


def earlier_model(folder: Path, trained_on: str) -> dict[str, Any]:
    """What `generalise` needs of a tuned embedder an earlier run saved in `folder`: the collection it was
    trained on, the folder, and the model's sha256 and its run's embedder report (``../report.json``)."""
    report = folder.parent / "report.json"
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    embedder = json.loads(report.read_text()).get("embedder", {}) if report.exists() else {}
    keys = ("base", "examples", "steps", "epochs", "seconds", "loss_first", "loss_last")
    summary = {k: embedder.get(k) for k in keys}
    return {"collection": trained_on.partition(":")[0], "_model": folder, "sha256": digest, "report": summary}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data())
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hybrid-tune-work")
    p.add_argument("--train", default="scifact:train")
    p.add_argument("--eval-queries", type=int, default=None, help="only the first N judged test queries")
    p.add_argument("--epochs", type=int, default=None, help="default: the library's rule (embedder.passes)")
    p.add_argument(
        "--max-steps", type=int, default=TuneSettings.embedder_max_steps, help="training budget (library default)"
    )
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--max-length", type=int, default=128, help="word pieces a text is cut to while training")
    p.add_argument("--negatives", type=int, default=1, help="mined hard negatives per example")
    p.add_argument("--mine-depth", type=int, default=30)
    p.add_argument(
        "--positives-per-query",
        type=int,
        default=None,
        help="relevant rows a query to train on (default: the library's embedder_positives; 0: all)",
    )
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 beats 2 on a crowded machine)")
    p.add_argument("--reranker", action="store_true", help="then the cross-encoder on top")
    p.add_argument("--reranker-queries", type=int, default=480, help="training queries for the reranker stage")
    p.add_argument("--generalise", default="", help="collections the first one's tuned model is tried on")
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a tuned embedder an earlier run saved (<table>__tuned/<run>/embedder) for the first --train "
        "collection: no training, only --generalise with it",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="the guard's significance level")
    p.add_argument("--name", default=None, help="results stem (default: tune_embedder_<collections>)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    items = [x for x in args.train.split(",") if x]
    stem = args.name or "tune_embedder_" + "_".join(x.partition(":")[0].replace("/", "-") for x in items)
    out: dict[str, Any] = {
        "command": "python eval/tune_embedder.py " + " ".join(_model_hidden(_public_args(sys.argv[1:]))),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "settings": {k: v for k, v in vars(args).items() if k not in ("data", "work", "name", "model")},
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for item in items if args.model is None else []:
            name, _, split = item.partition(":")
            out["runs"].append(run_one(name, split or "train", args, Path(tmp)))
            out["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
            write(out, stem)
        out["generalised"] = []
        for name in [x for x in args.generalise.split(",") if x]:
            trained = out["runs"][0] if args.model is None else earlier_model(args.model, items[0])
            out["generalised"].append(generalise(name, trained, args, Path(tmp)))
            out["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
            write(out, stem)
    out["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write(out, stem)
    print(markdown(out))


if __name__ == "__main__":
    main()
