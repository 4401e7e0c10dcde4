#!/usr/bin/env python
"""Writes that don't slow reads: searches between small writes, and what `optimize()` costs.

Two measurements, each on a table built here (random word text, random vectors,
a full-text and an HNSW index), through the public API only:

* **search after write** (``--docs`` rows of ``--dim``-d vectors): ``--writes``
  single-row ``add`` calls, each followed at once by one hybrid search (text + vector,
  k=10). Reported: the median search right after a write against the median of the
  same searches once the table is quiet (``wait_for_upkeep()`` then ``optimize()``), back to back,
  against the same searches of a quiet optimized twin holding the final data, each run right after
  the written table's (the two in the same moments, so a machine's changing load cancels out), and,
  as a control, each after a single-row write to *another* table (the machine does the same
  work between searches; only the searched table does not change) and, interleaved with those, after
  a commit's four fsyncs made by hand (two 4 KB files and their folder: the disk's flushes, no table),
  the median append time of the first and last 100 writes, and the table's fragment
  count at the end. Run with automatic upkeep (the default) and with it off.
* **optimize after 1% new rows** (``--merge-docs`` rows of ``--merge-dim``-d vectors):
  1% more rows and 0.1% deleted, then ``optimize()`` (a merge) timed against
  ``optimize(rebuild=True)`` on the same data; quality of the merged indexes against
  the rebuilt ones: vector recall@10 (against exact search) and the share of the
  rebuilt BM25 top 10 that the merged index returns, over 200 queries.

With ``--flush-ab`` only a third measurement runs: the same single-row appends, each followed by one
search, whose commits alternately make their syncs together (the default, :mod:`hybrid.storage.flushes`)
and one after the other (as before), in ABBA order, so that both see the same moments of the machine.

Results: ``eval/results/write_search.json`` and ``.md``.

    python eval/write_search.py                         # 20,000 x 64-d; 100,000 x 384-d
    python eval/write_search.py --writes 300 --merge-docs 20000
"""

# ruff: noqa: E402 - the thread variables must be set before numpy loads its BLAS
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import shlex
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.frame import RESULTS_DIR, git_info, grid, machine_info, md_intro, md_machine, md_targets, write_results

import hybrid

VOCABULARY = 20_000


def _search_cpu() -> float:
    """CPU seconds of this thread and the search pool's threads (a search's branches), not of background
    upkeep: what a search costs, whatever else the process and the machine run meanwhile."""
    total = time.thread_time()
    for th in threading.enumerate():
        if th.name.startswith("hybrid-search") and th.ident is not None:
            total += time.clock_gettime(time.pthread_getcpuclockid(th.ident))
    return total


CLOCKS = {"wall": time.perf_counter, "cpu": _search_cpu}
"""What a search and an append are timed with: wall time, or the CPU time of the calling thread and the
search threads (:func:`_search_cpu`), which a loaded machine's waits for a core do not swell."""
_clock = CLOCKS["wall"]


def _words(rng: np.random.Generator, n: int, length: int) -> list[str]:
    ranks = np.minimum(rng.zipf(1.3, size=(n, length)), VOCABULARY)
    return [" ".join(f"w{r}" for r in row) for row in ranks]


