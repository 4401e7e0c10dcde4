#!/usr/bin/env python
"""Append cost: do single-row appends, opens and commits stay flat as versions pile up?

One run builds a table of ``--rows`` rows (id, random-word text, a ``--dim``-d random
float32 vector) with a full-text and a vector index, then

1. appends ``--appends`` single rows through the public API (``table.add([row])``), one at a
   time, timing each; reports the median of the first and of the last ``--window`` appends
   and their ratio (target: last / first <= 1.2);
2. records the manifest's size in bytes at version ~10 and at the end (and, for a paged
   manifest, the bytes of the fragment pages it lists: what a cold open reads);
3. at ~100 and at ~1,000 versions, times ``--probes`` opens (``connect().open_table()`` and
   ``count_rows()``; once warm, i.e. caches of this process kept, and once with the storage
   layer's process-wide caches cleared when it has any) and one commit (a single-row append)
   on each freshly opened table.

Results go to ``eval/results/append_cost.json`` and ``.md`` (see ``--name``), and a table is
printed.  Run it from the repository root::

    python eval/append_cost.py [--rows N] [--appends N] [--window N] [--probes N] [--name STEM]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `bench` package next to this script

from bench.frame import (  # noqa: E402
    add_output_args,
    fmt,
    grid,
    log,
    machine_info,
    md_intro,
    md_machine,
    md_targets,
    print_outcome,
    run_and_report,
    scratch_dir,
)

import hybrid  # noqa: E402

TABLE = "docs"
VOCAB = 5_000
WORDS = (8, 40)  # words per row, min..max


def make_rows(rng: np.random.Generator, start: int, n: int, dim: int, vocab: list[str]) -> pa.Table:
    lengths = rng.integers(WORDS[0], WORDS[1] + 1, size=n)
    words = rng.integers(0, len(vocab), size=int(lengths.sum()))
    texts, pos = [], 0
    for k in lengths:
        texts.append(" ".join(vocab[w] for w in words[pos : pos + k]))
        pos += k
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + n), pa.int64()),
            "text": pa.array(texts, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim),
        }
    )


def vocabulary(rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, size=int(rng.integers(3, 10)))) for _ in range(VOCAB)]


def manifest_bytes(root: Path, version: int) -> dict[str, int]:
    """Bytes of `version`'s manifest file, and of the fragment pages it lists (0 for inline manifests)."""
    path = root / "_versions" / f"{version}.json"
    data = json.loads(path.read_text())
    pages = [p["path"] for p in data.get("pages", [])]
    return {
        "version": version,
        "manifest_bytes": path.stat().st_size,
        "pages": len(pages),
        "page_bytes": sum((root / p).stat().st_size for p in pages),
        "fragments": data.get("fragment_count", len(data.get("fragments", []))),
    }


def connect(path: Path, upkeep: bool) -> hybrid.Database:
    """The database; background upkeep (compaction, index merges) off unless asked for, where the API has it."""
    if upkeep:
        return hybrid.connect(path)
    try:
        return hybrid.connect(path, upkeep=None)  # type: ignore[call-arg,unused-ignore]
    except TypeError:  # no upkeep in this version of hybrid
        return hybrid.connect(path)


def clear_storage_caches() -> bool:
    """Drop the storage layer's process-wide caches (paged manifests keep parsed pages); False if none."""
    try:
        from hybrid.storage import pages  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return False
    pages.clear_cache()
    return True


