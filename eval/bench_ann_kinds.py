#!/usr/bin/env python
"""Vector index kinds side by side: float HNSW, int8 HNSW, IVF-PQ, IVF-RaBitQ (all rescored exactly
but the float one) and LanceDB's IVF-PQ, on one synthetic corpus in one run.

The corpus is ``--rows`` x 384 unit vectors drawn as in ``eval/bench_search.py`` (100 Gaussian
clusters, each spread in its own random 32-d subspace, isotropic noise 0.2), generated batch by
batch and streamed into the table (``Table.add`` of a generator: never the whole corpus in
memory). Queries are corpus rows plus noise of norm ~0.5; the ground truth is an exact blocked
scan. Every step runs in a fresh subprocess, so each figure is that process's own:

* ``ingest``: streaming the corpus into a hybrid table (seconds, peak RSS);
* ``build`` per kind: ``create_vector_index(kind=..., target_recall=0.95)`` (seconds without
  the tuning, tuning seconds, peak RSS, bytes on disk, the tuned settings);
* ``serve`` per kind: open the table, ``--queries`` vector searches (k = 10) and as many filtered
  to 1% of the rows; p50 / p95, recall@10 against the exact truth, and the process's RSS after
  them (total, anonymous, file-backed), and the RSS the index added (after minus before the
  first search);
* LanceDB: the same vectors written to a LanceDB table, ``IvfPq(distance_type="cosine")`` at its
  defaults, searched with ``nprobes=20, refine_factor=10`` (the issue's setting).

    nice -n 10 python eval/bench_ann_kinds.py --rows 200000 [--kinds hnsw,hnsw_int8,ivf_pq,ivf_rabitq,lance]
    nice -n 10 python eval/bench_ann_kinds.py --rows 1000000 --work <scratch> --name ann_kinds_1m

At a million rows and more, pass ``--work``: the queries with their exact truth, the ingested hybrid
table and the LanceDB table are kept there and reused by a later run with the same ``--rows``,
``--queries`` and ``--seed`` (so kinds can be run one call at a time). Nothing ever holds the corpus:
the generator, the truth scan, both ingests and every build go batch by batch. The report is
rewritten after each kind, so an interrupted run keeps what it measured.

Writes ``eval/results/ann_kinds.json`` and ``.md`` (``--name`` changes the stem).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "eval"))
from bench.search_data import pseudo_words, zipf_law  # noqa: E402

DIM, K, BATCH = 384, 10, 50_000
CLUSTERS, LATENT, SPREAD, ISO, QUERY_NOISE = 100, 32, 1.0, 0.2, 0.5
KINDS = ("hnsw", "hnsw_int8", "ivf_pq", "ivf_rabitq")


def batches(rows: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first id, unit vectors) batch by batch; batch b depends only on (seed, b)."""
    geo = np.random.default_rng([seed, 2])
    centres = geo.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    bases = geo.standard_normal((CLUSTERS, LATENT, DIM), dtype=np.float32) / np.sqrt(LATENT)
    for b, start in enumerate(range(0, rows, BATCH)):
        n = min(BATCH, rows - start)
        rng = np.random.default_rng([seed, 3, b])
        assign = rng.integers(0, CLUSTERS, size=n)
        z = rng.standard_normal((n, LATENT), dtype=np.float32)
        x = rng.standard_normal((n, DIM), dtype=np.float32) * ISO
        for c in np.unique(assign).tolist():
            members = assign == c
            x[members] += centres[c] + (z[members] @ bases[c]) * SPREAD
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield start, x.astype(np.float32)


VOCAB, WORDS, ZIPF = 30_000, 12, 1.0


def vocabulary(seed: int) -> pa.Array:
    """`VOCAB` distinct lowercase pseudo-words of 2 to 12 letters (fixed by the seed)."""
    return pa.array(pseudo_words(np.random.default_rng([seed, 1]), VOCAB))


def word_ranks(seed: int, b: int, n: int) -> np.ndarray:
    """(n, `WORDS`) vocabulary ranks of batch b's texts, Zipf(`ZIPF`) distributed; depends only on (seed, b)."""
    _, cdf = zipf_law(VOCAB, ZIPF)
    rng = np.random.default_rng([seed, 5, b])
    return np.searchsorted(cdf, rng.random((n, WORDS)), side="right").astype(np.int32)


