"""`NanoRankerReranker`: the small multilingual ONNX reranker of the ``nanoranker`` package."""

from __future__ import annotations

from typing import Any

import numpy as np

from hybrid.errors import require
from hybrid.rerankers.scoring import TextReranker


class NanoRankerReranker(TextReranker):
    """Scores each candidate with ``nanoranker``: a multilingual sentence encoder plus character
    n-gram hashing embed the query and the text, and a small network scores the pair.

    Unlike ``nanoranker.rank``, the scores are kept per row (duplicates included) and are the
    network's raw outputs, not normalised to sum to one. Needs the ``nanoranker`` extra; the
    package loads its ONNX models when first used (about a second).
    """

    def __init__(self, *, column: str | None = None) -> None:
        super().__init__(column)

    def __repr__(self) -> str:
        return "NanoRankerReranker()"

    def _score(self, query: str, texts: list[str]) -> np.ndarray:
        nr: Any = require("nanoranker", "nanoranker")
        q = np.asarray(nr.embed(query), dtype=np.float32)
        docs = np.stack([np.asarray(nr.embed(t), dtype=np.float32) for t in texts])
        pairs = np.concatenate([np.tile(q, (len(docs), 1)), docs], axis=1).astype(np.float32)
        out = nr.reranker_model.run(["output"], {"input": pairs})[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)
