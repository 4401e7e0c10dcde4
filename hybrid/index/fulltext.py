"""Full-text index on tantivy: BM25 over one or more text columns, `_rowid` as a fast field.

Several columns are scored as BM25F by default: besides one field per column, the index
holds a combined field where each column's text appears `weight` times, so term
frequencies and lengths add up across columns with those weights before BM25's
saturation and length normalisation (BM25F with integer field weights and one shared b).
Summing separate per-column BM25 scores instead over-rewards a term that appears in
every field. Query-time field boosts and ``column:`` query syntax use the per-column
fields (``scoring="fields"`` builds only those).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tantivy

from hybrid.errors import QueryError
from hybrid.index import backoff
from hybrid.index.analyzer import PIECE_WEIGHT, PIECES_NAME, TANTIVY_NAME, Analyzer, pieces_analyzer, query_terms
from hybrid.index.fts_filters import Kind, add_fields, add_value
from hybrid.index.overfetch import overfetch_depth
from hybrid.index.text_query import PROXIMITY_SLOP, Boolean, Match, Phrase, QueryString, TextQuery

ROWID_FIELD = "_rowid"
COMBINED_FIELD = "fall"
"""The BM25F field: every column's text, each repeated by its weight."""
TERM_SET_COST = 22.0
"""Cost of one allowed row id in a term-set clause, in units of one over-fetched hit: the value
that puts the choice where the two measured costs cross (about 300 allowed rows of 100,000 for
k = 10; ``python eval/filter_crossover.py``, ``eval/results/filter_crossover.md``)."""
TANTIVY_BM25 = (1.2, 0.75)
"""tantivy's fixed BM25 (k1, b)."""
RESCORE_DEPTH = 100
"""With other (k1, b), tantivy's top max(k, 100) hits are rescored (each from tantivy's explanation)."""


MATCHED_TEXTS = 256
"""Query texts whose match terms an index remembers (cleared when full)."""
LOCK_FILES = (".tantivy-writer.lock", ".tantivy-meta.lock")
MUTABLE_FILES = ("meta.json", ".managed.json")
"""Files tantivy replaces as a whole (write, then rename): copied, so the source keeps its own."""


def share_folder(source: Path, path: Path) -> None:
    """Make `path` a copy of the index folder `source`: segment files (never modified once written)
    hard-linked, tantivy's replaced-on-commit files copied, lock files left behind."""
    path.mkdir(parents=True)
    for file in source.iterdir():
        if file.name in LOCK_FILES or not file.is_file():
            continue
        if file.name in MUTABLE_FILES:
            shutil.copy2(file, path / file.name)
            continue
        try:
            os.link(file, path / file.name)
        except OSError:  # another file system, or links not supported
            shutil.copy2(file, path / file.name)


def deleted_docs(path: Path) -> int:
    """Deleted documents still held by the segments of the index folder `path` (from tantivy's meta.json)."""
    meta = json.loads((path / "meta.json").read_text())
    return sum(int((seg.get("deletes") or {}).get("num_deleted_docs", 0)) for seg in meta.get("segments", []))


def recorded_positions(path: Path) -> bool:
    """Whether the text fields of the index folder `path` record term positions (from tantivy's meta.json)."""
    meta = json.loads((path / "meta.json").read_text())
    records = [
        f["options"]["indexing"].get("record")
        for f in meta.get("schema", [])
        if f.get("type") == "text" and (f.get("options") or {}).get("indexing")
    ]
    return all(r == "position" for r in records)


def field_names(columns: Sequence[str]) -> list[str]:
    """Field names inside the tantivy index (independent of later column renames)."""
    return [f"f{i}" for i in range(len(columns))]


def piece_field_names(columns: Sequence[str]) -> list[str]:
    """The word-piece field of each column (analyzer version 4, :mod:`hybrid.index.analyzer`)."""
    return [f"p{i}" for i in range(len(columns))]


