"""The rows an index does not hold yet, kept ready for search and carried from version to version.

Rows written since an index was built are searched beside it: exactly for
vectors, by BM25 on the index's statistics for text. Reading and analysing
those rows for every query (or once per version) would make a table that is
written to all day slower the more it is written. A tail log instead keeps each
unindexed row's vector, or its analysed terms, from the first version that
needs it, in append-only arrays shared by every later version: a new version
reads only the rows its commit added. A version's view is the positions of its
own unindexed rows in the log, so versions (and time travel) never see each
other's rows. Row ids are never reused and a row's content never changes, so a
logged row is valid in every version where it is live.

What a search derives from a version's view (the log positions of its rows, the
vectors as one block, the live mask of a text tail) is made once per version
(:class:`TailRows`, :func:`unindexed_rows`), by the writer right after its commit
(:func:`log_unindexed`), not by every search: a search right after a small write
pays only for scoring the few rows the indexes miss. The rows of a version are
usually one contiguous run of the log (appends since the index was built), so its
vector block is a view of the log, not a copy.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from hybrid.index.analyzer import PIECE_WEIGHT
from hybrid.index.catalog import IndexEntry
from hybrid.index.coverage import member
from hybrid.index.exact import distances_from_dots
from hybrid.index.fulltext import COMBINED_FIELD, FullTextIndex
from hybrid.index.vector import top_k
from hybrid.index.view import IndexedSnapshot

Reader = Callable[[np.ndarray, list[str]], pa.Table]
"""Reads the given live row ids (in order) with the given columns, from the version being viewed."""


@dataclass
class TailRows:
    """Some rows of a tail log as one search (or every unfiltered search of one version) sees them:
    their log positions and what scoring derives from those, made once and kept with them."""

    positions: np.ndarray  # log positions of the rows
    logged: int  # log length when made: rows logged later belong to other versions
    run: slice | None = None  # the positions as a slice, when they are one ascending run of the log
    block: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)  # vector tails
    alive: np.ndarray | None = field(default=None, repr=False)  # text tails: mask over the first `logged`

    @property
    def nbytes(self) -> int:
        parts = [self.positions, self.alive, *(self.block or ())]
        return sum(int(p.nbytes) for p in parts if p is not None)


def _run(positions: np.ndarray) -> slice | None:
    """`positions` as a slice when they are one ascending run of consecutive log positions."""
    n = len(positions)
    if n == 0 or int(positions[-1]) - int(positions[0]) != n - 1:
        return None
    if n > 1 and not bool((np.diff(positions) == 1).all()):
        return None
    return slice(int(positions[0]), int(positions[-1]) + 1)


class TailLog:
    """Append-only store of the unindexed rows seen so far, in the order first seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids = np.empty(0, np.uint64)  # by position
        self._order: np.ndarray | None = None  # positions sorting `ids`, when they are not already sorted

    def positions(self, wanted: np.ndarray, read: Reader) -> np.ndarray:
        """Log positions of the sorted row ids `wanted`, logging (reading) those not logged yet."""
        with self.lock:
            ids, order = self.ids, self._order
            sorted_ids = ids if order is None else ids[order]
            missing = wanted[~member(wanted, sorted_ids)]
            if len(missing):
                self._append(missing, read)
                ids = self.ids
                if order is not None or (len(ids) > len(missing) and ids[-len(missing) - 1] > missing[0]):
                    self._order = np.argsort(ids, kind="stable")
                order = self._order
                sorted_ids = ids if order is None else ids[order]
        at = np.searchsorted(sorted_ids, wanted)
        return at if order is None else order[at]

    def rows(self, wanted: np.ndarray, read: Reader) -> TailRows:
        """The sorted row ids `wanted` as :class:`TailRows` (logging those not logged yet)."""
        positions = self.positions(wanted, read)
        return TailRows(positions, int(positions.max()) + 1 if len(positions) else 0, _run(positions))

    def prepare(self, rows: TailRows) -> None:
        """Make what searches of `rows` derive from them (callers may do it ahead of the first search)."""

    def _append(self, ids: np.ndarray, read: Reader) -> None:
        raise NotImplementedError


def _grown(buffer: np.ndarray, used: int, extra: np.ndarray) -> np.ndarray:
    """`buffer[:used]` followed by `extra`, reallocating geometrically (readers keep the old array)."""
    need = used + len(extra)
    if need > len(buffer):
        bigger = np.empty((max(need, 2 * len(buffer), 64),) + buffer.shape[1:], dtype=buffer.dtype)
        bigger[:used] = buffer[:used]
        buffer = bigger
    buffer[used:need] = extra
    return buffer


