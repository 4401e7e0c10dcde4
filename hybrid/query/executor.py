"""Running a `Query`: filter -> branches in parallel -> fusion -> rows -> rerank."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from hybrid import budget
from hybrid.embedders import binding
from hybrid.embedders.base import embed_queries
from hybrid.errors import HybridError, SchemaError, VectorError
from hybrid.index.cache import Coverage
from hybrid.index.catalog import IndexEntry, masks_of, text_batches, vector_column
from hybrid.index.exact import exact_search
from hybrid.index.fts_filters import filter_columns_of
from hybrid.index.fulltext import RESCORE_DEPTH, TANTIVY_BM25, FullTextIndex, _isin_sorted
from hybrid.index.language import foreign_reason
from hybrid.index.overfetch import overfetch_depth
from hybrid.index.rescore import Rescored, candidate_count, searcher
from hybrid.index.tail import text_tail, unindexed_rows, vector_tail
from hybrid.index.vector import VectorIndex
from hybrid.index.view import IndexedSnapshot
from hybrid.query import (
    branch_threads,
    calibration,
    confidence,
    expansion,
    grouped,
    highlight,
    like,
    passages,
    pinning,
    prepared,
    scoring_functions,
    single,
)
from hybrid.query.allowed import VECTORS_MAX_BYTES, Allowed, cached_allowed
from hybrid.query.filter import compile_filter
from hybrid.query.fusion import Ranked, counted_rows, fusion_window
from hybrid.query.limits import current_limits
from hybrid.query.result_columns import result_table
from hybrid.query.result_columns import with_result_columns as _with_result_columns
from hybrid.query.text import Match, Phrase, TextQuery
from hybrid.query.text_filter import to_query
from hybrid.query.vector_plan import MAX_FETCH, VectorPlan, inside_nprobe, plan_filtered, plan_inside
from hybrid.rerankers.base import RELEVANCE, check_reranked
from hybrid.storage.snapshot import Snapshot

if TYPE_CHECKING:
    from hybrid.query.search import Query

EXACT_MAX_ROWS = 4_096
"""A filtered vector branch searches exactly when at most this many rows are allowed."""
EXACT_MAX_FRACTION = 0.02
"""... or when the allowed rows are at most this fraction of the table."""
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hybrid-search")
    return _pool


@dataclass
class Branch:
    """One retrieval branch and what it found."""

    kind: str  # "vector" | "fts"
    column: str  # vector column, or the FTS index name
    entry: IndexEntry | None
    vector: np.ndarray | None = None
    text: TextQuery | None = None
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    raw: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))  # distance or BM25
    strategy: str = ""
    note: str = ""

    def ranked(self, weight: float = 1.0, window: int | None = None) -> Ranked:
        return Ranked(self.ids, -self.raw if self.kind == "vector" else self.raw, weight, window)


def _plan(q: Query, view: IndexedSnapshot) -> list[Branch]:
    snap = view.snapshot
    wants_text = q.query_type in ("auto", "fts", "hybrid")
    wants_vector = q.query_type in ("auto", "vector", "hybrid")
    if q.query_type not in ("auto", "vector", "fts", "hybrid"):
        raise ValueError(f"query_type must be auto, vector, fts or hybrid, got {q.query_type!r}")
    branches: list[Branch] = []
    indexes = view.entries()
    if wants_vector:
        resolved: dict[str, np.ndarray] = {}
        for column, vec in q.vectors:  # the last vector given for a column wins
            col = vector_column(snap, column)
            resolved.pop(col, None)
            resolved[col] = vec
        note = ""
        if not resolved and q.text_query is not None:
            embedded = _embed_query(q, snap)
            if embedded is not None:
                col, vec, note = embedded
                resolved[col] = vec
        for col, vec in resolved.items():
            dim = snap.schema.field(col).type.list_size
            if len(vec) != dim:
                raise VectorError(f"query vector has dimension {len(vec)}, column {col!r} holds {dim}")
            entry = next((e for e in indexes if e.kind == "vector" and e.columns == (col,)), None)
            branches.append(Branch("vector", col, entry, vector=vec, note=note))
    if wants_text and q.text_query is not None:
        fts = [e for e in indexes if e.kind == "fts"]
        if q.fts_index is not None:
            if q.fts_index not in {e.name for e in fts}:
                raise HybridError(f"no full-text index named {q.fts_index!r}; indexes: {[e.name for e in fts]}")
            fts = [e for e in fts if e.name == q.fts_index]
        if q.fts_columns is not None:
            fts = [e for e in fts if set(e.columns) == set(q.fts_columns)]
        if len(fts) > 1:
            raise HybridError(
                f"several full-text indexes ({[e.name for e in fts]}); choose with fts_index= or fts_columns="
            )
        if fts:
            branches.append(Branch("fts", fts[0].name, fts[0], text=q.text_query))
        elif not (q.query_type == "auto" and branches):  # auto: the embedded text alone is fine
            wanted = f" on {list(q.fts_columns)}" if q.fts_columns else ""
            raise HybridError(f"no full-text index{wanted}: call table.create_fts_index([...]) first")
    if not branches:
        raise ValueError(_missing_input(q))
    if q.query_type == "hybrid" and len({b.kind for b in branches}) < 2:
        raise ValueError("a hybrid query needs both a text query and a query vector (.text(...) and .vector(...))")
    return branches


def _embed_query(q: Query, snap: Snapshot) -> tuple[str, np.ndarray, str] | None:
    """The query text embedded for the bound vector column it targets, or None when no binding applies."""
    bindings = {b.column: b for b in binding.read(snap.manifest.metadata)}
    if not bindings:
        return None
    if q.vector_column is not None:
        if q.vector_column not in bindings:
            raise SchemaError(f"column {q.vector_column!r} has no embedder bound; bound columns: {sorted(bindings)}")
        target = bindings[q.vector_column]
    elif len(bindings) == 1:
        target = next(iter(bindings.values()))
    else:
        raise SchemaError(f"several vector columns have embedders ({sorted(bindings)}); choose with vector_column=")
    text = _query_text(q)
    if text is None:
        if q.query_type == "auto":
            return None
        raise ValueError("only a plain text query (a string, Match or Phrase) can be embedded for the vector branch")
    start = time.perf_counter()
    vec = target.embedder.embed_query(text)
    ms = (time.perf_counter() - start) * 1e3
    return target.column, vec, f"query embedded by {target.embedder_name} in {ms:.1f} ms; "


def _missing_input(q: Query) -> str:
    if q.query_type in ("vector",) and q.text_query is not None:
        return "a vector query needs a query vector: pass one, or bind an embedder to the table"
    if q.query_type == "fts" and q.vectors:
        return "a full-text query needs text"
    return "empty query: pass text and/or a query vector"


def _depth(q: Query, n_branches: int) -> int:
    want = q.k + q.skip + (len(q.examples.excluded) if q.examples is not None else 0)
    if q.depth is not None:
        return max(q.depth, want)
    deeper = n_branches > 1 or q.reranker is not None or not q.prefilter or bool(q.functions)
    return max(50, 2 * want) if deeper else want


def _allowed(q: Query, view: IndexedSnapshot) -> Allowed | None:
    """The rows the filter allows; cached per (version, filter), since versions never change, and carried
    from the filter's last version by the commits' delta (:func:`hybrid.query.allowed.carried_rows`)."""
    if q.filter_sql is None:
        return None
    return cached_allowed(view, compile_filter(q.filter_sql, view.schema))


# -- the vector branch ---------------------------------------------------------------------


def _run_vector(
    q: Query, view: IndexedSnapshot, b: Branch, allowed: Allowed | None, k: int, steady: int | None = None
) -> None:
    """The branch's `k` nearest rows, equal distances in row id order. Exact search keeps, of the rows
    tied with the `k`-th, those of the smallest ids (:func:`hybrid.index.vector.top_k`); a graph walk
    fetches one row more, and when it ties with the `k`-th, the walk's whole candidate list (its ef:
    the same walk), so which tied rows a list keeps does not depend on how deep it was searched and
    the pages of a query agree. `steady`: the rows every page counts (a fusion window): a list deeper
    than that is the `steady` nearest, then the rows new in searches 4, 16 ... times as deep, as far
    as `k` (a deeper graph walk is another walk: it may find rows the shallower one missed), so a
    shallower search's list (an earlier page's) is the start of a deeper one's."""
    if steady is not None and k > steady:
        ids: list[np.ndarray] = []
        raw: list[np.ndarray] = []
        depth = steady
        while True:
            _run_vector(q, view, b, allowed, depth)
            new = ~np.isin(b.ids, np.concatenate(ids)) if ids else np.ones(len(b.ids), bool)
            ids.append(b.ids[new])
            raw.append(b.raw[new])
            if sum(map(len, ids)) >= k or len(b.ids) < depth:
                break
            depth *= 4
        b.ids, b.raw = np.concatenate(ids)[:k], np.concatenate(raw)[:k]
        return
    if k <= 0:
        _search_vector(q, view, b, allowed, k)
        return
    _search_vector(q, view, b, allowed, k + 1)
    if len(b.ids) > k and b.raw[k] == b.raw[k - 1] and b.entry is not None:
        walk = q.ef or searcher(view, b.entry).ef_search
        if walk > k + 1:
            _search_vector(q, view, b, allowed, walk)
    if len(b.ids) > 1 and bool(np.any(b.raw[1:] == b.raw[:-1])):
        order = np.lexsort((b.ids, b.raw))
        b.ids, b.raw = b.ids[order], b.raw[order]
    b.ids, b.raw = b.ids[:k], b.raw[:k]


