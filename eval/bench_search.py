#!/usr/bin/env python
"""Search benchmark: `hybrid` vs LanceDB vs a floor (raw hnswlib + raw tantivy + numpy RRF), side by side.

One run generates a synthetic corpus (Zipf text of ~1.5 KB per doc from a fixed
vocabulary, 384-d clustered unit vectors, an int ``category`` with 100 values),
builds every system's indexes on it and then runs the same queries, one at a
time, against all of them:

* vector only, text only, hybrid (text + vector, RRF k=60), each unfiltered and
  with a prefilter ``category < 1`` (1 % of the rows) and ``category < 10`` (10 %)
  (``--filters varied``: a different category range of the same width per query).

Systems:

* hybrid        - ``t.create_fts_index(["text"])``, ``t.create_vector_index("vector")``
  (defaults: cosine, M=16, ef_construction=200, ef_search=64); queries
  ``t.search(text).vector(v).limit(10).select(["id"]).to_arrow()``,
  ``t.search(v, query_type="vector")``, ``t.search(text)``, ``.where(sql)``.
* floor         - what any engine has to pay at least: raw ``hnswlib`` (same M,
  ef_construction, random seed and ef) and raw ``tantivy`` (same analyzer:
  ``hybrid.index.analyzer.Analyzer().tantivy_analyzer``, same schema and writer
  settings), numpy RRF(k=60), the two branches run sequentially in one thread,
  ids returned as numpy arrays (no rows fetched).  Filters: a numpy mask over an
  in-memory ``category`` array, then the same strategy hybrid's planner picks,
  with its thresholds read from the installed ``hybrid`` (exact search up to
  ``EXACT_MAX_ROWS`` / ``EXACT_MAX_FRACTION`` allowed rows, otherwise a filtered
  HNSW walk with the same enlarged ef; for text a tantivy term-set clause on the
  id up to ``TERM_SET_MAX`` allowed rows, otherwise over-fetching), so the
  difference to hybrid is the engine around the same algorithms.
* lance-hnsw    - LanceDB with its native FTS (``create_fts_index("text")``), an
  HNSW-SQ vector index (``HnswSq(distance_type="cosine", m=16, ef_construction=200)``)
  queried with ``ef`` = hybrid's ef_search, its hybrid query with
  ``RRFReranker(K=60)``; filters via ``.where(sql, prefilter=True)``.
* lance-ivfpq   - the same on a second LanceDB table with an IVF-PQ index
  (``IvfPq(distance_type="cosine")``, LanceDB's defaults for partitions,
  sub-vectors, nprobes, no refine unless ``--lance-refine-factor``).

Queries run one at a time in this process.  BLAS/OpenMP are limited to one
thread (``OMP_NUM_THREADS=1`` etc., set before numpy is imported), hnswlib
queries use ``num_threads=1`` and tantivy searches are single-threaded.  Two
systems use more than one thread per query by design and are measured as they
are: hybrid runs the vector and text branches of a hybrid query concurrently
in its own 2+-thread pool, and LanceDB runs its two branches in a Python
thread pool on top of its Rust runtime (all cores unless
``--lance-cpu-threads``).  Index builds use the libraries' own threading
(hnswlib ``num_threads=-1`` in hybrid and in the floor; tantivy writer with 1
thread in both; LanceDB its runtime).

Quality, against exact answers computed here:

* vector: recall@10 vs exact cosine over all docs (over the allowed docs when filtered);
* text: overlap@10 with the floor's tantivy BM25 top-10 ("BM25 overlap";
  filtered: tantivy BM25 restricted to the allowed rows);
* hybrid: overlap@10 with "exact-branch RRF": RRF(k=60) over the exact vector
  top-50 and the exact BM25 top-50 (ties broken by smaller id, like hybrid).

Results go to ``eval/results/search.json`` and ``eval/results/search.md`` and a
table is printed.  See ``eval/README.md`` for how to run it.
"""

from __future__ import annotations

import os

# One query at a time on one core: keep BLAS / OpenMP single-threaded.  This has
# to happen before numpy (and anything that loads a BLAS) is imported.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
for _v in _THREAD_VARS:
    os.environ.setdefault(_v, "1")
# LanceDB warns on every vector query that selects columns without `_distance`
os.environ.setdefault("LANCEDB_LOG", "error")

import argparse  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import Future  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

# LanceDB 0.40 marks create_fts_index / create_scalar_index as deprecated (the calls used here on purpose)
warnings.filterwarnings("ignore", message=r"create_(fts|scalar)_index is deprecated")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the storage benchmark's helpers
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # `hybrid` from this checkout

from bench_storage import (  # noqa: E402
    damon_reclaim_info,
    dir_bytes,
    fmt,
    get,
    log,
    mem_total_bytes,
    now,
    peak_rss_mb,
    pkg_version,
    ratio,
    run_and_report,
    warm_page_cache,
)

DIM = 384
K = 10
RRF_K = 60
DEPTH = 50  # candidates per branch in a hybrid query (hybrid's default: max(50, 2 x limit))
SYSTEMS = ("hybrid", "floor", "lance-hnsw", "lance-ivfpq")
SYSTEM_TITLES = {
    "hybrid": "hybrid",
    "floor": "floor",
    "lance-hnsw": "LanceDB HNSW-SQ",
    "lance-ivfpq": "LanceDB IVF-PQ",
}
FILTERS = (None, 1, 10)  # percent of the rows a prefilter allows
KINDS = ("vector", "text", "hybrid")
QUERY_TYPES = [(kind, pct) for pct in (None, 1, 10) for kind in KINDS]


def qt_name(kind: str, pct: int | None) -> str:
    return kind if pct is None else f"{kind} where {pct}%"


@dataclass(frozen=True)
class Where:
    """A prefilter: the SQL handed to hybrid / LanceDB, and the same rows as `lo <= category < hi`."""

    sql: str
    lo: int
    hi: int


def filter_for(pct: int | None, i: int, mode: str) -> Where | None:
    """The filter of query `i` for a `pct` % filter.

    fixed: ``category < 1`` / ``category < 10`` for every query (the same SQL string each time);
    varied: a different range of the same width per query (``category = c`` /
    ``category >= c AND category < c + 10``), so nothing can be reused from the previous query.
    """
    if pct is None:
        return None
    if mode == "fixed":
        return Where(f"category < {pct}", 0, pct)
    c = (i * 37) % (101 - pct)
    if pct == 1:
        return Where(f"category = {c}", c, c + 1)
    return Where(f"category >= {c} AND category < {c + pct}", c, c + pct)


# --------------------------------------------------------------------------
# synthetic corpus
# --------------------------------------------------------------------------