class VectorTail(TailLog):
    """Unindexed rows' vectors (float32) and squared norms, for exact search beside an HNSW index."""

    def __init__(self, column: str, dim: int) -> None:
        super().__init__()
        self.column = column
        self._vectors = np.empty((0, dim), np.float32)
        self._squares = np.empty(0, np.float64)

    def _append(self, ids: np.ndarray, read: Reader) -> None:
        col = read(ids, [self.column]).column(self.column).combine_chunks()
        valid = ~col.is_null().to_numpy(zero_copy_only=False)
        dim = self._vectors.shape[1]
        matrix = np.zeros((len(ids), dim), np.float32)
        if valid.any():
            matrix[valid] = col.filter(pa.array(valid)).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        squares = np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64)
        squares[~valid] = np.nan  # a row without a vector is never a hit
        n = len(self.ids)
        self._vectors = _grown(self._vectors, n, matrix)
        self._squares = _grown(self._squares, n, squares)
        self.ids = np.concatenate([self.ids, ids])

    def prepare(self, rows: TailRows) -> None:
        """Keep the vectors of `rows` with them as one block: a view of the log when they are one run of
        it, else a copy, kept up to :data:`KEPT_COPY_BYTES` (a larger one is gathered per search)."""
        if rows.block is None:
            block, copied = self._block(rows)
            if not copied or sum(a.nbytes for a in block) <= KEPT_COPY_BYTES:
                rows.block = block

    def _block(self, rows: TailRows) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], bool]:
        """(ids, vectors, squared norms) of `rows` with a vector, and whether they had to be copied."""
        vectors, squares, ids = self._vectors, self._squares, self.ids
        run = rows.run
        if run is not None:  # appends since the index was built: no gather
            block = (ids[run], vectors[run], squares[run])
        else:
            p = rows.positions
            block = (ids[p], vectors[p], squares[p])
        has_vector = ~np.isnan(block[2])
        if not has_vector.all():
            return (block[0][has_vector], block[1][has_vector], block[2][has_vector]), True
        return block, run is None

    def search(self, rows: TailRows, q: np.ndarray, metric: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest (row ids, distances) among `rows`, sorted (ties by row id)."""
        ids, dist = self.candidates(rows, q, metric, k)
        return top_k(ids, dist, k)

    def merged(
        self,
        rows: TailRows,
        q: np.ndarray,
        metric: str,
        k: int,
        ids: np.ndarray,
        dist: np.ndarray,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest of an index's hits (`ids`, `dist`) and `rows` (those in the sorted `allowed` ids,
        when given), sorted (ties by row id). A row farther than the farthest of `k` hits cannot enter, so
        usually none or a few are merged; with none the hits come back as they were (as a search of a
        table with no unindexed rows returns them)."""
        tids, td = self.candidates(rows, q, metric, k, float(dist.max()) if len(ids) >= k else None, allowed)
        if len(tids) == 0 and len(ids) <= k:
            return ids, dist
        return top_k(np.concatenate([ids, tids]), np.concatenate([dist, td]), k)

    def candidates(
        self,
        rows: TailRows,
        q: np.ndarray,
        metric: str,
        k: int,
        within: float | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(row ids, distances) of `rows` that hold the `k` nearest, unsorted: every one of them when they
        are at most :data:`UNSORTED_ROWS` (a caller merging them with an index's hits then selects once).
        `within`: only rows at most that far (the farthest of an index's `k` hits: no other row can enter
        the merged top `k`), usually none or a few, so that the caller's merge is small or skipped.
        `allowed`: only rows among these sorted ids (a filter's: `rows` stay the version's, made once)."""
        ids, matrix, squares = rows.block if rows.block is not None else self._block(rows)[0]
        if len(ids) == 0:
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        q = np.ascontiguousarray(q, dtype=np.float32)
        q64 = q.astype(np.float64)
        dist = distances_from_dots(np.asarray(matrix @ q, dtype=np.float32), squares, float(q64 @ q64), metric)
        if within is not None:
            near = np.flatnonzero(dist <= within)
            ids, dist = ids[near], dist[near]
        if allowed is not None:
            keep = member(ids, allowed)
            ids, dist = ids[keep], dist[keep]
        return (ids, dist) if len(ids) <= UNSORTED_ROWS else top_k(ids, dist, k)


UNSORTED_ROWS = 4_096
"""Up to this many unindexed rows, a vector tail's search returns all of them unsorted (see there)."""


KEPT_COPY_BYTES = 4 << 20
"""A version's unindexed vectors gathered into a copy (rows deleted among them) are kept with it up to
this size (a version's rows are kept for the 16 newest versions searched)."""


class _Column:
    """A growable array; readers take a prefix of the length they saw (appends never move it)."""

    def __init__(self, dtype: type) -> None:
        self.data: np.ndarray = np.empty(4, dtype)
        self.n = 0

    def append(self, value: float) -> None:
        if self.n == len(self.data):
            bigger = np.empty(2 * len(self.data), self.data.dtype)
            bigger[: self.n] = self.data
            self.data = bigger  # a reader holding the old array still sees its prefix
        self.data[self.n] = value
        self.n += 1

    def view(self) -> np.ndarray:
        n = self.n
        return self.data[:n]


@dataclass
class _Field:
    """One scored field of a text tail: per logged row its length, and postings per term."""

    lengths: _Column
    postings: dict[str, tuple[_Column, _Column]]  # term -> (positions, term counts)


class TextTail(TailLog):
    """Unindexed rows' analysed terms, scored by BM25 on the main index's statistics.

    Scoring fresh rows in an index of their own would give them its IDF (a term in
    1 of 3 new rows looks rare) and rank them inconsistently, so plain term queries
    are scored with the main index's document count, document frequencies and
    average field length (tantivy's formula and the index's k1 and b), plus the
    fresh rows' own counts. A BM25F index is scored on its combined field: each
    column's counts and length times the column's weight. Tantivy quantizes field
    lengths, so scores agree with a rebuilt index to within a few percent.
    """

    def __init__(
        self, index: FullTextIndex, avg_len: Mapping[str, float], avg_pieces: Mapping[str, float] | None = None
    ) -> None:
        super().__init__()
        self.index = index
        self.avg_len = dict(avg_len)
        self.avg_pieces = dict(avg_pieces or {})
        """Average word-piece count per column (analyzer version 4's second field)."""
        self.per_column = {c: _Field(_Column(np.float64), {}) for c in index.columns}
        self.pieces = {c: _Field(_Column(np.float64), {}) for c in index.columns} if index.piece_fields else {}
        self.combined = _Field(_Column(np.float64), {}) if index.weights is not None else None
        self._df: dict[tuple[str, str], int] = {}

    def _append(self, ids: np.ndarray, read: Reader) -> None:
        rows = read(ids, list(self.index.columns))
        start = len(self.ids)
        combined: list[Counter[str]] = [Counter() for _ in range(len(ids))]
        for column in self.index.columns:
            w = self.index.weights.get(column, 1) if self.index.weights is not None else 1
            analyzer = self.index.analyzer
            for i, text in enumerate(rows.column(column).to_pylist()):
                counts = Counter(analyzer.terms(text)) if text else Counter()
                _post(self.per_column[column], start + i, counts)
                if self.pieces:
                    pieces = Counter(analyzer.pieces_of(analyzer.prepare(text))) if text else Counter()
                    _post(self.pieces[column], start + i, pieces)
                if self.combined is not None:
                    combined[i].update({t: n * w for t, n in counts.items()})
        if self.combined is not None:
            for i, counts in enumerate(combined):
                _post(self.combined, start + i, counts)
        self.ids = np.concatenate([self.ids, ids])

    def prepare(self, rows: TailRows) -> None:
        """The live mask of `rows` over the log positions they may hold (none needed for one run)."""
        if rows.alive is None and rows.run is None:
            alive = np.zeros(rows.logged, dtype=bool)
            alive[rows.positions] = True
            rows.alive = alive

    def search(
        self,
        rows: TailRows,
        query_text: str,
        boosts: Mapping[str, float] | None,
        k: int,
        k1: float,
        b: float,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` (row ids, BM25) among `rows` (those in the sorted `allowed` ids, when given) for a plain
        term query. A filter picks among the hits: the statistics stay those of every row of `rows`, as the
        index's are of every row it holds (and `rows` stay the version's, made once, not per filter).

        A term's postings list log positions in ascending order, so the rows of one run of the log
        (the usual case: the appends since the index was built) are one slice of each list, found by a
        binary search; other row sets are masked by their live mask."""
        counts: Sequence[tuple[str, float]] = self.index.match_terms(query_text)  # with the index's back-off
        pieces = tuple(self.index.analyzer.query_pieces(query_text).items()) if self.pieces else ()
        if not (counts or pieces) or len(rows.positions) == 0:
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        self.prepare(rows)
        run, alive = rows.run, rows.alive
        lo, hi = (run.start, run.stop) if run is not None else (0, rows.logged)  # later rows: other versions'
        n_docs = self.index.num_docs + self.index.deleted_docs + len(rows.positions)  # as tantivy counts
        # each matching (field, term): its BM25 factor, its rows' log positions and term counts
        per_field: list[tuple[np.ndarray, float, list[tuple[float, np.ndarray, np.ndarray]]]] = []
        scored = [(*f, counts) for f in self._scored(boosts)] + [(*f, pieces) for f in self._piece_fields(boosts)]
        for name, boost, fld, avg, terms in scored:
            matched: list[tuple[float, np.ndarray, np.ndarray]] = []
            for term, q_count in terms:
                found = fld.postings.get(term)
                if found is None:
                    continue
                at, tf = found
                m = min(at.n, tf.n)  # a row being logged by another thread may have one but not the other
                if m == 0:
                    continue
                pos, tf_here = at.data[:m], tf.data[:m]
                if int(pos[0]) < lo or int(pos[m - 1]) >= hi:  # else every posting lies in the run: no search
                    first, end = np.searchsorted(pos, (lo, hi)).tolist()
                    pos, tf_here = pos[first:end], tf_here[first:end]
                if alive is not None and len(pos):
                    keep = alive[pos]
                    pos, tf_here = pos[keep], tf_here[keep]
                if len(pos) == 0:
                    continue
                df = self._doc_freq(name, term) + len(pos)
                matched.append((q_count * boost * math.log(1 + (n_docs - df + 0.5) / (df + 0.5)), pos, tf_here))
            if matched:
                per_field.append((fld.lengths.view(), max(avg, 1e-9), matched))
        if not per_field:
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        return self._many(per_field, lo, hi, k, k1, b, allowed)

    def _many(
        self,
        per_field: Sequence[tuple[np.ndarray, float, Sequence[tuple[float, np.ndarray, np.ndarray]]]],
        lo: int,
        hi: int,
        k: int,
        k1: float,
        b: float,
        allowed: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` (row ids, BM25) of the matched postings, all scored at once (rows at log positions `lo:hi`)."""
        positions: list[np.ndarray] = []
        tfs: list[np.ndarray] = []
        norms: list[np.ndarray] = []
        factors: list[float] = []
        for lengths, avg, matched in per_field:
            joined = np.concatenate([m[1] for m in matched]) if len(matched) > 1 else matched[0][1]
            positions.append(joined)
            norms.append(k1 * (1 - b + b * lengths[joined] / avg))
            factors += [m[0] for m in matched]
            tfs += [m[2] for m in matched]
        pos = np.concatenate(positions) if len(positions) > 1 else positions[0]
        tf_all = np.concatenate(tfs) if len(tfs) > 1 else tfs[0]
        norm = np.concatenate(norms) if len(norms) > 1 else norms[0]
        weight = np.repeat(np.asarray(factors), [len(t) for t in tfs])
        scores = np.bincount(pos - lo, weights=weight * tf_all * (k1 + 1) / (tf_all + norm), minlength=hi - lo)
        hit = np.flatnonzero(scores > 0)
        ids, s = self.ids[hit + lo], scores[hit]
        if allowed is not None:
            keep = member(ids, allowed)
            ids, s = ids[keep], s[keep]
        order = np.lexsort((ids, -s))[:k]
        return ids[order].astype(np.uint64), s[order].astype(np.float32)

    def _doc_freq(self, field: str, term: str) -> int:
        """The main index's document frequency of `term` in `field` (remembered: the index never changes)."""
        key = (field, term)
        found = self._df.get(key)
        if found is None:
            found = self._df[key] = int(self.index.searcher.doc_freq(field, term))
        return found

    def _scored(self, boosts: Mapping[str, float] | None) -> Sequence[tuple[str, float, _Field, float]]:
        """(tantivy field, boost, tail field, average length) of each field the query scores."""
        if self.combined is not None and not boosts:
            weights = self.index.weights or {}
            avg = sum(weights.get(c, 1) * self.avg_len.get(c, 1.0) for c in self.index.columns)
            return [(COMBINED_FIELD, 1.0, self.combined, avg)]
        return [
            (f, float((boosts or {}).get(c, 1.0)), self.per_column[c], self.avg_len.get(c, 1.0))
            for f, c in zip(self.index.fields, self.index.columns)
        ]

    def _piece_fields(self, boosts: Mapping[str, float] | None) -> Sequence[tuple[str, float, _Field, float]]:
        """(tantivy field, boost, tail field, average length) of each word-piece field (none without them)."""
        return [
            (f, PIECE_WEIGHT * float((boosts or {}).get(c, 1.0)), self.pieces[c], self.avg_pieces.get(c, 1.0))
            for f, c in zip(self.index.piece_fields, self.index.columns)
            if self.pieces
        ]


def _post(fld: _Field, position: int, counts: Counter[str]) -> None:
    fld.lengths.append(sum(counts.values()))
    for term, n in counts.items():
        found = fld.postings.get(term)
        if found is None:
            found = fld.postings[term] = (_Column(np.int64), _Column(np.float64))
        found[0].append(position)
        found[1].append(n)


def average_pieces(index: FullTextIndex, texts: Mapping[str, Sequence[str | None]]) -> dict[str, float]:
    """Average word-piece count per column over a sample of documents (for tail scoring of the pieces field)."""
    a = index.analyzer
    out = {}
    for column in index.columns:
        values = texts[column]
        out[column] = float(np.mean([len(a.pieces_of(a.prepare(t))) if t else 0 for t in values])) if values else 1.0
    return out


def average_lengths(index: FullTextIndex, texts: Mapping[str, Sequence[str | None]]) -> dict[str, float]:
    """Average analysed length per column over a sample of documents (stored with the index for tail scoring)."""
    out = {}
    for column in index.columns:
        values = texts[column]
        out[column] = float(np.mean([len(index.analyzer.terms(t)) if t else 0 for t in values])) if values else 1.0
    return out


def vector_tail(view: IndexedSnapshot, entry: IndexEntry, column: str) -> VectorTail:
    """The tail log of the vector index `entry` (one per index and column name, shared by versions)."""

    def make() -> VectorTail:  # the schema is looked up only for a new log: a search finds the log made
        return VectorTail(column, view.schema.field(column).type.list_size)

    log: VectorTail = view.remember("vector_tails", (entry.path, column), make, keep=16)
    return log


def text_tail(view: IndexedSnapshot, entry: IndexEntry) -> TextTail:
    """The tail log of the full-text index `entry` (shared by versions)."""

    def make() -> TextTail:
        index = view.index(entry)
        assert isinstance(index, FullTextIndex)
        return TextTail(index, entry.params["avg_len"], entry.params.get("avg_pieces"))

    log: TextTail = view.remember("text_tails", entry.path, make, keep=16)
    return log


def unindexed_rows(view: IndexedSnapshot, entry: IndexEntry, log: TailLog, ids: np.ndarray | None = None) -> TailRows:
    """The rows of `log` a search of `view` scores: `ids` (sorted), or when None every unindexed row of
    `entry` in this version, made once per version and kept (a search right after a write finds them ready)."""
    if ids is not None:
        rows = log.rows(ids, view.snapshot.take)
        log.prepare(rows)
        return rows

    def make() -> TailRows:
        made = log.rows(view.coverage(entry).unindexed, view.snapshot.take)
        log.prepare(made)
        return made

    key = (entry.path, type(log).__name__, getattr(log, "column", None), view.version)
    found: TailRows = view.remember("tail_rows", key, make, keep=16)
    return found


def log_unindexed(view: IndexedSnapshot) -> None:
    """Log the new rows of every full-text and vector index of `view` and make their per-version
    :class:`TailRows` (a writer calls this right after its commit, so the first search of the new version
    finds them ready), for the indexes this table object has searched (loaded, or keeps a tail log of): a
    table that searches reads only what each commit added, and one that only writes prepares nothing.
    (Preparing them on every commit read every row written since the index was built, one fragment at a
    time, in a freshly opened table: a single-row commit cost 1.4 s after 1,000 single-row appends.)"""
    for entry in view.entries():
        vector = entry.kind == "vector"
        if not vector and not (entry.kind == "fts" and "avg_len" in entry.params):
            continue
        key = (entry.path, entry.columns[0]) if vector else entry.path
        if not _searched(view, entry, "vector_tails" if vector else "text_tails", key):
            continue
        if len(view.coverage(entry).unindexed):
            log = vector_tail(view, entry, entry.columns[0]) if vector else text_tail(view, entry)
            unindexed_rows(view, entry, log)


def _searched(view: IndexedSnapshot, entry: IndexEntry, namespace: str, key: object) -> bool:
    """Whether this table object has searched `entry`: its index loaded, or a tail log kept under `key`."""
    return view.has_loaded(entry) or view.keeps(namespace, key)
