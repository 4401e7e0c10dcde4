#!/usr/bin/env python
"""How long loading and saving an HNSW index keep other Python threads waiting: hnswlib's load_index
against hybrid.index.hnsw_file.load (GIL-free read, numpy split, then hnswlib.Index(state)), and
hnswlib's save_index against hybrid.index.hnsw_file.save (pickle state, numpy, GIL-free writes).

Builds an index of ``--rows`` random ``--dim``-d vectors (cosine, M=16) and loads its file
``--repeats`` times each way, in turn, while a probe thread sleeps 1 ms over and over: its longest
lateness during a load is about the longest time the load kept the GIL (plus what the OS adds,
which the idle probe row shows). Also times the one native call of hnsw_file.load, ``Index(state)``,
alone. Checks that both loads give the same search results.

    python eval/hnsw_load_gil.py
"""

# ruff: noqa: E402 - the thread variables must be set before numpy loads its BLAS
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.frame import RESULTS_DIR, git_info, grid, machine_info, md_intro, md_machine, write_results

from hybrid.index import hnsw_file


class Probe:
    """A thread that sleeps 1 ms in a loop and keeps (start, end, lateness) of every wake-up."""

    def __init__(self) -> None:
        self.wakes: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            time.sleep(0.001)
            end = time.perf_counter()
            self.wakes.append((start, end, end - start - 0.001))

    def longest_wait(self, start: float, end: float) -> float:
        """The latest wake-up overlapping [start, end], ms."""
        return 1000 * max((late for a, b, late in self.wakes if b >= start and a <= end), default=0.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def timed(probe: Probe, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    time.sleep(0.01)  # let the probe settle between calls
    start = time.perf_counter()
    out = fn()
    end = time.perf_counter()
    return 1000 * (end - start), probe.longest_wait(start, end), out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--name", default="hnsw_load_gil")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    vectors = rng.random((args.rows, args.dim), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="hnsw-load-") as scratch:
        file = Path(scratch) / "hnsw.bin"
        built = hnswlib.Index(space="cosine", dim=args.dim)
        built.init_index(max_elements=args.rows, ef_construction=200, M=16, random_seed=100)
        built.add_items(vectors, np.arange(args.rows, dtype=np.uint64))
        built.save_index(str(file))
        state = hnsw_file.load(file, "cosine", args.dim, 64).__getstate__()[0]

        def load_index() -> hnswlib.Index:
            hnsw = hnswlib.Index(space="cosine", dim=args.dim)
            hnsw.load_index(str(file))
            hnsw.set_ef(64)
            return hnsw

        saved: dict[str, Path] = {}

        def fresh(who: str) -> Path:
            """A new file per save, as a merge writes into a new folder (none overwritten)."""
            saved[who] = Path(scratch) / f"{who}-{len(list(Path(scratch).iterdir()))}.bin"
            return saved[who]

        ways: dict[str, Callable[[], Any]] = {
            "hnswlib load_index": load_index,
            "hnsw_file.load": lambda: hnsw_file.load(file, "cosine", args.dim, 64),
            "hnswlib.Index(state) alone": lambda: hnswlib.Index(state),
            "hnswlib save_index": lambda: built.save_index(str(fresh("theirs"))),
            "hnsw_file.save": lambda: hnsw_file.save(built, fresh("ours")),
            "idle (sleep 20 ms)": lambda: time.sleep(0.02),
        }
        probe = Probe()
        rows: dict[str, dict[str, list[float]]] = {k: {"wall_ms": [], "probe_wait_ms": []} for k in ways}
        loaded: dict[str, Any] = {}
        load = [os.getloadavg()[0]]
        for _ in range(args.repeats):
            for name, fn in ways.items():
                wall, wait, out = timed(probe, fn)
                rows[name]["wall_ms"].append(wall)
                rows[name]["probe_wait_ms"].append(wait)
                loaded[name] = out
        load.append(os.getloadavg()[0])
        probe.stop()
        queries = rng.random((200, args.dim), dtype=np.float32)
        a = loaded["hnswlib load_index"].knn_query(queries, k=10)
        b = loaded["hnsw_file.load"].knn_query(queries, k=10)
        same = bool(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))
        same_bytes = saved["ours"].read_bytes() == saved["theirs"].read_bytes()
    marks = (("min", 0), ("p50", 50), ("max", 100))
    stats = {
        name: {f"{k}_{q}": round(float(np.percentile(v, p)), 2) for k, v in r.items() for q, p in marks}
        for name, r in rows.items()
    }
    res = {
        "command": shlex.join(["python", "eval/hnsw_load_gil.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(("numpy", "hnswlib")),
        "git": git_info(),
        "args": vars(args),
        "load_average": [round(x, 2) for x in load],
        "stats": stats,
        "same_results": same,
        "same_bytes_saved": same_bytes,
    }
    cols = ["wall_ms_min", "wall_ms_p50", "probe_wait_ms_min", "probe_wait_ms_p50", "probe_wait_ms_max"]
    title = "Loading and saving an HNSW index: how long other threads wait"
    md = md_intro(title, "eval/hnsw_load_gil.py", res) + md_machine(res)
    md += [
        f"One cosine index of {args.rows:,} random {args.dim}-d vectors (M=16), loaded and saved {args.repeats} times "
        "each way, in turn (each save into a new file), while a probe thread sleeps 1 ms in a loop; *probe wait* "
        "is its longest lateness during "
        "the call: about how long the call kept the GIL, plus what the OS adds (the idle row). The machine was "
        f"shared with other jobs (load average {load[0]:.1f} before, {load[1]:.1f} after, on {os.cpu_count()} "
        "cores): compare the minima and medians, taken in the same run.\n",
        grid([["way", *cols]] + [[name, *(str(s[c]) for c in cols)] for name, s in stats.items()], 1),
        "",
        f"Both loads return the same top 10 for 200 queries: {same}. Both saves write the same bytes: {same_bytes}.\n",
    ]
    write_results(RESULTS_DIR, args.name, res, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
