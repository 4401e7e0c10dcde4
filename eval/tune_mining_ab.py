#!/usr/bin/env python
"""What embedding `tune`'s questions ahead, in batches (:mod:`hybrid.feedback.query_embedding`), saves.

Two parts, A/B interleaved in one process, CPU time (``time.process_time``) and wall time:

* ``per question``: the embedding of one question alone (``embed_query``) against its share of a batch
  (``embed_queries``), for the embedders a tune meets: the packaged all-MiniLM-L6-v2 as a table binds it
  by default (queries through its int8 ONNX twin), the same weights from a local folder (torch: what a
  tuned column's embedder is), and the eval tables' precomputed-vector embedder whose unknown texts go to
  a fresh all-MiniLM-L6-v2 (``eval/bench/peer_vectors.py``: the training questions of eval/tune*.py);
* ``mining``: :func:`hybrid.feedback.tune.mine_examples` on the collection's training questions, on the
  eval table (as ``eval/tune.py`` builds it), before (each search embeds its question) and after.

Each round takes fresh questions (a question embedded once is cached), so the rounds alternate over
disjoint slices of the training split.

    nice -n 10 python eval/tune_mining_ab.py [--data DIR] [--work DIR] [--collection nfcorpus:dev]
        [--questions 40] [--rounds 3]

Writes eval/results/tune_mining_ab.md and .json (``--name`` sets the stem).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.peer_config import default_data  # noqa: E402
from bench.peer_vectors import PrecomputedEmbedder  # noqa: E402
from tune import judgments, make_table  # noqa: E402

import hybrid  # noqa: E402
import hybrid.feedback.tune as tune_module  # noqa: E402
from hybrid.embedders import SentenceTransformerEmbedder  # noqa: E402
from hybrid.embedders.sentence_transformers import packaged_minilm  # noqa: E402
from hybrid.eval.collection import load_beir  # noqa: E402
from hybrid.feedback.judgments import Judgments  # noqa: E402
from hybrid.feedback.tune import LIBRARY_FUSION, TuneSettings  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def public_argv(argv: list[str]) -> list[str]:
    """`argv` with the values of ``--data`` and ``--work`` (machine paths) replaced by what they name."""
    hidden = {"--data": "<data>", "--work": "<work>"}
    return [hidden.get(argv[i - 1], a) if i else a for i, a in enumerate(argv)]


def clock(work: Callable[[], Any]) -> tuple[float, float]:
    """(CPU s, wall s) of `work()`."""
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


def slices(texts: list[str], size: int, count: int) -> list[list[str]]:
    return [texts[i * size : (i + 1) * size] for i in range(count)]


def per_question(texts: list[str], size: int, rounds: int) -> dict[str, dict[str, float]]:
    """ms a question (CPU and wall), alone and batched, for each embedder."""
    makers: dict[str, Callable[[], Any]] = {
        "packaged MiniLM (ONNX queries)": SentenceTransformerEmbedder,
        "MiniLM from a folder (torch, as a tuned column)": lambda: SentenceTransformerEmbedder(str(packaged_minilm())),
        "eval precomputed + fallback": lambda: PrecomputedEmbedder("ab", fallback=SentenceTransformerEmbedder),
    }
    out = {}
    parts = slices(texts, size, 2 * rounds)
    for name, make in makers.items():
        embedder = make()
        embedder.embed_queries(["warm up", "warm up twice"])
        embedder.embed_query("warm up alone")
        sums = {"alone_cpu": 0.0, "alone_wall": 0.0, "batched_cpu": 0.0, "batched_wall": 0.0}
        for r in range(rounds):
            a = clock(lambda part=parts[2 * r], e=embedder: [e.embed_query(t) for t in part])
            b = clock(lambda part=parts[2 * r + 1], e=embedder: e.embed_queries(part))
            sums["alone_cpu"] += a[0]
            sums["alone_wall"] += a[1]
            sums["batched_cpu"] += b[0]
            sums["batched_wall"] += b[1]
        out[name] = {k: round(v * 1e3 / (size * rounds), 2) for k, v in sums.items()}
    return out


def mining(table: hybrid.Table, train: Judgments, size: int, rounds: int) -> dict[str, float]:
    """CPU and wall s of mining `size` questions, before (no embedding ahead) and after, summed over rounds."""
    parts = slices(train.queries, size, 2 * rounds)
    settings = TuneSettings(negatives=1, progress=False, column="content")
    ahead = tune_module.embed_ahead
    sums = {"before_cpu": 0.0, "before_wall": 0.0, "after_cpu": 0.0, "after_wall": 0.0}
    for r in range(rounds):
        first, second = ("before", "after") if r % 2 == 0 else ("after", "before")  # alternate which goes first
        for name, part in ((first, parts[2 * r]), (second, parts[2 * r + 1])):
            tune_module.embed_ahead = ahead if name == "after" else (lambda *args, **kwargs: 0)  # type: ignore[assignment]
            js = Judgments({q: train.labels[q] for q in part})
            cpu, wall = clock(lambda js=js: tune_module.mine_examples(table, js, LIBRARY_FUSION, settings))
            sums[f"{name}_cpu"] += cpu
            sums[f"{name}_wall"] += wall
    tune_module.embed_ahead = ahead
    return {k: round(v, 2) for k, v in sums.items()}


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "# Embedding tune's questions ahead, in batches (`hybrid.feedback.query_embedding`)",
        "",
        f"`{out['command']}` on {out['machine']}, shared with other jobs (load average {out['load_start']} at the "
        f"start, {out['load_end']} at the end): A/B interleaved in one process, so only the ratios count.",
        "",
        f"Per question ({out['questions']} questions a round, {out['rounds']} rounds each way; ms a question):",
        "",
        "| embedder | alone CPU | batched CPU | alone wall | batched wall |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, v in out["per_question"].items():
        lines.append(f"| {name} | {v['alone_cpu']} | {v['batched_cpu']} | {v['alone_wall']} | {v['batched_wall']} |")
    m = out["mining"]
    lines += [
        "",
        f"Mining hard negatives (`mine_examples`, {out['collection']} on the eval table, "
        f"{out['questions'] * out['rounds']} questions each way): before {m['before_cpu']} CPU-s "
        f"({m['before_wall']} s wall), after {m['after_cpu']} CPU-s ({m['after_wall']} s wall).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data())
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hybrid-tune-work")
    p.add_argument("--collection", default="nfcorpus:dev")
    p.add_argument("--questions", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--name", default="tune_mining_ab")
    args = p.parse_args()
    name, _, split = args.collection.partition(":")
    test, train_coll = load_beir(args.data / name, "test"), load_beir(args.data / name, split or "train")
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        table, _ = make_table(hybrid.connect(Path(tmp) / name), test, args.work)
        train = judgments(table, train_coll)
        texts = train.queries
        out = {
            "command": f"python eval/tune_mining_ab.py {' '.join(public_argv(sys.argv[1:]))}".strip(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "collection": args.collection,
            "questions": args.questions,
            "rounds": args.rounds,
            "load_start": load_start,
            "per_question": per_question(texts, args.questions, args.rounds),
            "mining": mining(table, train, args.questions, args.rounds),
        }
    out["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(out))
    print(markdown(out))


if __name__ == "__main__":
    main()