def _search_vector(q: Query, view: IndexedSnapshot, b: Branch, allowed: Allowed | None, k: int) -> None:
    snap = view.snapshot
    assert b.vector is not None
    metric = b.entry.params["metric"] if b.entry else "cosine"
    if b.entry is None:
        b.strategy = "exact search (no index)"
        live_masks = allowed.masks if allowed is not None else snap.row_masks()
        b.ids, b.raw = exact_search(view, b.column, b.vector, metric, k, live_masks)
        return
    cov = view.coverage(b.entry)
    n_allowed = len(allowed.ids) if allowed is not None else cov.live
    index = searcher(view, b.entry)
    ef = q.ef or index.ef_search
    unindexed_allowed = 0
    if len(cov.unindexed):  # rows the index cannot return; skipped on the common, fully indexed path
        unindexed_allowed = len(_unindexed_allowed(cov, allowed)) if allowed is not None else len(cov.unindexed)
    if allowed is not None:
        indexed_allowed = n_allowed - unindexed_allowed
        if isinstance(index, Rescored) and index.filters_inside:
            nprobe = inside_nprobe(ef, n_allowed, cov.live, index.lists)
            kept = n_allowed * 4 * len(b.vector) <= VECTORS_MAX_BYTES  # the allowed set keeps its gathered vectors
            plan = plan_inside(n_allowed, cov.live, candidate_count(k, index.rescore), nprobe, index.list_rows, kept)
            if not plan.exact:
                _search_inside(view, b, index, cov, allowed, k, nprobe, plan)
                return
            why = f"cheaper than the IVF scan: {plan.exact_cost:.0f} < {plan.index_cost:.0f}"
            _exact_allowed(view, b, allowed, metric, k, why, compressed=True)
            return
        plan = plan_filtered(n_allowed, cov.live, k, ef)
        found = None
        if not plan.exact and indexed_allowed >= k:
            found = _overfetch(index, b.vector, k, ef, plan.fetch, allowed.flags(snap.manifest.next_rowid))
        if found is None:
            if plan.exact:
                why = f"cheaper than HNSW: {plan.exact_cost:.0f} < {plan.index_cost:.0f}"
            elif indexed_allowed < k:
                why = f"the index holds only {indexed_allowed} of them"
            else:  # a graph walk with the filter would be approximate here too: the allowed rows are elsewhere
                why = f"HNSW's nearest {MAX_FETCH} held fewer than {k} of them: they lie away from the query"
            _exact_allowed(view, b, allowed, metric, k, why, compressed=isinstance(index, Rescored))
            return
        ids, d, fetched = found
        b.strategy = (
            f"{index.label} {b.entry.name} nearest {fetched}, kept the allowed of {n_allowed} rows"
            f" (ef={max(ef, fetched)})"
        )
        b.ids, b.raw = _with_unindexed(view, b, cov, allowed, metric, k, ids, d)
        return
    if len(cov.dead) and isinstance(index, Rescored) and index.filters_inside:  # skipped inside the list scan
        b.strategy = (
            f"{index.label} {b.entry.name} (nprobe={ef}), skipping {len(cov.dead)} dead rows inside its list scan"
        )
        ids, d = index.search(b.vector, k, ef=ef, among=cov.alive_bitmap(snap.manifest.next_rowid + 1))
    elif len(cov.dead):  # rows deleted since the build: over-fetch past them, as for a filter
        alive = cov.alive_flags(snap.manifest.next_rowid + 1)  # kept with the version's coverage
        indexed_live = cov.live - unindexed_allowed
        found = _overfetch(index, b.vector, k, ef, overfetch_depth(indexed_live, k, index.count), alive)
        if found is None and indexed_live >= k:
            b.strategy = f"exact over the live rows (HNSW's nearest {MAX_FETCH} held fewer than {k} of them)"
            b.ids, b.raw = exact_search(view, b.column, b.vector, metric, k, snap.row_masks())
            return
        ids, d, fetched = found if found is not None else (np.empty(0, np.uint64), np.empty(0, np.float32), 0)
        b.strategy = (
            f"{index.label} {b.entry.name} nearest {fetched}, skipping {len(cov.dead)} dead rows"
            f" (ef={max(ef, fetched)})"
        )
    else:
        b.strategy = f"{index.label} {b.entry.name} (ef={ef})"
        ids, d = index.search(b.vector, k, ef=ef)
    expected = min(k, n_allowed - unindexed_allowed)
    if len(ids) < expected:  # the graph walk could not fill k: be exact instead
        b.strategy += "; fell back to exact"
        b.ids, b.raw = exact_search(view, b.column, b.vector, metric, k, snap.row_masks())
        return
    b.ids, b.raw = _with_unindexed(view, b, cov, allowed, metric, k, ids, d)


