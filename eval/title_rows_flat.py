"""What leaving title rows out of a flat search costs: p50 CPU time per query, marked against unmarked.

Two tables hold the same chunks (one row in four a document's title, as ``hybrid ingest --titles
once`` writes them; random 64-d vectors in an HNSW index, words in a BM25 index). One declares the
title row column (``set_chunking(title_row="is_title")``), so its flat searches search the passages
only (:mod:`hybrid.query.passages`); the other does not. The same queries run on both,
interleaved, after a warm-up; the time is the process's CPU time per query (``time.process_time``,
fairer than wall time on a loaded machine), and the script checks that the marked table returned
no title row. Writes ``eval/results/<name>.md`` and ``.json``.

    python eval/title_rows_flat.py --rows 40000 --queries 200 --name title_rows_flat_g20g
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import hybrid

DIM = 64
WORDS = [f"w{i}" for i in range(2_000)]


def chunks(rows: int, rng: np.random.Generator) -> pa.Table:
    """`rows` chunks in documents of four: a title row, then three passages."""
    n = np.arange(rows)
    text = [" ".join(rng.choice(WORDS, 6 if i % 4 == 0 else 40)) for i in range(rows)]
    vectors = rng.normal(0, 1, (rows, DIM)).astype(np.float32)
    return pa.table(
        {
            "doc_id": pa.array([f"d{i // 4}" for i in range(rows)]),
            "chunk_no": pa.array(n % 4),
            "is_title": pa.array(n % 4 == 0),
            "text": pa.array(text),
            "v": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
        }
    )


def search(t: hybrid.Table, kind: str, words: str, vec: list[float]) -> list[dict[str, Any]]:
    if kind == "vector":
        return t.search(vec).limit(10).to_list()
    if kind == "fts":
        return t.search(words, query_type="fts").limit(10).to_list()
    return t.search(words, query_type="hybrid").vector(vec).limit(10).to_list()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=40_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--name", default="title_rows_flat_g20g")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    data = chunks(args.rows, rng)
    with tempfile.TemporaryDirectory() as tmp:
        db = hybrid.connect(Path(tmp) / "db", upkeep=None)
        tables = {}
        for mark in ("unmarked", "marked"):
            t = db.create_table(mark, data)
            t.create_fts_index("text")
            t.create_vector_index("v", metric="cosine")
            t.set_chunking(parent="doc_id", position="chunk_no", title_row="is_title" if mark == "marked" else None)
            tables[mark] = t
        queries = [
            (" ".join(rng.choice(WORDS, 3)), rng.normal(0, 1, DIM).astype(np.float32).tolist())
            for _ in range(args.queries)
        ]
        figures: dict[str, dict[str, float]] = {}
        for kind in ("vector", "fts", "hybrid"):
            cpu: dict[str, list[float]] = {"unmarked": [], "marked": []}
            titles = 0
            for t in tables.values():  # warm-up: caches, passage sets, loaded indexes
                for words, vec in queries[:10]:
                    search(t, kind, words, vec)
            for words, vec in queries:
                for mark, t in tables.items():  # interleaved
                    c0 = time.process_time()
                    hits = search(t, kind, words, vec)
                    cpu[mark].append(time.process_time() - c0)
                    if mark == "marked":
                        titles += sum(h["is_title"] for h in hits)
            p50 = {m: float(np.median(v)) * 1e3 for m, v in cpu.items()}
            figures[kind] = {**{f"{m}_p50_cpu_ms": p for m, p in p50.items()}, "ratio": p50["marked"] / p50["unmarked"]}
            figures[kind]["title_rows_returned"] = titles
            print(
                f"{kind}: unmarked {p50['unmarked']:.2f} ms, marked {p50['marked']:.2f} ms "
                f"(x{figures[kind]['ratio']:.2f}); title rows returned: {titles}"
            )
    load = Path("/proc/loadavg").read_text().split()[:3] if os.path.exists("/proc/loadavg") else []
    out = Path(__file__).resolve().parent / "results"
    command = f"python eval/title_rows_flat.py --rows {args.rows} --queries {args.queries} --name {args.name}"
    meta = {"command": command, "rows": args.rows, "queries": args.queries, "load_average": load}
    (out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "figures": figures}, indent=2) + "\n")
    lines = [
        "# Flat search on a table with title rows: p50 CPU time per query, marked against unmarked (g20g)",
        "",
        f"`{command}`; {args.rows} chunks (one in four a title row), 64-d vectors (HNSW, cosine), BM25;",
        f"k = 10, interleaved, process CPU time; load average {' '.join(load)}.",
        "",
        "| search | unmarked p50 ms | marked p50 ms | marked / unmarked | title rows returned (marked) |",
        "|---|---|---|---|---|",
    ]
    for kind, f in figures.items():
        lines.append(
            f"| {kind} | {f['unmarked_p50_cpu_ms']:.2f} | {f['marked_p50_cpu_ms']:.2f} | {f['ratio']:.2f}"
            f" | {int(f['title_rows_returned'])} |"
        )
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
