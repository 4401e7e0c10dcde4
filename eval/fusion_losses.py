#!/usr/bin/env python
"""Issue 23: where the default hybrid loses to its better branch on a language's own questions.

Per XQuAD-R language (its own questions, the library's default embedder and analysis, one table):
nDCG@10 of BM25, dense and the default hybrid, the per-question oracle (the better branch of each
question), and the questions grouped by which branch ranks a relevant sentence first: both, only
BM25, only dense, neither. Per group: how many, mean nDCG@10 of each run, how often the hybrid ranks
a relevant sentence first, what the group adds to the hybrid's margin over the better branch (its
share of the mean difference), and, where the branches disagree, each branch's mean steepness for
those questions (the per-query factor of the default fusion, read from ``explain()``).

    python eval/fusion_losses.py --languages es,de --name fusion_losses_l23h

Quality only (no timings). Writes eval/results/<name>.md and .json after each language.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hybrid  # noqa: E402
from hybrid.embedders.auto import embedder_for  # noqa: E402
from hybrid.eval import load_beir  # noqa: E402
from hybrid.eval.presets import VECTOR_COLUMN  # noqa: E402
from hybrid.eval.query_vectors import embed_questions  # noqa: E402
from hybrid.eval.runs import build_table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lang_report  # noqa: E402
from lang_mechanisms import Ranking, library_run, scores  # noqa: E402
from peer_lancedb import default_data  # noqa: E402

RUNS = ("bm25", "dense", "hybrid")
_STEEP = re.compile(r"steepness for this query \(([\d.]+), ([\d.]+)\)")


def first_relevant(run: dict[str, float], relevant: set[str]) -> int | None:
    """The 1-based rank of the first relevant document in a run (None: none in it)."""
    ranked = sorted(run, key=lambda d: -run[d])
    return next((r for r, d in enumerate(ranked, 1) if d in relevant), None)


def steepness(table: hybrid.Table, text: str) -> tuple[float, float] | None:
    """The default hybrid's per-query steepness of (vector, text) for one question, from explain()."""
    m = _STEEP.search(table.search(text).limit(10).explain())
    return (float(m.group(1)), float(m.group(2))) if m else None


def measure(folder: Path) -> dict[str, Any]:
    coll = load_beir(folder)
    embedder = embedder_for(d["text"] for d in coll.corpus.values())
    queries = coll.judged_queries
    with tempfile.TemporaryDirectory() as tmp:
        table = build_table(
            hybrid.connect(tmp), coll, embedders={VECTOR_COLUMN: embedder}, fts={"bm25": {"tokenizer": "default"}}
        )
        embed_questions(embedder, list(queries.values()))
        runs: dict[str, Ranking] = {name: library_run(table, name, embedder, queries) for name in RUNS}
        per = {name: scores(run, coll.qrels)[1] for name, run in runs.items()}
        means = {name: statistics.fmean(per[name].values()) for name in RUNS}
        better = max(("bm25", "dense"), key=lambda n: means[n])
        groups: dict[str, list[str]] = {"both": [], "only bm25": [], "only dense": [], "neither": []}
        for qid in per["hybrid"]:
            relevant = {d for d, g in coll.qrels[qid].items() if g > 0}
            top = {n: first_relevant(runs[n].get(qid, {}), relevant) == 1 for n in RUNS}
            key = (
                "both"
                if top["bm25"] and top["dense"]
                else "only bm25"
                if top["bm25"]
                else "only dense"
                if top["dense"]
                else "neither"
            )
            groups[key].append(qid)
        n = len(per["hybrid"])
        row: dict[str, Any] = {
            "language": folder.name,
            "embedder": embedder.name,
            "questions": n,
            **{name: round(means[name], 4) for name in RUNS},
            "better branch": better,
            "margin": round(means["hybrid"] - means[better], 4),
            "oracle (better branch per question)": round(
                statistics.fmean(max(per["bm25"][q], per["dense"][q]) for q in per["hybrid"]), 4
            ),
            "fusion (explain of the first question)": next(
                line.strip()
                for line in table.search(next(iter(queries.values()))).explain().splitlines()
                if "fuse:" in line
            ),
            "groups": {},
        }
        for key, qids in groups.items():
            if not qids:
                continue
            top1 = 0
            for qid in qids:
                relevant = {d for d, g in coll.qrels[qid].items() if g > 0}
                top1 += first_relevant(runs["hybrid"].get(qid, {}), relevant) == 1
            g: dict[str, Any] = {
                "questions": len(qids),
                **{name: round(statistics.fmean(per[name][q] for q in qids), 4) for name in RUNS},
                "hybrid ranks a relevant one first": top1,
                "adds to the margin": round(sum(per["hybrid"][q] - per[better][q] for q in qids) / n, 4),
            }
            if key in ("only bm25", "only dense"):
                steep = [s for q in qids if (s := steepness(table, queries[q])) is not None]
                g["mean steepness (vector, text)"] = (
                    round(statistics.fmean(s[0] for s in steep), 3),
                    round(statistics.fmean(s[1] for s in steep), 3),
                )
            row["groups"][key] = g
    return row


def to_markdown(report: dict[str, Any]) -> str:
    explained = (
        "nDCG@10, each language's own questions, default embedder and analysis. Groups: which branch ranks "
        "a relevant sentence first; `adds to the margin`: the group's share of hybrid minus the better "
        "branch (over all questions); steepness: the default fusion's per-query factor (vector, text)."
    )
    lines = lang_report.header(report, "Where the default hybrid loses to its better branch", explained)
    for name, r in report["rows"].items():
        plain = {k: v for k, v in r.items() if k != "groups"}
        lines += [f"## {name}", "", "| " + " | ".join(plain) + " |", "|" + "---|" * len(plain)]
        lines += ["| " + " | ".join(str(v) for v in plain.values()) + " |", ""]
        keys = list(dict.fromkeys(k for g in r["groups"].values() for k in g))
        lines += ["| group | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for group, g in r["groups"].items():
            lines.append(f"| {group} | " + " | ".join(str(g.get(k, "")) for k in keys) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--languages", default="es,de")
    parser.add_argument("--name", default="fusion_losses_l23h")
    args = parser.parse_args()
    report = lang_report.start("fusion_losses.py", args.name, args.data)
    jobs = [
        (lang, lambda lang=lang: measure(args.data / "xquad-r" / lang)) for lang in args.languages.split(",") if lang
    ]
    lang_report.run(report, jobs, to_markdown)


if __name__ == "__main__":
    main()
