#!/usr/bin/env python
"""Language analysis study: does better analysis of the text branch lift BM25 and the default hybrid?

For XQuAD-R de, es, ru and hi (issue 23: default hybrid >= the better branch + 0.02 on every
language), one table per language with e5-small vectors (the default pipeline's embedder for
text that is not English; cached under --work, keyed by the texts, shared with
``eval/fusion_study.py --e5``), and one BM25 index per analysis candidate:

* ``v2``: the analysis before this study (analyzer version 2, the baseline of every p);
* ``v3``: analyzer version 3 (per-language rules);
* with ``--versions-only``: version 3 against version 4, the library's current default (a second
  field of word pieces, `hybrid.index.analyzer`), the base of every p then being version 3;
* candidates measured and not kept, defined here as a Python step in front of the analyzer
  (German decompounding learned from the corpus, Lucene's full Hindi normaliser, Snowball's
  Hindi stemmer, Spanish accent folding, no stop words, ...).

Each is scored with the default hybrid query (``query_type="hybrid"``, default fusion and
weights, top 100, as ``hybrid eval`` runs it) and with BM25 alone; nDCG@10 and a two-sided
paired randomization test (5,000 trials) of each candidate's per-query values against ``v2``.
English and Chinese analysis is the same in v2 and v3 (checked here on the analyzers' terms).

    python eval/analysis_study.py [--data DIR] [--work DIR] [--languages de,es,ru,hi]

Writes eval/results/analysis_study.md and .json.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench.frame import write_results  # noqa: E402
from fusion_study import _e5, e5_vectors  # noqa: E402
from peer_lancedb import PrecomputedEmbedder, default_data, log  # noqa: E402

import hybrid  # noqa: E402
import hybrid.table  # noqa: E402
from hybrid.eval import evaluate, load_beir, paired_randomization_test  # noqa: E402
from hybrid.index import analyzer as analysis  # noqa: E402
from hybrid.index import hindi  # noqa: E402
from hybrid.index.language import detect_language  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LANGUAGES = ("de", "es", "ru", "hi")
TRIALS = 5_000
K = 100
_WORD = re.compile(r"\w+")

Hook = Callable[[str], str]


@dataclass(frozen=True)
class Candidate:
    """One analysis: the analyzer's options, its version, and an optional Python step in front of it."""

    label: str
    options: dict[str, Any] = field(default_factory=dict)
    version: int = analysis.CURRENT_VERSION
    hook: Callable[[list[str]], Hook] | None = None
    """Built from the corpus's texts (a corpus-learned splitter needs them); None: no extra step."""


# --- candidates that were measured and not kept -------------------------------------------------

_LUCENE_HINDI = str.maketrans(
    {
        "\u0945": "\u0947",
        "\u0946": "\u0947",
        "\u0949": "\u094b",
        "\u094a": "\u094b",
        "\u090d": "\u090f",
        "\u090e": "\u090f",
        "\u0911": "\u0913",
        "\u0912": "\u0913",
        "\u0972": "\u0905",
        "\u0906": "\u0905",
        "\u0908": "\u0907",
        "\u090a": "\u0909",
        "\u0960": "\u090b",
        "\u0961": "\u090c",
        "\u0910": "\u090f",
        "\u0914": "\u0913",
        "\u0940": "\u093f",
        "\u0942": "\u0941",
        "\u0944": "\u0943",
        "\u0963": "\u0962",
        "\u0948": "\u0947",
        "\u094c": "\u094b",
        "\u094d": None,
    }
)


def lucene_hindi(_texts: list[str]) -> Hook:
    """Lucene's Hindi normaliser on top of ours: long and short vowels merged, every virama dropped
    (the light stemmer follows, in the analyzer)."""
    return lambda text: hindi.normalize(text).translate(_LUCENE_HINDI)


def snowball_hindi(_texts: list[str]) -> Hook:
    """Our normalisation, Snowball's Hindi stemmer (PyStemmer) in place of the light one."""
    import Stemmer

    stemmer = Stemmer.Stemmer("hindi")
    return lambda text: hindi.WORD.sub(lambda m: stemmer.stemWord(m.group()), hindi.normalize(text))


