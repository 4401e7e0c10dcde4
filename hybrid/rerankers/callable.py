"""`CallableReranker`: turn any ``fn(query, texts) -> scores`` function into a reranker."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from hybrid.errors import HybridError
from hybrid.rerankers.scoring import TextReranker

ScoreFn = Callable[[str, list[str]], Sequence[float]]


class CallableReranker(TextReranker):
    """Scores the candidates with ``fn(query, texts)``, which returns one number per text,
    higher is better (an LLM judge, a remote reranking API, a heuristic ...).

    `fn` sees the non-null texts of `column` (default ``"text"``, else the only text column),
    in candidate order; null texts score lowest. A result of the wrong length, or with NaN or
    inf, raises :class:`hybrid.errors.HybridError` naming `name` (default: the function's name).

    Example:
        >>> import pyarrow as pa
        >>> shortest = CallableReranker(lambda q, texts: [-len(t) for t in texts], name="shortest")
        >>> shortest.rerank("q", pa.table({"_rowid": [0, 1], "text": ["a long one", "short"]}))["text"].to_pylist()
        ['short', 'a long one']
    """

    def __init__(self, fn: ScoreFn, *, column: str | None = None, name: str | None = None) -> None:
        super().__init__(column)
        if not callable(fn):
            raise TypeError(f"fn must be callable as fn(query, texts), got {type(fn).__name__}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None, got {type(name).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)

    def __repr__(self) -> str:
        return f"CallableReranker({self.name})"

    def _score(self, query: str, texts: list[str]) -> np.ndarray:
        result = self.fn(query, list(texts))
        try:
            if isinstance(result, (str, bytes)) or np.ndim(result) == 0:
                raise TypeError
            scores = np.asarray(result, dtype=np.float64)
        except (TypeError, ValueError):
            raise HybridError(
                f"reranker {self.name} must return a sequence of numbers, got {type(result).__name__}"
            ) from None
        if scores.ndim != 1 or len(scores) != len(texts):
            raise HybridError(f"reranker {self.name} returned {scores.size} scores for {len(texts)} texts")
        bad = np.flatnonzero(~np.isfinite(scores))
        if len(bad):
            raise HybridError(f"reranker {self.name} returned a non-finite score ({scores[bad[0]]}) for text #{bad[0]}")
        return scores
