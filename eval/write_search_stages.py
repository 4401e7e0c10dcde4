#!/usr/bin/env python
"""Where a search right after a write spends its extra time: the query's stages, timed per search.

The table of ``eval/write_search.py`` (``--docs`` rows of ``--dim``-d vectors, random word text, a
full-text and an HNSW index, automatic upkeep on) and a quiet optimized twin of the same size. For
``--rounds`` rounds, in an order that alternates (ABCDE, EDCBA, ...), one hybrid search (text +
vector, k=10) is timed in each of five conditions:

* ``this``: right after a single-row ``add`` to the searched table;
* ``this_wait``: the same, after waiting for the background upkeep that write started;
* ``other_twin``: the quiet twin, right after a single-row write to a third table;
* ``none_twin``: the quiet twin, right after another search of it (no write);
* ``none_this``: the written table, right after another search of it (no write since its last).

Each search's stages are timed in thread CPU time by wrapping the functions that make them (the
wrappers cost the same in every condition), and the whole search in the CPU time of the calling
thread and the search threads (as ``eval/write_search.py --clock cpu``). Reported: the median of
each stage per condition. Results: ``eval/results/<name>.json`` and ``.md``.

    python eval/write_search_stages.py --rounds 300 --name write_search_stages_w14g
"""

# ruff: noqa: E402 - the thread variables must be set before numpy loads its BLAS
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import collections
import functools
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import write_search as ws
from bench.frame import RESULTS_DIR, git_info, grid, machine_info, md_intro, md_machine, write_results

import hybrid
from hybrid import table as table_module
from hybrid.index import fulltext, tail
from hybrid.index import vector as vector_module
from hybrid.index import view as view_module
from hybrid.query import executor, search, single
from hybrid.storage import reader

CONDITIONS = ("this", "this_wait", "other_twin", "none_twin", "none_this")
_spent: collections.Counter[str] = collections.Counter()


def _wrap(owner: Any, name: str, label: str) -> None:
    """Time `owner.name` (inclusive, thread CPU) under `label` while a search runs."""
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            _spent[label] += time.thread_time() - start

    setattr(owner, name, timed)


def _instrument() -> list[str]:
    vector_tail_search = "candidates" if hasattr(tail.VectorTail, "candidates") else "search"
    stages: list[tuple[Any, str, str]] = [
        (search.Query, "to_list", "to_list (all of the query but building it)"),
        (table_module.Table, "indexed_snapshot", "freshness check and view"),
        (executor, "_plan", "plan"),
        (executor, "_run_vector", "vector branch"),
        (vector_module.VectorIndex, "search", ". HNSW search"),
        (executor, "_with_unindexed", ". unindexed rows, merged"),
        (tail.VectorTail, vector_tail_search, ". . their exact search"),
        (executor, "_run_text", "text branch"),
        (fulltext.FullTextIndex, "compile", ". query compiled"),
        (fulltext.FullTextIndex, "search", ". tantivy search"),
        (tail.TextTail, "search", ". unindexed rows' BM25"),
        (view_module.IndexedSnapshot, "coverage", "coverage look-ups"),
        (executor, "_fused", "fusion"),
        (single, "row_reader", "row reader (made once per version)"),
        (reader.RowReader, "table_arrays", "result rows read"),
        (executor, "result_table", "result table"),
    ]
    for owner, name, label in stages:
        _wrap(owner, name, label)
    return ["total", *(label for _, _, label in stages)]


def run(folder: Path, docs: int, dim: int, rounds: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(1)
    db = hybrid.connect(folder)
    t = db.create_table("docs", ws._table_data(rng, 0, docs, dim))
    t.create_fts_index(["text"])
    t.create_vector_index("vector")
    twin = db.create_table("twin", ws._table_data(np.random.default_rng(1), 0, docs + rounds, dim))
    twin.create_fts_index(["text"])
    twin.create_vector_index("vector")
    other = db.create_table("other", ws._table_data(rng, 0, 10, dim))
    queries = [(ws._words(rng, 1, 3)[0], rng.standard_normal(dim).astype(np.float32)) for _ in range(rounds)]

    def timed(i: int, table: hybrid.Table) -> dict[str, float]:
        text, vector = queries[i]
        _spent.clear()
        start = ws._search_cpu()
        table.search(text, query_type="hybrid").vector(vector).limit(10).to_list()
        got = dict(_spent)
        got["total"] = ws._search_cpu() - start
        return got

    for i in range(min(50, rounds)):
        timed(i, t)
        timed(i, twin)
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in CONDITIONS}
    steps: dict[str, Callable[[int], dict[str, float]]] = {
        "this": lambda i: (t.add(ws._table_data(rng, docs + 10 * i, 1, dim)), timed(i, t))[1],
        "this_wait": lambda i: (
            t.add(ws._table_data(rng, docs + 10 * i + 1, 1, dim)),
            t.wait_for_upkeep(),
            timed(i, t),
        )[2],
        "other_twin": lambda i: (other.add(ws._table_data(rng, 0, 1, dim)), timed(i, twin))[1],
        "none_twin": lambda i: (timed((i + 1) % rounds, twin), timed(i, twin))[1],
        "none_this": lambda i: (timed((i + 1) % rounds, t), timed(i, t))[1],
    }
    for i in range(rounds):
        for c in CONDITIONS if i % 2 == 0 else CONDITIONS[::-1]:
            runs[c].append(steps[c](i))
    t.wait_for_upkeep()
    return {c: {label: _median(got, label) for label in sorted({k for r in got for k in r})} for c, got in runs.items()}


def _median(got: list[dict[str, float]], label: str) -> float:
    return round(1e3 * statistics.median([r.get(label, 0.0) for r in got]), 4)


def markdown(res: dict[str, Any], labels: list[str]) -> str:
    lines = md_intro("A search right after a write, stage by stage", "eval/write_search_stages.py", res)
    lines += md_machine(res)
    lines += [f"Load average before {res['load_average_before']}, after {res['load_average_after']}.\n"]
    lines += ["Median thread CPU ms per search stage (stages nest: `.` marks a part of the line above).\n"]
    rows = [["stage", *CONDITIONS]]
    for label in labels:
        rows.append([label, *(f"{res['stages'][c].get(label, 0.0):.3f}" for c in CONDITIONS)])
    base = res["stages"]["none_twin"]["total"]
    rows.append(["total / none_twin", *(f"{res['stages'][c]['total'] / base:.3f}x" for c in CONDITIONS)])
    lines += [grid(rows, labels=1), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--name", default="write_search_stages", help="results file name under eval/results/")
    args = ap.parse_args(argv)
    labels = _instrument()
    res: dict[str, Any] = {
        "command": shlex.join(["python", "eval/write_search_stages.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(("numpy", "pyarrow", "tantivy", "hnswlib")),
        "git": git_info(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="write-stages-") as scratch:
        res["stages"] = run(Path(scratch), args.docs, args.dim, args.rounds)
    res["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    text = markdown(res, labels)
    write_results(RESULTS_DIR, args.name, res, text)
    print(text)


if __name__ == "__main__":
    main()