def _exact_allowed(
    view: IndexedSnapshot, b: Branch, allowed: Allowed, metric: str, k: int, why: str, compressed: bool
) -> None:
    """The branch's hits by exact search over the allowed rows (those of a `compressed` index's table are
    read, not mapped: the process's memory stays bounded)."""
    assert b.vector is not None
    b.strategy = f"exact over {len(allowed.ids)} allowed rows ({why})"
    b.ids, b.raw = allowed.vectors(view, b.column, metric, read=compressed).search(b.vector, metric, k)


def _search_inside(
    view: IndexedSnapshot,
    b: Branch,
    index: Rescored,
    cov: Coverage,
    allowed: Allowed,
    k: int,
    nprobe: int,
    plan: VectorPlan,
) -> None:
    """The branch's hits from an IVF index whose list scan skips the rows the filter does not allow
    (:func:`plan_inside`), with the allowed rows it does not hold yet searched exactly."""
    assert b.entry is not None and b.vector is not None
    ids, d = index.search(b.vector, k, ef=nprobe, among=allowed.bitmap(view.snapshot.manifest.next_rowid))
    b.strategy = (
        f"{index.label} {b.entry.name}, the filter applied inside its list scan (nprobe={nprobe}, about"
        f" {plan.fetch} rows passed over; exact search over the {len(allowed.ids)} allowed rows would cost"
        f" {plan.exact_cost / plan.index_cost:.1f}x as much)"
    )
    b.ids, b.raw = _with_unindexed(view, b, cov, allowed, b.entry.params["metric"], k, ids, d)


