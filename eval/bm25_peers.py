#!/usr/bin/env python
"""The BM25 branch beside its peers, on the same corpus text: hybrid's default full-text index,
LanceDB's native FTS (its defaults) and bm25s (Snowball stemmer, its English stop words).

Every system indexes each collection's ``content`` ("title. text", what `hybrid.eval` indexes)
and answers every judged test query with its top 100; nDCG@10 by ir-measures (trec_eval).

* hybrid: ``table.create_fts_index("content")`` with no options (language detected, BM25F),
  queried through ``table.search(q, query_type="fts")``; also the first analysis chain
  (``version=1``: what hybrid shipped before) for reference.
* LanceDB: ``create_fts_index("content", use_tantivy=False)`` (its defaults: simple tokenizer,
  English stemming and stop words, lower case, ASCII folding); Chinese with its ``ngram``
  tokenizer (its only offline segmentation that needs no downloaded dictionary besides ICU,
  which scored lower in eval/results/peer_lancedb.md).
* bm25s: ``bm25s.tokenize(..., stopwords="en", stemmer=PyStemmer english)``, BM25 (k1=1.5,
  b=0.75, Lucene idf: its defaults); Chinese gets hybrid's character + bigram segmentation first,
  since bm25s's tokenizer keeps a run of Han characters as one word.

It also times query analysis (the text -> terms step of a text query) for the old and the new
chain: p50 over the queries, 20 rounds.

    python eval/bm25_peers.py [--data <BEIR folder, default $HYBRID_DATA>] [--collections scifact,webfaq]

Writes eval/results/bm25_peers.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

import hybrid
from hybrid.eval import load_beir
from hybrid.eval.collection import Collection
from hybrid.eval.metrics import evaluate
from hybrid.index.analyzer import Analyzer
from hybrid.query.text import PROXIMITY_SLOP, Match

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_lancedb import default_data  # noqa: E402  (the benchmarks' one data-folder rule)

warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "eval" / "results"
COLLECTIONS = "scifact,nfcorpus,cranfield,xquad-r/en,xquad-r/zh,webfaq"
K = 100
PROXIMITY = (0.5, 1.0)
ALTERNATIVE = {"k1": 1.2, "b": 0.9}
"""BM25 parameters measured beside tantivy's (the best worst case in eval/results/bm25_params.md)."""
ALTERNATIVE_NAME = "k1=1.2 b=0.9"
"""Proximity weights measured beside the default (off)."""


def ndcg(coll: Collection, run: dict[str, dict[str, float]]) -> float:
    return evaluate(run, coll.qrels, ["nDCG@10"])[0]["nDCG@10"]


def hybrid_run(
    coll: Collection,
    rows: list[dict[str, str]],
    work: Path,
    columns: tuple[str, ...] = ("content",),
    proximity: float = 0.0,
    **options: Any,
) -> tuple[dict, dict]:
    db = hybrid.connect(work / "hybrid")
    t = db.create_table("docs", [{"doc_id": r["doc_id"], **{c: r[c] for c in columns}} for r in rows], mode="overwrite")
    t.create_fts_index(list(columns), **options)
    stats = next(s for s in t.index_stats() if s["kind"] == "fts")
    run, ms = {}, []
    for qid, text in coll.judged_queries.items():
        start = time.perf_counter()
        hits = t.search(Match(text, proximity=proximity), query_type="fts").select(["doc_id"]).limit(K).to_list()
        ms.append((time.perf_counter() - start) * 1000)
        run[qid] = {h["doc_id"]: float(h["_bm25"]) for h in hits}
    info = {"analyzer": stats["analyzer"], "language_detection": stats.get("language_detection")}
    return run, {**info, "query_p50_ms": float(np.median(ms))}


def first_chain_run(coll: Collection, rows: list[dict[str, str]], zh: bool) -> dict:
    from hybrid.index.fulltext import FullTextIndex

    analyzer = Analyzer.from_dict(
        {"language": "zh" if zh else "en", "ascii_folding": True, "tokenizer": "jieba" if zh else "default"}
    )
    ids = np.arange(len(rows), dtype=np.uint64)
    index = FullTextIndex.build(None, ["content"], analyzer, [(ids, {"content": [r["content"] for r in rows]})])
    run = {}
    for qid, text in coll.judged_queries.items():
        q = index.compile(Match(text))
        if q is not None:
            found, scores = index.search(q, K)
            run[qid] = {rows[int(i)]["doc_id"]: float(s) for i, s in zip(found, scores)}
    return run