class FullTextIndex:
    """A tantivy index over `columns` of a table (memory or a folder)."""

    def __init__(
        self,
        index: tantivy.Index,
        columns: Sequence[str],
        analyzer: Analyzer,
        weights: Mapping[str, int] | None = None,
        filters: Mapping[str, Kind] | None = None,
        positions: bool = True,
    ) -> None:
        self._index = index
        self._schema = index.schema
        self.columns = list(columns)
        self.fields = field_names(columns)
        self.analyzer = analyzer
        self.weights = dict(weights) if weights is not None and len(self.columns) > 1 else None
        """Column weights of the BM25F field (None: columns are scored one by one and summed)."""
        self.filters = dict(filters or {})
        """Filter fields stored beside the text (tantivy field -> kind, :mod:`hybrid.index.fts_filters`)."""
        self.positions = positions
        """Whether term positions are indexed (phrase queries and proximity need them)."""
        self.piece_fields = piece_field_names(columns) if analyzer.piece_size else []
        """The word-piece field of each column; empty when the analyzer indexes no pieces."""
        index.register_tokenizer(TANTIVY_NAME, analyzer.tantivy_analyzer)
        if self.piece_fields:
            index.register_tokenizer(PIECES_NAME, pieces_analyzer())
        self._searcher: tantivy.Searcher | None = None
        self._matched: dict[str, tuple[tuple[str, float], ...]] = {}  # the latest texts' match_terms
        self._lock = threading.Lock()
        self.deleted_docs = 0
        """Documents deleted but still counted by tantivy's BM25 statistics (document count, frequencies)."""

    # -- building ---------------------------------------------------------------------

    @staticmethod
    def _schema_for(
        columns: Sequence[str], combined: bool, filters: Mapping[str, Kind], positions: bool, pieces: bool
    ) -> tantivy.Schema:
        builder = tantivy.SchemaBuilder()
        builder.add_unsigned_field(ROWID_FIELD, stored=False, indexed=True, fast=True)
        record = "position" if positions else "freq"  # BM25 needs term frequencies either way
        for name in field_names(columns) + ([COMBINED_FIELD] if combined else []):
            builder.add_text_field(name, stored=False, tokenizer_name=TANTIVY_NAME, index_option=record)
        for name in piece_field_names(columns) if pieces else []:
            builder.add_text_field(name, stored=False, tokenizer_name=PIECES_NAME, index_option="freq")
        add_fields(builder, filters)
        return builder.build()

    @classmethod
    def build(
        cls,
        path: Path | None,
        columns: Sequence[str],
        analyzer: Analyzer,
        batches: Iterable[tuple[np.ndarray, Mapping[str, Sequence[Any]]]],
        weights: Mapping[str, int] | None = None,
        filters: Mapping[str, tuple[str, Kind]] | None = None,
        positions: bool = True,
    ) -> FullTextIndex:
        """Index (row ids, {column: values}) batches into a new index at `path` (None: in memory).

        `weights` (column -> repeats in the BM25F field) builds the combined field when
        there are several columns; None scores columns one by one. `filters` (column ->
        (field, kind)) stores those columns' values as exact terms for filters to run inside
        tantivy; the batches then carry those columns too. `positions` False leaves out term
        positions (about half the index; phrase queries and proximity then raise `QueryError`).
        """
        combined = weights is not None and len(columns) > 1
        kinds = {name: kind for name, kind in (filters or {}).values()}
        schema = cls._schema_for(columns, combined, kinds, positions, bool(analyzer.piece_size))
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        index = tantivy.Index(schema, path=str(path) if path is not None else None)
        self = cls(index, columns, analyzer, weights, kinds, positions)
        writer = index.writer(heap_size=200_000_000, num_threads=1)
        self._add(writer, batches, filters or {})
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        return self

    def _add(
        self,
        writer: tantivy.IndexWriter,
        batches: Iterable[tuple[np.ndarray, Mapping[str, Sequence[Any]]]],
        filters: Mapping[str, tuple[str, Kind]],
    ) -> None:
        """Add one document per row of `batches` (row ids, {column: values}) to `writer`."""
        combined = self.weights is not None
        extra = [(column, name, kind) for column, (name, kind) in filters.items()]
        prepare = self.analyzer.prepare
        fields = [(f, c, int((self.weights or {}).get(c, 1))) for f, c in zip(self.fields, self.columns)]
        pieces = dict(zip(self.fields, self.piece_fields))
        for rowids, texts in batches:
            cols = [(f, texts[c], w) for f, c, w in fields]
            for i, rowid in enumerate(rowids.tolist()):
                doc = tantivy.Document()
                doc.add_unsigned(ROWID_FIELD, rowid)
                for f, values, w in cols:
                    value = values[i]
                    if value:
                        prepared = prepare(value)
                        doc.add_text(f, prepared)
                        for _ in range(w if combined else 0):
                            doc.add_text(COMBINED_FIELD, prepared)
                        if pieces:
                            doc.add_text(pieces[f], " ".join(self.analyzer.pieces_of(prepared)))
                for column, name, kind in extra:
                    add_value(doc, name, kind, texts[column][i])
                writer.add_document(doc)

    def merged(
        self,
        source: Path,
        path: Path,
        batches: Iterable[tuple[np.ndarray, Mapping[str, Sequence[Any]]]],
        deleted: np.ndarray,
        filters: Mapping[str, tuple[str, Kind]] | None = None,
    ) -> FullTextIndex:
        """A copy of this index (stored at `source`) in the new folder `path`, with the rows of `batches`
        added and the rows `deleted` removed: tantivy's immutable segment files are shared by hard links
        (copied where links are impossible), and the changes become new segments and deletion files."""
        share_folder(source, path)
        index = tantivy.Index.open(str(path))
        kinds = {name: kind for name, kind in (filters or {}).values()}
        out = FullTextIndex(index, self.columns, self.analyzer, self.weights, kinds, self.positions)
        writer = index.writer(heap_size=50_000_000, num_threads=1)
        if len(deleted):
            writer.delete_documents_by_query(
                tantivy.Query.term_set_query(index.schema, ROWID_FIELD, [int(i) for i in deleted.tolist()])
            )
        out._add(writer, batches, filters or {})
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        out.deleted_docs = deleted_docs(path)
        return out

    @classmethod
    def open(
        cls,
        path: Path,
        columns: Sequence[str],
        analyzer: Analyzer,
        weights: Mapping[str, int] | None = None,
        filters: Mapping[str, Kind] | None = None,
    ) -> FullTextIndex:
        self = cls(tantivy.Index.open(str(path)), columns, analyzer, weights, filters, recorded_positions(path))
        self.deleted_docs = deleted_docs(path)
        return self

    @property
    def searcher(self) -> tantivy.Searcher:
        if self._searcher is None:
            with self._lock:
                if self._searcher is None:
                    self._searcher = self._index.searcher()
        return self._searcher

    @property
    def schema(self) -> tantivy.Schema:
        return self._schema

    @property
    def num_docs(self) -> int:
        return int(self.searcher.num_docs)

    # -- querying ---------------------------------------------------------------------

    def compile(self, query: TextQuery, boosts: Mapping[str, float] | None = None) -> tantivy.Query | None:
        """The tantivy query for `query` over this index's columns (None: it has no terms).

        Without `boosts`, a BM25F index scores its combined field; boosts weigh per-column scores.
        """
        if self.weights is not None and not boosts:
            weights = [(COMBINED_FIELD, 1.0)]
        else:
            weights = [(f, float((boosts or {}).get(c, 1.0))) for f, c in zip(self.fields, self.columns)]
        if isinstance(query, Match):
            clauses = []
            for term, n in query_terms(self.analyzer, query.text) if query.fuzziness else self.match_terms(query.text):
                for field, w in weights:
                    if query.fuzziness:
                        q = tantivy.Query.fuzzy_term_query(self._schema, field, term, query.fuzziness)
                    else:
                        q = tantivy.Query.term_query(self._schema, field, term)
                    clauses.append((tantivy.Occur.Should, _boost(q, n * w)))
            if not query.fuzziness:
                clauses += self._piece_clauses(query.text, boosts)
            if not clauses:
                return None
            matched = tantivy.Query.boolean_query(clauses)
            if query.proximity > 0:
                self._need_positions("Match(proximity=...)")
                return self._with_proximity(matched, query, weights)
            return matched
        if isinstance(query, Phrase):
            terms = self.analyzer.terms(query.text)
            if not terms:
                return None
            if len(terms) > 1:
                self._need_positions("a phrase query")
            clauses = []
            for field, w in weights:
                if len(terms) == 1:
                    q = tantivy.Query.term_query(self._schema, field, terms[0])
                else:
                    words: list[str | tuple[int, str]] = list(terms)
                    q = tantivy.Query.phrase_query(self._schema, field, words, query.slop)
                clauses.append((tantivy.Occur.Should, _boost(q, w)))
            return tantivy.Query.boolean_query(clauses)
        if isinstance(query, QueryString):
            parsed, errors = self._index.parse_query_lenient(
                self._internal_names(query.query), self.fields, field_boosts={f: w for f, w in weights}
            )
            if any("positions" in str(e) for e in errors):  # the lenient parser drops such a phrase silently
                self._need_positions("a quoted phrase in a query string")
            return parsed
        if isinstance(query, Boolean):
            parts: list[tuple[tantivy.Occur, tantivy.Query]] = []
            for occur, subs in (
                (tantivy.Occur.Must, query.must),
                (tantivy.Occur.Should, query.should),
                (tantivy.Occur.MustNot, query.must_not),
            ):
                for sub in subs:
                    compiled = self.compile(sub, boosts)
                    if compiled is None:
                        if occur == tantivy.Occur.Must:
                            return None  # a required clause with no terms matches nothing
                        continue
                    parts.append((occur, compiled))
            if not any(o != tantivy.Occur.MustNot for o, _ in parts):
                return None
            return tantivy.Query.boolean_query(parts)
        raise TypeError(f"not a text query: {query!r}")

    def match_terms(self, text: str) -> tuple[tuple[str, float], ...]:
        """A `Match` query's distinct terms with their query weights (counts), and for each term no document
        holds, its longest known prefix at `backoff.WEIGHT` (analyzer version 5, :mod:`hybrid.index.backoff`).
        Remembered for the latest texts (the index never changes): a search asks for its query's terms for
        the index, then again for the rows the index does not hold yet."""
        found = self._matched.get(text)
        if found is not None:
            return found
        counts = query_terms(self.analyzer, text)
        if not self.analyzer.backs_off:
            return counts
        found = self._backed_off(counts)
        if len(self._matched) >= MATCHED_TEXTS:
            self._matched.clear()
        self._matched[text] = found
        return found

    def _backed_off(self, counts: tuple[tuple[str, int], ...]) -> tuple[tuple[str, float], ...]:
        """`counts` and, for each term no document holds, its longest known prefix at `backoff.WEIGHT`."""
        fields = [COMBINED_FIELD] if self.weights is not None else self.fields
        searcher = self.searcher

        def known(term: str) -> bool:
            return any(searcher.doc_freq(f, term) > 0 for f in fields)

        out: list[tuple[str, float]] = list(counts)
        for term, n in counts:
            shorter = None if known(term) else backoff.backoff(term, known)
            if shorter is not None:
                out.append((shorter, n * backoff.WEIGHT))
        return tuple(out)

    def _piece_clauses(
        self, text: str, boosts: Mapping[str, float] | None
    ) -> list[tuple[tantivy.Occur, tantivy.Query]]:
        """The word-piece field's clauses of a `Match` (none without that field): each query word's
        pieces share one query weight, the field `PIECE_WEIGHT` of the word field's."""
        if not self.piece_fields:
            return []
        pieces = self.analyzer.query_pieces(text)
        out = []
        for field, column in zip(self.piece_fields, self.columns):
            w = PIECE_WEIGHT * float((boosts or {}).get(column, 1.0))
            for piece, share in pieces.items():
                q = tantivy.Query.term_query(self._schema, field, piece)
                out.append((tantivy.Occur.Should, tantivy.Query.boost_query(q, w * share)))
        return out

    def _need_positions(self, what: str) -> None:
        if not self.positions:
            raise QueryError(
                f"{what} needs term positions, and this full-text index was built without them; "
                "rebuild it with create_fts_index(..., positions=True, replace=True), or search the words as a Match"
            )

    def known_share(self, query: TextQuery) -> float | None:
        """The share of a `Match` query's distinct terms that occur in at least one indexed document
        (None for other query forms or no terms): low when the query is in another language than
        the index, or uses words the corpus never does."""
        if not isinstance(query, Match):
            return None
        terms = set(self.analyzer.terms(query.text))
        if not terms:
            return None
        fields = [COMBINED_FIELD] if self.weights is not None else self.fields
        searcher = self.searcher
        known = sum(any(searcher.doc_freq(f, t) > 0 for f in fields) for t in terms)
        return known / len(terms)

    def doc_share(self, word: str) -> float | None:
        """The share of the indexed documents that hold `word` as this index analyses it (the most of
        its terms, any field); None when the analyzer drops the word (one of its stop words)."""
        terms = set(self.analyzer.terms(word))
        if not terms or not self.num_docs:
            return None
        fields = [COMBINED_FIELD] if self.weights is not None else self.fields
        searcher = self.searcher
        return max(searcher.doc_freq(f, t) for f in fields for t in terms) / self.num_docs

    def _with_proximity(self, matched: tantivy.Query, query: Match, weights: list[tuple[str, float]]) -> tantivy.Query:
        """`matched` plus, for each pair of neighbouring distinct query terms, a phrase clause with slop."""
        terms = self.analyzer.terms(query.text)
        pairs = list(dict.fromkeys((a, b) for a, b in zip(terms, terms[1:]) if a != b))
        clauses = [(tantivy.Occur.Must, matched)]
        for a, b in pairs:
            for field, w in weights:
                near = tantivy.Query.phrase_query(self._schema, field, [a, b], PROXIMITY_SLOP)
                clauses.append((tantivy.Occur.Should, _boost(near, query.proximity * w)))
        return tantivy.Query.boolean_query(clauses)

    def _internal_names(self, text: str) -> str:
        """Rewrite `column:` prefixes of query-parser syntax to the index's field names."""
        for column, field in sorted(zip(self.columns, self.fields), key=lambda cf: -len(cf[0])):
            text = re.sub(rf"(?<![\w.]){re.escape(column)}:", f"{field}:", text)
        return text

    def search(
        self,
        query: tantivy.Query,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
        bm25: tuple[float, float] | None = None,
        restrict: tantivy.Query | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` (row ids, BM25 scores), best first, restricted to `allowed` and never `excluded`.

        Both sets are sorted uint64 arrays. Small allowed sets go into tantivy
        as a term-set clause; otherwise candidates are over-fetched and filtered
        until `k` survive or the matches run out, so the result is exact.
        `bm25` = (k1, b) other than tantivy's rescores its top max(k, RESCORE_DEPTH).
        `restrict`, a clause over the filter fields that selects exactly the allowed
        documents, replaces `allowed` inside tantivy.
        """
        if restrict is not None:
            query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, query), (tantivy.Occur.Must, tantivy.Query.const_score_query(restrict, 0.0))]
            )
            allowed = None
        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        if bm25 is not None and bm25 != TANTIVY_BM25:
            ids, scores, addresses = self._hits(query, max(k, RESCORE_DEPTH), allowed, excluded)
            searcher = self.searcher
            rescored = [_rescore(json.loads(query.explain(searcher, a).to_json()), *bm25) for a in addresses]
            new = np.asarray(rescored, dtype=np.float32)
            order = np.lexsort((ids, -new))[:k]
            return ids[order], new[order]
        ids, scores, _ = self._hits(query, k, allowed, excluded)
        return ids, scores

    def _hits(
        self, query: tantivy.Query, k: int, allowed: np.ndarray | None, excluded: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, list[tantivy.DocAddress]]:
        """search()'s top `k` with tantivy's scores, and the hits' document addresses."""
        if allowed is not None and use_term_set(len(allowed), k, self.num_docs):
            restricted = tantivy.Query.term_set_query(self._schema, ROWID_FIELD, allowed.tolist())
            query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, query), (tantivy.Occur.Must, tantivy.Query.const_score_query(restricted, 0.0))]
            )
            allowed = None
        limit = k
        if excluded is not None and len(excluded):  # deleted rows are spread like the rest: few are among the top
            limit = min(k + len(excluded), overfetch_depth(max(self.num_docs - len(excluded), 1), k, self.num_docs))
        if allowed is not None:  # expect k allowed hits among k / selectivity, fetch twice that
            limit = max(limit, 4 * k, overfetch_depth(len(allowed), k, self.num_docs))
        searcher = self.searcher
        while True:
            hits = searcher.search(query, limit, count=False).hits
            addresses = [h[1] for h in hits]
            ids = np.asarray(searcher.fast_field_values(ROWID_FIELD, addresses), dtype=np.uint64)
            keep = np.ones(len(ids), dtype=bool)
            if excluded is not None and len(excluded):
                keep &= ~_isin_sorted(ids, excluded)
            if allowed is not None:
                keep &= _isin_sorted(ids, allowed)
            if keep.sum() >= k or len(hits) < limit:
                chosen = np.flatnonzero(keep)[:k]  # scores and addresses of the kept hits only
                scores = np.array([hits[i][0] for i in chosen.tolist()], dtype=np.float32)
                return ids[chosen], scores, [addresses[i] for i in chosen.tolist()]
            limit *= 4


def use_term_set(allowed: int, k: int, num_docs: int) -> bool:
    """Whether restricting tantivy to the allowed ids (a term-set clause, cost ~ allowed) is cheaper than
    over-fetching hits and keeping the allowed ones (cost ~ the depth, :func:`overfetch_depth`).
    On 100,000 rows and k = 10 the two meet near 300 allowed rows."""
    return TERM_SET_COST * allowed <= overfetch_depth(allowed, k, num_docs)


def _rescore(node: dict[str, Any], k1: float, b: float) -> float:
    """A hit's score from tantivy's explanation, with every term's BM25 recomputed for (k1, b) from
    the term frequency, field length and average length tantivy reports; boosts and sums kept."""
    kids = node.get("details") or []
    if node.get("description", "").startswith("TermQuery"):
        idf = next(d["value"] for d in kids if d["description"].startswith("idf"))
        norm = next(d for d in kids if d["description"].startswith("freq /"))
        v = {d["description"].split(",")[0]: d["value"] for d in norm["details"]}
        tf, dl, avgdl = v["freq"], v["dl"], v["avgdl"]
        return float((k1 + 1) * idf * tf / (tf + k1 * (1 - b + b * dl / max(avgdl, 1e-9))))
    if not kids:
        return float(node["value"])
    new = [_rescore(d, k1, b) for d in kids]
    if len(kids) == 1:  # a boost: the same factor over the new value
        old = kids[0]["value"]
        return float(node["value"] * new[0] / old) if old else float(node["value"])
    return sum(new)  # a boolean clause: the sum of its parts


def _boost(q: tantivy.Query, weight: float) -> tantivy.Query:
    return q if weight == 1.0 else tantivy.Query.boost_query(q, weight)


def _isin_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(sorted_set, values)
    pos[pos == len(sorted_set)] = 0
    return sorted_set[pos] == values if len(sorted_set) else np.zeros(len(values), dtype=bool)
