"""The search benchmark's floor: what any engine has to pay at least.

Raw ``hnswlib`` (same M, ef_construction, random seed and ef as hybrid) and raw ``tantivy`` (same
analyzer: ``hybrid.index.analyzer.Analyzer().tantivy_analyzer``, same schema and writer settings),
numpy RRF(k=60), the two branches run sequentially in one thread, ids returned as numpy arrays (no
rows fetched).  Filters: a numpy mask over an in-memory ``category`` array, then the same strategy
hybrid's planner picks, with its rules read from the installed ``hybrid``
(``hybrid.query.vector_plan.plan_filtered``: exact search over the allowed rows, or HNSW over-fetching
the nearest rows and keeping the allowed ones, deepened up to ``MAX_FETCH``, else a filtered HNSW walk;
for text ``hybrid.index.fulltext.use_term_set``: a tantivy term-set clause on the id, or over-fetching),
so the difference to hybrid is the engine around the same algorithms.
hnswlib builds with ``num_threads=-1`` and queries with ``num_threads=1``; the tantivy writer has one
thread.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from bench.files import dir_bytes
from bench.frame import now
from bench.search_data import DEPTH, DIM, Corpus, K, Where
from bench.search_quality import rrf_top, topk_desc
from bench.search_system import System


def planner_constants() -> dict[str, Any]:
    """hybrid's filtered-search rules, read from the installed code so the floor follows the same plan."""
    from hybrid.index import fulltext
    from hybrid.index.overfetch import overfetch_depth
    from hybrid.query import vector_plan

    return {
        "plan_filtered": vector_plan.plan_filtered,
        "MAX_FETCH": vector_plan.MAX_FETCH,
        "use_term_set": fulltext.use_term_set,
        "overfetch_depth": overfetch_depth,
    }


