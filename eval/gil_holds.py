#!/usr/bin/env python
"""Which steps on the path of ``eval/async_load.py`` hold the GIL, and for how long: CPU time per call.

A thread keeps the event loop waiting longer than the 5 ms switch interval only in one call
that does not return to Python bytecode while holding the GIL: a native call, or a garbage
collection. This script runs the load of ``async_load.py`` (same arguments) and records,
during the load only (not the table's build), in the thread that makes them:

* every garbage collection: generation, wall and CPU time (``gc.callbacks``);
* every native call made from Python (``threading.setprofile``: C functions and methods,
  numpy's and pyarrow's included, tantivy's, hnswlib's, DuckDB's) that takes at least
  ``--min-ms`` of the thread's CPU time without calling back into Python;
* the CPU time of named steps suspected of long GIL holds: manifest (de)serialising, fragment
  pages, carried index coverage and filters, numpy's set operations, ``json.dumps``.

CPU time is the bound that matters: the wall time of a call also counts the time the OS gave
the core to another process, during which the thread (GIL or not) did nothing. A native
call that releases the GIL (hnswlib's ``add_items``, tantivy's searches) also shows its CPU
time here; the list says which do. The profiler slows Python code down, not native calls.

    python eval/gil_holds.py --repeats 2 --gc auto
"""

# ruff: noqa: E402 - async_load sets the BLAS thread variables before numpy loads
from __future__ import annotations

import functools
import importlib
import json
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import async_load
from bench.frame import RESULTS_DIR, grid, md_intro, md_machine, write_results

SUSPECTS = (
    ("hybrid.storage.manifest", "Manifest.to_json"),
    ("hybrid.storage.manifest", "Manifest.from_json"),
    ("hybrid.storage.pages", "write_pages"),
    ("hybrid.storage.pages", "read_page"),
    ("hybrid.storage.checksums", "seal"),
    ("hybrid.index.cache", "carry"),  # carried index coverage, where the cache calls it
    ("hybrid.index.cache", "delta"),
    ("hybrid.index.cache", "compute"),
    ("hybrid.query.allowed", "carried_rows"),
    ("numpy", "union1d"),
    ("numpy", "setdiff1d"),
    ("numpy", "unique"),
    ("json", "dumps"),
)
RELEASES_GIL = ("add_items", "knn_query", "IndexWriter.commit", "Searcher.search", "fsync", "read", "write")
"""Native calls known to release the GIL while they work (hnswlib, tantivy, I/O)."""


class Recorder:
    """CPU / wall ms per call of the suspects, long native calls and collections, while `on`."""

    def __init__(self, min_ms: float) -> None:
        self.on = False
        self.min_ms = min_ms
        self.steps: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.native: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.collections: list[tuple[int, float, float]] = []
        self._local = threading.local()

    def wrap(self, module: str, attr: str) -> None:
        owner: Any = importlib.import_module(module)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        raw = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        fn = raw.__func__ if isinstance(raw, staticmethod) else raw
        label = f"{module}.{attr}"

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.on:
                    self.steps[label].append(((time.thread_time() - cpu) * 1e3, (time.perf_counter() - wall) * 1e3))

        setattr(owner, name, staticmethod(timed) if isinstance(raw, staticmethod) else timed)

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        stack: list[list[Any]] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        if event == "c_call":
            if stack:
                stack[-1][2] = False  # the open native call calls another: not a leaf
            stack.append([time.thread_time(), time.perf_counter(), True])
        elif event in ("c_return", "c_exception"):
            if not stack:
                return
            cpu0, wall0, leaf = stack.pop()
            cpu = (time.thread_time() - cpu0) * 1e3
            if self.on and leaf and cpu >= self.min_ms:
                name = f"{getattr(arg, '__module__', None) or ''}.{getattr(arg, '__qualname__', repr(arg))}"
                where = f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"
                self.native[f"{name.lstrip('.')} ({where})"].append((cpu, (time.perf_counter() - wall0) * 1e3))
        elif stack:
            stack[-1][2] = False  # Python code ran inside the native call (a callback, a generator)

    def collected(self, phase: str, info: dict[str, Any]) -> None:
        key = threading.get_ident()
        if phase == "start":
            self._local.gc = (time.thread_time(), time.perf_counter(), key)
        elif self.on and getattr(self._local, "gc", None):
            cpu0, wall0, _ = self._local.gc
            self.collections.append(
                (info["generation"], (time.thread_time() - cpu0) * 1e3, (time.perf_counter() - wall0) * 1e3)
            )


def _collect_ms() -> float:
    """CPU ms of one full collection (gc.collect()) in this thread."""
    import gc

    cpu = time.thread_time()
    gc.collect()
    return (time.thread_time() - cpu) * 1e3


