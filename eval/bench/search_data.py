"""The search benchmark's data: the constants its modules share, the query types and their
filters, and the seeded synthetic corpus and queries."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

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


def pseudo_words(rng: np.random.Generator, count: int) -> list[str]:
    """`count` distinct lowercase pseudo-words of 2 to 12 letters, drawn from `rng`."""
    words: dict[str, None] = {}
    while len(words) < count:
        lens = rng.integers(2, 13, size=count - len(words))
        letters = rng.integers(ord("a"), ord("z") + 1, size=int(lens.sum()), dtype=np.uint8).tobytes().decode()
        pos = 0
        for n in lens.tolist():
            words.setdefault(letters[pos : pos + n])
            pos += n
    return list(words)


def zipf_law(count: int, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Zipf(`s`) over ranks 1..`count` (probability proportional to r^-s): (probabilities, cumulative, its
    last value exactly 1 so ``searchsorted(cdf, uniform, side="right")`` always gives a rank index)."""
    p = 1.0 / np.arange(1, count + 1, dtype=np.float64) ** s
    p /= p.sum()
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    return p, cdf


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
        self.vocab = pseudo_words(np.random.default_rng([args.seed, 1]), args.vocab)
        vlen = np.array([len(w) for w in self.vocab], dtype=np.int64)
        self.vbuf = np.frombuffer(" ".join(self.vocab).encode() + b" ", dtype=np.uint8)
        self.voff = np.concatenate([[0], np.cumsum(vlen + 1)[:-1]]).astype(np.int64)
        self.vlen = vlen
        p, self.cdf = zipf_law(args.vocab, args.zipf)
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
