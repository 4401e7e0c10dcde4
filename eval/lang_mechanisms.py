#!/usr/bin/env python
"""Issue 23 candidates, each beside what it replaces, with paired p (XQuAD-R, nDCG@10).

* ``--languages de,es,ru``: query-time compound splitting (``eval/compound_split.py``, a candidate
  not shipped) on and off, on BM25 and on the default hybrid (default embedder and analysis, one table per language).
* ``--cross zh,de,es,ru,hi``: the English questions against each language's sentences; dense
  alone, the default hybrid (the cross-script rule: text has no say) and the hybrid whose text
  branch asks the top dense passages' distinctive words (``eval/cross_feedback.py``, not shipped).

    python eval/lang_mechanisms.py --languages de,es,ru --cross zh,de,es,ru,hi --name lang_mechanisms_l23f

Quality only (no timings). Writes eval/results/<name>.md and .json after each collection.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hybrid  # noqa: E402
from hybrid.embedders.auto import embedder_for  # noqa: E402
from hybrid.eval import evaluate, load_beir, load_queries, paired_randomization_test  # noqa: E402
from hybrid.eval.presets import VECTOR_COLUMN, parse_run  # noqa: E402
from hybrid.eval.query_vectors import embed_questions  # noqa: E402
from hybrid.eval.runs import build_table, execute  # noqa: E402
from hybrid.index.fulltext import FullTextIndex  # noqa: E402
from hybrid.index.script import foreign_script  # noqa: E402
from hybrid.query.text import Match  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compound_split as compound  # noqa: E402
from cross_feedback import PASSAGES, feedback_words  # noqa: E402
from peer_lancedb import default_data  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
K = 100
Ranking = dict[str, dict[str, float]]
T = TypeVar("T")


def ranked(ids: list[str]) -> dict[str, float]:
    ids = list(dict.fromkeys(ids))
    return {d: float(len(ids) - r) for r, d in enumerate(ids)}


def with_split(on: bool, run: Callable[[], T], nouns_only: bool = True) -> T:
    """`run` with the compound split (`on`) or as the library ships."""
    if not on:
        return run()
    with compound.patched(nouns_only):
        return run()


def library_run(table: hybrid.Table, name: str, embedder: Any, queries: Mapping[str, str]) -> Ranking:
    return execute(table, parse_run(name, embedder), queries, k=K, progress=False).run


def feedback_run(
    table: hybrid.Table, embedder: Any, queries: Mapping[str, str], default: Ranking
) -> tuple[Ranking, int, list[str]]:
    """The hybrid whose text branch asks the `PASSAGES` best dense hits' distinctive words, for the
    questions where the cross-script rule fires (none of their letters in the index language's script
    and not every term known); the others keep the default hybrid's ranking (`default`).
    Also: how many questions it fired for, and one example's words."""
    view = table.indexed_snapshot()
    entry = next(e for e in view.entries() if e.kind == "fts")
    index = view.index(entry)
    assert isinstance(index, FullTextIndex)
    run: Ranking = {}
    fired = 0
    example: list[str] = []
    for qid, text in queries.items():
        share = index.known_share(Match(text))
        if foreign_script(text, index.analyzer.language) is not True or share is None or share >= 1.0:
            run[qid] = default[qid]
            continue
        fired += 1
        vec = embedder.embed_query(text)
        top = table.search(vec, query_type="vector").limit(PASSAGES).select(["content"]).to_list()
        words = feedback_words(index, [r["content"] for r in top])
        q = table.search(query_type="hybrid").vector(vec).text(" ".join(words)).limit(K).select(["doc_id"])
        run[qid] = ranked([r["doc_id"] for r in q.to_list()])
        if not example:
            example = words
    return run, fired, example


def scores(run: Ranking, qrels: Mapping[str, Mapping[str, int]]) -> tuple[float, dict[str, float]]:
    mean, per = evaluate(run, dict(qrels), ["nDCG@10"])
    return mean["nDCG@10"], {q: v["nDCG@10"] for q, v in per.items()}


