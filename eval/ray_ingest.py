#!/usr/bin/env python
"""Ray ingest + embed against the single-process pipeline, on real documents and the default embedder.

Takes ``--docs`` documents (default 10,000) from the BEIR collections under ``--data`` (or
``HYBRID_DATA``: scifact, then nfcorpus, webfaq, cranfield until there are enough) and loads them
into a fresh table whose ``vector`` column is bound to the default embedder (int8 ONNX
all-MiniLM-L6-v2), three ways, each timed from the rows in memory to the committed version:

- ``single``: ``db.create_table(...)`` then ``table.add(rows)`` in this process (the embedder
  embeds inside ``add``);
- ``ray-1`` / ``ray-2``: ``hybrid.ray.write(ray.data.from_items(rows), ...)`` with 1 / 2 embedding
  actors, then the write tasks and the one commit on the driver.

The Ray cluster (``ray.init(num_cpus=2)``) starts once before the runs and is not timed; each
Ray run still pays its actors' start and model load. ``--reps`` alternating repetitions, medians
reported; throughput in documents per second and the ratio to ``single`` of the same run.
Target: ``ray-1`` >= 0.85x ``single``. Results: ``eval/results/ray.md`` and ``.json``.

    python eval/ray_ingest.py [--data DIR] [--docs 10000] [--reps 2] [--max-words N]

On a busy shared machine, ``--max-words 32`` keeps a run short: every document is still embedded
and written, but shorter texts make the embedder's share of the time smaller, so the fixed cost of
Ray (actors, tasks, object store) weighs more: a harder test of the overhead target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.frame import git_state, machine_info, write_results  # noqa: E402

COLLECTIONS = ("scifact", "nfcorpus", "webfaq", "cranfield")


def load_docs(data: Path, n: int, max_words: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in COLLECTIONS:
        path = data / name / "corpus.jsonl"
        if not path.exists():
            continue
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                d = json.loads(line)
                text = " ".join(x for x in (d.get("title"), d.get("text")) if x).strip()
                if max_words:
                    text = " ".join(text.split()[:max_words])
                if text:
                    docs.append({"doc_id": f"{name}/{d['_id']}", "text": text})
                if len(docs) == n:
                    return docs
    raise SystemExit(f"only {len(docs)} documents under {data}; need {n}")


def run_single(root: Path, docs: list[dict[str, Any]]) -> float:
    import hybrid
    from hybrid.embedders.auto import default_embedder

    start = time.perf_counter()
    db = hybrid.connect(root, upkeep=None)
    t = db.create_table("docs", docs[:1], embedding={"vector": ("text", default_embedder())})
    t.add(docs[1:])
    elapsed = time.perf_counter() - start
    assert t.count_rows() == len(docs)
    return elapsed


def run_ray(root: Path, docs: list[dict[str, Any]], workers: int) -> float:
    import ray

    import hybrid
    import hybrid.ray as hr
    from hybrid.embedders.auto import default_embedder

    start = time.perf_counter()
    ds = ray.data.from_items(docs, override_num_blocks=max(4, 2 * workers))
    hr.write(ds, root, "docs", mode="create", embedding={"vector": ("text", default_embedder())}, embed_workers=workers)
    elapsed = time.perf_counter() - start
    assert hybrid.connect(root, upkeep=None).open_table("docs").count_rows() == len(docs)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("HYBRID_DATA"), help="folder of BEIR collections")
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--max-words", type=int, default=0, help="keep each document's first N words (0: all)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default="ray", help="results file stem")
    args = ap.parse_args()
    if not args.data:
        raise SystemExit("pass --data or set HYBRID_DATA")
    import ray
    from ray.data import DataContext

    docs = load_docs(Path(args.data), args.docs, args.max_words)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    DataContext.get_current().enable_progress_bars = False
    ray_start = time.perf_counter() - t0
    runs: dict[str, list[float]] = {"single": [], "ray-1": [], "ray-2": []}
    for rep in range(args.reps):
        for name in runs:
            scratch = Path(tempfile.mkdtemp(prefix="ray_ingest_"))
            try:
                secs = run_single(scratch, docs) if name == "single" else run_ray(scratch, docs, int(name[-1]))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            runs[name].append(secs)
            print(f"rep {rep + 1} {name}: {secs:.1f} s, {len(docs) / secs:.0f} docs/s", flush=True)
    ray.shutdown()
    med = {k: statistics.median(v) for k, v in runs.items()}
    rate = {k: len(docs) / v for k, v in med.items()}
    ratio = {k: rate[k] / rate["single"] for k in rate}
    data = {
        "docs": len(docs),
        "reps": args.reps,
        "max_words": args.max_words,
        "seconds": runs,
        "median_seconds": med,
        "docs_per_s": rate,
        "ratio_to_single": ratio,
        "ray_init_seconds": ray_start,
        "target_ray1_ratio": 0.85,
        "met": ratio["ray-1"] >= 0.85,
        "machine": machine_info(("ray", "onnxruntime", "pyarrow", "tantivy")),
        "git": git_state(),
    }
    lines = [
        "# Ray ingest + embed vs the single-process pipeline",
        "",
        f"`python eval/ray_ingest.py --docs {len(docs)} --reps {args.reps} --max-words {args.max_words}`: "
        f"{len(docs):,} real documents (BEIR scifact, then nfcorpus, ...; "
        + (f"each cut to its first {args.max_words} words" if args.max_words else "whole")
        + "), the default embedder (int8 ONNX all-MiniLM-L6-v2), from rows in "
        "memory to the committed version. Medians of alternating repetitions. The machine (2 cores) was "
        "shared with other agents' work while this ran: compare the ratios within this run, not the "
        "absolute times with other files.",
        "",
        "| pipeline | median s | docs/s | x single |",
        "|---|--:|--:|--:|",
    ]
    for k in runs:
        lines.append(f"| {k} | {med[k]:.1f} | {rate[k]:.0f} | {ratio[k]:.2f} |")
    lines += [
        "",
        f"Target: Ray with one embedding actor >= 0.85x single: **{'met' if data['met'] else 'not met'}** "
        f"({ratio['ray-1']:.2f}x). Starting the local Ray cluster took {ray_start:.1f} s, once, not counted.",
        "",
        "All runs: " + "; ".join(f"{k} " + ", ".join(f"{s:.1f} s" for s in v) for k, v in runs.items()) + ".",
        "",
    ]
    write_results(Path(args.out), args.name, data, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
