"""Filtered search is exact-or-near-exact: vector, text and hybrid queries against exact filtered references.

One table of 50k rows (clustered vectors, Zipf-distributed synthetic text, ``bucket = id % 1000``)
so that ``bucket < 1 / 10 / 100 / 500`` keep 0.1% / 1% / 10% / 50% of the rows. At these sizes
the cost model (``hybrid/query/vector_plan.py``) has the vector branch search exactly at 0.1% and
1% and over-fetch from HNSW at 10% and 50%; the text branch pushes the allowed set into tantivy
at 0.1% and over-fetches above (``hybrid/index/fulltext.py``).

References, computed independently of the filtered code paths:

* vector: numpy cosine distances over the allowed rows;
* text: the *unfiltered* BM25 ranking of every matching document (BM25 statistics are
  index-wide, so filtering must not change a score), filtered in Python;
* hybrid: ``RRF()`` with equal weights (asked for explicitly) over those two exact lists cut at the
  default candidate depth.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.query.fusion import RRF, Ranked

N, DIM, CLUSTERS = 50_000, 64, 50
VOCAB, N_QUERIES, K = 5_000, 50, 10
DEPTH = max(50, 2 * K)  # the default candidate depth of a two-branch query, offset 0
SELECTIVITY = {"0.1%": 1, "1%": 10, "10%": 100, "50%": 500}  # bucket < value
MIN_RECALL = 0.98


def _words(n: int, rng: np.random.Generator) -> list[str]:
    syllables = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "ve", "zu", "bo", "de", "fa", "gi", "ju", "xo"]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        w = "".join(rng.choice(syllables, size=int(rng.integers(2, 5))))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def _vectors(a: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(a.ravel(), pa.float32()), a.shape[1])


class Corpus:
    def __init__(self, seed: int = 3) -> None:
        rng = np.random.default_rng(seed)
        centers = rng.normal(size=(CLUSTERS, DIM))
        labels = rng.integers(0, CLUSTERS, size=N)
        self.vectors = (centers[labels] + 0.4 * rng.normal(size=(N, DIM))).astype(np.float32)
        self.vocab = _words(VOCAB, rng)
        p = 1.0 / np.arange(1, VOCAB + 1) ** 1.05
        p /= p.sum()
        lengths = rng.integers(6, 40, size=N)
        tokens = rng.choice(VOCAB, size=int(lengths.sum()), p=p)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        self.texts = [" ".join(self.vocab[t] for t in tokens[bounds[i] : bounds[i + 1]]) for i in range(N)]
        qrng = np.random.default_rng(seed + 1)
        picks = qrng.choice(N, size=N_QUERIES, replace=False)
        self.query_vectors = (self.vectors[picks] + 0.2 * qrng.normal(size=(N_QUERIES, DIM))).astype(np.float32)
        # 2-4 mid-frequency words: enough matches that even 50 allowed rows usually hold some
        self.query_texts = [
            " ".join(self.vocab[int(r)] for r in qrng.integers(3, 400, size=int(qrng.integers(2, 5))))
            for _ in range(N_QUERIES)
        ]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus()


@pytest.fixture(scope="module")
def table(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> hybrid.Table:
    db = hybrid.connect(tmp_path_factory.mktemp("filtered") / "db")
    ids = np.arange(N, dtype=np.int64)
    data = pa.table(
        {"id": ids, "bucket": ids % 1000, "text": corpus.texts, "vector": _vectors(corpus.vectors)},
    )
    t = db.create_table("docs", data)
    t.create_fts_index(["text"])
    t.create_vector_index("vector")
    return t


@pytest.fixture(scope="module")
def rowids(table: hybrid.Table) -> np.ndarray:
    """Row id of each `id` (position)."""
    t = table.to_arrow(["id"], with_rowid=True)
    out = np.empty(N, np.uint64)
    out[t.column("id").to_numpy()] = t.column("_rowid").to_numpy()
    return out


@pytest.fixture(scope="module")
def unfiltered_text(table: hybrid.Table, corpus: Corpus) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per query: (row ids, ids, BM25) of every matching document, best first, with no filter."""
    out = []
    for q in corpus.query_texts:
        res = table.search(q).select(["id"]).limit(N).to_arrow()
        out.append((res.column("_rowid").to_numpy(), res.column("id").to_numpy(), res.column("_score").to_numpy()))
    return out