def _unindexed_allowed(cov: Coverage, allowed: Allowed) -> np.ndarray:
    """The unindexed rows the filter allows: a binary search of each in the (sorted) allowed ids, not
    `np.intersect1d`, which sorts both (the allowed rows can be most of the table; the unindexed, a few)."""
    return allowed.among(cov.unindexed)


def _overfetch(
    index: VectorIndex | Rescored, vec: np.ndarray, k: int, ef: int, fetch: int, flags: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The k nearest allowed rows from the index's `fetch` nearest (deepening 4x while too few are
    allowed, up to MAX_FETCH), or None when even that finds fewer than k."""
    while True:
        ids, d = index.search(vec, fetch, ef=ef)
        keep = flags[ids.astype(np.int64)] if len(ids) else np.zeros(0, bool)
        if int(keep.sum()) >= k or len(ids) < fetch:
            return (ids[keep][:k], d[keep][:k], fetch) if int(keep.sum()) >= k else None
        if fetch >= MAX_FETCH:
            return None
        fetch = min(MAX_FETCH, 4 * fetch)


def _with_unindexed(
    view: IndexedSnapshot,
    b: Branch,
    cov: Coverage,
    allowed: Allowed | None,
    metric: str,
    k: int,
    ids: np.ndarray,
    d: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The index's hits merged with an exact search over the allowed rows it does not hold yet."""
    if len(cov.unindexed):
        tail = cov.unindexed if allowed is None else _unindexed_allowed(cov, allowed)
        if len(tail):
            assert b.vector is not None and b.entry is not None
            b.strategy += f" + exact over {len(tail)} unindexed rows"
            log = vector_tail(view, b.entry, b.column)
            rows = unindexed_rows(view, b.entry, log)  # the version's, made once: a filter picks among them
            ids, d = log.merged(rows, b.vector, metric, k, ids, d, None if allowed is None else allowed.ids)
    return ids, d


# -- the text branch -----------------------------------------------------------------------


