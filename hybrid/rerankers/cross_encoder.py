"""`CrossEncoderReranker`: rescore (query, text) pairs with a sentence-transformers CrossEncoder."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hybrid.errors import EmbeddingError, HybridError, require
from hybrid.rerankers.scoring import TextReranker

Activation = Literal["auto", "sigmoid", "none"]
_ACTIVATIONS = ("auto", "sigmoid", "none")


class CrossEncoderReranker(TextReranker):
    """Scores each candidate by reading the query and its text together with a cross-encoder.

    `model`: a local folder (loaded offline) or a model name; it is loaded on first use.
    `column`: the text column (default: ``"text"``, else the only text column).
    `max_length`: tokens per (query, text) pair; longer pairs are truncated (None: the model's own limit).
    `activation` maps the model's logits to scores:

    - ``"none"``: the raw logits;
    - ``"sigmoid"``: ``1 / (1 + exp(-logit))``, in (0, 1);
    - ``"auto"``: what ``CrossEncoder.predict`` applies by default, i.e. the activation saved
      with the model (``activation_fn`` in ``config_sentence_transformers.json``, or the older
      ``sbert_ce_default_activation_function`` in ``config.json``; e.g. Identity for the
      ms-marco cross-encoders), and sigmoid when none is saved. The order is the same either way.

    Only single-label models (``num_labels=1``) give one relevance score per pair.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        column: str | None = None,
        batch_size: int = 32,
        max_length: int | None = 512,
        activation: Activation = "auto",
        device: str = "cpu",
    ) -> None:
        super().__init__(column)
        if not isinstance(model, (str, os.PathLike)) or not str(model):
            raise TypeError(f"model must be a model folder or name, got {model!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length <= 0
        ):
            raise ValueError(f"max_length must be a positive integer or None, got {max_length!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        self.model_name = os.fspath(model)
        self.batch_size = batch_size
        self.max_length = max_length
        self.activation = activation
        self.device = device

    def __repr__(self) -> str:
        return f"CrossEncoderReranker({self.model_name!r}, activation={self.activation!r})"

    @cached_property
    def model(self) -> Any:
        """The loaded sentence-transformers ``CrossEncoder``."""
        st: Any = require("sentence_transformers", "models")
        local = Path(self.model_name).expanduser()
        options: dict[str, Any] = {"device": self.device, "max_length": self.max_length}
        try:
            if local.exists():
                model = st.CrossEncoder(str(local), local_files_only=True, **options)
            else:
                model = st.CrossEncoder(self.model_name, **options)
        except (OSError, ValueError) as exc:  # missing files, or a folder that holds no model
            raise EmbeddingError(
                f"cannot load cross-encoder {self.model_name!r}: {exc}. Give a local folder holding a "
                "sentence-transformers CrossEncoder or a Hugging Face sequence-classification model"
            ) from None
        if model.num_labels != 1:
            raise HybridError(
                f"cross-encoder {self.model_name!r} has {model.num_labels} labels; "
                "reranking needs a single-label model (num_labels=1)"
            )
        return model

    def _activation_fn(self) -> Any:
        if self.activation == "auto":
            return None  # the model's own, as CrossEncoder.predict chooses it
        nn: Any = require("torch.nn", "models")
        return nn.Sigmoid() if self.activation == "sigmoid" else nn.Identity()

    def _score(self, query: str, texts: list[str]) -> np.ndarray:
        scores = self.model.predict(
            [(query, t) for t in texts],
            batch_size=self.batch_size,
            activation_fn=self._activation_fn(),
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(scores, dtype=np.float64).reshape(-1)
