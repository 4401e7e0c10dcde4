"""BM25 with global statistics over shards: every shard scores as if it held the whole table.

tantivy scores a term with its own index's statistics: the number of documents N, the documents
holding the term n, and the field's average length. Split a table into shards and each shard's
scores drift from the unsharded table's. Here the shards first report those statistics for the
query's terms (:func:`shard_stats`); the sums are the global statistics (:class:`GlobalStats`). Each
shard then takes tantivy's hits, reads every hit's term frequencies and (quantised) field lengths
from tantivy's explanation, and recomputes its score with the global statistics in tantivy's own
float32 arithmetic (:func:`global_score`).

Which hits? A shard's local top m need not hold its global top k, since the global idf and average
length reweigh terms differently. But every term's score changes by a bounded factor: the idf by
idf_global / idf_local, the length part by at most max(1, avgdl_global / avgdl_local) (it rises
monotonically from 1 towards that ratio as the document grows). So a document tantivy ranked below
the m-th hit, whose local score is at most that hit's score s_m, scores globally at most
s_m * R, R the largest product of those factors over the query's terms (:func:`score_bound`).
Once the k-th best global score among the m hits beats that bound the shard's global top k is
exact; otherwise m grows fourfold (:func:`exact_top_k`). Plain text queries (`Match` without
fuzziness or proximity, tantivy's k1 and b) are supported: their score is a boosted sum of term scores.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybrid.errors import QueryError

K1 = np.float32(1.2)
B = np.float32(0.75)
SLACK = 1e-5
"""Relative float32 rounding allowed for in the bound (scores are float32 sums)."""

_TERM = re.compile(r'Term\(field=(\d+), type=Str, "(.*)"\)$', re.S)
_BOOST = re.compile(r"Boost x([0-9.eE+-]+) of")
_ESCAPES = re.compile(r"\\(u\{[0-9a-fA-F]+\}|.)", re.S)


@dataclass(frozen=True)
class ShardTextStats:
    """One shard's statistics for one query: documents, tokens per field, documents per (field, term)."""

    num_docs: int
    tokens: dict[str, int]
    doc_freq: dict[tuple[str, str], int]


@dataclass(frozen=True)
class GlobalStats:
    """The statistics of all shards together: what one unsharded index would report."""

    num_docs: int
    tokens: dict[str, int]
    doc_freq: dict[tuple[str, str], int] = field(default_factory=dict)

    @staticmethod
    def merge(shards: Sequence[ShardTextStats]) -> GlobalStats:
        tokens: dict[str, int] = {}
        freq: dict[tuple[str, str], int] = {}
        for s in shards:
            for f, n in s.tokens.items():
                tokens[f] = tokens.get(f, 0) + n
            for key, n in s.doc_freq.items():
                freq[key] = freq.get(key, 0) + n
        return GlobalStats(sum(s.num_docs for s in shards), tokens, freq)

    def avgdl(self, field_name: str) -> np.float32:
        return avgdl(self.tokens.get(field_name, 0), self.num_docs)

    def idf(self, field_name: str, term: str) -> np.float32:
        return idf(self.doc_freq.get((field_name, term), 0), self.num_docs)


def avgdl(tokens: int, docs: int) -> np.float32:
    """tantivy's average field length: total tokens / documents, both as float32."""
    return np.float32(tokens) / np.float32(docs) if docs else np.float32(0.0)


def idf(n: int, docs: int) -> np.float32:
    """tantivy's idf, log(1 + (N - n + 0.5) / (n + 0.5)), in float32."""
    x = (np.float32(docs - n) + np.float32(0.5)) / (np.float32(n) + np.float32(0.5))
    return np.float32(np.log(np.float32(1.0) + x))


def term_score(idf_: np.float32, tf: float, dl: float, avgdl_: np.float32) -> np.float32:
    """One term's BM25 as tantivy computes it: idf * (k1 + 1) * tf / (tf + k1 * (1 - b + b * dl / avgdl))."""
    weight = np.float32(idf_ * (K1 + np.float32(1.0)))
    norm = np.float32(K1 * (np.float32(1.0) - B + B * np.float32(dl) / avgdl_))
    tf32 = np.float32(tf)
    return np.float32(weight * (tf32 / (tf32 + norm)))