def compare(runs: Mapping[str, Ranking], qrels: Any, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    per = {name: scores(run, qrels) for name, run in runs.items()}
    row: dict[str, Any] = {name: round(m, 4) for name, (m, _) in per.items()}
    qids = sorted(qrels)
    for new, old in pairs:
        a, b = [per[new][1][q] for q in qids], [per[old][1][q] for q in qids]
        row[f"{new} vs {old}"] = {
            "delta": round(per[new][0] - per[old][0], 4),
            "p": round(paired_randomization_test(a, b, trials=10_000), 4),
            "changed": sum(x != y for x, y in zip(a, b)),
        }
    return row


def _terms(index: FullTextIndex, text: str) -> tuple[tuple[str, float], ...]:
    return index.match_terms(text)  # looked up when called: the split's while it is patched in


def measure_text(folder: Path) -> dict[str, dict[str, Any]]:
    """BM25 alone with the compound split on and off (no embedder: cheap), and how many questions it changes."""
    coll = load_beir(folder)
    queries = coll.judged_queries
    with tempfile.TemporaryDirectory() as tmp:
        table = build_table(hybrid.connect(tmp), coll, embedders={}, fts={"bm25": {"tokenizer": "default"}})
        runs = {
            "bm25": with_split(False, partial(library_run, table, "bm25", None, queries)),
            "bm25+split": with_split(True, partial(library_run, table, "bm25", None, queries)),
        }
        index = table.indexed_snapshot()
        entry = next(e for e in index.entries() if e.kind == "fts")
        fts = index.index(entry)
        assert isinstance(fts, FullTextIndex)
        split_words = []
        for text in queries.values():
            if with_split(True, partial(_terms, fts, text)) != fts.match_terms(text):
                split_words.append(text)
        row = compare(runs, coll.qrels, [("bm25+split", "bm25")])
    row["questions split"] = len(split_words)
    row["split example"] = split_words[0] if split_words else ""
    return {f"{coll.name} (text only)": {**row, "queries": len(queries)}}


def measure(folder: Path, english: Path | None, mono: bool, cross: bool) -> dict[str, dict[str, Any]]:
    """The rows of one language: its own questions (`mono`) and the English ones (`cross`), one table."""
    coll = load_beir(folder)
    embedder = embedder_for(d["text"] for d in coll.corpus.values())
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        table = build_table(
            hybrid.connect(tmp), coll, embedders={VECTOR_COLUMN: embedder}, fts={"bm25": {"tokenizer": "default"}}
        )
        if mono:
            queries = coll.judged_queries
            embed_questions(embedder, list(queries.values()))
            runs: dict[str, Ranking] = {}
            for on in (False, True) if folder.name in compound.COMPOUNDING else (False,):
                suffix = "+split" if on else ""
                for name in ("bm25", "hybrid"):
                    runs[name + suffix] = with_split(on, partial(library_run, table, name, embedder, queries))
            runs["dense"] = library_run(table, "dense", embedder, queries)
            pairs = [("bm25+split", "bm25"), ("hybrid+split", "hybrid")] if "bm25+split" in runs else []
            row = compare(runs, coll.qrels, pairs)
            for h in [h for h in ("hybrid", "hybrid+split") if h in runs]:
                row[f"{h} margin"] = round(row[h] - max(row["dense"], row["bm25" + h[6:]]), 4)
            rows[coll.name] = {**row, "embedder": embedder.name, "queries": len(queries)}
        if cross and english is not None:
            asked = coll.with_queries_from(load_queries(english), f"en-to-{coll.name}")
            queries = asked.judged_queries
            embed_questions(embedder, list(queries.values()))
            runs = {name: library_run(table, name, embedder, queries) for name in ("bm25", "dense", "hybrid")}
            runs["hybrid+feedback"], fired, example = feedback_run(table, embedder, queries, runs["hybrid"])
            row = compare(runs, asked.qrels, [("hybrid+feedback", "hybrid"), ("hybrid+feedback", "dense")])
            row["feedback fired"] = fired
            row["feedback example"] = " ".join(example[:12])
            rows[f"{coll.name}@en"] = {**row, "embedder": embedder.name, "queries": len(queries)}
    return rows


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Issue 23 mechanisms on XQuAD-R ({report['name']})",
        "",
        f"Generated by `{report['command']}` on {report['date']} (load average {report['load']}).",
        "nDCG@10 of the library's default pipeline (default embedder and analysis); `p`: two-sided paired "
        "randomization test (10,000 trials) over the questions; `changed`: questions whose nDCG@10 moved.",
        "",
    ]
    for name, r in report["rows"].items():
        plain = {k: v for k, v in r.items() if not isinstance(v, dict)}
        lines.append(f"## {name}")
        lines.append("")
        lines.append("| | " + " | ".join(plain) + " |")
        lines.append("|---|" + "---|" * len(plain))
        lines.append("| | " + " | ".join(str(v) for v in plain.values()) + " |")
        for key, v in r.items():
            if isinstance(v, dict):
                lines.append(f"- {key}: {v['delta']:+.4f} (p {v['p']:.4f}, {v['changed']} questions changed)")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--languages", default="de,es,ru", help="monolingual XQuAD-R languages (compound split)")
    parser.add_argument("--cross", default="", help="languages asked with the English questions (feedback)")
    parser.add_argument("--text-only", action="store_true", help="--languages with BM25 alone (no embedder)")
    parser.add_argument("--name", default="lang_mechanisms_l23f")
    args = parser.parse_args()
    xq = args.data / "xquad-r"
    report: dict[str, Any] = {
        "name": args.name,
        "command": " ".join(["python eval/lang_mechanisms.py", *sys.argv[1:]]).replace(str(args.data), "<data>"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "rows": {},
    }
    mono = [x for x in args.languages.split(",") if x]
    cross = [x for x in args.cross.split(",") if x]
    for lang in dict.fromkeys(mono + cross):
        rows = measure_text(xq / lang) if args.text_only else measure(xq / lang, xq / "en", lang in mono, lang in cross)
        for name, row in rows.items():
            report["rows"][name] = row
            print(name, row, flush=True)
        report["load"] = Path("/proc/loadavg").read_text().split()[0]
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        (RESULTS / f"{args.name}.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