def exact_vector(corpus: Corpus, q: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k nearest allowed rows by cosine distance (ties by id)."""
    m = corpus.vectors[allowed].astype(np.float64)
    d = 1.0 - (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))
    order = np.lexsort((allowed, d))[:k]
    return allowed[order]


def text_recall(got: list[int], ids: np.ndarray, scores: np.ndarray) -> float | None:
    """Recall@K against an exact ranking, counting any document tied with the K-th score as correct."""
    if len(ids) == 0:
        return None if not got else 0.0
    want = min(K, len(ids))
    cutoff = scores[want - 1]
    good = set(ids[scores >= cutoff - 1e-5 * max(1.0, abs(float(cutoff)))].tolist())
    return min(want, len(good & set(got))) / want


def _ids(q: hybrid.query.search.Query) -> list[int]:
    return q.select(["id"]).limit(K).to_arrow().column("id").to_pylist()


@pytest.mark.parametrize("label", list(SELECTIVITY))
def test_filtered_recall(
    label: str,
    table: hybrid.Table,
    corpus: Corpus,
    rowids: np.ndarray,
    unfiltered_text: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> None:
    bound = SELECTIVITY[label]
    where = f"bucket < {bound}"
    allowed = np.flatnonzero(np.arange(N) % 1000 < bound)
    assert table.count_rows(where) == len(allowed)
    rrf = RRF()  # the fusion the hybrid searches ask for
    recalls: dict[str, list[float]] = {"vector": [], "text": [], "hybrid": []}
    started = time.perf_counter()
    for qv, qt, (t_rowids, t_ids, t_scores) in zip(corpus.query_vectors, corpus.query_texts, unfiltered_text):
        # vector
        truth_v = exact_vector(corpus, qv, allowed, K)
        got_v = _ids(table.search(qv).where(where))
        assert len(got_v) == K and all(i % 1000 < bound for i in got_v)
        recalls["vector"].append(len(set(got_v) & set(truth_v.tolist())) / K)

        # text
        keep = t_ids % 1000 < bound
        f_rowids, f_ids, f_scores = t_rowids[keep], t_ids[keep], t_scores[keep]
        got_t = _ids(table.search(qt).where(where))
        assert all(i % 1000 < bound for i in got_t)
        assert len(got_t) == min(K, len(f_ids)), f"{qt!r}: {len(got_t)} results, {len(f_ids)} allowed matches"
        r = text_recall(got_t, f_ids, f_scores)
        if r is not None:
            recalls["text"].append(r)

        # hybrid: RRF over the exact branch lists at the default candidate depth
        vec_depth = exact_vector(corpus, qv, allowed, DEPTH)
        fused, _ = rrf.fuse(
            [
                Ranked(rowids[vec_depth], -np.arange(len(vec_depth), dtype=np.float64)),
                Ranked(f_rowids[:DEPTH], f_scores[:DEPTH].astype(np.float64)),
            ]
        )
        truth_h = set(fused[:K].tolist())
        got_h = (
            table.search(query_type="hybrid")
            .vector(qv)
            .text(qt)
            .fuse(rrf)
            .weights("equal")
            .where(where)
            .limit(K)
            .to_arrow()
        )
        got_h_rowids = got_h.column("_rowid").to_pylist()
        assert len(got_h_rowids) == min(K, len(fused))
        recalls["hybrid"].append(len(truth_h & set(got_h_rowids)) / len(truth_h))
    elapsed = time.perf_counter() - started
    means = {kind: float(np.mean(v)) for kind, v in recalls.items()}
    print(
        f"\n{label} ({len(allowed)} rows): "
        + ", ".join(f"{kind} recall@{K} = {m:.4f} (n={len(recalls[kind])})" for kind, m in means.items())
        + f"; {elapsed:.1f}s"
    )
    for kind, m in means.items():
        assert m >= MIN_RECALL, f"{kind} recall@{K} at {label} is {m:.4f} < {MIN_RECALL}"


@pytest.mark.parametrize("kind", ["vector", "text", "hybrid"])
@pytest.mark.parametrize("bound", [10, 500])
def test_postfilter_returns_only_matching_rows(kind: str, bound: int, table: hybrid.Table, corpus: Corpus) -> None:
    qv, qt = corpus.query_vectors[0], corpus.query_texts[0]
    base = {
        "vector": table.search(qv),
        "text": table.search(qt),
        "hybrid": table.search(query_type="hybrid").vector(qv).text(qt),
    }[kind]
    where = f"bucket < {bound}"
    q = base.where(where, prefilter=False).select(["id", "bucket"]).limit(K)
    rows = q.to_list()
    assert all(r["bucket"] < bound for r in rows)
    assert len(rows) <= K
    if bound == 500:  # half the rows pass: the over-fetched candidates hold some
        assert rows
    plan = q.explain()
    assert where in plan and "postfilter" in plan and "prefilter)" not in plan
    pre = base.where(where).explain()
    assert where in pre and "prefilter" in pre
    assert re.search(rf"-> {table.count_rows(where)} rows", pre)


INJECTIONS = [
    ("bucket IN (SELECT column0 FROM read_csv('/etc/passwd'))", r"subquer"),
    ("EXISTS (SELECT * FROM read_csv('/etc/passwd'))", r"subquer"),
    ("1=1; DROP TABLE x", r"malformed|single expression"),
    ("bucket < 10; DROP TABLE docs", r"malformed|single expression"),
    ("bucket IN (SELECT bucket FROM other_table)", r"subquer"),
    ("id IN (SELECT id FROM docs)", r"subquer"),
    ("getenv('HOME') = '/root'", r"getenv"),
    ("length(getenv('HOME')) > 0", r"getenv"),
]


@pytest.mark.parametrize(("where", "reason"), INJECTIONS)
@pytest.mark.parametrize("kind", ["vector", "text"])
def test_filter_injection_is_refused(where: str, reason: str, kind: str, table: hybrid.Table, corpus: Corpus) -> None:
    before = table.count_rows()
    q = table.search(corpus.query_vectors[0] if kind == "vector" else corpus.query_texts[0])
    with pytest.raises(hybrid.FilterError) as err:
        q.where(where).to_list()
    message = str(err.value)
    assert re.search(reason, message, re.IGNORECASE), message
    assert where in message or repr(where) in message, message  # names the offending expression
    with pytest.raises(hybrid.FilterError):
        q.where(where, prefilter=False).explain()
    assert table.count_rows() == before


def test_a_filter_unlike_the_query_still_finds_the_exact_neighbours(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Half the rows are allowed, but all lie in a cluster far from the query: over-fetching finds
    none of them among the nearest, deepens, then walks the graph with the filter; the result is
    still the exact filtered top-k."""
    rng = np.random.default_rng(5)
    n, dim = 20_000, 32
    near = rng.normal(size=(n // 2, dim)).astype(np.float32)
    far = (rng.normal(size=(n // 2, dim)) + 8.0).astype(np.float32)
    vectors = np.concatenate([near, far])
    side = np.array(["near"] * (n // 2) + ["far"] * (n // 2))
    flat = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim)
    t = hybrid.connect(tmp_path).create_table("t", pa.table({"id": np.arange(n), "side": side, "v": flat}))
    t.create_vector_index("v", metric="l2")  # Euclidean: every near row is closer than any far one
    t.create_scalar_index("side")
    hits = 0
    far64 = far.astype(np.float64)
    for q in near[:20] + 0.1:
        got = t.search(q.astype(np.float32), query_type="vector").where("side = 'far'").limit(K)
        got_ids = np.asarray(got.select(["id"]).to_arrow().column("id").to_pylist()) - n // 2
        dist = ((far64 - q) ** 2).sum(axis=1)
        kth = np.sort(dist)[K - 1]
        hits += int((dist[got_ids] <= kth * (1 + 1e-6)).sum())  # ties with the k-th within float32 noise count
    assert hits / (20 * K) >= MIN_RECALL
    plan = t.search(near[0], query_type="vector").where("side = 'far'").explain()
    assert "they lie away from the query" in plan and "10000 rows from scalar index on side" in plan
