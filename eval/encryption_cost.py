#!/usr/bin/env python
"""Encryption at rest: what it costs against an unencrypted table, in the same run.

Two databases, one opened with an AES-256-GCM key and one without, get the same
`--rows`-row table (text and a `--dim` float32 vector; full-text and HNSW indexes), then:

- appends: `--appends` commits of 100 rows each, rows per second;
- search p50 over `--queries` full-text, vector and hybrid queries (warm: indexes loaded);
- take() p50 of 10 random row ids (warm: the data file decrypted once and cached);
- cold: the first hybrid search and the first take() after reopening the database in
  a fresh state (the encrypted side decrypts the index folders into its private copy and
  the data file into memory here).

Sides alternate per round (`--rounds`) and the medians are reported with their ratios
(encrypted / plain; target: search p50 <= 1.3x). ``eval/results/encryption.md`` / ``.json``::

    nice -n 10 python eval/encryption_cost.py [--rows 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import hybrid

WORDS = [f"w{i}" for i in range(3000)]


def table_of(rng: np.random.Generator, start: int, n: int, dim: int) -> pa.Table:
    words = rng.choice(WORDS, size=(n, 15))
    vec = pa.FixedSizeListArray.from_arrays(pa.array(rng.standard_normal(n * dim).astype(np.float32)), dim)
    return pa.table({"id": np.arange(start, start + n), "text": [" ".join(w) for w in words.tolist()], "vec": vec})


def forget(folder: Path) -> None:
    """Drop every in-process cache of the database (as a fresh process starts)."""
    from hybrid.index import sealed
    from hybrid.index.cache import SearchCache
    from hybrid.storage import pages
    from hybrid.storage.files import FileCache

    for t in folder.iterdir():
        FileCache.purge_root(t)
        sealed.purge(t)
    SearchCache.purge_all()
    pages.clear_cache()


def p50(fn: Any, n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def one_side(folder: Path, key: bytes | None, args: argparse.Namespace) -> dict[str, float]:
    rng = np.random.default_rng(0)
    db = hybrid.connect(folder, encryption_key=key, upkeep=None)
    t = db.create_table("docs", table_of(rng, 0, args.rows, args.dim))
    t.create_fts_index("text")
    t.create_vector_index("vec")
    batches = [table_of(rng, args.rows + i * 100, 100, args.dim) for i in range(args.appends)]
    t0 = time.perf_counter()
    for b in batches:
        t.add(b)
    append_rps = args.appends * 100 / (time.perf_counter() - t0)
    qrng = np.random.default_rng(1)
    texts = [" ".join(qrng.choice(WORDS, 4)) for _ in range(args.queries)]
    vecs = qrng.standard_normal((args.queries, args.dim)).astype(np.float32)
    ids = qrng.integers(0, args.rows, (args.queries, 10))
    forget(folder)
    t = hybrid.connect(folder, encryption_key=key, upkeep=None).open_table("docs")
    t0 = time.perf_counter()
    t.search(texts[0], query_type="fts").limit(10).to_list()
    t.search(vecs[0], query_type="vector").limit(10).to_list()
    cold_search = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    t.take(ids[0])
    cold_take = (time.perf_counter() - t0) * 1000
    return {
        "append_rows_per_s": append_rps,
        "fts_p50_ms": p50(lambda i: t.search(texts[i], query_type="fts").limit(10).to_list(), args.queries),
        "vector_p50_ms": p50(lambda i: t.search(vecs[i], query_type="vector").limit(10).to_list(), args.queries),
        "hybrid_p50_ms": p50(
            lambda i: t.search(texts[i], query_type="hybrid").vector(vecs[i]).limit(10).to_list(), args.queries
        ),
        "take_p50_ms": p50(lambda i: t.take(ids[i]), args.queries),
        "cold_first_search_ms": cold_search,
        "cold_first_take_ms": cold_take,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--appends", type=int, default=50)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "encryption")
    args = ap.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"plain": [], "encrypted": []}
    key = os.urandom(32)
    for r in range(args.rounds):
        for side in ("plain", "encrypted") if r % 2 == 0 else ("encrypted", "plain"):
            with tempfile.TemporaryDirectory() as tmp:
                runs[side].append(one_side(Path(tmp), key if side == "encrypted" else None, args))
                print(side, r, {k: round(v, 2) for k, v in runs[side][-1].items()}, flush=True)
    med = {side: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for side, rs in runs.items()}
    ratios = {k: med["encrypted"][k] / med["plain"][k] for k in med["plain"]}
    res = {
        "rows": args.rows,
        "dim": args.dim,
        "rounds": args.rounds,
        "median": med,
        "ratio_encrypted_to_plain": ratios,
        "runs": runs,
        "machine": f"{os.cpu_count()} cores, {platform.platform()}, shared with other jobs",
    }
    print(json.dumps({"median": med, "ratios": ratios}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    names = {
        "append_rows_per_s": "append throughput (rows/s, 100-row commits)",
        "fts_p50_ms": "full-text search p50 (ms)",
        "vector_p50_ms": "vector search p50 (ms)",
        "hybrid_p50_ms": "hybrid search p50 (ms)",
        "take_p50_ms": "take(10 rows) p50 (ms)",
        "cold_first_search_ms": "cold: first full-text + vector search after open (ms)",
        "cold_first_take_ms": "cold: first take after open (ms)",
    }
    md = [
        "# Encryption at rest: cost",
        "",
        f"`nice -n 10 python eval/encryption_cost.py --rows {args.rows} --dim {args.dim} --rounds {args.rounds}`; "
        f"{res['machine']}: timings are noisy, so both sides run in the same process, alternating, and the "
        "medians of the rounds are compared.",
        "",
        "| measure | plain | encrypted | encrypted / plain |",
        "|---|--:|--:|--:|",
        *[f"| {names[k]} | {med['plain'][k]:,.2f} | {med['encrypted'][k]:,.2f} | {ratios[k]:.2f}x |" for k in names],
        "",
        "Target: search p50 <= 1.3x. Warm searches read decrypted index copies and decrypted, cached data "
        "files, so they cost about what plain ones do; the cost moves to the first search and take after "
        "open (decrypting index folders and data files) and to writes (encrypting each file whole).",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
