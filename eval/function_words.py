#!/usr/bin/env python
"""Issue 23: English questions the detector is unsure of, read against the index's own term statistics.

:func:`hybrid.index.language.foreign_reason` calls a question foreign when py3langid is >= 90% sure
of another language; with the index's document share per word it also does when py3langid's best
guess is another language and the question's English function words are each in under 10% of the
index's documents (:mod:`hybrid.index.function_words`). For each XQuAD-R language in ``--cross``
(English questions against its sentences, the library's default embedder and analysis): how many
questions each rule names as foreign, then nDCG@10 of BM25, dense, the hybrid with the detector-only
rule (``hybrid 23g``) and with the function-word rule too (``hybrid``, the library as it is), with
paired p. ``--count`` collections (``questions@corpus`` for a cross pair): how many of their own
questions each rule names as foreign (BM25 index only: cheap).

    python eval/function_words.py --cross de,es --name function_words_l23h
    python eval/function_words.py --cross '' --name function_words_l23h_count \\
        --count scifact,nfcorpus,cranfield,webfaq,xquad-r/en,xquad-r/de,xquad-r/es,xquad-r/ru,\\
        xquad-r/zh,xquad-r/hi,xquad-r/en@xquad-r/de,xquad-r/en@xquad-r/es,xquad-r/en@xquad-r/ru

Quality only (no timings). Writes eval/results/<name>.md and .json after each collection.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hybrid  # noqa: E402
import hybrid.query.executor as executor  # noqa: E402
from hybrid.embedders.auto import embedder_for  # noqa: E402
from hybrid.eval import load_beir, load_queries  # noqa: E402
from hybrid.eval.presets import VECTOR_COLUMN  # noqa: E402
from hybrid.eval.query_vectors import embed_questions  # noqa: E402
from hybrid.eval.runs import build_table  # noqa: E402
from hybrid.index.fulltext import FullTextIndex  # noqa: E402
from hybrid.index.language import foreign_reason  # noqa: E402
from hybrid.query.text import Match  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lang_report  # noqa: E402
from lang_mechanisms import compare, library_run  # noqa: E402
from peer_lancedb import default_data  # noqa: E402


@contextmanager
def detector_only() -> Iterator[None]:
    """The rule before this work: the script and py3langid's confidence, no index statistics."""
    with mock.patch.object(
        executor, "foreign_reason", lambda text, language, doc_share=None: foreign_reason(text, language)
    ):
        yield


def _index(table: hybrid.Table) -> FullTextIndex:
    view = table.indexed_snapshot()
    index = view.index(next(e for e in view.entries() if e.kind == "fts"))
    assert isinstance(index, FullTextIndex)
    return index


def fired(index: FullTextIndex, queries: list[str]) -> dict[str, Any]:
    """How many questions each rule names as foreign, how many of the new ones lose the text branch
    (not every term known), and examples of those the function words add."""
    lang = index.analyzer.language
    old = [t for t in queries if foreign_reason(t, lang) is not None]
    new = [t for t in queries if foreign_reason(t, lang, index.doc_share) is not None]
    added = sorted(set(new) - set(old), key=queries.index)
    silenced = [t for t in added if (index.known_share(Match(t)) or 1.0) < 1.0]
    return {
        "language": lang,
        "questions": len(queries),
        "foreign (detector)": len(old),
        "foreign (with function words)": len(new),
        "added": len(added),
        "added, not every term known": len(silenced),
        "added examples": added[:4],
        "example reason": foreign_reason(added[0], lang, index.doc_share) if added else "",
    }


def measure(folder: Path, english: Path) -> dict[str, Any]:
    coll = load_beir(folder)
    embedder = embedder_for(d["text"] for d in coll.corpus.values())
    with tempfile.TemporaryDirectory() as tmp:
        table = build_table(
            hybrid.connect(tmp), coll, embedders={VECTOR_COLUMN: embedder}, fts={"bm25": {"tokenizer": "default"}}
        )
        asked = coll.with_queries_from(load_queries(english), f"en-to-{coll.name}")
        queries = asked.judged_queries
        counts = fired(_index(table), list(queries.values()))
        embed_questions(embedder, list(queries.values()))
        runs = {name: library_run(table, name, embedder, queries) for name in ("bm25", "dense")}
        with detector_only():
            runs["hybrid 23g"] = library_run(table, "hybrid", embedder, queries)
        runs["hybrid"] = library_run(table, "hybrid", embedder, queries)
        row = compare(runs, asked.qrels, [("hybrid", "hybrid 23g"), ("hybrid", "dense"), ("hybrid 23g", "dense")])
    return {**row, **counts, "embedder": embedder.name}


def count(data: Path, spec: str) -> dict[str, Any]:
    """The questions of `spec` (``questions@corpus`` for another collection's questions) each rule names
    as foreign against the corpus's own index (no embedder)."""
    questions, _, corpus = spec.partition("@")
    coll = load_beir(data / (corpus or questions))
    if corpus:
        coll = coll.with_queries_from(load_queries(data / questions), "questions-from-another")
    with tempfile.TemporaryDirectory() as tmp:
        table = build_table(hybrid.connect(tmp), coll, embedders={}, fts={"bm25": {"tokenizer": "default"}})
        return fired(_index(table), list(coll.judged_queries.values()))


def to_markdown(report: dict[str, Any]) -> str:
    explained = (
        "nDCG@10 (default embedder and analysis); `hybrid 23g`: a same-script question is foreign only when "
        "py3langid is >= 0.9 sure; `hybrid`: also when py3langid's best guess is another language and its "
        "English function words are each in under 10% of the index's documents (the library now); "
        "p: paired randomization test (10,000 trials)."
    )
    title = "English function words against the index's statistics"
    return "\n".join(lang_report.header(report, title, explained) + lang_report.compared_rows(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--cross", default="de,es", help="XQuAD-R languages asked with the English questions")
    parser.add_argument("--count", default="", help="collections (under --data) whose questions are counted")
    parser.add_argument("--name", default="function_words_l23h")
    args = parser.parse_args()
    report = lang_report.start("function_words.py", args.name, args.data)
    jobs = [(f"{c} (questions counted)", lambda c=c: count(args.data, c)) for c in args.count.split(",") if c]
    jobs += [
        (f"{x}@en", lambda x=x: measure(args.data / "xquad-r" / x, args.data / "xquad-r" / "en"))
        for x in args.cross.split(",")
        if x
    ]
    lang_report.run(report, jobs, to_markdown)


if __name__ == "__main__":
    main()