HINDI_STOP_WORDS = """
    का की के को में से पर ने तक लिए द्वारा साथ बारे बाद पहले ओर अंदर बाहर ऊपर नीचे सामने
    है हैं था थी थे हो होता होती होते होना हुआ हुई हुए रहा रही रहे गया गई गए
    यह ये वह वे इस इन उस उन इसे उसे इसका इसकी इसके उसका उसकी उसके इनका इनकी इनके उनका उनकी उनके
    मैं हम तुम आप अपना अपनी अपने जो जिस जिन जिसे जिसका जिसकी जिसके कोई कुछ सभी सब
    और या एवं तथा कि लेकिन परंतु किंतु अगर यदि तो भी ही न नहीं
    क्या कौन कौनसा कौनसी किस किसे किसने किसका किसकी किसके किन कब कहां कहाँ कैसे क्यों कितना कितनी कितने
    एक
"""
"""Hindi function words: postpositions, forms of होना and the aspect auxiliaries, pronouns and their
possessives, conjunctions, particles, question words, एक."""


def hindi_stop_words(_texts: list[str]) -> Hook:
    """The function words above dropped before the (normalising, stemming) analyzer sees the text."""
    stops = {hindi.normalize(w) for w in HINDI_STOP_WORDS.split()}
    return lambda text: hindi.WORD.sub(lambda m: "" if m.group() in stops else m.group(), hindi.normalize(text))


LINKS = ("", "s", "es", "n", "en", "e")
"""German linking elements between the parts of a compound (Fugenelemente)."""


def corpus_decompounder(texts: list[str]) -> Hook:
    """Koehn & Knight's frequency-based compound splitting, learned from the corpus itself: a word of
    8+ letters is split in two parts of 4+ letters (with a linking element between) when both parts
    are words of the corpus and the geometric mean of their counts beats the word's own; the parts
    are indexed after the word."""
    counts = Counter(w.lower() for t in texts for w in _WORD.findall(t))
    cache: dict[str, tuple[str, str] | None] = {}

    def split(word: str) -> tuple[str, str] | None:
        if word in cache:
            return cache[word]
        best, score = None, float(counts.get(word, 0))
        if len(word) >= 8 and not word.isdigit():
            for i in range(4, len(word) - 3):
                head = counts.get(word[i:], 0)
                for link in LINKS:
                    if head and word[:i].endswith(link) and i - len(link) >= 4:
                        modifier = counts.get(word[: i - len(link)], 0)
                        if modifier and math.sqrt(modifier * head) > score:
                            best, score = (word[: i - len(link)], word[i:]), math.sqrt(modifier * head)
        cache[word] = best
        return best

    def step(text: str) -> str:
        def word(m: re.Match[str]) -> str:
            parts = split(m.group().lower())
            return m.group() if parts is None else f"{m.group()} {parts[0]} {parts[1]}"

        return _WORD.sub(word, text)

    return step


def stem_truncate(language: str, n: int) -> Callable[[list[str]], Hook]:
    """Snowball stem (PyStemmer), then at most `n` letters: a crude derivational merge (варшав/варшавск)."""

    def build(_texts: list[str]) -> Hook:
        import Stemmer

        stemmer = Stemmer.Stemmer({"ru": "russian", "de": "german", "es": "spanish"}[language])
        return lambda text: _WORD.sub(
            lambda m: m.group() if m.group().isdigit() else stemmer.stemWord(m.group().lower())[:n], text
        )

    return build


def candidates(language: str, versions_only: bool = False) -> list[Candidate]:
    if versions_only:  # version 4's word pieces against version 3, the base of every p
        return [Candidate("v3 (before)", version=3), Candidate("v4 (default: word pieces)")]
    out = [Candidate("v2 (before)", version=2), Candidate("v3", version=3)]
    if language == "hi":
        out += [
            Candidate("v3 without stemming (normalisation only)", {"stem": False}),
            Candidate("v3 with Hindi stop words", hook=hindi_stop_words),
            Candidate("Lucene normaliser (vowel length, virama)", hook=lucene_hindi),
            Candidate("Snowball Hindi stemmer", {"stem": False}, hook=snowball_hindi),
        ]
    if language == "de":
        out += [
            Candidate("decompounding learned from the corpus", hook=corpus_decompounder),
            Candidate("no stop words", {"stop_words": False}),
        ]
    if language == "es":
        out += [
            Candidate("accent folding after stemming", {"ascii_folding": True}),
            Candidate("no stop words", {"stop_words": False}),
        ]
    if language == "ru":
        out += [
            Candidate("Snowball stem, cut to 6 letters", {"stem": False}, hook=stem_truncate("ru", 6)),
            Candidate("no stop words", {"stop_words": False}),
        ]
    return out