def lance_run(coll: Collection, rows: list[dict[str, str]], work: Path, zh: bool) -> dict:
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(work / "lance"))
    data = pa.table({"doc_id": [r["doc_id"] for r in rows], "content": [r["content"] for r in rows]})
    t = db.create_table("docs", data, mode="overwrite")
    options: dict[str, Any] = {"base_tokenizer": "ngram", "stem": False, "remove_stop_words": False} if zh else {}
    t.create_fts_index("content", use_tantivy=False, with_position=False, **options)
    run = {}
    for qid, text in coll.judged_queries.items():
        try:
            hits = t.search(text, query_type="fts").limit(K).to_list()
        except Exception:  # a query LanceDB refuses counts as no results
            continue
        run[qid] = {h["doc_id"]: float(h["_score"]) for h in hits}
    return run


def bm25s_run(coll: Collection, rows: list[dict[str, str]], zh: bool) -> dict:
    import bm25s
    import Stemmer

    prepare = Analyzer(language="zh").prepare if zh else (lambda s: s)
    stemmer = None if zh else Stemmer.Stemmer("english")
    stop = None if zh else "en"
    corpus = bm25s.tokenize([prepare(r["content"]) for r in rows], stopwords=stop, stemmer=stemmer, show_progress=False)
    model = bm25s.BM25()
    model.index(corpus, show_progress=False)
    queries = list(coll.judged_queries.items())
    tokens = bm25s.tokenize([prepare(t) for _, t in queries], stopwords=stop, stemmer=stemmer, show_progress=False)
    found, scores = model.retrieve(tokens, k=min(K, len(rows)), show_progress=False)
    return {
        qid: {rows[int(i)]["doc_id"]: float(s) for i, s in zip(f, sc) if s > 0}
        for (qid, _), f, sc in zip(queries, found, scores)
    }