def texts(vocab: pa.Array, ranks: np.ndarray) -> pa.Array:
    """One string a row: its words joined by spaces (Arrow kernels, no Python loop over rows)."""
    import pyarrow.compute as pc

    n, w = ranks.shape
    words = vocab.take(pa.array(ranks.ravel()))
    lists = pa.ListArray.from_arrays(pa.array(np.arange(0, n * w + 1, w, dtype=np.int32)), words)
    return pc.binary_join(lists, " ")


def record_batches(rows: int, seed: int, text: bool = False) -> Iterator[pa.RecordBatch]:
    vocab = vocabulary(seed) if text else None
    for b, (start, x) in enumerate(batches(rows, seed)):
        ids = np.arange(start, start + len(x), dtype=np.int64)
        cols = {
            "id": pa.array(ids),
            "category": pa.array((ids * 7919) % 100),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), DIM),
        }  # fmt: skip
        if vocab is not None:
            cols["text"] = texts(vocab, word_ranks(seed, b, len(x)))
        yield pa.record_batch(cols)


def query_texts(rows: int, nq: int, seed: int) -> list[str]:
    """Each query's text: two distinct words of the text of the row its vector was drawn from."""
    picks = np.sort(np.random.default_rng([seed, 4]).choice(rows, size=nq, replace=False))  # as queries_and_truth
    vocab = vocabulary(seed).to_pylist()
    rng = np.random.default_rng([seed, 6])
    out = []
    for b in np.unique(picks // BATCH).tolist():
        n = min(BATCH, rows - b * BATCH)
        ranks = word_ranks(seed, b, n)
        for p in picks[picks // BATCH == b].tolist():
            words = list(dict.fromkeys(vocab[r] for r in ranks[p - b * BATCH].tolist()))
            out.append(" ".join(rng.choice(words, size=min(2, len(words)), replace=False).tolist()))
    return out


def _top(s: np.ndarray, ids: np.ndarray, best: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The K best of a batch's scores `s` (nq, n; columns are `ids`) merged with the K best so far."""
    if s.shape[1] > K:
        part = np.argpartition(s, -K, axis=1)[:, -K:]  # the K largest, unordered: O(n) a row, not a sort
        s, cand = np.take_along_axis(s, part, 1), ids[part]
    else:
        cand = np.broadcast_to(ids, s.shape)
    all_s = np.concatenate([best[0], s], axis=1)
    all_i = np.concatenate([best[1], cand], axis=1)
    top = np.argsort(-all_s, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)


def picked_rows(rows: int, seed: int, picks: np.ndarray) -> np.ndarray:
    """Rows `picks` (sorted) of the corpus as `batches` makes them (equal to float rounding), drawing each
    batch's random numbers but composing only the picked rows: no pass of the cluster loop."""
    geo = np.random.default_rng([seed, 2])
    centres = geo.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    bases = geo.standard_normal((CLUSTERS, LATENT, DIM), dtype=np.float32) / np.sqrt(LATENT)
    out = np.empty((len(picks), DIM), np.float32)
    for b in np.unique(picks // BATCH).tolist():
        start = b * BATCH
        n = min(BATCH, rows - start)
        rng = np.random.default_rng([seed, 3, b])
        assign = rng.integers(0, CLUSTERS, size=n)
        z = rng.standard_normal((n, LATENT), dtype=np.float32)
        x = rng.standard_normal((n, DIM), dtype=np.float32) * ISO
        inside = np.flatnonzero(picks // BATCH == b)
        for i in inside.tolist():
            r, c = int(picks[i]) - start, int(assign[int(picks[i]) - start])
            out[i] = x[r] + (centres[c] + (z[r] @ bases[c]) * SPREAD)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def queries_and_truth(rows: int, nq: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries (corpus rows + noise), their exact top-10 ids, and their 1%-filter top-10 ids (category = c)."""
    rng = np.random.default_rng([seed, 4])
    picks = np.sort(rng.choice(rows, size=nq, replace=False))
    q = picked_rows(rows, seed, picks)
    q += rng.standard_normal((nq, DIM), dtype=np.float32) * (QUERY_NOISE / np.sqrt(DIM))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    best = (np.full((nq, K), -np.inf, np.float32), np.zeros((nq, K), np.int64))
    sizes = [len(range(c, nq, 100)) for c in range(100)]  # query i filters to category i % 100
    best_1pct = [(np.full((m, K), -np.inf, np.float32), np.zeros((m, K), np.int64)) for m in sizes]
    for start, x in batches(rows, seed):
        ids = np.arange(start, start + len(x))
        sims = q @ x.T
        best = _top(sims, ids, best)
        category = (ids * 7919) % 100
        for c in range(100):  # query i filters to category i % 100: its rows' columns only
            cols = np.flatnonzero(category == c)
            best_1pct[c] = _top(sims[c::100][:, cols], ids[cols], best_1pct[c])
    truth_1pct = np.empty((nq, K), np.int64)
    for c in range(100):
        truth_1pct[c::100] = best_1pct[c][1]
    return q, best[1], truth_1pct


def rss() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(line.split()[1]) * 1024
    return out


def load() -> list[float]:
    """The machine's 1, 5 and 15-minute load averages (other jobs share its cores)."""
    return [round(v, 2) for v in os.getloadavg()]


def peak_rss() -> int:
    """This process's peak RSS (VmHWM: ru_maxrss would carry the parent's peak across exec)."""
    return rss()["VmHWM"]


# -- child steps ----------------------------------------------------------------------------------


def step_ingest(a: argparse.Namespace) -> dict[str, Any]:
    import hybrid

    t0 = time.perf_counter()
    db = hybrid.connect(a.work / "hybrid", upkeep=None)
    # a generator of record batches: streamed to disk batch by batch, never the whole corpus in memory
    t = db.create_table("docs", record_batches(a.rows, a.seed, a.text))
    seconds, cpu = time.perf_counter() - t0, time.process_time()
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss": peak_rss(), "rows": t.count_rows(), "load": load()}


def step_text_build(a: argparse.Namespace) -> dict[str, Any]:
    """The full-text index over the generated ``text`` column (tantivy BM25, English analysis)."""
    import hybrid

    t = hybrid.connect(a.work / "hybrid", upkeep=None).open_table("docs")
    t0, c0 = time.perf_counter(), time.process_time()
    t.create_fts_index("text", language="en", replace=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = next(
        s
        for s in t.index_stats()
        if s.get("kind", s.get("type")) in ("fts", "fulltext") or "text" in str(s.get("columns"))
    )
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss": peak_rss(), "load": load(),
            "disk_bytes": stats.get("disk_bytes")}  # fmt: skip


def step_build(a: argparse.Namespace) -> dict[str, Any]:
    import hybrid
    from hybrid.index import ann_kinds

    t = hybrid.connect(a.work / "hybrid", upkeep=None).open_table("docs")
    t0, c0 = time.perf_counter(), time.process_time()
    auto = ann_kinds.choose_kind(t.count_rows(), DIM, 16, ann_kinds.available_memory()).to_dict()
    t.create_vector_index("vector", kind=a.kind, target_recall=a.target_recall, replace=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = next(s for s in t.index_stats() if "vector" in str(s.get("columns")) or "nprobe" in s or "ef_search" in s)
    return {
        "seconds": seconds, "cpu_seconds": cpu, "tuning_seconds": stats.get("tuning_seconds"),
        "peak_rss": peak_rss(), "load": load(), "auto_would_pick": auto,
        "stats": {k: v for k, v in stats.items() if k not in ("columns",)},
    }  # fmt: skip


def _timed(search: Any, queries: np.ndarray, filtered: bool) -> tuple[list[list[int]], list[float], list[float]]:
    """Ids found per query, wall ms per query, CPU ms per query (every thread of the process)."""
    found, ms, cpu = [], [], []
    for i, q in enumerate(queries):
        c0, t0 = time.process_time(), time.perf_counter()
        ids = search(q, int(i % 100) if filtered else None)
        ms.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
        found.append(ids)
    return found, ms, cpu


def _summary(found: list[list[int]], ms: list[float], cpu: list[float], truth: np.ndarray) -> dict[str, float]:
    recall = float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth)]))
    return {
        "recall": recall, "p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
        "cpu_p50_ms": float(np.median(cpu)),
    }  # fmt: skip


def step_serve(a: argparse.Namespace) -> dict[str, Any]:
    data = np.load(a.work / "queries.npz")
    queries = data["queries"]
    if a.kind == "lance":
        import lancedb

        tbl = lancedb.connect(str(a.work / "lance")).open_table("docs")

        def search(q: np.ndarray, cat: int | None) -> list[int]:
            s = tbl.search(q).distance_type("cosine").nprobes(20).refine_factor(10).limit(K).select(["id"])
            if cat is not None:
                s = s.where(f"category = {cat}", prefilter=True)
            return s.to_arrow().column("id").to_pylist()
    else:
        import hybrid
        from hybrid.index import gather

        gather.READ_ROWS = a.rescore_read == "pread"
        t = hybrid.connect(a.work / "hybrid", upkeep=None).open_table("docs")

        def search(q: np.ndarray, cat: int | None) -> list[int]:
            s = t.search(q, vector_column="vector").select(["id"]).limit(K)
            if cat is not None:
                s = s.where(f"category = {cat}")
            return s.to_arrow().column("id").to_pylist()

    before = rss()
    _timed(search, queries[:20], False)  # warm-up: loads the index
    out: dict[str, Any] = {"rss_before_search": before}
    nf = a.filtered_queries or len(queries)
    for name, filtered, truth in (("vector", False, data["truth"]), ("filtered_1pct", True, data["truth_1pct"][:nf])):
        out[name] = _summary(*_timed(search, queries[:nf] if filtered else queries, filtered), truth)
        if not filtered:  # what serving vector search holds, before the filtered searches read 1% of every block
            out["rss_vector"] = rss()
            if a.kind in KINDS[1:]:
                out["reads_ab"] = _reads_ab(search, queries, data["truth"])
    out["rss"] = rss()
    out["index_rss"] = out["rss"]["VmRSS"] - before["VmRSS"]
    out["load"] = load()
    out["rescore_read"] = a.rescore_read
    return out


def step_hybrid_serve(a: argparse.Namespace) -> dict[str, Any]:
    """Hybrid queries (the query's two words + its vector, fused) on the table with both indexes."""
    import hybrid

    data = np.load(a.work / "queries.npz")
    queries, words = data["queries"], data["texts"].tolist()
    t = hybrid.connect(a.work / "hybrid", upkeep=None).open_table("docs")

    def search(i: int, cat: int | None) -> list[int]:
        s = t.search(words[i], query_type="hybrid").vector(queries[i]).select(["id"]).limit(K)
        if cat is not None:
            s = s.where(f"category = {cat}")
        return s.to_arrow().column("id").to_pylist()

    before = rss()
    _timed(search, np.arange(20), False)  # warm-up: loads both indexes
    out: dict[str, Any] = {"rss_before_search": before}
    for name, filtered in (("hybrid", False), ("hybrid_filtered_1pct", True)):
        found, ms, cpu = _timed(
            search, np.arange(a.filtered_queries or len(queries) if filtered else len(queries)), filtered
        )
        out[name] = {
            "p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)), "cpu_p50_ms": float(np.median(cpu)),
            "mean_hits": float(np.mean([len(f) for f in found])), "queries": len(found),
        }  # fmt: skip
    out["rss"] = rss()
    out["load"] = load()
    return out


def _reads_ab(search: Any, queries: np.ndarray, truth: np.ndarray, rounds: int = 3) -> dict[str, Any]:
    """The tuned read count (the best ``reads x k`` candidates by the row codes read as floats) against
    reading every candidate (the one-stage rescore), alternating passes over the queries in this process."""
    from hybrid.index import rescore

    tuned = rescore.read_count
    runs: dict[str, list[dict[str, float]]] = {"tuned": [], "all": []}
    try:
        for r in range(rounds):
            for which in ("tuned", "all") if r % 2 == 0 else ("all", "tuned"):
                rescore.read_count = tuned if which == "tuned" else (lambda k, reads, candidates: candidates)
                runs[which].append(_summary(*_timed(search, queries, False), truth))
    finally:
        rescore.read_count = tuned
    return {
        w: {"recall": r[0]["recall"], "cpu_p50_ms": float(np.median([x["cpu_p50_ms"] for x in r])),
            "p50_ms": float(np.median([x["p50_ms"] for x in r])), "rounds": r}
        for w, r in runs.items()
    }  # fmt: skip


def step_lance_build(a: argparse.Namespace) -> dict[str, Any]:
    import lancedb
    from lancedb.index import IvfPq

    db = lancedb.connect(str(a.work / "lance"))
    ingest = None
    try:
        tbl = db.open_table("docs")
        if tbl.count_rows() != a.rows:
            raise ValueError("a table of another size")
    except Exception:  # not there yet (or another size): stream it in, one batch at a time
        gen = record_batches(a.rows, a.seed, a.text)
        first = next(gen)
        reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], gen))
        t0 = time.perf_counter()
        tbl = db.create_table("docs", reader, mode="overwrite")
        ingest = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    tbl.create_index("vector", config=IvfPq(distance_type="cosine"), replace=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "cpu_seconds": cpu, "ingest_seconds": ingest, "peak_rss": peak_rss(), "load": load()}


