"""The peer comparison's analyzer probes (English): which stop words, and which words per query word,
each system's BM25 drops or conflates."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from bench.peer_config import LANCE_FTS_EN, safe_name
from bench.peer_lance import lance_table
from hybrid.eval.collection import Collection
from hybrid.index.analyzer import Analyzer

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
        db, f"probe-{safe_name(coll.name)}", probe_rows, np.zeros((len(vocab), dim), np.float32), LANCE_FTS_EN
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
