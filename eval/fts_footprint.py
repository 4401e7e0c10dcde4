"""What a full-text index holds on disk, with and without term positions, beside LanceDB's.

On the search benchmark's text (``eval/bench/search_data.py``: Zipf words, ~1,500 B per doc, an int
``category`` with a scalar index, which hybrid's full-text index stores as a filter field), it builds

* hybrid ``create_fts_index("text", positions=True)`` (the default) and ``positions=False``;
* LanceDB's native FTS with ``with_position=True`` and ``with_position=False`` (its default),

and reports each index's bytes by file kind (tantivy: ``.idx`` postings with term frequencies,
``.pos`` positions, ``.term`` term dictionary, ``.store`` document store, ``.fieldnorm``, ``.fast``;
``rowids.npy``: the index's row ids), the build seconds, and the p50 of a BM25 query (2-4 words) on
each hybrid variant. Example::

    nice -n 10 python eval/fts_footprint.py --docs 100000

Writes ``eval/results/<name>.md`` and ``.json``.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `bench` package next to this script
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # `hybrid` from this checkout

from bench.frame import write_results  # noqa: E402
from bench.search_data import Corpus  # noqa: E402

import hybrid  # noqa: E402
from hybrid.index.catalog import entries  # noqa: E402


def corpus_table(n: int, seed: int) -> tuple[pa.Table, list[str]]:
    """`n` docs of the search benchmark's text and category, and 200 queries of 2-4 of their words."""
    args = argparse.Namespace(
        docs=n, seed=seed, text_bytes=1500, vocab=30_000, zipf=1.0, clusters=100, latent_dim=32,
        cluster_spread=1.0, iso_noise=0.2, query_noise=0.5,
    )  # fmt: skip
    corpus = Corpus(args)
    rng = np.random.default_rng([seed, 3])
    text = corpus._texts(rng, n)
    category = rng.integers(0, 100, size=n).astype(np.int32)
    table = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), "text": text, "category": pa.array(category)})
    qrng = np.random.default_rng([seed, 4])
    queries = []
    for doc in qrng.choice(n, size=200, replace=False).tolist():
        words = str(text[doc]).split()
        queries.append(" ".join(qrng.choice(words, size=int(qrng.integers(2, 5)), replace=False).tolist()))
    return table, queries


def by_kind(folder: Path) -> dict[str, int]:
    """Bytes under `folder` by file kind (suffix, or name for files without one)."""
    sizes: Counter[str] = Counter()
    for f in folder.rglob("*"):
        if f.is_file():
            sizes[f.suffix or f.name] += f.stat().st_size
    return dict(sizes.most_common())


def hybrid_fts(root: Path, data: pa.Table, queries: list[str], positions: bool) -> dict:
    t = hybrid.connect(root).create_table("t", data)
    t.create_scalar_index("category")  # as the search benchmark: the FTS index then stores it as a filter field
    start = time.perf_counter()
    t.create_fts_index("text", positions=positions)
    seconds = time.perf_counter() - start
    (entry,) = [e for e in entries(t.snapshot()) if e.kind == "fts"]
    parts = by_kind(t.path / entry.path)
    for q in queries[:10]:
        t.search(q).limit(10).select(["id"]).to_arrow()
    times = []
    for q in queries:
        s = time.perf_counter()
        t.search(q).limit(10).select(["id"]).to_arrow()
        times.append((time.perf_counter() - s) * 1e3)
    return {"build_s": seconds, "bytes": sum(parts.values()), "parts": parts, "p50_ms": float(np.median(times))}


def lance_fts(root: Path, data: pa.Table, with_position: bool) -> dict:
    import lancedb

    t = lancedb.connect(root).create_table("t", data)
    before = set((root / "t.lance" / "_indices").glob("*")) if (root / "t.lance" / "_indices").exists() else set()
    start = time.perf_counter()
    t.create_fts_index("text", with_position=with_position)
    seconds = time.perf_counter() - start
    new = set((root / "t.lance" / "_indices").glob("*")) - before
    parts: Counter[str] = Counter()
    for d in new:
        parts.update(by_kind(d))
    return {"build_s": seconds, "bytes": sum(parts.values()), "parts": dict(parts.most_common())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--name", default="fts_footprint")
    ap.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    data, queries = corpus_table(args.docs, args.seed)
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, positions in (("hybrid positions=True", True), ("hybrid positions=False", False)):
            runs[label] = hybrid_fts(Path(tmp) / label.replace(" ", "_"), data, queries, positions)
            print(label, json.dumps(runs[label]), flush=True)
        for label, with_position in (("LanceDB with_position=True", True), ("LanceDB with_position=False", False)):
            runs[label] = lance_fts(Path(tmp) / label.replace(" ", "_"), data, with_position)
            print(label, json.dumps(runs[label]), flush=True)
    report = {
        "command": "python eval/fts_footprint.py " + " ".join(sys.argv[1:]),
        "docs": args.docs,
        "text_mb": data.column("text").nbytes / 1e6,
        "runs": runs,
        "load_average": os.getloadavg(),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}",
    }
    write_results(Path(args.results_dir), args.name, report, render(report))
    print(render(report))


def render(r: dict) -> str:
    lines = [
        "# Full-text index footprint, with and without term positions",
        "",
        f"Generated by `{r['command']}`; {r['machine']}; load average "
        + " / ".join(f"{x:.1f}" for x in r["load_average"])
        + f". {r['docs']:,} docs of the search benchmark's text ({r['text_mb']:.1f} MB), `category` stored as"
        " a filter field in hybrid's index. Build seconds are loaded figures.",
        "",
        "| index | MB | build s | BM25 query p50 ms | largest parts (MB) |",
        "|---|--:|--:|--:|---|",
    ]
    for label, run in r["runs"].items():
        parts = ", ".join(f"{k} {v / 1e6:.2f}" for k, v in list(run["parts"].items())[:6])
        p50 = f"{run['p50_ms']:.2f}" if "p50_ms" in run else ""
        lines.append(f"| {label} | {run['bytes'] / 1e6:.1f} | {run['build_s']:.1f} | {p50} | {parts} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
