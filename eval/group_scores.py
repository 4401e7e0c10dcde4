"""Group scores over the same candidates: how each way of scoring a document from its chunks ranks.

Over the tables ``eval/chunked_cached.py`` builds (the unchunked documents and the ~128-token
chunks of each collection), every query's grouped search is run once; the scored candidates the
engine hands to grouping (fused, for hybrid) are captured, and each group score below is applied
to those same candidates, so the figures differ only by the group score:

- ``max``: the best chunk's score;
- ``max_mean``: half the best chunk's plus half the mean over all the document's chunks, chunks
  not among the candidates counting as the weakest candidate (the engine's, reproduced);
- ``max_mean_len``: the same with each chunk weighted by its length in the mean (a mean over the
  document's text, not over its pieces: a short tail chunk weighs what it holds);
- ``max_first``: half the best chunk's score plus half the document's first chunk's (the weakest
  candidate's where the first chunk is not a candidate): what a search over whole documents cut
  at the embedder's window sees is mostly the document's beginning;
- ``sum``: the sum of the candidates' scores.

nDCG@10 of each against the unchunked run of the same mode, with a paired randomization test:

    python eval/group_scores.py <data>/webfaq <data>/nfcorpus --work <folder> [--runs hybrid,dense,bm25]
"""

from __future__ import annotations

import argparse
import json
import pickle
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

import hybrid.query.grouping as grouping
from hybrid import connect
from hybrid.embedders import create
from hybrid.eval.chunked import PARENT, POSITION, chunk_table_name
from hybrid.eval.collection import load_beir
from hybrid.eval.metrics import evaluate, paired_randomization_test
from hybrid.eval.presets import parse_run
from hybrid.eval.runs import execute

Scorer = Callable[[np.ndarray, list[list[int]], dict[str, np.ndarray]], list[float]]


def _capture(chunks, config, queries, k):  # type: ignore[no-untyped-def]
    """Per query: the row ids and scores grouping saw on its last (deepest) call."""
    seen: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    original = grouping.group
    current: list[str] = [""]

    def hook(ids, scores, keys, n_groups, **kw):  # type: ignore[no-untyped-def]
        seen[current[0]] = (np.asarray(ids).copy(), np.asarray(scores, dtype=np.float64).copy())
        return original(ids, scores, keys, n_groups, **kw)

    grouping.group = hook  # type: ignore[assignment]
    try:
        for qid, text in queries.items():
            current[0] = qid
            execute(chunks, config, {qid: text}, k=k, progress=False)
    finally:
        grouping.group = original  # type: ignore[assignment]
    return seen


def _rows(chunks) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    data = chunks.to_arrow([PARENT, POSITION, "content"], with_rowid=True)
    ids = data.column("_rowid").to_numpy()
    docs = np.asarray(data.column(PARENT).to_pylist(), dtype=object)
    lengths = np.asarray([len(t) for t in data.column("content").to_pylist()], dtype=np.float64)
    return {"ids": ids, "docs": docs, "lengths": lengths, "position": data.column(POSITION).to_numpy()}


def _mean_part(scores: np.ndarray, groups: list[list[int]], weight: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Per group: the weighted mean over the whole document, missing weight at the weakest score."""
    low = float(scores.min())
    out = np.empty(len(groups))
    for j, g in enumerate(groups):
        w = weight[g]
        out[j] = (float(np.dot(w, scores[g])) + max(total[j] - float(w.sum()), 0.0) * low) / max(total[j], w.sum())
    return out


def rank(ids: np.ndarray, scores: np.ndarray, rows: dict[str, np.ndarray], how: str, k: int) -> list[str]:
    """The k best documents under group score `how`."""
    if not len(ids):
        return []
    at = np.searchsorted(rows["ids"], ids)
    docs = rows["docs"][at]
    order = np.argsort(-scores, kind="stable")
    members: dict[str, list[int]] = {}
    for i in order.tolist():
        members.setdefault(docs[i], []).append(i)
    names = list(members)
    groups = list(members.values())
    if how == "max":
        return names[:k]
    if how == "sum":
        total = [float(scores[g].sum()) for g in groups]
    elif how == "max_first":
        low = float(scores.min())
        position = rows["position"][at]
        total = []
        for g in groups:
            first = [i for i in g if position[i] == 0]
            total.append((float(scores[g[0]]) + (float(scores[first[0]]) if first else low)) / 2)
    else:
        if how == "max_mean":
            weight = np.ones(len(ids))
            size = rows["n_chunks"]
        elif how == "max_mean_len":
            weight = rows["lengths"][at]
            size = rows["doc_length"]
        else:
            raise ValueError(how)
        totals = np.asarray([size[at[g[0]]] for g in groups], dtype=np.float64)
        mean = _mean_part(scores, groups, weight, totals)
        best = np.asarray([scores[g[0]] for g in groups])
        total = ((best + mean) / 2).tolist()
    ranked = sorted(range(len(groups)), key=lambda j: -total[j])
    return [names[j] for j in ranked[:k]]


HOWS = ("max", "max_mean", "max_mean_len", "max_first", "sum")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("collections", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--runs", default="hybrid")
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--embedder", default="onnx-minilm")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--no-title", dest="title", action="store_false", help="the chunk tables without titles")
    ap.add_argument("--out", type=Path, help="write the figures as json here")
    args = ap.parse_args()
    embedder = create(args.embedder)
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for path in args.collections:
        coll = load_beir(path, "test")
        db = connect(args.work / coll.name / "db")
        docs, chunks = db.open_table(coll.name), db.open_table(chunk_table_name(coll.name, args.chunk, args.title))
        rows = _rows(chunks)
        order = np.argsort(rows["ids"])
        rows = {n: v[order] for n, v in rows.items()}
        uniq, inverse, counts = np.unique(rows["docs"].astype(str), return_inverse=True, return_counts=True)
        rows["n_chunks"] = counts[inverse].astype(np.float64)
        rows["doc_length"] = np.bincount(inverse, weights=rows["lengths"])[inverse]
        queries = coll.judged_queries
        for spec in args.runs.split(","):
            config = parse_run(spec, embedder)
            base = execute(docs, config, queries, k=args.k, progress=False)
            cache = args.work / coll.name / f"captured_{chunk_table_name(spec, args.chunk, args.title)}.pkl"
            if cache.exists():
                seen = pickle.loads(cache.read_bytes())
            else:
                grouped = replace(config, group_by=PARENT, group_score="max_mean")
                seen = _capture(chunks, grouped, queries, args.k)
                cache.write_bytes(pickle.dumps(seen))
            _, base_pq = evaluate(base.run, coll.qrels, ["nDCG@10"])
            qs = sorted(base_pq)
            a = [base_pq[q]["nDCG@10"] for q in qs]
            print(f"{coll.name} {spec}: unchunked {np.mean(a):.4f}")
            out = figures.setdefault(f"{coll.name}/{spec}", {"unchunked": {"nDCG@10": float(np.mean(a))}})
            for how in HOWS:
                run = {}
                for qid, (ids, scores) in seen.items():
                    ranked = rank(ids, scores, rows, how, args.k)
                    run[qid] = {d: float(len(ranked) - r) for r, d in enumerate(ranked)}
                _, pq = evaluate(run, coll.qrels, ["nDCG@10"])
                b = [pq[q]["nDCG@10"] for q in qs]
                p = paired_randomization_test(a, b)
                d = float(np.mean(b) - np.mean(a))
                out[how] = {"nDCG@10": float(np.mean(b)), "difference": d, "p": p}
                print(f"  {how:14s} {np.mean(b):.4f}  {d:+.4f} (p {p:.3f})")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
