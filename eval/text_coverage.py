#!/usr/bin/env python
"""Issue 23: the default hybrid with and without the text branch's coverage factor (:mod:`hybrid.query.coverage`).

Per collection (default embedder and analysis, one table): nDCG@10 of BM25, dense, the default hybrid
without the factor (`hybrid before`: as the library was) and with it (`hybrid`), each hybrid's margin over
the better of its two branches (issue 23's target: +0.02), and the paired randomization test of the two.

    python eval/text_coverage.py --collections xquad-r/de,xquad-r/es,cranfield --work <work> --name text_coverage_l23i

`--work`: a folder where each collection's table and question vectors are kept and found again (embedding
the XQuAD-R sets with e5 takes minutes each); without it, a temporary one. Quality only (no timings).
Writes eval/results/<name>.md and .json after each collection.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

import hybrid  # noqa: E402
from hybrid.embedders.auto import embedder_for  # noqa: E402
from hybrid.embedders.base import EmbeddingCache  # noqa: E402
from hybrid.eval import evaluate, load_beir, paired_randomization_test  # noqa: E402
from hybrid.eval.presets import VECTOR_COLUMN, parse_run  # noqa: E402
from hybrid.eval.runs import build_table, execute  # noqa: E402
from hybrid.query import executor  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lang_report  # noqa: E402
from peer_lancedb import default_data  # noqa: E402

K = 100


@contextmanager
def without_coverage() -> Iterator[None]:
    """The default hybrid as it was before the coverage factor (text_coverage always None)."""
    kept = executor.text_coverage
    executor.text_coverage = lambda view, b: None
    try:
        yield
    finally:
        executor.text_coverage = kept


def _table(work: Path, name: str, folder: Path) -> tuple[hybrid.Table, Any, Any]:
    coll = load_beir(folder)
    path = work / name.replace("/", "-")
    if path.exists():
        db = hybrid.connect(str(path))
        table = db.open_table(db.table_names()[0])
    else:
        embedder = embedder_for(d["text"] for d in coll.corpus.values())
        table = build_table(
            hybrid.connect(str(path)), coll, embedders={VECTOR_COLUMN: embedder}, fts={"bm25": {"tokenizer": "default"}}
        )
    embedder = table.embeddings[VECTOR_COLUMN][1]
    return table, embedder, coll


def _questions(work: Path, name: str, embedder: Any, queries: Mapping[str, str]) -> None:
    """Every question's vector in the embedder's cache: read from `work` when kept there, else embedded and kept."""
    path = work / f"{name.replace('/', '-')}-queries.npz"
    texts = list(queries.values())
    if path.exists():
        saved = np.load(path, allow_pickle=False)
        if [str(t) for t in saved["texts"]] == texts:
            for text, vec in zip(texts, saved["vectors"]):
                embedder.cache.put(EmbeddingCache.key("query", text), vec.astype(np.float32))
            return
    vectors = embedder.embed_queries(texts)
    np.savez(path, texts=np.array(texts), vectors=vectors)


def measure(work: Path, name: str, folder: Path) -> dict[str, Any]:
    table, embedder, coll = _table(work, name, folder)
    queries = coll.judged_queries
    _questions(work, name, embedder, queries)
    runs = {n: execute(table, parse_run(n, embedder), queries, k=K, progress=False).run for n in ("bm25", "dense")}
    with without_coverage():
        runs["hybrid before"] = execute(table, parse_run("hybrid", embedder), queries, k=K, progress=False).run
    runs["hybrid"] = execute(table, parse_run("hybrid", embedder), queries, k=K, progress=False).run
    per = {n: evaluate(run, dict(coll.qrels), ["nDCG@10"])[1] for n, run in runs.items()}
    qids = sorted(per["hybrid"])
    score = {n: [per[n][q]["nDCG@10"] for q in qids] for n in runs}
    mean = {n: statistics.fmean(v) for n, v in score.items()}
    better = max(mean["bm25"], mean["dense"])
    return {
        "embedder": embedder.name,
        "questions": len(qids),
        **{n: round(m, 4) for n, m in mean.items()},
        "margin before": round(mean["hybrid before"] - better, 4),
        "margin": round(mean["hybrid"] - better, 4),
        "hybrid vs before": round(mean["hybrid"] - mean["hybrid before"], 4),
        "p": round(paired_randomization_test(score["hybrid"], score["hybrid before"], trials=10_000), 4),
        "changed": sum(a != b for a, b in zip(score["hybrid"], score["hybrid before"])),
    }


def to_markdown(report: dict[str, Any]) -> str:
    explained = (
        "nDCG@10, default embedder and analysis. `hybrid before`: the default hybrid without the text "
        "branch's coverage factor; `hybrid`: with it (the library now); margins: hybrid minus the better "
        "of its two branches (issue 23's target +0.02); p: paired randomization test (10,000 trials)."
    )
    lines = lang_report.header(report, "The text branch's coverage factor", explained)
    rows = report["rows"]
    if rows:
        keys = list(next(iter(rows.values())))
        lines += ["| collection | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for name, r in rows.items():
            lines.append(f"| {name} | " + " | ".join(str(r[k]) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--collections", default="xquad-r/en,xquad-r/zh,xquad-r/de,xquad-r/es,xquad-r/ru,xquad-r/hi")
    parser.add_argument("--work", type=Path, default=None, help="where tables and question vectors are kept")
    parser.add_argument("--name", default="text_coverage_l23i")
    args = parser.parse_args()
    report = lang_report.start("text_coverage.py", args.name, args.data)
    if args.work is not None:
        report["command"] = report["command"].replace(str(args.work), "<work>")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        jobs = [(c, lambda c=c: measure(work, c, args.data / c)) for c in args.collections.split(",") if c]
        lang_report.run(report, jobs, to_markdown)


if __name__ == "__main__":
    main()
