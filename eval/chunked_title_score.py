"""The document's title scored once per query and added at grouping time (issue 20, session g20e).

The chunk table holds no title (``titles="none"``). A second table holds one row per titled
document, its title alone (indexed and embedded), and is searched with a run of its own
(bm25, dense or hybrid: which branch scores the title). The grouped hybrid run over the chunks
(``max_mean``) and the title run are then fused per document by reciprocal rank (k = 20, the
library's RRF), under one of two rules that name no fitted constant:

* ``field``: the title is a field of the document, its list counts as much as the chunks' list;
* ``passage``: the title is one more passage of the document, so its list counts 1/(n+1) for a
  document of n chunks (the share of the document's passages that the title is).

and, over the ``once`` table (a titled document's chunk 0 is its title, embedded and indexed
like any chunk, so its fused score is on the chunks' scale), the ``max_mean`` group score with the
title counted as one more row of the document in the mean but not in the max (it is part of what a
document-level search sees, not a passage that can answer), beside the library's ``once`` (title
in both: a check that these figures reproduce ``hybrid@chunks``).

Each cell is compared with the unchunked hybrid run of the same run (paired randomization test,
10,000 trials). Tables come from ``eval/chunked_cached.py`` (same ``--work``); title vectors come
from its embedding cache (the ``once`` layout embedded every title alone).

    python eval/chunked_title_score.py <data>/webfaq_s2000 <data>/scifact_s800 --work <work> --name <name>
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from hybrid import connect
from hybrid.embedders import create
from hybrid.eval.chunked import PARENT, chunk_rows, chunk_table_name
from hybrid.eval.collection import Collection, load_beir
from hybrid.eval.metrics import evaluate, paired_randomization_test
from hybrid.eval.presets import VECTOR_COLUMN, fts_indexes_for, parse_run
from hybrid.eval.runs import execute
from hybrid.eval.title_group import title_group_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
import embed_cache  # noqa: E402

RRF_K = 20.0
SCORE = "_score"
SOURCES = ("bm25", "dense", "hybrid")
RULES = ("field", "passage")


def title_table(db, coll: Collection, embedder, fts):  # type: ignore[no-untyped-def]
    """One row per titled document: doc_id and its title as content, indexed and embedded."""
    rows = [{PARENT: d, "content": v["title"]} for d, v in coll.corpus.items() if v.get("title")]
    name = f"{coll.name}_titles"
    if name in db.table_names() and db.open_table(name).count_rows() == len(rows):
        return db.open_table(name)
    table = db.create_table(name, rows, mode="overwrite", embedding={VECTOR_COLUMN: ("content", embedder)})
    for index_name, options in fts.items():
        table.create_fts_index("content", name=index_name, replace=True, **options)
    return table


def fuse(chunks: dict[str, float], titles: dict[str, float], weight: dict[str, float]) -> dict[str, float]:
    """RRF of the grouped chunk list and the title list, the title's term weighted per document."""
    out: dict[str, float] = {}
    for rank, d in enumerate(sorted(chunks, key=lambda x: -chunks[x]), 1):
        out[d] = out.get(d, 0.0) + 1.0 / (RRF_K + rank)
    for rank, d in enumerate(sorted(titles, key=lambda x: -titles[x]), 1):
        out[d] = out.get(d, 0.0) + weight[d] / (RRF_K + rank)
    return out


def title_in_mean(table, config, queries, sizes, k: int, title_in_max: bool) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    """The ranked run of :func:`group_scores` (the k best documents)."""
    scored = group_scores(table, config, queries, sizes, k, title_in_max)
    return {q: {d: float(k - i) for i, d in enumerate(sorted(s, key=lambda x: -s[x])[:k])} for q, s in scored.items()}


def groups_fused(dense: dict, text: dict, k: int) -> dict[str, dict[str, float]]:  # type: ignore[type-arg]
    """Each branch's document scores fused per query by ``Linear(alpha=0.7)`` (the default fusion's
    form, without the per-query "auto" weights), the k best documents."""
    import numpy as np

    from hybrid.query.fusion import Linear, Ranked

    run = {}
    for q in dense:
        docs = sorted(set(dense[q]) | set(text.get(q, {})))
        code = {d: i for i, d in enumerate(docs)}
        lists = []
        for branch in (dense[q], text.get(q, {})):
            order = sorted(branch, key=lambda x: -branch[x])
            ids = np.asarray([code[d] for d in order], np.uint64)
            lists.append(Ranked(ids, np.asarray([branch[d] for d in order], np.float64)))
        ids, _ = Linear(alpha=0.7).fuse(lists)
        run[q] = {docs[int(i)]: float(k - n) for n, i in enumerate(ids[:k])}
    return run


