#!/usr/bin/env python
"""Do the pages of every kind of query agree? Offset/limit pages against one longer result.

A table of a judged collection through the public API (the embedder ``hybrid eval`` picks, an HNSW
index, the default full-text index), with two columns made from each document's place in the
corpus: ``parent`` (four documents a parent, declared as the chunk layout's parent, for grouping and
expansion) and ``age`` (a number, for decay). For
each of the first ``--questions`` questions and each query shape below, the query read as
``--pages`` pages of 10 (``offset(10 * p).limit(10)``) and as one ``limit(10 * pages)`` result.
Counted per shape: questions whose pages differ from the one result, and whose pages show a row
twice. Shapes: the default hybrid; vector alone; full text with a decay; vector with a decay;
hybrid reranked (a word-overlap reranker: many ties); hybrid grouped by parent with two rows a group
(rows fused, and each branch grouped first); vector grouped the same way; hybrid expanded to each
hit's neighbours, and to its whole parent.

    python eval/page_agreement.py --collection xquad-r/en --name page_agreement_s40

Writes eval/results/<name>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench.frame import RESULTS_DIR, git_info, write_results  # noqa: E402
from peer_lancedb import default_data  # noqa: E402

from hybrid import connect  # noqa: E402
from hybrid.embedders.auto import embedder_for  # noqa: E402
from hybrid.eval import load_beir  # noqa: E402
from hybrid.eval.query_vectors import embed_questions  # noqa: E402
from hybrid.rerankers import CallableReranker  # noqa: E402


def overlap(query: str, texts: list[str]) -> list[float]:
    """Words the text shares with the question: a reranker whose scores tie often."""
    words = set(query.lower().split())
    return [float(len(words & set(t.lower().split()))) for t in texts]


def shapes(table: Any) -> dict[str, Callable[[str], Any]]:
    rerank = CallableReranker(overlap, column="content", name="overlap")
    return {
        "hybrid": lambda text: table.search(text),
        "vector": lambda text: table.search(text, query_type="vector"),
        "full text + decay": lambda text: table.search(text, query_type="fts").decay("age", scale=30, origin=0),
        "vector + decay": lambda text: table.search(text, query_type="vector").decay("age", scale=30, origin=0),
        "hybrid + rerank": lambda text: table.search(text).rerank(rerank),
        "hybrid + group_by (2 a group)": lambda text: table.search(text).group_by("parent", per_group=2),
        "hybrid + group_by fuse=groups": lambda text: table.search(text).group_by("parent", per_group=2, fuse="groups"),
        "vector + group_by (2 a group)": lambda text: table.search(text, query_type="vector").group_by(
            "parent", per_group=2
        ),
        "hybrid + expand(neighbours=1)": lambda text: table.search(text).expand(neighbours=1),
        "hybrid + expand(parent=True)": lambda text: table.search(text).expand(parent=True),
    }


def count(make: Callable[[str], Any], questions: list[str], pages: int) -> dict[str, int]:
    def ids(q: Any) -> list[Any]:
        return q.select(["doc_id"]).to_arrow().column("doc_id").to_pylist()

    out = {"pages_differ": 0, "repeated_row": 0}
    for text in questions:
        whole = ids(make(text).limit(10 * pages))
        paged = [i for p in range(pages) for i in ids(make(text).offset(10 * p).limit(10))]
        out["pages_differ"] += paged != whole
        out["repeated_row"] += len(set(paged)) < len(paged)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--collection", default="xquad-r/en")
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--pages", type=int, default=4)
    ap.add_argument("--name", default="page_agreement")
    args = ap.parse_args()
    coll = load_beir(args.data / args.collection)
    embedder = embedder_for(d["text"] for d in coll.corpus.values())
    questions = list(coll.judged_queries.values())[: args.questions]
    rows = [{**d, "parent": f"p{i // 4}", "age": i % 97} for i, d in enumerate(coll.documents())]
    with tempfile.TemporaryDirectory() as tmp:
        table = connect(tmp).create_table("docs", rows, embedding={"vector": ("content", embedder)})
        table.create_fts_index("content")
        table.create_vector_index("vector")
        table.set_chunking(parent="parent")
        embed_questions(embedder, questions)
        found = {name: count(make, questions, args.pages) for name, make in shapes(table).items()}
    report = {
        "command": " ".join(["python eval/page_agreement.py", *sys.argv[1:]]).replace(str(args.data), "<data>"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "git": str((git_info() or {}).get("commit", "unknown"))[:12],
        "collection": args.collection,
        "embedder": embedder.name,
        "questions": len(questions),
        "pages": args.pages,
        "shapes": found,
    }
    lines = [
        f"# Pages of each kind of query ({args.collection})",
        "",
        f"Generated by `{report['command']}` on {report['date']}; code `{report['git']}`; embedder {embedder.name}.",
        "",
        f"{len(questions)} questions, {args.pages} pages of 10 against one `limit({10 * args.pages})` result,"
        " on a table with an HNSW index.",
        "",
        "| query | pages differ from one result | a row on two pages |",
        "|---|--:|--:|",
    ]
    lines += [f"| {name} | {c['pages_differ']} | {c['repeated_row']} |" for name, c in found.items()]
    write_results(RESULTS_DIR, args.name, report, "\n".join(lines) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
