#!/usr/bin/env python
"""Build cost of the compressed vector kinds before and after a change, beside LanceDB's IVF-PQ: one
report from ``eval/bench_ann_kinds.py`` JSON reports of runs over the same ``--work`` table.

Each build ran in its own process; "CPU" is that process's ``time.process_time`` (every thread: faiss's
and numpy's), the fairer figure on a shared machine, where wall time moves with the other jobs.
Runs of one kind alternate (old, new, ..., new, old) so that the load drifts over both.

    python eval/ann_build_ab.py --old OLD.json [OLD2.json ...] --new NEW.json [...] --name ann_build_ab_200k_a19h
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SETTINGS = ("nprobe", "rescore", "reads", "code_bits", "measured_recall")


def rows(paths: list[Path], label: str) -> list[dict[str, Any]]:
    """One row per (report, kind) built in it."""
    out = []
    for path in paths:
        report = json.loads(path.read_text())
        for kind, r in report["kinds"].items():
            b, s = r["build"], r["serve"]["vector"]
            st = b.get("stats", {})
            out.append({
                "code": "LanceDB" if kind == "lance" else label, "kind": kind, "report": path.name,
                "rows": report["rows"], "wall_s": b["seconds"], "cpu_s": b["cpu_seconds"],
                "tuning_s": b.get("tuning_seconds") or 0.0, "load": b["load"][0],
                "settings": {k: st[k] for k in SETTINGS if k in st},
                "recall": s["recall"], "cpu_p50_ms": s["cpu_p50_ms"],
            })  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", nargs="+", type=Path, required=True)
    ap.add_argument("--new", nargs="+", type=Path, required=True)
    ap.add_argument("--name", default="ann_build_ab")
    a = ap.parse_args()
    table = rows(a.old, "old") + rows(a.new, "new")
    lance = [r["cpu_s"] for r in table if r["kind"] == "lance"]
    lines = [
        f"# Compressed index build cost, old against new: {table[0]['rows']:,} x 384",
        "",
        "From `eval/bench_ann_kinds.py` reports (one process per build, same table); CPU is the build",
        "process's CPU time over every thread, wall time moves with the shared machine's load.",
        "",
        "| code | kind | report | build wall s | tuning wall s | build CPU s | CPU / LanceDB's | load (1 min)"
        " | tuned settings | recall@10 (fresh queries) | search CPU p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        ratio = f"{r['cpu_s'] / lance[0]:.2f}x" if lance else "n/a"
        settings = ", ".join(f"{k} {v:g}" for k, v in r["settings"].items()) or "IvfPq defaults"
        lines.append(
            f"| {r['code']} | {r['kind']} | {r['report']} | {r['wall_s']:.0f} | {r['tuning_s']:.0f} | {r['cpu_s']:.1f}"
            f" | {ratio} | {r['load']} | {settings} | {r['recall']:.3f} | {r['cpu_p50_ms']:.2f} |"
        )
    lines += ["", "Mean build CPU per kind (old -> new):", ""]
    for kind in sorted({r["kind"] for r in table} - {"lance"}):
        old = [r["cpu_s"] for r in table if r["kind"] == kind and r["code"] == "old"]
        new = [r["cpu_s"] for r in table if r["kind"] == kind and r["code"] == "new"]
        if old and new:
            o, n = sum(old) / len(old), sum(new) / len(new)
            vs = f"; LanceDB {lance[0]:.1f} s: {o / lance[0]:.2f}x -> {n / lance[0]:.2f}x" if lance else ""
            lines.append(f"* {kind}: {o:.1f} s -> {n:.1f} s ({n / o:.2f}x){vs}")
    lines.append("")
    out = REPO / "eval" / "results"
    (out / f"{a.name}.json").write_text(json.dumps({"builds": table}, indent=2) + "\n")
    (out / f"{a.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
