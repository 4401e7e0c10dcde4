"""`hybrid eval --chunk` over tables built once: the unchunked and chunked runs, asked again in minutes.

Embedding a collection's documents and its chunks is most of what ``hybrid eval --chunk`` costs
(webfaq: 6,892 documents and 20,514 chunks). This script builds the same two tables with the
same builders (:func:`hybrid.eval.runs.build_table`, :func:`hybrid.eval.chunked.build_chunk_table`)
into a work folder the first time, reuses them after, and runs the same configurations with
:func:`hybrid.eval.runs.execute`: the nDCG figures equal a ``hybrid eval`` report's of the same
code. It writes the usual report (``report.md``, ``report.json``) per collection and prints each
chunked run against the unchunked one (paired randomization test, 10,000 trials).

    python eval/chunked_cached.py <data>/webfaq <data>/nfcorpus <data>/scifact --work <folder>
    python eval/chunked_cached.py <data>/webfaq --work <folder> --runs hybrid

A table is reused when its name and row count match; ``--rebuild`` builds them again (after a
change to the chunker, the analyzer or the embedder). ``--titles`` names the chunk layouts to run
(:data:`hybrid.eval.chunked.TitleLayout`: the title before every chunk, before its embedded text
only, once per document as a title row of its own (counted in its document's mean, never
returned: :mod:`hybrid.query.title_rows`), or nowhere; each a table of its own, all against
the same unchunked runs); ``--no-title`` is ``--titles none``. Document vectors are kept in
``<work>/embeddings_<embedder>.npz`` (``eval/embed_cache.py``), so a layout embeds only the texts
no earlier one did. ``--name`` writes every figure to ``eval/results/<name>.json``.

    python eval/chunked_cached.py <data>/scifact --work <folder> --runs bm25 --titles every,dense,once
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hybrid import connect
from hybrid.embedders import create
from hybrid.eval.chunked import TITLE_ROW, build_chunk_table, chunk_rows, chunk_table_name, chunked_configs
from hybrid.eval.collection import load_beir
from hybrid.eval.metrics import paired_randomization_test
from hybrid.eval.presets import VECTOR_COLUMN, fts_indexes_for, parse_run
from hybrid.eval.report import build_report, write_report
from hybrid.eval.runs import build_table, execute

sys.path.insert(0, str(Path(__file__).resolve().parent))
import embed_cache  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("collections", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, required=True, help="folder for the tables and the reports")
    ap.add_argument("--runs", default="bm25,dense,hybrid")
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--embedder", default="onnx-minilm")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--no-title", dest="title", action="store_false", help="chunks without the title before each")
    ap.add_argument("--titles", default=None, help="chunk layouts, comma-separated: every, dense, once, none")
    ap.add_argument("--name", default=None, help="write the figures to eval/results/<name>.json")
    args = ap.parse_args()
    layouts = args.titles.split(",") if args.titles else ["every" if args.title else "none"]

    embedder = create(args.embedder)
    configs = [parse_run(r, embedder) for r in args.runs.split(",")]
    fts = fts_indexes_for(configs, "default") or {"bm25": {"tokenizer": "default"}}
    # full-text runs alone need no vectors: the tables are built without embedding (minutes, not hours)
    embedders = {VECTOR_COLUMN: embedder} if any(c.mode != "fts" for c in configs) else {}
    if embedders:
        print(f"{embed_cache.load(args.work, embedder)} document vectors from the cache", flush=True)
    figures: dict[str, dict] = {}

    def stale(db, name: str, rows: int, layout: str | None = None) -> bool:  # type: ignore[no-untyped-def]
        if args.rebuild or name not in db.table_names():
            return True
        table = db.open_table(name)
        if layout == "once" and (table.chunking is None or table.chunking.title_row != TITLE_ROW):
            return True  # made before the title row was marked
        return bool(table.count_rows() != rows or (embedders and VECTOR_COLUMN not in table.schema.names))

    for path in args.collections:
        coll = load_beir(path, "test")
        db = connect(args.work / coll.name / "db")
        started = time.perf_counter()
        if stale(db, coll.name, len(coll.corpus)):
            build_table(db, coll, embedders=embedders, fts=fts)
            if embedders:
                embed_cache.save(args.work, embedder)
        docs = db.open_table(coll.name)
        queries = coll.judged_queries
        base_results = [execute(docs, c, queries, k=args.k, progress=False) for c in configs]
        out = figures.setdefault(coll.name, {"documents": len(coll.corpus), "queries": len(queries), "layouts": {}})
        for layout in layouts:
            chunk_name = chunk_table_name(coll.name, args.chunk, titles=layout)
            n_chunks = len(chunk_rows(coll, args.chunk, titles=layout))
            if stale(db, chunk_name, n_chunks, layout):
                build_chunk_table(db, coll, args.chunk, embedders=embedders, fts=fts, titles=layout)
                if embedders:
                    embed_cache.save(args.work, embedder)
            chunks = db.open_table(chunk_name)
            built = time.perf_counter() - started
            results = base_results + [
                execute(chunks, c, queries, k=args.k, progress=False) for c in chunked_configs(configs)
            ]
            meta = {"runs": args.runs.split(","), "embedder": embedder.name, "chunk_tokens": args.chunk}
            meta["titles"] = layout
            meta["chunks"] = chunks.count_rows()
            report = build_report(coll, results, meta=meta)
            write_report(report, args.work / coll.name / f"report_{layout}")
            by_name = {e.name: e for e in report.entries}
            size = f"{len(coll.corpus)} documents, {n_chunks} chunks"
            print(f"{coll.name} [titles {layout}]: ready in {built:.0f} s; {size}")
            cells = out["layouts"].setdefault(layout, {"chunks": n_chunks, "runs": {}})["runs"]
            for c in configs:
                base = by_name[c.name]
                qs = sorted(base.per_query)
                a = [base.per_query[q]["nDCG@10"] for q in qs]
                print(f"  {c.name:24s} {base.mean['nDCG@10']:.4f}")
                out.setdefault("unchunked", {})[c.name] = round(base.mean["nDCG@10"], 4)
                for cc in chunked_configs([c]):
                    e = by_name[cc.name]
                    b = [e.per_query[q]["nDCG@10"] for q in qs]
                    p = paired_randomization_test(a, b)
                    d = e.mean["nDCG@10"] - base.mean["nDCG@10"]
                    print(f"  {cc.name:24s} {e.mean['nDCG@10']:.4f}  {d:+.4f} against unchunked (p {p:.3f})")
                    cells[cc.name] = {"nDCG@10": round(e.mean["nDCG@10"], 4), "delta": round(d, 4), "p": round(p, 4)}
    if args.name:
        results_path = Path(__file__).resolve().parent / "results" / f"{args.name}.json"
        shown = [
            f"<data>/{Path(a).name}" if Path(a).resolve() in {c.resolve() for c in args.collections} else a
            for a in sys.argv[1:]
        ]
        shown = ["<work>" if a == str(args.work) else a for a in shown]
        meta_out = {"command": "python eval/chunked_cached.py " + " ".join(shown), "chunk_tokens": args.chunk}
        meta_out["embedder"] = embedder.name
        results_path.write_text(json.dumps({"meta": meta_out, "collections": figures}, indent=1) + "\n")
        print(f"wrote {results_path.name}")


if __name__ == "__main__":
    main()