class Corpus:
    """Seeded synthetic documents and queries.

    * text: words drawn from a fixed vocabulary of `vocab` pseudo-words with
      Zipf(s) frequencies (rank r has probability proportional to r^-s), about
      `text_bytes` bytes per document (the word count varies by +-25 %);
    * vector: one of `clusters` Gaussian clusters: centre + a low-rank spread
      (each cluster has its own random `latent_dim`-d subspace; 0 = isotropic)
      + a little isotropic noise, normalised to unit length;
    * category: int32, uniform over 0..99 (independent of the rest).

    A query picks a document, takes 2-4 distinct words of its text (positions
    drawn at random, so the words follow the same Zipf law) and perturbs its
    vector by isotropic noise of norm ~`query_noise`, renormalised.
    """

    def __init__(self, args: argparse.Namespace):
        self.n = args.docs
        self.seed = args.seed
        rng = np.random.default_rng([args.seed, 1])
        # vocabulary: unique lowercase pseudo-words of 2..12 letters
        words: dict[str, None] = {}
        while len(words) < args.vocab:
            m = args.vocab - len(words)
            lens = rng.integers(2, 13, size=m)
            letters = rng.integers(ord("a"), ord("z") + 1, size=int(lens.sum()), dtype=np.uint8).tobytes().decode()
            pos = 0
            for n in lens.tolist():
                words.setdefault(letters[pos : pos + n])
                pos += n
        self.vocab = list(words)
        vlen = np.array([len(w) for w in self.vocab], dtype=np.int64)
        self.vbuf = np.frombuffer(" ".join(self.vocab).encode() + b" ", dtype=np.uint8)
        self.voff = np.concatenate([[0], np.cumsum(vlen + 1)[:-1]]).astype(np.int64)
        self.vlen = vlen
        p = 1.0 / np.arange(1, args.vocab + 1, dtype=np.float64) ** args.zipf
        p /= p.sum()
        self.cdf = np.cumsum(p)
        self.cdf[-1] = 1.0
        mean_word = float((p * (vlen + 1)).sum())
        self.words_per_doc = max(4, int(round(args.text_bytes / mean_word)))
        self.zipf = args.zipf
        self.args = args

    def _texts(self, rng: np.random.Generator, n: int) -> pa.Array:
        w = self.words_per_doc
        pieces = []
        for s in range(0, n, 4096):
            m = min(4096, n - s)
            counts = rng.integers(int(w * 0.75), int(w * 1.25) + 1, size=m)
            total = int(counts.sum())
            idx = np.searchsorted(self.cdf, rng.random(total), side="right")
            lens = self.vlen[idx] + 1  # word + following space
            ends = np.cumsum(counts) - 1
            lens[ends] -= 1  # no trailing space after a document's last word
            nbytes = int(lens.sum())
            start = np.cumsum(lens) - lens
            gather = np.repeat(self.voff[idx] - start, lens) + np.arange(nbytes, dtype=np.int64)
            data = self.vbuf[gather]
            csum = np.concatenate([[0], np.cumsum(lens)])
            offsets = csum[np.concatenate([[0], ends + 1])].astype(np.int32)
            pieces.append(pa.StringArray.from_buffers(m, pa.py_buffer(offsets), pa.py_buffer(data)))
        return pa.concat_arrays(pieces)

    def _vectors(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        a = self.args
        crng = np.random.default_rng([self.seed, 2])  # cluster geometry, independent of n
        centres = crng.standard_normal((a.clusters, DIM), dtype=np.float32)
        bases = (
            crng.standard_normal((a.clusters, a.latent_dim, DIM), dtype=np.float32) / np.sqrt(a.latent_dim)
            if a.latent_dim > 0
            else None
        )
        assign = rng.integers(0, a.clusters, size=n)
        x = np.empty((n, DIM), dtype=np.float32)
        for c in range(a.clusters):
            rows = np.flatnonzero(assign == c)
            if not len(rows):
                continue
            if bases is None:
                spread = rng.standard_normal((len(rows), DIM), dtype=np.float32) * a.cluster_spread
            else:
                z = rng.standard_normal((len(rows), a.latent_dim), dtype=np.float32)
                spread = (z @ bases[c]) * a.cluster_spread
                spread += rng.standard_normal((len(rows), DIM), dtype=np.float32) * a.iso_noise
            x[rows] = centres[c] + spread
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x, assign

    def generate(self) -> pa.Table:
        rng = np.random.default_rng([self.seed, 3])
        n = self.n
        text = self._texts(rng, n)
        vec, clusters = self._vectors(rng, n)
        self.vectors = vec
        self.clusters = clusters
        self.category = rng.integers(0, 100, size=n).astype(np.int32)
        return pa.table(
            {
                "id": pa.array(np.arange(n, dtype=np.int64)),
                "text": text,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), DIM),
                "category": pa.array(self.category),
            }
        )

    def queries(self, table: pa.Table, nq: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, 4])
        docs = rng.choice(self.n, size=min(nq, self.n), replace=False)
        texts = table.column("text").take(pa.array(docs)).to_pylist()
        out = []
        for t in texts:
            words = t.split()
            want = int(rng.integers(2, 5))
            picked: list[str] = []
            for i in rng.permutation(len(words)):
                if words[i] not in picked:
                    picked.append(words[i])
                if len(picked) == want:
                    break
            out.append(" ".join(picked))
        noise = rng.standard_normal((len(docs), DIM), dtype=np.float32) * (self.args.query_noise / np.sqrt(DIM))
        q = self.vectors[docs] + noise
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        return out, q.astype(np.float32), docs


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def pct(xs: list[float], p: float) -> float | None:
    return float(np.percentile(np.asarray(xs), p)) if xs else None


def mean(xs: list[float]) -> float | None:
    return float(statistics.fmean(xs)) if xs else None


def rrf_top(lists: list[np.ndarray], top: int, k: int = RRF_K) -> np.ndarray:
    """Ids of the RRF(k) fusion of ranked id lists (best first), ties by smaller id."""
    lists = [np.asarray(x, dtype=np.int64) for x in lists if len(x)]
    if not lists:
        return np.empty(0, np.int64)
    ids = np.concatenate(lists)
    contrib = np.concatenate([1.0 / (k + np.arange(1, len(x) + 1, dtype=np.float64)) for x in lists])
    uniq, inv = np.unique(ids, return_inverse=True)
    score = np.bincount(inv, weights=contrib)
    return uniq[np.lexsort((uniq, -score))[:top]]


