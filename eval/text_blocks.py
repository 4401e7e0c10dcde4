#!/usr/bin/env python
"""Long text in compressed blocks (hybrid.storage.blocks) against plain Arrow strings: bytes and read cost.

The table of ``eval/bench_search.py`` (same generator and seed: ~1.5 KB Zipf `text`, 384-d float32
`vector`, int32 `category`) is written twice through hybrid, with text in blocks (the default) and
plain (``blocks.MIN_MEAN_BYTES`` set past every column: what every version before blocks wrote).
For each it reports the bytes of each column in the data file, the write (``create_table``), a
scan of the text (``to_arrow(columns=["text"])``), and ``take`` of 10 random rows by row id
(``id`` and ``text``, and ``id`` alone), both tables read through ``hybrid.connect`` as a user
would. Takes alternate between the two tables call by call (A/B in one run, the same rows for
both), medians over ``--repeats`` calls, wall and CPU (``time.process_time``) times; with
``--block-bytes`` it repeats the blocks table at other block sizes. Results go to
``eval/results/<name>.{md,json}``. With ``--search-queries N`` it also builds the full-text and vector
indexes on the plain table and the first blocks one and times hybrid queries on both (A/B)::

    nice -n 10 python eval/text_blocks.py [--docs N] [--repeats N] [--block-bytes 4096 8192 16384] [--search-queries N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `bench` package next to this script
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # `hybrid` from this checkout

from bench.frame import git_info, grid, machine_info, md_intro, md_load, write_results  # noqa: E402
from bench.search_data import Corpus  # noqa: E402
from table_compression import corpus_table  # noqa: E402

import hybrid  # noqa: E402
from hybrid.storage import blocks  # noqa: E402


def column_bytes(table: hybrid.Table) -> dict[str, int]:
    """Bytes of each column's buffers in the table's data files (what it adds to the files)."""
    out: dict[str, int] = {}
    for path in sorted((table.path / "data").glob("*.arrow")):
        stored = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        for name, column in zip(stored.column_names, stored.columns):
            out[name] = out.get(name, 0) + sum(b.size for c in column.chunks for b in c.buffers() if b is not None)
    return out


def build(root: Path, name: str, data: pa.Table, min_mean: int, block_bytes: int) -> tuple[hybrid.Table, float]:
    old = blocks.MIN_MEAN_BYTES, blocks.BLOCK_BYTES
    blocks.MIN_MEAN_BYTES, blocks.BLOCK_BYTES = min_mean, block_bytes
    try:
        t0 = time.perf_counter()
        hybrid.connect(root).create_table(name, data)
        write_s = time.perf_counter() - t0
    finally:
        blocks.MIN_MEAN_BYTES, blocks.BLOCK_BYTES = old
    return hybrid.connect(root).open_table(name), write_s


def timed(fn: Any, *args: Any) -> tuple[float, float]:
    """(wall ms, CPU ms) of ``fn(*args)``."""
    w, c = time.perf_counter(), time.process_time()
    fn(*args)
    return (time.perf_counter() - w) * 1e3, (time.process_time() - c) * 1e3


def measure(tables: dict[str, hybrid.Table], repeats: int, seed: int) -> dict[str, dict[str, float]]:
    """Medians (ms) of every read on every table, calls alternating between tables."""
    n = next(iter(tables.values())).count_rows()
    rng = np.random.default_rng(seed)
    picks = [rng.choice(n, 10, replace=False).astype(np.uint64) for _ in range(repeats)]
    reads = {
        "take10_text": lambda t, p: t.take(p, ["id", "text"]),
        "take10_id": lambda t, p: t.take(p, ["id"]),
    }
    times: dict[str, dict[str, list[tuple[float, float]]]] = {k: {r: [] for r in reads} for k in tables}
    for t in tables.values():  # first touch (maps, block starts) untimed
        for read in reads.values():
            read(t, picks[0])
    for p in picks:
        for key, t in tables.items():
            for r, read in reads.items():
                times[key][r].append(timed(read, t, p))
    scans: dict[str, list[tuple[float, float]]] = {k: [] for k in tables}
    for _ in range(max(3, repeats // 100)):
        for key, t in tables.items():
            scans[key].append(timed(t.to_arrow, ["text"]))
    out: dict[str, dict[str, float]] = {}
    for key in tables:
        row: dict[str, float] = {}
        for r in reads:
            row[f"{r}_ms"] = float(np.median([w for w, _ in times[key][r]]))
            row[f"{r}_cpu_ms"] = float(np.median([c for _, c in times[key][r]]))
        row["scan_text_ms"] = float(np.median([w for w, _ in scans[key]]))
        row["scan_text_cpu_ms"] = float(np.median([c for _, c in scans[key]]))
        out[key] = row
    return out


def search_ab(tables: dict[str, hybrid.Table], data: pa.Table, nq: int, seed: int) -> dict[str, dict[str, float]]:
    """p50 (ms) of hybrid queries returning ``id`` + ``text`` and ``id`` alone on each table (FTS and HNSW indexes
    built first), calls alternating between the tables."""
    ns = argparse.Namespace(
        docs=data.num_rows, seed=seed, text_bytes=1500, vocab=30_000, zipf=1.0, clusters=100, latent_dim=32,
        cluster_spread=1.0, iso_noise=0.2, query_noise=0.5,
    )  # fmt: skip
    corpus = Corpus(ns)
    table = corpus.generate()
    texts, vectors, _ = corpus.queries(table, nq)
    for t in tables.values():
        t.create_fts_index("text")
        t.create_vector_index("vector")
    kinds = {"hybrid_id_text": ["id", "text"], "hybrid_id": ["id"]}
    times: dict[str, dict[str, list[float]]] = {k: {q: [] for q in kinds} for k in tables}

    def run(t: hybrid.Table, i: int, columns: list[str]) -> None:
        t.search(texts[i]).vector(vectors[i]).limit(10).select(columns).to_arrow()

    for t in tables.values():
        for i in range(min(10, nq)):
            run(t, i, ["id", "text"])
    for i in range(nq):
        for key, t in tables.items():
            for q, columns in kinds.items():
                times[key][q].append(timed(run, t, i, columns)[0])
    return {k: {f"{q}_p50_ms": float(np.median(v)) for q, v in qs.items()} for k, qs in times.items()}


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    L = md_intro("Long text in compressed blocks against plain Arrow strings", "eval/text_blocks.py", meta)
    L.append(
        f"Data: the `eval/bench_search.py` table ({meta['args']['docs']:,} rows: int64 `id`, ~1.5 KB Zipf `text`, "
        "384-d float32 `vector`, int32 `category`; seed 42), written through `hybrid.connect(...).create_table`. "
        "`plain`: text as Arrow strings (what hybrid wrote before blocks); `blocks N`: text in zstd blocks of "
        "~N uncompressed bytes (hybrid.storage.blocks; 8,192 is the default). Column MB: the bytes of each "
        "column's buffers in the data file (the blocks' compressed bytes included).\n"
    )
    base = rows[0]
    head = ["layout", "file MB", "text MB", "vector MB", "id+category MB", "write s", "take 10 id+text ms",
            "x plain", "take 10 id+text CPU ms", "take 10 id ms", "scan text ms", "scan text CPU ms"]  # fmt: skip
    body = []
    for r in rows:
        c = r["columns_mb"]
        body.append(
            [
                r["layout"], f"{r['file_mb']:,.1f}", f"{c['text']:,.1f}", f"{c['vector']:,.1f}",
                f"{c['id'] + c['category']:,.1f}", f"{r['write_s']:.2f}", f"{r['take10_text_ms']:.3f}",
                f"{r['take10_text_ms'] / base['take10_text_ms']:.2f}", f"{r['take10_text_cpu_ms']:.3f}",
                f"{r['take10_id_ms']:.3f}", f"{r['scan_text_ms']:,.1f}",
                f"{r['scan_text_cpu_ms']:,.1f}",
            ]
        )  # fmt: skip
    L.append(grid([head, *body], labels=1) + "\n")
    L.append(
        f"take 10: `table.take(rowids, columns)` of 10 random live rows, {meta['args']['repeats']} calls per table "
        "alternating between the tables (the same rows for each), after one untimed call; wall-clock medians, "
        "and the process CPU time (`time.process_time`). scan text: `table.to_arrow(columns=['text'])` (the blocks "
        "all decompressed; on a loaded machine its wall time is mostly waiting for a core: see its CPU time). x plain: "
        "the ratio to the plain table in the same run.\n"
    )
    searched = [r for r in rows if "hybrid_id_text_p50_ms" in r]
    if searched:
        head = ["layout", "hybrid p50 ms, id + text", "x plain", "hybrid p50 ms, id", "x plain"]
        body = [
            [
                r["layout"], f"{r['hybrid_id_text_p50_ms']:.2f}",
                f"{r['hybrid_id_text_p50_ms'] / searched[0]['hybrid_id_text_p50_ms']:.2f}",
                f"{r['hybrid_id_p50_ms']:.2f}", f"{r['hybrid_id_p50_ms'] / searched[0]['hybrid_id_p50_ms']:.2f}",
            ]
            for r in searched
        ]  # fmt: skip
        L.append(grid([head, *body], labels=1) + "\n")
        L.append(
            f"hybrid: `t.search(words).vector(v).limit(10).select(columns)` (BM25 + HNSW, RRF; the search benchmark's "
            f"queries), {meta['args']['search_queries']} queries, each run on every table in turn, after 10 untimed "
            "ones; wall-clock p50.\n"
        )
    L.append(f"The machine is shared with other jobs. {md_load(meta)}.\n")
    return "\n".join(L)


def rerender(path: Path) -> None:
    """Write the Markdown of a results JSON again (after a change to :func:`render`)."""
    data = json.loads(path.read_text())
    write_results(path.parent, path.stem, data, render(data["results"], data["meta"]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeats", type=int, default=500)
    ap.add_argument("--block-bytes", type=int, nargs="+", default=[blocks.BLOCK_BYTES])
    ap.add_argument("--search-queries", type=int, default=0, help="hybrid queries per table (0: none)")
    ap.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default="text_blocks")
    args = ap.parse_args(argv)
    meta: dict[str, Any] = {
        "command": "python eval/text_blocks.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_at_start": os.getloadavg(),
        "args": vars(args),
        "machine": machine_info(("pyarrow", "numpy", "zstandard")),
        "git": git_info(),
    }
    data = corpus_table(args.docs, args.seed)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="text_blocks_") as tmp:
        tables: dict[str, hybrid.Table] = {}
        layouts = [("plain", 1 << 62, blocks.BLOCK_BYTES)] + [(f"blocks {b:,}", 0, b) for b in args.block_bytes]
        for i, (layout, min_mean, block_bytes) in enumerate(layouts):
            table, write_s = build(Path(tmp), f"t{i}", data, min_mean, block_bytes)
            tables[layout] = table
            files = sorted((table.path / "data").glob("*.arrow"))
            cols = column_bytes(table)
            rows.append(
                {
                    "layout": layout,
                    "block_bytes": None if layout == "plain" else block_bytes,
                    "file_mb": sum(p.stat().st_size for p in files) / 1e6,
                    "columns_mb": {k: v / 1e6 for k, v in cols.items()},
                    "write_s": write_s,
                }
            )
            print(rows[-1], flush=True)
        costs = measure(tables, args.repeats, args.seed)
        for r in rows:
            r.update(costs[r["layout"]])
        if args.search_queries:
            first_two = dict(list(tables.items())[:2])
            for layout, found in search_ab(first_two, data, args.search_queries, args.seed).items():
                next(r for r in rows if r["layout"] == layout).update(found)
    meta["loadavg_at_end"] = os.getloadavg()
    md = render(rows, meta)
    write_results(Path(args.results_dir), args.name, {"meta": meta, "results": rows}, md, default=str)
    print(md)


if __name__ == "__main__":
    main()
