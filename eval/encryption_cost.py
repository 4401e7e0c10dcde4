#!/usr/bin/env python
"""Encryption at rest: what it costs against an unencrypted table, in the same run.

Two databases, one opened with an AES-256-GCM key and one without, get the same
`--rows`-row table (text and a `--dim` float32 vector; full-text and HNSW indexes), then:

- appends: `--appends` commits of 100 rows each, rows per second (the tables taking turns);
- search p50 over `--queries` full-text, vector and hybrid queries (warm: indexes loaded),
  and take() p50 of 10 random row ids (warm: the data file decrypted once and cached),
  the two tables taking turns query by query so that the machine's load hits both alike;
- cold: the first hybrid search and the first take() after reopening the database in
  a fresh state (the encrypted side decrypts the index folders into its private copy and
  the data file into memory here).

Each round (`--rounds`) builds both tables anew (in alternating order); the medians are reported with their ratios
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


def build(folder: Path, key: bytes | None, args: argparse.Namespace) -> hybrid.Table:
    """Create the table and its indexes."""
    rng = np.random.default_rng(0)
    db = hybrid.connect(folder, encryption_key=key, upkeep=None)
    t = db.create_table("docs", table_of(rng, 0, args.rows, args.dim))
    t.create_fts_index("text")
    t.create_vector_index("vec")
    return t


def appends(tables: dict[str, hybrid.Table], args: argparse.Namespace) -> dict[str, float]:
    """Rows per second of 100-row commits, the tables taking turns commit by commit."""
    rng = np.random.default_rng(2)
    batches = [table_of(rng, args.rows + i * 100, 100, args.dim) for i in range(args.appends)]
    spent = dict.fromkeys(tables, 0.0)
    sides = list(tables)
    for i, batch in enumerate(batches):
        for side in sides if i % 2 == 0 else sides[::-1]:
            t0 = time.perf_counter()
            tables[side].add(batch)
            spent[side] += time.perf_counter() - t0
    return {side: args.appends * 100 / s for side, s in spent.items()}


def interleaved(tables: dict[str, hybrid.Table], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per side, p50 of each operation; the sides take turns query by query (the machine's load hits both)."""
    qrng = np.random.default_rng(1)
    texts = [" ".join(qrng.choice(WORDS, 4)) for _ in range(args.queries)]
    vecs = qrng.standard_normal((args.queries, args.dim)).astype(np.float32)
    ids = qrng.integers(0, args.rows, (args.queries, 10))
    ops = {
        "fts_p50_ms": lambda t, i: t.search(texts[i], query_type="fts").limit(10).to_list(),
        "vector_p50_ms": lambda t, i: t.search(vecs[i], query_type="vector").limit(10).to_list(),
        "hybrid_p50_ms": lambda t, i: t.search(texts[i], query_type="hybrid").vector(vecs[i]).limit(10).to_list(),
        "take_p50_ms": lambda t, i: t.take(ids[i]),
    }
    times: dict[str, dict[str, list[float]]] = {side: {op: [] for op in ops} for side in tables}
    sides = list(tables)
    for i in range(args.queries):
        for op, fn in ops.items():
            for side in sides if i % 2 == 0 else sides[::-1]:
                t0 = time.perf_counter()
                fn(tables[side], i)
                times[side][op].append(time.perf_counter() - t0)
    return {side: {op: statistics.median(x) * 1000 for op, x in per.items()} for side, per in times.items()}


def cold(folder: Path, key: bytes | None, args: argparse.Namespace) -> tuple[hybrid.Table, dict[str, float]]:
    """Reopen as a fresh process would (no cache): the first search, then the first take."""
    forget(folder)
    t = hybrid.connect(folder, encryption_key=key, upkeep=None).open_table("docs")
    t0 = time.perf_counter()
    t.search("w1 w2", query_type="fts").limit(10).to_list()
    t.search(np.ones(args.dim, np.float32), query_type="vector").limit(10).to_list()
    first_search = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    t.take(np.arange(10))
    return t, {"cold_first_search_ms": first_search, "cold_first_take_ms": (time.perf_counter() - t0) * 1000}


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
        with tempfile.TemporaryDirectory() as plain_dir, tempfile.TemporaryDirectory() as enc_dir:
            folders = {"plain": (Path(plain_dir), None), "encrypted": (Path(enc_dir), key)}
            order = ("plain", "encrypted") if r % 2 == 0 else ("encrypted", "plain")
            built = {side: build(*folders[side], args) for side in order}
            added = appends({side: built[side] for side in ("plain", "encrypted")}, args)
            opened = {side: cold(*folders[side], args) for side in order}
            warm = interleaved({side: opened[side][0] for side in ("plain", "encrypted")}, args)
            for side in runs:
                runs[side].append({"append_rows_per_s": added[side], **warm[side], **opened[side][1]})
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
        f"{res['machine']}: timings are noisy, so both tables live in one process and take turns query by "
        "query; the medians of the rounds are compared.",
        "",
        "| measure | plain | encrypted | encrypted / plain |",
        "|---|--:|--:|--:|",
        *[f"| {names[k]} | {med['plain'][k]:,.2f} | {med['encrypted'][k]:,.2f} | {ratios[k]:.2f}x |" for k in names],
        "",
        "Per round (encrypted / plain), to show the spread:",
        "",
        "| round | " + " | ".join(names[k].split(" (")[0] for k in names) + " |",
        "|---|" + "--:|" * len(names),
        *[
            f"| {r} | " + " | ".join(f"{runs['encrypted'][r][k] / runs['plain'][r][k]:.2f}x" for k in names) + " |"
            for r in range(args.rounds)
        ],
        "",
        "Target: search p50 <= 1.3x. Warm searches read decrypted index copies and decrypted, cached data "
        "files, so they cost about what plain ones do; the cost moves to the first search and take after "
        "open (decrypting index folders and data files) and to writes (encrypting each file whole).",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