def _run_text(q: Query, view: IndexedSnapshot, b: Branch, allowed: Allowed | None, k: int) -> None:
    snap = view.snapshot
    assert b.entry is not None and b.text is not None
    index = view.index(b.entry)
    assert isinstance(index, FullTextIndex)
    cov = view.coverage(b.entry)
    compiled = index.compile(b.text, q.boosts)
    if compiled is None:
        b.strategy = f"BM25 {b.entry.name}: the query has no indexable terms"
        return
    bm25 = (b.entry.params.get("k1", TANTIVY_BM25[0]), b.entry.params.get("b", TANTIVY_BM25[1]))
    restrict = None
    flt = allowed.flt if allowed is not None else None
    n_allowed = len(allowed.ids) if allowed is not None else 0
    # Inside tantivy a filter costs about one scored document per allowed row, over-fetching about
    # one hit per fetched row: push the filter down when fewer rows are allowed than would be fetched.
    if (
        flt is not None
        and "filter_fields" in b.entry.params
        and n_allowed <= overfetch_depth(n_allowed, k, index.num_docs)
    ):
        restrict = to_query(flt.tree, flt.literals, filter_columns_of(b.entry, snap), index.schema)
    ids, s = index.search(
        compiled,
        k,
        allowed=None if allowed is None else allowed.ids,
        excluded=cov.dead if len(cov.dead) else None,
        bm25=bm25,
        restrict=restrict,
    )
    b.strategy = f"BM25 {b.entry.name}" + ("" if allowed is None else f" within {len(allowed.ids)} allowed rows")
    if restrict is not None:
        b.strategy += " (the filter ran inside the full-text index)"
    if bm25 != TANTIVY_BM25:
        b.strategy += f" (top {max(k, RESCORE_DEPTH)} rescored with k1={bm25[0]:g}, b={bm25[1]:g})"
    if len(cov.unindexed):
        tail_ids = cov.unindexed if allowed is None else _unindexed_allowed(cov, allowed)
        if (
            isinstance(b.text, Match)
            and not b.text.fuzziness
            and not b.text.proximity
            and "avg_len" in b.entry.params
            and ("avg_pieces" in b.entry.params or not index.piece_fields)
        ):
            log = text_tail(view, b.entry)
            rows = unindexed_rows(view, b.entry, log)  # the version's, made once: a filter picks among them
            tids, ts = log.search(rows, b.text.text, q.boosts, k, *bm25, None if allowed is None else allowed.ids)
            b.strategy += f" + BM25 on the index's statistics over {len(tail_ids)} unindexed rows"
        else:
            tail = view.remember("tails", (b.entry.path, view.version), lambda: _tail_index(snap, index, cov.unindexed))
            tq = tail.compile(b.text, q.boosts)
            tids, ts = (
                tail.search(tq, k, allowed=None if allowed is None else allowed.ids)
                if tq is not None
                else (np.empty(0, np.uint64), np.empty(0, np.float32))
            )
            b.strategy += f" + in-memory index of {len(cov.unindexed)} unindexed rows (its own statistics)"
        merged_ids, merged_s = np.concatenate([ids, tids]), np.concatenate([s, ts])
        order = np.lexsort((merged_ids, -merged_s))[:k]
        ids, s = merged_ids[order], merged_s[order]
    b.ids, b.raw = ids, s


def _tail_index(snap: Snapshot, main: FullTextIndex, unindexed: np.ndarray) -> FullTextIndex:
    columns = list(main.columns)  # current names: entries() already follows renames
    masks = masks_of(snap, unindexed)  # live rows only
    batches = text_batches(snap, columns, masks)
    return FullTextIndex.build(None, columns, main.analyzer, batches, main.weights, positions=main.positions)


# -- putting it together -------------------------------------------------------------------


def _run_branches(
    q: Query, view: IndexedSnapshot, branches: list[Branch], allowed: Allowed | None, depth: int, flat: bool = False
) -> None:
    """Run the branches for `depth` hits each; `flat`: the query returns rows, not groups, so the
    table's title rows are left out inside the branches (:mod:`hybrid.query.passages`)."""
    gate = allowed if q.prefilter else None
    if flat:
        gate = passages.gate(view, gate)

    steady = fusion_window(q.depth) if len(branches) > 1 or q.grouping or q.reranker or q.functions else None

    def run(b: Branch) -> None:
        budget.check(f"the {b.kind} branch on {b.column}")  # a branch queued past the budget never starts
        if b.kind == "vector":
            _run_vector(q, view, b, gate, depth, steady)
        else:
            _run_text(q, view, b, gate, depth)

    if len(branches) > 1 and not branch_threads.on_threads():  # no idle core: a hand-off costs more than it saves
        for b in branches:
            run(b)
        budget.check("the end of the search branches")
        return
    # the other branches run in the pool while this thread runs the first: one hand-off, not one each
    others = [_executor().submit(budget.carry(run), b) for b in branches[1:]]
    try:
        run(branches[0])
    finally:
        for future in others:
            future.result()
    budget.check("the end of the search branches")


def _query_text(q: Query) -> str | None:
    t = q.text_query
    return t.text if isinstance(t, (Match, Phrase)) else None


