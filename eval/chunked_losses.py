"""Where a grouped chunk run loses to the unchunked run: per query, which relevant documents fell and who overtook them.

Reads the runs a chunked evaluation wrote (``<report>/runs/<name>.json``: ``hybrid eval --chunk``
or ``eval/chunked_cached.py``'s ``<work>/<collection>/report_<layout>``) and prints, for the
grouped run against the unchunked run of the same mode: how many queries lose and gain; in the
losing queries, whether each single branch's grouped run lost too; how many chunks the relevant
documents of the losing queries have; and how many chunks the documents have that now rank above
a relevant document they ranked below before (against the collection's documents as a whole).
A length bias of grouping shows as overtaking documents longer than the collection's. With
``--captured`` (the candidates ``eval/group_scores.py`` saved for the grouped run, and its chunk
table's database), it also says what share of those documents' chunks were among the candidates
grouping saw (``max_mean`` counts the others at the weakest candidate's score).

    python eval/chunked_losses.py <data>/webfaq <work>/webfaq/report_every [--run hybrid] [--chunk 128]
    python eval/chunked_losses.py <data>/webfaq <work>/webfaq/report_every \\
        --captured <work>/webfaq/captured_hybrid_chunks128.pkl
"""

from __future__ import annotations

import argparse
import json
import pickle
from collections import Counter
from pathlib import Path

import numpy as np

from hybrid import connect
from hybrid.eval.chunked import PARENT, chunk_rows, chunk_table_name
from hybrid.eval.collection import load_beir
from hybrid.eval.metrics import evaluate

MISSING = 10**6
"""The rank of a document a run did not list."""


def _ranks(run: dict[str, dict[str, float]], qid: str) -> dict[str, int]:
    listed = run.get(qid, {})
    return {doc: i for i, doc in enumerate(sorted(listed, key=lambda d: -listed[d]))}


def _share(counts: np.ndarray) -> str:
    return (
        f"{len(counts)}: chunks median {np.median(counts):.0f}, mean {counts.mean():.2f}, "
        f"more than one {np.mean(counts > 1):.2f}, more than four {np.mean(counts > 4):.2f}"
    )


class Found:
    """The candidates ``eval/group_scores.py`` captured per query, and each chunk's document."""

    def __init__(self, captured: Path, collection: str, tokens: int) -> None:
        table = connect(captured.parent / "db").open_table(chunk_table_name(collection, tokens))
        data = table.to_arrow([PARENT], with_rowid=True)
        ids, keys = data.column("_rowid").to_numpy(), np.asarray(data.column(PARENT).to_pylist(), dtype=object)
        order = np.argsort(ids)
        self.ids, self.keys = ids[order], keys[order]
        self.sizes = Counter(keys.tolist())
        self.seen = pickle.loads(captured.read_bytes())

    def shares(self, qid: str, docs: list[str]) -> list[float]:
        """For each of `docs`, the share of its chunks among the candidates of query `qid`."""
        found = Counter(self.keys[np.searchsorted(self.ids, self.seen[qid][0])].tolist())
        return [found[d] / self.sizes[d] for d in docs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("collection", type=Path)
    ap.add_argument("report", type=Path, help="a chunked report's folder (holding runs/)")
    ap.add_argument("--run", default="hybrid", help="the unchunked run; its grouped run is <run>_chunks")
    ap.add_argument("--grouped", default=None, help="the grouped run's file stem (default <run>_chunks)")
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--captured", type=Path, default=None, help="eval/group_scores.py's captured candidates")
    args = ap.parse_args()
    coll = load_beir(args.collection, "test")
    chunks = Counter(r[PARENT] for r in chunk_rows(coll, args.chunk, titles="every"))
    grouped = args.grouped or f"{args.run}_chunks"
    names = [args.run, grouped, "bm25", "bm25_chunks", "dense", "dense_chunks"]
    runs = {n: json.loads((args.report / "runs" / f"{n}.json").read_text()) for n in names}
    ndcg = {n: evaluate(r, coll.qrels, ["nDCG@10"])[1] for n, r in runs.items()}
    qs = sorted(ndcg[args.run])
    diff = np.array([ndcg[grouped][q]["nDCG@10"] - ndcg[args.run][q]["nDCG@10"] for q in qs])
    lost = [q for q, d in zip(qs, diff) if d < -1e-9]
    print(
        f"{coll.name}: {grouped} - {args.run} {diff.mean():+.4f}; {len(lost)} queries lose "
        f"({diff[diff < 0].sum():+.2f}), {int((diff > 1e-9).sum())} gain ({diff[diff > 0].sum():+.2f})"
    )
    branches: Counter[str] = Counter()
    relevant, overtaking = [], []
    found: list[tuple[int, float]] = []
    candidates = None if args.captured is None else Found(args.captured, coll.name, args.chunk)
    for q in lost:
        for b in ("bm25", "dense"):
            d = ndcg[f"{b}_chunks"][q]["nDCG@10"] - ndcg[b][q]["nDCG@10"]
            branches[f"{b} {'lost' if d < -1e-9 else 'gained' if d > 1e-9 else 'same'}"] += 1
        before, after = _ranks(runs[args.run], q), _ranks(runs[grouped], q)
        for doc, grade in coll.qrels[q].items():
            if grade <= 0:
                continue
            relevant.append(chunks[doc])
            was, now = before.get(doc, MISSING), after.get(doc, MISSING)
            if now > was:
                passed = [d for d, r in after.items() if r < now and before.get(d, MISSING) > was]
                overtaking += [chunks[d] for d in passed]
                if candidates is not None:
                    found += zip([chunks[d] for d in passed], candidates.shares(q, passed))
    print(f"  losing queries, each branch grouped against its unchunked run: {dict(sorted(branches.items()))}")
    print(f"  relevant documents of the losing queries, {_share(np.array(relevant))}")
    if overtaking:
        print(f"  documents that overtook a relevant one, {_share(np.array(overtaking))}")
    print(f"  every document of the collection, {_share(np.array(list(chunks.values())))}")
    many = np.array([share for n, share in found if n > 1])
    if len(many):
        print(
            f"  overtaking documents of more than one chunk ({len(many)}): share of their chunks among the "
            f"candidates, median {np.median(many):.2f}, mean {many.mean():.2f}"
        )


if __name__ == "__main__":
    main()
