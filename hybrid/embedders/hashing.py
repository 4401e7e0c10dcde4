"""`HashingEmbedder`: deterministic word-hashing vectors, for tests and examples without a model."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from hybrid.embedders.base import Kind, TextEmbedder, l2_normalize
from hybrid.embedders.registry import register

_WORD = re.compile(r"\w+", re.UNICODE)


@register("hashing")
class HashingEmbedder(TextEmbedder):
    """Each lower-cased word adds ±1 to a bucket chosen by its BLAKE2 hash; rows are unit length.

    The same text gives the same vector in every process, and texts sharing
    words are close, so it stands in for a model in tests. It knows no meaning.

    Example:
        >>> e = HashingEmbedder(dim=64)
        >>> v = e.embed_documents(["red apple", "green apple", "blue sky"])
        >>> bool(v[0] @ v[1] > v[0] @ v[2])
        True
    """

    def __init__(self, dim: int = 256, **options: Any) -> None:
        super().__init__(**options)
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self._dim = dim

    def _dimension(self) -> int:
        return self._dim or 0

    def to_config(self) -> dict[str, Any]:
        return {"dim": self._dim}

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        dim = self._dimension()
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % dim] += 1.0 if (h >> 63) & 1 else -1.0
        return l2_normalize(out)