def execute(q: Query, view: IndexedSnapshot | None = None) -> pa.Table:
    """The rows of `q`, from `view` when given (the version the fast vector path checked), else the
    table's current version."""
    seconds = current_limits().query_seconds
    if seconds is not None and budget.current() is None:
        with budget.time_budget(seconds):
            return _execute(q, view)
    return _execute(q, view)


def _execute(q: Query, view: IndexedSnapshot | None) -> pa.Table:
    budget.check("the start")
    if view is None:
        view = q.table.indexed_snapshot()  # the one freshness check of the query
    found = prepared.answer(q, view)  # a plain vector query, by its plan made once per version
    if found is not None:
        return found
    if q.pinned and (q.grouping is not None or q.reranker is not None):
        raise ValueError("pin() cannot be combined with group_by() or rerank()")
    if q.examples is not None:
        q = like.resolve(q, view, _fts_entry(q, view))
    handoff = expansion.Handoff()
    rows = _search(q, view, handoff)
    if q.highlighting is not None:
        budget.check("highlighting")
        text = _query_text(q)
        if text is None:
            raise ValueError("highlight needs a plain text query (a string, Match or Phrase)")
        rows = highlight.add_highlights(rows, view, text, q.highlighting, _fts_entry(q, view))
    if q.expansion is not None:
        budget.check("expansion")
        rows = expansion.expand(rows, view, q.expansion, handoff.plan, handoff.above)
    return rows


def _fts_entry(q: Query, view: IndexedSnapshot) -> IndexEntry | None:
    """The full-text index a text query searches (as :func:`_plan` picks it), or None."""
    fts = [e for e in view.entries() if e.kind == "fts"]
    if q.fts_index is not None:
        fts = [e for e in fts if e.name == q.fts_index]
    if q.fts_columns is not None:
        fts = [e for e in fts if set(e.columns) == set(q.fts_columns)]
    return fts[0] if len(fts) == 1 else None


def _search(q: Query, view: IndexedSnapshot, handoff: expansion.Handoff) -> pa.Table:
    """The hits; `handoff` receives what the expansion needs: its plan, with the texts read with the
    hits, and the hits ranked above them (a page's expansion leaves out what an earlier page showed)."""
    snap = view.snapshot
    budget.check("planning")
    branches = _plan(q, view)  # embeds the query text
    budget.check("the filter")
    allowed = _allowed(q, view)
    depth = _depth(q, len(branches))
    if q.grouping is not None:
        return grouped.execute(q, view, branches, allowed, depth)
    _run_branches(q, view, branches, allowed, depth, flat=True)
    if single.applies(q, branches):  # its list is the ranking: no fusion, no matching of ranks
        budget.check("reading the result rows")
        keep = _results_kept(q, branches[0].ids, allowed)
        if q.expansion is not None and q.skip:
            handoff.above = branches[0].ids[: q.skip] if keep is None else branches[0].ids[keep][: q.skip]
        return single.rows(q, view, branches[0], keep)
    fused_ids, fused_scores = _fused(q, view, branches, allowed)
    budget.check("fusion")
    if q.reranker is not None:
        n = candidate_pool(q.depth, branches, q.k + q.skip)
        rows = _rescored_rows(q, view, _reranked(q, snap, branches, fused_ids[:n], fused_scores[:n]), branches)
        if q.expansion is not None and q.skip:
            handoff.above = rows.column("_rowid").to_numpy()[: q.skip]
        return rows.slice(q.skip, q.k)
    extra: dict[str, np.ndarray] = {}
    if q.functions:
        if len(branches) == 1:
            n = candidate_pool(q.depth, branches, q.k + q.skip)
            fused_ids, fused_scores = fused_ids[:n], fused_scores[:n]
        r = scoring_functions.rescore(q.functions, view, fused_ids, fused_scores, _distances(q, branches))
        fused_ids, fused_scores, extra = r.ids, r.scores, r.columns
    if q.pinned:
        fused_ids, fused_scores, extra = pinning.pin(q.pinned, view, allowed, fused_ids, fused_scores, extra)
    pool, scores = fused_ids[q.skip : q.skip + q.k], fused_scores[q.skip : q.skip + q.k]
    columns = list(q.columns) if q.columns is not None else list(snap.schema.names)
    budget.check("reading the result rows")
    if q.expansion is not None and q.skip:
        handoff.above = fused_ids[: q.skip]
    if q.expansion is not None and not q.expansion.parent:  # the neighbours' texts in the same read
        planned = expansion.plan(view, q.expansion, pool, handoff.above)
        text = planned.layout.text
        read = np.concatenate([pool, planned.neighbours()])
        both = snap.take(read, list(dict.fromkeys([*columns, text])))
        taken = both.slice(0, len(pool)).select(list(dict.fromkeys(["_rowid", *columns])))
        planned.texts.update(zip(read.tolist(), both.column(text).to_pylist()))
        handoff.plan = planned
        rows = _with_result_columns(taken, pool, scores, branches)
    else:
        reader = single.row_reader(view, q.columns)  # snap.take, planned once per version
        rows = result_table(reader.schema, reader.table_arrays(pool), pool, scores, branches)
    for name, values in extra.items():
        rows = rows.append_column(name, pa.array(values[q.skip : q.skip + q.k]))
    return rows