def probe(db_path: Path, row: Any, probes: int, upkeep: bool) -> dict[str, Any]:
    """Median open time (warm and with caches cleared) and median single-row commit time on a fresh open."""
    warm, cold, commit = [], [], []
    has_cache = False
    version = connect(db_path, upkeep).open_table(TABLE).version
    for k in range(probes):
        clear = k % 2 == 1
        if clear:
            has_cache = clear_storage_caches()
        t0 = time.perf_counter()
        table = connect(db_path, upkeep).open_table(TABLE)
        table.count_rows()
        t1 = time.perf_counter()
        table.add(row(k))
        t2 = time.perf_counter()
        (cold if clear and has_cache else warm).append(t1 - t0)
        commit.append(t2 - t1)
    return {
        "version": version,
        "open_ms_p50": statistics.median(warm) * 1e3,
        "open_caches_cleared_ms_p50": statistics.median(cold) * 1e3 if cold else None,
        "commit_ms_p50": statistics.median(commit) * 1e3,
        "probes": probes,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    vocab = vocabulary(rng)
    with scratch_dir(args, "append_cost_") as root:
        db_path = root / "db"
        db = connect(db_path, args.upkeep)
        log(f"creating {args.rows:,} rows, {args.dim}-d vectors ...")
        table = db.create_table(TABLE, make_rows(rng, 0, args.rows, args.dim, vocab))
        table.create_fts_index("text")
        table.create_vector_index("vector")
        next_id = [args.rows]

        def row(_: int) -> list[dict[str, Any]]:
            one = make_rows(rng, next_id[0], 1, args.dim, vocab).to_pylist()
            next_id[0] += 1
            return one

        times: list[float] = []
        cpu: list[float] = []
        sizes: list[dict[str, int]] = []
        probes: list[dict[str, Any]] = []
        checkpoints = sorted({c for c in (10, 100) if c > table.version})
        log(f"{args.appends:,} single-row appends from version {table.version} ...")
        for i in range(args.appends):
            one = row(i)
            t0, c0 = time.perf_counter(), time.process_time()
            version = table.add(one).version
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if checkpoints and version >= checkpoints[0]:
                mark = checkpoints.pop(0)
                if mark == 10:
                    sizes.append(manifest_bytes(table.path, version))
                else:
                    probes.append(probe(db_path, row, args.probes, args.upkeep))
            if (i + 1) % 250 == 0:
                log(f"  {i + 1:,} appends, version {table.version}, last append {times[-1] * 1e3:.2f} ms")
        sizes.append(manifest_bytes(table.path, table.version))
        probes.append(probe(db_path, row, args.probes, args.upkeep))
        first = statistics.median(times[: args.window]) * 1e3
        last = statistics.median(times[-args.window :]) * 1e3
        final = connect(db_path, args.upkeep).open_table(TABLE)
        rows_ok = final.count_rows() == next_id[0]
        return {
            "rows": args.rows,
            "dim": args.dim,
            "appends": args.appends,
            "window": args.window,
            "first_ms_p50": first,
            "last_ms_p50": last,
            "ratio": last / first,
            "first_cpu_ms_p50": statistics.median(cpu[: args.window]) * 1e3,
            "last_cpu_ms_p50": statistics.median(cpu[-args.window :]) * 1e3,
            "append_ms_p90_all": float(np.percentile(times, 90)) * 1e3,
            "append_ms_max": max(times) * 1e3,
            "manifest_sizes": sizes,
            "probes": probes,
            "final_version": final.version,
            "final_rows": final.count_rows(),
            "rows_ok": rows_ok,
            "upkeep": args.upkeep,
        }


def targets(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    ok = res["ratio"] <= 1.2
    first, last = res["probes"][0], res["probes"][-1]
    flat_open = last["open_ms_p50"] <= 1.2 * first["open_ms_p50"]
    flat_commit = last["commit_ms_p50"] <= 1.2 * first["commit_ms_p50"]
    return [
        (
            f"last {res['window']} appends <= 1.2x the first {res['window']} (p50)",
            "PASS" if ok else "MISS",
            f"{res['first_ms_p50']:.2f} -> {res['last_ms_p50']:.2f} ms, x{res['ratio']:.2f}",
        ),
        (
            "open time flat (<= 1.2x) from ~100 to ~1,000 versions",
            "PASS" if flat_open else "MISS",
            f"v{first['version']} {first['open_ms_p50']:.2f} ms -> v{last['version']} {last['open_ms_p50']:.2f} ms",
        ),
        (
            "commit time flat (<= 1.2x) from ~100 to ~1,000 versions",
            "PASS" if flat_commit else "MISS",
            f"v{first['version']} {first['commit_ms_p50']:.2f} ms -> v{last['version']} {last['commit_ms_p50']:.2f} ms",
        ),
    ]


def tables(res: dict[str, Any]) -> list[str]:
    appends = grid(
        [
            ["appends", "first p50 ms", "last p50 ms", "ratio", "CPU first p50 ms", "CPU last p50 ms"]
            + ["p90 ms", "max ms"],
            [
                f"{res['appends']:,} x 1 row (window {res['window']})",
                fmt(res["first_ms_p50"]),
                fmt(res["last_ms_p50"]),
                fmt(res["ratio"]),
                fmt(res["first_cpu_ms_p50"]),
                fmt(res["last_cpu_ms_p50"]),
                fmt(res["append_ms_p90_all"]),
                fmt(res["append_ms_max"]),
            ],
        ],
        labels=1,
    )
    sizes = grid(
        [["version", "fragments", "manifest bytes", "pages", "page bytes"]]
        + [
            [str(s["version"]), f"{s['fragments']:,}", f"{s['manifest_bytes']:,}", str(s["pages"])]
            + [f"{s['page_bytes']:,}"]
            for s in res["manifest_sizes"]
        ],
        labels=1,
    )
    probes = grid(
        [["after version", "open p50 ms", "open, caches cleared, p50 ms", "commit p50 ms"]]
        + [
            [
                str(p["version"]),
                fmt(p["open_ms_p50"]),
                fmt(p["open_caches_cleared_ms_p50"]),
                fmt(p["commit_ms_p50"]),
            ]
            for p in res["probes"]
        ],
        labels=1,
    )
    return [appends, sizes, probes]


def render_md(res: dict[str, Any], meta: dict[str, Any]) -> str:
    title = "Append cost: single-row appends, opens and commits as versions pile up"
    lines = md_intro(title, "eval/append_cost.py", meta)
    lines += md_machine(meta)
    lines += [
        f"{res['rows']:,}-row table, {res['dim']}-d random vectors, random-word text, FTS + vector index; "
        f"{res['appends']:,} appends of one row each through `table.add([row])`"
        f"{' (background upkeep on)' if res.get('upkeep') else ', no background compaction'}. "
        f"Final version {res['final_version']}, {res['final_rows']:,} rows (all present: {res['rows_ok']}).",
        "",
    ]
    lines += md_targets(targets(res))
    for title, table in zip(("Appends", "Manifest size", "Open and commit"), tables(res), strict=True):
        lines += ["", f"## {title}", "", table]
    lines += [
        "",
        "Open: `hybrid.connect(path).open_table(name)` then `count_rows()`; 'caches cleared' drops the "
        "storage layer's process-wide caches first (n/a where it has none). Commit: one single-row append "
        "on that freshly opened table. Each figure is the median of the probes. CPU: process time of "
        "the append (wall time minus waiting, mostly for fsync), steadier than wall time on a busy machine.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--appends", type=int, default=1_000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--upkeep",
        action="store_true",
        help="leave background upkeep (compaction) on; by default it is off so fragments pile up (the worst case)",
    )
    add_output_args(ap, "append_cost")
    args = ap.parse_args(argv)
    res, rd = run_and_report(
        args,
        argv,
        run,
        machine_info=lambda: machine_info(("pyarrow", "numpy", "tantivy", "hnswlib"), processor=True),
        targets=targets,
        render_md=render_md,
        tables=tables,
    )
    print_outcome(res, rd, args.name)


if __name__ == "__main__":
    main()
