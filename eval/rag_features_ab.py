"""Highlights, expansion and grouping before and after a change, in one process: CPU time per query, interleaved.

The table and queries are ``eval/rag_features.py``'s (100k chunks by default). `--before` names an
old checkout (``git archive <commit> | tar -x -C <dir>``); its ``hybrid/query/highlight.py``,
``hybrid/query/expansion.py`` and ``hybrid/query/grouped.py`` are loaded beside this checkout's and
swapped into the executor for the "(before)" configurations (the old ``grouped.py`` calls this
checkout's ``grouping`` module), so every configuration runs on the same table, index caches and
load, query by query in turn (who goes first rotates). Process CPU time (all threads) is the
measure: the wall time of a 2-core machine shared with other work is bimodal (a query preempted or
not), its p50 jumps between the modes.

The warm-up pass runs `--queries` queries of its own; the timed queries are others, so in the first
timed round most hits' texts are highlighted for the first time (**first-seen**: the share that a
query before had already returned is reported), as for a new question; the `--rounds` - 1 rounds
after it repeat the timed queries (**seen**: every text highlighted before, which the highlighter
remembers). Both are reported; the target holds for first-seen texts.

    git archive main | tar -x -C /path/to/old
    python eval/rag_features_ab.py --before /path/to/old --docs 10000 --queries 300 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import shlex
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.frame import RESULTS_DIR, git_info, grid, machine_info, md_intro, md_machine, write_results  # noqa: E402
from rag_features import TARGET, corpus  # noqa: E402

import hybrid  # noqa: E402
from hybrid.query import executor  # noqa: E402

CONFIGS = (
    "hybrid",
    "+highlight",
    "+highlight (before)",
    "+expand",
    "+expand (before)",
    "+group_by",
    "+group_by (before)",
)
MODULES = ("highlight", "expansion", "grouped")
PASSES = ("first-seen", "seen")


def _load(root: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"before_{name}", root / "hybrid" / "query" / f"{name}.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"--before: no hybrid/query/{name}.py under the old checkout")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="an old checkout (git archive ... | tar -x)")
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--chunks", type=int, default=10)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="rag_features_ab")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = ap.parse_args()
    before = {name: _load(args.before, name) for name in MODULES}
    after = {name: getattr(executor, name) for name in MODULES}

    rows, centres, vocab = corpus(args.docs, args.chunks, args.dim, args.seed)
    with tempfile.TemporaryDirectory(prefix="rag-ab-") as tmp:
        t = hybrid.connect(Path(tmp) / "db", upkeep=None).create_table("chunks", rows)
        t.create_fts_index("text")
        t.create_vector_index("vector")
        t.set_chunking(parent="doc_id", position="chunk_no")
        rng = np.random.default_rng(args.seed + 1)
        weights = 1.0 / np.arange(1, len(vocab) + 1)
        warm, queries = [], []
        for i in range(2 * args.queries):  # the warm-up pass's queries, then the timed ones
            words = " ".join(vocab[w] for w in rng.choice(len(vocab), 4, p=weights / weights.sum()))
            near = centres[rng.integers(len(centres))] + 0.5 * rng.standard_normal(args.dim).astype(np.float32)
            (warm if i < args.queries else queries).append((words, near))
        returned: set[int] = set()  # rows some query has returned (their texts highlighted since)

        def run(config: str, text: str, vec: np.ndarray, seen: list[int] | None = None) -> float:
            q = t.search(text, query_type="hybrid").vector(vec).select(["doc_id", "chunk_no", "text"]).limit(10)
            q = q.highlight() if "highlight" in config else q.expand(neighbours=1) if "expand" in config else q
            q = q.group_by("doc_id") if "group_by" in config else q
            modules = before if config.endswith("(before)") else after
            for name in MODULES:
                setattr(executor, name, modules[name])
            try:
                c0 = time.process_time()
                found = q.to_arrow()
                spent = (time.process_time() - c0) * 1e3
            finally:
                for name in MODULES:
                    setattr(executor, name, after[name])
            if seen is not None:  # after the clock: how many hits an earlier query returned, then remember them
                ids = found.column("_rowid").to_pylist()
                seen += [sum(i in returned for i in ids), len(ids)]
                returned.update(ids)
            return spent

        for text, vec in warm:  # warm-up: other queries than the timed ones
            for c in CONFIGS:
                run(c, text, vec, [] if c == "hybrid" else None)
        cpu: dict[str, dict[str, list[float]]] = {p: {c: [] for c in CONFIGS} for p in PASSES}
        before_seen: list[int] = []  # (hits returned before, hits) per first-seen query
        for r in range(args.rounds):
            for i, (text, vec) in enumerate(queries):
                for c in CONFIGS[i % len(CONFIGS) :] + CONFIGS[: i % len(CONFIGS)]:
                    track = before_seen if r == 0 and c == "hybrid" else None
                    cpu[PASSES[min(r, 1)]][c].append(run(c, text, vec, track))

    shown = list(sys.argv[1:])
    for flag in ("--before",):  # a machine path: not written into the results
        if flag in shown:
            shown[shown.index(flag) + 1] = "<old checkout>"
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python " + " ".join(shlex.quote(a) for a in ["eval/rag_features_ab.py", *shown]),
        "machine": machine_info(("pyarrow", "tantivy", "hnswlib", "duckdb")),
        "git": git_info(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("results_dir", "before")},
    }
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "unknown"
    returned_share = sum(before_seen[0::2]) / max(1, sum(before_seen[1::2]))
    data: dict[str, Any] = {"meta": meta, "loadavg": load, "first_seen_hits_returned_before": returned_share}
    md = [
        *md_intro(
            "Highlights, expansion and grouping before and after, in one process (CPU time)",
            "eval/rag_features_ab.py",
            meta,
        ),
        *md_machine(meta),
        f"\n{args.docs * args.chunks:,} chunks, k = 10, a warm-up pass of {args.queries} queries, then "
        f"{args.queries} other queries x {args.rounds} rounds, the configurations taking turns query by query. "
        f"**first-seen**: the first round ({returned_share:.1%} of its hits had been returned by an earlier "
        "query); **seen**: the rounds after it (every hit's text highlighted before). "
        f"Target: each feature <= {TARGET:.2f} x hybrid. Load average at the end: {load}.\n",
    ]
    for name in PASSES:
        times = cpu[name]
        if not times["hybrid"]:
            continue
        p50 = {c: float(np.median(v)) for c, v in times.items()}
        base = np.asarray(times["hybrid"])
        paired = {c: float(np.median(np.asarray(v) / base)) for c, v in times.items()}
        data[name] = {"cpu_p50_ms": p50, "median_paired_ratio": paired, "cpu_ms": times}
        table = [["configuration", "", "CPU p50 ms", "CPU p50 / hybrid", "median of per-query ratios"]]
        table[0].append("adds (us, p50)")
        for c in CONFIGS:
            table.append(
                [c, "", f"{p50[c]:.3f}", f"{p50[c] / p50['hybrid']:.3f}", f"{paired[c]:.3f}"]
                + [f"{(p50[c] - p50['hybrid']) * 1e3:.0f}"]
            )
        md += [f"\n## {name} ({len(base)} queries)\n", grid(table)]
    write_results(args.results_dir, args.name, data, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