# --- the harness ---------------------------------------------------------------------------------

_HOOK: list[Hook | None] = [None]
_prepare = analysis.Analyzer.prepare


def _hooked_prepare(self: analysis.Analyzer, text: str) -> str:
    hook = _HOOK[0]
    return _prepare(self, hook(text) if hook is not None else text)


class _Versioned:
    """Stands in for `Analyzer` inside `Table.create_fts_index`, building the candidate's version."""

    version = analysis.CURRENT_VERSION

    def __call__(self, *args: Any, **kwargs: Any) -> analysis.Analyzer:
        return analysis.Analyzer(*args, **{**kwargs, "version": self.version})


def study_language(args: argparse.Namespace, language: str, with_vectors: bool) -> dict[str, Any]:
    coll = load_beir(args.data / "xquad-r" / language)
    rows, queries = coll.documents(), coll.judged_queries
    db = hybrid.connect(tempfile.mkdtemp(dir=args.work))
    if with_vectors:
        docs, qvecs = e5_vectors(args.work, f"xquad-r/{language}", rows, queries)
        embedder = PrecomputedEmbedder(
            f"analysis-{language}",
            documents={r["content"]: v for r, v in zip(rows, docs)},
            queries={queries[q]: qvecs[q] for q in queries},
            fallback=_e5,  # the calibration's pseudo-queries, embedded once and kept
            show_progress=False,
        )
        table = db.create_table(language, rows, embedding={"vector": ("content", embedder)})
    else:
        table = db.create_table(language, rows)

    def ranked(query_type: str, index: str | None = None) -> dict[str, float]:
        run = {}
        for qid, text in queries.items():
            q = table.search(text, query_type=query_type, vector_column="vector", fts_index=index)  # type: ignore[arg-type]
            ids = q.limit(K).select(["doc_id"]).to_arrow()["doc_id"].to_pylist()
            run[qid] = {d: float(len(ids) - r) for r, d in enumerate(ids)}
        _, per = evaluate(run, coll.qrels, ["nDCG@10"])
        return {q: per[q]["nDCG@10"] for q in coll.qrels}

    out: dict[str, Any] = {"dense": _mean(ranked("vector")) if with_vectors else None, "candidates": {}}
    base: dict[str, dict[str, float]] = {}
    texts = [r["content"] for r in rows]
    versioned = _Versioned()
    real = hybrid.table.Analyzer
    for i, cand in enumerate(candidates(language, args.versions_only)):
        start = time.perf_counter()
        name = f"c{i}"
        versioned.version = cand.version
        _HOOK[0] = cand.hook(texts) if cand.hook else None
        hybrid.table.Analyzer = versioned  # type: ignore[misc,assignment]
        try:
            table.create_fts_index("content", language=language, name=name, **cand.options)
        finally:
            hybrid.table.Analyzer = real  # type: ignore[misc]
        try:
            scores = {"bm25": ranked("fts", name)}
            if with_vectors:
                scores["hybrid"] = ranked("hybrid", name)
        finally:
            _HOOK[0] = None
        if not base:
            base = scores
        row: dict[str, Any] = {}
        for branch, per in scores.items():
            qids = list(per)
            p = paired_randomization_test([per[q] for q in qids], [base[branch][q] for q in qids], trials=TRIALS)
            row[branch] = _mean(per)
            row[f"{branch} change"] = round(_mean(per) - _mean(base[branch]), 4)
            row[f"{branch} p"] = round(p, 4)
        if with_vectors:
            row["hybrid - better branch"] = round(row["hybrid"] - max(row["bm25"], out["dense"]), 4)
        out["candidates"][cand.label] = row
        log(f"{language} {cand.label}: {row} ({time.perf_counter() - start:.0f} s)")
    return out


def _mean(per: dict[str, float]) -> float:
    return round(sum(per.values()) / len(per), 4)


UNCHANGED = ("scifact", "nfcorpus", "cranfield", "webfaq", *(f"xquad-r/{x}" for x in ("en", "zh", "de", "es", "ru")))


