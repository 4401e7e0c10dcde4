"""The storage benchmark's synthetic rows: a seeded, chunked generator, and the added column's values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

DIM = 384
TABLE = "docs"
VERSIONS_TABLE = "versions"
STORES = ("hybrid", "lance", "parquet")
TAKE_SIZES = (1, 100, 10_000)
NEW_COLUMN = "emb2"

# --------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------

CATEGORIES = [f"category_{i:02d}" for i in range(20)]
LANGS = ["en", "de", "fr", "es", "it", "pt", "nl", "ja", "zh", "ko"]


class DataGen:
    """Seeded, chunked generator of the benchmark rows.

    ``text`` is built from a fixed vocabulary of pseudo-words with numpy only
    (a byte gather), so a 50k-row chunk costs well under a second and the peak
    memory stays at a few hundred MB.
    """

    def __init__(self, seed: int, text_bytes: int = 1024, vocab_size: int = 5000):
        self.seed = seed
        vrng = np.random.default_rng(seed ^ 0x5EED)
        lens = vrng.integers(2, 12, size=vocab_size)  # 2..11 letters
        letters = vrng.integers(ord("a"), ord("z") + 1, size=int(lens.sum()), dtype=np.uint8)
        # vocabulary stored as "word " pieces in one buffer
        buf = np.empty(int(lens.sum()) + vocab_size, dtype=np.uint8)
        self.voff = np.zeros(vocab_size, dtype=np.int64)
        pos = 0
        lpos = 0
        for i, n in enumerate(lens):
            self.voff[i] = pos
            buf[pos : pos + n] = letters[lpos : lpos + n]
            buf[pos + n] = ord(" ")
            pos += n + 1
            lpos += n
        self.vbuf = buf
        self.vlen = lens.astype(np.int64)
        self.words_per_row = max(1, int(round((text_bytes + 1) / (self.vlen.mean() + 1))))
        self.cats = pa.array(CATEGORIES, pa.string())
        self.langs = pa.array(LANGS, pa.string())

    def _text(self, rng: np.random.Generator, n: int) -> pa.Array:
        w = self.words_per_row
        pieces = []
        for s in range(0, n, 5000):  # sub-blocks keep the int64 gather index small
            m = min(5000, n - s)
            idx = rng.integers(0, len(self.vlen), size=(m, w))
            lens = self.vlen[idx] + 1  # word + space
            lens[:, -1] -= 1  # no trailing space on the last word
            flat_lens = lens.ravel()
            total = int(flat_lens.sum())
            dst_start = np.cumsum(flat_lens) - flat_lens
            gather = np.repeat(self.voff[idx.ravel()] - dst_start, flat_lens)
            gather += np.arange(total, dtype=np.int64)
            data = self.vbuf[gather]
            row_len = lens.sum(axis=1)
            offsets = np.zeros(m + 1, dtype=np.int32)
            np.cumsum(row_len, out=offsets[1:])
            pieces.append(pa.StringArray.from_buffers(m, pa.py_buffer(offsets), pa.py_buffer(data)))
        return pa.concat_arrays(pieces)

    def chunk(self, start: int, n: int) -> pa.Table:
        # one RNG per chunk, seeded by (seed, start): chunks are reproducible
        # independently of the chunk order / size used elsewhere.
        rng = np.random.default_rng([self.seed, start])
        vec = rng.standard_normal((n, DIM), dtype=np.float32)
        return pa.table(
            {
                "id": pa.array(np.arange(start, start + n, dtype=np.int64)),
                "text": self._text(rng, n),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), DIM),
                "category": self.cats.take(pa.array(rng.integers(0, len(CATEGORIES), n))),
                "year": pa.array(rng.integers(1990, 2026, n).astype(np.int32)),
                "score": pa.array(rng.random(n)),
                "lang": self.langs.take(pa.array(rng.integers(0, len(LANGS), n))),
                "flag": pa.array(rng.random(n) < 0.5),
            }
        )


def new_column_for(ids: np.ndarray) -> pa.FixedSizeListArray:
    """Deterministic random 384-d float32 vectors for the given ids (used by
    hybrid's add_columns fn and by the Parquet rewrite)."""
    ids = np.asarray(ids)
    seed = int(ids[0]) if len(ids) else 0
    rng = np.random.default_rng([0xC0FFEE, seed, len(ids)])
    vec = rng.standard_normal((len(ids), DIM), dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), DIM)
