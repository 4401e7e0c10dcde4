"""CrossEncoderReranker on a tiny real CrossEncoder (the packaged MiniLM with a fresh head, saved locally)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hybrid.errors import EmbeddingError
from hybrid.rerankers import CrossEncoderReranker

pytest.importorskip("sentence_transformers")
torch = pytest.importorskip("torch")
from sentence_transformers import CrossEncoder  # noqa: E402

QUERY = "where is the eiffel tower"
TEXTS = [
    "The Eiffel Tower is in Paris.",
    "Bananas grow in tropical climates.",
    "Paris is the capital of France and home to many landmarks.",
    "The stock market fell on Tuesday.",
    "A wrought-iron lattice tower stands on the Champ de Mars.",
]


def rows(texts: Sequence[str | None]) -> pa.Table:
    return pa.table(
        {
            "_rowid": pa.array(range(len(texts)), pa.uint64()),
            "text": pa.array(texts, pa.string()),
            "_bm25": pa.array([float(i) for i in range(len(texts))], pa.float32()),
        }
    )


def by_row(out: pa.Table) -> list[float]:
    got = dict(zip(out["_rowid"].to_pylist(), out["_relevance_score"].to_pylist()))
    return [got[i] for i in range(len(got))]


@pytest.fixture(scope="module")
def raw(cross_encoder_dirs: dict[str, Path]) -> Any:
    """The same model loaded directly, for reference scores."""
    return CrossEncoder(str(cross_encoder_dirs["sigmoid"]), local_files_only=True)


def logits(model: Any, texts: list[str]) -> np.ndarray:
    pairs = [(QUERY, t) for t in texts]
    return np.asarray(model.predict(pairs, activation_fn=torch.nn.Identity(), show_progress_bar=False), np.float64)


def test_saved_activations_are_what_the_test_models_claim(cross_encoder_dirs: dict[str, Path]) -> None:
    saved = {
        k: json.loads((d / "config_sentence_transformers.json").read_text()) for k, d in cross_encoder_dirs.items()
    }
    assert saved["sigmoid"]["activation_fn"] == "torch.nn.modules.activation.Sigmoid"
    assert saved["identity"]["activation_fn"] == "torch.nn.modules.linear.Identity"


def test_auto_scores_equal_crossencoder_predict(cross_encoder_dirs: dict[str, Path], raw: Any) -> None:
    r = CrossEncoderReranker(cross_encoder_dirs["sigmoid"])
    out = r.rerank(QUERY, rows(TEXTS))
    expected = raw.predict([(QUERY, t) for t in TEXTS], show_progress_bar=False)
    np.testing.assert_allclose(by_row(out), expected, rtol=1e-5, atol=1e-6)
    # a model saved with sigmoid: auto applies it
    np.testing.assert_allclose(by_row(out), 1 / (1 + np.exp(-logits(raw, TEXTS))), rtol=1e-5, atol=1e-6)
    scores = out["_relevance_score"].to_numpy()
    assert np.all(np.diff(scores) <= 0) and scores.min() > 0 and scores.max() < 1
    assert len(set(np.round(scores, 4))) == len(TEXTS)  # the head spreads the scores


def test_activation_choices(cross_encoder_dirs: dict[str, Path], raw: Any) -> None:
    z = logits(raw, TEXTS)
    none = CrossEncoderReranker(cross_encoder_dirs["sigmoid"], activation="none").rerank(QUERY, rows(TEXTS))
    np.testing.assert_allclose(by_row(none), z, rtol=1e-5, atol=1e-6)
    assert min(by_row(none)) < 0 or max(by_row(none)) > 1  # raw logits leave (0, 1)
    # a model saved with Identity: auto keeps logits, sigmoid still maps into (0, 1)
    auto = CrossEncoderReranker(cross_encoder_dirs["identity"]).rerank(QUERY, rows(TEXTS))
    np.testing.assert_allclose(by_row(auto), z, rtol=1e-5, atol=1e-6)
    sig = CrossEncoderReranker(cross_encoder_dirs["identity"], activation="sigmoid").rerank(QUERY, rows(TEXTS))
    np.testing.assert_allclose(by_row(sig), 1 / (1 + np.exp(-z)), rtol=1e-5, atol=1e-6)
    # every choice orders the same
    assert none["_rowid"].to_pylist() == auto["_rowid"].to_pylist() == sig["_rowid"].to_pylist()


def test_columns_kept_and_nulls_last(cross_encoder_dirs: dict[str, Path]) -> None:
    table = rows([*TEXTS, None])
    out = CrossEncoderReranker(cross_encoder_dirs["sigmoid"]).rerank(QUERY, table)
    assert out.column_names == [*table.column_names, "_relevance_score"]
    assert out["_rowid"].to_pylist()[-1] == len(TEXTS)
    assert out["_relevance_score"].to_pylist()[-1] == float("-inf")
    bm25 = dict(zip(out["_rowid"].to_pylist(), out["_bm25"].to_pylist()))
    assert bm25 == {i: float(i) for i in range(len(TEXTS) + 1)}


def test_batch_size_does_not_change_scores(cross_encoder_dirs: dict[str, Path]) -> None:
    one = CrossEncoderReranker(cross_encoder_dirs["sigmoid"], batch_size=1).rerank(QUERY, rows(TEXTS))
    all_ = CrossEncoderReranker(cross_encoder_dirs["sigmoid"], batch_size=64).rerank(QUERY, rows(TEXTS))
    np.testing.assert_allclose(by_row(one), by_row(all_), rtol=1e-5, atol=1e-6)


def test_max_length_truncates_pairs(cross_encoder_dirs: dict[str, Path]) -> None:
    base = " ".join(["the tower was built for the world fair of eighteen eighty nine"] * 8)
    texts = [base + " apples", base + " quantum chromodynamics", "word " * 5000]
    short = CrossEncoderReranker(cross_encoder_dirs["sigmoid"], max_length=32, activation="none")
    assert short.model.max_seq_length == 32
    s = by_row(short.rerank(QUERY, rows(texts)))
    assert s[0] == pytest.approx(s[1], abs=1e-6)  # the endings lie past the 32 tokens read
    full = by_row(CrossEncoderReranker(cross_encoder_dirs["sigmoid"], activation="none").rerank(QUERY, rows(texts)))
    assert full[0] != pytest.approx(full[1], abs=1e-6)  # with 512 tokens they are read
    assert all(np.isfinite(full))  # a 5,000-word text is truncated to 512 tokens, not an error


def test_model_loads_lazily_once(cross_encoder_dirs: dict[str, Path]) -> None:
    r = CrossEncoderReranker(str(cross_encoder_dirs["sigmoid"]))
    assert "model" not in r.__dict__
    r.rerank(QUERY, rows([]))  # nothing to score: nothing loaded
    assert "model" not in r.__dict__
    r.rerank(QUERY, rows(TEXTS[:1]))
    model = r.model
    r.rerank(QUERY, rows(TEXTS[:2]))
    assert r.model is model


def test_missing_or_invalid_model_folder(tmp_path: Path) -> None:
    missing = CrossEncoderReranker(tmp_path / "no-such-model")
    with pytest.raises(EmbeddingError, match="cannot load cross-encoder '.*no-such-model'"):
        missing.rerank(QUERY, rows(TEXTS))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmbeddingError, match="cannot load cross-encoder '.*empty'"):
        CrossEncoderReranker(tmp_path / "empty").rerank(QUERY, rows(TEXTS))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
        ({"batch_size": 2.5}, ValueError, "batch_size must be a positive integer"),
        ({"max_length": -1}, ValueError, "max_length must be a positive integer or None"),
        ({"activation": "softmax"}, ValueError, "activation must be one of"),
        ({"column": ""}, TypeError, "column must be a column name"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        CrossEncoderReranker("some/model", **kwargs)


def test_model_must_be_a_name_or_folder() -> None:
    with pytest.raises(TypeError, match="model must be a model folder or name"):
        CrossEncoderReranker(None)  # type: ignore[arg-type]