def _distances(q: Query, branches: list[Branch]) -> bool:
    """Whether the candidates' scores are minus vector distances (a lone vector branch, no reranker)."""
    return len(branches) == 1 and branches[0].kind == "vector" and q.reranker is None


def _rescored_rows(q: Query, view: IndexedSnapshot, rows: pa.Table, branches: list[Branch]) -> pa.Table:
    """`rows` (best first) after the query's score functions: sorted again, `_score` the new score,
    each factor a column."""
    if not q.functions:
        return rows
    ids, scores = rows.column("_rowid").to_numpy(), rows.column("_score").to_numpy()
    r = scoring_functions.rescore(q.functions, view, ids, scores, _distances(q, branches))
    place = {int(x): i for i, x in enumerate(ids)}
    rows = rows.take(pa.array([place[int(x)] for x in r.ids], pa.int64()))
    rows = rows.set_column(rows.column_names.index("_score"), "_score", pa.array(r.scores, pa.float64()))
    for name, values in r.columns.items():
        rows = rows.append_column(name, pa.array(values))
    return rows


def _fused(
    q: Query, view: IndexedSnapshot, branches: list[Branch], allowed: Allowed | None
) -> tuple[np.ndarray, np.ndarray]:
    """The branches' hits fused into one list (best first), the filter applied when it is a postfilter."""
    if len(branches) == 1:
        fused_ids, fused_scores = branches[0].ids, branches[0].ranked().scores.astype(np.float64)
    else:
        weights = _weights(q, view, branches)
        window = fusion_window(q.depth)
        fused_ids, fused_scores = q.fusion.fuse([b.ranked(w, window) for b, w in zip(branches, weights)])
    keep = _results_kept(q, fused_ids, allowed)
    return (fused_ids, fused_scores) if keep is None else (fused_ids[keep], fused_scores[keep])


def _results_kept(q: Query, ids: np.ndarray, allowed: Allowed | None) -> np.ndarray | None:
    """Which of `ids` may be results (None: all): the filter when it is a postfilter, and never
    the query's own examples."""
    keep = None
    if allowed is not None and not q.prefilter:
        keep = _isin_sorted(ids, allowed.ids)
    if q.examples is not None:
        unlike = ~np.isin(ids, np.asarray(q.examples.excluded, np.uint64))
        keep = unlike if keep is None else keep & unlike
    return keep


def candidate_pool(candidates: int | None, branches: Sequence[Branch], rows: int) -> int:
    """How many of the fused candidates (best first) a reranker, or the score functions of a lone
    branch (whose scores no fusion bounds), rescore: those of each branch's fusion window (its first
    50, or `.candidates(n)`: the rows with a fused score, first in the fused order), or the `rows` the
    query needs when more (`candidates`: the query's `.candidates(n)`). The same candidates for every
    page within them, so its pages agree."""
    window = fusion_window(candidates)
    return max(len(counted_rows([b.ids for b in branches], [window] * len(branches))), rows)


def _reranked(
    q: Query, snap: Snapshot, branches: list[Branch], pool: np.ndarray, scores: np.ndarray, keep: tuple[str, ...] = ()
) -> pa.Table:
    """Every candidate of `pool` rescored by the query's reranker, best first (`_score` is the reranker's);
    columns the reranker needed but the query did not select are dropped again, except `keep`."""
    assert q.reranker is not None
    columns = list(q.columns) if q.columns is not None else list(snap.schema.names)
    text_cols = [c for c in [*_reranker_columns(q, snap, branches), *keep] if c not in columns]
    budget.check("reading the rows to rerank")
    rows = _with_result_columns(snap.take(pool, columns + text_cols), pool, scores, branches)
    text = _query_text(q)
    if text is None:
        raise ValueError("rerank needs a plain text query (a string, Match or Phrase)")
    budget.check("reranking")
    reranked = check_reranked(rows, q.reranker.rerank(text, rows), q.reranker)
    budget.check("the end of reranking")
    reranked = reranked.sort_by([(RELEVANCE, "descending")])
    score = reranked.column(RELEVANCE).cast(pa.float64())
    reranked = reranked.append_column("_fused_score", reranked.column("_score"))  # the order before reranking
    rows = reranked.set_column(reranked.column_names.index("_score"), "_score", score)
    if q.columns is not None:
        rows = rows.drop_columns([c for c in text_cols if c in rows.column_names and c not in keep])
    return rows