def summary(calls: list[tuple[float, float]]) -> dict[str, float]:
    """Calls, max and p99 CPU ms, max wall ms of one step's (CPU ms, wall ms) per call."""
    cpu = np.array([c for c, _ in calls])
    return {
        "calls": len(calls),
        "max_cpu_ms": round(float(cpu.max()), 3),
        "p99_cpu_ms": round(float(np.percentile(cpu, 99)), 3),
        "max_wall_ms": round(max(w for _, w in calls), 2),
    }


def rows_of(calls: dict[str, list[tuple[float, float]]], note: Any) -> list[list[str]]:
    out = []
    for name, xs in sorted(calls.items(), key=lambda kv: -max(c for c, _ in kv[1])):
        cpu = np.array([c for c, _ in xs])
        out.append(
            [
                name,
                note(name),
                str(len(xs)),
                f"{cpu.max():.2f}",
                f"{np.percentile(cpu, 99):.2f}",
                f"{max(w for _, w in xs):.1f}",
            ]
        )
    return out


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = list(argv)
    min_ms = 4.0
    if "--min-ms" in argv:
        at = argv.index("--min-ms")
        min_ms = float(argv[at + 1])
        del argv[at : at + 2]
    rec = Recorder(min_ms)
    for module, attr in SUSPECTS:
        rec.wrap(module, attr)
    import gc

    gc.callbacks.append(rec.collected)
    load = async_load.with_ticker

    full: list[tuple[float, float]] = []

    async def watched(work: Any) -> Any:
        rec.on = getattr(work, "__name__", "") == "everything"  # the load, not the controls
        try:
            return await load(work)
        finally:
            measure, rec.on = rec.on, False
            if measure:  # what one full collection of the heap the load ran with costs, then frozen
                frozen = gc.get_freeze_count() > 0
                gc.unfreeze()
                full.append((_collect_ms(), 0.0))
                gc.freeze()
                full[-1] = (full[-1][0], _collect_ms())
                if not frozen:
                    gc.unfreeze()

    async_load.with_ticker = watched  # type: ignore[assignment]
    threading.setprofile(rec.profile)
    sys.setprofile(rec.profile)
    name = "gil_holds"
    try:
        async_load.main([*argv, "--name", f"{name}_load"])
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    meta = json.loads((RESULTS_DIR / f"{name}_load.json").read_text())
    meta["command"] = " ".join(["python", "eval/gil_holds.py", *command])
    header = ["call", "GIL", "calls", "max CPU ms", "p99 CPU ms", "max wall ms"]
    gens: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for gen, cpu, wall in rec.collections:
        gens[gen].append((cpu, wall))
    lines = md_intro("GIL-holding steps under the async load", "eval/gil_holds.py", meta) + md_machine(meta)
    lines += [
        f"The load of `eval/async_load.py` (its results: `{name}_load.md`), profiled; every figure is from the "
        "load only. CPU ms is the calling thread's CPU time in the call: a call that keeps the GIL keeps the "
        "event loop waiting at least that long (longer when the OS takes the core away meanwhile: wall ms). "
        f"The machine is shared with other jobs: load average {min(r['load_average'][0] for r in meta['runs'])}-"
        f"{max(r['load_average'][1] for r in meta['runs'])} on {meta['machine']['cpu_count']} cores during the "
        "loads.\n",
        "## Garbage collections (they hold the GIL)\n",
        grid(
            [["generation", "collections", "max CPU ms", "max wall ms"]]
            + [
                [str(g), str(len(xs)), f"{max(c for c, _ in xs):.2f}", f"{max(w for _, w in xs):.1f}"]
                for g, xs in sorted(gens.items())
            ],
            1,
        ),
        "",
        "One full collection (`gc.collect()`) of the heap right after each load, CPU ms: "
        + ", ".join(f"{a:.1f}" for a, _ in full)
        + "; the same heap collected and frozen (`gc.freeze()`, what `async_load.py --gc freeze` and the REST "
        "server do once started), the next full collection: " + ", ".join(f"{b:.1f}" for _, b in full) + ".\n",
        "## Suspected steps (whole calls)\n",
        grid([header] + rows_of(rec.steps, lambda _: "held"), 2),
        "",
        f"## Native calls of at least {min_ms:g} ms CPU (leaves: no Python inside)\n",
        grid(
            [header] + rows_of(rec.native, lambda n: "released" if any(r in n for r in RELEASES_GIL) else "held"),
            2,
        )
        if rec.native
        else "None.",
        "",
    ]
    text = "\n".join(lines) + "\n"
    data = {
        "command": meta["command"],
        "date": meta["date"],
        "machine": meta["machine"],
        "git": meta.get("git"),
        "full_collection_cpu_ms": [a for a, _ in full],
        "full_collection_after_freeze_cpu_ms": [b for _, b in full],
        "collections": [{"generation": g, "cpu_ms": c, "wall_ms": w} for g, c, w in rec.collections],
        "steps": {k: summary(v) for k, v in rec.steps.items()},
        "native": {k: summary(v) for k, v in rec.native.items()},
    }
    write_results(RESULTS_DIR, name, data, text)
    print(text)


if __name__ == "__main__":
    main()