class FloorSystem(System):
    """Raw hnswlib + raw tantivy + numpy RRF, nothing else."""

    name = "floor"

    def __init__(self, root, args):
        super().__init__(root, args)
        import hnswlib
        import tantivy

        from hybrid.index.analyzer import Analyzer

        self.hnswlib = hnswlib
        self.tantivy = tantivy
        self.analyzer = Analyzer().tantivy_analyzer  # the analyzer hybrid builds by default
        self.ef = 64
        self.plan = planner_constants()

    def load(self, table: pa.Table, corpus: Corpus) -> None:
        self.table = table
        self.category = corpus.category  # the filter column, in memory
        self.vectors = corpus.vectors  # for exact search over the allowed rows
        self.n = table.num_rows

    def _schema(self):
        b = self.tantivy.SchemaBuilder()
        b.add_unsigned_field("id", stored=False, indexed=True, fast=True)
        b.add_text_field("text", stored=False, tokenizer_name="bench", index_option="position")
        return b.build()

    def build_fts(self) -> None:
        tv = self.tantivy
        path = self.root / "tantivy"
        t0 = now()
        path.mkdir(parents=True, exist_ok=True)
        index = tv.Index(self._schema(), path=str(path))
        index.register_tokenizer("bench", self.analyzer)
        writer = index.writer(heap_size=200_000_000, num_threads=1)
        ids = self.table.column("id")
        text = self.table.column("text")
        for off in range(0, self.n, 8192):
            for i, s in zip(ids.slice(off, 8192).to_pylist(), text.slice(off, 8192).to_pylist(), strict=True):
                doc = tv.Document()
                doc.add_unsigned("id", i)
                doc.add_text("text", s)
                writer.add_document(doc)
        writer.commit()
        writer.wait_merging_threads()
        self.build["fts_seconds"] = now() - t0
        self.build["fts_bytes"] = dir_bytes(path)

    def build_vector(self, ef: int) -> None:
        path = self.root / "hnsw.bin"
        t0 = now()
        h = self.hnswlib.Index(space="cosine", dim=DIM)
        h.init_index(max_elements=self.n, ef_construction=200, M=16, random_seed=100)
        h.add_items(self.vectors, self.table.column("id").to_numpy().astype(np.uint64), num_threads=-1)
        h.save_index(str(path))
        self.build["vector_seconds"] = now() - t0
        self.build["vector_bytes"] = path.stat().st_size
        self.ef = ef
        del h

    def prepare(self):
        tv = self.tantivy
        self.index = tv.Index.open(str(self.root / "tantivy"))
        self.index.register_tokenizer("bench", self.analyzer)
        self.schema = self.index.schema
        self.searcher = self.index.searcher()
        self.h = self.hnswlib.Index(space="cosine", dim=DIM)
        self.h.load_index(str(self.root / "hnsw.bin"))
        self.h.set_ef(self.ef)

    # -- the pieces ---------------------------------------------------------------------

    def allowed(self, where: Where) -> np.ndarray:
        cat = self.category  # sorted row ids (= ids) of the allowed rows
        return np.flatnonzero(cat < where.hi) if where.lo == 0 else np.flatnonzero((cat >= where.lo) & (cat < where.hi))

    def compile(self, s: str):
        tv = self.tantivy
        clauses = []
        for term, n in Counter(self.analyzer.analyze(s)).items():
            q = tv.Query.term_query(self.schema, "text", term)
            clauses.append((tv.Occur.Should, q if n == 1 else tv.Query.boost_query(q, float(n))))
        return tv.Query.boolean_query(clauses) if clauses else None

    def restricted(self, query, allowed: np.ndarray):
        """`query` restricted to the `allowed` ids by a term-set clause (scores unchanged)."""
        tv = self.tantivy
        restrict = tv.Query.term_set_query(self.schema, "id", allowed.tolist())
        return tv.Query.boolean_query(
            [(tv.Occur.Must, query), (tv.Occur.Must, tv.Query.const_score_query(restrict, 0.0))]
        )

    def top_ids(self, query, limit: int) -> np.ndarray:
        """The ids of the top `limit` hits, best first."""
        hits = self.searcher.search(query, limit, count=False).hits
        return np.asarray(self.searcher.fast_field_values("id", [h[1] for h in hits]), dtype=np.int64)

    def bm25(self, s: str, k: int, allowed: np.ndarray | None) -> np.ndarray:
        """Top-k BM25 ids; a filter follows hybrid's FullTextIndex.search plan: a term-set clause on the
        id for small allowed sets, otherwise over-fetch (2 k / selectivity, x4 until k survive)."""
        query = self.compile(s)
        if query is None:
            return np.empty(0, np.int64)
        post = None
        if allowed is not None:
            if self.plan["use_term_set"](len(allowed), k, self.n):
                query = self.restricted(query, allowed)
            else:
                post = allowed
        limit = k if post is None else max(4 * k, self.plan["overfetch_depth"](len(post), k, self.n))
        while True:
            ids = self.top_ids(query, limit)
            if post is None:
                return ids[:k]
            hits = len(ids)
            pos = np.minimum(np.searchsorted(post, ids), len(post) - 1)
            ids = ids[post[pos] == ids]
            if len(ids) >= k or hits < limit:
                return ids[:k]
            limit *= 4

    def knn(self, v: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
        if allowed is None:
            labels, _ = self.h.knn_query(v, k=k, num_threads=1)
            return labels[0].astype(np.int64)
        n_allowed = len(allowed)
        plan = self.plan["plan_filtered"](n_allowed, self.n, k, self.ef)
        if plan.exact:
            return topk_desc(allowed.astype(np.int64), self.vectors[allowed] @ v, k)
        flags = np.zeros(self.n, dtype=bool)
        flags[allowed] = True
        fetch = plan.fetch
        while True:  # over-fetch, keep the allowed, deepen 4x while too few
            labels, _ = self.h.knn_query(v, k=min(fetch, self.n), num_threads=1)
            found = labels[0][flags[labels[0]]]
            if len(found) >= k:
                return found[:k].astype(np.int64)
            if fetch >= self.plan["MAX_FETCH"]:
                break
            fetch = min(self.plan["MAX_FETCH"], 4 * fetch)
        ef = max(self.ef, min(1024, int(2 * k * self.n / max(1, n_allowed))))
        self.h.set_ef(ef)
        try:
            labels, _ = self.h.knn_query(v, k=k, num_threads=1, filter=flags.__getitem__)
        finally:
            self.h.set_ef(self.ef)
        return labels[0].astype(np.int64)

    # -- queries ------------------------------------------------------------------------

    def vector(self, v, where):
        return self.knn(v, K, None if where is None else self.allowed(where))

    def text(self, s, where):
        return self.bm25(s, K, None if where is None else self.allowed(where))

    def hybrid(self, s, v, where):
        allowed = None if where is None else self.allowed(where)
        return rrf_top([self.knn(v, DEPTH, allowed), self.bm25(s, DEPTH, allowed)], K)
