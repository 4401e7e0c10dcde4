#!/usr/bin/env python
"""Issue 23: the text branch's weight for English questions over same-script foreign sentences.

For each XQuAD-R language in ``--cross`` (English questions against its sentences, one table, the
library's default embedder and analysis): how many questions :func:`hybrid.index.language.is_foreign`
names as foreign, the share of their terms the index knows, the text factor they get, the terms
they share with the index; then nDCG@10 of BM25, dense, today's default hybrid and the hybrid with
the candidate rule (a confidently foreign question's text branch has no say unless all its terms are
known, as for a question in another script), with paired p. ``--count`` collections: how many of
their own questions fire ``is_foreign`` against their own detected language (no embedder: cheap).

    python eval/foreign_rule.py --cross de,es --name foreign_rule_l23g
    python eval/foreign_rule.py --cross '' --name foreign_rule_l23g_count \\
        --count scifact,nfcorpus,cranfield,webfaq,xquad-r/en,xquad-r/de,xquad-r/es,xquad-r/ru,\\
        xquad-r/en@xquad-r/de,xquad-r/en@xquad-r/es

Quality only (no timings). Writes eval/results/<name>.md and .json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import Counter
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
from hybrid.index.language import FOREIGN_CONFIDENCE, _identifier, is_foreign  # noqa: E402
from hybrid.index.script import foreign_script  # noqa: E402
from hybrid.query import confidence  # noqa: E402
from hybrid.query.text import Match  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lang_report  # noqa: E402
from lang_mechanisms import compare, library_run  # noqa: E402
from peer_lancedb import default_data  # noqa: E402


def _old_known_share(view: Any, b: Any) -> tuple[float | None, bool]:
    """The rule before issue 23g: only a question in another script loses the text branch outright."""
    if b.kind != "fts" or b.entry is None or not isinstance(b.text, Match):
        return None, False
    index = view.index(b.entry)
    language = index.analyzer.language
    if not is_foreign(b.text.text, language):
        return None, False
    return index.known_share(b.text), foreign_script(b.text.text, language) is True


def _new_known_share(view: Any, b: Any) -> tuple[float | None, bool]:
    """The candidate: every confidently foreign question is treated like one in another script."""
    share, _ = _old_known_share(view, b)
    return share, share is not None


@contextmanager
def rule(which: str) -> Iterator[None]:
    with mock.patch.object(executor, "_known_share", _old_known_share if which == "old" else _new_known_share):
        yield


def profile(index: FullTextIndex, queries: dict[str, str]) -> dict[str, Any]:
    """Which questions fire is_foreign, their known share, old and new factors, the shared terms."""
    lang = index.analyzer.language
    fired, shares, old, new, shared = 0, [], [], [], Counter()
    all_known = 0
    for text in queries.values():
        if not is_foreign(text, lang):
            continue
        fired += 1
        share = index.known_share(Match(text))
        if share is None:
            continue
        shares.append(share)
        old.append(confidence.vocabulary(share, foreign_script(text, lang) is True))
        new.append(confidence.vocabulary(share, True))
        all_known += share >= 1.0
        for t in set(index.analyzer.terms(text)):
            if any(index.searcher.doc_freq(f, t) > 0 for f in index.fields):
                shared[t] += 1
    digits = sum(n for t, n in shared.items() if any(c.isdigit() for c in t))
    return {
        "language": lang,
        "questions": len(queries),
        "fired": fired,
        "all terms known": all_known,
        "known share mean": round(statistics.fmean(shares), 4) if shares else None,
        "known share median": round(statistics.median(shares), 4) if shares else None,
        "old factor mean": round(statistics.fmean(old), 4) if old else None,
        "new factor mean": round(statistics.fmean(new), 4) if new else None,
        "shared terms (with digits share)": round(digits / max(1, sum(shared.values())), 4),
        "top shared terms": " ".join(f"{t}:{n}" for t, n in shared.most_common(20)),
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
        view = table.indexed_snapshot()
        entry = next(e for e in view.entries() if e.kind == "fts")
        index = view.index(entry)
        assert isinstance(index, FullTextIndex)
        prof = profile(index, queries)
        embed_questions(embedder, list(queries.values()))
        runs = {name: library_run(table, name, embedder, queries) for name in ("bm25", "dense")}
        with rule("old"):
            runs["hybrid"] = library_run(table, "hybrid", embedder, queries)
        with rule("new"):
            runs["hybrid+rule"] = library_run(table, "hybrid", embedder, queries)
        row = compare(runs, asked.qrels, [("hybrid", "dense"), ("hybrid+rule", "hybrid"), ("hybrid+rule", "dense")])
    return {**row, **prof, "embedder": embedder.name}


def count(data: Path, spec: str) -> dict[str, Any]:
    """How many of a collection's questions fire is_foreign against its own index's language (or the
    collection after ``@``: ``xquad-r/en@xquad-r/de``, the English questions over the German
    sentences), and how many a looser test would take for foreign:
    py3langid gives the index language under 10% (whatever the top language's probability); of those,
    how many the index does not know every term of (the ones whose text weight the loose test would
    take away). BM25 index only (no embedder: cheap)."""
    questions, _, corpus = spec.partition("@")
    coll = load_beir(data / (corpus or questions))
    if corpus:
        coll = coll.with_queries_from(load_queries(data / questions), "questions-from-another")
    queries = list(coll.judged_queries.values())
    with tempfile.TemporaryDirectory() as tmp:
        table = build_table(hybrid.connect(tmp), coll, embedders={}, fts={"bm25": {"tokenizer": "default"}})
        view = table.indexed_snapshot()
        index = view.index(next(e for e in view.entries() if e.kind == "fts"))
        assert isinstance(index, FullTextIndex)
        lang = index.analyzer.language
        hits = [t for t in queries if is_foreign(t, lang)]
        hits_partial = [t for t in hits if (index.known_share(Match(t)) or 1.0) < 1.0]
        ident = _identifier()
        loose = [t for t in queries if dict(ident.rank(t)).get(lang, 0.0) < 1 - FOREIGN_CONFIDENCE]
        loose_partial = [t for t in loose if (index.known_share(Match(t)) or 1.0) < 1.0]
    return {
        "language": lang,
        "questions": len(queries),
        "fired": len(hits),
        "fired, not all terms known": len(hits_partial),
        "P(language) < 0.1": len(loose),
        "P(language) < 0.1, not all terms known": len(loose_partial),
        "examples": hits[:3],
        "loose examples, not all terms known": loose_partial[:4],
    }


def to_markdown(report: dict[str, Any]) -> str:
    explained = (
        "nDCG@10 (default embedder and analysis); `hybrid`: today's rule, `hybrid+rule`: a confidently "
        "foreign question's text branch has no say unless all its terms are known; p: paired randomization "
        "test (10,000 trials)."
    )
    return "\n".join(
        lang_report.header(report, "Foreign same-script questions", explained) + lang_report.compared_rows(report)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--cross", default="de,es", help="XQuAD-R languages asked with the English questions")
    parser.add_argument("--count", default="", help="collections (under --data) whose own questions are counted")
    parser.add_argument("--name", default="foreign_rule_l23g")
    args = parser.parse_args()
    report = lang_report.start("foreign_rule.py", args.name, args.data)
    jobs = [(f"{c} (questions counted)", lambda c=c: count(args.data, c)) for c in args.count.split(",") if c]
    jobs += [
        (f"{x}@en", lambda x=x: measure(args.data / "xquad-r" / x, args.data / "xquad-r" / "en"))
        for x in args.cross.split(",")
        if x
    ]
    lang_report.run(report, jobs, to_markdown)


if __name__ == "__main__":
    main()
