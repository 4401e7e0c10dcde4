#!/usr/bin/env python
"""Where a vector index's bytes go: the vectors it copies, its graph, its labels and row ids.

On the search benchmark's vectors (``eval/bench/search_data.py``: 384-d float32, 100 clusters; same
generator and seed) it builds hybrid's ``create_vector_index(kind=...)`` for each ``--kinds`` and
splits each index folder into parts by the layout of its files: hnswlib's ``hnsw.bin`` holds for
every row its float32 vector, an 8-byte label and its level-0 links (``4 + 2M x 4`` bytes), then
the links of the upper levels; usearch's ``usearch.i8`` the int8 vectors (``dim`` bytes a row) and
the graph (every other byte); ``rowids.npy`` maps index labels to row ids; anything else is listed
by name. Bytes per row are what scales with the table (the search benchmark runs 100,000 rows)::

    nice -n 10 python eval/vector_footprint.py [--docs N] [--kinds hnsw hnsw_int8]

Writes ``eval/results/<name>.{md,json}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `bench` package next to this script
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # `hybrid` from this checkout

from bench.frame import git_info, grid, machine_info, md_intro, md_load, write_results  # noqa: E402
from table_compression import corpus_table  # noqa: E402

import hybrid  # noqa: E402
from hybrid.index.catalog import entries  # noqa: E402

FIXED = {"affine.npy"}
"""Parts whose size does not grow with the rows (the int8 quantizer's per-dimension scales)."""


def parts_of(folder: Path, rows: int, dim: int, m: int) -> dict[str, int]:
    """The bytes of an index folder by part (see the module docstring)."""
    out: dict[str, int] = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = f.stat().st_size
        if f.name == "hnsw.bin":
            vectors, labels, level0 = rows * dim * 4, rows * 8, rows * (4 + 2 * m * 4)
            out["vectors (float32)"] = vectors
            out["labels"] = labels
            out["graph, level 0"] = level0
            out["graph, upper levels + header"] = size - vectors - labels - level0
        elif f.name.startswith("usearch"):
            vectors = rows * dim
            out["vectors (int8)"] = vectors
            out["graph (all levels, slots, header)"] = size - vectors
        else:
            out[f.name] = out.get(f.name, 0) + size
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--kinds", nargs="+", default=["hnsw", "hnsw_int8"])
    ap.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default="vector_footprint")
    args = ap.parse_args(argv)
    meta: dict[str, Any] = {
        "command": "python eval/vector_footprint.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_at_start": os.getloadavg(),
        "args": vars(args),
        "machine": machine_info(("hnswlib", "usearch", "pyarrow")),
        "git": git_info(),
    }
    data = corpus_table(args.docs, args.seed).select(["id", "vector"])
    dim = data.schema.field("vector").type.list_size
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vector_footprint_") as tmp:
        for kind in args.kinds:
            t = hybrid.connect(Path(tmp) / kind).create_table("t", data)
            start = time.perf_counter()
            t.create_vector_index("vector", kind=kind)
            seconds = time.perf_counter() - start
            (entry,) = [e for e in entries(t.snapshot()) if e.kind == "vector"]
            (stats,) = [s for s in t.index_stats() if s["kind"] == "vector"]
            parts = parts_of(t.path / entry.path, args.docs, dim, int(stats.get("m", 16)))
            runs.append({"kind": kind, "build_s": seconds, "m": stats.get("m"), "parts": parts})
            print(runs[-1], flush=True)
    meta["loadavg_at_end"] = os.getloadavg()
    md = render(runs, meta, args.docs, dim, data.column("vector").nbytes)
    write_results(Path(args.results_dir), args.name, {"meta": meta, "runs": runs}, md)
    print(md)


def render(runs: list[dict[str, Any]], meta: dict[str, Any], docs: int, dim: int, table_bytes: int) -> str:
    L = md_intro("Where a vector index's bytes go", "eval/vector_footprint.py", meta)
    L.append(
        f"Data: {docs:,} vectors of the search benchmark ({dim}-d float32, {table_bytes / 1e6:,.1f} MB in the table "
        "itself). Parts by the layout of each library's file (see the script). Bytes per row scale with the table: "
        "the last column is what 100,000 rows hold.\n"
    )
    rows = [["index", "part", "MB", "bytes / row", "MB at 100,000 rows"]]
    for r in runs:
        total = sum(r["parts"].values())
        fixed = sum(v for k, v in r["parts"].items() if k in FIXED)
        for name, size in [*r["parts"].items(), ("total", total)]:
            if name in FIXED:
                at = float(size)
            else:
                at = (size - fixed if name == "total" else size) / docs * 1e5 + (fixed if name == "total" else 0)
            per_row = "(fixed)" if name in FIXED else f"{size / docs:,.1f}"
            rows.append([r["kind"], name, f"{size / 1e6:,.2f}", per_row, f"{at / 1e6:,.1f}"])
    L.append(grid(rows) + "\n")
    L.append(f"{md_load(meta)}.\n")
    return "\n".join(L)


if __name__ == "__main__":
    main()
