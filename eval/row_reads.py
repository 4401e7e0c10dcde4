#!/usr/bin/env python
"""What reading a table's rows by id costs, per way of reading them: rescoring's candidates and a
filter's exact search over its allowed rows (:mod:`hybrid.index.row_reads`).

One table of ``--rows`` x 384 random vectors (written in ``--work``, kept and reused), its data file
in the page cache (warmed by one full read). The ways, interleaved round by round in one process,
each timed in CPU time (``time.process_time``) per call, median over the rounds:

* rescoring (:func:`hybrid.index.gather.gathered`, ``--candidates`` random live rows per call):
  ``map`` (the table's memory map: its pages stay resident), ``pread+join`` (one ``os.pread`` per row,
  joined and copied: the code before this script), ``preadv`` (one ``os.preadv`` per row into its row
  of the buffer: :func:`hybrid.index.row_reads.read_rows`);
* filtered exact search's gather (1%, 3% and 10% of the rows): ``map`` (:func:`hybrid.index.exact.row_vectors`,
  norms cached per chunk), ``preadv`` only, and ``read`` (:func:`hybrid.index.gather.read_row_vectors`:
  a map per call, closed after, for chunks whose rows are dense enough).

    nice -n 10 python eval/row_reads.py --work <scratch> [--rows 200000]

Writes ``eval/results/row_reads.json`` and ``.md`` (``--name`` changes the stem).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DIM = 384


def table(a: argparse.Namespace) -> Any:
    import hybrid

    db = hybrid.connect(a.work, upkeep=None)
    try:
        t = db.open_table("rows")
        if t.count_rows() == a.rows:
            return t
    except Exception:  # not there yet, or another size: write it
        pass
    rng = np.random.default_rng(0)

    def batches() -> Any:
        for s in range(0, a.rows, 50_000):
            n = min(50_000, a.rows - s)
            x = rng.standard_normal((n, DIM), dtype=np.float32)
            yield pa.record_batch({
                "id": pa.array(np.arange(s, s + n)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), DIM),
            })  # fmt: skip

    return db.create_table("rows", batches(), mode="overwrite")


def _pread_join(fd: int, at: int, pos: np.ndarray, out: np.ndarray) -> None:
    """The read before :func:`hybrid.index.row_reads.read_rows`: pread per row, join, copy."""
    row = out.shape[1] * out.itemsize
    data = b"".join([os.pread(fd, row, o) for o in (pos * row + at).tolist()])
    out[:] = np.frombuffer(data, dtype=out.dtype).reshape(out.shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--candidates", default="40,160")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--name", default="row_reads")
    a = ap.parse_args()
    from hybrid.index import gather, row_reads
    from hybrid.index.exact import row_vectors

    t = table(a)
    view = t.indexed_snapshot()
    ids = np.sort(t.to_arrow(["id"], with_rowid=True).column("_rowid").to_numpy()).astype(np.uint64)
    for path in (a.work / "rows" / "data").glob("*"):  # the page cache holds the file, as when serving
        path.read_bytes()
    rng = np.random.default_rng(1)
    q = rng.standard_normal(DIM, dtype=np.float32)
    original = row_reads.read_rows

    def picks(n: int) -> list[np.ndarray]:
        """Random sorted row ids, drawn before the timing (a draw without replacement copies all ids)."""
        return [np.sort(rng.choice(ids, n, replace=False)) for _ in range(16)]

    def rescoring(way: str, n: int) -> Callable[[int], Any]:
        sets = picks(n)

        def run(r: int) -> Any:
            gather.READ_ROWS = way != "map"
            gather.read_rows = _pread_join if way == "pread+join" else original  # type: ignore[assignment]
            return gather.gathered(view, "vector", sets[r % len(sets)], q, "cosine")

        return run

    def filtered(way: str, share: float) -> Callable[[int], Any]:
        sets = picks(int(share * len(ids)))

        def run(r: int) -> Any:
            if way == "map":
                return row_vectors(view, "vector", sets[r % len(sets)], "cosine")
            row_reads.MAP_FROM = 10**12 if way == "preadv" else 64
            return gather.read_row_vectors(view, "vector", sets[r % len(sets)], "cosine")

        return run

    cases: dict[str, Callable[[int], Any]] = {}
    for n in [int(c) for c in a.candidates.split(",")]:
        for way in ("map", "pread+join", "preadv"):
            cases[f"rescore {n} rows: {way}"] = rescoring(way, n)
    for share in (0.01, 0.03, 0.1):
        for way in ("map", "preadv", "read"):
            cases[f"filtered {share:.0%} ({int(share * len(ids)):,} rows): {way}"] = filtered(way, share)
    times: dict[str, list[float]] = {name: [] for name in cases}
    load = [os.getloadavg()[0]]
    for r in range(a.rounds):
        for name, run in cases.items():
            if name.startswith("filtered") and r % 4:  # the large gathers: every fourth round
                continue
            c0 = time.process_time()
            run(r)
            times[name].append((time.process_time() - c0) * 1e3)
    load.append(os.getloadavg()[0])
    rows = {name: {"cpu_p50_ms": float(np.median(v)), "calls": len(v)} for name, v in times.items()}
    report = {"rows": a.rows, "dim": DIM, "load": load, "cases": rows}
    out = REPO / "eval" / "results"
    (out / f"{a.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Reading rows by id: {a.rows:,} x {DIM} (page cache warm)",
        "",
        f"`python eval/row_reads.py --rows {a.rows}`; CPU ms per call (median), the ways interleaved;"
        f" load average {load[0]:.1f} -> {load[1]:.1f}.",
        "",
        "| case | CPU p50 ms | us per row | calls |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        n = int(name.split("(")[1].split(" ")[0].replace(",", "")) if "(" in name else int(name.split()[1])
        lines.append(f"| {name} | {r['cpu_p50_ms']:.3f} | {r['cpu_p50_ms'] * 1e3 / n:.2f} | {r['calls']} |")
    (out / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