def analysis_ms(coll: Collection, analyzer: Analyzer, rounds: int = 20) -> float:
    """p50 milliseconds to turn a query into terms."""
    texts = list(coll.judged_queries.values())
    for t in texts[:20]:
        analyzer.terms(t)
    times = []
    for _ in range(rounds):
        for t in texts:
            start = time.perf_counter()
            analyzer.terms(t)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="BEIR collections (default $HYBRID_DATA)")
    parser.add_argument("--collections", default=COLLECTIONS)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for name in args.collections.split(","):
        coll = load_beir(args.data / name)
        rows = coll.documents()
        zh = name.endswith("zh")
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            hrun, index_info = hybrid_run(coll, rows, work)
            res = {
                "hybrid": ndcg(coll, hrun),
                "hybrid (first chain)": ndcg(coll, first_chain_run(coll, rows, zh)),
                "lancedb": ndcg(coll, lance_run(coll, rows, work, zh)),
                "bm25s": ndcg(coll, bm25s_run(coll, rows, zh)),
            }
            brun, binfo = hybrid_run(coll, rows, work, **ALTERNATIVE)
            res[f"hybrid {ALTERNATIVE_NAME}"] = ndcg(coll, brun)
            res["query p50 ms (default)"] = index_info["query_p50_ms"]
            res[f"query p50 ms ({ALTERNATIVE_NAME})"] = binfo["query_p50_ms"]
            for weight in PROXIMITY:
                res[f"hybrid proximity {weight:g}"] = ndcg(coll, hybrid_run(coll, rows, work, proximity=weight)[0])
            if any(r["title"] for r in rows):  # multi-field scoring: title and text as two columns
                two = ("title", "text")
                res["title+text bm25f"] = ndcg(coll, hybrid_run(coll, rows, work, two)[0])
                res["title+text bm25f title x2"] = ndcg(
                    coll, hybrid_run(coll, rows, work, two, weights={"title": 2})[0]
                )
                res["title+text fields (summed)"] = ndcg(coll, hybrid_run(coll, rows, work, two, scoring="fields")[0])
        new = Analyzer.from_dict(index_info["analyzer"])
        old = Analyzer.from_dict({"language": "zh" if zh else "en", "ascii_folding": True})
        res["analysis p50 ms (new)"] = analysis_ms(coll, new)
        res["analysis p50 ms (first chain)"] = analysis_ms(coll, old)
        results[coll.name] = {"ndcg@10": res, "index": index_info, "docs": len(rows), "queries": len(coll.qrels)}
        print(coll.name, json.dumps({k: round(v, 4) for k, v in res.items()}), flush=True)
    meta = {
        "command": "python eval/bm25_peers.py "
        + (f"--collections {args.collections}" if args.collections != COLLECTIONS else ""),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.platform()}, Python {platform.python_version()}",
        "versions": {p: version(p) for p in ("tantivy", "lancedb", "bm25s", "py3langid")},
        "commit": subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bm25_peers.json").write_text(json.dumps({"meta": meta, "collections": results}, indent=2) + "\n")
    lines = [
        "# BM25 beside its peers (nDCG@10, same corpus text)",
        "",
        f"Generated by `{meta['command'].strip()}` on {meta['date']} ({meta['machine']}; commit `{meta['commit']}`).",
        f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}. See the script's docstring for each",
        "system's settings. Target: hybrid >= LanceDB native FTS and >= bm25s on every collection.",
        "",
        "| collection | hybrid | first chain | LanceDB FTS | bm25s | - LanceDB | - bm25s | analyzer "
        "| query analysis p50 (new / first) |",
        "|---|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    for name, r in results.items():
        n = r["ndcg@10"]
        a = r["index"]["analyzer"]
        lines.append(
            f"| {name} | {n['hybrid']:.4f} | {n['hybrid (first chain)']:.4f} | {n['lancedb']:.4f} | {n['bm25s']:.4f} "
            f"| {n['hybrid'] - n['lancedb']:+.4f} | {n['hybrid'] - n['bm25s']:+.4f} | {a['language']} (detected) "
            f"| {n['analysis p50 ms (new)']:.4f} / {n['analysis p50 ms (first chain)']:.4f} ms |"
        )
    lines += [
        "",
        f"BM25 with {ALTERNATIVE_NAME} (`create_fts_index(..., k1=1.2, b=0.9)`: tantivy's top 100 rescored",
        "exactly) beside tantivy's own k1=1.2 b=0.75; a whole text query's p50 through `table.search`:",
        "",
        f"| collection | default | {ALTERNATIVE_NAME} | p50 default | p50 {ALTERNATIVE_NAME} |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, r in results.items():
        n = r["ndcg@10"]
        lines.append(
            f"| {name} | {n['hybrid']:.4f} | {n[f'hybrid {ALTERNATIVE_NAME}']:.4f} "
            f"| {n['query p50 ms (default)']:.2f} ms | {n[f'query p50 ms ({ALTERNATIVE_NAME})']:.2f} ms |"
        )
    lines += [
        "",
        f"Proximity boost (`Match(text, proximity=w)`: neighbouring query terms within {PROXIMITY_SLOP} positions),",
        "off by default because it does not help everywhere:",
        "",
        "| collection | off | " + " | ".join(f"w = {w:g}" for w in PROXIMITY) + " |",
        "|---|--:|" + "--:|" * len(PROXIMITY),
    ]
    for name, r in results.items():
        n = r["ndcg@10"]
        lines.append(
            f"| {name} | {n['hybrid']:.4f} | "
            + " | ".join(f"{n[f'hybrid proximity {w:g}']:.4f}" for w in PROXIMITY)
            + " |"
        )
    multi = {n: r["ndcg@10"] for n, r in results.items() if "title+text bm25f" in r["ndcg@10"]}
    if multi:
        lines += [
            "",
            "Multi-field scoring, title and text indexed as two columns (collections with titles):",
            "",
            "| collection | BM25F (weights 1) | BM25F (title x2) | per-field sum |",
            "|---|--:|--:|--:|",
        ]
        for n, r in multi.items():
            lines.append(
                f"| {n} | {r['title+text bm25f']:.4f} | {r['title+text bm25f title x2']:.4f} "
                f"| {r['title+text fields (summed)']:.4f} |"
            )
    (RESULTS / "bm25_peers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
