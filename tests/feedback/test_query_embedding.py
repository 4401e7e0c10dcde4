"""`tune`'s questions are embedded ahead of its searches, in the embedder's batches: mining hard negatives
asks the bound embedder for a batch of questions at a time, not one call a question, and the searches that
follow embed nothing more (they find the vectors in the embedder's cache)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

import hybrid
from hybrid.embedders import HashingEmbedder, register
from hybrid.embedders.base import EmbeddingCache
from hybrid.feedback.judgments import Judgments
from hybrid.feedback.query_embedding import embed_ahead
from hybrid.feedback.tune import LIBRARY_FUSION, TuneSettings, mine_examples

BATCH = 8
QUESTIONS = 21  # three batches of BATCH, the last one short


@register("test-counting-queries")
class CountingEmbedder(HashingEmbedder):
    """A hashing embedder that records the size of each call that embeds questions."""

    def __init__(self, dim: int = 256, **options: Any) -> None:
        super().__init__(dim, **options)
        self.query_calls: list[int] = []

    def _encode(self, texts: list[str], kind: Any) -> np.ndarray:
        if kind == "query":
            self.query_calls.append(len(texts))
        return super()._encode(texts, kind)


def make_table(path: Path, dim: int) -> tuple[hybrid.Table, CountingEmbedder]:
    """Rows "topic N: fact about subject N", full text and a vector column bound to a counting embedder
    (`dim` differs between tests: the registry shares one embedder instance per configuration)."""
    rows = [{"id": i, "text": f"topic {i}: a fact about subject{i} and subject{i + 1}"} for i in range(40)]
    embedder = CountingEmbedder(dim=dim, batch_size=BATCH)
    table = hybrid.connect(path).create_table("docs", rows, embedding={"vector": ("text", embedder)})
    table.create_fts_index(["text"])
    bound = table.embeddings["vector"][1]
    assert isinstance(bound, CountingEmbedder)
    return table, bound


def questions() -> list[str]:
    return [f"what about subject{i}" for i in range(QUESTIONS)]


def test_mining_embeds_its_questions_in_batches(tmp_path: Path) -> None:
    table, embedder = make_table(tmp_path / "db", dim=48)
    rowids = table.to_arrow(["id"], with_rowid=True).column("_rowid").to_pylist()
    judged = Judgments({q: {int(rowids[i]): 1.0} for i, q in enumerate(questions())})
    embedder.query_calls.clear()
    examples = mine_examples(table, judged, LIBRARY_FUSION, TuneSettings(negatives=1, progress=False))
    assert len(examples) == QUESTIONS
    # one call a batch, not one a question (the old path: QUESTIONS calls of 1)
    assert embedder.query_calls == [BATCH, BATCH, QUESTIONS - 2 * BATCH]


def test_searches_after_embed_ahead_embed_nothing_and_rank_as_before(tmp_path: Path) -> None:
    table, embedder = make_table(tmp_path / "db", dim=40)
    alone = {q: table.search(q).limit(5).to_arrow().column("_rowid").to_pylist() for q in questions()}
    embedder.cache = EmbeddingCache(1000)  # forget the questions embedded one at a time
    embedder.query_calls.clear()
    assert embed_ahead(table, [*questions(), questions()[0], "  "]) == QUESTIONS  # distinct, non-blank
    assert len(embedder.query_calls) == math.ceil(QUESTIONS / BATCH)
    embedder.query_calls.clear()
    ahead = {q: table.search(q).limit(5).to_arrow().column("_rowid").to_pylist() for q in questions()}
    assert embedder.query_calls == []
    assert ahead == alone


def test_embed_ahead_leaves_a_table_without_a_bound_column_alone(tmp_path: Path) -> None:
    table = hybrid.connect(tmp_path).create_table("plain", [{"id": i, "text": f"row {i}"} for i in range(4)])
    assert embed_ahead(table, questions()) == 0
    table, embedder = make_table(tmp_path / "db", dim=44)
    embedder.query_calls.clear()
    assert embed_ahead(table, questions(), vector_column="no_such_column") == 0
    assert embedder.query_calls == []