def unchanged_elsewhere(data: Path) -> dict[str, dict[str, Any]]:
    """Per collection: its detected language and how many of its documents and judged questions get
    other terms from v3 than from v2 (none means its BM25 and hybrid results are the same)."""
    out = {}
    for name in UNCHANGED:
        coll = load_beir(data / name)
        texts = [r["content"] for r in coll.documents()] + list(coll.judged_queries.values())
        language = detect_language(texts[:2000]).language
        v2, v3 = analysis.Analyzer(language, version=2), analysis.Analyzer(language)
        changed = sum(v2.terms(t) != v3.terms(t) for t in texts)
        out[name] = {"language": language, "texts": len(texts), "changed": changed}
        log(f"{name}: {out[name]}")
    return out


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Language analysis study (XQuAD-R, nDCG@10)",
        "",
        f"Generated by `{report['command']}` on {report['generated']}. One table per language with e5-small",
        "vectors (the default embedder for text that is not English) unless its section says BM25 only; one BM25",
        "index per analysis. `hybrid`: the",
        "default hybrid query (default fusion and weights, top 100, as `hybrid eval`). Changes and p (two-sided",
        f"paired randomization, {TRIALS:,} trials, per-query nDCG@10) against the first row. Target (issue 23):",
        "hybrid - better branch >= +0.02 on every language. Quality figures do not depend on the machine's load.",
        "",
    ]
    for language, res in report["languages"].items():
        if res["dense"] is None:
            lines += [
                f"## {language} (BM25 only: no vectors in this run)",
                "",
                "| analysis | bm25 | change | p |",
                "|---|--:|--:|--:|",
            ]
            for label, r in res["candidates"].items():
                lines.append(f"| {label} | {r['bm25']:.4f} | {r['bm25 change']:+.4f} | {r['bm25 p']:.3f} |")
            lines.append("")
            continue
        lines += [
            f"## {language} (dense alone {res['dense']:.4f})",
            "",
            "| analysis | bm25 | change | p | hybrid | change | p | hybrid - better branch |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for label, r in res["candidates"].items():
            lines.append(
                f"| {label} | {r['bm25']:.4f} | {r['bm25 change']:+.4f} | {r['bm25 p']:.3f} | {r['hybrid']:.4f} | "
                f"{r['hybrid change']:+.4f} | {r['hybrid p']:.3f} | {r['hybrid - better branch']:+.4f} |"
            )
        lines.append("")
    if not report["v2 = v3 terms"]:
        return "\n".join(lines)
    lines += [
        "## Collections whose analysis v3 leaves alone",
        "",
        "Documents and judged questions whose terms differ between v2 and v3 (the language as `auto` detects it):",
        "none means BM25, and so the hybrid, rank exactly as before.",
        "",
        "| collection | language | texts | terms changed |",
        "|---|---|--:|--:|",
    ]
    for name, r in report["v2 = v3 terms"].items():
        lines.append(f"| {name} | {r['language']} | {r['texts']} | {r['changed']} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hybrid-peer-work")
    parser.add_argument("--languages", default=",".join(LANGUAGES))
    parser.add_argument("--name", default="analysis_study", help="results file stem")
    parser.add_argument("--no-unchanged-check", dest="unchanged", action="store_false", help="skip the v2 = v3 check")
    parser.add_argument("--versions-only", action="store_true", help="only v3 against v4 (the word-piece field)")
    parser.add_argument(
        "--bm25-only",
        default="",
        help="languages scored on BM25 alone (no e5 vectors: embedding a collection takes minutes of CPU)",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    analysis.Analyzer.prepare = _hooked_prepare  # type: ignore[method-assign]
    languages = args.languages.split(",")
    bm25_only = set(filter(None, args.bm25_only.split(",")))
    command = "python eval/analysis_study.py"
    if languages != list(LANGUAGES):
        command += f" --languages {args.languages}"
    if bm25_only:
        command += f" --bm25-only {args.bm25_only}"
    if not args.unchanged:
        command += " --no-unchanged-check"
    if args.versions_only:
        command += " --versions-only"
    if args.name != "analysis_study":
        command += f" --name {args.name}"
    report: dict[str, Any] = {
        "command": command,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "languages": {x: study_language(args, x, x not in bm25_only) for x in languages},
        "v2 = v3 terms": unchanged_elsewhere(args.data) if args.unchanged else {},
    }
    markdown = to_markdown(report)
    write_results(RESULTS, args.name, report, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
