#!/usr/bin/env python
"""What Arrow IPC body compression (lz4 / zstd) would save on the search benchmark's table, and what it costs to read.

The table of ``eval/bench_search.py`` (Zipf text of ~1.5 KB, 384-d float32 vectors, an int
category; same generator and seed) is written as one Arrow IPC file per codec, with record
batches of ``--batch-rows`` rows (65,536: what hybrid writes today; smaller batches let a reader
decompress less per row it touches). For each file it measures:

* bytes on disk, per column (each column written alone) and for the whole table;
* a full scan: open the file and read every batch (decompressing);
* ``take`` of 10 random rows of the `text` column, two ways: (a) read the whole file, then take
  (what hybrid's file cache does on first touch; with compression every batch is decompressed
  and the decompressed table held in memory), and (b) read only the batches holding the rows
  (``RecordBatchFileReader.get_batch``), decompressing those alone.

Uncompressed files are memory-mapped (zero-copy, as hybrid reads them); medians over
``--repeats`` calls. Results go to ``eval/results/table_compression.{md,json}``::

    python eval/table_compression.py [--docs N] [--batch-rows N ...] [--repeats N]
"""

from __future__ import annotations

import argparse
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

from bench.frame import grid, machine_info, md_intro, md_load, write_results  # noqa: E402
from bench.search_data import Corpus  # noqa: E402

from hybrid.storage.snapshot import take_rows  # noqa: E402

CODECS = (None, "lz4", "zstd")


def corpus_table(docs: int, seed: int) -> pa.Table:
    """The search benchmark's table with its default generator settings."""
    ns = argparse.Namespace(
        docs=docs, seed=seed, text_bytes=1500, vocab=30_000, zipf=1.0, clusters=100, latent_dim=32,
        cluster_spread=1.0, iso_noise=0.2, query_noise=0.5,
    )  # fmt: skip
    return Corpus(ns).generate().select(["id", "text", "vector", "category"])


def write(path: Path, table: pa.Table, codec: str | None, batch_rows: int) -> int:
    options = pa.ipc.IpcWriteOptions(compression=codec)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=options) as w:
        for batch in table.to_batches(max_chunksize=batch_rows):
            w.write_batch(batch)
    return path.stat().st_size


def read_all(path: Path) -> pa.Table:
    """The whole file: a zero-copy map when uncompressed, decompressed into memory otherwise."""
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def measure(table: pa.Table, folder: Path, codec: str | None, batch_rows: int, repeats: int) -> dict[str, Any]:
    name = codec or "none"
    path = folder / f"{name}-{batch_rows}.arrow"
    t0 = time.perf_counter()
    size = write(path, table, codec, batch_rows)
    write_s = time.perf_counter() - t0
    columns = {
        c: write(folder / f"{name}-{batch_rows}-{c}.arrow", table.select([c]), codec, batch_rows)
        for c in table.column_names
    }
    rng = np.random.default_rng(0)
    n = table.num_rows
    picks = [np.sort(rng.choice(n, 10, replace=False)) for _ in range(repeats)]

    def scan() -> None:
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
        for i in range(reader.num_record_batches):
            reader.get_batch(i)

    def take_whole(p: np.ndarray) -> None:
        take_rows(read_all(path).select(["text"]), p)

    def take_batches(p: np.ndarray) -> None:
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
        col = reader.schema.get_field_index("text")
        for b in np.unique(p // batch_rows).tolist():
            batch = reader.get_batch(b)
            batch.column(col).take(pa.array(p[p // batch_rows == b] - b * batch_rows))

    it = iter(picks)
    it2 = iter(picks)
    cached = read_all(path)  # what a file cache holds after the first touch
    it3 = iter(picks)
    return {
        "codec": name,
        "batch_rows": batch_rows,
        "file_mb": size / 1e6,
        "column_mb": {c: b / 1e6 for c, b in columns.items()},
        "write_s": write_s,
        "scan_ms": median_ms(scan, max(3, repeats // 10)),
        "take10_whole_file_ms": median_ms(lambda: take_whole(next(it)), max(3, repeats // 10)),
        "take10_batches_ms": median_ms(lambda: take_batches(next(it2)), repeats),
        "take10_cached_ms": median_ms(lambda: take_rows(cached.select(["text"]), next(it3)), repeats),
        "decompressed_in_memory_mb": 0.0 if codec is None else cached.nbytes / 1e6,
    }


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    L = md_intro(
        "Arrow IPC body compression of the search benchmark's table: size and read cost",
        "eval/table_compression.py",
        meta,
    )
    L.append(
        f"Data: the `eval/bench_search.py` table ({meta['args']['docs']:,} rows: `id`, ~1.5 KB Zipf `text`, 384-d "
        "float32 `vector`, int32 `category`; seed 42). One file per codec and batch size; per-column sizes from "
        "files holding that column alone.\n"
    )
    head = ["codec", "batch rows", "file MB", "text MB", "vector MB", "write s", "scan ms",
            "take 10: whole file ms", "take 10: its batches ms", "take 10: cached ms", "held in RAM MB"]  # fmt: skip
    body = [
        [
            r["codec"], f"{r['batch_rows']:,}", f"{r['file_mb']:,.1f}", f"{r['column_mb']['text']:,.1f}",
            f"{r['column_mb']['vector']:,.1f}", f"{r['write_s']:.2f}", f"{r['scan_ms']:,.1f}",
            f"{r['take10_whole_file_ms']:,.2f}", f"{r['take10_batches_ms']:,.2f}", f"{r['take10_cached_ms']:,.3f}",
            f"{r['decompressed_in_memory_mb']:,.0f}",
        ]
        for r in rows
    ]  # fmt: skip
    L.append(grid([head, *body], labels=1) + "\n")
    L.append(
        "scan: open and read every batch (decompressing). take 10, whole file: open the file, read it all (a "
        "zero-copy map when uncompressed; every batch decompressed otherwise), take 10 random `text` values "
        "(hybrid's chunk-aware `take_rows`); "
        "its batches: decompress only the batches holding the 10 rows; cached: take from a table already read "
        "(what hybrid's file cache holds after the first touch; with compression that table is the decompressed "
        "copy, held in RAM instead of the page cache: the last column). Medians.\n"
    )
    L.append(
        "Reading: the vectors (random float32) do not compress; the text compresses about as LanceDB's does. "
        "Compressed files cannot be memory-mapped zero-copy: either the whole file is decompressed into memory "
        "on first touch (the cost in the whole-file column, and the RAM in the last) or every take "
        "decompresses the batches it touches (the batches column: fast only with small batches, which compress "
        "a little worse).\n"
    )
    L.append(f"The machine is shared with other jobs. {md_load(meta)}.\n")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch-rows", type=int, nargs="+", default=[65_536, 1_024])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default="table_compression")
    args = ap.parse_args(argv)
    meta: dict[str, Any] = {
        "command": "python eval/table_compression.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_at_start": os.getloadavg(),
        "args": vars(args),
        "machine": machine_info(("pyarrow", "numpy")),
    }
    table = corpus_table(args.docs, args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="table_compression_") as tmp:
        for batch_rows in args.batch_rows:
            for codec in CODECS:
                r = measure(table, Path(tmp), codec, batch_rows, args.repeats)
                print(r, flush=True)
                rows.append(r)
    meta["loadavg_at_end"] = os.getloadavg()
    md = render(rows, meta)
    write_results(Path(args.results_dir), args.name, {"meta": meta, "results": rows}, md, default=str)
    print(md)


if __name__ == "__main__":
    main()
