"""What many small input batches cost a table: searches on a table made from one batch against the
same rows made from many one-row chunks (a table concatenated from single rows, a stream of single
records), p50 CPU time per query.

Both tables get the same BM25 and HNSW indexes; the same queries run on both, interleaved, after a
warm-up; the time is the process's CPU time per query (``time.process_time``). The script reports how
many record batches each table's data files hold (the writer joins small batches:
:func:`hybrid.storage.writer.coalesced`). Run it with ``PYTHONPATH`` at an older checkout to see the
cost before. Writes ``eval/results/<name>.md`` and ``.json``.

    python eval/many_chunks.py --rows 5000 --chunks 500 --queries 300 --name many_chunks
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

import hybrid

DIM = 64
WORDS = [f"w{i}" for i in range(2_000)]
KINDS = ("vector", "fts", "hybrid")


def rows(n: int, rng: np.random.Generator, start: int = 0) -> pa.Table:
    vectors = rng.normal(0, 1, (n, DIM)).astype(np.float32)
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + n)),
            "text": pa.array([" ".join(rng.choice(WORDS, 30)) for _ in range(n)]),
            "v": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
        }
    )


def batches_on_disk(t: hybrid.Table, root: Path) -> int:
    return sum(pa.ipc.open_file(str(p)).num_record_batches for p in (root / t.name / "data").glob("*.arrow"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000, help="rows in one batch")
    ap.add_argument("--chunks", type=int, default=500, help="more rows, each its own one-row chunk")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--name", default="many_chunks")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    base = rows(args.rows, rng)
    singles = [rows(1, rng, start=args.rows + i) for i in range(args.chunks)]
    made = {
        "one batch": pa.concat_tables([base, *singles]).combine_chunks(),
        "many chunks": pa.concat_tables([base, *singles]),
    }
    queries = [
        (" ".join(rng.choice(WORDS, 3)), rng.normal(0, 1, DIM).astype(np.float32).tolist()) for _ in range(args.queries)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "db"
        db = hybrid.connect(root, upkeep=None)
        tables, batches = {}, {}
        for i, (label, data) in enumerate(made.items()):
            t = db.create_table(f"t{i}", data)
            t.create_fts_index("text")
            t.create_vector_index("v", metric="cosine")
            tables[label], batches[label] = t, batches_on_disk(t, root)
        figures: dict[str, dict[str, float]] = {}
        for kind in KINDS:
            cpu: dict[str, list[float]] = {label: [] for label in tables}

            def run(t: hybrid.Table, words: str, vec: list[float], kind: str = kind) -> None:
                q = t.search(vec) if kind == "vector" else t.search(words, query_type=kind)
                if kind == "hybrid":
                    q = q.vector(vec)
                q.limit(10).to_list()

            for t in tables.values():
                for words, vec in queries[:10]:
                    run(t, words, vec)
            for words, vec in queries:
                for label, t in tables.items():
                    c0 = time.process_time()
                    run(t, words, vec)
                    cpu[label].append(time.process_time() - c0)
            p50 = {label: float(np.median(v)) * 1e3 for label, v in cpu.items()}
            figures[kind] = {
                **{f"{label} p50 ms": p for label, p in p50.items()},
                "ratio": p50["many chunks"] / p50["one batch"],
            }
            one, many = p50["one batch"], p50["many chunks"]
            print(f"{kind}: one batch {one:.2f} ms, many chunks {many:.2f} ms (x{many / one:.2f})")
    load = Path("/proc/loadavg").read_text().split()[:3] if os.path.exists("/proc/loadavg") else []
    sizes = f"--rows {args.rows} --chunks {args.chunks} --queries {args.queries}"
    command = f"python eval/many_chunks.py {sizes} --name {args.name}"
    meta = {"command": command, "load_average": load, "record_batches_on_disk": batches}
    out = Path(__file__).resolve().parent / "results"
    (out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "figures": figures}, indent=2) + "\n")
    lines = [
        f"# Many small input batches: p50 CPU ms per query, {args.rows} rows + {args.chunks} one-row chunks",
        "",
        f"`{command}`; 64-d vectors (HNSW, cosine), BM25, k = 10, interleaved, process CPU time; "
        f"load average {' '.join(load)}. Record batches in the data files: "
        + ", ".join(f"{label} {n}" for label, n in batches.items())
        + ".",
        "",
        "| search | one batch | many chunks | many / one |",
        "|---|--:|--:|--:|",
    ]
    for kind, f in figures.items():
        lines.append(f"| {kind} | {f['one batch p50 ms']:.2f} | {f['many chunks p50 ms']:.2f} | {f['ratio']:.2f} |")
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
