"""The tuned cross-encoder as int8 ONNX: exported once after training (torch), served by onnxruntime.

`export_onnx` traces the trained model (a BERT sequence classifier) to ONNX with torch's exporter,
folds its constants (onnxruntime's basic graph optimisations), quantizes its weight matrices to int8
per channel with ``onnxruntime.quantization.quantize_dynamic`` (int8 GEMMs for the matrix products,
activations quantized per batch at run time) and drops the NaN guards after each attention softmax
(:func:`hybrid.embedders.onnx_quantize.drop_nan_guards`). The file, :data:`ONNX_FILE`, goes into the
model folder beside the torch weights and the ``tokenizer.json`` that training saved; making it needs
torch and the ``onnx`` package (the ``tune`` extra), reading it needs neither.

`OnnxCrossEncoder` scores (query, text) pairs with that file and the folder's ``tokenizer.json``
(``tokenizers``, truncating the longer of the two texts first, as the transformers tokenizer does), so a
table's tuned reranker runs in the default install: no torch, no transformers.
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.errors import EmbeddingError, require, require_default

ONNX_FILE = "model.int8.onnx"
"""The int8 ONNX copy of a tuned reranker, inside its model folder."""
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_path(model_dir: str | os.PathLike[str]) -> Path:
    """Where the int8 ONNX copy of the model in `model_dir` is (or would be)."""
    return Path(model_dir) / ONNX_FILE


def export_onnx(model_dir: str | os.PathLike[str], max_length: int = 256) -> Path:
    """Write the int8 ONNX copy of the cross-encoder in `model_dir` (:data:`ONNX_FILE` inside it) and return
    its path. Needs torch (``models`` extra) and ``onnx`` (``onnx`` extra); the file is replaced atomically."""
    from hybrid.embedders.onnx_quantize import drop_nan_guards
    from hybrid.feedback.reranker import load_cross_encoder

    torch: Any = require("torch", "models")
    onnx: Any = require("onnx", "onnx")
    quantization: Any = require("onnxruntime.quantization", "onnx")
    ort: Any = require_default("onnxruntime")
    folder = Path(model_dir)
    if not (folder / "tokenizer.json").exists():
        raise EmbeddingError(f"no tokenizer.json in {folder}: the ONNX reranker needs a fast tokenizer's file")
    ce = load_cross_encoder(folder, max_length)
    model = ce.model.eval()
    sample = ce.tokenizer(["a query"] * 2, ["a text", "a longer text to pad"], padding=True, return_tensors="pt")
    args = tuple(sample[name] for name in INPUTS)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS} | {"logits": {0: "batch"}}
    target = onnx_path(folder)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        fp32, folded, int8 = (Path(tmp) / name for name in ("fp32.onnx", "folded.onnx", "int8.onnx"))
        with torch.inference_mode(), warnings.catch_warnings():
            # the tracer warns of branches on shapes that are constant for an encoder (mask given, no cache)
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                args,
                str(fp32),
                input_names=list(INPUTS),
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(fp32), sess_options=options, providers=["CPUExecutionProvider"])
        try:
            quantization.quantize_dynamic(
                str(folded), str(int8), weight_type=quantization.QuantType.QInt8, per_channel=True
            )
        except Exception as exc:  # onnx / onnxruntime raise many types for a graph they cannot quantize
            raise EmbeddingError(f"could not quantize the reranker in {folder} to int8: {exc}") from exc
        graph = onnx.load(str(int8))
        if drop_nan_guards(graph):
            onnx.save(graph, str(int8))
        os.replace(int8, target)
    return target


class OnnxCrossEncoder:
    """Scores (query, text) pairs with a tuned reranker's int8 ONNX file (see the module docstring).

    `threads`: onnxruntime intra-op threads (None: all cores); `batch_size`: pairs per run.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        max_length: int = 256,
        threads: int | None = None,
        batch_size: int = 32,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.max_length, self.threads, self.batch_size = max_length, threads, batch_size
        self._lock = threading.Lock()

    @cached_property
    def session(self) -> Any:
        """The onnxruntime session of :data:`ONNX_FILE`."""
        ort: Any = require_default("onnxruntime")
        path = onnx_path(self.model_dir)
        if not path.exists():
            raise EmbeddingError(f"no ONNX reranker in {self.model_dir}: export it with export_onnx()")
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise EmbeddingError(f"onnxruntime could not load the reranker {path}: {exc}") from exc

    @cached_property
    def tokenizer(self) -> Any:
        """The folder's ``tokenizer.json``: pairs truncated longest-first to `max_length`, batches padded."""
        tokenizers: Any = require_default("tokenizers")
        path = self.model_dir / "tokenizer.json"
        if not path.exists():
            raise EmbeddingError(f"no tokenizer.json in {self.model_dir}")
        tok = tokenizers.Tokenizer.from_file(str(path))
        tok.enable_truncation(max_length=self.max_length, strategy="longest_first")
        tok.enable_padding()
        return tok

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """The model's raw score (a logit) of each (query, text) pair."""
        if not texts:
            return np.zeros(0)
        with self._lock:
            session, tok = self.session, self.tokenizer
        wanted = {i.name for i in session.get_inputs()}
        out = []
        for i in range(0, len(texts), self.batch_size):
            encoded = tok.encode_batch([(query, t) for t in texts[i : i + self.batch_size]])
            feeds = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }
            logits = session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]
            out.append(np.asarray(logits, dtype=np.float64).reshape(-1))
        return np.concatenate(out)