def topk_desc(ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k largest scores, best first, ties by smaller id."""
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[part], scores[part]
    return ids[np.lexsort((ids, -scores))]


def overlap(got: np.ndarray | None, truth: np.ndarray, k: int = K) -> float | None:
    if got is None:
        return None
    t = set(np.asarray(truth)[:k].tolist())
    if not t:
        return 1.0 if len(got) == 0 else 0.0
    return len(t & set(np.asarray(got)[:k].tolist())) / len(t)


def folder_bytes(paths: list[Path]) -> int:
    return sum(dir_bytes(p) if p.is_dir() else (p.stat().st_size if p.exists() else 0) for p in paths)


# --------------------------------------------------------------------------
# systems
# --------------------------------------------------------------------------


class System:
    name = "?"

    def __init__(self, root: Path, args: argparse.Namespace):
        self.root = root / self.name
        self.root.mkdir(parents=True, exist_ok=True)
        self.args = args
        self.build: dict[str, Any] = {}

    def dirs(self) -> list[Path]:
        """What to read into the page cache before timed queries."""
        return [self.root]

    def prepare(self) -> None: ...

    def vector(self, v: np.ndarray, where: Where | None) -> Any: ...

    def text(self, s: str, where: Where | None) -> Any: ...

    def hybrid(self, s: str, v: np.ndarray, where: Where | None) -> Any: ...


class HybridSystem(System):
    name = "hybrid"

    def __init__(self, root, args):
        super().__init__(root, args)
        import hybrid

        self.mod = hybrid
        self.db = hybrid.connect(str(self.root / "db"))

    def load(self, table: pa.Table) -> None:
        t0 = now()
        self.t = self.db.create_table("docs", data=table)
        self.build["ingest_seconds"] = now() - t0

    def _index_folder(self, kind: str) -> Path:
        from hybrid.index.catalog import entries

        (entry,) = [e for e in entries(self.t.snapshot()) if e.kind == kind]
        return self.t.path / entry.path

    def build_fts(self) -> None:
        t0 = now()
        self.t.create_fts_index(["text"])
        self.build["fts_seconds"] = now() - t0
        self.build["fts_bytes"] = dir_bytes(self._index_folder("fts"))

    def build_vector(self) -> None:
        t0 = now()
        self.t.create_vector_index("vector")
        self.build["vector_seconds"] = now() - t0
        self.build["vector_bytes"] = dir_bytes(self._index_folder("vector"))
        self.build["index_stats"] = self.t.index_stats()

    @property
    def ef_search(self) -> int:
        (s,) = [s for s in self.t.index_stats() if s["kind"] == "vector"]
        return int(s["ef_search"])

    def dirs(self):
        return [self.root / "db"]

    def prepare(self):
        # a fresh reader, like another process opening the table
        self.t = self.mod.connect(str(self.root / "db")).open_table("docs")

    def _q(self, q, where):
        if where is not None:
            q = q.where(where.sql)
        return q.limit(K).select(["id"]).to_arrow()

    def vector(self, v, where):
        return self._q(self.t.search(v, query_type="vector"), where)

    def text(self, s, where):
        return self._q(self.t.search(s), where)

    def hybrid(self, s, v, where):
        return self._q(self.t.search(s).vector(v), where)

    def explain(self, s, v, where) -> str:
        q = self.t.search(s).vector(v).limit(K).select(["id"])
        return (q.where(where.sql) if where is not None else q).explain()


def planner_constants() -> dict[str, Any]:
    """hybrid's thresholds for filtered search, read from the installed code so the floor follows the same plan."""
    from hybrid.index import fulltext
    from hybrid.query import executor

    return {
        "EXACT_MAX_ROWS": executor.EXACT_MAX_ROWS,
        "EXACT_MAX_FRACTION": executor.EXACT_MAX_FRACTION,
        "TERM_SET_MAX": fulltext.TERM_SET_MAX,
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

    def bm25(self, s: str, k: int, allowed: np.ndarray | None) -> np.ndarray:
        """Top-k BM25 ids; a filter follows hybrid's FullTextIndex.search plan: a term-set clause on the
        id for small allowed sets, otherwise over-fetch (2 k / selectivity, x4 until k survive)."""
        tv = self.tantivy
        query = self.compile(s)
        if query is None:
            return np.empty(0, np.int64)
        post = None
        if allowed is not None:
            if len(allowed) <= self.plan["TERM_SET_MAX"]:
                restrict = tv.Query.term_set_query(self.schema, "id", allowed.tolist())
                query = tv.Query.boolean_query(
                    [(tv.Occur.Must, query), (tv.Occur.Must, tv.Query.const_score_query(restrict, 0.0))]
                )
            else:
                post = allowed
        limit = k if post is None else max(4 * k, int(2 * k * self.n / max(1, len(post))))
        while True:
            hits = self.searcher.search(query, limit, count=False).hits
            ids = np.asarray(self.searcher.fast_field_values("id", [h[1] for h in hits]), dtype=np.int64)
            if post is None:
                return ids[:k]
            pos = np.minimum(np.searchsorted(post, ids), len(post) - 1)
            ids = ids[post[pos] == ids]
            if len(ids) >= k or len(hits) < limit:
                return ids[:k]
            limit *= 4

    def knn(self, v: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
        if allowed is None:
            labels, _ = self.h.knn_query(v, k=k, num_threads=1)
            return labels[0].astype(np.int64)
        n_allowed = len(allowed)
        if n_allowed <= self.plan["EXACT_MAX_ROWS"] or n_allowed <= self.plan["EXACT_MAX_FRACTION"] * self.n:
            return topk_desc(allowed.astype(np.int64), self.vectors[allowed] @ v, k)
        flags = np.zeros(self.n, dtype=bool)
        flags[allowed] = True
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


class LanceSystem(System):
    """LanceDB: native FTS, one vector index (HNSW-SQ or IVF-PQ), hybrid query with RRFReranker."""

    def __init__(self, root, args, flavour: str):
        self.name = f"lance-{flavour}"
        super().__init__(root, args)
        import lancedb

        self.flavour = flavour
        self.mod = lancedb
        self.db = lancedb.connect(str(self.root / "db"))
        self.ef = 64

    def table_dir(self) -> Path:
        return self.root / "db" / "docs.lance"

    def _index_dirs(self) -> set[Path]:
        d = self.table_dir() / "_indices"
        return set(d.iterdir()) if d.is_dir() else set()

    def load(self, table: pa.Table) -> None:
        t0 = now()
        self.t = self.db.create_table("docs", data=table)
        self.build["ingest_seconds"] = now() - t0

    def _timed_index(self, what: str, fn: Callable[[], Any]) -> None:
        before = self._index_dirs()
        t0 = now()
        fn()
        self.build[f"{what}_seconds"] = now() - t0
        self.build[f"{what}_bytes"] = folder_bytes(sorted(self._index_dirs() - before))

    def build_fts(self) -> None:
        self._timed_index("fts", lambda: self.t.create_fts_index("text"))

    def build_vector(self, ef: int) -> None:
        from lancedb.index import HnswSq, IvfPq

        self.ef = ef
        if self.flavour == "hnsw":
            config = HnswSq(distance_type="cosine", m=16, ef_construction=200)
        else:
            config = IvfPq(distance_type="cosine")
        self.build["vector_config"] = repr(config)
        self._timed_index("vector", lambda: self.t.create_index("vector", config=config))

    def build_scalar(self, kind: str) -> None:
        self._timed_index("scalar", lambda: self.t.create_scalar_index("category", index_type=kind.upper()))

    def dirs(self):
        return [self.table_dir()]

    def prepare(self):
        self.t = self.mod.connect(str(self.root / "db")).open_table("docs")
        self.build["indices"] = [str(i) for i in self.t.list_indices()]
        from lancedb.rerankers import RRFReranker

        self.reranker = RRFReranker(K=RRF_K)

    def _vec_opts(self, q):
        q = q.distance_type("cosine")
        a = self.args
        if self.flavour == "hnsw":
            q = q.ef(self.ef)
        if a.lance_nprobes is not None:
            q = q.nprobes(a.lance_nprobes)
        if a.lance_refine_factor is not None:
            q = q.refine_factor(a.lance_refine_factor)
        return q

    def _finish(self, q, where):
        if where is not None:
            q = q.where(where.sql, prefilter=True)
        return q.limit(K).select(["id"]).to_arrow()

    def vector(self, v, where):
        return self._finish(self._vec_opts(self.t.search(v, query_type="vector", vector_column_name="vector")), where)

    def text(self, s, where):
        return self._finish(self.t.search(s, query_type="fts"), where)

    def hybrid(self, s, v, where):
        q = self.t.search(query_type="hybrid").vector(v).text(s).rerank(self.reranker)
        return self._finish(self._vec_opts(q), where)


def result_ids(out: Any) -> np.ndarray:
    if isinstance(out, np.ndarray):
        return out.astype(np.int64)
    return np.asarray(out.column("id").to_numpy(zero_copy_only=False), dtype=np.int64)


# --------------------------------------------------------------------------
# ground truth
# --------------------------------------------------------------------------


def ground_truth(
    corpus: Corpus, floor: FloorSystem, qtext: list[str], qvec: np.ndarray, mode: str
) -> dict[Any, dict[str, Any]]:
    """Per filter and query: exact vector top-50 (numpy cosine over the allowed rows), exact BM25
    top-50 (tantivy restricted to the allowed rows) and exact-branch RRF top-10."""
    x = corpus.vectors
    cat = corpus.category
    tv = floor.tantivy
    allowed_cache: dict[tuple[int, int], np.ndarray] = {}

    def allowed_of(w: Where) -> np.ndarray:
        key = (w.lo, w.hi)
        if key not in allowed_cache:
            allowed_cache[key] = np.flatnonzero((cat >= w.lo) & (cat < w.hi)).astype(np.int64)
        return allowed_cache[key]

    all_ids = np.arange(len(x), dtype=np.int64)
    truth: dict[Any, dict[str, Any]] = {p: {"vector": [], "text": [], "hybrid": [], "allowed": []} for p in FILTERS}
    for start in range(0, len(qvec), 32):
        sims = qvec[start : start + 32] @ x.T
        for j, row in enumerate(sims):
            i = start + j
            for p in FILTERS:
                w = filter_for(p, i, mode)
                ids = all_ids if w is None else allowed_of(w)
                truth[p]["vector"].append(topk_desc(ids, row if w is None else row[ids], DEPTH))
                truth[p]["allowed"].append(len(ids))
    for i, q in enumerate(qtext):
        for p in FILTERS:
            w = filter_for(p, i, mode)
            query = floor.compile(q)
            if query is None:
                truth[p]["text"].append(np.empty(0, np.int64))
                continue
            if w is not None:
                restrict = tv.Query.term_set_query(floor.schema, "id", allowed_of(w).tolist())
                query = tv.Query.boolean_query(
                    [(tv.Occur.Must, query), (tv.Occur.Must, tv.Query.const_score_query(restrict, 0.0))]
                )
            hits = floor.searcher.search(query, DEPTH, count=False).hits
            truth[p]["text"].append(
                np.asarray(floor.searcher.fast_field_values("id", [h[1] for h in hits]), dtype=np.int64)
            )
    for p in FILTERS:
        t = truth[p]
        t["hybrid"] = [rrf_top([v, b], K) for v, b in zip(t["vector"], t["text"], strict=True)]
    return truth


# --------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------


class Bench:
    def __init__(self):
        self.errors: dict[str, dict[str, str]] = {}

    def guarded(self, system: str, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            out = fn(*args)
            return True if out is None else out
        except Exception as exc:  # keep going; report what failed
            msg = f"{type(exc).__name__}: {exc}"
            self.errors.setdefault(system, {})[what] = msg + "\n" + traceback.format_exc(limit=8)
            log(f"  !! {system} {what} failed: {msg}")
            return None


def run_query(st: System, kind: str, where: Where | None, text: str, vec: np.ndarray) -> Any:
    if kind == "vector":
        return st.vector(vec, where)
    if kind == "text":
        return st.text(text, where)
    return st.hybrid(text, vec, where)


PROFILED = (("hybrid", None), ("hybrid", 10), ("vector", 1))
"""Query types profiled (when profiling): the plain hybrid query, a filtered one, and a filter-dominated one."""


def profile_hybrid(st: HybridSystem, kind: str, pct: int | None, mode: str, qtext, qvec, top=40) -> dict[str, Any]:
    """cProfile of one pass of hybrid's queries of one type.

    hybrid runs the two branches in a thread pool, which cProfile (one thread)
    would not see; for this pass only, the pool is replaced by one that runs
    each submitted call in the calling thread, so the profile covers the whole
    query.  Latency under the profiler is not comparable to the timed runs.
    """
    import cProfile
    import pstats

    from hybrid.query import executor as ex

    class InlinePool:
        def submit(self, fn, *a, **kw):
            f: Future = Future()
            try:
                f.set_result(fn(*a, **kw))
            except BaseException as e:  # noqa: BLE001 - handed to the caller via the future
                f.set_exception(e)
            return f

    original = ex._executor
    ex._executor = lambda: InlinePool()  # type: ignore[assignment]
    try:
        for i in range(min(5, len(qtext))):  # warm
            run_query(st, kind, filter_for(pct, i, mode), qtext[i], qvec[i])
        pr = cProfile.Profile()
        t0 = now()
        pr.enable()
        for i, (s, v) in enumerate(zip(qtext, qvec, strict=True)):
            run_query(st, kind, filter_for(pct, i, mode), s, v)
        pr.disable()
        wall = now() - t0
    finally:
        ex._executor = original  # type: ignore[assignment]
    out: dict[str, Any] = {
        "query_type": qt_name(kind, pct),
        "queries": len(qtext),
        "wall_seconds": wall,
        "per_query_ms": wall / len(qtext) * 1000,
    }
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(pr, stream=buf).sort_stats(key).print_stats(top)
        text = buf.getvalue()
        start = text.find("   ncalls")  # drop pstats' preamble, keep the table
        out[key] = text[start:].rstrip() if start >= 0 else text
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = now()
    tmp_created = args.out_dir is None
    root = Path(tempfile.mkdtemp(prefix="bench_search_", dir="/tmp")) if tmp_created else Path(args.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    log(f"scratch dir: {root}")
    bench = Bench()
    res: dict[str, Any] = {"per_system": {}, "queries": {}}
    try:
        # ---------------- data -----------------------------------------------
        log(f"[1] generating {args.docs:,} docs (Zipf s={args.zipf}, vocab {args.vocab:,}, ~{args.text_bytes} B text)")
        t0 = now()
        corpus = Corpus(args)
        table = corpus.generate()
        qtext, qvec, qdocs = corpus.queries(table, args.queries)
        res["generation_seconds"] = now() - t0
        res["data"] = {
            "docs": table.num_rows,
            "text_mb": table.column("text").nbytes / 1e6,
            "mean_text_bytes": table.column("text").nbytes / table.num_rows,
            "words_per_doc": corpus.words_per_doc,
            "vector_mb": corpus.vectors.nbytes / 1e6,
            "queries": len(qtext),
            "query_examples": qtext[:5],
            "query_words_mean": float(np.mean([len(q.split()) for q in qtext])),
        }
        log(
            f"    {res['generation_seconds']:.1f}s; text {res['data']['text_mb']:,.0f} MB "
            f"({res['data']['mean_text_bytes']:,.0f} B/doc), e.g. queries {qtext[:3]}"
        )

        # ---------------- systems + builds ------------------------------------
        systems: dict[str, System] = {}
        for name in args.systems:

            def ctor(name=name):
                if name == "hybrid":
                    return HybridSystem(root, args)
                if name == "floor":
                    return FloorSystem(root, args)
                return LanceSystem(root, args, name.split("-", 1)[1])

            st = bench.guarded(name, "setup", ctor)
            if st is not None:
                systems[name] = st
        if "floor" not in systems:
            raise SystemExit("the floor system is needed for the ground truth (BM25); add it to --systems")

        log("[2] loading tables and building indexes")
        for name, st in list(systems.items()):
            ok = (
                bench.guarded(name, "load", st.load, table, corpus)
                if isinstance(st, FloorSystem)
                else bench.guarded(name, "load", st.load, table)
            )
            if ok is None:
                del systems[name]
        os.sync()
        # full-text indexes first, then vectors (hybrid's ef_search decides the floor's and LanceDB's ef)
        for name, st in list(systems.items()):
            gc.collect()
            if bench.guarded(name, "create_fts_index", st.build_fts) is None:
                del systems[name]
                continue
            os.sync()
            log(f"    {name}: FTS index {st.build['fts_seconds']:.1f}s, {st.build['fts_bytes'] / 1e6:,.1f} MB")
        ef = 64
        if "hybrid" in systems:
            st = systems["hybrid"]
            gc.collect()
            if bench.guarded("hybrid", "create_vector_index", st.build_vector) is None:
                del systems["hybrid"]
            else:
                ef = systems["hybrid"].ef_search
                os.sync()
                log(
                    f"    hybrid: vector index {st.build['vector_seconds']:.1f}s, "
                    f"{st.build['vector_bytes'] / 1e6:,.1f} MB (ef_search {ef})"
                )
        res["ef_search"] = ef
        if "floor" in systems:
            res["floor_plan"] = systems["floor"].plan
        for name, st in list(systems.items()):
            if name == "hybrid":
                continue
            gc.collect()
            if bench.guarded(name, "create_vector_index", st.build_vector, ef) is None:
                del systems[name]
                continue
            os.sync()
            log(f"    {name}: vector index {st.build['vector_seconds']:.1f}s, {st.build['vector_bytes'] / 1e6:,.1f} MB")
            if isinstance(st, LanceSystem) and args.lance_scalar_index != "none":
                if bench.guarded(name, "create_scalar_index", st.build_scalar, args.lance_scalar_index) is not None:
                    log(f"    {name}: {args.lance_scalar_index} index on category {st.build['scalar_seconds']:.1f}s")
                os.sync()
        for name, st in list(systems.items()):
            if bench.guarded(name, "open", st.prepare) is None:
                del systems[name]
        for name, st in systems.items():
            res["per_system"][name] = {"build": st.build}
        if "floor" not in systems:
            raise SystemExit("the floor failed to build; see the errors above")

        # ---------------- exact answers -----------------------------------------
        log("[3] exact answers (numpy cosine, tantivy BM25 top-50, exact-branch RRF)")
        t0 = now()
        truth = ground_truth(corpus, systems["floor"], qtext, qvec, args.filters)
        res["truth_seconds"] = now() - t0
        res["allowed_rows"] = {str(p): float(np.mean(truth[p]["allowed"])) for p in FILTERS}
        res["filter_examples"] = {
            str(p): [filter_for(p, i, args.filters).sql for i in range(3)] for p in FILTERS if p is not None
        }
        res["query_self_hit"] = float(np.mean([d in set(t[:K].tolist()) for d, t in zip(qdocs, truth[None]["vector"])]))
        if "hybrid" in systems:
            res["hybrid_plans"] = {
                qt_name("hybrid", p): systems["hybrid"].explain(qtext[0], qvec[0], filter_for(p, 0, args.filters))
                for p in FILTERS
            }

        # ---------------- timed queries ---------------------------------------
        names = list(systems)
        log(
            f"[4] {len(qtext)} queries x {len(QUERY_TYPES)} query types x {args.repeats} passes, one at a time, "
            f"one system at a time ({', '.join(names)}); page cache: {args.cache}"
        )
        lat: dict[str, dict[str, list[float]]] = {s: {} for s in names}
        quality: dict[str, dict[str, list[float]]] = {s: {} for s in names}
        for kind, p in QUERY_TYPES:
            qn = qt_name(kind, p)
            wheres = [filter_for(p, i, args.filters) for i in range(len(qtext))]
            for s in names:
                lat[s][qn] = []
                quality[s][qn] = []
            if args.cache == "warm":
                for s in names:
                    for d in systems[s].dirs():
                        warm_page_cache(d)
            live = list(names)
            for rep in range(args.repeats):
                # each system runs its block of queries alone (LanceDB's runtime threads keep running briefly
                # after a query returns and slow down whatever runs next); the order rotates between passes
                order = live[rep % len(live) :] + live[: rep % len(live)] if live else []
                for s in order:
                    ok = True
                    for i in range(min(args.warmup, len(qtext))):  # untimed warm-up of this block
                        if bench.guarded(s, qn, run_query, systems[s], kind, wheres[i], qtext[i], qvec[i]) is None:
                            ok = False
                            break
                    if not ok:
                        live.remove(s)
                        continue
                    gc.collect()
                    gc.disable()
                    try:
                        for i in range(len(qtext)):
                            t0 = now()
                            out = bench.guarded(s, qn, run_query, systems[s], kind, wheres[i], qtext[i], qvec[i])
                            dt = now() - t0
                            if out is None:
                                continue
                            lat[s][qn].append(dt * 1000)
                            if rep == 0:
                                quality[s][qn].append(overlap(result_ids(out), truth[p][kind][i]))
                    finally:
                        gc.enable()
            for s in names:
                res["per_system"][s].setdefault("queries", {})[qn] = {
                    "p50_ms": pct(lat[s][qn], 50),
                    "p95_ms": pct(lat[s][qn], 95),
                    "mean_ms": mean(lat[s][qn]),
                    "samples": len(lat[s][qn]),
                    "quality": mean(quality[s][qn]),
                    "quality_min": min(quality[s][qn]) if quality[s][qn] else None,
                    "quality_metric": {
                        "vector": "recall@10 vs exact cosine",
                        "text": "overlap@10 with tantivy BM25",
                        "hybrid": "overlap@10 with exact-branch RRF",
                    }[kind],
                    "latencies_ms": [round(x, 4) for x in lat[s][qn]],
                }
            log(
                f"    {qn:18s} "
                + "  ".join(
                    f"{s}={fmt(pct(lat[s][qn], 50))}/{fmt(pct(lat[s][qn], 95))}ms q={fmt(mean(quality[s][qn]), '.3f')}"
                    for s in names
                )
            )

        # ---------------- profile ---------------------------------------------
        h = get(res["per_system"], "hybrid", "queries", "hybrid", "p50_ms")
        f = get(res["per_system"], "floor", "queries", "hybrid", "p50_ms")
        if "hybrid" in systems and (args.profile == "always" or (args.profile == "auto" and h and f and h > f)):
            log(f"[5] cProfile of hybrid: one pass over the queries of {[qt_name(*p) for p in PROFILED]}")
            res["profiles"] = []
            for kind, p in PROFILED:
                prof = bench.guarded(
                    "hybrid",
                    f"profile {qt_name(kind, p)}",
                    profile_hybrid,
                    systems["hybrid"],
                    kind,
                    p,
                    args.filters,
                    qtext,
                    qvec,
                )
                if prof is not None:
                    res["profiles"].append(prof)
                    log(
                        f"    {prof['query_type']}: {prof['per_query_ms']:.2f} ms/query under the profiler; "
                        "top by own time:"
                    )
                    print("\n".join(prof["tottime"].splitlines()[:16]))
    finally:
        if tmp_created and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif tmp_created:
            log(f"kept scratch dir {root}")

    res["errors"] = {s: e for s, e in bench.errors.items() if e}
    res["wall_seconds"] = now() - t_start
    res["peak_rss_mb"] = peak_rss_mb()
    return res


# --------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------


def q(res, system, qn, key):
    return get(res["per_system"], system, "queries", qn, key)


def b(res, system, key):
    return get(res["per_system"], system, "build", key)


def best_lance(res, qn) -> tuple[float | None, str | None]:
    vals = [(q(res, s, qn, "p50_ms"), s) for s in ("lance-hnsw", "lance-ivfpq")]
    vals = [(v, s) for v, s in vals if v is not None]
    return min(vals) if vals else (None, None)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def targets(res) -> list[tuple[str, str, str]]:
    out = []
    hp, fp = q(res, "hybrid", "hybrid", "p50_ms"), q(res, "floor", "hybrid", "p50_ms")
    lp, ls = best_lance(res, "hybrid")
    out.append(
        (
            "hybrid query p50 <= 1.3x floor",
            verdict(None if hp is None or fp is None else hp <= 1.3 * fp),
            f"{fmt(hp)} ms vs {fmt(fp)} ms ({fmt(ratio(hp, fp))}x)",
        )
    )
    out.append(
        (
            "hybrid query p50 <= 0.1x LanceDB hybrid p50 (faster LanceDB config)",
            verdict(None if hp is None or lp is None else hp <= 0.1 * lp),
            f"{fmt(hp)} ms vs {fmt(lp)} ms {SYSTEM_TITLES.get(ls, '')} ({fmt(ratio(hp, lp))}x)",
        )
    )
    ho = q(res, "hybrid", "hybrid", "quality")
    out.append(
        (
            "hybrid fused top-10 overlap >= 0.95 vs exact-branch RRF",
            verdict(None if ho is None else ho >= 0.95),
            f"{fmt(ho, '.3f')}",
        )
    )
    vr, vp, vf = (
        q(res, "hybrid", "vector", "quality"),
        q(res, "hybrid", "vector", "p50_ms"),
        q(res, "floor", "vector", "p50_ms"),
    )
    out.append(
        (
            "vector recall@10 >= 0.95 (default settings) at p50 <= 1.3x floor",
            verdict(None if vr is None or vp is None or vf is None else vr >= 0.95 and vp <= 1.3 * vf),
            f"recall {fmt(vr, '.3f')}; {fmt(vp)} ms vs {fmt(vf)} ms ({fmt(ratio(vp, vf))}x)",
        )
    )
    for p in (1, 10):
        qn = qt_name("vector", p)
        r, hp_ = q(res, "hybrid", qn, "quality"), q(res, "hybrid", qn, "p50_ms")
        lp_, ls_ = best_lance(res, qn)
        out.append(
            (
                f"filtered ({p}%) vector recall@10 >= 0.98 at p50 <= 0.5x LanceDB (faster config)",
                verdict(None if r is None or hp_ is None or lp_ is None else r >= 0.98 and hp_ <= 0.5 * lp_),
                f"recall {fmt(r, '.3f')}; {fmt(hp_)} ms vs {fmt(lp_)} ms {SYSTEM_TITLES.get(ls_, '')} "
                f"({fmt(ratio(hp_, lp_))}x)",
            )
        )

    def total(s, what):
        a, c = b(res, s, f"fts_{what}"), b(res, s, f"vector_{what}")
        return None if a is None or c is None else a + c

    for what, label, scale, unit in (("seconds", "index build time", 1, "s"), ("bytes", "index disk size", 1e6, "MB")):
        ht, ft = total("hybrid", what), total("floor", what)
        parts = "; ".join(
            f"{kind} {fmt(_div(b(res, 'hybrid', f'{kind}_{what}'), scale), ',.1f')} vs "
            f"{fmt(_div(b(res, 'floor', f'{kind}_{what}'), scale), ',.1f')} {unit} "
            f"({fmt(ratio(b(res, 'hybrid', f'{kind}_{what}'), b(res, 'floor', f'{kind}_{what}')))}x)"
            for kind in ("fts", "vector")
        )
        out.append(
            (
                f"{label} (FTS + vector) <= 1.1x floor",
                verdict(None if ht is None or ft is None else ht <= 1.1 * ft),
                f"{fmt(_div(ht, scale), ',.1f')} vs {fmt(_div(ft, scale), ',.1f')} {unit} "
                f"({fmt(ratio(ht, ft))}x); {parts}",
            )
        )
    return out


def _div(x, d):
    return None if x is None else x / d


def render_table(res) -> str:
    present = [s for s in SYSTEMS if s in res["per_system"]]
    head = ["query", "metric"] + [SYSTEM_TITLES[s] for s in present]
    head += [f"hybrid/{SYSTEM_TITLES[s]}" for s in present if s != "hybrid"]
    rows = [head]
    for kind, where in QUERY_TYPES:
        qn = qt_name(kind, where)
        qual = {"vector": "recall@10", "text": "BM25 overlap@10", "hybrid": "RRF overlap@10"}[kind]
        for metric, key, spec in (("p50 ms", "p50_ms", ",.2f"), ("p95 ms", "p95_ms", ",.2f"), (qual, "quality", ".3f")):
            vals = {s: q(res, s, qn, key) for s in present}
            if all(v is None for v in vals.values()):
                continue
            r = [qn if metric == "p50 ms" else "", metric] + [fmt(vals[s], spec) for s in present]
            r += [
                fmt(ratio(vals.get("hybrid"), vals[s]), ".2f") if key != "quality" else ""
                for s in present
                if s != "hybrid"
            ]
            rows.append(r)
    return _grid(rows)


def render_build(res) -> str:
    present = [s for s in SYSTEMS if s in res["per_system"]]
    rows = [
        [
            "index build",
            *[SYSTEM_TITLES[s] for s in present],
            *[f"hybrid/{SYSTEM_TITLES[s]}" for s in present if s != "hybrid"],
        ]
    ]
    for label, key, scale, spec in (
        ("FTS build s", "fts_seconds", 1, ",.1f"),
        ("vector build s", "vector_seconds", 1, ",.1f"),
        ("FTS index MB", "fts_bytes", 1e6, ",.1f"),
        ("vector index MB", "vector_bytes", 1e6, ",.1f"),
        ("table ingest s (not an index)", "ingest_seconds", 1, ",.1f"),
        ("category scalar index s", "scalar_seconds", 1, ",.1f"),
    ):
        vals = {s: _div(b(res, s, key), scale) for s in present}
        if all(v is None for v in vals.values()):
            continue
        rows.append(
            [
                label,
                *[fmt(vals[s], spec) for s in present],
                *[fmt(ratio(vals.get("hybrid"), vals[s])) for s in present if s != "hybrid"],
            ]
        )
    return _grid(rows, labels=1)


def _grid(rows: list[list[str]], labels: int = 2) -> str:
    """A Markdown table; the first `labels` columns left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        cells = [c.ljust(widths[i]) if i < labels else c.rjust(widths[i]) for i, c in enumerate(r)]
        lines.append("| " + " | ".join(cells) + " |")
        if j == 0:
            rule = ["-" * (w + 2) if i < labels else "-" * (w + 1) + ":" for i, w in enumerate(widths)]
            lines.append("|" + "|".join(rule) + "|")
    return "\n".join(lines)


def render_md(res, meta) -> str:
    a = meta["args"]
    d = res.get("data", {})
    L = ["# Search benchmark: hybrid vs LanceDB vs floor (raw hnswlib + tantivy)\n"]
    L.append(f"Generated by `eval/bench_search.py` on {meta['date']}.\n")
    L.append("Command:\n")
    L.append(f"```\n{meta['command']}\n```\n")
    L.append(
        f"Data: {d.get('docs', 0):,} docs; `text` ~{d.get('mean_text_bytes', 0):,.0f} B of words drawn from a "
        f"{a['vocab']:,}-word vocabulary with Zipf(s={a['zipf']}) frequencies ({d.get('text_mb', 0):,.0f} MB); "
        f"`vector` {DIM}-d float32, unit length, {a['clusters']} Gaussian clusters "
        + (
            f"(spread {a['cluster_spread']} in a random {a['latent_dim']}-d subspace per cluster + isotropic noise "
            f"{a['iso_noise']})"
            if a["latent_dim"] > 0
            else f"(isotropic spread {a['cluster_spread']})"
        )
        + f"; `category` int32 uniform over 0..99; seed {a['seed']}.\n"
    )
    L.append(
        f"Queries: {d.get('queries', 0)}, each from one document: {d.get('query_words_mean', 0):.1f} distinct words "
        f"of its text on average (e.g. {', '.join(repr(x) for x in d.get('query_examples', [])[:3])}) and its vector "
        f"plus noise of norm ~{a['query_noise']}, renormalised (the source doc is in the exact top-10 for "
        f"{100 * (res.get('query_self_hit') or 0):.0f}% of queries). "
        + (
            "Filters: `category < 1` / `category < 10` for every query (the same SQL each time)"
            if a["filters"] == "fixed"
            else "Filters: a different category range per query, e.g. "
            + ", ".join(f"`{x}`" for x in res.get("filter_examples", {}).get("1", []))
            + " / "
            + ", ".join(f"`{x}`" for x in res.get("filter_examples", {}).get("10", []))
        )
        + f", allowing {res.get('allowed_rows', {}).get('1', 0):,.0f} / "
        f"{res.get('allowed_rows', {}).get('10', 0):,.0f} rows on average. "
        + f"Top-{K}; hybrid queries fuse {DEPTH} candidates per branch with RRF(k={RRF_K}) "
        "(LanceDB's hybrid query fetches `limit` = 10 per branch, its default). "
        f"ef_search = {res.get('ef_search')} for hybrid, the floor and LanceDB HNSW-SQ.\n"
    )
    L.append(
        f"Each query runs one at a time. Per query type, {a['repeats']} pass(es); in each pass every system runs "
        f"{a['warmup']} untimed warm-up queries and then all queries on its own (no other system's queries "
        "in between: LanceDB's runtime threads keep running briefly after a query returns and slowed whichever "
        "system ran next when they were interleaved), in an order that rotates between passes. p50/p95 over "
        "all timed calls. "
        + (
            "Before each query type every system's files are read once (untimed) so they sit in the page cache."
            if a["cache"] == "warm"
            else "No page-cache preparation."
        )
        + " BLAS/OpenMP single-threaded ("
        + ", ".join(f"{k}={v}" for k, v in meta["thread_env"].items())
        + "); hnswlib queries `num_threads=1`. hybrid runs the two branches of a hybrid query concurrently in its "
        "own thread pool, LanceDB in a Python thread pool over its Rust runtime"
        + (
            f" (LANCE_CPU_THREADS={meta['thread_env'].get('LANCE_CPU_THREADS')})"
            if meta["thread_env"].get("LANCE_CPU_THREADS")
            else " (default threads)"
        )
        + "; the floor runs its two branches one after the other in one thread. Reported as is.\n"
    )
    m = meta["machine"]
    L.append(
        f"Machine: {m['cpu_count']} cores, {m['ram_gib']:.1f} GiB RAM, {m['platform']}; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".\n"
    )
    g = meta.get("git")
    if g:
        L.append(
            f"Code: commit `{g['commit'][:12]}`"
            + (" with uncommitted changes in `hybrid/`" if g["hybrid_dir_has_uncommitted_changes"] else "")
            + ".\n"
        )
    L.append("## Query latency and quality\n")
    L.append(render_table(res) + "\n")
    L.append(
        "recall@10: against exact cosine top-10 (over the allowed rows when filtered). BM25 overlap@10: against "
        "the floor's tantivy BM25 top-10 (same analyzer; restricted to the allowed rows when filtered). RRF "
        f"overlap@10: against RRF(k={RRF_K}) of the exact vector top-{DEPTH} and the exact BM25 top-{DEPTH}. Ratios "
        "are hybrid's p50/p95 divided by the other system's (<1: hybrid faster).\n"
    )
    L.append("## Index build\n")
    L.append(render_build(res) + "\n")
    L.append(
        "Build times are wall-clock seconds of the index call (hybrid: `create_fts_index` / `create_vector_index`, "
        "including reading the column from the table and committing; floor: tantivy writer + commit, hnswlib "
        "`add_items(num_threads=-1)` + `save_index` from in-memory arrays; LanceDB: `create_fts_index` / "
        "`create_index`). Sizes are the bytes of each index's own files.\n"
    )
    L.append("## Targets\n")
    L.append("| target | result | figures |\n|---|---|---|")
    for t, r, f in targets(res):
        L.append(f"| {t} | **{r}** | {f} |")
    L.append("")
    if res.get("hybrid_plans"):
        L.append("## hybrid's plans (first query)\n")
        for name, plan in res["hybrid_plans"].items():
            L.append(f"`{name}`:\n```\n{plan}\n```")
        L.append("")
    for prof in res.get("profiles") or []:
        L.append(f"## Profile of hybrid: `{prof['query_type']}` queries\n")
        L.append(
            f"cProfile over one pass of {prof['queries']} queries (a hybrid query's two branches run inline in the "
            f"calling thread for this pass so that the profiler sees them; {prof['per_query_ms']:.2f} ms per query "
            "under the profiler). Top entries by own time, then by cumulative time:\n"
        )
        L.append("```\n" + "\n".join(prof["tottime"].splitlines()[:30]) + "\n```\n")
        L.append("```\n" + "\n".join(prof["cumulative"].splitlines()[:30]) + "\n```\n")
    errs = res.get("errors") or {}
    if errs:
        L.append("## Errors\n")
        for s, e in errs.items():
            for what, msg in e.items():
                L.append(f"- **{s}** `{what}`: {msg.splitlines()[0] if msg else ''}")
        L.append("")
    dm = m.get("damon_page_cache_reclaim")
    if dm:
        L.append(
            f"Note: this machine runs a DAMON `{dm['action']}` scheme that drops page-cache pages idle for "
            f"{dm['min_idle_seconds']:.0f} s or more; hence the page-cache step before each query type.\n"
        )

    def la(v):
        return "/".join(f"{x:.2f}" for x in v) if v else "n/a"

    L.append(
        f"Load average (1/5/15 min) at start {la(meta['loadavg_at_start'])}, at end {la(meta.get('loadavg_at_end'))}. "
        f"Total wall time {res['wall_seconds']:.0f} s (data generation {res.get('generation_seconds', 0):.0f} s, "
        f"exact answers {res.get('truth_seconds', 0):.0f} s); peak RSS {res['peak_rss_mb']:,.0f} MB.\n"
    )
    return "\n".join(L)


def machine_info() -> dict[str, Any]:
    mem = mem_total_bytes()
    versions = {}
    for name in ("hybridsearch", "tantivy", "hnswlib", "lancedb", "pylance", "pyarrow", "duckdb", "numpy"):
        versions[name] = pkg_version(name)
    return {
        "damon_page_cache_reclaim": damon_reclaim_info(),
        "cpu_count": os.cpu_count(),
        "ram_gib": (mem or 0) / 2**30,
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "python": platform.python_version(),
        "versions": {k: v for k, v in versions.items() if v is not None},
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3, help="timed passes over the queries (default 3)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed queries per system and query type")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--text-bytes", type=int, default=1500)
    ap.add_argument("--vocab", type=int, default=30_000)
    ap.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent s of word frequencies")
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--latent-dim", type=int, default=32, help="per-cluster spread subspace (0: isotropic)")
    ap.add_argument("--cluster-spread", type=float, default=1.0)
    ap.add_argument("--iso-noise", type=float, default=0.2)
    ap.add_argument("--query-noise", type=float, default=0.5)
    ap.add_argument("--lance-nprobes", type=int, default=None, help="LanceDB nprobes (default: LanceDB's)")
    ap.add_argument("--lance-refine-factor", type=int, default=None, help="LanceDB refine_factor (default: none)")
    ap.add_argument(
        "--lance-scalar-index",
        choices=("btree", "bitmap", "none"),
        default="btree",
        help="scalar index LanceDB gets on `category` for the prefilters (default btree)",
    )
    ap.add_argument(
        "--lance-cpu-threads", type=int, default=None, help="set LANCE_CPU_THREADS (default: LanceDB's own)"
    )
    ap.add_argument(
        "--filters",
        choices=("fixed", "varied"),
        default="fixed",
        help="fixed: `category < 1` / `category < 10` for every query (default); varied: a different "
        "category range of the same width per query (`category = c`, `category >= c AND category < c + 10`)",
    )
    ap.add_argument("--cache", choices=("warm", "asis"), default="warm")
    ap.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="cProfile hybrid queries (auto: when hybrid's hybrid-query p50 is above the floor's)",
    )
    ap.add_argument("--out-dir", default=None, help="scratch dir (default: a temp dir under /tmp, deleted at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the temp scratch dir")
    ap.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default="search", help="results file stem (default: search)")
    args = ap.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = set(args.systems) - set(SYSTEMS)
    if bad:
        ap.error(f"unknown systems {sorted(bad)}")
    if args.lance_cpu_threads is not None:
        os.environ["LANCE_CPU_THREADS"] = str(args.lance_cpu_threads)

    thread_env = {k: os.environ.get(k) for k in (*_THREAD_VARS, "LANCE_CPU_THREADS") if os.environ.get(k)}
    res, rd = run_and_report(
        args,
        argv,
        run,
        machine_info=machine_info,
        targets=targets,
        render_md=render_md,
        tables=lambda r: [render_table(r), render_build(r)],
        extra_meta={"thread_env": thread_env},
    )
    if res.get("errors"):
        print("\nerrors:")
        for s, e in res["errors"].items():
            for what, msg in e.items():
                print(f"  {s} {what}: {msg.splitlines()[0]}")
    print(f"\nwrote {rd / (args.name + '.json')} and {rd / (args.name + '.md')}")


if __name__ == "__main__":
    main()