def _clustered(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Unit vectors around 100 centres (fixed by a seed of their own): neighbourhoods like real embeddings'
    (uniform random vectors in hundreds of dimensions have none, and HNSW's recall on them is not telling)."""
    centres = np.random.default_rng(99).standard_normal((100, dim)).astype(np.float32)
    v = centres[rng.integers(0, 100, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _table_data(rng: np.random.Generator, start: int, n: int, dim: int) -> pa.Table:
    vectors = _clustered(rng, n, dim)
    return pa.table(
        {
            "id": np.arange(start, start + n),
            "text": _words(rng, n, 24),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim),
        }
    )


def _bare_fsyncs(folder: Path) -> None:
    """Two 4 KB files written and synced, each with its folder (a commit's four fsyncs), through the OS only."""
    folder.mkdir(exist_ok=True)
    for name in ("data", "manifest"):
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _ms(xs: list[float]) -> float:
    return round(1e3 * statistics.median(xs), 3)


def search_after_write(folder: Path, docs: int, dim: int, writes: int, upkeep: hybrid.Upkeep | None) -> dict[str, Any]:
    """Single-row appends each followed by one hybrid search; then the same searches on the quiet table."""
    rng = np.random.default_rng(1)
    db = hybrid.connect(folder, upkeep=upkeep)
    t = db.create_table("docs", _table_data(rng, 0, docs, dim))
    t.create_fts_index(["text"])
    t.create_vector_index("vector")
    queries = [(_words(rng, 1, 3)[0], rng.standard_normal(dim).astype(np.float32)) for _ in range(writes)]
    rows = [_table_data(rng, docs + i, 1, dim) for i in range(writes)]
    # the quiet twin: the same final data, optimized, searched right after each search of the written table
    # (both in the same moments of a loaded machine: the ratio does not drift with the load between phases)
    twin = db.create_table("twin", pa.concat_tables([t.to_arrow(["id", "text", "vector"]), *rows]))
    twin.create_fts_index(["text"])
    twin.create_vector_index("vector")

    def search(i: int, table: hybrid.Table = t) -> float:
        text, vector = queries[i]
        start = _clock()
        table.search(text, query_type="hybrid").vector(vector).limit(10).to_list()
        return _clock() - start

    for i in range(min(50, writes)):  # both tables' indexes loaded and warm before the first timed search
        search(i)
        search(i, twin)
    adds, after, beside = [], [], []
    for i in range(writes):
        start = _clock()
        t.add(rows[i])
        adds.append(_clock() - start)
        after.append(search(i))
        beside.append(search(i, twin))
    t.wait_for_upkeep()
    fragments = len(t.snapshot().manifest.fragments)
    upkeep_commits = sum(1 for v in t.versions() if v.operation in ("compact", "merge_index"))
    t.optimize()
    t.compact()
    quiet = [search(i) for i in range(writes)]
    # the control: the same single-row writes, to another table, between the same searches of the quiet one
    # (what a write costs the machine, its caches and the idle branch thread, without changing this table)
    other = db.create_table("other", _table_data(rng, 0, 10, dim))
    # the second control, interleaved with the first: no table written at all, only the four fsyncs a
    # single-row commit makes (its data file and folder, its manifest and folder), by hand: what the disk's
    # flushes alone cost the next search
    paced, synced = [], []
    for i in range(writes):
        other.add(_table_data(rng, docs + i, 1, dim))
        paced.append(search(i))
        _bare_fsyncs(folder / "fsync-control")
        synced.append(search(i))
    return {
        "upkeep": upkeep is not None,
        "search_after_write_p50_ms": _ms(after),
        "search_after_write_last100_p50_ms": _ms(after[-100:]),
        "quiet_p50_ms": _ms(quiet),
        "after_write_vs_quiet": round(statistics.median(after) / statistics.median(quiet), 3),
        "quiet_twin_interleaved_p50_ms": _ms(beside),
        "after_write_vs_quiet_twin_interleaved": round(statistics.median(after) / statistics.median(beside), 3),
        "quiet_between_other_writes_p50_ms": _ms(paced),
        "after_write_vs_quiet_between_other_writes": round(statistics.median(after) / statistics.median(paced), 3),
        "quiet_after_bare_fsyncs_p50_ms": _ms(synced),
        "after_write_vs_quiet_after_bare_fsyncs": round(statistics.median(after) / statistics.median(synced), 3),
        "append_first100_p50_ms": _ms(adds[:100]),
        "append_last100_p50_ms": _ms(adds[-100:]),
        "append_last_vs_first": round(statistics.median(adds[-100:]) / statistics.median(adds[:100]), 3),
        "fragments_at_end": fragments,
        "upkeep_commits": upkeep_commits,
    }


def flush_ab(folder: Path, docs: int, dim: int, writes: int) -> dict[str, Any]:
    """Single-row appends whose commits make their syncs together (the default) or one after the other
    (``hybrid.storage.flushes.WORKERS = 0``, as every commit did before), alternating in pairs (ABBA), each
    followed by one search: the two kinds of commit in the same moments of a loaded machine."""
    from hybrid.storage import flushes

    rng = np.random.default_rng(1)
    t = hybrid.connect(folder).create_table("docs", _table_data(rng, 0, docs, dim))
    t.create_fts_index(["text"])
    t.create_vector_index("vector")
    queries = [(_words(rng, 1, 3)[0], rng.standard_normal(dim).astype(np.float32)) for _ in range(writes)]
    rows = [_table_data(rng, docs + i, 1, dim) for i in range(writes)]

    def search(i: int) -> float:
        text, vector = queries[i]
        start = _clock()
        t.search(text, query_type="hybrid").vector(vector).limit(10).to_list()
        return _clock() - start

    for i in range(min(50, writes)):
        search(i)
    runs: dict[str, dict[str, list[float]]] = {
        mode: {"search": [], "append": [], "append_wall": []} for mode in ("together", "one_by_one")
    }
    workers = flushes.WORKERS
    try:
        for i in range(writes):
            mode = "together" if i % 4 in (0, 3) else "one_by_one"
            flushes.WORKERS = workers if mode == "together" else 0
            wall, start = time.perf_counter(), _clock()
            t.add(rows[i])
            runs[mode]["append"].append(_clock() - start)
            runs[mode]["append_wall"].append(time.perf_counter() - wall)
            runs[mode]["search"].append(search(i))
    finally:
        flushes.WORKERS = workers
    t.wait_for_upkeep()
    t.optimize()
    t.compact()
    quiet = statistics.median([search(i) for i in range(writes)])
    out: dict[str, Any] = {"writes": writes, "quiet_p50_ms": round(1e3 * quiet, 3)}
    for mode, got in runs.items():
        out[f"{mode}_search_after_write_p50_ms"] = _ms(got["search"])
        out[f"{mode}_after_write_vs_quiet"] = round(statistics.median(got["search"]) / quiet, 3)
        out[f"{mode}_append_p50_ms"] = _ms(got["append"])
        out[f"{mode}_append_wall_p50_ms"] = _ms(got["append_wall"])
    out["search_together_vs_one_by_one"] = round(
        statistics.median(runs["together"]["search"]) / statistics.median(runs["one_by_one"]["search"]), 3
    )
    out["append_wall_together_vs_one_by_one"] = round(
        statistics.median(runs["together"]["append_wall"]) / statistics.median(runs["one_by_one"]["append_wall"]), 3
    )
    return out


def _recall(t: hybrid.Table, queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray) -> float:
    hits = 0
    for q in queries:
        exact = set(ids[np.argsort(-(vectors @ q))[:10]].tolist())  # cosine: every vector has length 1
        got = {r["id"] for r in t.search(q, vector_column="vector").limit(10).to_list()}
        hits += len(exact & got)
    return hits / (10 * len(queries))


def optimize_cost(folder: Path, docs: int, dim: int) -> dict[str, Any]:
    """optimize() as a merge against optimize(rebuild=True), after 1% new and 0.1% deleted rows."""
    rng = np.random.default_rng(2)
    t = hybrid.connect(folder, upkeep=None).create_table("docs", _table_data(rng, 0, docs, dim))
    start = time.perf_counter()
    t.create_fts_index(["text"])
    t.create_vector_index("vector")
    build = time.perf_counter() - start
    t.add(_table_data(rng, docs, docs // 100, dim))
    t.delete(f"id % 1000 = 7 AND id < {docs}")
    start = time.perf_counter()
    t.optimize()
    merge = time.perf_counter() - start
    data = t.to_arrow(["id", "vector"])
    ids = data.column("id").to_numpy()
    vectors = np.asarray(data.column("vector").combine_chunks().flatten()).reshape(-1, dim)
    queries = _clustered(rng, 200, dim)
    texts = _words(rng, 200, 3)
    merged_recall = _recall(t, queries, vectors, ids)
    merged_text = [[r["id"] for r in t.search(q).limit(10).to_list()] for q in texts]
    start = time.perf_counter()
    t.optimize(rebuild=True)
    rebuild = time.perf_counter() - start
    rebuilt_recall = _recall(t, queries, vectors, ids)
    rebuilt_text = [[r["id"] for r in t.search(q).limit(10).to_list()] for q in texts]
    overlap = [len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(merged_text, rebuilt_text) if b]
    return {
        "docs": docs,
        "dim": dim,
        "first_build_s": round(build, 2),
        "merge_s": round(merge, 3),
        "rebuild_s": round(rebuild, 2),
        "merge_vs_rebuild": round(merge / rebuild, 4),
        "recall_at_10_merged": round(merged_recall, 4),
        "recall_at_10_rebuilt": round(rebuilt_recall, 4),
        "recall_merged_vs_rebuilt": round(merged_recall / rebuilt_recall, 4),
        "bm25_top10_overlap": round(float(np.mean(overlap)), 4),
    }


def markdown(res: dict[str, Any]) -> str:
    lines = md_intro("Writes that don't slow reads", "eval/write_search.py", res) + md_machine(res)
    targets = []
    on = next((r for r in res["search_after_write"] if r["upkeep"]), None)
    if on is not None:
        rows = [["upkeep", "measure", "value"]]
        for run in res["search_after_write"]:
            label = "on" if run["upkeep"] else "off"
            rows += [[label, key, str(value)] for key, value in run.items() if key != "upkeep"]
        lines += ["## Search right after each single-row write\n"]
        if res.get("clock") == "cpu":
            lines += ["Timed in CPU time of the calling thread and the search threads (not background upkeep).\n"]
        if "load_average_before" in res:
            lines += [f"Load average before {res['load_average_before']}, after {res.get('load_average_after')}.\n"]
        lines += [grid(rows, labels=2), ""]
        targets += [
            ("search right after a write p50 <= 1.2x quiet", "met" if on["after_write_vs_quiet"] <= 1.2 else "not met",
             f"{on['search_after_write_p50_ms']} / {on['quiet_p50_ms']} ms = {on['after_write_vs_quiet']}x"),
            ("... a quiet optimized twin, interleaved (its caches as cold as the written table's)",
             "control",
             f"{on['search_after_write_p50_ms']} / {on['quiet_twin_interleaved_p50_ms']} ms = "
             f"{on['after_write_vs_quiet_twin_interleaved']}x"),
            ("... quiet between writes to another table",
             "met" if on["after_write_vs_quiet_between_other_writes"] <= 1.2 else "not met",
             f"{on['search_after_write_p50_ms']} / {on['quiet_between_other_writes_p50_ms']} ms = "
             f"{on['after_write_vs_quiet_between_other_writes']}x"),
            ("... quiet after a commit's four fsyncs by hand (no table written)",
             "met" if on["after_write_vs_quiet_after_bare_fsyncs"] <= 1.2 else "not met",
             f"{on['search_after_write_p50_ms']} / {on['quiet_after_bare_fsyncs_p50_ms']} ms = "
             f"{on['after_write_vs_quiet_after_bare_fsyncs']}x"),
            ("last 100 appends <= 1.2x first 100", "met" if on["append_last_vs_first"] <= 1.2 else "not met",
             f"{on['append_last100_p50_ms']} / {on['append_first100_p50_ms']} ms = {on['append_last_vs_first']}x"),
        ]  # fmt: skip
    ab = res.get("flush_ab")
    if ab is not None:
        lines += ["## A commit's syncs together vs one after the other (alternating writes, ABBA)\n"]
        if "load_average_before" in res:
            lines += [f"Load average before {res['load_average_before']}, after {res.get('load_average_after')}.\n"]
        lines += [grid([["measure", "value"]] + [[k, str(v)] for k, v in ab.items()], labels=1), ""]
        targets += [
            ("search right after a write p50 <= 1.2x quiet (syncs together)",
             "met" if ab["together_after_write_vs_quiet"] <= 1.2 else "not met",
             f"{ab['together_search_after_write_p50_ms']} / {ab['quiet_p50_ms']} ms = "
             f"{ab['together_after_write_vs_quiet']}x (one after the other: {ab['one_by_one_after_write_vs_quiet']}x)"),
        ]  # fmt: skip
    opt = res.get("optimize")
    if opt is not None:
        lines += ["## optimize() after 1% new rows: merge vs rebuild\n", grid([["measure", "value"]] + [
            [k, str(v)] for k, v in opt.items()
        ], labels=1), ""]  # fmt: skip
        targets += [
            ("optimize after 1% new rows <= 0.1x rebuild", "met" if opt["merge_vs_rebuild"] <= 0.1 else "not met",
             f"{opt['merge_s']} / {opt['rebuild_s']} s = {opt['merge_vs_rebuild']}x"),
            ("recall@10 merged / rebuilt >= 0.99, BM25 overlap >= 0.98",
             "met" if opt["recall_merged_vs_rebuilt"] >= 0.99 and opt["bm25_top10_overlap"] >= 0.98 else "not met",
             f"{opt['recall_merged_vs_rebuilt']}, {opt['bm25_top10_overlap']}"),
        ]  # fmt: skip
    lines += md_targets(targets)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--writes", type=int, default=1_000)
    ap.add_argument("--merge-docs", type=int, default=100_000)
    ap.add_argument("--merge-dim", type=int, default=384)
    ap.add_argument("--merge-rows", type=int, default=hybrid.Upkeep.merge_rows, help="upkeep's merge threshold")
    ap.add_argument("--tier-fragments", type=int, default=hybrid.Upkeep.tier_fragments)
    ap.add_argument("--skip-optimize", action="store_true", help="only the searches between writes")
    ap.add_argument("--skip-writes", action="store_true", help="only optimize() as a merge vs a rebuild")
    ap.add_argument(
        "--flush-ab", action="store_true", help="only: writes whose syncs are made together vs one after the other"
    )
    ap.add_argument("--name", default="write_search", help="results file name under eval/results/")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall or CPU time for searches, appends")
    args = ap.parse_args(argv)
    global _clock
    _clock = CLOCKS[args.clock]
    res: dict[str, Any] = {
        "command": shlex.join(["python", "eval/write_search.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(("numpy", "pyarrow", "tantivy", "hnswlib")),
        "git": git_info(),
        "search_after_write": [],
        "clock": args.clock,
        "load_average_before": list(os.getloadavg()),
    }
    with tempfile.TemporaryDirectory(prefix="write-search-") as scratch:
        if args.flush_ab:
            res["flush_ab"] = flush_ab(Path(scratch) / "ab", args.docs, args.dim, args.writes)
            print(res["flush_ab"], flush=True)
            args.skip_writes = args.skip_optimize = True
        policy = hybrid.Upkeep(merge_rows=args.merge_rows, tier_fragments=args.tier_fragments)
        for upkeep in () if args.skip_writes else (policy, None):
            folder = Path(scratch) / f"w{int(upkeep is not None)}"
            run = search_after_write(folder, args.docs, args.dim, args.writes, upkeep)
            print(run, flush=True)
            res["search_after_write"].append(run)
        if not args.skip_optimize:
            res["optimize"] = optimize_cost(Path(scratch) / "opt", args.merge_docs, args.merge_dim)
            print(res["optimize"], flush=True)
    res["load_average_after"] = list(os.getloadavg())
    write_results(RESULTS_DIR, args.name, res, markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