def _unescape(text: str) -> str:
    """A term as Rust's Debug formatting printed it, unescaped."""

    def one(m: re.Match[str]) -> str:
        s = m.group(1)
        if s.startswith("u{"):
            return chr(int(s[2:-1], 16))
        return {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(s, s)

    return _ESCAPES.sub(one, text)


def _term_of(node: Mapping[str, Any], field_names: Sequence[str]) -> tuple[str, str]:
    for ctx in node.get("context") or []:
        found = _TERM.search(ctx)
        if found:
            return field_names[int(found.group(1))], _unescape(found.group(2))
    raise QueryError("tantivy's explanation of a term gave no term; sharded BM25 cannot rescore it")


def global_score(node: Mapping[str, Any], field_names: Sequence[str], stats: GlobalStats) -> np.float32:
    """A hit's score from tantivy's explanation (parsed JSON), every term rescored with `stats`."""
    desc = str(node.get("description", ""))
    kids = node.get("details") or []
    if desc.startswith("TermQuery"):
        norm = next(d for d in kids if str(d["description"]).startswith("freq /"))
        v = {str(d["description"]).split(",")[0]: float(d["value"]) for d in norm["details"]}
        name, term = _term_of(node, field_names)
        return term_score(stats.idf(name, term), v["freq"], v["dl"], stats.avgdl(name))
    boost = _BOOST.match(desc)
    if boost and len(kids) == 1:
        return np.float32(np.float32(float(boost.group(1))) * global_score(kids[0], field_names, stats))
    if desc.startswith("BooleanClause") and kids:
        total = np.float32(0.0)
        for kid in kids:
            total = np.float32(total + global_score(kid, field_names, stats))
        return total
    raise QueryError(f"sharded BM25 rescores plain text queries only; tantivy explained {desc!r}")


def score_bound(local: ShardTextStats, stats: GlobalStats) -> float:
    """The largest factor by which a term score of this shard can grow under the global statistics."""
    worst = 1.0
    for (name, _term), n in local.doc_freq.items():
        if n == 0:
            continue
        ratio = float(stats.idf(name, _term)) / float(idf(n, local.num_docs))
        lengths = float(stats.avgdl(name)) / max(float(avgdl(local.tokens.get(name, 0), local.num_docs)), 1e-30)
        worst = max(worst, ratio * max(1.0, lengths))
    return worst * (1.0 + SLACK)


Hits = Callable[[int], tuple[np.ndarray, np.ndarray, list[Any]]]
"""Given a depth m: tantivy's top m (ids, local scores best first, document addresses)."""


def exact_top_k(
    hits: Hits,
    explain: Callable[[Any], Mapping[str, Any]],
    k: int,
    bound: float,
    field_names: Sequence[str],
    stats: GlobalStats,
    start: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """This shard's exact top `k` under the global statistics: (ids, scores, depth searched)."""
    m = max(k, start)
    while True:
        ids, local, addresses = hits(m)
        scores = np.array([global_score(explain(a), field_names, stats) for a in addresses], dtype=np.float32)
        order = np.lexsort((ids, -scores))[:k]
        if len(ids) < m or k == 0:  # every match was seen
            return ids[order], scores[order], m
        ceiling = float(local[-1]) * bound  # what any hit below the m-th can reach
        if len(order) == k and float(scores[order[-1]]) > ceiling:
            return ids[order], scores[order], m
        m *= 4


def explanation(query: Any, searcher: Any) -> Callable[[Any], Mapping[str, Any]]:
    """tantivy's explanation of a hit, as parsed JSON."""

    def explain(address: Any) -> Mapping[str, Any]:
        parsed: Mapping[str, Any] = json.loads(query.explain(searcher, address).to_json())
        return parsed

    return explain


def field_tokens(
    texts: Mapping[str, Iterable[str | None]],
    columns: Sequence[str],
    fields: Sequence[str],
    count: Callable[[str], int],
    weights: Mapping[str, int] | None,
    combined: str,
) -> dict[str, int]:
    """Total tokens per tantivy field, as the index counted them at build: a column's field counts
    its non-empty values' tokens; the combined BM25F field counts each column `weight` times."""
    totals = dict.fromkeys(fields, 0)
    comb = 0
    for column, f in zip(columns, fields):
        n = sum(count(v) for v in texts[column] if v)
        totals[f] = n
        comb += n * int((weights or {}).get(column, 1))
    if weights is not None:
        totals[combined] = comb
    return totals
