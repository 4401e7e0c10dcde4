"""How often an embedder tune's in-batch negatives are rows judged relevant to the query (no model needed).

The embedder's loss scores each training query against every text of its batch; the others' positives are
taken as its negatives. Where a collection's queries share relevant rows, some of those "negatives" are
judged relevant to the query: :mod:`hybrid.feedback.in_batch` leaves them out. This script counts them for a
collection's training judgments, batching the (query, relevant row) examples as ``table.tune`` does
(:func:`hybrid.feedback.embedder.batches`, seeded), before any mining: only the in-batch positives are
counted (mined hard negatives come from the table's search and add to the count during a real tune).

    python eval/in_batch_overlap.py [--data DIR] [--train scifact:train,nfcorpus:dev] [--batch 32]
        [--positives-per-query N]

Writes eval/results/in_batch_overlap.md and .json (``--name`` sets the stem).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.peer_config import default_data  # noqa: E402

from hybrid.eval.collection import load_beir  # noqa: E402
from hybrid.feedback.embedder import batches  # noqa: E402
from hybrid.feedback.in_batch import relevance_mask  # noqa: E402
from hybrid.feedback.reranker import TrainingExample  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def overlap(name: str, split: str, data: Path, batch: int, per_query: int | None, seed: int) -> dict[str, Any]:
    """Masked in-batch candidates of one pass over `name`'s `split` judgments."""
    coll = load_beir(data / name, split)
    ids = {d: i for i, d in enumerate(coll.corpus)}
    rng = random.Random(seed)
    examples = []
    for q, rels in coll.qrels.items():
        relevant = [d for d, v in rels.items() if v > 0 and d in ids]
        rng.shuffle(relevant)
        for d in relevant[:per_query]:
            rows = frozenset(ids[x] for x in relevant)
            examples.append(TrainingExample(coll.queries[q], d, [], rows=(ids[d],), relevant=rows))
    plan = batches(examples, batch, random.Random(seed))
    masked = candidates = hit_queries = 0
    for b in plan:
        mask = relevance_mask(b, 0)
        masked += sum(map(sum, mask))
        candidates += len(b) * (len(b) - 1)
        hit_queries += sum(any(row) for row in mask)
    return {
        "collection": name,
        "split": split,
        "queries": len(coll.qrels),
        "relevant_per_query": round(sum(len(r) for r in coll.qrels.values()) / len(coll.qrels), 1),
        "examples": len(examples),
        "batches": len(plan),
        "in_batch_negatives": candidates,
        "judged_relevant": masked,
        "share": masked / candidates if candidates else 0.0,
        "examples_with_one": hit_queries,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data())
    p.add_argument("--train", default="scifact:train,nfcorpus:dev")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--positives-per-query", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="in_batch_overlap")
    args = p.parse_args()
    rows = []
    for item in [x for x in args.train.split(",") if x]:
        name, _, split = item.partition(":")
        for per_query in sorted({args.positives_per_query, 2}, key=lambda x: x or 10**9):
            rows.append(overlap(name, split or "train", args.data, args.batch, per_query, args.seed))
            rows[-1]["positives_per_query"] = per_query
    argv = sys.argv[1:]  # without --data and its value (a machine path)
    public = [a for i, a in enumerate(argv) if a != "--data" and not (i and argv[i - 1] == "--data")]
    command = " ".join(["python eval/in_batch_overlap.py", *public])
    lines = [
        "# In-batch negatives judged relevant to the query (embedder tune, one pass, before mining)",
        "",
        f"`{command}`. Batches of {args.batch} (query, relevant row) examples as `table.tune` makes them "
        "(no query and no positive twice in a batch); a candidate is another example's positive; "
        "'judged relevant' counts (query, candidate) pairs the training judgments mark relevant, which "
        "`hybrid.feedback.in_batch` leaves out of the loss. All judged queries of the split (a tune holds 20% out).",
        "",
        "| collection | split | queries | judged rows a query | positives a query | examples | batches | "
        "in-batch negatives | judged relevant (share) | examples with one |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['collection']} | {r['split']} | {r['queries']} | {r['relevant_per_query']} | "
            f"{r['positives_per_query'] or 'all'} | {r['examples']} | {r['batches']} | {r['in_batch_negatives']} | "
            f"{r['judged_relevant']} ({r['share']:.2%}) | {r['examples_with_one']} |"
        )
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