def group_scores(table, config, queries, sizes, k: int, title_in_max: bool) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    """The grouped hybrid run over the ``once`` table (each titled document's chunk 0 is its title),
    computed from the fused rows by :func:`hybrid.eval.title_group.title_group_scores` (the title row
    in the mean only; with `title_in_max` in the max as well, which is the library's ``max_mean``)."""
    run = {}
    for qid, text in queries.items():
        q = table.search(text, query_type=config.mode, fts_index=config.fts_index)
        if config.mode == "hybrid":
            q = q.weights(config.weights)  # type: ignore[arg-type]
        q = q.candidates(2 * k).limit(4 * k)
        rows = q.select([PARENT, "chunk_no", "title", "content"]).to_arrow().to_pylist()
        if not rows:
            run[qid] = {}
            continue
        titled = [bool(r["chunk_no"] == 0 and r["title"] and r["title"] == r["content"]) for r in rows]
        marked = [(r[PARENT], r[SCORE], t and not title_in_max) for r, t in zip(rows, titled, strict=True)]
        run[qid] = title_group_scores(marked, sizes)  # type: ignore[assignment]
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("collections", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--embedder", default="onnx-minilm")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--name", default=None)
    ap.add_argument("--groups-fused", action="store_true", help="also each branch grouped, then fused")
    ap.add_argument("--runs", default="hybrid", help="comma-separated: bm25, dense, hybrid")
    ap.add_argument("--no-title-lists", dest="title_lists", action="store_false", help="skip the title-list fusion")
    args = ap.parse_args()
    embedder = create(args.embedder)
    if args.runs != "bm25":
        print(f"{embed_cache.load(args.work, embedder)} document vectors from the cache", flush=True)
    configs = {s: parse_run(s, embedder) for s in SOURCES}
    fts = fts_indexes_for(configs.values(), "default") or {"bm25": {"tokenizer": "default"}}
    figures: dict[str, dict] = {}
    for path in args.collections:
        coll = load_beir(path, "test")
        db = connect(args.work / coll.name / "db")
        queries = coll.judged_queries
        qs = sorted(queries)
        out: dict[str, Any] = {"queries": len(qs), "documents": len(coll.corpus), "unchunked": {}, "grouped": {}}
        chunks = db.open_table(chunk_table_name(coll.name, args.chunk, titles="none"))
        once = db.open_table(chunk_table_name(coll.name, args.chunk, titles="once"))
        once_sizes = Counter(r[PARENT] for r in chunk_rows(coll, args.chunk, titles="once"))
        print(f"{coll.name}: {len(coll.corpus)} documents", flush=True)
        for run_name in args.runs.split(","):
            config = configs[run_name]
            base = execute(db.open_table(coll.name), config, queries, k=args.k, progress=False).run
            grouped = replace(config, name=run_name + "@chunks", group_by=PARENT, group_score="max_mean")
            group_run = execute(chunks, grouped, queries, k=args.k, progress=False).run
            base_mean, base_pq = evaluate(base, coll.qrels, ["nDCG@10"])
            a = [base_pq[q]["nDCG@10"] for q in qs]
            out["unchunked"][run_name] = round(base_mean["nDCG@10"], 4)
            print(f" {run_name} unchunked {base_mean['nDCG@10']:.4f}")
            runs = {"none (no title)": group_run}
            for in_max in (True, False):
                name = "once, title in max and mean" if in_max else "once, title in mean only"
                runs[name] = title_in_mean(once, config, queries, once_sizes, args.k, in_max)
            if run_name == "hybrid" and args.groups_fused:
                none_sizes = Counter(r[PARENT] for r in chunk_rows(coll, args.chunk, titles="none"))
                per: dict[str, dict] = {}  # type: ignore[type-arg]
                for branch in ("dense", "bm25"):
                    per[branch + " none"] = group_scores(chunks, configs[branch], queries, none_sizes, args.k, True)
                    per[branch + " max"] = group_scores(once, configs[branch], queries, once_sizes, args.k, True)
                    per[branch + " mean"] = group_scores(once, configs[branch], queries, once_sizes, args.k, False)
                for dense_title, text_title in (("none", "none"), ("max", "max"), ("mean", "mean"), ("mean", "max")):
                    name = f"groups fused: dense title {dense_title}, bm25 title {text_title}"
                    runs[name] = groups_fused(per["dense " + dense_title], per["bm25 " + text_title], args.k)
            if args.title_lists and run_name == "hybrid":
                titles = title_table(db, coll, embedder, fts)
                embed_cache.save(args.work, embedder)
                n_chunks = Counter(r[PARENT] for r in chunk_rows(coll, args.chunk, titles="none"))
                weights = {"field": dict.fromkeys(coll.corpus, 1.0)}
                weights["passage"] = {d: 1 / (n_chunks[d] + 1) for d in coll.corpus}
                for source in SOURCES:
                    title_run = execute(titles, configs[source], queries, k=args.k, progress=False).run
                    for rule in RULES:
                        runs[f"{source} title, {rule}"] = {
                            q: fuse(group_run.get(q, {}), title_run.get(q, {}), weights[rule]) for q in qs
                        }
            cells: dict[str, dict] = out["grouped"].setdefault(run_name, {})
            for name, run in runs.items():
                mean, pq = evaluate(run, coll.qrels, ["nDCG@10"])
                b = [pq[q]["nDCG@10"] for q in qs]
                d = mean["nDCG@10"] - base_mean["nDCG@10"]
                p = paired_randomization_test(a, b)
                print(f"  {name:52s} {mean['nDCG@10']:.4f}  {d:+.4f} against unchunked (p {p:.3f})", flush=True)
                cells[name] = {"nDCG@10": round(mean["nDCG@10"], 4), "delta": round(d, 4), "p": round(p, 4)}
        figures[coll.name] = out
    if args.name:
        results = Path(__file__).resolve().parent / "results" / f"{args.name}.json"
        shown = [f"<data>/{Path(a).name}" if Path(a) in args.collections else a for a in sys.argv[1:]]
        shown = ["<work>" if a == str(args.work) else a for a in shown]
        meta = {"command": "python eval/chunked_title_score.py " + " ".join(shown), "embedder": embedder.name}
        results.write_text(json.dumps({"meta": meta, "collections": figures}, indent=1) + "\n")
        print(f"wrote {results.name}")


if __name__ == "__main__":
    main()