def _weights(q: Query, view: IndexedSnapshot, branches: list[Branch]) -> list[float]:
    """Each branch's fusion weight: explicit, equal, or "auto": the table's calibrated weight times the
    steepness of the branch's list for this query, and for text, when the query is confidently in another
    language than its index, 0 unless the index knows every one of its terms (:mod:`hybrid.query.confidence`)."""
    if isinstance(q.branch_weights, Mapping):
        given = q.branch_weights
        return [float(given.get(b.column, given.get(b.kind, 1.0))) for b in branches]
    if q.branch_weights != "auto":
        return [1.0] * len(branches)
    cal = _calibration(q, view, branches)
    steep = confidence.confidences([(b.raw, b.kind) for b in branches])
    known = [confidence.vocabulary(share, bool(why)) for share, why in (_known_share(view, b) for b in branches)]
    return [(cal.weights[b.kind] if cal is not None else 1.0) * s * k for b, s, k in zip(branches, steep, known)]


def _known_share(view: IndexedSnapshot, b: Branch) -> tuple[float | None, str | None]:
    """For a text branch whose plain query is confidently in another language than its index: the
    share of the query's terms the index knows, and why the query counts as foreign
    (:func:`hybrid.index.language.foreign_reason`; only the "auto" weights ask, so other queries skip
    the language check); (None, None) otherwise."""
    if b.kind != "fts" or b.entry is None or not isinstance(b.text, Match):
        return None, None
    index = view.index(b.entry)
    assert isinstance(index, FullTextIndex)
    reason = foreign_reason(b.text.text, index.analyzer.language, index.doc_share)
    if reason is None:
        return None, None
    return index.known_share(b.text), reason


def _calibration(q: Query, view: IndexedSnapshot, branches: list[Branch]) -> calibration.Calibration | None:
    """The cached self-retrieval calibration of a (bound vector column, text index) pair, if one applies."""
    vec = [b for b in branches if b.kind == "vector"]
    fts = [b for b in branches if b.kind == "fts"]
    snap = view.snapshot
    bound = {x.column: x for x in binding.read(snap.manifest.metadata)}
    entry = fts[0].entry if len(fts) == 1 else None
    if len(vec) != 1 or entry is None or vec[0].column not in bound:
        return None
    vb, fb, bind = vec[0], fts[0], bound[vec[0].column]
    live = view.live_ids()
    if len(live) < calibration.MIN_ROWS:
        return None
    plain = replace(q, filter_sql=None, boosts=None, ef=None)

    def make() -> calibration.Calibration:
        sample = np.sort(np.random.default_rng(0).choice(live, min(calibration.SAMPLE, len(live)), replace=False))
        rows = snap.take(sample, list(entry.columns)).to_pylist()
        texts = [" ".join(str(r[c]) for c in entry.columns if r[c]) for r in rows]

        def text_search(queries: list[str]) -> list[np.ndarray]:
            out = []
            for text in queries:
                b = Branch("fts", fb.column, entry, text=Match(text))
                _run_text(plain, view, b, None, calibration.TOP)
                out.append(b.ids)
            return out

        def vector_search(queries: list[str]) -> list[np.ndarray]:
            out = []
            for vector in embed_queries(bind.embedder, queries):  # one batched call, not one per probe
                b = Branch("vector", vb.column, vb.entry, vector=vector)
                _run_vector(plain, view, b, None, calibration.TOP)
                out.append(b.ids)
            return out

        return calibration.calibrate(sample, texts, {"vector": vector_search, "fts": text_search})

    key = (entry.path, vb.column, bind.embedder_name, bind.config_json)
    result: calibration.Calibration = view.remember("calibrations", key, make, keep=32)
    return result


def _reranker_columns(q: Query, snap: Snapshot, branches: list[Branch]) -> list[str]:
    """Columns a reranker sees even when not selected: the searched text, bound sources, its own needs."""
    wanted: list[str] = []
    for b in branches:
        if b.kind == "fts" and b.entry is not None:
            wanted += b.entry.columns
    bound = {x.column: x.source for x in binding.read(snap.manifest.metadata)}
    wanted += [bound[b.column] for b in branches if b.kind == "vector" and b.column in bound]
    wanted += [c for c in getattr(q.reranker, "columns", ()) if c in snap.schema.names]
    return list(dict.fromkeys(wanted))