STEPS = {
    "ingest": step_ingest, "build": step_build, "serve": step_serve, "lance-build": step_lance_build,
    "text-build": step_text_build, "hybrid-serve": step_hybrid_serve,
}  # fmt: skip


def child(step: str, a: argparse.Namespace, kind: str = "") -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--step", step, "--kind", kind, "--work", str(a.work), "--rows", str(a.rows)]
    cmd += ["--seed", str(a.seed), "--target-recall", str(a.target_recall), "--rescore-read", a.rescore_read]
    cmd += ["--text"] if a.text else []
    cmd += ["--filtered-queries", str(a.filtered_queries)] if a.filtered_queries else []
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"step {step} {kind} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {step} {kind}: {time.perf_counter() - t0:.0f} s", flush=True)
    return result


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join((*KINDS, "lance")))
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one, removed)")
    ap.add_argument("--name", default="ann_kinds")
    ap.add_argument(
        "--merge", nargs="+", type=Path, default=None,
        help="write one report from the json reports of runs over the same --work table (kinds side by side)",
    )  # fmt: skip
    ap.add_argument("--serve-only", action="store_true", help="search the index an earlier run left (one kind)")
    ap.add_argument(
        "--rescore-read", choices=("pread", "map"), default="pread",
        help="how rescoring reads the candidates' vectors: pread (the default) or the table's memory map",
    )  # fmt: skip
    ap.add_argument(
        "--text", action="store_true",
        help="give each row a short generated text (Zipf words), build its full-text index and time hybrid queries",
    )  # fmt: skip
    ap.add_argument(
        "--filtered-queries", type=int, default=None,
        help="time the 1%%-filtered searches on the first N queries only (default: all; at 10M each reads ~100k rows)",
    )  # fmt: skip
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.step:
        print(json.dumps(STEPS[a.step](a), default=str))
        return
    if a.merge:
        reports = [json.loads(path.read_text()) for path in a.merge]
        merged = dict(reports[0])
        merged["kinds"] = {}
        for rep in reports:  # a later report's build or serve replaces an earlier one's, kind by kind
            for kind, r in rep["kinds"].items():
                merged["kinds"][kind] = {**merged["kinds"].get(kind, {}), **r}
        merged["merged_from"] = [path.name for path in a.merge]
        write(merged, a.name)
        return
    scratch = a.work is None
    a.work = Path(tempfile.mkdtemp(prefix="ann-kinds-")) if scratch else a.work
    a.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        report: dict[str, Any] = {"rows": a.rows, "dim": DIM, "queries": a.queries}
        report.update(prepared(a))
        kinds: dict[str, Any] = {}
        report["kinds"] = kinds
        report["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "shared": True}
        for kind in a.kinds.split(","):
            if a.serve_only:  # the index built by an earlier run stays in the work table: search it again
                kinds[kind] = {"serve": child("serve", a, kind)}
            elif kind == "lance":
                kinds[kind] = {"build": child("lance-build", a), "serve": child("serve", a, "lance")}
                kinds[kind]["build"]["index_bytes"] = folder_bytes(a.work / "lance" / "docs.lance" / "_indices")
            else:
                kinds[kind] = {"build": child("build", a, kind), "serve": child("serve", a, kind)}
                write(report, a.name)
                if a.text:  # the full-text index after the vector figures, so a slow text build loses none of them
                    report.setdefault("text_build", child("text-build", a))
                    write(report, a.name)
                    kinds[kind]["hybrid"] = child("hybrid-serve", a, kind)
            report["total_seconds"] = time.perf_counter() - started
            if a.serve_only:  # searches only: --merge it after the run that built the index
                (REPO / "eval" / "results" / f"{a.name}.json").write_text(json.dumps(report, indent=2) + "\n")
            else:
                write(report, a.name)  # after every kind: an interrupted run keeps what it measured
    finally:
        if scratch:
            shutil.rmtree(a.work, ignore_errors=True)


def prepared(a: argparse.Namespace) -> dict[str, Any]:
    """The queries with their exact truth and the ingested hybrid table in ``a.work``: made once, then
    reused while rows, queries and seed are the same (a record of how they were made is kept beside)."""
    record = a.work / "prepared.json"
    key: dict[str, Any] = {"rows": a.rows, "queries": a.queries, "seed": a.seed, "dim": DIM}
    if a.text:
        key["text"] = {"vocab": VOCAB, "words": WORDS, "zipf": ZIPF}
    if record.exists():
        done = json.loads(record.read_text())
        if done.get("key") == key and (a.work / "queries.npz").exists() and (a.work / "hybrid").exists():
            print(f"{a.rows} x {DIM}: reusing the queries, truth and table in the work folder", flush=True)
            return dict(done["report"])
    shutil.rmtree(a.work / "hybrid", ignore_errors=True)
    shutil.rmtree(a.work / "lance", ignore_errors=True)
    print(f"{a.rows} x {DIM}: queries and exact truth, beside the streaming ingest", flush=True)
    with ThreadPoolExecutor(1) as pool:  # the ingest runs in its own process while this one scans for the truth
        ingest = pool.submit(child, "ingest", a)
        t0, c0 = time.perf_counter(), time.process_time()
        q, truth, truth_1pct = queries_and_truth(a.rows, a.queries, a.seed)
        extra = {"texts": np.array(query_texts(a.rows, a.queries, a.seed))} if a.text else {}
        np.savez(a.work / "queries.npz", queries=q, truth=truth, truth_1pct=truth_1pct, **extra)
        out: dict[str, Any] = {"truth_seconds": time.perf_counter() - t0, "truth_cpu_seconds": time.process_time() - c0}
        print(f"  truth: {out['truth_seconds']:.0f} s", flush=True)
        out["ingest"] = ingest.result()
    out["table_bytes"] = folder_bytes(a.work / "hybrid")
    record.write_text(json.dumps({"key": key, "report": out}, indent=2) + "\n")
    return out


def anon_added(serve: dict[str, Any]) -> int:
    """Anonymous (heap) memory the searches added: the loaded index, caches; not file pages the OS may drop."""
    return int(serve["rss"]["RssAnon"] - serve["rss_before_search"]["RssAnon"])


def file_added(serve: dict[str, Any]) -> int:
    """File-backed pages the searches touched: memory-mapped index files, table vectors, libraries."""
    return int(serve["rss"]["RssFile"] - serve["rss_before_search"]["RssFile"])


def _cpu_text(r: dict[str, float]) -> str:
    return f"{r['cpu_p50_ms']:.2f}" if "cpu_p50_ms" in r else "n/a"


def _cpu_ratios(s: dict[str, Any], base: dict[str, Any], lance: dict[str, Any]) -> str:
    if not all("cpu_p50_ms" in r["vector"] for r in (s, base, lance)):
        return ""
    cpu = s["vector"]["cpu_p50_ms"]
    return (
        f"; CPU p50 {cpu / base['vector']['cpu_p50_ms']:.2f}x float HNSW's,"
        f" {cpu / lance['vector']['cpu_p50_ms']:.2f}x LanceDB's"
    )


def _rss_text(r: dict[str, int] | None) -> str:
    mb = 2**20
    return "n/a" if r is None else f"{r['VmRSS'] / mb:.0f} ({r['RssAnon'] / mb:.0f} / {r['RssFile'] / mb:.0f})"


def _text_lines(report: dict[str, Any]) -> list[str]:
    """The full-text build, hybrid search figures and what ``kind="auto"`` would have built, where measured."""
    mb = 2**20
    lines = []
    for kind, r in report["kinds"].items():
        auto = r.get("build", {}).get("auto_would_pick")
        if auto:
            lines.append(
                f'* `kind="auto"` on this table would build `{auto["picked"]}`: {auto["reason"]} (ran `{kind}`)'
            )
    tb = report.get("text_build")
    if tb:
        lines.append(
            f'* full-text index (`create_fts_index("text", language="en")`, {WORDS} Zipf words a row):'
            f" {tb['seconds']:.0f} s, CPU {tb['cpu_seconds']:.0f} s, peak RSS {tb['peak_rss'] / mb:.0f} MB,"
            f" {(tb.get('disk_bytes') or 0) / mb:.0f} MB on disk (load {tb['load'][0]})"
        )
    for kind, r in report["kinds"].items():
        h = r.get("hybrid")
        if h:
            lines.append(
                f"* hybrid (two of the row's words + its vector, fused), {kind}: p50 {h['hybrid']['p50_ms']:.2f} ms"
                f" (CPU {h['hybrid']['cpu_p50_ms']:.2f}), p95 {h['hybrid']['p95_ms']:.2f}; filtered to 1%: p50"
                f" {h['hybrid_filtered_1pct']['p50_ms']:.2f} ms (CPU {h['hybrid_filtered_1pct']['cpu_p50_ms']:.2f});"
                f" serving RSS {_rss_text(h['rss'])} MB (load {h['load'][0]})"
            )
    return ["", *lines] if lines else []


def write(report: dict[str, Any], name: str) -> None:
    out = REPO / "eval" / "results"
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    kinds = report["kinds"]
    base = kinds.get("hnsw")
    lance = kinds.get("lance")
    mb = 2**20
    lines = [
        f"# Vector index kinds: {report['rows']:,} x {report['dim']} clustered vectors",
        "",
        "`python eval/bench_ann_kinds.py --rows " + f"{report['rows']}` on a shared 2-core machine (other jobs ran:",
        "timings are noisy; ratios are within this one run). Each step ran in its own process.",
        "Serving RSS is the search process's after the searches; what searching added splits into anonymous",
        "memory (the loaded index and caches) and file-backed pages (memory-mapped index files, the table's",
        "vectors read by rescoring and filtered exact search, shared libraries), which the OS can drop.",
        f"Streaming ingest: {report['ingest']['seconds']:.0f} s, peak RSS {report['ingest']['peak_rss'] / mb:.0f} MB;"
        f" table {report['table_bytes'] / mb:.0f} MB on disk. {report['queries']} queries, k = 10, exact truth.",
        "",
        "| kind | build s (+tuning) | build peak RSS MB | index on disk MB | settings | recall@10 | p50 ms | p95 ms"
        " | CPU p50 ms"
        " | 1%-filter recall / p50 ms | serving RSS MB (anon / file) | RSS added by searching MB (anon / file)"
        " | RSS after the unfiltered searches MB (anon / file) | load average (build / serve) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in kinds.items():
        b, s = r["build"], r["serve"]
        st = b.get("stats", {})
        tune = b.get("tuning_seconds") or 0.0
        disk = st.get("disk_bytes", b.get("index_bytes", 0))
        if kind == "lance":
            settings = "IvfPq defaults, nprobes 20, refine 10"
        else:
            level = "ef" if kind.startswith("hnsw") else "nprobe"
            settings = f"{level} {st.get('ef_search', st.get('nprobe'))}" + (
                f", rescore {st['rescore']:g}, {st.get('codes', 'int8')}" if "rescore" in st else ""
            )
            if st.get("reads") is not None:
                settings += f", reads {st['reads']:g}"
            if st.get("code_bits") is not None:
                settings += f", {st['code_bits']}-bit row codes"
            settings += f"; in RAM {st.get('ram_bytes', 0) / mb:.0f} MB"
        v, f = s["vector"], s["filtered_1pct"]
        lines.append(
            f"| {kind} | {b['seconds'] - tune:.0f} (+{tune:.0f})"
            + (f", CPU {b['cpu_seconds']:.0f} in all" if "cpu_seconds" in b else "")
            + f" | {b['peak_rss'] / mb:.0f} | {disk / mb:.0f}"
            f" | {settings}"
            f" | {v['recall']:.3f} | {v['p50_ms']:.2f} | {v['p95_ms']:.2f} | {_cpu_text(v)}"
            f" | {f['recall']:.3f} / {f['p50_ms']:.2f}"
            f" | {s['rss']['VmRSS'] / mb:.0f} ({s['rss']['RssAnon'] / mb:.0f} / {s['rss']['RssFile'] / mb:.0f})"
            f" | {s['index_rss'] / mb:.0f} ({anon_added(s) / mb:.0f} / {file_added(s) / mb:.0f})"
            f" | {_rss_text(s.get('rss_vector'))} | {b.get('load', ['?'])[0]} / {s.get('load', ['?'])[0]} |"
        )
    lines += _text_lines(report)
    ab = {kind: r["serve"]["reads_ab"] for kind, r in kinds.items() if "reads_ab" in r.get("serve", {})}
    if ab:
        lines += ["", "Tuned reads against reading every candidate (alternating passes in one process):", ""]
        for kind, x in ab.items():
            cpu = x["tuned"]["cpu_p50_ms"]
            floor = f", {cpu / base['serve']['vector']['cpu_p50_ms']:.2f}x the float HNSW's" if base else ""
            lines.append(
                f"* {kind}: CPU p50 {x['tuned']['cpu_p50_ms']:.2f} vs {x['all']['cpu_p50_ms']:.2f} ms"
                f" ({cpu / x['all']['cpu_p50_ms']:.2f}x{floor}); wall p50 {x['tuned']['p50_ms']:.2f}"
                f" vs {x['all']['p50_ms']:.2f} ms; recall {x['tuned']['recall']:.3f} vs {x['all']['recall']:.3f}"
            )
    if base:
        lines += ["", "Against the float HNSW in this run (vector search, CPU p50 of the main pass; RAM per row):", ""]
        for kind, r in kinds.items():
            if kind in ("hnsw", "lance"):
                continue
            cpu, st = r["serve"]["vector"]["cpu_p50_ms"], r["build"].get("stats", {})
            lines.append(
                f"* {kind}: {cpu:.2f} ms = {cpu / base['serve']['vector']['cpu_p50_ms']:.2f}x [<= 2];"
                f" index RAM {st.get('ram_bytes', 0) / report['rows']:.0f} B a row"
                f" (float HNSW {base['build'].get('stats', {}).get('ram_bytes', 0) / report['rows']:.0f} B)"
            )
    if base and lance:
        lines += ["", "Ratios (targets from issue 19 in brackets):", ""]
        for kind, r in kinds.items():
            if kind in ("hnsw", "lance"):
                continue
            b, s = r["build"], r["serve"]
            tune = b.get("tuning_seconds") or 0.0
            vec_rss = ""
            if s.get("rss_vector") and base["serve"].get("rss_vector"):
                vec_rss = (
                    f" serving RSS after the unfiltered searches"
                    f" {s['rss_vector']['VmRSS'] / base['serve']['rss_vector']['VmRSS']:.2f}x float HNSW's"
                    f" (anonymous {s['rss_vector']['RssAnon'] / base['serve']['rss_vector']['RssAnon']:.2f}x);"
                )
            lines.append(
                f"* {kind}: recall {s['vector']['recall']:.3f} [>= 0.95];{vec_rss}"
                f" serving RSS {s['rss']['VmRSS'] / base['serve']['rss']['VmRSS']:.2f}x float HNSW's, RSS added by"
                f" searching {s['index_rss'] / max(base['serve']['index_rss'], 1):.2f}x, anonymous RSS added"
                f" {anon_added(s) / max(anon_added(base['serve']), 1):.2f}x [<= 0.3];"
                f" build {(b['seconds'] - tune) / lance['build']['seconds']:.2f}x LanceDB IVF-PQ's [<= 1]"
                + (
                    f" (CPU with the tuning {b['cpu_seconds'] / lance['build']['cpu_seconds']:.2f}x);"
                    if "cpu_seconds" in b and "cpu_seconds" in lance["build"]
                    else ";"
                )
                + f" p50 {s['vector']['p50_ms'] / base['serve']['vector']['p50_ms']:.2f}x float HNSW's [<= 2],"
                f" {s['vector']['p50_ms'] / lance['serve']['vector']['p50_ms']:.2f}x LanceDB's [<= 0.5]"
                + _cpu_ratios(s, base["serve"], lance["serve"])
            )
    lines.append("")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
